//! Shared test helpers: the fixture folder (sizes from its manifest) and the test media folder.
#![allow(dead_code)]

#[cfg(feature = "ffmpeg")]
pub mod generate;

use std::collections::HashMap;
use std::path::PathBuf;

/// `SCAIL_FIXTURES_DIR`, else `testdata/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    scail_testdata::fixtures_dir()
}

/// `SCAIL_MEDIA_DIR`, else `testdata/media`.
pub fn media_dir() -> PathBuf {
    scail_testdata::media_dir()
}

pub fn manifest() -> serde_json::Value {
    let p = fixtures_dir().join("manifest.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("manifest is JSON")
}

/// A fixture tensor: shape and values widened to f64 (u8/i64/f32 all exact in f64).
#[derive(Clone, Debug)]
pub struct Fx {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Fx {
    pub fn u8s(&self) -> Vec<u8> {
        self.data.iter().map(|&v| v as u8).collect()
    }
    pub fn f32s(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
}

pub fn load(file: &str) -> HashMap<String, Fx> {
    let p = fixtures_dir().join(file);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f64> = match view.dtype() {
            safetensors::Dtype::U8 => raw.iter().map(|&v| v as f64).collect(),
            safetensors::Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                .collect(),
            safetensors::Dtype::I64 => raw
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
                .collect(),
            safetensors::Dtype::F64 => raw
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            d => panic!("{name}: unexpected dtype {d:?}"),
        };
        out.insert(
            name,
            Fx {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    out
}

/// The manifest's suggestion for a tensor: `Some(atol)`, or `None` for an exact match.
pub fn tolerance(m: &serde_json::Value, file: &str, name: &str) -> Option<f64> {
    let t = m["files"][file]["tensors"]
        .as_array()
        .unwrap_or_else(|| panic!("{file} not in manifest"))
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{file}: {name} not in manifest"));
    if t["suggested"]["exact"].as_bool() == Some(true) {
        None
    } else {
        Some(
            t["suggested"]["atol"]
                .as_f64()
                .unwrap_or_else(|| panic!("{name}: no atol")),
        )
    }
}

/// Asserts shape and values against the manifest tolerance; returns the max abs difference.
pub fn assert_matches(
    m: &serde_json::Value,
    file: &str,
    name: &str,
    want: &Fx,
    got_shape: &[usize],
    got: &[f64],
) -> f64 {
    assert_eq!(want.shape, got_shape, "{name}: shape");
    assert_eq!(want.data.len(), got.len(), "{name}: length");
    let mut max = 0.0f64;
    let mut worst = 0;
    for (i, (a, b)) in want.data.iter().zip(got).enumerate() {
        let d = (a - b).abs();
        if d > max || d.is_nan() {
            max = d;
            worst = i;
        }
    }
    match tolerance(m, file, name) {
        None => assert!(
            max == 0.0,
            "{name}: must match exactly, max diff {max} at {worst} (want {}, got {})",
            want.data[worst],
            got[worst]
        ),
        Some(atol) => assert!(
            max <= atol,
            "{name}: max diff {max} > atol {atol} at {worst} (want {}, got {})",
            want.data[worst],
            got[worst]
        ),
    }
    max
}
