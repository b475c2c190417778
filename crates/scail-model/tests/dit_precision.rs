//! The DiT in bf16 and fp8 against the f32 fixtures, each within a bound derived from the
//! rounding the format implies (README, "Precision"):
//!
//! A format with p significand bits rounds to nearest with relative error at most u = 2^-p
//! (bf16: p = 8; fp8 e4m3: p = 4). One Linear layer whose weights (or inputs) are rounded gets
//! Δy_i = Σ_j δ_ij W_ij x_j; with the δ independent and of zero mean, E|Δy|² ≤ u² Σ W²x² ≈ u²|y|²,
//! so the layer's relative RMS error is at most u. Independent errors of the n rounded layers on
//! the forward's serial path add in quadrature: relative RMS error ≤ u·√n, where the norms and
//! the residual stream keep each layer from amplifying relative perturbations.
//!
//! n is counted from the fixture's config (L blocks): each block has 6 Linear layers in series
//! (self-attention qkv → o, cross-attention q → o, FFN in → out); bf16 also rounds the patch,
//! text (2) and CLIP (2) embeddings (6L + 5 weights), every one of those layers' inputs (as
//! many again) and the q/k/v of both attentions (4L). The fp8 export quantises the block
//! matrices only (6L), with one scale per output channel.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use scail_model::dit::{Dit, DitConfig};
use scail_model::fixtures;
use scail_model::weights::Checkpoint;

const U_BF16: f64 = 1.0 / 256.0;
const U_FP8: f64 = 1.0 / 16.0;
/// Largest finite e4m3 value: the per-channel scale maps each row's max onto it.
const FP8_MAX: f64 = 448.0;

fn rel_rms(a: &Tensor, want: &Tensor) -> f64 {
    let d = (a - want).unwrap().sqr().unwrap().sum_all().unwrap();
    let r = want.sqr().unwrap().sum_all().unwrap();
    (d.to_scalar::<f32>().unwrap() as f64 / r.to_scalar::<f32>().unwrap() as f64).sqrt()
}

fn bf16_sources(layers: usize) -> f64 {
    (2 * (6 * layers + 5) + 4 * layers) as f64
}

fn fp8_sources(layers: usize) -> f64 {
    (6 * layers) as f64
}

fn is_block_matrix(name: &str, t: &Tensor) -> bool {
    name.starts_with("blocks.") && t.rank() == 2
}

/// The fixture weights with every block matrix as fp8 e4m3 times a per-row f32 scale, as an
/// fp8_scaled export stores them; also the f32 weights those fp8 values stand for.
fn quantise(
    weights: &HashMap<String, Tensor>,
) -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    let (mut stored, mut dequant) = (HashMap::new(), HashMap::new());
    for (name, w) in weights {
        if !is_block_matrix(name, w) {
            stored.insert(name.clone(), w.clone());
            dequant.insert(name.clone(), w.clone());
            continue;
        }
        let absmax = w.abs().unwrap().max_keepdim(1).unwrap();
        let scale = (absmax / FP8_MAX).unwrap().clamp(1e-12, f64::MAX).unwrap();
        let q = w
            .broadcast_div(&scale)
            .unwrap()
            .to_dtype(DType::F8E4M3)
            .unwrap();
        let back = q
            .to_dtype(DType::F32)
            .unwrap()
            .broadcast_mul(&scale)
            .unwrap();
        let layer = name.strip_suffix(".weight").unwrap();
        stored.insert(
            format!("{layer}.scale_weight"),
            scale.flatten_all().unwrap(),
        );
        stored.insert(name.clone(), q);
        dequant.insert(name.clone(), back);
    }
    stored.insert(
        "scaled_fp8".into(),
        Tensor::zeros(2, DType::F8E4M3, &Device::Cpu).unwrap(),
    );
    (stored, dequant)
}

#[test]
fn bf16_and_fp8_stay_within_the_rounding_bound_of_their_format() {
    let m = fixtures::manifest();
    let cfg = DitConfig::from_manifest(&m).unwrap();
    let layers = cfg.num_layers;
    let tmp = tempfile::tempdir().unwrap();
    for file in fixtures::files_of_kind(&m, "dit") {
        let weights =
            candle_core::safetensors::load(fixtures::weights_of(&m, &file), &Device::Cpu).unwrap();
        let d = fixtures::load(&file);
        let inputs = fixtures::dit_inputs(&d);
        let want = &d["out.velocity"];

        // bf16 weights and matmuls.
        let vb = VarBuilder::from_tensors(weights.clone(), DType::BF16, &Device::Cpu);
        let v = Dit::load(vb, &cfg).unwrap().forward(&inputs).unwrap();
        let (err, bound) = (rel_rms(&v, want), U_BF16 * bf16_sources(layers).sqrt());
        eprintln!("{file}: bf16: relative RMS error {err:.2e}, bound {bound:.2e}");
        assert!(
            err > 0.0 && err <= bound,
            "{file}: bf16 {err:e} > {bound:e}"
        );

        // fp8_scaled file, kept fp8 and widened at use.
        let (stored, dequant) = quantise(&weights);
        let path = tmp.path().join(format!("{file}.fp8.safetensors"));
        candle_core::safetensors::save(&stored, &path).unwrap();
        let fp8 = |compute: DType| {
            let vb = Checkpoint::open(&path)
                .unwrap()
                .var_builder(compute, &Device::Cpu);
            Dit::load(vb, &cfg).unwrap().forward(&inputs).unwrap()
        };
        // f32 compute: exactly the f32 model of the weights the fp8 values stand for.
        let v8 = fp8(DType::F32);
        let vb = VarBuilder::from_tensors(dequant, DType::F32, &Device::Cpu);
        let rounded = Dit::load(vb, &cfg).unwrap().forward(&inputs).unwrap();
        fixtures::assert_close(&m, &file, "out.velocity", &v8, &rounded);
        let (err, bound) = (rel_rms(&v8, want), U_FP8 * fp8_sources(layers).sqrt());
        eprintln!(
            "{file}: fp8 weights, f32 compute: relative RMS error {err:.2e}, bound {bound:.2e}"
        );
        assert!(err > 0.0 && err <= bound, "{file}: fp8 {err:e} > {bound:e}");
        // bf16 compute on fp8 weights: both roundings, in quadrature.
        let v8b = fp8(DType::BF16);
        let bound =
            (U_FP8.powi(2) * fp8_sources(layers) + U_BF16.powi(2) * bf16_sources(layers)).sqrt();
        let err = rel_rms(&v8b, want);
        eprintln!(
            "{file}: fp8 weights, bf16 compute: relative RMS error {err:.2e}, bound {bound:.2e}"
        );
        assert!(err <= bound, "{file}: fp8/bf16 {err:e} > {bound:e}");
    }
}

#[test]
fn fp8_weights_stay_fp8_in_memory() {
    // The loaded model holds the block matrices at one byte each: no f32 copy of them.
    let m = fixtures::manifest();
    let cfg = DitConfig::from_manifest(&m).unwrap();
    let file = fixtures::files_of_kind(&m, "dit").remove(0);
    let weights =
        candle_core::safetensors::load(fixtures::weights_of(&m, &file), &Device::Cpu).unwrap();
    let (stored, _) = quantise(&weights);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("fp8.safetensors");
    candle_core::safetensors::save(&stored, &path).unwrap();
    let ck = Checkpoint::open(&path).unwrap();
    let name = "blocks.0.ffn.0.weight";
    assert_eq!(ck.load_fp8(name).unwrap().dtype(), DType::F8E4M3);
    assert_eq!(
        ck.load(name).unwrap().dtype(),
        DType::F32,
        "dequantised view"
    );
    assert!(ck.contains("blocks.0.ffn.0.scale_weight"));
    let sizes = scail_model::memory::tensor_sizes(&ck, true);
    let kept: usize = sizes.iter().filter(|t| t.fp8).count();
    let matrices = weights
        .iter()
        .filter(|(n, t)| is_block_matrix(n, t))
        .count();
    assert_eq!(kept, matrices);
    let _ = Dit::load(ck.var_builder(DType::BF16, &Device::Cpu), &cfg).unwrap();
}
