"""Independent check of LoRA fusing (run by tests/lora.rs): recomputes W + scale * alpha/rank *
up @ down with numpy in float64 from the raw safetensors files, and compares it with the fused
weights the Rust loader produced.

    python lora_numpy.py PLAN.json

PLAN: {"base": path, "tol": float, "cases": [{"case", "lora", "fused", "scale",
"entries": [{"name", "down", "up", "alpha" (key or null)}]}]}. Prints the worst error of each
case; exits 1 when one is above tol.
"""

import json
import struct
import sys

import numpy as np


def load(path):
    """Every tensor of a safetensors file as float64 arrays (F32 / BF16 / F16 stored)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        raw = data[a:b]
        dt = meta["dtype"]
        if dt == "F32":
            arr = np.frombuffer(raw, "<f4")
        elif dt == "F16":
            arr = np.frombuffer(raw, "<f2")
        elif dt == "BF16":
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view("<f4")
        else:
            sys.exit(f"{path}: {name}: dtype {dt} not handled here")
        out[name] = arr.astype(np.float64).reshape(meta["shape"])
    return out


def main():
    plan = json.load(open(sys.argv[1]))
    base = load(plan["base"])
    worst_all = 0.0
    for case in plan["cases"]:
        lora = load(case["lora"])
        fused = load(case["fused"])
        worst = 0.0
        for e in case["entries"]:
            w = base[e["name"]]
            up = lora[e["up"]]
            down = lora[e["down"]]
            rank = down.shape[0]
            alpha = float(lora[e["alpha"]]) if e["alpha"] else float(rank)
            delta = up.reshape(up.shape[0], rank) @ down.reshape(rank, -1)
            want = w + case["scale"] * (alpha / rank) * delta.reshape(w.shape)
            got = fused[e["name"]]
            assert got.shape == want.shape, (e["name"], got.shape, want.shape)
            worst = max(worst, float(np.abs(got - want).max()))
        print(f"{case['case']}: {len(case['entries'])} tensors, max |fused - numpy| = {worst:.3g}")
        worst_all = max(worst_all, worst)
    if worst_all > plan["tol"]:
        print(f"FAIL: {worst_all:.3g} > tol {plan['tol']}")
        sys.exit(1)


if __name__ == "__main__":
    main()
