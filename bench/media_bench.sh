#!/usr/bin/env bash
# Decode + 16 fps + resize + crop of the 2048x1080 clip to 896x512: scail-media against the
# ffmpeg CLI, in the same run. Builds under the shared cargo lock, runs outside it.
# Usage: media_bench.sh [CLIP] [W] [H] [REPEATS] [resize|ours]
#   resize: only resize+crop of one frame, REPEATS times; ours: only scail-media's pipeline
#   (both for profiling, e.g. under `perf stat`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
clip="${1:-$root/testdata/media/dance_woman_16fps.mp4}"
(cd "$root" && CARGO_TARGET_DIR="$target" flock /tmp/scail-cargo.lock \
    cargo build --release -q -p scail-media --example media_bench)
"$target/release/examples/media_bench" "$clip" "${2:-896}" "${3:-512}" "${4:-3}" "${@:5}"
