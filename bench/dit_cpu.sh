#!/usr/bin/env bash
# Our f32 CPU DiT forward, default build and `--features openblas`, against diffusers'
# WanTransformer3DModel (PyTorch), interleaved for 3 rounds in one invocation with equal thread
# counts (bench/dit_vs_diffusers.py prints min / median per side and the ratios).
#   bench/dit_cpu.sh [dit_vs_diffusers.py flags, e.g. --frames 16 for 8,064 tokens]
# PyTorch and diffusers come from the Python package index into $SCAIL_CACHE/torch-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/torch_pair.sh
default=$(bench_bin dit_forward)
cp "$default" "$CACHE/dit_forward-default"   # the openblas build reuses the same path
openblas=$(bench_bin dit_forward openblas)
exec "$VENV/bin/python" bench/dit_vs_diffusers.py \
  --ours "default=$CACHE/dit_forward-default" --ours "openblas=$openblas" "$@"
