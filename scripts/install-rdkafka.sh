#!/usr/bin/env bash
# Install the optional librdkafka producer (config kafka.producer: librdkafka), without adding it to
# package.json: @confluentinc/kafka-javascript, a native addon. Its install script first downloads a
# prebuilt binary from GitHub; where that is unreachable it builds the addon and its bundled librdkafka
# from source, which needs a C/C++ toolchain, make, python3, OpenSSL and zlib headers (Debian:
# build-essential libssl-dev zlib1g-dev) and Node's headers, taken from this Node's own install
# (npm_config_nodedir) so that node-gyp does not download them. CKJS_LINKING=dynamic: librdkafka is
# built from the bundled sources against the system OpenSSL and zlib (the static build downloads
# them). Takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="$(dirname "$(dirname "$(command -v node)")")"
if [ ! -f "$prefix/include/node/node.h" ]; then
  echo "install-rdkafka: Node headers not found under $prefix/include/node" >&2
  exit 1
fi
version="${RDKAFKA_JS_VERSION:-1.10.1}"
CKJS_LINKING=dynamic npm_config_nodedir="$prefix" npm install --no-save --no-audit --no-fund "@confluentinc/kafka-javascript@$version"
node -e "require('@confluentinc/kafka-javascript'); console.log('install-rdkafka: @confluentinc/kafka-javascript $version loads')"
