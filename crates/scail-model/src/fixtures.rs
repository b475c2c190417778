//! Access to the numerical oracle in `testdata/fixtures` (or `SCAIL_FIXTURES_DIR`).
//!
//! Parity tests take every size and file name from the folder's `manifest.json`, so other
//! fixture sets of the same format (other widths, head, layer and frame counts) pass unchanged.
//! Feature `testing`.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

use crate::clip::ClipVisionConfig;
use crate::dit::DitInputs;
use crate::t5::T5Config;
use crate::vae::VaeConfig;

/// The fixture folder: `SCAIL_FIXTURES_DIR`, else the repository's `testdata/fixtures`.
pub fn dir() -> PathBuf {
    scail_testdata::fixtures_dir()
}

/// The parsed `manifest.json`.
pub fn manifest() -> serde_json::Value {
    let path = dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

/// Every tensor of one fixture file, on the CPU, in its stored dtype.
pub fn load(file: &str) -> HashMap<String, Tensor> {
    let path = dir().join(file);
    candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

/// The manifest entry of one output tensor of a file.
pub fn tensor_entry<'a>(
    manifest: &'a serde_json::Value,
    file: &str,
    name: &str,
) -> Option<&'a serde_json::Value> {
    manifest["files"][file]["tensors"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == name)
}

/// The tolerance the manifest suggests for an output: `Some(atol)`, or `None` when it must match
/// exactly.
pub fn atol(manifest: &serde_json::Value, file: &str, name: &str) -> Option<f64> {
    let e = tensor_entry(manifest, file, name)
        .unwrap_or_else(|| panic!("{file}: no manifest entry for {name}"));
    e["suggested"]["atol"].as_f64()
}

/// Largest absolute value of a tensor (the scale relative errors are taken against).
pub fn max_abs(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Largest absolute difference between two tensors of the same shape (compared in f64).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Asserts `max|got - want| <= atol` from the manifest (or exact equality where it says exact).
pub fn assert_close(
    manifest: &serde_json::Value,
    file: &str,
    name: &str,
    got: &Tensor,
    want: &Tensor,
) {
    let d = max_abs_diff(got, want);
    match atol(manifest, file, name) {
        Some(tol) => assert!(d <= tol, "{file} {name}: max abs diff {d:e} > atol {tol:e}"),
        None => assert!(
            d == 0.0,
            "{file} {name}: must match exactly, max abs diff {d:e}"
        ),
    }
}

/// The manifest's files of one `kind` (`dit`, `vae`, `t5`, …), sorted by name.
pub fn files_of_kind(manifest: &serde_json::Value, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = manifest["files"]
        .as_object()
        .expect("manifest files")
        .iter()
        .filter(|(_, e)| e["kind"] == kind)
        .map(|(k, _)| k.clone())
        .collect();
    v.sort();
    v
}

/// The only file of a `kind` the folder must have one of (the T5 case, the CLIP case).
pub fn only_file_of_kind(manifest: &serde_json::Value, kind: &str) -> String {
    let files = files_of_kind(manifest, kind);
    assert_eq!(
        files.len(),
        1,
        "expected one {kind} fixture, found {files:?}"
    );
    files.into_iter().next().expect("one file")
}

/// The name of the weights file a case was computed with (its manifest entry's `weights`).
fn weights_name<'a>(manifest: &'a serde_json::Value, file: &str) -> &'a str {
    manifest["files"][file]["weights"]
        .as_str()
        .unwrap_or_else(|| panic!("{file}: no weights file in the manifest"))
}

/// The weights file a case was computed with.
pub fn weights_of(manifest: &serde_json::Value, file: &str) -> PathBuf {
    dir().join(weights_name(manifest, file))
}

/// The `model_config` of the weights a case was computed with.
pub fn model_config<'a>(manifest: &'a serde_json::Value, file: &str) -> &'a serde_json::Value {
    &manifest["files"][weights_name(manifest, file)]["model_config"]
}

fn usize_of(v: &serde_json::Value, what: &str, key: &str) -> usize {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("manifest {what}.{key}")) as usize
}

/// umT5 as the manifest's `config.t5` describes it.
pub fn t5_config(manifest: &serde_json::Value) -> T5Config {
    let c = &manifest["config"]["t5"];
    let u = |k: &str| usize_of(c, "config.t5", k);
    T5Config {
        vocab_size: u("vocab_size"),
        dim: u("dim"),
        dim_attn: u("dim_attn"),
        dim_ffn: u("dim_ffn"),
        num_heads: u("num_heads"),
        num_layers: u("encoder_layers"),
        num_buckets: u("num_buckets"),
        ..T5Config::umt5_xxl()
    }
}

/// The CLIP visual tower as the manifest's `config.clip` describes it.
pub fn clip_config(manifest: &serde_json::Value) -> ClipVisionConfig {
    let c = &manifest["config"]["clip"];
    let u = |k: &str| usize_of(c, "config.clip", k);
    ClipVisionConfig {
        image_size: u("image_size"),
        patch_size: u("patch_size"),
        width: u("vision_dim"),
        heads: u("vision_heads"),
        layers: u("vision_layers"),
        mlp_ratio: u("vision_mlp_ratio"),
        embed_dim: u("embed_dim"),
        eps: 1e-5,
    }
}

/// The VAE a `vae` case was computed with, from its weights' `model_config`.
pub fn vae_config(manifest: &serde_json::Value, file: &str) -> VaeConfig {
    let c = model_config(manifest, file);
    let what = "vae model_config";
    let list = |k: &str| {
        c[k].as_array()
            .unwrap_or_else(|| panic!("manifest {what}.{k}"))
            .clone()
    };
    VaeConfig {
        dim: usize_of(c, what, "dim"),
        z_dim: usize_of(c, what, "z_dim"),
        dim_mult: list("dim_mult")
            .iter()
            .map(|v| v.as_u64().expect("dim_mult entry") as usize)
            .collect(),
        num_res_blocks: usize_of(c, what, "num_res_blocks"),
        // The reference's spelling.
        temporal_downsample: list("temperal_downsample")
            .iter()
            .map(|v| v.as_bool().expect("temperal_downsample entry"))
            .collect(),
    }
}

/// The first value of an integer fixture tensor (flags, counts, the timestep).
pub fn scalar_i64(t: &Tensor) -> i64 {
    t.flatten_all().unwrap().to_vec1::<i64>().unwrap()[0]
}

/// The forward inputs recorded in a `dit` case.
pub fn dit_inputs(d: &HashMap<String, Tensor>) -> DitInputs<'_> {
    DitInputs {
        x: &d["in.x"],
        t: scalar_i64(&d["in.t"]) as f64,
        context: &d["in.context"],
        clip_fea: &d["in.clip_fea"],
        ref_latents: &d["in.ref_latents"],
        ref_masks: &d["in.ref_masks"],
        pose_latents: &d["in.pose_latents"],
        driving_masks: &d["in.driving_masks"],
        history_mask: (scalar_i64(&d["in.has_history_mask"]) != 0).then(|| &d["in.history_mask"]),
        additional_refs: (scalar_i64(&d["in.n_additional_refs"]) > 0).then(|| {
            (
                &d["in.additional_ref_latents"],
                &d["in.additional_ref_masks"],
            )
        }),
        replace: scalar_i64(&d["in.replace_flag"]) != 0,
    }
}
