#!/usr/bin/env bash
# Stage A CPU benchmark: seconds per frame for the detector and the pose model with
# random-weight graphs at the real sizes, plus the host code, from the Rust crate; then
# the same two graphs run directly by onnxruntime in Python as the comparison (the gap is
# scail's host overhead).
#
# usage: bench/stagea_bench.sh [FRAMES]
# env: VENV (default /var/cache/scail/venv; needs onnx, onnxruntime, numpy),
#      CARGO_TARGET_DIR (default target), OUT (graph folder, default $CARGO_TARGET_DIR/stagea-realsize)
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES="${1:-5}"
VENV="${VENV:-/var/cache/scail/venv}"
TARGET="${CARGO_TARGET_DIR:-target}"
OUT="${OUT:-$TARGET/stagea-realsize}"
PY="$VENV/bin/python"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -1)}"

if [ ! -f "$OUT/yolox_l.onnx" ] || [ ! -f "$OUT/dw-ll_ucoco_384.onnx" ]; then
  "$PY" scripts/make_standin_onnx.py "$OUT" --real-size
fi
BIN="$TARGET/release/examples/stagea_bench"
if [ ! -x "$BIN" ]; then
  echo "build first: cargo build --release -p scail-stagea --example stagea_bench" >&2
  exit 1
fi
"$BIN" "$OUT" crates/scail-stagea/standin "$FRAMES"

echo "comparison: onnxruntime (Python) on the same graphs"
"$PY" - "$OUT" "$FRAMES" <<'PYEOF'
import sys, time
import numpy as np
import onnxruntime as ort
out, n = sys.argv[1], int(sys.argv[2])
for name, shape in [("yolox_l.onnx", (1, 3, 640, 640)), ("dw-ll_ucoco_384.onnx", (1, 3, 384, 288))]:
    s = ort.InferenceSession(f"{out}/{name}", providers=["CPUExecutionProvider"])
    x = {s.get_inputs()[0].name: np.random.rand(*shape).astype(np.float32)}
    s.run(None, x)
    ts = []
    for _ in range(n):
        t = time.perf_counter(); s.run(None, x); ts.append(time.perf_counter() - t)
    print(f"  {name}: {sorted(ts)[len(ts) // 2]:.3f} s/run (python onnxruntime {ort.__version__})")
PYEOF
