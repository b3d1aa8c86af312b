#!/usr/bin/env bash
# Make sure the command-line tools the end-to-end tests drive are present:
# clients nobody here wrote, talking to the agent's sources. Each entry is
# "command:Debian package"; only missing commands are installed, and only
# when we are root with apt-get. Engineers add their tools to TOOLS.
set -euo pipefail

TOOLS=(
  # agent sources: syslog (util-linux's logger), http, netcat
  "logger:bsdutils"
  "curl:curl"
  "nc:netcat-openbsd"
  # the status page test drives headless Chromium
  "chromium:chromium"
)

missing=()
for entry in "${TOOLS[@]}"; do
  cmd=${entry%%:*}
  pkg=${entry#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-tools: missing ${missing[*]} (install them; tests that need them skip)" >&2
  exit 1
fi
echo "ensure-tools: installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  apt-get -o DPkg::Lock::Timeout=300 update >/dev/null && apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}" >/dev/null
}
