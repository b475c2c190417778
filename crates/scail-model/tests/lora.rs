//! LoRAs fused into tiny random DiT weights: scale 0 changes nothing (weights and forward, bit
//! for bit), scale 1 does; every targeted tensor equals `W + s · alpha/rank · up @ down` (or
//! `W + s · diff`) computed here in f64 with plain loops from the raw tensors, and by numpy
//! (`lora_numpy.py`) from the raw files, in each naming
//! (kijai/ComfyUI, PEFT/diffusers, .diff/.diff_b, SAT keys on fused tensors); unknown keys and
//! misfit shapes are refused by name before any weight is read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use scail_model::dit::{random_weights, Dit, DitConfig, RandomInputs};
use scail_model::lora::{LoraCheckpoint, LoraSpec};
use scail_model::weights::{Checkpoint, Contract, ModelSize};

fn cfg() -> DitConfig {
    Contract::new(ModelSize::Tiny).dit
}

/// Tiny random DiT weights as a Wan-layout safetensors file.
fn base_file(dir: &Path) -> PathBuf {
    let path = dir.join("dit.safetensors");
    let w = random_weights(&cfg(), DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&w, &path).unwrap();
    path
}

/// Deterministic values in [-0.5, 0.5) (splitmix64), so expectations are reproducible.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut st = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|_| {
            st = st.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = st;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(values(n, seed), shape, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

const RANK: usize = 4;

/// Weights every low-rank naming targets: linear layers of both blocks' attentions and FFN,
/// embeddings, the head, and a convolution (patch embedding).
fn low_rank_targets() -> Vec<String> {
    let mut v = Vec::new();
    for i in 0..2 {
        for p in ["q", "k", "v", "o"] {
            v.push(format!("blocks.{i}.self_attn.{p}"));
            v.push(format!("blocks.{i}.cross_attn.{p}"));
        }
        v.push(format!("blocks.{i}.cross_attn.k_img"));
        v.push(format!("blocks.{i}.ffn.0"));
        v.push(format!("blocks.{i}.ffn.2"));
    }
    for m in [
        "text_embedding.0",
        "time_projection.1",
        "head.head",
        "patch_embedding",
    ] {
        v.push(m.into());
    }
    v
}

/// A low-rank LoRA file in one naming: `(down, up)` suffixes, a key prefix and an optional
/// alpha. Returns the written tensors by name.
fn write_low_rank(
    path: &Path,
    prefix: &str,
    (down_sfx, up_sfx): (&str, &str),
    alpha: Option<f32>,
    seed: u64,
    rename: fn(&str) -> String,
) -> HashMap<String, Tensor> {
    let shapes: HashMap<String, Vec<usize>> = cfg().weight_shapes().into_iter().collect();
    let mut m = HashMap::new();
    for (j, module) in low_rank_targets().iter().enumerate() {
        let w = &shapes[&format!("{module}.weight")];
        let mut ds = vec![RANK];
        ds.extend_from_slice(&w[1..]);
        let mut us = vec![w[0], RANK];
        us.extend(std::iter::repeat_n(1, w.len() - 2));
        let s = seed * 1000 + 2 * j as u64;
        let module = rename(module);
        m.insert(format!("{prefix}{module}.{down_sfx}"), tensor(&ds, s));
        m.insert(format!("{prefix}{module}.{up_sfx}"), tensor(&us, s + 1));
        if let Some(a) = alpha {
            m.insert(
                format!("{prefix}{module}.alpha"),
                Tensor::new(a, &Device::Cpu).unwrap(),
            );
        }
    }
    candle_core::safetensors::save(&m, path).unwrap();
    m
}

/// `W + factor · up @ down` in f64 with plain loops (up `[out, r]`, down `[r, in]` flattened).
fn expected_low_rank(w: &[f32], up: &[f32], down: &[f32], factor: f64) -> Vec<f64> {
    let out = up.len() / RANK;
    let inn = down.len() / RANK;
    assert_eq!(w.len(), out * inn);
    let mut e: Vec<f64> = w.iter().map(|&x| x as f64).collect();
    for i in 0..out {
        for j in 0..inn {
            let mut acc = 0f64;
            for k in 0..RANK {
                acc += up[i * RANK + k] as f64 * down[k * inn + j] as f64;
            }
            e[i * inn + j] += factor * acc;
        }
    }
    e
}

/// Largest |got − want| (f32 fused result against the f64 expectation).
fn max_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .fold(0.0, f64::max)
}

/// f32 rounding of a rank-4 sum and one add, on values below ~4 in magnitude.
const TOL: f64 = 2e-6;

fn fused(base: &Path, specs: &[LoraSpec]) -> LoraCheckpoint {
    LoraCheckpoint::open(Checkpoint::open(base).unwrap(), specs).unwrap()
}

fn spec(path: &Path, scale: f64) -> LoraSpec {
    LoraSpec {
        path: path.to_path_buf(),
        scale,
    }
}

/// (name, key prefix, (down, up) suffixes, alpha, module naming) of one naming.
type Case<'a> = (
    &'a str,
    &'a str,
    (&'a str, &'a str),
    Option<f32>,
    fn(&str) -> String,
);

fn wan_names(m: &str) -> String {
    m.to_string()
}

/// The diffusers `WanTransformer3DModel` name of a Wan module, written out here from the
/// diffusers model's attribute names (independently of the loader's table).
fn diffusers_names(m: &str) -> String {
    let top = [
        (
            "text_embedding.0",
            "condition_embedder.text_embedder.linear_1",
        ),
        ("time_projection.1", "condition_embedder.time_proj"),
        ("head.head", "proj_out"),
        ("patch_embedding", "patch_embedding"),
    ];
    if let Some((_, d)) = top.iter().find(|(w, _)| *w == m) {
        return d.to_string();
    }
    let (i, inner) = m.strip_prefix("blocks.").unwrap().split_once('.').unwrap();
    let inner = match inner {
        "self_attn.o" => "attn1.to_out.0".to_string(),
        "cross_attn.o" => "attn2.to_out.0".to_string(),
        "cross_attn.k_img" => "attn2.add_k_proj".to_string(),
        "ffn.0" => "ffn.net.0.proj".to_string(),
        "ffn.2" => "ffn.net.2".to_string(),
        s => {
            let (attn, p) = s.split_once('.').unwrap();
            let attn = if attn == "self_attn" {
                "attn1"
            } else {
                "attn2"
            };
            format!("{attn}.to_{p}")
        }
    };
    format!("blocks.{i}.{inner}")
}

/// Every low-rank naming: kijai (`diffusion_model.`, alpha), kijai without alpha, PEFT under
/// `base_model.model.`, diffusers-style `transformer.` with Wan or diffusers module names, and
/// bare names.
#[test]
fn low_rank_fuse_matches_an_independent_computation_in_every_naming() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_file(dir.path());
    let ck = Checkpoint::open(&base).unwrap();
    let kijai = ("lora_down.weight", "lora_up.weight");
    let peft = ("lora_A.weight", "lora_B.weight");
    let cases: [Case; 6] = [
        ("kijai", "diffusion_model.", kijai, Some(8.0), wan_names),
        ("kijai_no_alpha", "diffusion_model.", kijai, None, wan_names),
        ("peft", "base_model.model.", peft, None, wan_names),
        ("diffusers", "transformer.", peft, Some(2.0), wan_names),
        (
            "diffusers_modules",
            "transformer.",
            peft,
            None,
            diffusers_names,
        ),
        ("bare", "", peft, Some(16.0), wan_names),
    ];
    let scale = 0.75;
    for (seed, (case, prefix, sfx, alpha, rename)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("{case}.safetensors"));
        let lora = write_low_rank(&path, prefix, sfx, alpha, seed as u64 + 1, rename);
        let f = fused(&base, &[spec(&path, scale)]);
        let factor = scale * alpha.map_or(1.0, |a| a as f64 / RANK as f64);
        let targets = low_rank_targets();
        assert_eq!(f.patched().count(), targets.len(), "{case}");
        for module in &targets {
            let name = format!("{module}.weight");
            let w = flat(&ck.load(&name).unwrap());
            let stored = rename(module);
            let up = flat(&lora[&format!("{prefix}{stored}.{}", sfx.1)]);
            let down = flat(&lora[&format!("{prefix}{stored}.{}", sfx.0)]);
            let want = expected_low_rank(&w, &up, &down, factor);
            let got = f.load(&name).unwrap();
            assert_eq!(got.dtype(), DType::F32);
            let got = flat(&got);
            let err = max_err(&got, &want);
            assert!(err <= TOL, "{case} {name}: max error {err}");
            assert!(got != w, "{case} {name}: unchanged");
        }
        // Untouched tensors come back as stored.
        for n in ["blocks.0.self_attn.q.bias", "blocks.0.norm3.weight"] {
            assert_eq!(flat(&f.load(n).unwrap()), flat(&ck.load(n).unwrap()), "{n}");
        }
    }
}

/// `.diff` (weights, also ones without `.weight` such as `modulation`) and `.diff_b` (biases),
/// and two files with their own scales adding up.
#[test]
fn full_deltas_and_several_loras_add_with_their_scales() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_file(dir.path());
    let ck = Checkpoint::open(&base).unwrap();
    let shapes: HashMap<String, Vec<usize>> = cfg().weight_shapes().into_iter().collect();
    // (key in the file, canonical tensor)
    let keys = [
        (
            "diffusion_model.blocks.0.self_attn.q.diff",
            "blocks.0.self_attn.q.weight",
        ),
        (
            "diffusion_model.blocks.0.self_attn.q.diff_b",
            "blocks.0.self_attn.q.bias",
        ),
        (
            "diffusion_model.blocks.0.norm3.diff",
            "blocks.0.norm3.weight",
        ),
        (
            "diffusion_model.blocks.0.norm3.diff_b",
            "blocks.0.norm3.bias",
        ),
        (
            "diffusion_model.blocks.1.modulation.diff",
            "blocks.1.modulation",
        ),
        ("diffusion_model.head.modulation.diff", "head.modulation"),
        (
            "diffusion_model.patch_embedding_mask.diff",
            "patch_embedding_mask.weight",
        ),
    ];
    let mut diff = HashMap::new();
    for (i, (k, name)) in keys.iter().enumerate() {
        diff.insert(k.to_string(), tensor(&shapes[*name], 100 + i as u64));
    }
    let diff_path = dir.path().join("diff.safetensors");
    candle_core::safetensors::save(&diff, &diff_path).unwrap();
    // A second, low-rank file on one of the same weights.
    let lr_path = dir.path().join("kijai.safetensors");
    let lora = write_low_rank(
        &lr_path,
        "diffusion_model.",
        ("lora_down.weight", "lora_up.weight"),
        Some(2.0),
        9,
        wan_names,
    );
    let (s1, s2) = (1.5, -0.5);
    let f = fused(&base, &[spec(&diff_path, s1), spec(&lr_path, s2)]);
    for (k, name) in keys {
        let w = flat(&ck.load(name).unwrap());
        let d = flat(&diff[k]);
        let mut want: Vec<f64> = w
            .iter()
            .zip(&d)
            .map(|(&w, &d)| w as f64 + s1 * d as f64)
            .collect();
        if name == "blocks.0.self_attn.q.weight" {
            let up = flat(&lora["diffusion_model.blocks.0.self_attn.q.lora_up.weight"]);
            let down = flat(&lora["diffusion_model.blocks.0.self_attn.q.lora_down.weight"]);
            let f32want: Vec<f32> = want.iter().map(|&x| x as f32).collect();
            want = expected_low_rank(&f32want, &up, &down, s2 * 2.0 / RANK as f64);
        }
        let got = flat(&f.load(name).unwrap());
        let err = max_err(&got, &want);
        assert!(err <= TOL, "{k}: max error {err}");
    }
}

/// A LoRA in the official SAT names patches the fused q/k/v tensor: each of q, k and v gets
/// its third of lora_up.
#[test]
fn sat_keys_patch_each_part_of_a_fused_tensor() {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/dit_sat_small.pt");
    let ck = Checkpoint::open(&base).unwrap();
    let q = ck
        .meta("blocks.1.self_attn.q.weight")
        .unwrap()
        .shape
        .clone();
    let (d_out, d_in) = (q[0], q[1]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sat.safetensors");
    let key = "model.diffusion_model.transformer.layers.1.attention.query_key_value";
    let down = tensor(&[RANK, d_in], 1);
    let up = tensor(&[3 * d_out, RANK], 2);
    let m = HashMap::from([
        (format!("{key}.lora_down.weight"), down.clone()),
        (format!("{key}.lora_up.weight"), up.clone()),
    ]);
    candle_core::safetensors::save(&m, &path).unwrap();
    let f = fused(&base, &[spec(&path, 1.0)]);
    let up = flat(&up);
    for (i, p) in ["q", "k", "v"].iter().enumerate() {
        let name = format!("blocks.1.self_attn.{p}.weight");
        let w = flat(&ck.load(&name).unwrap());
        let part = &up[i * d_out * RANK..(i + 1) * d_out * RANK];
        let want = expected_low_rank(&w, part, &flat(&down), 1.0);
        let err = max_err(&flat(&f.load(&name).unwrap()), &want);
        assert!(err <= TOL, "{name}: max error {err}");
    }
}

/// Scale 0: every weight and the forward are bit-identical to no LoRA; scale 1 changes both.
#[test]
fn scale_zero_is_bit_identical_and_scale_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_file(dir.path());
    let path = dir.path().join("kijai.safetensors");
    write_low_rank(
        &path,
        "diffusion_model.",
        ("lora_down.weight", "lora_up.weight"),
        Some(4.0),
        3,
        wan_names,
    );
    let ck = Checkpoint::open(&base).unwrap();
    let zero = fused(&base, &[spec(&path, 0.0)]);
    let one = fused(&base, &[spec(&path, 1.0)]);
    let mut changed = 0;
    for (name, _) in cfg().weight_shapes() {
        let w = flat(&ck.load(&name).unwrap());
        let z = flat(&zero.load(&name).unwrap());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&z), bits(&w), "{name} at scale 0");
        if flat(&one.load(&name).unwrap()) != w {
            changed += 1;
        }
    }
    assert_eq!(changed, low_rank_targets().len());

    let dev = Device::Cpu;
    let c = cfg();
    let inputs = RandomInputs::new(&c, (1, 4, 4), &dev).unwrap();
    let forward = |vb| -> Vec<f32> {
        let dit = Dit::load(vb, &c).unwrap();
        flat(&dit.forward(&inputs.inputs(500.0)).unwrap())
    };
    let plain = forward(
        Checkpoint::open(&base)
            .unwrap()
            .var_builder(DType::F32, &dev),
    );
    let with_zero = forward(zero.var_builder(DType::F32, &dev));
    let with_one = forward(one.var_builder(DType::F32, &dev));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&with_zero), bits(&plain), "forward at scale 0");
    assert!(with_one != plain, "forward unchanged at scale 1");
}

fn open_err(base: &Path, m: HashMap<String, Tensor>, dir: &Path) -> String {
    let path = dir.join("bad.safetensors");
    candle_core::safetensors::save(&m, &path).unwrap();
    match LoraCheckpoint::open(Checkpoint::open(base).unwrap(), &[spec(&path, 1.0)]) {
        Ok(_) => panic!("a bad LoRA was accepted"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("bad.safetensors"), "file not named: {msg}");
            msg
        }
    }
}

#[test]
fn unknown_keys_and_misfit_shapes_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_file(dir.path());
    let d = cfg().dim;
    let pair = |module: &str, down: &[usize], up: &[usize]| {
        HashMap::from([
            (format!("{module}.lora_down.weight"), tensor(down, 1)),
            (format!("{module}.lora_up.weight"), tensor(up, 2)),
        ])
    };
    // A block the tiny model does not have.
    let k = "diffusion_model.blocks.7.self_attn.q";
    let msg = open_err(&base, pair(k, &[RANK, d], &[d, RANK]), dir.path());
    assert!(msg.contains(&format!("{k}.lora_down.weight")), "{msg}");
    assert!(msg.contains("patches no DiT weight"), "{msg}");
    // A suffix that is no LoRA tensor.
    let k = "diffusion_model.blocks.0.self_attn.q.lora_mid.weight";
    let msg = open_err(
        &base,
        HashMap::from([(k.into(), tensor(&[2], 1))]),
        dir.path(),
    );
    assert!(msg.contains(k), "{msg}");
    // lora_down too wide for q.
    let k = "diffusion_model.blocks.0.self_attn.q";
    let msg = open_err(&base, pair(k, &[RANK, d + 1], &[d, RANK]), dir.path());
    assert!(msg.contains(&format!("{k}.lora_down.weight")), "{msg}");
    assert!(msg.contains("shape mismatch"), "{msg}");
    // Ranks that disagree.
    let msg = open_err(&base, pair(k, &[RANK, d], &[d, RANK + 1]), dir.path());
    assert!(msg.contains(&format!("{k}.lora_up.weight")), "{msg}");
    assert!(msg.contains("rank mismatch"), "{msg}");
    // A diff of the wrong shape.
    let k = "diffusion_model.blocks.0.norm3.diff";
    let msg = open_err(
        &base,
        HashMap::from([(k.into(), tensor(&[d, 2], 1))]),
        dir.path(),
    );
    assert!(msg.contains(k) && msg.contains("shape mismatch"), "{msg}");
    // lora_down without its lora_up.
    let k = "diffusion_model.blocks.0.self_attn.k.lora_A.weight";
    let msg = open_err(
        &base,
        HashMap::from([(k.into(), tensor(&[RANK, d], 1))]),
        dir.path(),
    );
    assert!(msg.contains(k) && msg.contains("pairs"), "{msg}");
}

#[test]
fn lora_specs_parse_file_and_scale() {
    let s: LoraSpec = "a/b.safetensors".parse().unwrap();
    assert_eq!((s.path, s.scale), (PathBuf::from("a/b.safetensors"), 1.0));
    let s: LoraSpec = "x=y/l.safetensors=0.5".parse().unwrap();
    assert_eq!((s.path, s.scale), (PathBuf::from("x=y/l.safetensors"), 0.5));
    let s: LoraSpec = "l.safetensors=-1".parse().unwrap();
    assert_eq!(s.scale, -1.0);
    for bad in [
        "l.safetensors=strong",
        "l.safetensors=inf",
        "=1",
        "l.safetensors=NaN",
    ] {
        assert!(bad.parse::<LoraSpec>().is_err(), "{bad} accepted");
    }
}

/// At bf16 the fused weight is the f32 fusion rounded once, not a sum of bf16 roundings.
#[test]
fn fusing_happens_in_f32_before_the_cast_to_the_run_precision() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_file(dir.path());
    let path = dir.path().join("kijai.safetensors");
    write_low_rank(
        &path,
        "diffusion_model.",
        ("lora_down.weight", "lora_up.weight"),
        None,
        5,
        wan_names,
    );
    let f32_fused = fused(&base, &[spec(&path, 0.3)]);
    let vb = fused(&base, &[spec(&path, 0.3)]).var_builder(DType::BF16, &Device::Cpu);
    for module in low_rank_targets() {
        let name = format!("{module}.weight");
        let want = f32_fused.load(&name).unwrap();
        let got = vb.get(want.dims(), &name).unwrap();
        assert_eq!(got.dtype(), DType::BF16);
        let want = want.to_dtype(DType::BF16).unwrap();
        assert_eq!(flat(&got), flat(&want), "{name}");
    }
}

/// The step-distillation LoRAs carry a `.diff` for vanilla Wan 2.1 I2V's input projection
/// (36 input channels; SCAIL-2's takes 20): that module is skipped and reported, the rest
/// applies. The same key with another kernel is still refused.
#[test]
fn a_wan_i2v_input_projection_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_file(dir.path());
    let ck = Checkpoint::open(&base).unwrap();
    let c = cfg();
    let d = c.dim;
    assert_ne!(c.in_dim, 36);
    let q = "diffusion_model.blocks.0.self_attn.q";
    let mut m = HashMap::from([
        (
            "diffusion_model.patch_embedding.diff".to_string(),
            tensor(&[d, 36, 1, 2, 2], 1),
        ),
        (
            "diffusion_model.patch_embedding.diff_b".to_string(),
            tensor(&[d], 2),
        ),
        (format!("{q}.lora_down.weight"), tensor(&[RANK, d], 3)),
        (format!("{q}.lora_up.weight"), tensor(&[d, RANK], 4)),
    ]);
    let path = dir.path().join("lightx2v.safetensors");
    candle_core::safetensors::save(&m, &path).unwrap();
    let f = fused(&base, &[spec(&path, 1.0)]);
    let mut skipped: Vec<&str> = f.skipped().iter().map(|s| s.key.as_str()).collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            "diffusion_model.patch_embedding.diff",
            "diffusion_model.patch_embedding.diff_b"
        ]
    );
    assert!(f.skipped()[0].reason.contains("36 input channels"));
    for n in ["patch_embedding.weight", "patch_embedding.bias"] {
        assert_eq!(flat(&f.load(n).unwrap()), flat(&ck.load(n).unwrap()), "{n}");
    }
    let n = "blocks.0.self_attn.q.weight";
    assert_ne!(flat(&f.load(n).unwrap()), flat(&ck.load(n).unwrap()));

    // Another kernel is no input projection of a sibling model: refused.
    m.insert(
        "diffusion_model.patch_embedding.diff".into(),
        tensor(&[d, 36, 1, 3, 3], 1),
    );
    let msg = open_err(&base, m, dir.path());
    assert!(
        msg.contains("diffusion_model.patch_embedding.diff"),
        "{msg}"
    );
    assert!(msg.contains("shape mismatch"), "{msg}");
}

/// kohya / musubi-tuner names: `lora_unet_` and the module path with underscores.
#[test]
fn kohya_names_fuse_like_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_file(dir.path());
    let ck = Checkpoint::open(&base).unwrap();
    let shapes: HashMap<String, Vec<usize>> = cfg().weight_shapes().into_iter().collect();
    let mut m = HashMap::new();
    let modules = ["blocks.0.self_attn.q", "blocks.1.ffn.0", "patch_embedding"];
    for (j, module) in modules.iter().enumerate() {
        let w = &shapes[&format!("{module}.weight")];
        let mut ds = vec![RANK];
        ds.extend_from_slice(&w[1..]);
        let mut us = vec![w[0], RANK];
        us.extend(std::iter::repeat_n(1, w.len() - 2));
        let k = format!("lora_unet_{}", module.replace('.', "_"));
        m.insert(
            format!("{k}.lora_down.weight"),
            tensor(&ds, 10 + 2 * j as u64),
        );
        m.insert(
            format!("{k}.lora_up.weight"),
            tensor(&us, 11 + 2 * j as u64),
        );
        m.insert(
            format!("{k}.alpha"),
            Tensor::new(2f32, &Device::Cpu).unwrap(),
        );
    }
    let modulation = tensor(&shapes["blocks.1.modulation"], 20);
    m.insert(
        "lora_unet_blocks_1_modulation.diff".into(),
        modulation.clone(),
    );
    let path = dir.path().join("kohya.safetensors");
    candle_core::safetensors::save(&m, &path).unwrap();
    let f = fused(&base, &[spec(&path, 0.5)]);
    for module in modules {
        let name = format!("{module}.weight");
        let k = format!("lora_unet_{}", module.replace('.', "_"));
        let w = flat(&ck.load(&name).unwrap());
        let up = flat(&m[&format!("{k}.lora_up.weight")]);
        let down = flat(&m[&format!("{k}.lora_down.weight")]);
        let want = expected_low_rank(&w, &up, &down, 0.5 * 2.0 / RANK as f64);
        let err = max_err(&flat(&f.load(&name).unwrap()), &want);
        assert!(err <= TOL, "{name}: max error {err}");
    }
    let w = flat(&ck.load("blocks.1.modulation").unwrap());
    let want: Vec<f64> = w
        .iter()
        .zip(flat(&modulation))
        .map(|(&w, d)| w as f64 + 0.5 * d as f64)
        .collect();
    let err = max_err(&flat(&f.load("blocks.1.modulation").unwrap()), &want);
    assert!(err <= TOL, "modulation: max error {err}");
    // A kohya name of no module is refused like any other.
    let k = "lora_unet_blocks_0_self_attn_x.lora_down.weight";
    let bad = HashMap::from([
        (k.to_string(), tensor(&[RANK, cfg().dim], 1)),
        (k.replace("down", "up"), tensor(&[cfg().dim, RANK], 2)),
    ]);
    let msg = open_err(&base, bad, dir.path());
    assert!(
        msg.contains(k) && msg.contains("patches no DiT weight"),
        "{msg}"
    );
}

/// The fused weights against numpy: every targeted tensor of each naming recomputed in float64
/// by `tests/lora_numpy.py` from the raw files (needs a Python with numpy: `SCAIL_PYTHON`, as
/// `.ci/run` sets, or `python3`).
#[test]
fn low_rank_fuse_matches_numpy_in_every_naming() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_file(dir.path());
    let kijai = ("lora_down.weight", "lora_up.weight");
    let peft = ("lora_A.weight", "lora_B.weight");
    let cases: [Case; 4] = [
        ("kijai", "diffusion_model.", kijai, Some(8.0), wan_names),
        ("peft", "base_model.model.", peft, None, wan_names),
        (
            "diffusers_modules",
            "transformer.",
            peft,
            Some(2.0),
            diffusers_names,
        ),
        ("bare", "", peft, Some(16.0), wan_names),
    ];
    let scale = -0.6;
    let mut plan_cases = Vec::new();
    for (seed, (case, prefix, sfx, alpha, rename)) in cases.into_iter().enumerate() {
        let lora_path = dir.path().join(format!("{case}.safetensors"));
        write_low_rank(&lora_path, prefix, sfx, alpha, 40 + seed as u64, rename);
        let f = fused(&base, &[spec(&lora_path, scale)]);
        let mut out = HashMap::new();
        let mut entries = Vec::new();
        for module in low_rank_targets() {
            let name = format!("{module}.weight");
            out.insert(name.clone(), f.load(&name).unwrap());
            let stored = rename(&module);
            entries.push(serde_json::json!({
                "name": name,
                "down": format!("{prefix}{stored}.{}", sfx.0),
                "up": format!("{prefix}{stored}.{}", sfx.1),
                "alpha": alpha.map(|_| format!("{prefix}{stored}.alpha")),
            }));
        }
        let fused_path = dir.path().join(format!("{case}.fused.safetensors"));
        candle_core::safetensors::save(&out, &fused_path).unwrap();
        plan_cases.push(
            serde_json::json!({"case": case, "lora": lora_path, "fused": fused_path,
            "scale": scale, "entries": entries}),
        );
    }
    let plan = dir.path().join("plan.json");
    let v = serde_json::json!({"base": base, "tol": TOL, "cases": plan_cases});
    std::fs::write(&plan, v.to_string()).unwrap();
    let python = std::env::var("SCAIL_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lora_numpy.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&plan)
        .output()
        .unwrap_or_else(|e| {
            panic!("running {python}: {e} (set SCAIL_PYTHON to a Python with numpy)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "numpy disagrees (or is missing):\n{text}"
    );
    assert_eq!(
        text.matches("max |fused - numpy|").count(),
        cases.len(),
        "{text}"
    );
}
