//! Checkpoint loaders on small files written by PyTorch (scripts/make_testdata_weights.py):
//! official `.pth` state dicts, the SAT-layout DiT with the key conversion, fp8_scaled.

use std::path::PathBuf;

use candle_core::{DType, Device, IndexOp};
use scail_model::clip::{ClipVision, ClipVisionConfig};
use scail_model::fixtures;
use scail_model::t5::{T5Config, T5Encoder};
use scail_model::weights::{sat_to_wan, Checkpoint, Source};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

#[test]
fn t5_pth_runs_with_parity() {
    let m = fixtures::manifest();
    let c = &m["config"]["t5"];
    let u = |k: &str| c[k].as_u64().unwrap() as usize;
    let cfg = T5Config {
        vocab_size: u("vocab_size"),
        dim: u("dim"),
        dim_attn: u("dim_attn"),
        dim_ffn: u("dim_ffn"),
        num_heads: u("num_heads"),
        num_layers: u("encoder_layers"),
        num_buckets: u("num_buckets"),
        ..T5Config::umt5_xxl()
    };
    let ck = Checkpoint::open(&testdata("t5_tiny.pth")).unwrap();
    assert_eq!(ck.metas().count(), cfg.expected_keys().len());
    let enc = T5Encoder::new(&cfg, ck.var_builder(DType::F32, &Device::Cpu)).unwrap();
    let t = fixtures::load("t5_encoder.safetensors");
    let h = enc.forward(&t["in.ids"], Some(&t["in.mask"])).unwrap();
    fixtures::assert_close(
        &m,
        "t5_encoder.safetensors",
        "out.hidden_states",
        &h,
        &t["out.hidden_states"],
    );
}

#[test]
fn clip_pth_runs_with_parity() {
    let m = fixtures::manifest();
    let c = &m["config"]["clip"];
    let u = |k: &str| c[k].as_u64().unwrap() as usize;
    let cfg = ClipVisionConfig {
        image_size: u("image_size"),
        patch_size: u("patch_size"),
        width: u("vision_dim"),
        heads: u("vision_heads"),
        layers: u("vision_layers"),
        mlp_ratio: u("vision_mlp_ratio"),
        embed_dim: u("embed_dim"),
        eps: 1e-5,
    };
    let ck = Checkpoint::open(&testdata("clip_tiny.pth")).unwrap();
    // The whole visual-only checkpoint contract, scalar log_scale included.
    let mut names: Vec<_> = ck
        .metas()
        .map(|(n, m)| (n.clone(), m.shape.clone()))
        .collect();
    let mut want = cfg.expected_keys();
    names.sort();
    want.sort();
    assert_eq!(names, want);
    let clip = ClipVision::new(&cfg, ck.var_builder(DType::F32, &Device::Cpu)).unwrap();
    let t = fixtures::load("clip_visual.safetensors");
    let tokens = clip.forward(&t["out.preprocessed"]).unwrap();
    fixtures::assert_close(
        &m,
        "clip_visual.safetensors",
        "out.tokens",
        &tokens,
        &t["out.tokens"],
    );
}

#[test]
fn sat_checkpoint_converts_to_wan_layout() {
    let ck = Checkpoint::open(&testdata("dit_sat_small.pt")).unwrap();
    let want = candle_core::safetensors::load(
        testdata("dit_sat_small_expected.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let mut got: Vec<String> = ck.metas().map(|(n, _)| n.clone()).collect();
    let mut names: Vec<String> = want.keys().cloned().collect();
    got.sort();
    names.sort();
    assert_eq!(got, names, "converted key set");
    for (name, w) in &want {
        let t = ck.load(name).unwrap();
        assert_eq!(t.dims(), w.dims(), "{name}");
        assert_eq!(fixtures::max_abs_diff(&t, w), 0.0, "{name}");
    }
    // The fused tensors are split, not copied whole.
    assert!(matches!(
        ck.source("blocks.1.self_attn.v.weight"),
        Some(Source::Chunk {
            index: 2,
            parts: 3,
            ..
        })
    ));
    assert!(
        matches!(ck.source("patch_embedding_mask.weight"), Some(Source::Direct(k)) if k.ends_with("patch_embed.proj_mask.weight"))
    );
}

#[test]
fn sat_key_mapping_rejects_unknown_keys() {
    assert!(sat_to_wan("model.diffusion_model.mixins.patch_embed.proj_other.weight").is_err());
    assert!(sat_to_wan("other.prefix.time_embed.0.weight").is_err());
    let kv =
        sat_to_wan("model.diffusion_model.mixins.adaln_layer.clip_feature_key_value_list.3.bias")
            .unwrap();
    assert_eq!(
        kv,
        vec![
            ("blocks.3.cross_attn.k_img.bias".to_string(), 0, 2),
            ("blocks.3.cross_attn.v_img.bias".to_string(), 1, 2)
        ]
    );
}

#[test]
fn fp8_scaled_dequantises_with_scales() {
    let ck = Checkpoint::open(&testdata("dit_fp8_scaled_small.safetensors")).unwrap();
    let want =
        candle_core::safetensors::load(testdata("dit_fp8_expected.safetensors"), &Device::Cpu)
            .unwrap();
    let mut got: Vec<String> = ck.metas().map(|(n, _)| n.clone()).collect();
    let mut names: Vec<String> = want.keys().cloned().collect();
    got.sort();
    names.sort();
    assert_eq!(got, names, "prefix stripped, scales and marker hidden");
    for (name, w) in &want {
        let t = ck.load(name).unwrap().to_dtype(DType::F32).unwrap();
        assert_eq!(fixtures::max_abs_diff(&t, w), 0.0, "{name}");
    }
    // The dequantised values are not the raw fp8 values (the scale is applied).
    let raw =
        candle_core::safetensors::load(testdata("dit_fp8_scaled_small.safetensors"), &Device::Cpu)
            .unwrap();
    let q = raw["model.diffusion_model.blocks.0.ffn.0.weight"]
        .to_dtype(DType::F32)
        .unwrap();
    let deq = ck.load("blocks.0.ffn.0.weight").unwrap();
    let (a, b) = (
        q.i((0, 0)).unwrap().to_scalar::<f32>().unwrap(),
        deq.i((0, 0)).unwrap().to_scalar::<f32>().unwrap(),
    );
    assert!(a != b || a == 0.0);
}
