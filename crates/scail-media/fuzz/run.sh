#!/usr/bin/env bash
# Fuzz the decode entry points. Seeds are generated with the ffmpeg CLI (nothing committed).
#   crates/scail-media/fuzz/run.sh [SECONDS_PER_TARGET] [SEED]
# Local runs: a few minutes per target; CI: a short seeded pass (e.g. `run.sh 30 1`).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on the installed toolchain.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-180}"
seed="${2:-1}"
corpus="${SCAIL_FUZZ_CORPUS:-/tmp/scail-media-fuzz-corpus}"
mkdir -p "$corpus/decode_video" "$corpus/decode_image" "$corpus/mask_compress"
gen() { ffmpeg -hide_banner -loglevel error -y "$@"; }
src=(-f lavfi -i testsrc2=size=64x64:rate=8:duration=0.5)
[ -e "$corpus/decode_video/a.mp4" ] || {
    gen "${src[@]}" -c:v libx264 "$corpus/decode_video/a.mp4"
    gen "${src[@]}" -c:v libvpx-vp9 -deadline realtime "$corpus/decode_video/b.webm"
    gen "${src[@]}" "$corpus/decode_video/c.gif"
    gen "${src[@]}" -c:v mpeg4 "$corpus/decode_video/d.avi"
    gen "${src[@]}" -f lavfi -i sine=d=0.5 -c:v libx264 -c:a aac -shortest "$corpus/decode_video/e.mkv"
    gen "${src[@]}" -frames:v 1 "$corpus/decode_image/a.png"
    gen "${src[@]}" -frames:v 1 "$corpus/decode_image/b.jpg"
    gen "${src[@]}" -frames:v 1 -c:v libwebp "$corpus/decode_image/c.webp"
    gen "${src[@]}" -frames:v 1 -pix_fmt pal8 "$corpus/decode_image/d.png"
    head -c 600 /dev/urandom > "$corpus/mask_compress/r"
}
# The sanitizer flags are nightly-only; RUSTC_BOOTSTRAP lets the one installed toolchain take them.
export RUSTC_BOOTSTRAP=1
fuzz=(cargo fuzz)
for t in decode_image decode_video mask_compress; do
    "${fuzz[@]}" run "$t" "$corpus/$t" -- -max_total_time="$secs" -seed="$seed" -rss_limit_mb=2048
done
