#!/usr/bin/env bash
# The local stack without Docker: PostgreSQL (wal_level=logical), Redis, Apache Kafka (KRaft, single
# node) and Apicurio Registry (Confluent-compatible API), started from packages and Maven Central.
#
#   scripts/stack.sh up [SERVICE...]   idempotent; a healthy running service is reused, not restarted.
#                                      SERVICE: postgres redis kafka registry mariadb (default: all). Returns
#                                      once each really works: Kafka creates a topic, takes a message
#                                      and serves it to a consumer group (scripts/stack-probe.mjs); the
#                                      registry registers a schema and returns it on its ccompat API.
#   scripts/stack.sh down              stops what this script started in its run dir (Kafka, registry,
#                                      and a private Redis/PostgreSQL); the system PostgreSQL and the
#                                      Redis on 6379 are left up, and MariaDB (always the system one)
#   scripts/stack.sh status            one line per service; exit 1 if any is down
#   scripts/stack.sh up --brokers 3    Kafka as three KRaft nodes (replication factor 3, min.insync.replicas
#                                      2; see "Kafka, several nodes" below); `kill kafka-2` kills one (-9)
#
# Everything downloaded or written lives under $SYNCLINE_CACHE (default ~/.cache/syncline), outside
# the repository, and is reused between runs.
#
# A second, private stack on the same machine (tests that start a service late, a cold start): give
# it a run dir and ports of its own; the jars in the cache are shared.
#   SYNCLINE_RUN_DIR        state of this stack (default $SYNCLINE_CACHE/run)
#   SYNCLINE_KAFKA_PORT     broker port (default 9092); its KRaft controller listens on the next port
#   SYNCLINE_REGISTRY_PORT  registry port (default 8081)
#   SYNCLINE_REDIS_PORT     Redis port (default 6379); another port: a Redis of the run dir (--save "")
#   SYNCLINE_PG_PORT        PostgreSQL port (default 5432, the system cluster); another port: a cluster
#                           made by initdb in the run dir (its defaults: wal_level=replica), then
#                           configured like the system one (logical replication, trust on loopback)
#
# TLS (SYNCLINE_STACK_TLS=1, a private stack only: its Redis and PostgreSQL ports are not the shared
# ones). `up` makes a CA and certificates (openssl) in $RUN/tls once: ca.crt/ca.key, server.crt/key
# (CN localhost, SAN IP:127.0.0.1 and DNS:localhost), server.p12 (Kafka's keystore), client.crt/key
# (a client certificate of the CA), other-ca.crt (a CA that signed nothing here: a "wrong CA"), and
# the credentials kafka.user/kafka.password and redis.user/redis.password (random unless
# SYNCLINE_STACK_KAFKA_PASSWORD / SYNCLINE_STACK_REDIS_PASSWORD are set). Then:
#   MariaDB   (a server of the run dir: SYNCLINE_MARIADB_PORT other than 3306) the server
#             certificate and require_secure_transport
#   Kafka     a SASL_SSL listener (SCRAM-SHA-512, the user made at storage format) on
#             SYNCLINE_KAFKA_TLS_PORT (default broker port + 2), besides the plaintext one the
#             broker uses itself and the readiness probe uses
#   Redis     TLS only on SYNCLINE_REDIS_PORT (no plaintext port), user `default` off, the ACL user
#   PostgreSQL  ssl=on with the server certificate, plaintext TCP refused (hostnossl reject); set at
#             the cluster's creation
#   registry  HTTPS only on SYNCLINE_REGISTRY_PORT (Quarkus quarkus.http.ssl.certificate.*); no basic
#             auth: Apicurio 2.6's basic auth needs Keycloak (see docs/security.md)
#
# SYNCLINE_MARIADB_PORT (default 3306, the system server): another port starts a MariaDB of the run
# dir (mariadb-install-db, root without password, the binlog settings below on its command line).
#
# MariaDB (service `mariadb`) is the system server from Debian's package on 127.0.0.1:3306 (root,
# empty password). `up` starts it if it is down and makes sure the binlog settings binlog CDC needs
# are in force (log_bin, binlog_format=ROW, binlog_row_image=FULL, server_id, gtid_strict_mode);
# only when they are not does it write $MARIADB_CNF and restart the server, once.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${SYNCLINE_CACHE:-$HOME/.cache/syncline}"
RUN="${SYNCLINE_RUN_DIR:-$CACHE/run}"
KAFKA_VERSION="${SYNCLINE_KAFKA_VERSION:-4.1.1}"
LOG4J_VERSION="2.24.3"
# 2.6.x runs on Java 17 and serves the Confluent-compatible API at /apis/ccompat/v7; Maven Central
# serves no complete 3.0/3.1 archive (3.0.9 lacks its parent POM), and 3.2+ needs Java 21.
APICURIO_VERSIONS="${SYNCLINE_APICURIO_VERSIONS:-2.6.13.Final}"
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"
KAFKA_PORT="${SYNCLINE_KAFKA_PORT:-9092}"
KAFKA_CTRL_PORT=$((KAFKA_PORT + 1))
# Kafka nodes (up --brokers N); 1: the single node below, its files kafka.pid/.log, kafka-data.
KAFKA_NODES="${SYNCLINE_KAFKA_NODES:-1}"

REGISTRY_PORT="${SYNCLINE_REGISTRY_PORT:-8081}"
REDIS_PORT="${SYNCLINE_REDIS_PORT:-6379}"
PG_HOST=127.0.0.1
PG_PORT="${SYNCLINE_PG_PORT:-5432}"
# The system cluster (Debian's, pg_ctlcluster) on 5432; a cluster of the run dir on another port.
PG_PRIVATE=0; [ "$PG_PORT" != 5432 ] && PG_PRIVATE=1
REDIS_PRIVATE=0; [ "$REDIS_PORT" != 6379 ] && REDIS_PRIVATE=1
STACK_TLS="${SYNCLINE_STACK_TLS:-0}"
TLS_DIR="$RUN/tls"
KAFKA_TLS_PORT="${SYNCLINE_KAFKA_TLS_PORT:-$((KAFKA_PORT + 2))}"
if [ "$STACK_TLS" = 1 ] && { [ "$PG_PRIVATE" = 0 ] || [ "$REDIS_PRIVATE" = 0 ]; }; then
  printf '[stack] error: SYNCLINE_STACK_TLS=1 needs a private stack (SYNCLINE_PG_PORT and SYNCLINE_REDIS_PORT other than 5432 and 6379): the shared servers are never reconfigured\n' >&2; exit 1
fi
# How long `up` waits for a service to work before it gives up.
READY_TIMEOUT_S="${SYNCLINE_STACK_READY_TIMEOUT_S:-120}"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
mvn_q() { mvn -B -q -ntp -Dstyle.color=never "$@" </dev/null >&2; }

# ---------------------------------------------------------------- TLS material
# A CA, a server certificate for 127.0.0.1/localhost, a client certificate, a second CA that signed
# nothing (tests of a wrong CA) and the SASL / ACL passwords; made once per run dir.
tls_make() {
  [ "$STACK_TLS" = 1 ] || return 0
  [ -f "$TLS_DIR/.complete" ] && return 0
  command -v openssl >/dev/null 2>&1 || die "SYNCLINE_STACK_TLS=1 needs openssl"
  log "making a CA and certificates in $TLS_DIR"
  rm -rf "$TLS_DIR"; mkdir -p "$TLS_DIR"; chmod 755 "$TLS_DIR"
  (
    cd "$TLS_DIR"
    o() { openssl "$@" >>openssl.log 2>&1 || die "openssl $1 failed: $(tail -n 5 openssl.log)"; }
    o req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=syncline test CA"
    o req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.crt -days 30 -subj "/CN=syncline other CA"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    o req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
    o x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 30 -extfile server.ext
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    o req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=syncline-client"
    o x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 30 -extfile client.ext
    o pkcs12 -export -in server.crt -inkey server.key -certfile ca.crt -name server -out server.p12 -passout pass:changeit
    echo syncline >kafka.user
    echo "${SYNCLINE_STACK_KAFKA_PASSWORD:-$(openssl rand -hex 12)}" >kafka.password
    echo syncline >redis.user
    echo "${SYNCLINE_STACK_REDIS_PASSWORD:-$(openssl rand -hex 12)}" >redis.password
    chmod 644 ./*.crt ./*.key ./*.p12 ./*.user ./*.password
  )
  touch "$TLS_DIR/.complete"
}

# ---------------------------------------------------------------- PostgreSQL
pg_cluster_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }
psql_admin() { psql -X -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -At "$@"; }
# With TLS plaintext TCP is refused: pg_isready and psql need sslmode=require (they verify nothing).
[ "$STACK_TLS" = 1 ] && export PGSSLMODE=require
pg_bin() { echo "/usr/lib/postgresql/$(pg_cluster_version)/bin"; }
PG_DATA="$RUN/pg"
# initdb and the server refuse to run as root.
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Control of the cluster: the system one through pg_ctlcluster, one of the run dir through pg_ctl.
pg_ctl_do() {
  if [ "$PG_PRIVATE" = 0 ]; then pg_ctlcluster --skip-systemctl-redirect "$(pg_cluster_version)" main "$1"; return; fi
  case "$1" in
    start) as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DATA" -l "$RUN/pg.log" -w -t 60 start >/dev/null ;;
    restart) as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DATA" -l "$RUN/pg.log" -m fast -w -t 60 restart >/dev/null ;;
    reload) as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DATA" reload >/dev/null ;;
    stop) as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null ;;
  esac
}

# A cluster of the run dir as a fresh install leaves one: initdb's defaults (wal_level=replica).
pg_private_init() {
  [ -f "$PG_DATA/PG_VERSION" ] && return 0
  log "creating a PostgreSQL cluster in $PG_DATA (port $PG_PORT)"
  mkdir -p "$PG_DATA"; chmod 755 "$RUN"; chmod 700 "$PG_DATA"; touch "$RUN/pg.log"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$PG_DATA" "$RUN/pg.log"; fi
  as_postgres "$(pg_bin)/initdb" -D "$PG_DATA" -U postgres -E UTF8 >"$RUN/pg-initdb.log" 2>&1 \
    || die "initdb failed: $(tail -n 5 "$RUN/pg-initdb.log")"
  cat >>"$PG_DATA/postgresql.conf" <<CONF
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DATA'
CONF
  if [ "$STACK_TLS" = 1 ]; then
    cp "$TLS_DIR/server.crt" "$TLS_DIR/server.key" "$TLS_DIR/ca.crt" "$PG_DATA/"
    chmod 600 "$PG_DATA/server.key"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$PG_DATA/server.crt" "$PG_DATA/server.key" "$PG_DATA/ca.crt"; fi
    cat >>"$PG_DATA/postgresql.conf" <<CONF
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.crt'
CONF
    # Plaintext TCP refused before any other line: every TCP connection is TLS.
    { printf 'hostnossl all all 0.0.0.0/0 reject\nhostnossl all all ::/0 reject\nhostnossl replication all 0.0.0.0/0 reject\n'; cat "$PG_DATA/pg_hba.conf"; } >"$PG_DATA/pg_hba.conf.new"
    mv "$PG_DATA/pg_hba.conf.new" "$PG_DATA/pg_hba.conf"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$PG_DATA/pg_hba.conf"; fi
  fi
}

pg_up() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing PostgreSQL from Debian packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local v; v="$(pg_cluster_version)"
  [ -n "$v" ] || die "no PostgreSQL cluster under /etc/postgresql"
  local hba="/etc/postgresql/$v/main/pg_hba.conf"
  if [ "$PG_PRIVATE" = 1 ]; then pg_private_init; hba="$PG_DATA/pg_hba.conf"; fi
  if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
    log "starting PostgreSQL $v on $PG_HOST:$PG_PORT"
    pg_ctl_do start || true
    for _ in $(seq 1 60); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 0.5; done
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" || die "PostgreSQL did not start (see /var/log/postgresql, or $RUN/pg.log)"
  fi
  # On a fresh Debian install, local TCP connections need a password; this stack is for tests.
  if ! psql_admin -c 'select 1' >/dev/null 2>&1; then
    log "allowing trust auth on loopback in $hba"
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    sed -i -E 's/^(local\s+all\s+(all|postgres)\s+)\S+/\1trust/' "$hba"
    pg_ctl_do reload
    sleep 1
  fi
  local wal slots senders
  wal="$(psql_admin -c 'show wal_level')"
  slots="$(psql_admin -c 'show max_replication_slots')"
  senders="$(psql_admin -c 'show max_wal_senders')"
  # max_replication_slots also bounds the replication origins in use at once (one per session of a
  # two-way sink: a mesh of three databases alone holds dozens), next to the tests' slots.
  if [ "$wal" != "logical" ] || [ "$slots" -lt 128 ] || [ "$senders" -lt 64 ]; then
    log "enabling logical replication (wal_level=$wal slots=$slots senders=$senders) and restarting PostgreSQL"
    psql_admin -c "alter system set wal_level = logical" >/dev/null
    psql_admin -c "alter system set max_replication_slots = 128" >/dev/null
    psql_admin -c "alter system set max_wal_senders = 64" >/dev/null
    psql_admin -c "alter system set max_connections = 300" >/dev/null
    pg_ctl_do restart
    for _ in $(seq 1 60); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 0.5; done
    [ "$(psql_admin -c 'show wal_level')" = "logical" ] || die "wal_level is still not logical"
  fi
}

pg_status() {
  if pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
    echo "postgres  up    $PG_HOST:$PG_PORT wal_level=$(psql_admin -c 'show wal_level' 2>/dev/null || echo '?')"
  else
    echo "postgres  down  $PG_HOST:$PG_PORT"; return 1
  fi
}

# Only a cluster of the run dir is stopped: never the system one.
pg_down() {
  [ "$PG_PRIVATE" = 1 ] && [ -f "$PG_DATA/PG_VERSION" ] || return 0
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" || return 0
  log "stopping PostgreSQL on port $PG_PORT ($PG_DATA)"
  pg_ctl_do stop || true
}

# ---------------------------------------------------------------- Redis
redis_cli() {
  if [ "$STACK_TLS" = 1 ]; then
    REDISCLI_AUTH="$(cat "$TLS_DIR/redis.password")" redis-cli --tls --cacert "$TLS_DIR/ca.crt" --user "$(cat "$TLS_DIR/redis.user")" -h 127.0.0.1 -p "$REDIS_PORT" "$@"
  else redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; fi
}
redis_ping() { [ "$(redis_cli ping 2>/dev/null)" = "PONG" ]; }

redis_up() {
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing Redis from Debian packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  if ! redis_ping; then
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    local dir=/var/lib/redis extra=()
    if [ "$REDIS_PRIVATE" = 1 ]; then dir="$RUN/redis"; extra=(--pidfile "$RUN/redis.pid" --logfile "$RUN/redis.log"); fi
    mkdir -p "$dir"
    local conf=() listen=(--port "$REDIS_PORT")
    if [ "$STACK_TLS" = 1 ]; then
      # TLS only, and only the ACL user: `default` is off. ACL lines hold spaces: a config file.
      printf 'user default off\nuser %s on >%s ~* &* +@all\n' "$(cat "$TLS_DIR/redis.user")" "$(cat "$TLS_DIR/redis.password")" >"$RUN/redis-acl.conf"
      chmod 600 "$RUN/redis-acl.conf"
      conf=("$RUN/redis-acl.conf")
      listen=(--port 0 --tls-port "$REDIS_PORT" --tls-cert-file "$TLS_DIR/server.crt" --tls-key-file "$TLS_DIR/server.key" --tls-ca-cert-file "$TLS_DIR/ca.crt" --tls-auth-clients no)
    fi
    redis-server "${conf[@]}" --daemonize yes --bind 127.0.0.1 -::1 "${listen[@]}" --save "" --appendonly no --dir "$dir" "${extra[@]}" >/dev/null
    for _ in $(seq 1 40); do redis_ping && break; sleep 0.25; done
    redis_ping || die "Redis did not start"
  fi
}

redis_status() {
  if redis_ping; then echo "redis     up    127.0.0.1:$REDIS_PORT"
  else echo "redis     down  127.0.0.1:$REDIS_PORT"; return 1; fi
}

# Only a Redis of the run dir is stopped: never the one on 6379.
redis_down() {
  [ "$REDIS_PRIVATE" = 1 ] && [ -f "$RUN/redis.pid" ] || return 0
  log "stopping Redis on port $REDIS_PORT"
  redis_cli shutdown nosave >/dev/null 2>&1 || true
  for _ in $(seq 1 40); do port_open "$REDIS_PORT" || break; sleep 0.25; done
  rm -f "$RUN/redis.pid"
}

# ---------------------------------------------------------------- MariaDB
# Debian's my.cnf here reads no directory; the settings go to a file of their own in the directory
# Debian's packaging normally includes, and my.cnf gets the include line once.
MARIADB_CNF_DIR=/etc/mysql/mariadb.conf.d
MARIADB_CNF="$MARIADB_CNF_DIR/90-syncline.cnf"
MARIADB_PORT="${SYNCLINE_MARIADB_PORT:-3306}"
# Another port: a server of the run dir (mariadb-install-db into $RUN/mariadb, its own socket), for
# tests that need settings the shared one cannot take without a restart (TLS).
MARIA_PRIVATE=0; [ "$MARIADB_PORT" != 3306 ] && MARIA_PRIVATE=1
MARIA_DATA="$RUN/mariadb"
# What the binlog source needs, as `name=value` lines SHOW GLOBAL VARIABLES must report.
MARIADB_WANT="log_bin=ON
binlog_format=ROW
binlog_row_image=FULL
gtid_strict_mode=ON"
maria_tls=(); [ "$STACK_TLS" = 1 ] && [ "$MARIA_PRIVATE" = 1 ] && maria_tls=(--ssl-ca="$TLS_DIR/ca.crt" --ssl-verify-server-cert)
maria() { mariadb -uroot -h127.0.0.1 -P"$MARIADB_PORT" "${maria_tls[@]}" --connect-timeout=3 -N -B "$@"; }
maria_ping() { maria -e 'select 1' >/dev/null 2>&1; }
maria_vars() {
  maria -e "show global variables where variable_name in ('log_bin','binlog_format','binlog_row_image','server_id','gtid_strict_mode')" \
    | awk '{print $1"="$2}' | sort
}
# The settings not in force, one per line (empty: all are); server_id must be set (non-zero).
maria_missing() {
  local have; have="$(maria_vars)"
  printf '%s\n' "$MARIADB_WANT" | while read -r want; do grep -qxF "$want" <<<"$have" || echo "$want"; done
  grep -qE '^server_id=[1-9]' <<<"$have" || echo "server_id>0"
}

maria_wait() {
  for _ in $(seq 1 $((READY_TIMEOUT_S * 2))); do maria_ping && return 0; sleep 0.5; done
  return 1
}

# Started as Debian's init script would (mysqld_safe, which restarts the server if it dies), but
# without the script's debian.cnf maintenance account, which this machine does not have.
maria_start() {
  log "starting MariaDB on 127.0.0.1:$MARIADB_PORT"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  (exec setsid /usr/bin/mysqld_safe >/dev/null 2>&1 </dev/null) &
  maria_wait || die "MariaDB did not answer within $READY_TIMEOUT_S s (see /var/log/mysql/error.log)"
}

maria_stop() {
  local pid; pid="$(cat /run/mysqld/mysqld.pid 2>/dev/null || true)"
  maria -e 'shutdown' >/dev/null 2>&1 || mariadb-admin -uroot -h127.0.0.1 -P"$MARIADB_PORT" shutdown >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do
    if [ -n "$pid" ]; then kill -0 "$pid" 2>/dev/null || return 0; else port_open "$MARIADB_PORT" || return 0; fi
    sleep 0.5
  done
  die "MariaDB (pid ${pid:-?}) did not shut down within 60 s"
}

# A server of the run dir: the binlog settings on its command line; with TLS the stack's server
# certificate and require_secure_transport (plaintext connections refused).
maria_private_up() {
  maria_ping && return 0
  if [ ! -d "$MARIA_DATA/mysql" ]; then
    log "creating a MariaDB datadir in $MARIA_DATA (port $MARIADB_PORT)"
    mkdir -p "$MARIA_DATA"; chmod 755 "$RUN"
    if [ "$(id -u)" = 0 ]; then chown mysql:mysql "$MARIA_DATA"; fi
    mariadb-install-db --no-defaults --user=mysql --datadir="$MARIA_DATA" --auth-root-authentication-method=normal --skip-test-db >"$RUN/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed: $(tail -n 5 "$RUN/mariadb-install.log")"
  fi
  local tls=()
  if [ "$STACK_TLS" = 1 ]; then
    tls=(--ssl-cert="$TLS_DIR/server.crt" --ssl-key="$TLS_DIR/server.key" --ssl-ca="$TLS_DIR/ca.crt" --require-secure-transport=ON)
  fi
  # The server runs as mysql: it must reach its datadir and the certificates inside the run dir.
  chmod 755 "$RUN"
  log "starting MariaDB on 127.0.0.1:$MARIADB_PORT ($MARIA_DATA)$([ "$STACK_TLS" = 1 ] && echo ", TLS only")"
  (exec setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$MARIA_DATA" --port="$MARIADB_PORT" --bind-address=127.0.0.1 \
     --socket="$MARIA_DATA/mariadb.sock" --pid-file="$MARIA_DATA/mariadb.pid" --log-error="$MARIA_DATA/mariadb.log" \
     --log-bin=mysql-bin --binlog-format=ROW --binlog-row-image=FULL --server-id=1 --gtid-strict-mode=ON "${tls[@]}" >/dev/null 2>&1 </dev/null) &
  echo $! >"$RUN/mariadb.pid"
  for _ in $(seq 1 $((READY_TIMEOUT_S * 2))); do
    maria_ping && return 0
    pid_alive "$RUN/mariadb.pid" || die "MariaDB exited during start-up: $(tail -n 20 "$MARIA_DATA/mariadb.log" 2>/dev/null)"
    sleep 0.5
  done
  die "MariaDB did not answer within $READY_TIMEOUT_S s (see $MARIA_DATA/mariadb.log)"
}

maria_private_down() {
  [ "$MARIA_PRIVATE" = 1 ] && pid_alive "$RUN/mariadb.pid" || return 0
  log "stopping MariaDB on port $MARIADB_PORT"
  stop_pid mariadb
}

maria_up() {
  if [ "$MARIA_PRIVATE" = 1 ]; then maria_private_up; return; fi
  [ "$STACK_TLS" = 1 ] && die "SYNCLINE_STACK_TLS=1 with mariadb needs SYNCLINE_MARIADB_PORT (a server of the run dir): the shared MariaDB is never reconfigured"
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || {
    log "installing MariaDB from Debian packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  }
  maria_ping || maria_start
  local missing; missing="$(maria_missing)"
  [ -z "$missing" ] && return 0
  log "MariaDB binlog settings not in force: $(echo $missing); writing $MARIADB_CNF and restarting MariaDB"
  mkdir -p "$MARIADB_CNF_DIR"
  # server_id: keep the one the server has when it is set (a replica set-up may rely on it).
  local sid; sid="$(maria_vars | sed -n 's/^server_id=//p')"; [ "${sid:-0}" -gt 0 ] 2>/dev/null || sid=1
  cat >"$MARIADB_CNF" <<CNF
# Written by syncline scripts/stack.sh: what binlog CDC (the MariaDB source) needs.
[mysqld]
log_bin = mysql-bin
binlog_format = ROW
binlog_row_image = FULL
server_id = $sid
gtid_strict_mode = ON
# A test machine: binlogs older than two days are removed.
binlog_expire_logs_seconds = 172800
CNF
  local mycnf=/etc/mysql/my.cnf
  grep -qE "^!includedir[[:space:]]+$MARIADB_CNF_DIR/?\$" "$mycnf" 2>/dev/null || printf '\n!includedir %s/\n' "$MARIADB_CNF_DIR" >>"$mycnf"
  maria_stop
  maria_start
  missing="$(maria_missing)"
  [ -z "$missing" ] || die "MariaDB restarted but these settings are still not in force: $(echo $missing) (check $MARIADB_CNF is read: mariadbd --print-defaults)"
}

maria_status() {
  if maria_ping; then echo "mariadb   up    127.0.0.1:$MARIADB_PORT $(maria_vars | tr '\n' ' ')"
  else echo "mariadb   down  127.0.0.1:$MARIADB_PORT"; return 1; fi
}

# ---------------------------------------------------------------- Kafka
kafka_fetch() {
  [ -f "$KAFKA_HOME/.complete" ] && return 0
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central (once)"
  local work="$CACHE/build/kafka-$KAFKA_VERSION"
  rm -rf "$work" "$KAFKA_HOME"; mkdir -p "$work" "$KAFKA_HOME/libs"
  cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>syncline.stack</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
  (cd "$work" && mvn_q "$DEP_PLUGIN:copy-dependencies" -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs") \
    || die "could not fetch Kafka $KAFKA_VERSION from Maven Central"
  cat >"$KAFKA_HOME/log4j2.properties" <<'L4J'
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
logger.controller.name = org.apache.kafka.controller
logger.controller.level = warn
logger.raft.name = org.apache.kafka.raft
logger.raft.level = warn
L4J
  touch "$KAFKA_HOME/.complete"
}

kafka_java() { java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
  -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2.properties" -cp "$KAFKA_HOME/libs/*" "$@"; }

kafka_ready() {
  pid_alive "$RUN/kafka.pid" && grep -q "Kafka Server started" "$RUN/kafka.log" 2>/dev/null && port_open $KAFKA_PORT
}

# The broker accepts work: a topic created, a message produced and read back by a consumer group.
kafka_works() {
  [ -d "$ROOT/node_modules/kafkajs" ] || die "node_modules is missing: run 'npm ci' first (the Kafka readiness probe uses kafkajs)"
  node "$ROOT/scripts/stack-probe.mjs" "127.0.0.1:$KAFKA_PORT" "$((READY_TIMEOUT_S * 1000))" \
    || die "Kafka on 127.0.0.1:$KAFKA_PORT is up but does not accept work (log: $RUN/kafka.log)"
}

kafka_up() {
  if kafka_ready; then kafka_works; return 0; fi
  if port_open $KAFKA_PORT && ! pid_alive "$RUN/kafka.pid"; then
    log "port $KAFKA_PORT is open but not by this stack's broker: reusing it as Kafka"
    kafka_works
    return 0
  fi

  kafka_fetch
  mkdir -p "$RUN/kafka-data"
  local props="$RUN/kafka.properties"
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT" protomap="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [ "$STACK_TLS" = 1 ]; then
    listeners="$listeners,SASL_SSL://127.0.0.1:$KAFKA_TLS_PORT"; protomap="$protomap,SASL_SSL:SASL_SSL"
  fi
  cat >"$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CTRL_PORT
listeners=$listeners,CONTROLLER://127.0.0.1:$KAFKA_CTRL_PORT
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protomap
inter.broker.listener.name=PLAINTEXT
log.dirs=$RUN/kafka-data
num.partitions=3
num.network.threads=2
num.io.threads=2
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.cleaner.dedupe.buffer.size=2097152
log.retention.hours=2160
log.segment.bytes=67108864
PROPS
  local scram=()
  if [ "$STACK_TLS" = 1 ]; then
    cat >>"$props" <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/server.p12
ssl.keystore.password=changeit
ssl.key.password=changeit
ssl.client.auth=none
PROPS
    scram=(--add-scram "SCRAM-SHA-512=[name=$(cat "$TLS_DIR/kafka.user"),password=$(cat "$TLS_DIR/kafka.password")]")
  fi
  if [ ! -f "$RUN/kafka-data/meta.properties" ]; then
    local cid; cid="$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    kafka_java kafka.tools.StorageTool format -t "$cid" -c "$props" --ignore-formatted "${scram[@]}" >"$RUN/kafka-format.log" 2>&1 \
      || die "kafka storage format failed: $(tail -n 5 "$RUN/kafka-format.log")"
  fi
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT$([ "$STACK_TLS" = 1 ] && echo " (SASL_SSL on $KAFKA_TLS_PORT)")"
  : >"$RUN/kafka.log"
  # setsid + exec: the broker gets a session of its own (it outlives the shell or job that started
  # it, e.g. an interrupted `npm test`) and the recorded pid is the JVM's, so `down` reaches it.
  (exec setsid java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2.properties" \
     -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$props" >>"$RUN/kafka.log" 2>&1 </dev/null) &
  echo $! >"$RUN/kafka.pid"
  for _ in $(seq 1 $((READY_TIMEOUT_S * 2))); do
    if kafka_ready; then kafka_works; log "Kafka is up and accepts work"; return 0; fi
    pid_alive "$RUN/kafka.pid" || die "Kafka exited during start-up: $(tail -n 20 "$RUN/kafka.log")"
    sleep 0.5
  done
  die "Kafka did not report 'Kafka Server started' within $READY_TIMEOUT_S s (log: $RUN/kafka.log)"
}

kafka_status() {
  if [ "$KAFKA_NODES" -gt 1 ]; then kafka_cluster_status; return; fi
  if kafka_ready || port_open $KAFKA_PORT; then echo "kafka     up    127.0.0.1:$KAFKA_PORT"
  else echo "kafka     down  127.0.0.1:$KAFKA_PORT"; return 1; fi
}

# ---------------------------------------------------------------- Kafka, several nodes
# `up --brokers N` (or SYNCLINE_KAFKA_NODES=N), N >= 2: N KRaft nodes, each broker and controller
# (a voter of the quorum), node i on 127.0.0.1:KAFKA_PORT+2(i-1) with its controller on the port
# after it: 9092/9093, 9094/9095, 9096/9097 by default. Internal topics and the default for new
# topics: replication factor min(N, 3), min.insync.replicas 2 (1 with two nodes). State per node:
# $RUN/kafka-<i>.properties, .pid, .log, kafka-data-<i>. `up` starts the nodes that are not running
# (after `kill kafka-<i>`, the node comes back and catches up from the others).
kafka_node_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
kafka_node_ready() {
  pid_alive "$RUN/kafka-$1.pid" && grep -q "Kafka Server started" "$RUN/kafka-$1.log" 2>/dev/null && port_open "$(kafka_node_port "$1")"
}
kafka_bootstrap() { local i out=; for i in $(seq 1 "$KAFKA_NODES"); do out="$out${out:+,}127.0.0.1:$(kafka_node_port "$i")"; done; echo "$out"; }

kafka_node_start() {
  local i="$1" port ctrl voters= j rf isr
  port="$(kafka_node_port "$i")"; ctrl=$((port + 1))
  for j in $(seq 1 "$KAFKA_NODES"); do voters="$voters${voters:+,}$j@127.0.0.1:$(( $(kafka_node_port "$j") + 1 ))"; done
  rf=$(( KAFKA_NODES < 3 ? KAFKA_NODES : 3 )); isr=$(( KAFKA_NODES < 3 ? 1 : 2 ))
  mkdir -p "$RUN/kafka-data-$i"
  local props="$RUN/kafka-$i.properties"
  cat >"$props" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$RUN/kafka-data-$i
num.partitions=3
num.network.threads=2
num.io.threads=2
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
unclean.leader.election.enable=false
log.cleaner.dedupe.buffer.size=2097152
log.retention.hours=2160
log.segment.bytes=67108864
PROPS
  if [ ! -f "$RUN/kafka-data-$i/meta.properties" ]; then
    [ -f "$RUN/kafka-cluster.id" ] || kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$RUN/kafka-cluster.id"
    kafka_java kafka.tools.StorageTool format -t "$(cat "$RUN/kafka-cluster.id")" -c "$props" --ignore-formatted >"$RUN/kafka-format-$i.log" 2>&1 \
      || die "kafka storage format of node $i failed: $(tail -n 5 "$RUN/kafka-format-$i.log")"
  fi
  log "starting Kafka node $i of $KAFKA_NODES on 127.0.0.1:$port"
  : >"$RUN/kafka-$i.log"
  (exec setsid java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2.properties" \
     -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$props" >>"$RUN/kafka-$i.log" 2>&1 </dev/null) &
  echo $! >"$RUN/kafka-$i.pid"
}

kafka_cluster_up() {
  [ "$STACK_TLS" = 1 ] && die "--brokers $KAFKA_NODES: several Kafka nodes with SYNCLINE_STACK_TLS=1 are not supported"
  kafka_fetch
  local i started=
  for i in $(seq 1 "$KAFKA_NODES"); do
    kafka_node_ready "$i" && continue
    port_open "$(kafka_node_port "$i")" && ! pid_alive "$RUN/kafka-$i.pid" && die "port $(kafka_node_port "$i") (Kafka node $i) is taken by another process"
    kafka_node_start "$i"; started="$started $i"
  done
  # The quorum needs a majority of the voters: the nodes start side by side, then are waited for.
  for _ in $(seq 1 $((READY_TIMEOUT_S * 2))); do
    local all=1
    for i in $started; do
      kafka_node_ready "$i" || all=0
      pid_alive "$RUN/kafka-$i.pid" || die "Kafka node $i exited during start-up: $(tail -n 20 "$RUN/kafka-$i.log")"
    done
    if [ $all = 1 ]; then
      kafka_works_at "$(kafka_bootstrap)"
      [ -n "$started" ] && log "Kafka nodes$started are up; the cluster of $KAFKA_NODES accepts work"
      return 0
    fi
    sleep 0.5
  done
  die "Kafka nodes$started did not report 'Kafka Server started' within $READY_TIMEOUT_S s (logs: $RUN/kafka-<i>.log)"
}

kafka_works_at() {
  node "$ROOT/scripts/stack-probe.mjs" "$1" "$((READY_TIMEOUT_S * 1000))" \
    || die "Kafka at $1 is up but does not accept work (logs: $RUN/kafka-*.log)"
}

kafka_cluster_status() {
  local i rc=0
  for i in $(seq 1 "$KAFKA_NODES"); do
    if kafka_node_ready "$i"; then echo "kafka-$i   up    127.0.0.1:$(kafka_node_port "$i")"
    else echo "kafka-$i   down  127.0.0.1:$(kafka_node_port "$i")"; rc=1; fi
  done
  return $rc
}

# ---------------------------------------------------------------- Apicurio Registry
registry_url() { if [ "$STACK_TLS" = 1 ]; then echo "https://127.0.0.1:$REGISTRY_PORT"; else echo "http://127.0.0.1:$REGISTRY_PORT"; fi; }
# curl trusting this stack's CA with TLS.
rcurl() { if [ "$STACK_TLS" = 1 ]; then curl --cacert "$TLS_DIR/ca.crt" "$@"; else curl "$@"; fi; }
registry_ready() { rcurl -fsS -o /dev/null --max-time 2 "$(registry_url)/health/ready" 2>/dev/null && registry_works; }
# A real request on the Confluent-compatible API syncline uses: register a schema, read it back by id.
registry_works() {
  local api id
  api="$(registry_url)/apis/ccompat/v7"
  id="$(rcurl -fsS --max-time 5 -X POST -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
        --data '{"schema":"\"string\""}' "$api/subjects/syncline-stack-probe-value/versions" 2>/dev/null \
        | sed -nE 's/.*"id"[[:space:]]*:[[:space:]]*([0-9]+).*/\1/p')"
  [ -n "$id" ] && rcurl -fsS --max-time 5 "$api/schemas/ids/$id" 2>/dev/null | grep -q '"schema"'
}

registry_fetch() {
  local home
  for v in $APICURIO_VERSIONS; do
    home="$CACHE/apicurio-$v"
    if [ -f "$home/.complete" ]; then echo "$home"; return 0; fi
  done
  for v in $APICURIO_VERSIONS; do
    home="$CACHE/apicurio-$v"
    log "fetching Apicurio Registry $v from Maven Central (once, ~160 MB)"
    rm -rf "$home"; mkdir -p "$home"
    if (cd "$CACHE" && mvn_q "$DEP_PLUGIN:copy" -Dartifact="io.apicurio:apicurio-registry-app:$v:tar.gz:all" \
          -DoutputDirectory="$home" -Dmdep.stripVersion=false) ; then
      tar -xzf "$home"/*.tar.gz -C "$home" && rm -f "$home"/*.tar.gz
      # 2.x ships <name>-runner.jar with lib/; 3.x ships quarkus-app/quarkus-run.jar.
      local jar; jar="$(find "$home" -name '*-runner.jar' -o -name 'quarkus-run.jar' | head -n 1)"
      [ -n "$jar" ] || { log "no runnable jar in Apicurio $v"; continue; }
      echo "$jar" >"$home/registry.jar.path"
      touch "$home/.complete"; echo "$home"; return 0
    fi
    log "Apicurio $v not available, trying the next version"
  done
  die "could not fetch Apicurio Registry ($APICURIO_VERSIONS) from Maven Central"
}

registry_up() {
  if registry_ready; then return 0; fi
  local home; home="$(registry_fetch)"
  mkdir -p "$RUN"
  log "starting Apicurio Registry on $(registry_url)"
  : >"$RUN/registry.log"
  local http=(-Dquarkus.http.port=$REGISTRY_PORT)
  if [ "$STACK_TLS" = 1 ]; then
    # HTTPS only: the plain port on one nobody uses (0: any), plaintext requests refused.
    http=(-Dquarkus.http.port=0 -Dquarkus.http.ssl-port=$REGISTRY_PORT -Dquarkus.http.insecure-requests=disabled
          -Dquarkus.http.ssl.certificate.files="$TLS_DIR/server.crt" -Dquarkus.http.ssl.certificate.key-files="$TLS_DIR/server.key")
  fi
  (exec setsid java -Xms128m -Xmx512m -Dquarkus.http.host=127.0.0.1 "${http[@]}" \
     -jar "$(cat "$home/registry.jar.path")" >>"$RUN/registry.log" 2>&1 </dev/null) &
  echo $! >"$RUN/registry.pid"
  for _ in $(seq 1 $((READY_TIMEOUT_S * 2))); do
    registry_ready && { log "registry is up and registers schemas"; return 0; }
    pid_alive "$RUN/registry.pid" || die "registry exited during start-up: $(tail -n 20 "$RUN/registry.log")"
    sleep 0.5
  done
  die "registry not ready within $READY_TIMEOUT_S s (log: $RUN/registry.log)"
}

registry_status() {
  if registry_ready; then echo "registry  up    $(registry_url)/apis/ccompat/v7"
  else echo "registry  down  $(registry_url)"; return 1; fi
}

stop_pid() {
  local name="$1" file="$RUN/$1.pid"
  pid_alive "$file" || { rm -f "$file"; return 0; }
  local pid; pid="$(cat "$file")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$file"
}

cmd="${1:-status}"
[ $# -gt 0 ] && shift
services=()
while [ $# -gt 0 ]; do
  case "$1" in
    --brokers) [ $# -ge 2 ] || die "--brokers needs a number"; KAFKA_NODES="$2"; shift 2 ;;
    --brokers=*) KAFKA_NODES="${1#--brokers=}"; shift ;;
    *) services+=("$1"); shift ;;
  esac
done
case "$KAFKA_NODES" in ''|*[!0-9]*|0) die "--brokers: expected a number of Kafka nodes (1 or more), got '$KAFKA_NODES'" ;; esac
# A run dir whose cluster has several nodes is seen as such by status and down without --brokers.
if [ "$KAFKA_NODES" = 1 ] && [ -f "$RUN/kafka-nodes" ]; then KAFKA_NODES="$(cat "$RUN/kafka-nodes")"; fi
[ ${#services[@]} -gt 0 ] || [ "$cmd" = kill ] || services=(postgres redis kafka registry mariadb)
wants() { local x; for x in "${services[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
mkdir -p "$CACHE" "$RUN"
case "$cmd" in
  up)
    for x in "${services[@]}"; do case "$x" in postgres|redis|kafka|registry|mariadb) ;; *) die "unknown service $x (postgres redis kafka registry mariadb)" ;; esac; done
    tls_make
    if wants postgres; then pg_up; fi
    if wants mariadb; then maria_up; fi
    if wants redis; then redis_up; fi
    # Kafka and the registry are independent JVMs: start them side by side.
    kst=0; rst=0; kpid=; rpid=
    if wants kafka && [ "$KAFKA_NODES" -gt 1 ]; then
      if pid_alive "$RUN/kafka.pid" || port_open $KAFKA_PORT && [ ! -f "$RUN/kafka-nodes" ]; then die "a single Kafka node runs on 127.0.0.1:$KAFKA_PORT: stop it first ($0 down) to start $KAFKA_NODES nodes"; fi
      echo "$KAFKA_NODES" >"$RUN/kafka-nodes"
      kafka_cluster_up & kpid=$!
    elif wants kafka; then
      [ -f "$RUN/kafka-nodes" ] && die "this run dir holds a Kafka cluster of $(cat "$RUN/kafka-nodes") nodes: up --brokers $(cat "$RUN/kafka-nodes"), or down first"
      kafka_up & kpid=$!
    fi
    if wants registry; then registry_up & rpid=$!; fi
    if [ -n "$kpid" ]; then wait "$kpid" || kst=$?; fi
    if [ -n "$rpid" ]; then wait "$rpid" || rst=$?; fi
    [ $kst -eq 0 ] && [ $rst -eq 0 ] || die "stack did not come up (kafka=$kst registry=$rst)"
    if wants postgres; then pg_status; fi
    if wants redis; then redis_status; fi
    if wants kafka; then kafka_status; fi
    if wants registry; then registry_status; fi
    if wants mariadb; then maria_status; fi
    ;;
  down)
    stop_pid registry; stop_pid kafka
    for f in "$RUN"/kafka-[0-9]*.pid; do [ -e "$f" ] && stop_pid "$(basename "$f" .pid)"; done
    rm -f "$RUN/kafka-nodes"
    redis_down; pg_down; maria_private_down ;;
  # kill -9 of one node of a multi-node Kafka (fault injection); `up --brokers N` starts it again.
  kill)
    [ ${#services[@]} -eq 1 ] && [[ "${services[0]}" =~ ^kafka-[0-9]+$ ]] || die "usage: $0 kill kafka-<i>"
    f="$RUN/${services[0]}.pid"
    pid_alive "$f" || die "${services[0]} is not running (no live pid in $f)"
    kill -KILL "$(cat "$f")"; log "killed ${services[0]} (pid $(cat "$f"), SIGKILL)" ;;
  status)
    rc=0
    pg_status || rc=1; redis_status || rc=1; kafka_status || rc=1; registry_status || rc=1; maria_status || rc=1
    exit $rc
    ;;
  fetch) kafka_fetch; registry_fetch >/dev/null ;;
  *) die "usage: $0 up [--brokers N] [postgres|redis|kafka|registry|mariadb]... | down | status | kill kafka-<i> | fetch" ;;
esac
