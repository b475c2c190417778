#!/usr/bin/env bash
# Server load benchmark: status polls/s and submits/s with 1,000 jobs in the store, p50/p99,
# against /health as the no-store comparison. BENCH_SECONDS and BENCH_CLIENTS tune it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/scail/target}"
cargo build --release -q -p scail-server --example load
"$CARGO_TARGET_DIR/release/examples/load"
