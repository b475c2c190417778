#!/usr/bin/env python3
"""Our f32 CPU DiT forward against diffusers' WanTransformer3DModel, in one run.

diffusers' Wan 2.1 I2V transformer has the same block structure as the SCAIL-2 DiT (modulated
self-attention with RMS q/k norms across heads and RoPE, text + image cross-attention, FFN), so at
equal width, heads, layers, FFN width, token count and context (512 text + 257 image tokens) the
two forwards do the same work. Both get random weights and random inputs; both run on the CPU in
float32 with the same number of threads.

`bench/dit_cpu.sh` builds our default and `openblas` binaries and runs this with both
(`--ours LABEL=PATH`, repeatable; without it, the newest `dit_forward` build). Every round runs
each side once, in turn (ours, each build, then diffusers), for `--rounds` rounds (3): timings on
these machines drift by up to 40% from run to run, so only interleaved rounds compare. Each run
keeps its best forward; per side the script prints the min and median over rounds, peak RSS, and
the ratio diffusers / ours by min and by median (above 1: ours is faster), with the CPU's vector
extensions and the matmul library of each side.
"""

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import time


def find_rust_bin():
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


def run_ours(a, binary, threads):
    cmd = [
        binary,
        "--dim", str(a.dim), "--heads", str(a.heads), "--layers", str(a.layers),
        "--ffn", str(a.ffn), "--frames", str(a.frames), "--height", str(a.height),
        "--width", str(a.width), "--forwards", str(a.forwards), "--dtype", "f32",
    ]
    # OpenBLAS (with the `openblas` feature) has its own pool: same thread count as rayon's.
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


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
                      torch=torch.__version__, mkl=torch.backends.mkl.is_available(),
                      onednn=torch.backends.mkldnn.is_available())))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cpu_summary():
    model, flags = "?", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"]
    return f"{model}; vector extensions: {' '.join(x for x in wanted if x in flags) or 'none of ' + ' '.join(wanted)}"


def spread(xs):
    xs = sorted(xs)
    return xs[0], xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


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
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each side once per round)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--ours", action="append", default=[], metavar="LABEL=PATH",
                   help="one of our dit_forward builds (repeatable), e.g. default=... openblas=...")
    a = p.parse_args()
    ours_bins = [tuple(x.split("=", 1)) for x in a.ours] or [("ours", find_rust_bin())]

    # Our sequence: ref + video at (h/2, w/2) patches per frame, pose at (h/4, w/4).
    per = (a.height // 2) * (a.width // 2)
    ours_tokens = (1 + a.frames) * per + a.frames * (a.height // 4) * (a.width // 4)
    if ours_tokens % per != 0:
        sys.exit(f"{ours_tokens} tokens is not a whole number of {per}-token frames: pick frames % 4 == 0")
    grid = (ours_tokens // per, a.height, a.width)
    print(f"config: dim {a.dim}, heads {a.heads}, layers {a.layers}, ffn {a.ffn}, {ours_tokens} tokens "
          f"(diffusers latent grid {grid}), context 512 text + 257 image, f32, {a.threads} threads each side")
    print(f"cpu: {cpu_summary()}")

    best = {label: [] for label, _ in ours_bins}
    best["diffusers"] = []
    peak = {}
    info = {}
    for r in range(a.rounds):
        for label, binary in ours_bins:
            o = run_ours(a, binary, a.threads)
            best[label].append(o["best_seconds_per_forward"])
            peak[label] = max(peak.get(label, 0), o.get("peak_memory_bytes") or 0)
        t = run_diffusers(a, dict(n=ours_tokens, grid=grid), a.threads)
        best["diffusers"].append(t["best_seconds_per_forward"])
        peak["diffusers"] = max(peak.get("diffusers", 0), t["peak_memory_bytes"])
        info = t
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in best.items()))

    print(f"\nbest forward per run over {a.rounds} interleaved rounds (matmuls: ours by build label; "
          f"diffusers torch {info['torch']}, MKL {info['mkl']}, oneDNN {info['onednn']}):")
    print(f"{'side':<12} {'min s':>8} {'median s':>9} {'peak GB':>8} {'diffusers/ours min':>19} {'median':>7}")
    t_min, t_med = spread(best["diffusers"])
    for label, xs in best.items():
        lo, med = spread(xs)
        ratio = "" if label == "diffusers" else f"{t_min / lo:>19.2f} {t_med / med:>7.2f}"
        print(f"{label:<12} {lo:>8.3f} {med:>9.3f} {peak.get(label, 0) / 1e9:>8.2f} {ratio}")
    print("ratio above 1: ours is faster")


if __name__ == "__main__":
    main()
