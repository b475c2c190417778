//! `scail weights init-random`: random checkpoints in the official layout (feature `testing`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::DType;

use super::keys::wan_to_sat;
use super::layout::{Contract, ModelSize, DIT_SAT_LATEST, T5_TOKENIZER};
use super::{io_err, Result};
use crate::pth::{write_pth, Nesting, PthEntry};

/// What [`init_random`] wrote.
#[derive(Debug, Clone)]
pub struct InitReport {
    pub files: Vec<PathBuf>,
    /// Apparent size of the files (sparse files take no disk space for their data).
    pub bytes: u64,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform(-a, a) values with a = 1/sqrt(fan_in) (norm gains around 1), as little-endian bytes.
fn random_bytes(name: &str, shape: &[usize], dtype: DType, seed: u64) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
    let is_gain = name.ends_with("gamma")
        || (shape.len() == 1
            && (name.contains("norm")
                || name.contains("img_emb.proj.0")
                || name.contains("img_emb.proj.4"))
            && name.ends_with("weight"));
    let a = if shape.len() <= 1 {
        0.1
    } else {
        1.0 / (fan_in as f32).sqrt()
    };
    let mut st = seed
        ^ name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
    let mut out = Vec::with_capacity(n * dtype.size_in_bytes());
    for _ in 0..n {
        let u = (splitmix(&mut st) >> 40) as f32 / (1u64 << 24) as f32;
        let v = (2.0 * u - 1.0) * a + if is_gain { 1.0 } else { 0.0 };
        match dtype {
            DType::F32 => out.extend_from_slice(&v.to_le_bytes()),
            DType::BF16 => out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
            DType::F16 => out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
            _ => unreachable!("init-random writes float checkpoints"),
        }
    }
    out
}

/// `scail weights init-random`: random weights for every component in the official layout
/// (SAT `.pt` DiT, `.pth` VAE/umT5/CLIP) plus a tokenizer, for tests, smoke runs and
/// benchmarks at real size. With `sparse`, tensor data is left as file holes (zeros): the
/// folder has the real sizes and key contract and costs no disk space.
pub fn init_random(size: ModelSize, dir: &Path, sparse: bool, seed: u64) -> Result<InitReport> {
    let contract = Contract::new(size);
    let mut files = Vec::new();
    for (component, official, dtype, keys) in contract.components() {
        let path = dir.join(official);
        let random = |name: &str, shape: &[usize]| random_bytes(name, shape, dtype, seed);
        write_official(&path, component, dtype, &keys, sparse, random)?;
        files.push(path);
    }
    let latest = dir.join(DIT_SAT_LATEST);
    std::fs::write(&latest, "1\n").map_err(io_err(&latest))?;
    files.push(latest);
    let tok = dir.join(T5_TOKENIZER);
    std::fs::write(&tok, synthetic_tokenizer_json(contract.t5.vocab_size)).map_err(io_err(&tok))?;
    files.push(tok);
    let bytes = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    Ok(InitReport { files, bytes })
}

/// Writes one component in its official layout: the SAT DiT fuses q/k/v and k/v along dim 0
/// under `module`, the encoders are flat state dicts. `data(name, shape)` gives the bytes of
/// one canonical tensor.
fn write_official(
    path: &Path,
    component: &str,
    dtype: DType,
    keys: &[(String, Vec<usize>)],
    sparse: bool,
    data: impl Fn(&str, &[usize]) -> Vec<u8>,
) -> Result<()> {
    // (stored name, canonical parts concatenated in it)
    let (stored, nesting): (Vec<(String, Vec<String>)>, Nesting) = if component == "dit" {
        (wan_to_sat(keys), Nesting::Under("module".into()))
    } else {
        let flat = keys.iter().map(|(n, _)| (n.clone(), vec![n.clone()]));
        (flat.collect(), Nesting::Flat)
    };
    let shapes: HashMap<&str, &Vec<usize>> = keys.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let entries: Vec<PthEntry> = stored
        .iter()
        .map(|(name, parts)| {
            let mut shape = shapes[parts[0].as_str()].clone();
            if parts.len() > 1 {
                // Fused along dim 0 (scalars, like CLIP's log_scale, are never fused).
                shape[0] *= parts.len();
            }
            PthEntry {
                name: name.clone(),
                dtype,
                shape,
            }
        })
        .collect();
    write_pth(path, &entries, &nesting, sparse, |i| {
        let parts = &stored[i].1;
        Ok(parts
            .iter()
            .flat_map(|n| data(n, shapes[n.as_str()]))
            .collect())
    })
    .map_err(io_err(path))
}

/// A Unigram tokenizer.json in umT5's layout (`<pad>`, `</s>`, `<unk>` = 0, 1, 2) with
/// `vocab_size` pieces: ASCII characters, then synthetic word pieces.
pub fn synthetic_tokenizer_json(vocab_size: usize) -> String {
    let mut vocab: Vec<serde_json::Value> = vec![
        serde_json::json!(["<pad>", 0.0]),
        serde_json::json!(["</s>", 0.0]),
        serde_json::json!(["<unk>", 0.0]),
        serde_json::json!(["\u{2581}", -3.0]),
    ];
    for c in (b'!'..=b'~').map(|b| b as char) {
        vocab.push(serde_json::json!([c.to_string(), -10.0]));
    }
    let mut i = 0;
    while vocab.len() < vocab_size {
        vocab.push(serde_json::json!([format!("\u{2581}w{i}"), -12.0]));
        i += 1;
    }
    vocab.truncate(vocab_size);
    let special: Vec<serde_json::Value> = ["<pad>", "</s>", "<unk>"]
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let meta = serde_json::json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true});
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": special,
        "normalizer": null, "pre_tokenizer": meta, "post_processor": null, "decoder": meta,
        "model": {"type": "Unigram", "unk_id": 2, "vocab": vocab, "byte_fallback": false}
    })
    .to_string()
}
