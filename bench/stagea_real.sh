#!/usr/bin/env bash
# Stage A on the real, full-size graphs (SAM3 export and DWPose) over the test media: for each
# driving clip, segmentation (end_to_end) and pose, with the masks written lossless and as PNG
# frames, and a contact sheet of a few frames per run (masks, driving input, pose render) for
# a person to look at. For a machine that has the Stage A models (`scail weights fetch --dest
# WEIGHTS` puts them in WEIGHTS/stagea) and, ideally, a GPU: point ORT_DYLIB_PATH at the
# onnxruntime-gpu library and use a binary built with `--features cuda`. No network needed.
#
# Usage: bench/stagea_real.sh WEIGHTS_DIR OUT_DIR [SCAIL_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
W="${1:?weights folder (with stagea/)}"
OUT="${2:?output folder}"
BIN="${3:-${SCAIL_BIN:-target/release/scail}}"
MEDIA="${SCAIL_MEDIA_DIR:-testdata/media}"
[ -x "$BIN" ] || { echo "no scail binary at $BIN (cargo build --release, or pass its path)"; exit 1; }
[ -d "$W/stagea" ] || { echo "$W/stagea missing: run scail weights fetch --dest $W"; exit 1; }
mkdir -p "$OUT"

run() { # name image video driving_type
  local name=$1 image=$2 video=$3 dt=$4 t0 t1
  t0=$(date +%s.%N)
  "$BIN" stagea --stagea-dir "$W/stagea" --image "$MEDIA/$image" --video "$MEDIA/$video" \
    --driving-type "$dt" --png-frames --out "$OUT/$name" 2>&1 | tail -3
  t1=$(date +%s.%N)
  awk -v n="$name" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s: %.1f s\n", n, b - a }' | tee -a "$OUT/timings.txt"
  # Frames 0, middle and last of the driving mask and the driving input, side by side.
  if command -v ffmpeg >/dev/null; then
    local n
    n=$(ls "$OUT/$name/driving_mask" | wc -l)
    for f in 0 $((n / 2)) $((n - 1)); do
      ffmpeg -v error -y -i "$OUT/$name/driving_mask/$(printf %05d "$f").png" \
        -i "$OUT/$name/driving_video.mp4" \
        -filter_complex "[1:v]select=eq(n\,$f)[d];[0:v][d]hstack" -frames:v 1 \
        "$OUT/$name/sheet_$f.png" || true
    done
  fi
}

: >"$OUT/timings.txt"
run dance_end_to_end ref_photo_woman_shore.jpg dance_woman_16fps.mp4 end_to_end
run dance_pose ref_photo_woman_shore.jpg dance_woman_16fps.mp4 pose
run gesture_end_to_end ref_photo_old_man_headphones.jpg gesture_woman_closeup_16fps.mp4 end_to_end
run talk_show_pose ref_fantasy_elf.jpeg talk_show_host_30fps_audio.mp4 pose
echo "outputs in $OUT (reference_mask.png, driving_mask.mkv + PNG frames, driving_video.mp4, preview.mp4, sheet_*.png)"
cat "$OUT/timings.txt"
