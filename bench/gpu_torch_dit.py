#!/usr/bin/env python3
"""The PyTorch side of bench/gpu.sh: one forward of a 14B SCAIL-2 / Wan 2.1 I2V DiT at a given
token count on the GPU, random weights, bf16 matmuls under autocast with the residual stream in
f32 as the reference keeps it, attention by `F.scaled_dot_product_attention` (PyTorch picks its
fastest fused backend: FlashAttention-2 or cuDNN on H100/H200).

diffusers' `WanTransformer3DModel` is used when it imports (the reference's own block code);
otherwise this file's compact module with the same blocks (modulated self-attention with RMS
q/k norms and RoPE, text + image cross-attention, tanh-GELU FFN), which does the same work at
the same shapes. Prints one JSON line: seconds per forward (best and mean), FLOPs, TFLOP/s,
peak device memory.

    python3 bench/gpu_torch_dit.py --tokens 48832 [--layers 40] [--forwards 2]
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from dit_flops import CLIP_TOKENS, DIM, FFN, HEADS, TEXT, flops


class RMS(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).type_as(x) * self.w


def rope(x, cos, sin):
    # x [B, H, L, D]: rotate pairs (the reference's complex multiply), in f32.
    xf = x.float().unflatten(-1, (-1, 2))
    a, b = xf[..., 0], xf[..., 1]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2).type_as(x)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        d = DIM
        self.mod = nn.Parameter(torch.randn(1, 6, d) / d**0.5)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.nq, self.nk = RMS(d), RMS(d)
        self.cq, self.ck, self.cv, self.co = (nn.Linear(d, d) for _ in range(4))
        self.ck_img, self.cv_img = nn.Linear(d, d), nn.Linear(d, d)
        self.ncq, self.nck, self.nck_img = RMS(d), RMS(d), RMS(d)
        self.norm3 = nn.LayerNorm(d, eps=1e-6)
        self.ffn0, self.ffn2 = nn.Linear(d, FFN), nn.Linear(FFN, d)

    def heads(self, t):
        b, l, _ = t.shape
        return t.view(b, l, HEADS, DIM // HEADS).transpose(1, 2)

    def forward(self, x, e, ctx, img, cos, sin):
        m = (self.mod.float() + e).chunk(6, dim=1)
        ln = lambda t: F.layer_norm(t.float(), (DIM,), eps=1e-6)
        h = ln(x) * (1 + m[1]) + m[0]
        q = rope(self.heads(self.nq(self.q(h))), cos, sin)
        k = rope(self.heads(self.nk(self.k(h))), cos, sin)
        v = self.heads(self.v(h))
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        x = x + self.o(a).float() * m[2]
        h = self.norm3(x.float())
        q = self.heads(self.ncq(self.cq(h)))
        t = F.scaled_dot_product_attention(
            q, self.heads(self.nck(self.ck(ctx))), self.heads(self.cv(ctx))
        )
        i = F.scaled_dot_product_attention(
            q, self.heads(self.nck_img(self.ck_img(img))), self.heads(self.cv_img(img))
        )
        x = x + self.co((t + i).transpose(1, 2).flatten(2)).float()
        h = ln(x) * (1 + m[4]) + m[3]
        y = self.ffn2(F.gelu(self.ffn0(h), approximate="tanh"))
        return x + y.float() * m[5]


def own_model(layers, tokens, dev):
    blocks = nn.ModuleList(Block() for _ in range(layers)).to(dev, torch.bfloat16)
    # Norm gains and modulation stay f32, as the reference keeps them.
    for b in blocks:
        for p in (b.mod, b.norm3.weight, b.norm3.bias):
            p.data = p.data.float()
    hd = DIM // HEADS
    pos = torch.arange(tokens, device=dev, dtype=torch.float64)
    freqs = 1.0 / (10000 ** (torch.arange(0, hd, 2, device=dev, dtype=torch.float64) / hd))
    ang = torch.outer(pos, freqs)
    cos, sin = ang.cos().float(), ang.sin().float()
    x = torch.randn(1, tokens, DIM, device=dev)
    e = torch.randn(1, 6, DIM, device=dev) * 0.02
    ctx = torch.randn(1, TEXT, DIM, device=dev, dtype=torch.bfloat16)
    img = torch.randn(1, CLIP_TOKENS, DIM, device=dev, dtype=torch.bfloat16)

    def forward():
        h = x
        with torch.autocast("cuda" if dev.type == "cuda" else "cpu", dtype=torch.bfloat16):
            for b in blocks:
                h = b(h, e, ctx, img, cos, sin)
        return h

    return forward, "own torch module (same blocks as the reference)", tokens


def diffusers_model(layers, tokens, dev):
    from diffusers import WanTransformer3DModel  # noqa: the reference's own blocks

    # Wan 2.1 I2V 14B config; the video grid is chosen to give `tokens` patches.
    m = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=DIM // HEADS,
        in_channels=36, out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=FFN,
        num_layers=layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        eps=1e-6, image_dim=1280, added_kv_proj_dim=DIM, rope_max_seq_len=1024,
    ).to(dev, torch.bfloat16)
    # A 512x896 latent grid (32x56 patches a frame) with as many frames as give `tokens`.
    frames = max(1, round(tokens / (32 * 56)))
    hid = torch.randn(1, 36, frames, 64, 112, device=dev, dtype=torch.bfloat16)
    t = torch.tensor([500.0], device=dev)
    ctx = torch.randn(1, TEXT, 4096, device=dev, dtype=torch.bfloat16)
    img = torch.randn(1, CLIP_TOKENS, 1280, device=dev, dtype=torch.bfloat16)

    def forward():
        return m(hid, t, ctx, encoder_hidden_states_image=img, return_dict=False)[0]

    return forward, "diffusers WanTransformer3DModel", frames * 32 * 56


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=48832)
    ap.add_argument("--layers", type=int, default=40)
    ap.add_argument("--forwards", type=int, default=2)
    ap.add_argument("--impl", choices=["auto", "own", "diffusers"], default="auto")
    a = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    build = own_model
    if a.impl in ("auto", "diffusers"):
        try:
            import diffusers  # noqa: F401

            build = diffusers_model
        except ImportError:
            if a.impl == "diffusers":
                raise
    forward, name, tokens = build(a.layers, a.tokens, dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.no_grad():
        forward()
        sync()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(max(1, a.forwards)):
            t0 = time.perf_counter()
            forward()
            sync()
            times.append(time.perf_counter() - t0)
    fl = flops(tokens, a.layers)
    best = min(times)
    print(json.dumps({
        "impl": name, "device": str(dev), "tokens": tokens, "layers": a.layers,
        "seconds_best": best, "seconds_mean": sum(times) / len(times), "flops": fl,
        "tflops": fl / best / 1e12,
        "peak_device_bytes": torch.cuda.max_memory_allocated() if dev.type == "cuda" else None,
        "torch": torch.__version__,
        "sdpa_backends": [b for b in ("flash", "mem_efficient", "cudnn")
                          if dev.type == "cuda" and getattr(torch.backends.cuda, f"{b}_sdp_enabled", lambda: False)()],
    }))


if __name__ == "__main__":
    main()
