#!/usr/bin/env bash
# A PostgreSQL server on 127.0.0.1:5432 that user postgres reaches without a password (what the
# fleet tests and benchmarks use). Does nothing when one answers; otherwise installs Debian's
# server, lets local TCP connections in with trust auth (a test machine only) and starts it.
set -euo pipefail
ready() { psql -h 127.0.0.1 -U postgres -Atc "SELECT 1" postgres >/dev/null 2>&1; }
ready && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
ver=$(ls /etc/postgresql | sort -n | tail -1)
[ -n "$ver" ] || { echo "no PostgreSQL cluster after installing postgresql" >&2; exit 1; }
hba="/etc/postgresql/$ver/main/pg_hba.conf"
if ! $SUDO grep -q "^host all all 127.0.0.1/32 trust" "$hba"; then
  printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' | $SUDO tee /tmp/scail-hba >/dev/null
  $SUDO sh -c "cat '$hba' >> /tmp/scail-hba && cp /tmp/scail-hba '$hba'"
fi
$SUDO pg_ctlcluster "$ver" main start 2>/dev/null || $SUDO pg_ctlcluster "$ver" main reload
for _ in $(seq 50); do ready && exit 0; sleep 0.2; done
echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
exit 1
