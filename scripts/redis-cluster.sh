#!/usr/bin/env bash
# A local Redis Cluster for syncline's version state: 3 masters + 3 replicas from the installed
# redis-server (no Docker), data under /tmp, nothing persisted (--save '' --appendonly no).
#
#   bash scripts/redis-cluster.sh up   [--port-base N] [--node-timeout MS]   # ports N..N+5 (default 7101)
#   bash scripts/redis-cluster.sh down [--port-base N]
#   bash scripts/redis-cluster.sh status [--port-base N]
#
# Ports stay clear of the shared Redis on 6379. Then point syncline at it:
#   redis: { cluster: { nodes: ['127.0.0.1:7101', '127.0.0.1:7102', '127.0.0.1:7103'] } }
# Extra redis-server options (e.g. --requirepass / --masterauth, TLS) go in $REDIS_CLUSTER_ARGS.
set -euo pipefail

cmd="${1:-}"; shift || true
base=7101
timeout=3000
while [ $# -gt 0 ]; do
  case "$1" in
    --port-base) base="$2"; shift 2 ;;
    --node-timeout) timeout="$2"; shift 2 ;;
    *) echo "redis-cluster.sh: unknown option '$1' (expected --port-base N or --node-timeout MS)" >&2; exit 2 ;;
  esac
done
case "$base" in ''|*[!0-9]*) echo "redis-cluster.sh: --port-base must be a number (got '$base')" >&2; exit 2 ;; esac
if [ "$base" -lt 1024 ] || [ "$base" -gt 55000 ]; then echo "redis-cluster.sh: --port-base $base is out of 1024..55000" >&2; exit 2; fi
ports=$(seq "$base" $((base + 5)))
dir="/tmp/syncline-redis-cluster-$base"
extra=${REDIS_CLUSTER_ARGS:-}
cli() { local p="$1"; shift; redis-cli -p "$p" ${REDISCLI_AUTH:+--no-auth-warning} "$@"; }

case "$cmd" in
  up)
    for p in $ports; do
      if [ "$p" = 6379 ]; then echo "redis-cluster.sh: port 6379 is the shared Redis; choose another --port-base" >&2; exit 2; fi
      if cli "$p" ping >/dev/null 2>&1; then echo "redis-cluster.sh: something already answers on port $p (a cluster already up? run: $0 down --port-base $base)" >&2; exit 1; fi
    done
    rm -rf "$dir"; mkdir -p "$dir"
    for p in $ports; do
      mkdir -p "$dir/$p"
      # shellcheck disable=SC2086
      redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/$p" --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout "$timeout" --save '' --appendonly no --daemonize yes --pidfile "$dir/$p/redis.pid" \
        --logfile "$dir/$p/redis.log" $extra
    done
    for p in $ports; do
      up=0
      for _ in $(seq 300); do cli "$p" ping >/dev/null 2>&1 && { up=1; break; }; sleep 0.1; done
      [ "$up" = 1 ] || { echo "redis-cluster.sh: redis-server on port $p did not answer within 30 s; its log ($dir/$p/redis.log):" >&2; tail -5 "$dir/$p/redis.log" >&2 || true; exit 1; }
    done
    nodes=""; for p in $ports; do nodes="$nodes 127.0.0.1:$p"; done
    # shellcheck disable=SC2086
    cli "$base" --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 || { cat "$dir/create.log" >&2; exit 1; }
    for _ in $(seq 300); do
      ok=1
      for p in $ports; do cli "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || ok=0; done
      [ "$ok" = 1 ] && break; sleep 0.1
    done
    [ "$ok" = 1 ] || { echo "redis-cluster.sh: the cluster did not reach cluster_state:ok (logs: $dir/*/redis.log)" >&2; exit 1; }
    echo "Redis Cluster up: masters+replicas on 127.0.0.1:$base..$((base + 5)) (data $dir)"
    ;;
  down)
    for p in $ports; do
      if [ -f "$dir/$p/redis.pid" ]; then
        pid=$(cat "$dir/$p/redis.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
      fi
    done
    rm -rf "$dir"
    echo "Redis Cluster on ports $base..$((base + 5)) stopped"
    ;;
  status)
    cli "$base" cluster info | grep -E 'cluster_state|cluster_known_nodes|cluster_size'
    cli "$base" cluster nodes
    ;;
  *) echo "usage: $0 up|down|status [--port-base N] [--node-timeout MS]" >&2; exit 2 ;;
esac
