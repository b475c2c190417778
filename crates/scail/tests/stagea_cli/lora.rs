//! `generate --lora` with tiny random weights: LoRAs in two namings give a video, scale 0
//! gives the frames of no LoRA and scale 1 other frames (with `--preset fast`, whose step
//! count the explicit flag overrides); a missing file, a bad scale and a key
//! that patches no DiT weight are refused before any sampling, naming what is wrong.

use std::collections::HashMap;
use std::ffi::OsStr;

use candle_core::{Device, Tensor};
use scail_model::weights::{Contract, ModelSize};

use super::*;

/// A `.diff` / `.diff_b` file on block 1's norm3 (PEFT-style prefix), with the foreign input
/// projection that is skipped with a warning.
fn diff_lora(dir: &Path) -> PathBuf {
    let d = Contract::new(ModelSize::Tiny).dit.dim;
    let t = Tensor::ones(d, candle_core::DType::F32, &Device::Cpu).unwrap();
    // Vanilla Wan 2.1 I2V's 36-channel input projection, as the distillation LoRAs carry it.
    let foreign = Tensor::ones((d, 36, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    let m = HashMap::from([
        (
            "base_model.model.blocks.1.norm3.diff".to_string(),
            t.clone(),
        ),
        ("base_model.model.blocks.1.norm3.diff_b".to_string(), t),
        ("base_model.model.patch_embedding.diff".to_string(), foreign),
    ]);
    let path = dir.join("diff.safetensors");
    candle_core::safetensors::save(&m, &path).unwrap();
    path
}

fn lora_arg(path: &Path, scale: &str) -> std::ffi::OsString {
    let mut s = path.as_os_str().to_owned();
    s.push(format!("={scale}"));
    s
}

#[test]
fn loras_give_a_video_and_scale_zero_changes_nothing() {
    let test = "loras_give_a_video_and_scale_zero_changes_nothing";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let d = inp.dir.path();
    let (ref_mask, drv_mask) = animation_masks(&inp);
    let kijai = kijai_lora(d, &[0, 1]);
    let diff = diff_lora(d);
    let run_with = |name: &str, loras: &[std::ffi::OsString], flags: &[&str]| {
        let out = d.join(name);
        let mut extra: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
        for l in loras {
            extra.extend(["--lora".as_ref(), l.as_os_str()]);
        }
        let (success, _, all) = run(&mut generate(
            &inp,
            &out,
            &with_masks(&ref_mask, &drv_mask, &extra),
        ));
        assert!(success, "{name}: {all}");
        check_timing(&out, &inp);
        (decode(&out), all)
    };
    let (plain, _) = run_with("plain.mp4", &[], &[]);
    let (zero, _) = run_with(
        "zero.mp4",
        &[lora_arg(&kijai, "0"), lora_arg(&diff, "0.0")],
        &[],
    );
    // With the fast preset, whose 4 steps the explicit --num-inference-steps 1 overrides.
    let (one, log) = run_with(
        "one.mp4",
        &[kijai.as_os_str().to_owned(), lora_arg(&diff, "1")],
        &["--preset", "fast"],
    );
    assert!(log.contains("at scale 1"), "{log}");
    assert!(
        log.contains("`base_model.model.patch_embedding.diff`: input projection of another model"),
        "{log}"
    );
    assert!(
        log.contains("] 1/1") && !log.contains("/4"),
        "steps not 1:\n{log}"
    );
    assert!(!log.contains("expect a step-distillation LoRA"), "{log}");
    let pixels = |v: &[ImageU8]| v.iter().flat_map(|f| f.data.clone()).collect::<Vec<u8>>();
    assert_eq!(pixels(&zero), pixels(&plain), "scale 0 changed the video");
    assert_ne!(
        pixels(&one),
        pixels(&plain),
        "scale 1 left the video unchanged"
    );
}

#[test]
fn bad_loras_are_refused_before_sampling() {
    let test = "bad_loras_are_refused_before_sampling";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let d = inp.dir.path();
    let (ref_mask, drv_mask) = animation_masks(&inp);
    let out = d.join("out.mp4");
    let refused = |lora: &OsStr, want: &str| {
        let extra = ["--lora".as_ref(), lora];
        let (success, _, all) = run(&mut generate(
            &inp,
            &out,
            &with_masks(&ref_mask, &drv_mask, &extra),
        ));
        assert!(!success, "{lora:?} accepted:\n{all}");
        assert!(all.contains(want), "{lora:?}: no `{want}` in:\n{all}");
        assert!(!all.contains("sampling"), "{lora:?} refused late:\n{all}");
        assert!(!out.exists());
    };
    let missing = d.join("missing.safetensors");
    refused(missing.as_os_str(), "--lora: no such file");
    // The tiny model has 2 blocks.
    let beyond = kijai_lora(d, &[5]);
    refused(
        beyond.as_os_str(),
        "key `diffusion_model.blocks.5.self_attn.k.lora_down.weight`: patches no DiT weight",
    );
    refused(&lora_arg(&beyond, "strong"), "bad LoRA scale `strong`");
}
