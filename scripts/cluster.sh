#!/usr/bin/env bash
# Start, stop or inspect a local 3-node Sluice cluster on 127.0.0.1.
#   node nN: client port 707N, gossip 794(5+N), HTTP 808N, Kafka 909(1+N), data $SLUICE_DATA/nN
#   SLUICE_PORT_OFFSET=K adds K to every port (several clusters on one machine)
#   SLUICE_NODES=N runs n1..nN (default 3); on a running cluster `start`
#   starts only the missing nodes, which join it (then `sluice cluster
#   rebalance` gives them replicas). The metadata group is bootstrapped by
#   the first min(N, 3) nodes; later ones join it. `stop` and `status` cover
#   every node with a pid file, whatever SLUICE_NODES says.
# Usage: scripts/cluster.sh start|stop|status|restart [--agent-config FILE [--agent-name NAME]]
#   --agent-config: every node also runs the agent NAME (default a1) of FILE
#   in-process (colocated); each node gets SLUICE_NODE=nN in its environment
#   for ${env:SLUICE_NODE} in the file.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${SLUICE_BIN:-bin/sluice}
DATA=${SLUICE_DATA:-./data}
NODES=${SLUICE_NODES:-3}
HOST=127.0.0.1
OFF=${SLUICE_PORT_OFFSET:-0}
AGENT_ARGS=()

rpc_port() { echo $((7070 + OFF + $1)); }
gossip_port() { echo $((7945 + OFF + $1)); }
http_port() { echo $((8080 + OFF + $1)); }
kafka_port() { echo $((9091 + OFF + $1)); }
pidfile() { echo "$DATA/n$1.pid"; }
BOOTSTRAP_EXPECT=$((NODES < 3 ? NODES : 3))
# known_nodes lists 1..NODES plus any node with a pid file (a 4th node
# started with SLUICE_NODES=4 is stopped by a plain `stop`).
known_nodes() {
  local ids=" "
  for i in $(seq 1 "$NODES"); do ids+="$i "; done
  for pf in "$DATA"/n*.pid; do
    [[ -e $pf ]] || continue
    local i=${pf##*/n}
    i=${i%.pid}
    [[ $i =~ ^[0-9]+$ && $ids != *" $i "* ]] && ids+="$i "
  done
  echo "$ids"
}
servers() {
  local s=""
  for i in $(seq 1 "$NODES"); do s+="${s:+,}$HOST:$(rpc_port "$i")"; done
  echo "$s"
}

running() {
  local pf
  pf=$(pidfile "$1")
  [[ -f $pf ]] && kill -0 "$(cat "$pf")" 2>/dev/null
}

start_node() {
  local i=$1
  if running "$i"; then
    echo "n$i already running (pid $(cat "$(pidfile "$i")"))"
    return
  fi
  mkdir -p "$DATA/n$i"
  local join=""
  for j in $(seq 1 "$NODES"); do
    [[ $j == "$i" ]] && continue
    join+="${join:+,}$HOST:$(gossip_port "$j")"
  done
  SLUICE_NODE="n$i" "$BIN" node --id "n$i" --data-dir "$DATA/n$i" "${AGENT_ARGS[@]}" \
    --addr "$HOST:$(rpc_port "$i")" --gossip-addr "$HOST:$(gossip_port "$i")" \
    --http-addr "$HOST:$(http_port "$i")" --kafka-addr "$HOST:$(kafka_port "$i")" --join "$join" --bootstrap-expect "$BOOTSTRAP_EXPECT" \
    >>"$DATA/n$i.log" 2>&1 &
  echo $! >"$(pidfile "$i")"
  echo "started n$i (pid $!, rpc $HOST:$(rpc_port "$i"), http $HOST:$(http_port "$i"), kafka $HOST:$(kafka_port "$i"), log $DATA/n$i.log)"
}

start() {
  [[ -x $BIN ]] || { echo "no $BIN: run 'make build' first" >&2; exit 1; }
  mkdir -p "$DATA"
  for i in $(seq 1 "$NODES"); do start_node "$i"; done
  echo "waiting for the cluster to accept writes"
  if ! "$BIN" cluster wait --nodes "$NODES" --timeout 60s --server "$(servers)"; then
    echo "not ready; see $DATA/n*.log" >&2
    exit 1
  fi
  "$BIN" cluster status --server "$(servers)"
}

stop() {
  for i in $(known_nodes); do
    local pf
    pf=$(pidfile "$i")
    if running "$i"; then
      kill -CONT "$(cat "$pf")" 2>/dev/null || true
      kill -TERM "$(cat "$pf")"
      for _ in $(seq 1 50); do running "$i" || break; sleep 0.1; done
      if running "$i"; then kill -9 "$(cat "$pf")" 2>/dev/null || true; fi
      echo "stopped n$i"
    fi
    rm -f "$pf"
  done
}

status() {
  for i in $(known_nodes); do
    if running "$i"; then echo "n$i running (pid $(cat "$(pidfile "$i")"), kafka $HOST:$(kafka_port "$i"))"; else echo "n$i not running"; fi
  done
  "$BIN" cluster status --server "$(servers)" || true
}

cmd=${1:-}
shift || true
while [[ $# -gt 0 ]]; do
  case $1 in
    --agent-config) AGENT_ARGS+=(--agent-config "$(realpath "$2")"); shift 2 ;;
    --agent-name) AGENT_ARGS+=(--agent-name "$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

case "$cmd" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
