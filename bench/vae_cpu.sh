#!/usr/bin/env bash
# Our f32 CPU VAE decode, default build and `--features openblas`, against PyTorch's Wan 2.1 VAE
# (diffusers' AutoencoderKLWan), interleaved for 3 rounds in one invocation with equal thread
# counts (bench/vae_vs_torch.py prints min / median per side and the ratios).
#   bench/vae_cpu.sh [vae_vs_torch.py flags, e.g. --frames 5 --height 32 --width 56]
# PyTorch and diffusers come from the Python package index into $SCAIL_CACHE/torch-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/torch_pair.sh
default=$(bench_bin vae_decode)
cp "$default" "$CACHE/vae_decode-default"   # the openblas build reuses the same path
openblas=$(bench_bin vae_decode openblas)
exec "$VENV/bin/python" bench/vae_vs_torch.py \
  --ours "default=$CACHE/vae_decode-default" --ours "openblas=$openblas" "$@"
