//! Batched guidance forward: `Dit::forward_batch` with two text contexts equals two single
//! forwards within the fixtures' f32 velocity tolerance, on every `dit_*` fixture case (fixture
//! weights and inputs; the second context is a shorter, rescaled copy of the first, as an empty
//! negative prompt is shorter than the prompt).

use candle_core::{DType, Device};
use scail_model::dit::{Dit, DitConfig, DitInputs};
use scail_model::fixtures;

#[test]
fn batched_guidance_forward_equals_two_single_forwards() {
    let m = fixtures::manifest();
    let cfg = DitConfig::from_manifest(&m).expect("config.dit");
    let cases = fixtures::files_of_kind(&m, "dit");
    assert!(!cases.is_empty(), "no dit fixtures");
    for file in cases {
        let model = Dit::from_safetensors(
            &[fixtures::weights_of(&m, &file)],
            &cfg,
            DType::F32,
            &Device::Cpu,
        )
        .expect("loading the fixture DiT");
        let d = fixtures::load(&file);
        let inputs = fixtures::dit_inputs(&d);
        let ctx = inputs.context;
        let lt = ctx.dim(0).unwrap();
        let ctx_null = (ctx.narrow(0, 0, lt.div_ceil(2)).unwrap() * -0.5).unwrap();
        let cond = model.forward(&inputs).expect("cond forward");
        let unc = model
            .forward(&DitInputs {
                context: &ctx_null,
                ..inputs
            })
            .expect("uncond forward");
        let both = model
            .forward_batch(&inputs, &[ctx, &ctx_null])
            .expect("batched forward");
        assert_eq!(both.len(), 2);
        let tol = fixtures::atol(&m, &file, "out.velocity");
        let branches_differ = fixtures::max_abs_diff(&cond, &unc);
        for (name, got, want) in [("cond", &both[0], &cond), ("uncond", &both[1], &unc)] {
            assert_eq!(got.dims(), want.dims(), "{file} {name}");
            let diff = fixtures::max_abs_diff(got, want);
            eprintln!("{file} {name}: batched vs single max abs diff {diff:.2e} (atol {tol:?})");
            fixtures::assert_close(&m, &file, "out.velocity", got, want);
        }
        // The batched conditional branch also matches the reference itself.
        fixtures::assert_close(&m, &file, "out.velocity", &both[0], &d["out.velocity"]);
        assert!(
            branches_differ > 1e-3,
            "{file}: contexts did not change the output ({branches_differ:e})"
        );

        // One context is the plain forward.
        let one = model.forward_batch(&inputs, &[ctx]).expect("B=1");
        fixtures::assert_close(&m, &file, "out.velocity", &one[0], &cond);
        assert!(model.forward_batch(&inputs, &[]).is_err());
        let single = model.activation_bytes(&inputs, 1).unwrap();
        assert_eq!(model.activation_bytes(&inputs, 2).unwrap(), 2 * single);
        assert!(single > 0);
    }
}
