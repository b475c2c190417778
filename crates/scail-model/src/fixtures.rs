//! Access to the numerical oracle in `testdata/fixtures` (or `SCAIL_FIXTURES_DIR`).
//!
//! Parity tests take every size from the folder's `manifest.json`, so other fixture sets of the
//! same format pass unchanged.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

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
