//! Scheduler parity: `sched_tables` (timesteps exact, sigmas within atol) and the UniPC / DPM++
//! rollouts of `sched_*_rollout` (every latent, model output and data prediction), sizes and
//! settings from the fixture folder's manifest.

use candle_core::{DType, IndexOp, Tensor};
use scail_model::fixtures;
use scail_pipeline::sampler::{self, SolverKind};

fn i64s(t: &Tensor) -> Vec<i64> {
    t.flatten_all().unwrap().to_vec1::<i64>().unwrap()
}

#[test]
fn sched_tables() {
    let m = fixtures::manifest();
    let file = "sched_tables.safetensors";
    let d = fixtures::load(file);
    let tables = m["files"][file]["tables"].as_array().expect("tables");
    assert!(!tables.is_empty());
    for t in tables {
        let steps = t[0].as_u64().unwrap() as usize;
        let shift = t[1].as_f64().unwrap();
        let key = format!("steps{steps}_shift{}", shift as i64);
        let u = sampler::unipc_schedule(steps, shift).unwrap();
        let p = sampler::dpmpp_schedule(steps, shift).unwrap();
        let raw = sampler::sampling_sigmas(steps, shift).unwrap();
        for (name, sched) in [("unipc", &u), ("dpmpp", &p)] {
            let want_t = i64s(&d[&format!("{name}.{key}.timesteps")]);
            assert_eq!(sched.timesteps, want_t, "{name} {key} timesteps");
            let n = format!("{name}.{key}.sigmas");
            let got = Tensor::new(sched.sigmas.as_slice(), &candle_core::Device::Cpu).unwrap();
            fixtures::assert_close(&m, file, &n, &got, &d[&n]);
        }
        let n = format!("dpmpp.{key}.get_sampling_sigmas_f64");
        let got = Tensor::new(raw.as_slice(), &candle_core::Device::Cpu).unwrap();
        fixtures::assert_close(&m, file, &n, &got, &d[&n].to_dtype(DType::F64).unwrap());
    }
}

fn rollout(file: &str, kind: SolverKind) {
    let m = fixtures::manifest();
    let e = &m["files"][file];
    let steps = e["steps"].as_u64().unwrap() as usize;
    let shift = e["shift"].as_f64().unwrap();
    let (a, b) = (e["a"].as_f64().unwrap(), e["b"].as_f64().unwrap());
    let d = fixtures::load(file);
    let mut s = sampler::build(kind, steps, shift).unwrap();
    assert_eq!(s.timesteps(), i64s(&d["out.timesteps"]).as_slice());
    let sig = Tensor::new(s.schedule().sigmas.as_slice(), &candle_core::Device::Cpu).unwrap();
    fixtures::assert_close(&m, file, "out.sigmas", &sig, &d["out.sigmas"]);
    let mut x = d["in.latent0"].clone();
    fixtures::assert_close(&m, file, "out.latents", &x, &d["out.latents"].i(0).unwrap());
    for i in 0..steps {
        let t = s.timesteps()[i] as f64;
        // The synthetic model of the fixture: v = a x + b t/1000 (t the integer timestep).
        let v = x.affine(a, b * (t / 1000.0)).unwrap();
        fixtures::assert_close(
            &m,
            file,
            "out.model_outputs",
            &v,
            &d["out.model_outputs"].i(i).unwrap(),
        );
        let out = s.step(&v, &x).unwrap();
        fixtures::assert_close(
            &m,
            file,
            "out.x0_predictions",
            &out.x0,
            &d["out.x0_predictions"].i(i).unwrap(),
        );
        x = out.prev_sample;
        fixtures::assert_close(
            &m,
            file,
            "out.latents",
            &x,
            &d["out.latents"].i(i + 1).unwrap(),
        );
    }
}

#[test]
fn sched_unipc_rollout() {
    rollout("sched_unipc_rollout.safetensors", SolverKind::UniPc);
}

#[test]
fn sched_dpmpp_rollout() {
    rollout("sched_dpmpp_rollout.safetensors", SolverKind::DpmPp);
}
