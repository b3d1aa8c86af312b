#!/usr/bin/env bash
# The standard benchmark set (issue #12) against a fresh local 3-node
# cluster; every benchmark runs RUNS times and PERFORMANCE.md gets the
# medians, the exact commands and the machine. Long: never part of make test.
# Knobs (environment):
#   RUNS=3                  runs of each benchmark
#   CONSUME_BYTES=1073741824 size of the partition the consume benchmark reads
#   IDLE_PARTITIONS=1000    partitions of the idle benchmark
#   FAILOVER_ROUNDS=10      kills in the failover benchmark
#   PRODUCE_RECORDS=200000  records of each produce run (1 KiB); x10 for 100 B
#   LATENCY_RECORDS=5000    records of the sequential latency run
#   ONLY="1 2 ..."          run only these benchmarks (1..7)
#   OUT=PERFORMANCE.md      where the report goes
#   SLUICE_PORT_OFFSET, SLUICE_DATA: the cluster's ports and data (default
#   offset 600 and a temporary directory, so a `make cluster` is left alone)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
CONSUME_BYTES=${CONSUME_BYTES:-1073741824}
IDLE_PARTITIONS=${IDLE_PARTITIONS:-1000}
FAILOVER_ROUNDS=${FAILOVER_ROUNDS:-10}
PRODUCE_RECORDS=${PRODUCE_RECORDS:-200000}
LATENCY_RECORDS=${LATENCY_RECORDS:-5000}
ONLY=${ONLY:-1 2 3 4 5 6 7}
OUT=${OUT:-PERFORMANCE.md}
export SLUICE_PORT_OFFSET=${SLUICE_PORT_OFFSET:-600}
export SLUICE_DATA=${SLUICE_DATA:-$(mktemp -d "/tmp/sluice-bench.XXXXXX")}
BIN=${SLUICE_BIN:-bin/sluice}
S="127.0.0.1:$((7071 + SLUICE_PORT_OFFSET)),127.0.0.1:$((7072 + SLUICE_PORT_OFFSET)),127.0.0.1:$((7073 + SLUICE_PORT_OFFSET))"
RESULTS=$SLUICE_DATA/results
mkdir -p "$RESULTS"
LOG=$SLUICE_DATA/bench.log

cluster_fresh() {
  scripts/cluster.sh stop >/dev/null 2>&1 || true
  rm -rf "$SLUICE_DATA"/n[0-9]*
  scripts/cluster.sh start >>"$LOG" 2>&1
}
trap 'scripts/cluster.sh stop >/dev/null 2>&1 || true' EXIT

want() { [[ " $ONLY " == *" $1 "* ]]; }

# run NAME ARGS...: RUNS times `sluice ARGS --json`, one JSON line per run
# in $RESULTS/NAME.jsonl; the command goes to $RESULTS/NAME.cmd.
run() {
  local name=$1; shift
  echo "sluice $* --json" >"$RESULTS/$name.cmd"
  : >"$RESULTS/$name.jsonl"
  for i in $(seq 1 "$RUNS"); do
    echo "== $name run $i/$RUNS: sluice $*" | tee -a "$LOG" >&2
    "$BIN" "$@" --json --server "$S" 2>>"$LOG" | tail -1 >>"$RESULTS/$name.jsonl"
  done
}

# med NAME FIELD: the median of FIELD over NAME's runs.
med() {
  python3 - "$RESULTS/$1.jsonl" "$2" <<'PY'
import json, statistics, sys
vals = [json.loads(l)[sys.argv[2]] for l in open(sys.argv[1]) if l.strip()]
print(f"{statistics.median(vals):.6g}" if vals else "n/a")
PY
}

cluster_fresh
if want 1; then run p1 bench produce --topic b-p1 --partitions 1 --replicas 3 --record-size 1024 --records "$PRODUCE_RECORDS" --quiet; fi
if want 2; then run p6 bench produce --topic b-p6 --partitions 6 --replicas 3 --record-size 1024 --records "$PRODUCE_RECORDS" --producers 4 --quiet; fi
if want 3; then run p100 bench produce --topic b-p100 --partitions 6 --replicas 3 --record-size 100 --records $((PRODUCE_RECORDS * 10)) --producers 4 --quiet; fi
if want 4; then run consume bench consume --topic b-consume --replicas 3 --record-size 1024 --records $((CONSUME_BYTES / 1024)) --quiet; fi
if want 5; then
  run lat bench latency --topic b-lat --replicas 3 --record-size 1024 --records "$LATENCY_RECORDS" --quiet
  # 50% of the measured maximum: the median records/s of benchmark 1 (run now if skipped).
  [[ -s $RESULTS/p1.jsonl ]] || run p1 bench produce --topic b-p1 --partitions 1 --replicas 3 --record-size 1024 --records "$PRODUCE_RECORDS" --quiet
  HALF=$(python3 -c "print(int(float('$(med p1 records_per_sec)') / 2))")
  run lat50 bench latency --topic b-lat50 --replicas 3 --record-size 1024 --records $((HALF * 20)) --rate "$HALF" --quiet
fi
if want 6; then run failover bench failover --topic b-failover --rounds "$FAILOVER_ROUNDS" --pid-dir "$SLUICE_DATA" --quiet; fi
if want 7; then
  echo "sluice bench idle --partitions $IDLE_PARTITIONS --per-topic 100 --replicas 3 --pid-dir \$SLUICE_DATA --json" >"$RESULTS/idle.cmd"
  : >"$RESULTS/idle.jsonl"
  for i in $(seq 1 "$RUNS"); do
    cluster_fresh # each run creates its partitions on an empty cluster
    echo "== idle run $i/$RUNS" | tee -a "$LOG" >&2
    "$BIN" bench idle --partitions "$IDLE_PARTITIONS" --per-topic 100 --replicas 3 --pid-dir "$SLUICE_DATA" --json --server "$S" 2>>"$LOG" | tail -1 >>"$RESULTS/idle.jsonl"
  done
fi
scripts/cluster.sh stop >/dev/null 2>&1 || true

row() { # row LABEL NAME FIELDS...: a table row of medians
  local label=$1 name=$2; shift 2
  [[ -s $RESULTS/$name.jsonl ]] || return 0
  local cells=""
  for f in "$@"; do cells+=" $(med "$name" "$f") |"; done
  echo "| $label |$cells \`$(cat "$RESULTS/$name.cmd")\` |"
}

{
  echo "# Sluice performance"
  echo
  echo "Written by \`make bench\` (scripts/bench.sh): medians of $RUNS runs each, on a"
  echo "fresh local 3-node cluster (scripts/cluster.sh), benchmark client on the same"
  echo "machine; every acknowledgement follows a quorum fsync."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
  echo "- load average when done: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: figures under load are not the system's)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  echo "## Throughput and latency"
  echo
  echo "| benchmark | records/s | MB/s | p50 ms | p99 ms | p99.9 ms | max ms | command |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  F="records_per_sec mb_per_sec p50_ms p99_ms p999_ms max_ms"
  row "1. produce, 1 partition, R=3, 1 KiB" p1 $F
  row "2. produce, 6 partitions, R=3, 1 KiB, 4 producers" p6 $F
  row "3. produce, 6 partitions, R=3, 100 B, 4 producers" p100 $F
  row "4. consume from the start of a $((CONSUME_BYTES >> 20)) MiB partition (latency: per fetch)" consume $F
  row "5a. latency, one record at a time" lat $F
  row "5b. latency at 50% of benchmark 1's rate" lat50 $F
  echo
  echo "## Failover and idle cost"
  echo
  echo "| benchmark | median | max / detail | command |"
  echo "| --- | --- | --- | --- |"
  if [[ -s $RESULTS/failover.jsonl ]]; then
    echo "| 6. kill -9 of the partition leader under 1,000 records/s: writes acknowledged again after (ms) | $(med failover outage_median_ms) | max $(med failover outage_max_ms) (median over runs of each run's max) | \`$(cat "$RESULTS/failover.cmd")\` |"
  fi
  if [[ -s $RESULTS/idle.jsonl ]]; then
    echo "| 7. $IDLE_PARTITIONS partitions R=3, no traffic: CPU of the 3 nodes together (% of one core) | $(med idle cpu_pct) | before creating: $(med idle baseline_cpu_pct) | \`$(cat "$RESULTS/idle.cmd")\` |"
    echo "| 7. same: RSS of the 3 nodes together (MiB) | $(med idle rss_mb) | before creating: $(med idle baseline_rss_mb) | |"
    echo "| 7. same: time to create them (s) | $(med idle create_seconds) | partitions created: $(med idle created) | |"
  fi
  echo
  echo "Raw results (one JSON line per run) were in \`$RESULTS\`."
} >"$OUT.new"
mv "$OUT.new" "$OUT"
echo "wrote $OUT (raw results in $RESULTS)"
