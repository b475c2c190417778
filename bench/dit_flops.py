"""FLOPs of one 14B SCAIL-2 / Wan 2.1 DiT forward (multiply-adds x 2), shared by bench/gpu.sh's
comparison and bench/gpu_torch_dit.py; no torch needed."""

DIM, HEADS, FFN, TEXT, CLIP_TOKENS = 5120, 40, 13824, 512, 257


def flops(tokens, layers, dim=DIM, ffn=FFN, ctx=TEXT + CLIP_TOKENS):
    """Projections, attention, cross-attention and FFN of `layers` blocks over `tokens`."""
    per_block = (
        8 * tokens * dim * dim  # self q, k, v, o
        + 4 * tokens * tokens * dim  # QK^T and PV
        + 4 * tokens * dim * dim  # cross q, o
        + 8 * ctx * dim * dim  # cross k, v for text and image keys
        + 4 * tokens * ctx * dim  # cross attention
        + 4 * tokens * dim * ffn  # FFN
    )
    return layers * per_block
