#!/usr/bin/env bash
# VAE decode benchmark: ours (candle, f32, CPU) against PyTorch's AutoencoderKLWan from diffusers
# in the same run. Default: 5 latent frames at 32x56 (17 frames at 256x448), real widths.
#   bench/vae_decode.sh [--frames T] [--height h] [--width w] [--threads N]
# Needs a release build of the bench binary (built here under the shared cargo lock) and a
# Python with torch + diffusers (PYTHON, default /var/cache/scail/venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/var/cache/scail/venv/bin/python}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/scail/target}
bin=$(flock /tmp/scail-cargo.lock cargo bench -p scail-model --bench vae_decode --no-run --message-format=json 2>/dev/null \
  | "$PYTHON" -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and "vae_decode" in m["target"]["name"]: print(m["executable"])' | tail -1)
out=$("$bin" "$@"); echo "$out"; ours=$(echo "$out" | tail -1)
out=$("$PYTHON" bench/vae_decode_torch.py "$@"); echo "$out"; theirs=$(echo "$out" | tail -1)
"$PYTHON" - "$ours" "$theirs" <<'PY'
import json, sys
o, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert o["frames"] == t["frames"], (o, t)
print(f"speed: ours {o['seconds']:.2f} s vs PyTorch {t['seconds']:.2f} s -> "
      f"{t['seconds'] / o['seconds']:.2f}x ({'ours faster' if o['seconds'] < t['seconds'] else 'PyTorch faster'})")
print(f"CPU time (less sensitive to other load on the machine): ours {o['cpu_seconds']:.1f} s vs PyTorch "
      f"{t['cpu_seconds']:.1f} s -> {t['cpu_seconds'] / o['cpu_seconds']:.2f}x")
print(f"peak RSS: ours {o['peak_rss_bytes'] / 2**30:.2f} GiB vs PyTorch {t['peak_rss_bytes'] / 2**30:.2f} GiB -> "
      f"{o['peak_rss_bytes'] / t['peak_rss_bytes']:.2f}x")
PY
