#!/usr/bin/env python3
"""Writes the small checkpoint files of crates/scail-model/testdata/ with PyTorch itself (the
official-style umT5 / CLIP .pth files are written by the tests from the fixture folder):

* dit_sat_small.pt: a small DiT in SAT layout ({"module": ..., plus the non-tensor entries a
  SAT checkpoint carries}), built from a random Wan-layout state dict by fusing q/k/v, k/v and
  k_img/v_img; dit_sat_small_expected.safetensors holds that Wan-layout dict.
* dit_fp8_scaled_small.safetensors: fp8_scaled layout (float8_e4m3fn weights, per-tensor
  `scale_weight`, `scaled_fp8` marker, `model.diffusion_model.` prefix);
  dit_fp8_expected.safetensors: the dequantised f32 weights (w.float() * scale) and the
  plain tensors.

Run with the venv that has torch: /var/cache/scail/venv/bin/python scripts/make_testdata_weights.py
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "crates", "scail-model", "testdata")
os.makedirs(OUT, exist_ok=True)
g = torch.Generator().manual_seed(7)


# Small Wan-layout DiT dict with every kind of key.
d, f, L = 16, 32, 2
wan = {}
def r(*s):
    return torch.randn(*s, generator=g)
for n, cin in [("patch_embedding", 20), ("patch_embedding_pose", 20), ("patch_embedding_mask", 28)]:
    wan[f"{n}.weight"], wan[f"{n}.bias"] = r(d, cin, 1, 2, 2), r(d)
for n, o, i in [("text_embedding.0", d, 8), ("text_embedding.2", d, d), ("time_embedding.0", d, 8),
                ("time_embedding.2", d, d), ("time_projection.1", 6 * d, d), ("head.head", 64, d),
                ("img_emb.proj.1", 8, 8), ("img_emb.proj.3", d, 8)]:
    wan[f"{n}.weight"], wan[f"{n}.bias"] = r(o, i), r(o)
wan["head.modulation"] = r(1, 2, d)
for n, c in [("img_emb.proj.0", 8), ("img_emb.proj.4", d)]:
    wan[f"{n}.weight"], wan[f"{n}.bias"] = r(c), r(c)
for b in range(L):
    p = f"blocks.{b}"
    wan[f"{p}.modulation"] = r(1, 6, d)
    for a in ["self_attn", "cross_attn"]:
        for x in ["q", "k", "v", "o"]:
            wan[f"{p}.{a}.{x}.weight"], wan[f"{p}.{a}.{x}.bias"] = r(d, d), r(d)
        wan[f"{p}.{a}.norm_q.weight"], wan[f"{p}.{a}.norm_k.weight"] = r(d), r(d)
    for x in ["k_img", "v_img"]:
        wan[f"{p}.cross_attn.{x}.weight"], wan[f"{p}.cross_attn.{x}.bias"] = r(d, d), r(d)
    wan[f"{p}.cross_attn.norm_k_img.weight"] = r(d)
    wan[f"{p}.norm3.weight"], wan[f"{p}.norm3.bias"] = r(d), r(d)
    wan[f"{p}.ffn.0.weight"], wan[f"{p}.ffn.0.bias"] = r(f, d), r(f)
    wan[f"{p}.ffn.2.weight"], wan[f"{p}.ffn.2.bias"] = r(d, f), r(d)

P = "model.diffusion_model."
sat = {}
for s in ["weight", "bias"]:
    sat[f"{P}mixins.patch_embed.proj.{s}"] = wan[f"patch_embedding.{s}"]
    sat[f"{P}mixins.patch_embed.proj_pose.{s}"] = wan[f"patch_embedding_pose.{s}"]
    sat[f"{P}mixins.patch_embed.proj_mask.{s}"] = wan[f"patch_embedding_mask.{s}"]
    for a in ["0", "2"]:
        sat[f"{P}text_embedding.{a}.{s}"] = wan[f"text_embedding.{a}.{s}"]
        sat[f"{P}time_embed.{a}.{s}"] = wan[f"time_embedding.{a}.{s}"]
    sat[f"{P}adaln_projection.1.{s}"] = wan[f"time_projection.1.{s}"]
    sat[f"{P}mixins.final_layer.linear.{s}"] = wan[f"head.head.{s}"]
    for a in ["0", "1", "3", "4"]:
        sat[f"{P}clip_proj.proj.{a}.{s}"] = wan[f"img_emb.proj.{a}.{s}"]
sat[f"{P}mixins.final_layer.adaLN_modulation"] = wan["head.modulation"]
for b in range(L):
    p, t, m = f"blocks.{b}", f"{P}transformer.layers.{b}", f"{P}mixins.adaln_layer"
    sat[f"{m}.adaLN_modulations.{b}"] = wan[f"{p}.modulation"]
    for s in ["weight", "bias"]:
        sat[f"{t}.attention.query_key_value.{s}"] = torch.cat([wan[f"{p}.self_attn.{x}.{s}"] for x in "qkv"], 0)
        sat[f"{t}.attention.dense.{s}"] = wan[f"{p}.self_attn.o.{s}"]
        sat[f"{t}.cross_attention.query.{s}"] = wan[f"{p}.cross_attn.q.{s}"]
        sat[f"{t}.cross_attention.key_value.{s}"] = torch.cat([wan[f"{p}.cross_attn.{x}.{s}"] for x in "kv"], 0)
        sat[f"{t}.cross_attention.dense.{s}"] = wan[f"{p}.cross_attn.o.{s}"]
        sat[f"{m}.clip_feature_key_value_list.{b}.{s}"] = torch.cat(
            [wan[f"{p}.cross_attn.k_img.{s}"], wan[f"{p}.cross_attn.v_img.{s}"]], 0)
        sat[f"{t}.post_cross_attention_layernorm.{s}"] = wan[f"{p}.norm3.{s}"]
        sat[f"{t}.mlp.dense_h_to_4h.{s}"] = wan[f"{p}.ffn.0.{s}"]
        sat[f"{t}.mlp.dense_4h_to_h.{s}"] = wan[f"{p}.ffn.2.{s}"]
    sat[f"{m}.query_layernorm_list.{b}.weight"] = wan[f"{p}.self_attn.norm_q.weight"]
    sat[f"{m}.key_layernorm_list.{b}.weight"] = wan[f"{p}.self_attn.norm_k.weight"]
    sat[f"{m}.cross_query_layernorm_list.{b}.weight"] = wan[f"{p}.cross_attn.norm_q.weight"]
    sat[f"{m}.cross_key_layernorm_list.{b}.weight"] = wan[f"{p}.cross_attn.norm_k.weight"]
    sat[f"{m}.clip_feature_key_layernorm_list.{b}.weight"] = wan[f"{p}.cross_attn.norm_k_img.weight"]
# The top level of a SAT checkpoint also holds training state next to `module`.
torch.save({"module": sat, "iteration": 1000, "client_lr_scheduler": {}, "np_rng_state": np.random.RandomState(0).get_state()},
           os.path.join(OUT, "dit_sat_small.pt"))
save_file({k: v.contiguous() for k, v in wan.items()}, os.path.join(OUT, "dit_sat_small_expected.safetensors"))

# fp8_scaled: a few weights quantised per tensor, the rest plain bf16.
fp8, expect = {}, {}
for k in ["blocks.0.self_attn.q.weight", "blocks.0.ffn.0.weight", "text_embedding.0.weight"]:
    w = wan[k]
    scale = (w.abs().max() / 448.0).float().reshape(1)
    q = (w / scale).to(torch.float8_e4m3fn)
    fp8[P + k] = q
    fp8[P + k.replace(".weight", ".scale_weight")] = scale
    expect[k] = q.float() * scale
for k in ["blocks.0.self_attn.q.bias", "blocks.0.norm3.weight"]:
    fp8[P + k] = wan[k].to(torch.bfloat16)
    expect[k] = wan[k].to(torch.bfloat16).float()
fp8["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
save_file(fp8, os.path.join(OUT, "dit_fp8_scaled_small.safetensors"))
save_file(expect, os.path.join(OUT, "dit_fp8_expected.safetensors"))
print("wrote", sorted(os.listdir(OUT)))
