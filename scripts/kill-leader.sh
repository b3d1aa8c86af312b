#!/usr/bin/env bash
# kill -9 the leader of a partition of the local cluster started by
# scripts/cluster.sh, then report the new leader and how long it took until
# it accepts writes (a Raft barrier committed by the new leader's quorum).
# Usage: scripts/kill-leader.sh TOPIC [PARTITION]
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${SLUICE_BIN:-bin/sluice}
DATA=${SLUICE_DATA:-./data}
TOPIC=${1:?usage: $0 TOPIC [PARTITION]}
PARTITION=${2:-0}
OFF=${SLUICE_PORT_OFFSET:-0}
SERVERS=127.0.0.1:$((7071+OFF)),127.0.0.1:$((7072+OFF)),127.0.0.1:$((7073+OFF))

leader=$("$BIN" topic leader "$TOPIC" --partition "$PARTITION" --server "$SERVERS")
if [[ -z $leader ]]; then
  echo "partition $TOPIC/$PARTITION has no leader right now" >&2
  exit 1
fi
pf="$DATA/$leader.pid"
[[ -f $pf ]] || { echo "no pid file $pf for leader $leader" >&2; exit 1; }
pid=$(cat "$pf")
echo "leader of $TOPIC/$PARTITION is $leader (pid $pid): kill -9"
kill -9 "$pid"
"$BIN" topic wait-leader "$TOPIC" --partition "$PARTITION" --not "$leader" --server "$SERVERS"
echo "restart it with: scripts/cluster.sh start"
