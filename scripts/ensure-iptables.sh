#!/usr/bin/env bash
# Make sure iptables works, for the chaos suite's network partitions.
# Installs Debian's iptables package when it is missing and we are root, and
# falls back to iptables-legacy when the nft flavour does not work here.
# Prints the iptables command to use; exits non-zero when none works (the
# chaos suite then runs kill and pause faults only).
set -euo pipefail

works() { "$1" -w 5 -L INPUT -n >/dev/null 2>&1; }

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-iptables: not root: network partitions need root" >&2
  exit 1
fi

if ! command -v iptables >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "ensure-iptables: installing iptables from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y iptables >/dev/null 2>&1 || {
      apt-get update >/dev/null && apt-get install -y iptables >/dev/null
    }
  else
    echo "ensure-iptables: iptables missing and no apt-get" >&2
    exit 1
  fi
fi

# The nft flavour can fail where the kernel lacks nf_tables: then legacy.
for cmd in iptables iptables-legacy; do
  if command -v "$cmd" >/dev/null 2>&1 && works "$cmd"; then
    echo "$cmd"
    exit 0
  fi
done

echo "ensure-iptables: no working iptables" >&2
exit 1
