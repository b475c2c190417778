#!/usr/bin/env bash
# Server load benchmark with a real load tool (wrk): status polls per second and p99 against a
# store of 10,000 finished jobs (20 with a 5 MB input), on a small-input job and a big-input
# one, and /health as the no-store comparison; then the same while 3,000 slow connections
# (headers never finished) are held. Every case runs 3 rounds interleaved; min and median are
# printed. Loopback only. Goal: status >= 5,000 req/s with p99 < 10 ms on 2 cores.
#   bench/server_load.sh            (BENCH_SECONDS=8, BENCH_CONNS=32, SLOW=3000, JOBS=10000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/scail/target}"
secs="${BENCH_SECONDS:-8}"; conns="${BENCH_CONNS:-32}"; slow="${SLOW:-3000}"
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }; }
flock /tmp/scail-cargo.lock cargo build --release -q -p scail-server --example load_target
ulimit -n 65536 2>/dev/null || true

work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
mkfifo "$work/stdin"
"$CARGO_TARGET_DIR/release/examples/load_target" <"$work/stdin" >"$work/out" 2>"$work/err" &
exec 3>"$work/stdin"   # the server runs while this stays open
for _ in $(seq 600); do grep -q '^BIG_JOB' "$work/out" 2>/dev/null && break; sleep 0.1; done
url=$(awk '/^SCAIL_LISTENING/ {print $2}' "$work/out"); key=$(awk '/^KEY/ {print $2}' "$work/out")
small=$(awk '/^SMALL_JOB/ {print $2}' "$work/out"); big=$(awk '/^BIG_JOB/ {print $2}' "$work/out")
cat "$work/err"
status_url() { echo "$url/queue/fal-ai/scail-2/requests/$1/status"; }

# One wrk run: prints "<req/s> <p99 ms>".
run() {
  wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Authorization: Key $key" "$1" 2>&1 | awk '
    /Requests\/sec:/ {rps = $2}
    / 99%/ {v = $2; if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v *= 1000}; p99 = v}
    /Non-2xx/ {bad = $NF}
    END {printf "%.0f %.2f %s\n", rps, p99, (bad ? "non-2xx:" bad : "")}'
}

declare -A results
cases=(health small big)
target() { case $1 in health) echo "$url/health";; small) status_url "$small";; big) status_url "$big";; esac; }
phase() {
  for round in 1 2 3; do
    for c in "${cases[@]}"; do results["$1/$c"]+="$(run "$(target "$c")")|"; done
  done
}
summary() {
  printf '%-34s %22s %22s\n' "case ($2)" "req/s min / median" "p99 ms min / median"
  for c in "${cases[@]}"; do
    IFS='|' read -ra rs <<<"${results[$1/$c]}"
    rps=$(printf '%s\n' "${rs[@]}" | awk '{print $1}' | sort -n); p=$(printf '%s\n' "${rs[@]}" | awk '{print $2}' | sort -n)
    name=$c; [ "$c" = small ] && name="status, small-input job"; [ "$c" = big ] && name="status, 5 MB-input job"; [ "$c" = health ] && name="/health (comparison)"
    printf '%-34s %10s / %-10s %10s / %-10s\n' "$name" "$(sed -n 1p <<<"$rps")" "$(sed -n 2p <<<"$rps")" "$(sed -n 1p <<<"$p")" "$(sed -n 2p <<<"$p")"
  done
}

echo "wrk -t2 -c$conns, ${secs} s per run, 3 rounds interleaved, $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
phase quiet
port=${url##*:}
python3 bench/slow_clients.py 127.0.0.1 "$port" "$slow" >"$work/slow" 2>&1 &
for _ in $(seq 60); do [ "$(tail -1 "$work/slow" 2>/dev/null | awk '{print $2}')" -ge "$slow" ] 2>/dev/null && break; sleep 1; done
held=$(tail -1 "$work/slow" | awk '{print $2}')
phase slow
echo; summary quiet "quiet"; echo; summary slow "with $held slow connections held"
echo
echo "goal: status >= 5000 req/s and p99 < 10 ms (on the small- and the big-input job alike)"
