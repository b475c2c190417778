#!/usr/bin/env python3
"""Our f32 CPU VAE decode against PyTorch's (diffusers' AutoencoderKLWan, the Wan 2.1 VAE at
real widths, random weights), interleaved in one run.

Every round runs each side once, in turn (each of our builds given with `--ours LABEL=PATH`,
then PyTorch), for `--rounds` rounds (3), with the same thread count: timings on these machines
drift by up to 40% from run to run, so only interleaved rounds compare. Per side: min and
median seconds over rounds, peak RSS, and the ratio PyTorch / ours by min and by median (above
1: ours is faster), with the CPU's vector extensions and each side's matmul library.
`bench/vae_cpu.sh` builds our default and `openblas` binaries and runs this.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_vs_diffusers import cpu_summary, spread  # noqa: E402


def last_json(cmd, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=5, help="latent frames (5 -> 17 video frames)")
    p.add_argument("--height", type=int, default=32, help="latent height (x8 pixels)")
    p.add_argument("--width", type=int, default=56, help="latent width (x8 pixels)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--ours", action="append", default=[], metavar="LABEL=PATH", required=True,
                   help="one of our vae_decode bench builds (repeatable)")
    a = p.parse_args()
    size = ["--frames", str(a.frames), "--height", str(a.height), "--width", str(a.width),
            "--threads", str(a.threads)]
    ours = [tuple(x.split("=", 1)) for x in a.ours]
    print(f"config: latent [16, {a.frames}, {a.height}, {a.width}] -> {4 * (a.frames - 1) + 1} frames "
          f"{8 * a.height}x{8 * a.width}, f32, {a.threads} threads each side")
    print(f"cpu: {cpu_summary()}")
    secs = {label: [] for label, _ in ours}
    secs["pytorch"] = []
    peak = {}
    libs = {}
    for r in range(a.rounds):
        for label, binary in ours:
            o = last_json([binary] + size, a.threads)
            secs[label].append(o["seconds"])
            peak[label] = max(peak.get(label, 0), o["peak_rss_bytes"])
            libs[label] = o.get("blas", "?")
        t = last_json([sys.executable, os.path.join(os.path.dirname(__file__), "vae_decode_torch.py")] + size,
                      a.threads)
        secs["pytorch"].append(t["seconds"])
        peak["pytorch"] = max(peak.get("pytorch", 0), t["peak_rss_bytes"])
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in secs.items()), flush=True)
    import torch

    libs["pytorch"] = (f"torch {torch.__version__}: MKL {torch.backends.mkl.is_available()}, "
                       f"oneDNN {torch.backends.mkldnn.is_available()}")
    print(f"\nseconds per decode over {a.rounds} interleaved rounds:")
    tmin, tmed = spread(secs["pytorch"])
    for label, xs in secs.items():
        lo, med = spread(xs)
        ratio = "" if label == "pytorch" else f", PyTorch / ours {tmin / lo:.2f} by min, {tmed / med:.2f} by median"
        print(f"  {label:10s} min {lo:7.2f} s, median {med:7.2f} s, peak RSS {peak[label] / 2**30:.2f} GiB "
              f"[{libs[label]}]{ratio}")


if __name__ == "__main__":
    main()
