//! The VAE in bf16 (what a bf16 job runs on a GPU) against the f32 fixtures, within the bound
//! the rounding implies, as for the DiT (tests/dit_precision.rs, README "Precision"):
//!
//! bf16 rounds to nearest with relative error at most u = 2⁻⁸. A convolution whose weights and
//! input are rounded gets a relative RMS error of at most u from each (independent, zero-mean
//! errors summed over the receptive field), and the independent errors of the n convolutions on
//! the serial path add in quadrature, the RMS norms keeping each layer from amplifying them:
//! relative RMS error ≤ u·√(2n). n is counted from the fixture's weights: every convolution of
//! the tower under test plus the 1x1x1 conv between it and the latent.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use scail_model::fixtures;
use scail_model::vae::WanVae;

const U_BF16: f64 = 1.0 / 256.0;

fn rel_rms(a: &Tensor, want: &Tensor) -> f64 {
    let d = (a - want).unwrap().sqr().unwrap().sum_all().unwrap();
    let r = want.sqr().unwrap().sum_all().unwrap();
    (d.to_scalar::<f32>().unwrap() as f64 / r.to_scalar::<f32>().unwrap() as f64).sqrt()
}

/// Convolutions under `prefix` in the fixture's weights: the causal 3D ones (rank-5 weights) and
/// the 2D ones of the resampling and attention layers (rank 4; attention's qkv and projection
/// are 1x1 convolutions).
fn convs(weights: &std::collections::HashMap<String, Tensor>, prefix: &str) -> usize {
    weights
        .iter()
        .filter(|(k, t)| k.starts_with(prefix) && k.ends_with(".weight") && t.rank() >= 4)
        .count()
}

#[test]
fn bf16_vae_stays_within_the_rounding_bound_and_speaks_f32() {
    let m = fixtures::manifest();
    for file in fixtures::files_of_kind(&m, "vae") {
        let path = fixtures::weights_of(&m, &file);
        let weights = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        let cfg = fixtures::vae_config(&m, &file);
        let vb = VarBuilder::from_tensors(weights.clone(), DType::BF16, &Device::Cpu);
        let vae = WanVae::new(&cfg, vb).unwrap();
        assert_eq!(vae.dtype(), DType::BF16);
        let t = fixtures::load(&file);

        // Encode: f32 video in, f32 latent out.
        let lat = vae.encode(&t["in.video"]).unwrap();
        assert_eq!(lat.dtype(), DType::F32, "{file}: encode must return f32");
        let want = &t["out.latent_normalized"];
        let n = convs(&weights, "encoder.") + convs(&weights, "conv1.");
        let (err, bound) = (rel_rms(&lat, want), U_BF16 * ((2 * n) as f64).sqrt());
        eprintln!(
            "{file}: bf16 encode: relative RMS error {err:.2e}, bound {bound:.2e} ({n} convs)"
        );
        assert!(
            err > 0.0 && err <= bound,
            "{file}: encode {err:e} > {bound:e}"
        );

        // Decode the reference latent: f32 frames out.
        let dec = vae.decode_unclamped(want).unwrap();
        assert_eq!(dec.dtype(), DType::F32, "{file}: decode must return f32");
        let n = convs(&weights, "decoder.") + convs(&weights, "conv2.");
        let (err, bound) = (
            rel_rms(&dec, &t["out.decoded_unclamped"]),
            U_BF16 * ((2 * n) as f64).sqrt(),
        );
        eprintln!(
            "{file}: bf16 decode: relative RMS error {err:.2e}, bound {bound:.2e} ({n} convs)"
        );
        assert!(
            err > 0.0 && err <= bound,
            "{file}: decode {err:e} > {bound:e}"
        );
    }
}
