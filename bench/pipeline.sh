#!/usr/bin/env bash
# Pipeline CPU benchmark: tiny config (whole job from files) and a mid-size DiT (sampling core),
# each with guidance 5 and 1 as the comparison run. Seconds per step / segment / job, peak memory,
# time share per stage. Builds under the shared cargo lock, runs the binary outside it.
#   bench/pipeline.sh            (BENCH_STEPS=4 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/scail/target}"
bin=$(flock /tmp/scail-cargo.lock cargo bench -p scail-pipeline --bench pipeline --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*pipeline-[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$bin" ] || { echo "bench binary not built" >&2; exit 1; }
SCAIL_MEDIA_DIR="${SCAIL_MEDIA_DIR:-$(pwd)/testdata/media}" "$bin"
