//! `weights init-random` / `verify` / `convert` on real-layout folders.

use std::os::unix::fs::MetadataExt;

use candle_core::{DType, Device, Tensor};
use scail_model::tokenizer::T5Tokenizer;
use scail_model::vae::WanVae;
use scail_model::weights::{self, Checkpoint, Contract, ModelSize};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("scail-weights-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn sparse_14b_folder_verifies_with_the_exact_contract() {
    let dir = tmp("14b");
    let rep = weights::init_random(ModelSize::FourteenB, &dir, true, 0).unwrap();
    // Real apparent sizes (the DiT alone is 65.6 GB in fp32), almost no disk blocks.
    assert!(rep.bytes > 75_000_000_000, "apparent size {}", rep.bytes);
    let used: u64 = rep
        .files
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().blocks() * 512)
        .sum();
    assert!(used < 64 << 20, "sparse folder uses {used} bytes on disk");

    let v = weights::verify(&dir).unwrap();
    println!("{v}");
    assert!(v.ok(), "{v}");
    assert_eq!(v.size, ModelSize::FourteenB);
    let get = |c: &str| v.components.iter().find(|r| r.component == c).unwrap();
    // Spec §1: the Wan-layout DiT has 1307 tensors and 16,395,544,384 parameters; the
    // official encoder files have 194 / 242 / 393 tensors.
    assert_eq!(
        (get("dit").found_tensors, get("dit").found_params),
        (1307, 16_395_544_384)
    );
    assert_eq!(get("vae").found_tensors, 194);
    assert_eq!(get("t5").found_tensors, 242);
    assert_eq!(get("clip").found_tensors, 393);
    assert_eq!(get("t5").dtypes.keys().collect::<Vec<_>>(), vec!["bf16"]);
    let table = v.to_string();
    assert!(
        table.contains("16395544384") && table.contains("overall: ok"),
        "{table}"
    );
    let tok = T5Tokenizer::from_file(v.tokenizer.as_ref().unwrap()).unwrap();
    assert_eq!(tok.eos_id(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_reports_contract_violations() {
    let dir = tmp("broken");
    weights::init_random(ModelSize::Tiny, &dir, true, 0).unwrap();
    // Replace the VAE by one with a missing tensor and a wrong shape.
    let contract = Contract::new(ModelSize::Tiny);
    let mut keys = contract.vae.expected_keys();
    keys.retain(|(n, _)| n != "decoder.head.2.bias");
    keys[0].1[0] += 1;
    let entries: Vec<_> = keys
        .iter()
        .map(|(n, s)| scail_model::pth::PthEntry {
            name: n.clone(),
            dtype: DType::F32,
            shape: s.clone(),
        })
        .collect();
    scail_model::pth::write_pth(
        &dir.join(weights::VAE_PTH),
        &entries,
        &scail_model::pth::Nesting::Flat,
        true,
        |_| unreachable!(),
    )
    .unwrap();
    std::fs::remove_file(dir.join(weights::T5_TOKENIZER)).unwrap();
    let v = weights::verify(&dir).unwrap();
    assert!(!v.ok());
    let vae = v.components.iter().find(|r| r.component == "vae").unwrap();
    assert_eq!(vae.missing, vec!["decoder.head.2.bias".to_string()]);
    assert_eq!(vae.wrong_shape.len(), 1);
    assert!(v.tokenizer.is_none());
    assert!(v
        .components
        .iter()
        .filter(|c| c.component != "vae")
        .all(|c| c.ok()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tiny_random_folder_loads_converts_and_runs() {
    let dir = tmp("tiny");
    weights::init_random(ModelSize::Tiny, &dir, false, 1).unwrap();
    let v = weights::verify(&dir).unwrap();
    assert!(v.ok() && v.size == ModelSize::Tiny, "{v}");

    let out = tmp("tiny-canonical");
    let rep = weights::convert(&dir, &out).unwrap();
    assert_eq!(rep.files.len(), 5);
    let v2 = weights::verify(&out).unwrap();
    assert!(v2.ok(), "{v2}");
    assert!(v2
        .components
        .iter()
        .find(|c| c.component == "dit")
        .unwrap()
        .dtypes
        .contains_key("bf16"));

    // Official SAT file and converted file hold the same DiT (up to the bf16 rounding).
    let a = Checkpoint::open(&dir.join(weights::DIT_SAT)).unwrap();
    let b = Checkpoint::open(&out.join(weights::DIT_ST)).unwrap();
    for name in [
        "blocks.1.self_attn.k.weight",
        "blocks.0.cross_attn.v_img.bias",
        "patch_embedding_mask.weight",
    ] {
        let x = a
            .load(name)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let y = b.load(name).unwrap().to_dtype(DType::F32).unwrap();
        assert_eq!(scail_model::fixtures::max_abs_diff(&x, &y), 0.0, "{name}");
        assert!(
            x.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0,
            "{name} is random, not zero"
        );
    }

    // The random VAE from the official .pth runs end to end.
    let contract = Contract::new(ModelSize::Tiny);
    let vb = Checkpoint::open(&dir.join(weights::VAE_PTH))
        .unwrap()
        .var_builder(DType::F32, &Device::Cpu);
    let vae = WanVae::new(&contract.vae, vb).unwrap();
    let z = Tensor::randn(0f32, 1.0, (16, 2, 4, 6), &Device::Cpu).unwrap();
    let x = vae.decode(&z).unwrap();
    assert_eq!(x.dims(), &[3, 5, 32, 48]);
    // SCAIL_WEIGHTS_KEEP keeps the folder, e.g. to load it with PyTorch by hand.
    if std::env::var_os("SCAIL_WEIGHTS_KEEP").is_some() {
        println!("kept {}", dir.display());
        return;
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
}
