//! The key contract of the Wan-layout DiT checkpoint: names and shapes, computed from the config
//! without allocating the model.

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use scail_model::dit::{Dit, DitConfig, DitError};
use scail_model::fixtures;

#[test]
fn fourteen_b_key_contract() {
    let shapes = DitConfig::fourteen_b().weight_shapes();
    assert_eq!(shapes.len(), 1307, "tensor count");
    let params: u64 = shapes
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum();
    assert_eq!(params, 16_395_544_384, "parameter count");
    let map: HashMap<&str, &[usize]> = shapes
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    assert_eq!(map.len(), shapes.len(), "duplicate names");
    // Spot checks against model.md §2.
    for (name, shape) in [
        ("patch_embedding.weight", &[5120, 20, 1, 2, 2][..]),
        ("patch_embedding_pose.weight", &[5120, 20, 1, 2, 2]),
        ("patch_embedding_mask.weight", &[5120, 28, 1, 2, 2]),
        ("text_embedding.0.weight", &[5120, 4096]),
        ("text_embedding.2.weight", &[5120, 5120]),
        ("time_embedding.0.weight", &[5120, 256]),
        ("time_projection.1.weight", &[30720, 5120]),
        ("img_emb.proj.0.weight", &[1280]),
        ("img_emb.proj.1.weight", &[1280, 1280]),
        ("img_emb.proj.3.weight", &[5120, 1280]),
        ("img_emb.proj.4.bias", &[5120]),
        ("head.head.weight", &[64, 5120]),
        ("head.modulation", &[1, 2, 5120]),
        ("blocks.0.modulation", &[1, 6, 5120]),
        ("blocks.39.self_attn.norm_k.weight", &[5120]),
        ("blocks.39.cross_attn.k_img.weight", &[5120, 5120]),
        ("blocks.39.cross_attn.norm_k_img.weight", &[5120]),
        ("blocks.39.norm3.bias", &[5120]),
        ("blocks.39.ffn.0.weight", &[13824, 5120]),
        ("blocks.39.ffn.2.weight", &[5120, 13824]),
    ] {
        assert_eq!(map.get(name).copied(), Some(shape), "{name}");
    }
    assert!(!map.contains_key("blocks.40.modulation"));
}

#[test]
fn fixture_checkpoint_has_exactly_the_contract_keys() {
    // The generator against a real Wan-layout file: same names, same shapes, nothing extra.
    let m = fixtures::manifest();
    let cfg = DitConfig::from_manifest(&m).unwrap();
    let case = fixtures::files_of_kind(&m, "dit")
        .into_iter()
        .next()
        .expect("a dit case");
    let file = fixtures::weights_of(&m, &case);
    // SAFETY: read-only mapping of a fixture file nobody writes.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(&file) }.unwrap();
    let on_disk: BTreeMap<String, Vec<usize>> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec()))
        .collect();
    let want: BTreeMap<String, Vec<usize>> = cfg.weight_shapes().into_iter().collect();
    assert_eq!(on_disk, want);
}

fn tiny() -> DitConfig {
    DitConfig {
        dim: 24,
        ffn_dim: 32,
        num_heads: 2,
        num_layers: 1,
        text_dim: 8,
        text_len: 4,
        freq_dim: 8,
        ..DitConfig::fourteen_b()
    }
}

fn weights(cfg: &DitConfig) -> HashMap<String, Tensor> {
    cfg.weight_shapes()
        .into_iter()
        .map(|(n, s)| (n, Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap()))
        .collect()
}

#[test]
fn loader_uses_exactly_the_contract_keys() {
    let cfg = tiny();
    let w = weights(&cfg);
    Dit::load(
        VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu),
        &cfg,
    )
    .unwrap();
    // Every key is needed: dropping any one fails with a weights error.
    for name in [
        "blocks.0.cross_attn.norm_k_img.weight",
        "img_emb.proj.4.bias",
        "head.modulation",
    ] {
        let mut w = w.clone();
        w.remove(name);
        let r = Dit::load(VarBuilder::from_tensors(w, DType::F32, &Device::Cpu), &cfg);
        assert!(matches!(r, Err(DitError::Weights(_))), "{name}");
    }
}

#[test]
fn config_from_manifest_rejects_unsupported() {
    let mut v = fixtures::manifest()["config"]["dit"].clone();
    assert!(DitConfig::from_manifest(&v).is_ok());
    let heads = v["num_heads"].clone();
    // A head count that does not divide the fixture's width.
    let dim = v["dim"].as_u64().expect("config.dit.dim");
    let bad = (2..)
        .find(|h: &u64| !dim.is_multiple_of(*h))
        .expect("some count does not divide dim");
    v["num_heads"] = bad.into();
    assert!(matches!(
        DitConfig::from_manifest(&v),
        Err(DitError::Config(_))
    ));
    v["num_heads"] = heads;
    v["model_type"] = "t2v".into();
    assert!(matches!(
        DitConfig::from_manifest(&v),
        Err(DitError::Config(_))
    ));
}
