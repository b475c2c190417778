//! Broken checkpoints are refused when opened, before any compute, with an error that names
//! the file and the tensor: a missing or mis-shaped fp8 scale, a truncated file, a dtype no
//! network reads.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use scail_model::weights::Checkpoint;

/// A tensor of ones of `shape` stored as `dtype`.
fn ones(shape: &[usize], dtype: DType) -> Tensor {
    let t = Tensor::ones(shape, DType::F32, &Device::Cpu).unwrap();
    t.to_dtype(dtype).unwrap()
}

/// Writes `tensors` as safetensors at `path`.
fn save(path: &Path, tensors: Vec<(&str, Tensor)>) {
    let t: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    candle_core::safetensors::save(&t, path).unwrap();
}

fn fp8_file(dir: &Path, scale_len: Option<usize>) -> std::path::PathBuf {
    let mut t = vec![
        ("blocks.0.ffn.0.weight", ones(&[4, 3], DType::F8E4M3)),
        ("blocks.0.ffn.0.bias", ones(&[4], DType::F32)),
        ("scaled_fp8", ones(&[2], DType::F8E4M3)),
    ];
    if let Some(n) = scale_len {
        t.push(("blocks.0.ffn.0.scale_weight", ones(&[n], DType::F32)));
    }
    let path = dir.join(format!("fp8-{scale_len:?}.safetensors"));
    save(&path, t);
    path
}

fn open_err(path: &Path) -> String {
    match Checkpoint::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn fp8_scales_must_exist_and_fit_their_weight() {
    let dir = tempfile::tempdir().unwrap();
    for ok in [1, 4] {
        let ck = Checkpoint::open(&fp8_file(dir.path(), Some(ok))).unwrap();
        assert!(ck.contains("blocks.0.ffn.0.scale_weight"));
    }
    let path = fp8_file(dir.path(), None);
    let e = open_err(&path);
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(
        e.contains("`blocks.0.ffn.0.weight`") && e.contains("scale_weight"),
        "{e}"
    );
    let path = fp8_file(dir.path(), Some(3));
    let e = open_err(&path);
    assert!(
        e.contains(&path.display().to_string()) && e.contains("`blocks.0.ffn.0.scale_weight`"),
        "{e}"
    );
    assert!(e.contains("[3]") && e.contains("[4, 3]"), "{e}");
}

#[test]
fn a_truncated_file_names_the_tensor_it_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    save(
        &path,
        vec![
            ("a.weight", ones(&[8, 8], DType::F32)),
            ("z.weight", ones(&[64, 64], DType::F32)),
        ],
    );
    let bytes = std::fs::read(&path).unwrap();
    // Cut inside the last tensor's data (safetensors orders data by name).
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let e = open_err(&path);
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(e.contains("`z.weight`") && e.contains("truncated"), "{e}");
    // Cut inside the header.
    std::fs::write(&path, &bytes[..20]).unwrap();
    let e = open_err(&path);
    assert!(e.contains("truncated"), "{e}");
    // A PyTorch zip that lost its end (its directory).
    let pth = dir.path().join("w.pth");
    let sat = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/dit_sat_small.pt");
    let pt_bytes = std::fs::read(sat).unwrap();
    std::fs::write(&pth, &pt_bytes[..pt_bytes.len() / 2]).unwrap();
    let e = open_err(&pth);
    assert!(
        e.contains(&pth.display().to_string()) && e.contains("truncated"),
        "{e}"
    );
}

#[test]
fn an_unsupported_dtype_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ints.safetensors");
    save(
        &path,
        vec![
            ("blocks.0.ffn.0.weight", ones(&[4, 3], DType::F32)),
            ("blocks.0.ffn.0.bias", ones(&[4], DType::I64)),
        ],
    );
    let e = open_err(&path);
    assert!(
        e.contains(&path.display().to_string()) && e.contains("`blocks.0.ffn.0.bias`"),
        "{e}"
    );
    assert!(e.contains("I64"), "{e}");
}

#[test]
fn the_stored_precision_of_a_folder_is_its_dit_blocks_dtype() {
    use scail_model::weights::{stored_precision, DIT_ST};
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(stored_precision(dir.path()), None, "no DiT");
    let path = dir.path().join(DIT_ST);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    for (stored, want) in [
        (DType::F32, DType::F32),
        (DType::BF16, DType::BF16),
        (DType::F16, DType::F16),
    ] {
        save(
            &path,
            vec![("blocks.0.ffn.0.weight", ones(&[4, 3], stored))],
        );
        assert_eq!(stored_precision(dir.path()), Some(want), "{stored:?}");
    }
    // fp8_scaled computes in bf16.
    std::fs::copy(fp8_file(dir.path(), Some(4)), &path).unwrap();
    assert_eq!(stored_precision(dir.path()), Some(DType::BF16));
}
