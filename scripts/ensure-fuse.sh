#!/usr/bin/env bash
# Make sure FUSE works, for the chaos suite's power-loss faults (chaos/lazyfs).
# The harness mounts with mount(2) itself when root; fusermount3 (Debian's
# fuse3) is the fallback. Exits non-zero when FUSE cannot be used: the
# power-loss faults are then reported as skipped.
set -euo pipefail

if [ ! -e /dev/fuse ]; then
  echo "ensure-fuse: no /dev/fuse: power-loss faults need FUSE" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-fuse: not root: power-loss faults need root" >&2
  exit 1
fi
if ! command -v fusermount3 >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-fuse: installing fuse3 from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y fuse3 >/dev/null 2>&1 || {
    apt-get update >/dev/null && apt-get install -y fuse3 >/dev/null
  } || echo "ensure-fuse: fuse3 not installed; mounting with mount(2) as root" >&2
fi
exit 0
