#!/usr/bin/env bash
# The 14B model in 10 GiB: `scail generate --offload stream` on a folder of random weights in the
# official layout (`weights init-random --config 14b --sparse`: 78 GB of sparse files, no disk),
# 64x64, one step, CFG 1, masks given so Stage A needs no models, run inside a cgroup v1 memory
# limit (LIMIT, default 10G; needs root). Prints the command's result, its peak memory and the
# output's stream; exits non-zero when the run fails or the video is not valid.
#   bash bench/offload-14b.sh            # LIMIT=10G OFFLOAD=stream WORK=/tmp/scail-14b
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${SCAIL_CACHE:-/var/cache/scail}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
LIMIT="${LIMIT:-10G}"
OFFLOAD="${OFFLOAD:-stream}"
WORK="${WORK:-/tmp/scail-14b}"
mkdir -p "$WORK"

cargo build --release -q -p scail
BIN="$CARGO_TARGET_DIR/release/scail"

W="$WORK/weights-14b"
[ -f "$W/umt5-xxl/tokenizer.json" ] || "$BIN" weights init-random --config 14b --sparse "$W" >/dev/null
echo "weights: $W ($(du -sh --apparent-size "$W" | cut -f1) apparent, $(du -sh "$W" | cut -f1) on disk)"

# One second of a real dance clip, and masks that mark the whole frame as one subject (blue).
ffmpeg -v error -y -i testdata/media/dance_woman_16fps.mp4 -t 1 -an -c:v libx264 -pix_fmt yuv420p "$WORK/drive.mp4"
IMG=testdata/media/ref_photo_woman_shore.jpg
size=$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=s=x:p=0 "$IMG")
dsize=$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=s=x:p=0 "$WORK/drive.mp4")
ffmpeg -v error -y -f lavfi -i "color=c=0x0000ff:s=$size" -frames:v 1 "$WORK/ref_mask.png"
ffmpeg -v error -y -f lavfi -i "color=c=0x0000ff:s=$dsize:r=16:d=1" -c:v ffv1 -pix_fmt bgr0 "$WORK/drive_mask.mkv"

CG=/sys/fs/cgroup/memory/scail-14b
mkdir -p "$CG"
echo "$LIMIT" >"$CG/memory.limit_in_bytes"
[ -f "$CG/memory.memsw.limit_in_bytes" ] && echo "$LIMIT" >"$CG/memory.memsw.limit_in_bytes" || true
echo 0 >"$CG/memory.max_usage_in_bytes" || true
echo "cgroup $CG: limit $(($(cat "$CG/memory.limit_in_bytes") >> 20)) MiB"

rm -f "$WORK/out.mp4"
start=$(date +%s)
set +e
bash -c 'echo $$ >"$0/cgroup.procs"; exec "$@"' "$CG" \
  "$BIN" generate --weights "$W" --image "$IMG" --video "$WORK/drive.mp4" \
  --reference-mask "$WORK/ref_mask.png" --driving-mask "$WORK/drive_mask.mkv" \
  --prompt "a woman dancing" --out "$WORK/out.mp4" \
  --size 64x64 --num-inference-steps 1 --guidance-scale 1 --offload "$OFFLOAD" 2>&1 | tee "$WORK/generate.log"
rc=${PIPESTATUS[0]}
set -e
echo "exit $rc after $(( $(date +%s) - start )) s"
echo "cgroup peak (anonymous memory and page cache): $(($(cat "$CG/memory.max_usage_in_bytes") >> 20)) MiB"
grep -E "failcnt" -H "$CG/memory.failcnt" 2>/dev/null || true
rmdir "$CG" 2>/dev/null || true
[ "$rc" -eq 0 ] || exit "$rc"
ffprobe -v error -show_entries stream=codec_name,width,height,nb_frames -of compact "$WORK/out.mp4"
