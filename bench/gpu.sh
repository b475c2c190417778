#!/usr/bin/env bash
# The GPU figures in one run (under 10 minutes on one H100 or H200), on a host with PyTorch and
# the CUDA 13 libraries but no Rust and no network:
#   0. our attention on the device (FlashAttention-2) checked against naive attention within its
#      bf16 bound, then timed against the chunked path at the 512p/81-frame token count;
#   1. our full-size DiT forward, 512p (896x512), 81 frames, bf16, random weights;
#   2. the same forward in PyTorch on the same device (bench/gpu_torch_dit.py: diffusers'
#      WanTransformer3DModel when installed, else the same blocks in plain PyTorch), best
#      attention backend;
#   3. seconds per forward, TFLOP/s from the FLOP count, peak device memory, and the ratio;
#   4. one VAE decode of a segment (21 latent frames at 64x112), in bf16 and in f32;
#      then `--offload blocks` (host blocks, page-locked, copied on a second stream) against
#      `none` on 8 blocks of the 14B DiT: the same output, seconds per forward, device memory;
#   5. one end-to-end job: 14B random weights (sparse files), 512p, 1 s clip, 4 steps, CFG 1.
# It needs the bundle made on the build machine by `scripts/bundle-gpu.sh`
# (bench/gpu-bundle/scail-gpu.tar.xz: the media-free benchmark binary and its libraries); the
# end-to-end job also needs `FULL=1 scripts/bundle-gpu.sh`'s scail-full.tar.xz (the server
# binary with ffmpeg's libraries), or a host that has Debian's ffmpeg 5.1: skipped otherwise.
#   bash bench/gpu.sh            # OUT=/tmp/scail-gpu PYTHON=python3 SKIP_E2E=0
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${OUT:-/tmp/scail-gpu}"
mkdir -p "$OUT"
say() { printf '\n==> %s\n' "$*"; }

tar -C "$OUT" -xJf bench/gpu-bundle/scail-gpu.tar.xz
BENCH="$OUT/scail-gpu-bench"
# The CUDA 13 runtime libraries come with PyTorch's nvidia-* packages.
NV=$("$PY" - <<'PY'
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
print(":".join(sorted(d for r in roots for d in glob.glob(os.path.join(r, "*", "lib")) + glob.glob(os.path.join(r, "*", "*", "lib")))))
PY
)
TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$OUT/lib:$NV:$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ldd "$BENCH" | grep "not found"; then
  echo "the libraries above are missing on this host"; exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

say "0. attention: FlashAttention-2 checked against naive attention, then timed at 512p/81"
"$BENCH" attention --device cuda --frames 81 --height 512 --width 896 | tee "$OUT/attention.txt"

say "1. ours: DiT forward, 14B, 896x512, 81 frames, bf16"
"$BENCH" dit --device cuda --dtype bf16 --frames 81 --height 512 --width 896 --forwards 2 \
  | tee "$OUT/ours.txt"
TOKENS=$(awk '/^tokens /{print $2}' "$OUT/ours.txt")

say "2. PyTorch: the same forward ($TOKENS tokens)"
"$PY" bench/gpu_torch_dit.py --tokens "$TOKENS" --forwards 2 | tee "$OUT/torch.json"

say "3. comparison"
"$PY" - "$OUT/ours.txt" "$OUT/torch.json" <<'PY'
import json, re, sys
sys.path.insert(0, "bench")
from dit_flops import flops
ours = open(sys.argv[1]).read()
t = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
num = lambda key: float(re.search(rf"^{key}\s+([0-9.]+)", ours, re.M).group(1))
tokens, secs = int(num("tokens")), num("seconds per forward")
fl = flops(tokens, 40)
mem = re.search(r"^peak device memory\s+([0-9.]+)", ours, re.M) or re.search(r"^device memory used\s+([0-9.]+)", ours, re.M)
print(f"ours:    {secs:.3f} s/forward, {fl / secs / 1e12:.0f} TFLOP/s ({fl:.3e} FLOPs, {tokens} tokens), "
      f"device memory {mem.group(1) if mem else '?'} GiB")
print(f"PyTorch: {t['seconds_best']:.3f} s/forward, {t['tflops']:.0f} TFLOP/s ({t['impl']}, {t['tokens']} tokens, "
      f"torch {t['torch']}), peak device memory {(t['peak_device_bytes'] or 0) / 2**30:.2f} GiB")
# Per FLOP: the two forwards may differ slightly in token count.
per_flop = lambda s, n: s / flops(n, 40)
ratio = per_flop(t["seconds_best"], t["tokens"]) / per_flop(secs, tokens)
print(f"ratio (PyTorch time / ours, per FLOP): {ratio:.2f}x ({'ours faster' if ratio > 1 else 'PyTorch faster'})")
print("goals: <= 4.5 s per forward on an H100; >= 1.2x PyTorch")
PY

say "4. VAE decode of one segment (21 latent frames, 896x512), bf16 (what a bf16 job runs) and f32"
for dt in bf16 f32; do
  "$BENCH" vae --device cuda --dtype $dt --frames 21 --height 64 --width 112 | tee -a "$OUT/vae.txt"
done

say "4b. --offload blocks against none: 8 blocks of the 14B DiT, 896x512, 81 frames (same output, time, memory)"
"$BENCH" offload --device cuda --layers 8 --frames 81 --height 512 --width 896 | tee "$OUT/offload.txt"

[ -f bench/gpu-bundle/scail-full.tar.xz ] && tar -C "$OUT" -xJf bench/gpu-bundle/scail-full.tar.xz
BIN="$OUT/scail"
if [ "${SKIP_E2E:-0}" = 1 ]; then
  say "5. end-to-end job: skipped (SKIP_E2E=1)"
elif ! [ -x "$BIN" ] || ldd "$BIN" | grep -q "not found"; then
  say "5. end-to-end job: skipped (no scail-full.tar.xz and this host lacks ffmpeg 5.1's libraries)"
else
  say "5. end-to-end job: 14B random weights, 896x512, 1 s, 4 steps, CFG 1, bf16"
  W="$OUT/weights-14b"
  [ -f "$W/umt5-xxl/tokenizer.json" ] || "$BIN" weights init-random --config 14b --sparse "$W" >/dev/null
  start=$(date +%s)
  "$BIN" generate --weights "$W" --device cuda --precision bf16 \
    --image testdata/media/ref_photo_woman_shore.jpg --video bench/gpu-inputs/drive_1s_896x512.mp4 \
    --reference-mask bench/gpu-inputs/ref_mask.png --driving-mask bench/gpu-inputs/drive_mask_1s.mkv \
    --prompt "a woman dancing" --size 896x512 --num-inference-steps 4 --guidance-scale 1 \
    --sampler euler --out "$OUT/job.mp4" 2>&1 | tail -12
  echo "end-to-end: $(( $(date +%s) - start )) s including weight loading"
fi
