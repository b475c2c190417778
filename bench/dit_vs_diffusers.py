#!/usr/bin/env python3
"""Our f32 CPU DiT forward against diffusers' WanTransformer3DModel, in one run.

diffusers' Wan 2.1 I2V transformer has the same block structure as the SCAIL-2 DiT (modulated
self-attention with RMS q/k norms across heads and RoPE, text + image cross-attention, FFN), so at
equal width, heads, layers, FFN width, token count and context (512 text + 257 image tokens) the
two forwards do the same work. Both get random weights and random inputs; both run on the CPU in
float32 with the same number of threads.

Build our side first (under the shared cargo lock), then run this outside the lock:
    CARGO_TARGET_DIR=/var/cache/scail/target flock /tmp/scail-cargo.lock \
        cargo build -p scail-model --features openblas --bench dit_forward
    /var/cache/scail/venv/bin/python bench/dit_vs_diffusers.py
(`--features openblas` needs Debian's libopenblas-dev; without it our matmuls use the gemm
crate. `--rust-bin` picks a specific build, e.g. to compare both.)

Prints seconds per forward, tokens/s and peak RSS of both, and the ratio (diffusers / ours:
above 1 means ours is faster).
"""

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import time


def find_rust_bin(explicit):
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", "/var/cache/scail/target")
    cands = [
        p
        for prof in ("release", "debug")
        for p in glob.glob(f"{target}/{prof}/deps/dit_forward-*")
        if os.access(p, os.X_OK) and not p.endswith(".d")
    ]
    if not cands:
        sys.exit("no dit_forward binary: build it with `cargo build -p scail-model --bench dit_forward`")
    return max(cands, key=os.path.getmtime)


def run_ours(a, threads):
    cmd = [
        find_rust_bin(a.rust_bin),
        "--dim", str(a.dim), "--heads", str(a.heads), "--layers", str(a.layers),
        "--ffn", str(a.ffn), "--frames", str(a.frames), "--height", str(a.height),
        "--width", str(a.width), "--forwards", str(a.forwards), "--dtype", "f32",
    ]
    # OpenBLAS (with the `openblas` feature) has its own pool: same thread count as rayon's.
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    lines = out.strip().splitlines()
    print(lines[0])
    return json.loads(lines[-1])


def run_diffusers(a, tokens, threads):
    # Child process so its peak RSS is its own.
    code = f"""
import json, resource, time, torch
from diffusers import WanTransformer3DModel
torch.manual_seed(0)
torch.set_num_threads({threads})
m = WanTransformer3DModel(
    patch_size=(1, 2, 2), num_attention_heads={a.heads}, attention_head_dim={a.dim // a.heads},
    in_channels=36, out_channels=16, text_dim=4096, freq_dim=256, ffn_dim={a.ffn},
    num_layers={a.layers}, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
    image_dim=1280, added_kv_proj_dim={a.dim}, rope_max_seq_len=1024,
).eval()
f, h, w = {tokens['grid']}
x = torch.randn(1, 36, f, h, w)
ctx = torch.randn(1, 512, 4096)
img = torch.randn(1, 257, 1280)
t = torch.tensor([500])
with torch.inference_mode():
    m(x, t, ctx, img)  # warm-up
    times = []
    for _ in range({a.forwards}):
        t0 = time.perf_counter()
        m(x, t, ctx, img)
        times.append(time.perf_counter() - t0)
dt = sum(times) / len(times)
print(json.dumps(dict(seconds_per_forward=dt, best_seconds_per_forward=min(times), tokens={tokens['n']},
                      tokens_per_second={tokens['n']} / dt,
                      peak_memory_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      torch=torch.__version__)))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--ffn", type=int, default=4096)
    p.add_argument("--frames", type=int, default=8, help="latent frames of our video stream")
    p.add_argument("--height", type=int, default=32, help="latent height")
    p.add_argument("--width", type=int, default=48, help="latent width")
    p.add_argument("--forwards", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2, help="alternating runs of both sides")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--rust-bin", default=None)
    a = p.parse_args()

    # Our sequence: ref + video at (h/2, w/2) patches per frame, pose at (h/4, w/4).
    per = (a.height // 2) * (a.width // 2)
    ours_tokens = (1 + a.frames) * per + a.frames * (a.height // 4) * (a.width // 4)
    if ours_tokens % per != 0:
        sys.exit(f"{ours_tokens} tokens is not a whole number of {per}-token frames: pick frames % 4 == 0")
    grid = (ours_tokens // per, a.height, a.width)
    print(f"config: dim {a.dim}, heads {a.heads}, layers {a.layers}, ffn {a.ffn}, {ours_tokens} tokens "
          f"(diffusers latent grid {grid}), context 512 text + 257 image, f32, {a.threads} threads")

    # Alternate the two sides and keep each one's best forward: on a shared machine other load
    # only ever slows a run down.
    best_ours, best_theirs = float("inf"), float("inf")
    for _ in range(a.rounds):
        ours = run_ours(a, a.threads)
        theirs = run_diffusers(a, dict(n=ours_tokens, grid=grid), a.threads)
        print(f"diffusers WanTransformer3DModel (torch {theirs['torch']}): {theirs['seconds_per_forward']:.3f} s/forward "
              f"(best {theirs['best_seconds_per_forward']:.3f}), {theirs['tokens_per_second']:.0f} tokens/s, "
              f"peak {theirs['peak_memory_bytes'] / 1e9:.2f} GB")
        best_ours = min(best_ours, ours["best_seconds_per_forward"])
        best_theirs = min(best_theirs, theirs["best_seconds_per_forward"])
    ratio = best_theirs / best_ours
    print(f"best forward: ours {best_ours:.3f} s ({ours_tokens / best_ours:.0f} tokens/s) vs diffusers "
          f"{best_theirs:.3f} s ({ours_tokens / best_theirs:.0f} tokens/s): ratio diffusers/ours = {ratio:.2f} "
          f"({'ours faster' if ratio >= 1 else 'diffusers faster'})")


if __name__ == "__main__":
    main()
