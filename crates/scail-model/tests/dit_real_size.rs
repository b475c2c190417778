//! One block of the 14B config (dim 5120, 40 heads, ffn 13824, text_len 512, 257 CLIP tokens)
//! with random weights on a few hundred tokens, f32 and bf16 weights.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use scail_model::dit::{random_weights, Dit, DitConfig, RandomInputs};
use scail_model::fixtures;

/// Stated bound for the bf16-weights path: max |bf16 − f32| over max |f32| of the velocity.
/// bf16 keeps 8 mantissa bits (relative rounding 2^-9 ≈ 2e-3 per operand); the f32 islands keep the
/// residual stream and norms exact, so the error stays a few times that.
const BF16_REL_BOUND: f64 = 2e-2;

#[test]
fn one_fourteen_b_block_f32_and_bf16() {
    let cfg = DitConfig {
        num_layers: 1,
        ..DitConfig::fourteen_b()
    };
    let dev = Device::Cpu;
    let weights = random_weights(&cfg, DType::F32, &dev).unwrap();
    // Latent grid 3×16×16: (1 + 3)·8·8 ref+video tokens + 3·4·4 pose tokens = 304.
    let inputs = RandomInputs::new(&cfg, (3, 16, 16), &dev).unwrap();
    let inp = inputs.inputs(500.0);

    let f32_model = Dit::load(
        VarBuilder::from_tensors(weights.clone(), DType::F32, &dev),
        &cfg,
    )
    .unwrap();
    let v32 = f32_model.forward(&inp).unwrap();
    drop(f32_model);
    assert_eq!(v32.dims(), &[16, 3, 16, 16]);

    let bf16_model = Dit::load(VarBuilder::from_tensors(weights, DType::BF16, &dev), &cfg).unwrap();
    assert_eq!(bf16_model.dtype(), DType::BF16);
    let v16 = bf16_model.forward(&inp).unwrap();
    assert_eq!(v16.dtype(), DType::F32);

    for (name, v) in [("f32", &v32), ("bf16", &v16)] {
        let vals = v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            vals.iter().all(|x| x.is_finite()),
            "{name}: non-finite velocity"
        );
    }
    let scale = fixtures::max_abs(&v32);
    assert!(scale > 1e-3, "degenerate f32 output (max {scale})");
    let rel = fixtures::max_abs_diff(&v16, &v32) / scale;
    eprintln!("14B block: max |bf16 - f32| / max |f32| = {rel:.3e} (bound {BF16_REL_BOUND:e})");
    assert!(rel < BF16_REL_BOUND, "bf16 relative error {rel:e}");
    assert!(
        rel > 0.0,
        "bf16 path produced bit-identical output: not running in bf16"
    );
}
