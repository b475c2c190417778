//! DiT forward parity against every `dit_*` fixture of the folder: velocity and every recorded
//! intermediate within the manifest's `suggested.atol`. Config and sizes come from the manifest.

use candle_core::{DType, Device, Tensor};
use scail_model::dit::{Dit, DitConfig, DitInputs, Trace};
use scail_model::fixtures;

fn dit_cases(m: &serde_json::Value) -> Vec<String> {
    fixtures::files_of_kind(m, "dit")
}

fn load_model(m: &serde_json::Value, file: &str, dtype: DType) -> Dit {
    let cfg = DitConfig::from_manifest(m).expect("config.dit");
    Dit::from_safetensors(&[fixtures::weights_of(m, file)], &cfg, dtype, &Device::Cpu)
        .expect("loading the fixture DiT")
}

/// Runs one case; returns (velocity, trace) and the fixture tensors.
fn run_case(
    m: &serde_json::Value,
    file: &str,
    dtype: DType,
) -> (Tensor, Trace, std::collections::HashMap<String, Tensor>) {
    let model = load_model(m, file, dtype);
    let d = fixtures::load(file);
    let inputs = fixtures::dit_inputs(&d);
    let mut trace = Trace::new();
    let v = model
        .forward_traced(&inputs, Some(&mut trace))
        .expect("forward");
    (v, trace, d)
}

#[test]
fn dit_fixtures_exist() {
    assert!(!dit_cases(&fixtures::manifest()).is_empty());
}

#[test]
fn dit_forward_matches_every_case_and_intermediate() {
    let m = fixtures::manifest();
    // Everything the trace records: the embeddings (tokens, time e and e0, text and CLIP
    // contexts), block 0's q/k before and after RoPE and its self-attention, every block's
    // output, the head and the velocity.
    let layers = DitConfig::from_manifest(&m).unwrap().num_layers;
    let recorded = 11 + layers;
    for file in dit_cases(&m) {
        let (v, trace, d) = run_case(&m, &file, DType::F32);
        let mut compared = 0;
        for (name, want) in d.iter().filter(|(k, _)| k.starts_with("out.")) {
            let key = &name["out.".len()..];
            let got = if key == "velocity" {
                &v
            } else {
                trace
                    .get(key)
                    .unwrap_or_else(|| panic!("{file}: intermediate {key} not recorded"))
            };
            let tol = fixtures::atol(&m, &file, name);
            eprintln!(
                "{file} {key}: max abs diff {:.2e} (atol {tol:?})",
                fixtures::max_abs_diff(got, want)
            );
            fixtures::assert_close(&m, &file, name, got, want);
            compared += 1;
        }
        assert!(
            compared >= recorded,
            "{file}: only {compared} outputs compared, {recorded} expected"
        );
    }
}

#[test]
fn dit_bf16_weights_stay_close_to_reference() {
    // The bf16 path (bf16 matmuls, f32 islands) on the first case: close in relative terms.
    let m = fixtures::manifest();
    let file = dit_cases(&m).into_iter().next().expect("a dit case");
    let (v, _, d) = run_case(&m, &file, DType::BF16);
    let want = &d["out.velocity"];
    let scale = fixtures::max_abs(want);
    let err = fixtures::max_abs_diff(&v, want) / scale;
    eprintln!("{file}: bf16 weights, max error {err:.3e} of max |ref|");
    assert!(v.dtype() == DType::F32, "velocity must come back in f32");
    assert!(err < 5e-2, "{file}: bf16 max error {err:e} of max |ref|");
    assert!(err > 0.0, "bf16 path computed in f32 (identical output)");
}

#[test]
fn dit_loads_bf16_and_f16_checkpoints() {
    // The same weights stored as bf16 / f16 safetensors (like the released checkpoints), loaded by
    // mmap with f32, bf16 and f16 matmuls: all close to the f32 reference velocity.
    let m = fixtures::manifest();
    let file = dit_cases(&m).into_iter().next().expect("a dit case");
    let weights = candle_core::safetensors::load(fixtures::weights_of(&m, &file), &Device::Cpu)
        .expect("fixture weights");
    let cfg = DitConfig::from_manifest(&m).unwrap();
    let d = fixtures::load(&file);
    let want = &d["out.velocity"];
    let scale = fixtures::max_abs(want);
    let tmp = std::env::temp_dir().join(format!("scail-dit-half-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for (stored, compute, bound) in [
        (DType::BF16, DType::F32, 3e-2),
        (DType::BF16, DType::BF16, 5e-2),
        (DType::F16, DType::F16, 1e-2),
    ] {
        let path = tmp.join(format!("{stored:?}.safetensors"));
        let conv: std::collections::HashMap<String, Tensor> = weights
            .iter()
            .map(|(k, v)| (k.clone(), v.to_dtype(stored).unwrap()))
            .collect();
        candle_core::safetensors::save(&conv, &path).unwrap();
        let model = Dit::from_safetensors(&[&path], &cfg, compute, &Device::Cpu).unwrap();
        assert_eq!(model.dtype(), compute);
        let v = model.forward(&fixtures::dit_inputs(&d)).unwrap();
        let err = fixtures::max_abs_diff(&v, want) / scale;
        eprintln!("{stored:?} file, {compute:?} matmuls: max error {err:.3e} of max |ref|");
        assert!(err < bound, "{stored:?}/{compute:?}: {err:e} >= {bound:e}");
    }
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn dit_accepts_several_additional_refs() {
    // Two additional references: the sequence grows by one reference frame of tokens, placed
    // first, and every other token embeds exactly as with one.
    let m = fixtures::manifest();
    let Some(file) = dit_cases(&m).into_iter().find(|f| {
        let d = fixtures::load(f);
        fixtures::scalar_i64(&d["in.n_additional_refs"]) > 0
    }) else {
        panic!("no dit case with additional references");
    };
    let model = load_model(&m, &file, DType::F32);
    let d = fixtures::load(&file);
    let (al, am) = (
        &d["in.additional_ref_latents"],
        &d["in.additional_ref_masks"],
    );
    let n = al.dim(1).unwrap();
    let al2 = Tensor::cat(&[al, &(al * 0.5).unwrap()], 1).unwrap();
    let am2 = Tensor::cat(&[am, am], 1).unwrap();
    let run = |refs: (&Tensor, &Tensor)| {
        let inputs = DitInputs {
            additional_refs: Some(refs),
            ..fixtures::dit_inputs(&d)
        };
        let mut trace = Trace::new();
        let v = model.forward_traced(&inputs, Some(&mut trace)).unwrap();
        (
            v,
            trace.remove("tokens_embedded").unwrap().squeeze(0).unwrap(),
        )
    };
    let (v1, t1) = run((al, am));
    let (v2, t2) = run((&al2, &am2));
    let (h, w) = (al.dim(2).unwrap(), al.dim(3).unwrap());
    let [pt, ph, pw] = model.config().patch_size;
    let per = (n / pt) * (h / ph) * (w / pw); // tokens of the fixture's additional refs
    let l1 = t1.dim(0).unwrap();
    assert_eq!(t2.dim(0).unwrap(), l1 + per);
    let same_first = fixtures::max_abs_diff(
        &t2.narrow(0, 0, per).unwrap(),
        &t1.narrow(0, 0, per).unwrap(),
    );
    let same_rest = fixtures::max_abs_diff(
        &t2.narrow(0, 2 * per, l1 - per).unwrap(),
        &t1.narrow(0, per, l1 - per).unwrap(),
    );
    // The same rows through a taller matmul: a BLAS kernel may block by row count, so only the
    // last bits may differ (f32 epsilon-scale), never the values.
    assert!(same_first < 1e-5, "{same_first}");
    assert!(same_rest < 1e-5, "{same_rest}");
    assert_eq!(v2.dims(), v1.dims());
    let vals = v2.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(vals.iter().all(|x| x.is_finite()));
    assert!(
        fixtures::max_abs_diff(&v1, &v2) > 1e-4,
        "second reference had no effect"
    );
}
