#!/usr/bin/env bash
# Our f32 CPU VAE decode, default build and `--features openblas`, against PyTorch's Wan 2.1 VAE
# (diffusers' AutoencoderKLWan), interleaved for 3 rounds in one invocation with equal thread
# counts (bench/vae_vs_torch.py prints min / median per side and the ratios).
#   bench/vae_cpu.sh [vae_vs_torch.py flags, e.g. --frames 5 --height 32 --width 56]
# PyTorch and diffusers come from the Python package index into $SCAIL_CACHE/torch-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${SCAIL_CACHE:-/var/cache/scail}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="$CACHE/torch-venv"
if ! "$VENV/bin/python" -c "import torch, diffusers" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check torch diffusers numpy
fi
bin_for() {
  flock /tmp/scail-cargo.lock cargo build --release -q -p scail-model --bench vae_decode \
    --features "testing${1:+,$1}" --message-format=json |
    "$VENV/bin/python" -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "vae_decode" and m.get("executable"):
        print(m["executable"])'
}
default=$(bin_for "")
cp "$default" "$CACHE/vae_decode-default"   # the openblas build reuses the same path
openblas=$(bin_for openblas)
exec "$VENV/bin/python" bench/vae_vs_torch.py \
  --ours "default=$CACHE/vae_decode-default" --ours "openblas=$openblas" "$@"
