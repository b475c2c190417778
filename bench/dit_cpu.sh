#!/usr/bin/env bash
# Our f32 CPU DiT forward, default build and `--features openblas`, against diffusers'
# WanTransformer3DModel (PyTorch), interleaved for 3 rounds in one invocation with equal thread
# counts (bench/dit_vs_diffusers.py prints min / median per side and the ratios).
#   bench/dit_cpu.sh [dit_vs_diffusers.py flags, e.g. --frames 16 for 8,064 tokens]
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
# The executable cargo built for one feature set.
bin_for() {
  flock /tmp/scail-cargo.lock cargo build --release -q -p scail-model --bench dit_forward \
    --features "testing${1:+,$1}" --message-format=json |
    "$VENV/bin/python" -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "dit_forward" and m.get("executable"):
        print(m["executable"])'
}
default=$(bin_for "")
cp "$default" "$CACHE/dit_forward-default"   # the openblas build reuses the same path
openblas=$(bin_for openblas)
exec "$VENV/bin/python" bench/dit_vs_diffusers.py \
  --ours "default=$CACHE/dit_forward-default" --ours "openblas=$openblas" "$@"
