#!/usr/bin/env bash
# Install the third-party Kafka clients the Kafka-listener tests drive:
# kcat, kafka-python and confluent-kafka (librdkafka), from Debian's
# packages, each only when missing and only when we are root with apt-get.
# The tests skip a client that is still missing, saying so.
set -euo pipefail

# -I: the repository root has a kafka/ folder, which "import kafka" would
# otherwise find as a namespace package.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
"$py" -I -c 'import kafka' >/dev/null 2>&1 || missing+=(python3-kafka)
"$py" -I -c 'import confluent_kafka' >/dev/null 2>&1 || missing+=(python3-confluent-kafka)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-kafka-clients: missing ${missing[*]}; install them (apt-get install ${missing[*]}) to run those tests" >&2
  exit 1
fi
echo "ensure-kafka-clients: installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  apt-get -o DPkg::Lock::Timeout=300 update >/dev/null && apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}" >/dev/null
}
