//! CLIP visual tower against the reference (the `clip` case): tokens from the recorded
//! preprocessed input (the 224 resize belongs to the media crate).

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use scail_model::clip::ClipVision;
use scail_model::fixtures;

#[test]
fn clip_visual_parity() {
    let m = fixtures::manifest();
    let cfg = fixtures::clip_config(&m);
    let file = fixtures::only_file_of_kind(&m, "clip");
    let path = fixtures::weights_of(&m, &file);
    // SAFETY: read-only mapping of a fixture file nobody writes.
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, &Device::Cpu) }.unwrap();
    let clip = ClipVision::new(&cfg, vb).unwrap();
    let t = fixtures::load(&file);
    let tokens = clip.forward(&t["out.preprocessed"]).unwrap();
    fixtures::assert_close(&m, &file, "out.tokens", &tokens, &t["out.tokens"]);
}
