//! Checkpoint loaders: official `.pth` state dicts (written here from the fixture folder's
//! weights, as `torch.save` writes them), and on small files written by PyTorch
//! (scripts/make_testdata_weights.py) the SAT-layout DiT with the key conversion and
//! fp8_scaled.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp};
use scail_model::clip::ClipVision;
use scail_model::fixtures;
use scail_model::t5::T5Encoder;
use scail_model::weights::{sat_to_wan, Checkpoint, Source};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// The weights `case` was computed with, rewritten as an official-style flat `.pth` in a
/// fresh temporary folder.
fn pth_of(m: &serde_json::Value, case: &str, name: &str) -> (PathBuf, PathBuf) {
    let st = fixtures::weights_of(m, case);
    let tensors = candle_core::safetensors::load(&st, &Device::Cpu).expect("fixture weights");
    let mut tensors: Vec<_> = tensors.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let dir = std::env::temp_dir().join(format!("scail-pth-{name}-{}", std::process::id()));
    let path = dir.join(format!("{name}.pth"));
    scail_model::pth::write_state_dict(&path, &tensors).expect("writing the .pth");
    (dir, path)
}

fn cleanup(dir: &Path) {
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn t5_pth_runs_with_parity() {
    let m = fixtures::manifest();
    let cfg = fixtures::t5_config(&m);
    let file = fixtures::only_file_of_kind(&m, "t5");
    let (dir, pth) = pth_of(&m, &file, "t5");
    let ck = Checkpoint::open(&pth).unwrap();
    assert_eq!(ck.metas().count(), cfg.expected_keys().len());
    let enc = T5Encoder::new(&cfg, ck.var_builder(DType::F32, &Device::Cpu)).unwrap();
    let t = fixtures::load(&file);
    let h = enc.forward(&t["in.ids"], Some(&t["in.mask"])).unwrap();
    fixtures::assert_close(&m, &file, "out.hidden_states", &h, &t["out.hidden_states"]);
    cleanup(&dir);
}

#[test]
fn clip_pth_runs_with_parity() {
    let m = fixtures::manifest();
    let cfg = fixtures::clip_config(&m);
    let file = fixtures::only_file_of_kind(&m, "clip");
    let (dir, pth) = pth_of(&m, &file, "clip");
    let ck = Checkpoint::open(&pth).unwrap();
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
    let t = fixtures::load(&file);
    let tokens = clip.forward(&t["out.preprocessed"]).unwrap();
    fixtures::assert_close(&m, &file, "out.tokens", &tokens, &t["out.tokens"]);
    cleanup(&dir);
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
