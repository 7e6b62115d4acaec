#!/usr/bin/env bash
# A single-node Apache Kafka broker in KRaft mode, from Maven Central jars, no Docker.
#   scripts/kafka.sh start|stop|status|wait
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1), KAFKA_AUTO_CREATE_TOPICS (true),
#              KAFKA_HOME_DIR (.kafka in the repository), KAFKA_HEAP (512m).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
home=${KAFKA_HOME_DIR:-$repo/.kafka}
lib=$home/lib
data=$home/data-$port
pidfile=$home/kafka-$port.pid
logfile=$home/kafka-$port.log
config=$home/server-$port.properties

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

resolve_jars() {
  [ -f "$lib/.complete" ] && return 0
  echo "kafka: resolving broker jars from Maven Central (cached in ~/.m2)"
  rm -rf "$lib" && mkdir -p "$lib"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$lib" -DincludeScope=runtime
  touch "$lib/.complete"
}

write_config() {
  cat >"$config" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=3
auto.create.topics.enable=${KAFKA_AUTO_CREATE_TOPICS:-true}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPS
}

wait_ready() {
  local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT_S:-90}))
  until port_open && grep -q "Kafka Server started" "$logfile" 2>/dev/null; do
    if ! running; then
      echo "kafka: broker exited during start-up; last lines of $logfile:" >&2
      tail -n 30 "$logfile" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "kafka: broker did not answer on 127.0.0.1:$port in time" >&2
      return 1
    fi
    sleep 0.5
  done
}

start() {
  if running && port_open; then
    echo "kafka: already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
    return 0
  fi
  if port_open; then
    echo "kafka: something else already listens on 127.0.0.1:$port; using it"
    return 0
  fi
  command -v java >/dev/null || { echo "kafka: java is required" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "kafka: mvn is required" >&2; exit 1; }
  mkdir -p "$home"
  resolve_jars
  write_config
  if [ ! -f "$data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -Dlog4j.configuration="file:$here/kafka/log4j.properties" -cp "$lib/*" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$config" >/dev/null
  fi
  : >"$logfile"
  nohup java "-Xmx${KAFKA_HEAP:-512m}" -XX:+UseSerialGC \
    -Dlog4j.configuration="file:$here/kafka/log4j.properties" \
    -cp "$lib/*" kafka.Kafka "$config" >>"$logfile" 2>&1 &
  echo $! >"$pidfile"
  wait_ready
  echo "kafka: running on 127.0.0.1:$port (pid $(cat "$pidfile"), data in $data)"
}

stop() {
  if ! running; then
    echo "kafka: not running"
    rm -f "$pidfile"
    return 0
  fi
  local pid
  pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "kafka: stopped"
}

status() {
  if running && port_open; then
    echo "kafka: running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
  elif port_open; then
    echo "kafka: 127.0.0.1:$port answers (not started by this script)"
  else
    echo "kafka: not running"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  wait) wait_ready ;;
  *) echo "usage: $0 start|stop|status|wait" >&2; exit 2 ;;
esac
