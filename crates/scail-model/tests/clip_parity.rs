//! CLIP visual tower against the reference (`clip_visual`): tokens from the recorded
//! preprocessed input (the 224 resize belongs to the media crate).

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use scail_model::clip::{ClipVision, ClipVisionConfig};
use scail_model::fixtures;

#[test]
fn clip_visual_parity() {
    let m = fixtures::manifest();
    let c = &m["config"]["clip"];
    let u = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("config.clip.{k}")) as usize;
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
    let path = fixtures::dir().join("clip_weights.safetensors");
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, &Device::Cpu) }.unwrap();
    let clip = ClipVision::new(&cfg, vb).unwrap();
    let file = "clip_visual.safetensors";
    let t = fixtures::load(file);
    let tokens = clip.forward(&t["out.preprocessed"]).unwrap();
    fixtures::assert_close(&m, file, "out.tokens", &tokens, &t["out.tokens"]);
}
