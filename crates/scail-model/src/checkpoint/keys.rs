//! The SAT-layout DiT's key names and the Wan layout's (the official `convert.py` mapping).

use super::{Result, WeightsError};

pub(crate) const SAT_PREFIX: &str = "model.diffusion_model.";

/// Prefixes that community files put in front of Wan-layout names: ComfyUI repacks and LoRAs
/// (`model.diffusion_model.`, `diffusion_model.`), PEFT (`base_model.model.`) and diffusers
/// (`transformer.`) LoRAs.
const WAN_PREFIXES: [&str; 4] = [
    SAT_PREFIX,
    "diffusion_model.",
    "base_model.model.",
    "transformer.",
];

/// A Wan-layout name without the community prefixes in front of it (they may be stacked, as in
/// `base_model.model.diffusion_model.`).
pub fn strip_wan_prefix(key: &str) -> &str {
    let mut k = key;
    while let Some(rest) = WAN_PREFIXES.iter().find_map(|p| k.strip_prefix(p)) {
        k = rest;
    }
    k
}

/// The canonical name(s) of a stored key in either layout: SAT keys through [`sat_to_wan`]
/// (with how each part is cut from the stored tensor), anything else as a prefixed Wan name.
pub fn to_canonical(key: &str) -> Vec<(String, usize, usize)> {
    if key.starts_with(SAT_PREFIX) {
        if let Ok(parts) = sat_to_wan(key) {
            return parts;
        }
    }
    vec![(strip_wan_prefix(key).to_string(), 0, 1)]
}

/// The Wan-layout name of a diffusers `WanTransformer3DModel` name (prefix already stripped),
/// for LoRAs trained on the diffusers model: `blocks.0.attn1.to_q` is `blocks.0.self_attn.q`.
/// `None` when no part of it is a diffusers module name.
pub fn diffusers_to_wan(name: &str) -> Option<String> {
    // (diffusers path, Wan path), matched on whole dot-separated segments.
    const TOP: [(&str, &str); 11] = [
        (
            "condition_embedder.time_embedder.linear_1",
            "time_embedding.0",
        ),
        (
            "condition_embedder.time_embedder.linear_2",
            "time_embedding.2",
        ),
        ("condition_embedder.time_proj", "time_projection.1"),
        (
            "condition_embedder.text_embedder.linear_1",
            "text_embedding.0",
        ),
        (
            "condition_embedder.text_embedder.linear_2",
            "text_embedding.2",
        ),
        ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
        (
            "condition_embedder.image_embedder.ff.net.0.proj",
            "img_emb.proj.1",
        ),
        (
            "condition_embedder.image_embedder.ff.net.2",
            "img_emb.proj.3",
        ),
        ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
        ("proj_out", "head.head"),
        ("scale_shift_table", "head.modulation"),
    ];
    // Inside `blocks.N.`; diffusers' norm2 is the affine cross-attention norm, Wan's norm3.
    const BLOCK: [(&str, &str); 19] = [
        ("norm2", "norm3"),
        ("scale_shift_table", "modulation"),
        ("attn1.to_q", "self_attn.q"),
        ("attn1.to_k", "self_attn.k"),
        ("attn1.to_v", "self_attn.v"),
        ("attn1.to_out.0", "self_attn.o"),
        ("attn1.norm_q", "self_attn.norm_q"),
        ("attn1.norm_k", "self_attn.norm_k"),
        ("attn2.to_q", "cross_attn.q"),
        ("attn2.to_k", "cross_attn.k"),
        ("attn2.to_v", "cross_attn.v"),
        ("attn2.to_out.0", "cross_attn.o"),
        ("attn2.norm_q", "cross_attn.norm_q"),
        ("attn2.norm_k", "cross_attn.norm_k"),
        ("attn2.add_k_proj", "cross_attn.k_img"),
        ("attn2.add_v_proj", "cross_attn.v_img"),
        ("attn2.norm_added_k", "cross_attn.norm_k_img"),
        ("ffn.net.0.proj", "ffn.0"),
        ("ffn.net.2", "ffn.2"),
    ];
    let swap = |s: &str, table: &[(&str, &str)]| {
        table.iter().find_map(|(from, to)| {
            let rest = s.strip_prefix(from)?;
            (rest.is_empty() || rest.starts_with('.')).then(|| format!("{to}{rest}"))
        })
    };
    if let Some(w) = swap(name, &TOP) {
        return Some(w);
    }
    let rest = name.strip_prefix("blocks.")?;
    let (i, inner) = rest.split_once('.')?;
    Some(format!("blocks.{i}.{}", swap(inner, &BLOCK)?))
}

/// The canonical name(s) of one SAT key (the official `convert.py` mapping), with how each is
/// cut from the stored tensor.
pub fn sat_to_wan(key: &str) -> Result<Vec<(String, usize, usize)>> {
    let bad = || WeightsError::UnknownSatKey(key.to_string());
    let k = key.strip_prefix(SAT_PREFIX).ok_or_else(bad)?;
    let parts: Vec<&str> = k.split('.').collect();
    let one = |s: String| Ok(vec![(s, 0, 1)]);
    match parts.as_slice() {
        ["mixins", "adaln_layer", "adaLN_modulations", i] => one(format!("blocks.{i}.modulation")),
        ["mixins", "adaln_layer", list, i, suffix] => {
            let target = match *list {
                "query_layernorm_list" => "self_attn.norm_q",
                "key_layernorm_list" => "self_attn.norm_k",
                "cross_query_layernorm_list" => "cross_attn.norm_q",
                "cross_key_layernorm_list" => "cross_attn.norm_k",
                "clip_feature_key_layernorm_list" => "cross_attn.norm_k_img",
                "clip_feature_key_value_list" => {
                    return Ok(vec![
                        (format!("blocks.{i}.cross_attn.k_img.{suffix}"), 0, 2),
                        (format!("blocks.{i}.cross_attn.v_img.{suffix}"), 1, 2),
                    ])
                }
                _ => return Err(bad()),
            };
            one(format!("blocks.{i}.{target}.{suffix}"))
        }
        ["mixins", "final_layer", "adaLN_modulation"] => one("head.modulation".into()),
        ["mixins", "final_layer", "linear", s] => one(format!("head.head.{s}")),
        ["mixins", "patch_embed", proj, s] => {
            let t = match *proj {
                "proj" => "patch_embedding",
                "proj_pose" => "patch_embedding_pose",
                "proj_mask" => "patch_embedding_mask",
                _ => return Err(bad()),
            };
            one(format!("{t}.{s}"))
        }
        ["transformer", "layers", i, "attention", "dense", s] => {
            one(format!("blocks.{i}.self_attn.o.{s}"))
        }
        ["transformer", "layers", i, "attention", "query_key_value", s] => Ok(["q", "k", "v"]
            .iter()
            .enumerate()
            .map(|(j, n)| (format!("blocks.{i}.self_attn.{n}.{s}"), j, 3))
            .collect()),
        ["transformer", "layers", i, "cross_attention", "dense", s] => {
            one(format!("blocks.{i}.cross_attn.o.{s}"))
        }
        ["transformer", "layers", i, "cross_attention", "query", s] => {
            one(format!("blocks.{i}.cross_attn.q.{s}"))
        }
        ["transformer", "layers", i, "cross_attention", "key_value", s] => Ok(vec![
            (format!("blocks.{i}.cross_attn.k.{s}"), 0, 2),
            (format!("blocks.{i}.cross_attn.v.{s}"), 1, 2),
        ]),
        ["transformer", "layers", i, "post_cross_attention_layernorm", s] => {
            one(format!("blocks.{i}.norm3.{s}"))
        }
        ["transformer", "layers", i, "mlp", "dense_h_to_4h", s] => {
            one(format!("blocks.{i}.ffn.0.{s}"))
        }
        ["transformer", "layers", i, "mlp", "dense_4h_to_h", s] => {
            one(format!("blocks.{i}.ffn.2.{s}"))
        }
        ["time_embed", a, s] => one(format!("time_embedding.{a}.{s}")),
        ["adaln_projection", a, s] => one(format!("time_projection.{a}.{s}")),
        ["text_embedding", a, s] => one(format!("text_embedding.{a}.{s}")),
        ["clip_proj", "proj", a, s] => one(format!("img_emb.proj.{a}.{s}")),
        _ => Err(bad()),
    }
}

/// Inverse of [`sat_to_wan`] for writing SAT files: SAT key → canonical parts fused in order.
#[cfg(feature = "testing")]
pub(crate) fn wan_to_sat(canonical: &[(String, Vec<usize>)]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, _) in canonical {
        let p: Vec<&str> = name.split('.').collect();
        let sat = |s: &str| format!("{SAT_PREFIX}{s}");
        let entry: (String, Vec<String>) = match p.as_slice() {
            ["blocks", i, "modulation"] => (
                sat(&format!("mixins.adaln_layer.adaLN_modulations.{i}")),
                vec![name.clone()],
            ),
            ["blocks", i, a, n, s] if ["q", "k", "v"].contains(n) && *a == "self_attn" => (
                sat(&format!(
                    "transformer.layers.{i}.attention.query_key_value.{s}"
                )),
                ["q", "k", "v"]
                    .iter()
                    .map(|x| format!("blocks.{i}.self_attn.{x}.{s}"))
                    .collect(),
            ),
            ["blocks", i, "self_attn", "o", s] => (
                sat(&format!("transformer.layers.{i}.attention.dense.{s}")),
                vec![name.clone()],
            ),
            ["blocks", i, "cross_attn", "q", s] => (
                sat(&format!("transformer.layers.{i}.cross_attention.query.{s}")),
                vec![name.clone()],
            ),
            ["blocks", i, "cross_attn", n, s] if *n == "k" || *n == "v" => (
                sat(&format!(
                    "transformer.layers.{i}.cross_attention.key_value.{s}"
                )),
                vec![
                    format!("blocks.{i}.cross_attn.k.{s}"),
                    format!("blocks.{i}.cross_attn.v.{s}"),
                ],
            ),
            ["blocks", i, "cross_attn", n, s] if *n == "k_img" || *n == "v_img" => (
                sat(&format!(
                    "mixins.adaln_layer.clip_feature_key_value_list.{i}.{s}"
                )),
                vec![
                    format!("blocks.{i}.cross_attn.k_img.{s}"),
                    format!("blocks.{i}.cross_attn.v_img.{s}"),
                ],
            ),
            ["blocks", i, "cross_attn", "o", s] => (
                sat(&format!("transformer.layers.{i}.cross_attention.dense.{s}")),
                vec![name.clone()],
            ),
            ["blocks", i, a, n, s] if n.starts_with("norm_") => {
                let list = match (*a, *n) {
                    ("self_attn", "norm_q") => "query_layernorm_list",
                    ("self_attn", "norm_k") => "key_layernorm_list",
                    ("cross_attn", "norm_q") => "cross_query_layernorm_list",
                    ("cross_attn", "norm_k") => "cross_key_layernorm_list",
                    _ => "clip_feature_key_layernorm_list",
                };
                (
                    sat(&format!("mixins.adaln_layer.{list}.{i}.{s}")),
                    vec![name.clone()],
                )
            }
            ["blocks", i, "norm3", s] => (
                sat(&format!(
                    "transformer.layers.{i}.post_cross_attention_layernorm.{s}"
                )),
                vec![name.clone()],
            ),
            ["blocks", i, "ffn", "0", s] => (
                sat(&format!("transformer.layers.{i}.mlp.dense_h_to_4h.{s}")),
                vec![name.clone()],
            ),
            ["blocks", i, "ffn", "2", s] => (
                sat(&format!("transformer.layers.{i}.mlp.dense_4h_to_h.{s}")),
                vec![name.clone()],
            ),
            ["head", "modulation"] => (
                sat("mixins.final_layer.adaLN_modulation"),
                vec![name.clone()],
            ),
            ["head", "head", s] => (
                sat(&format!("mixins.final_layer.linear.{s}")),
                vec![name.clone()],
            ),
            [pe, s] if pe.starts_with("patch_embedding") => {
                let proj = match *pe {
                    "patch_embedding" => "proj",
                    "patch_embedding_pose" => "proj_pose",
                    _ => "proj_mask",
                };
                (
                    sat(&format!("mixins.patch_embed.{proj}.{s}")),
                    vec![name.clone()],
                )
            }
            ["time_embedding", a, s] => (sat(&format!("time_embed.{a}.{s}")), vec![name.clone()]),
            ["time_projection", a, s] => (
                sat(&format!("adaln_projection.{a}.{s}")),
                vec![name.clone()],
            ),
            ["text_embedding", a, s] => {
                (sat(&format!("text_embedding.{a}.{s}")), vec![name.clone()])
            }
            ["img_emb", "proj", a, s] => {
                (sat(&format!("clip_proj.proj.{a}.{s}")), vec![name.clone()])
            }
            _ => continue,
        };
        if seen.insert(entry.0.clone()) {
            out.push(entry);
        }
    }
    out
}
