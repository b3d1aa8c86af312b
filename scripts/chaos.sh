#!/usr/bin/env bash
# Build Sluice and run the chaos suite with its defaults (5 nodes, 300 s of
# partition, kill and pause faults at 500 sends/s). Extra arguments go to
# `sluice chaos`, e.g.:
#   scripts/chaos.sh --nodes 3 --time-limit 120s --nemesis all
# Results: store/sluice/<timestamp>/index.html (store/sluice/latest).
# Exit status: 0 pass, 2 anomalies, 3 inconclusive, 1 harness error.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}

# Partitions need iptables; without it the suite runs the other faults.
if ! scripts/ensure-iptables.sh >/dev/null; then
  echo "chaos.sh: iptables unavailable: network partitions will be skipped" >&2
fi

"$GO" build -o bin/sluice ./cmd/sluice
exec bin/sluice chaos --binary bin/sluice "$@"
