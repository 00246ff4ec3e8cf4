#!/usr/bin/env bash
# A local Redis master with a replica, watched by three sentinels, for syncline's version state
# (redis.sentinel): from the installed redis-server (`redis-server FILE --sentinel`), no Docker, data
# under /tmp, nothing persisted (--save '' --appendonly no).
#
#   bash scripts/redis-sentinel.sh up   [--port-base N] [--down-after MS]   # master N, replica N+1, sentinels N+2..N+4 (default 7201)
#   bash scripts/redis-sentinel.sh down [--port-base N]
#   bash scripts/redis-sentinel.sh master [--port-base N]                   # host:port of the master the sentinels name now
#   bash scripts/redis-sentinel.sh revive [--port-base N]                   # start a server that is down again, as a replica of that master
#
# The master name is `mymaster`. Then point syncline at it:
#   redis: { sentinel: { nodes: ['127.0.0.1:7203', '127.0.0.1:7204', '127.0.0.1:7205'], name: mymaster } }
set -euo pipefail

cmd="${1:-}"; shift || true
base=7201
down_after=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --port-base) base="$2"; shift 2 ;;
    --down-after) down_after="$2"; shift 2 ;;
    *) echo "redis-sentinel.sh: unknown option '$1' (expected --port-base N or --down-after MS)" >&2; exit 2 ;;
  esac
done
case "$base" in ''|*[!0-9]*) echo "redis-sentinel.sh: --port-base must be a number (got '$base')" >&2; exit 2 ;; esac
if [ "$base" -lt 1024 ] || [ "$base" -gt 60000 ]; then echo "redis-sentinel.sh: --port-base $base is out of 1024..60000" >&2; exit 2; fi
dir="/tmp/syncline-redis-sentinel-$base"
servers="$base $((base + 1))"
sentinels="$((base + 2)) $((base + 3)) $((base + 4))"
cli() { local p="$1"; shift; redis-cli -p "$p" "$@"; }
wait_ping() {
  for _ in $(seq 300); do cli "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis-sentinel.sh: nothing answers on port $1 within 30 s; its log ($2):" >&2; tail -5 "$2" >&2 || true; exit 1
}

# host:port of the master the first sentinel that answers names.
master_addr() {
  local p m
  for p in $sentinels; do
    m="$(cli "$p" sentinel get-master-addr-by-name mymaster 2>/dev/null | tr '\n' ':' | sed 's/:$//')" && [ -n "$m" ] && { echo "$m"; return 0; }
  done
  echo "redis-sentinel.sh: no sentinel answered" >&2; return 1
}

case "$cmd" in
  up)
    for p in $servers $sentinels; do
      if [ "$p" = 6379 ]; then echo "redis-sentinel.sh: port 6379 is the shared Redis; choose another --port-base" >&2; exit 2; fi
      if cli "$p" ping >/dev/null 2>&1; then echo "redis-sentinel.sh: something already answers on port $p (run: $0 down --port-base $base)" >&2; exit 1; fi
    done
    rm -rf "$dir"; mkdir -p "$dir"
    for p in $servers; do
      mkdir -p "$dir/$p"
      replica=(); [ "$p" != "$base" ] && replica=(--replicaof 127.0.0.1 "$base")
      redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/$p" --save '' --appendonly no --daemonize yes \
        --pidfile "$dir/$p/redis.pid" --logfile "$dir/$p/redis.log" "${replica[@]}"
      wait_ping "$p" "$dir/$p/redis.log"
    done
    for p in $sentinels; do
      mkdir -p "$dir/$p"
      cat >"$dir/$p/sentinel.conf" <<CONF
port $p
bind 127.0.0.1
dir $dir/$p
daemonize yes
pidfile $dir/$p/sentinel.pid
logfile $dir/$p/sentinel.log
sentinel monitor mymaster 127.0.0.1 $base 2
sentinel down-after-milliseconds mymaster $down_after
sentinel failover-timeout mymaster 10000
sentinel parallel-syncs mymaster 1
CONF
      redis-server "$dir/$p/sentinel.conf" --sentinel
      wait_ping "$p" "$dir/$p/sentinel.log"
    done
    # Ready when every sentinel knows the replica and the other sentinels.
    for _ in $(seq 300); do
      ok=1
      for p in $sentinels; do
        info="$(cli "$p" sentinel master mymaster 2>/dev/null | tr '\n' ' ')"
        echo "$info" | grep -qE 'num-slaves 1( |$)' || ok=0
        echo "$info" | grep -qE 'num-other-sentinels 2( |$)' || ok=0
      done
      [ "$ok" = 1 ] && break; sleep 0.1
    done
    [ "$ok" = 1 ] || { echo "redis-sentinel.sh: the sentinels did not all see the replica and each other within 30 s (logs: $dir/*/sentinel.log)" >&2; exit 1; }
    echo "Redis Sentinel up: master 127.0.0.1:$base, replica 127.0.0.1:$((base + 1)), sentinels 127.0.0.1:$((base + 2))..$((base + 4)) (name mymaster, data $dir)"
    ;;
  down)
    for f in "$dir"/*/sentinel.pid "$dir"/*/redis.pid; do
      [ -f "$f" ] || continue
      pid=$(cat "$f")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
    echo "Redis Sentinel on ports $base..$((base + 4)) stopped"
    ;;
  master) master_addr ;;
  revive)
    # A server killed (its data gone: nothing is persisted) comes back as a replica of the master the
    # sentinels name now, never as an empty master.
    m="$(master_addr)"
    for p in $servers; do
      cli "$p" ping >/dev/null 2>&1 && continue
      [ "127.0.0.1:$p" = "$m" ] && { echo "redis-sentinel.sh: the master $m does not answer; not reviving it" >&2; exit 1; }
      redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/$p" --save '' --appendonly no --daemonize yes \
        --pidfile "$dir/$p/redis.pid" --logfile "$dir/$p/redis.log" --replicaof "${m%%:*}" "${m##*:}"
      wait_ping "$p" "$dir/$p/redis.log"
      echo "revived 127.0.0.1:$p as a replica of $m"
    done
    ;;
  *) echo "usage: $0 up|down|master|revive [--port-base N] [--down-after MS]" >&2; exit 2 ;;
esac
