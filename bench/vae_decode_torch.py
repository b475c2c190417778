#!/usr/bin/env python3
"""PyTorch side of bench/vae_cpu.sh (bench/vae_vs_torch.py): diffusers' AutoencoderKLWan (Wan 2.1 VAE at real
widths, random weights) decoding a random latent [1, 16, T, h, w] in f32 on the CPU.
Prints a human line and one JSON line (seconds, peak RSS)."""
import argparse
import json
import resource
import time

import torch
from diffusers import AutoencoderKLWan

ap = argparse.ArgumentParser()
ap.add_argument("--frames", type=int, default=5)
ap.add_argument("--height", type=int, default=32)
ap.add_argument("--width", type=int, default=56)
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--runs", type=int, default=1)
a = ap.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)
vae = AutoencoderKLWan().eval().float()  # base_dim 96, z_dim 16: the Wan 2.1 VAE
z = torch.randn(1, 16, a.frames, a.height, a.width)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
best = cpu = float("inf")
with torch.inference_mode():
    for _ in range(a.runs):
        t0, c0 = time.perf_counter(), time.process_time()
        out = vae.decode(z).sample
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(f"pytorch vae decode: latent [16,{a.frames},{a.height},{a.width}] -> {out.shape[2]} frames "
      f"{out.shape[3]}x{out.shape[4]}: {best:.2f} s, peak RSS {peak / 2**30:.2f} GiB "
      f"(after model build {before / 2**30:.2f} GiB), torch {torch.__version__}, {torch.get_num_threads()} threads")
print(json.dumps({"impl": "pytorch", "seconds": round(best, 4), "cpu_seconds": round(cpu, 2), "peak_rss_bytes": peak,
                  "frames": int(out.shape[2]), "threads": torch.get_num_threads()}))
