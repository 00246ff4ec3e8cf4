#!/usr/bin/env bash
# Private services for the fault-injection suite (`npm run chaos`, test/chaos.int.test.ts), so that
# restarting them hurts nobody else: a source and a target PostgreSQL cluster, a Redis, a Kafka
# broker and an Apicurio registry of their own (jars from the cache `scripts/stack.sh fetch` fills).
#
#   scripts/chaos-stack.sh up   DIR           create (initdb, storage format) and start everything under DIR
#   scripts/chaos-stack.sh start|stop|kill SERVICE DIR     SERVICE: pg-src | pg-dst | redis | kafka | registry
#   scripts/chaos-stack.sh down DIR           stop everything and remove DIR
#
# Ports: pg-src 15432, pg-dst 15433, redis 16379, kafka 19092 (controller 19093), registry 18081;
# override with CHAOS_PG_SRC_PORT, CHAOS_PG_DST_PORT, CHAOS_REDIS_PORT, CHAOS_KAFKA_PORT, CHAOS_REGISTRY_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${SYNCLINE_CACHE:-$HOME/.cache/syncline}"
KAFKA_HOME="$CACHE/kafka-${SYNCLINE_KAFKA_VERSION:-4.1.1}"
PG_SRC_PORT="${CHAOS_PG_SRC_PORT:-15432}"
PG_DST_PORT="${CHAOS_PG_DST_PORT:-15433}"
REDIS_PORT="${CHAOS_REDIS_PORT:-16379}"
KAFKA_PORT="${CHAOS_KAFKA_PORT:-19092}"
KAFKA_CTRL_PORT=$((KAFKA_PORT + 1))
REGISTRY_PORT="${CHAOS_REGISTRY_PORT:-18081}"
PG_BIN="/usr/lib/postgresql/$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)/bin"

log() { printf '[chaos-stack] %s\n' "$*" >&2; }
die() { printf '[chaos-stack] error: %s\n' "$*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
wait_port() { for _ in $(seq 1 "${3:-120}"); do port_open "$1" && return 0; sleep 0.25; done; die "$2 did not open port $1"; }

pg_port() { [ "$1" = pg-src ] && echo "$PG_SRC_PORT" || echo "$PG_DST_PORT"; }

pg_init() {
  local name="$1" dir="$2/$1" port; port="$(pg_port "$1")"
  [ -f "$dir/PG_VERSION" ] && return 0
  mkdir -p "$dir"; chown postgres:postgres "$dir" 2>/dev/null || true; chmod 700 "$dir"
  as_pg "$PG_BIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$2/$name-initdb.log" 2>&1 \
    || as_pg "$PG_BIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >"$2/$name-initdb.log" 2>&1 \
    || die "initdb $name failed: $(tail -n 5 "$2/$name-initdb.log")"
  cat >>"$dir/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_connections = 100
shared_buffers = 64MB
fsync = on
timezone = 'UTC'
log_min_messages = warning
CONF
}

pg_start() {
  local dir="$2/$1" port; port="$(pg_port "$1")"
  port_open "$port" && return 0
  as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$2/$1/server.log" -w -t 60 start >/dev/null || die "$1 did not start: $(tail -n 5 "$2/$1/server.log")"
}

pg_stop() { as_pg "$PG_BIN/pg_ctl" -D "$2/$1" -m fast -w -t 60 stop >/dev/null 2>&1 || true; }
pg_kill() { as_pg "$PG_BIN/pg_ctl" -D "$2/$1" -m immediate -w -t 60 stop >/dev/null 2>&1 || true; }

redis_start() {
  [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$1" --pidfile "$1/redis.pid" --logfile "$1/redis.log" >/dev/null
  for _ in $(seq 1 40); do [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0; sleep 0.25; done
  die "redis did not start"
}
redis_stop() { redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; for _ in $(seq 1 40); do port_open "$REDIS_PORT" || return 0; sleep 0.25; done; }
redis_kill() { [ -f "$1/redis.pid" ] && kill -9 "$(cat "$1/redis.pid")" 2>/dev/null || true; for _ in $(seq 1 40); do port_open "$REDIS_PORT" || return 0; sleep 0.25; done; }

kafka_java() { java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
  -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2.properties" -cp "$KAFKA_HOME/libs/*" "$@"; }

kafka_init() {
  [ -f "$KAFKA_HOME/.complete" ] || bash scripts/stack.sh fetch
  mkdir -p "$1/kafka-data"
  cat >"$1/kafka.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$1/kafka-data
num.partitions=3
num.network.threads=2
num.io.threads=2
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.dedupe.buffer.size=2097152
PROPS
  if [ ! -f "$1/kafka-data/meta.properties" ]; then
    local cid; cid="$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    kafka_java kafka.tools.StorageTool format -t "$cid" -c "$1/kafka.properties" --ignore-formatted >"$1/kafka-format.log" 2>&1 \
      || die "kafka storage format failed: $(tail -n 5 "$1/kafka-format.log")"
  fi
}

kafka_start() {
  port_open "$KAFKA_PORT" && return 0
  : >"$1/kafka.log"
  # exec: the recorded pid is the JVM's own, so stop/kill reach the broker.
  (exec java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2.properties" \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$1/kafka.properties" >>"$1/kafka.log" 2>&1) &
  echo $! >"$1/kafka.pid"
  for _ in $(seq 1 240); do
    grep -q "Kafka Server started" "$1/kafka.log" 2>/dev/null && port_open "$KAFKA_PORT" && return 0
    kill -0 "$(cat "$1/kafka.pid")" 2>/dev/null || die "kafka exited: $(tail -n 20 "$1/kafka.log")"
    sleep 0.5
  done
  die "kafka did not start within 120 s"
}
kafka_stop() {
  [ -f "$1/kafka.pid" ] || return 0
  local pid; pid="$(cat "$1/kafka.pid")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do port_open "$KAFKA_PORT" || return 0; sleep 0.25; done
}
kafka_kill() { [ -f "$1/kafka.pid" ] && kill -KILL "$(cat "$1/kafka.pid")" 2>/dev/null || true; for _ in $(seq 1 40); do port_open "$KAFKA_PORT" || return 0; sleep 0.25; done; }

registry_start() {
  local jar; jar="$(cat "$CACHE"/apicurio-*/registry.jar.path 2>/dev/null | head -n 1)"
  [ -n "$jar" ] && [ -f "$jar" ] || { bash scripts/stack.sh fetch; jar="$(cat "$CACHE"/apicurio-*/registry.jar.path | head -n 1)"; }
  curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$REGISTRY_PORT/health/ready" 2>/dev/null && return 0
  : >"$1/registry.log"
  (exec java -Xms128m -Xmx384m -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" -jar "$jar" >>"$1/registry.log" 2>&1) &
  echo $! >"$1/registry.pid"
  for _ in $(seq 1 240); do
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$REGISTRY_PORT/health/ready" 2>/dev/null && return 0
    kill -0 "$(cat "$1/registry.pid")" 2>/dev/null || die "registry exited: $(tail -n 20 "$1/registry.log")"
    sleep 0.5
  done
  die "registry did not start within 120 s"
}
registry_stop() { [ -f "$1/registry.pid" ] && kill -TERM "$(cat "$1/registry.pid")" 2>/dev/null || true; for _ in $(seq 1 60); do port_open "$REGISTRY_PORT" || return 0; sleep 0.5; done; registry_kill "$1"; }
registry_kill() { [ -f "$1/registry.pid" ] && kill -KILL "$(cat "$1/registry.pid")" 2>/dev/null || true; for _ in $(seq 1 40); do port_open "$REGISTRY_PORT" || return 0; sleep 0.25; done; }

cmd="${1:-}"
case "$cmd" in
  up)
    dir="${2:?usage: up DIR}"; mkdir -p "$dir"; chmod 755 "$dir"
    pg_init pg-src "$dir"; pg_init pg-dst "$dir"; kafka_init "$dir"
    pg_start pg-src "$dir"; pg_start pg-dst "$dir"; redis_start "$dir"
    registry_start "$dir" & rp=$!
    kafka_start "$dir"
    wait $rp || die "registry did not start"
    log "up: pg-src :$PG_SRC_PORT pg-dst :$PG_DST_PORT redis :$REDIS_PORT kafka :$KAFKA_PORT registry :$REGISTRY_PORT ($dir)"
    ;;
  start|stop|kill)
    svc="${2:?service}"; dir="${3:?dir}"
    case "$svc" in
      pg-src|pg-dst) "pg_$cmd" "$svc" "$dir" ;;
      redis) "redis_$cmd" "$dir" ;;
      kafka) "kafka_$cmd" "$dir" ;;
      registry) "registry_$cmd" "$dir" ;;
      *) die "unknown service $svc" ;;
    esac
    ;;
  down)
    dir="${2:?usage: down DIR}"
    registry_stop "$dir"; kafka_stop "$dir"; redis_stop "$dir"; pg_stop pg-src "$dir"; pg_stop pg-dst "$dir"
    rm -rf "$dir"
    ;;
  *) die "usage: $0 up DIR | start|stop|kill SERVICE DIR | down DIR" ;;
esac
