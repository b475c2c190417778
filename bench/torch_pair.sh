# Sourced by bench/dit_cpu.sh and bench/vae_cpu.sh: PyTorch and diffusers in
# $SCAIL_CACHE/torch-venv (from the Python package index), and `bench_bin BENCH [FEATURE]`, which
# builds one of scail-model's release benches and prints its executable.
CACHE="${SCAIL_CACHE:-/var/cache/scail}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="$CACHE/torch-venv"
if ! "$VENV/bin/python" -c "import torch, diffusers" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check torch diffusers numpy
fi
bench_bin() {
  flock /tmp/scail-cargo.lock cargo build --release -q -p scail-model --bench "$1" \
    --features "testing${2:+,$2}" --message-format=json |
    "$VENV/bin/python" -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1"
}
