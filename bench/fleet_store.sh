#!/usr/bin/env bash
# The fleet's store against the embedded one, in one invocation: status polls per second and p99
# (wrk, 3 rounds interleaved, min and median) on servers holding 10,000 finished jobs, one on
# SQLite and one on PostgreSQL; then the time from submit to an idle worker's claim on
# PostgreSQL (an API node and a worker sharing only the store).
# Goals: status >= 5,000 req/s with p99 < 10 ms on 2 cores; claim p99 < 100 ms.
#   bench/fleet_store.sh   (PG=postgres://postgres@127.0.0.1:5432, BENCH_SECONDS=8, BENCH_CONNS=32)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/scail/target}"
pg="${PG:-postgres://postgres@127.0.0.1:5432}"
secs="${BENCH_SECONDS:-8}"; conns="${BENCH_CONNS:-32}"
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }; }
flock /tmp/scail-cargo.lock cargo build --release -q -p scail-server --example load_target --example claim_latency
ulimit -n 65536 2>/dev/null || true

work=$(mktemp -d); trap 'exec 3>&- 4>&-; kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
start() { # name, store env value ("" for SQLite), fd
  mkfifo "$work/$1.in"
  STORE="$2" "$CARGO_TARGET_DIR/release/examples/load_target" <"$work/$1.in" >"$work/$1.out" 2>"$work/$1.err" &
}
start sqlite ""; exec 3>"$work/sqlite.in"
start postgres "$pg"; exec 4>"$work/postgres.in"
for n in sqlite postgres; do
  for _ in $(seq 1200); do grep -q '^BIG_JOB' "$work/$n.out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^BIG_JOB' "$work/$n.out" || { cat "$work/$n.err"; exit 1; }
  sed "s/^/$n: /" "$work/$n.err"
done
status_url() { echo "$(awk '/^SCAIL_LISTENING/ {print $2}' "$work/$1.out")/queue/fal-ai/scail-2/requests/$(awk '/^SMALL_JOB/ {print $2}' "$work/$1.out")/status"; }
key=$(awk '/^KEY/ {print $2}' "$work/sqlite.out")

run() {
  wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Authorization: Key $key" "$1" 2>&1 | awk '
    /Requests\/sec:/ {rps = $2}
    / 99%/ {v = $2; if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v *= 1000}; p99 = v}
    END {printf "%.0f %.2f\n", rps, p99}'
}
declare -A res
for round in 1 2 3; do
  for n in sqlite postgres; do res[$n]+="$(run "$(status_url $n)")|"; done
done
echo "wrk -t2 -c$conns, ${secs} s per run, 3 rounds interleaved, $(nproc) cores"
printf '%-40s %22s %22s\n' "status poll, 10,000 jobs stored" "req/s min / median" "p99 ms min / median"
for n in sqlite postgres; do
  IFS='|' read -ra rs <<<"${res[$n]}"
  rps=$(printf '%s\n' "${rs[@]}" | awk '{print $1}' | sort -n); p=$(printf '%s\n' "${rs[@]}" | awk '{print $2}' | sort -n)
  printf '%-40s %10s / %-10s %10s / %-10s\n' "$n" "$(sed -n 1p <<<"$rps")" "$(sed -n 2p <<<"$rps")" "$(sed -n 1p <<<"$p")" "$(sed -n 2p <<<"$p")"
done
echo
STORE="$pg" "$CARGO_TARGET_DIR/release/examples/claim_latency"
echo
echo "goals: status >= 5000 req/s and p99 < 10 ms; submit -> claim p99 < 100 ms"
