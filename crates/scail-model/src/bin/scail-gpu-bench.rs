//! `scail-gpu-bench`: the DiT and VAE benchmarks of `scail bench` in a binary that links no
//! media libraries, so it runs on a GPU host without Debian's ffmpeg (bench/gpu.sh). Same
//! output lines as `scail bench dit` / `scail bench vae`.
//!
//!   scail-gpu-bench dit [--device cuda] [--dtype bf16] [--frames 81] [--height 512]
//!                       [--width 896] [--forwards 2]      (full 14B config, random weights)
//!   scail-gpu-bench vae [--device cuda] [--frames 21] [--height 64] [--width 112] [--runs 1]
//!                       [--dtype bf16]   (bf16 on a GPU, f32 on the CPU by default)
//!   scail-gpu-bench attention [--device cuda] [--frames 81] [--height 512] [--width 896]
//!                       [--heads 40] [--runs 3]   (checked against naive attention, then timed
//!                       against the chunked path at the DiT's token count)
//!   scail-gpu-bench offload [--device cuda] [--layers 8] [--frames 81] [--height 512]
//!                       [--width 896] [--forwards 2]   (the 14B blocks, --offload blocks
//!                       against none: same output, seconds per forward, device memory)

use candle_core::{DType, Device};
use scail_model::attention::{self, check};
use scail_model::dit::{
    bench_forward, bench_model, bench_size_problem, bench_vae, latent_size, DitConfig,
};

fn main() {
    if let Err(e) = run() {
        eprintln!("Error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().cloned().unwrap_or_default();
    let mut opt = std::collections::HashMap::new();
    let mut it = args.iter().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        opt.insert(flag.trim_start_matches("--").to_string(), v.clone());
    }
    let get = |k: &str, d: &str| opt.get(k).cloned().unwrap_or_else(|| d.to_string());
    let num = |k: &str, d: usize| -> Result<usize, String> {
        get(k, &d.to_string())
            .parse()
            .map_err(|_| format!("--{k}: expected a number"))
    };
    let device = match get("device", "cpu").as_str() {
        "cpu" => Device::Cpu,
        d => {
            let n = d
                .strip_prefix("cuda")
                .map(|r| r.trim_start_matches(':'))
                .ok_or(format!("--device {d}: cpu, cuda or cuda:N"))?;
            let n = if n.is_empty() {
                0
            } else {
                n.parse().map_err(|_| format!("--device {d}"))?
            };
            Device::new_cuda(n).map_err(|e| format!("--device {d}: {e}"))?
        }
    };
    match what.as_str() {
        "dit" => {
            let dtype = match get("dtype", "bf16").as_str() {
                "f32" => DType::F32,
                "bf16" => DType::BF16,
                "f16" => DType::F16,
                d => return Err(format!("--dtype {d}: f32, bf16 or f16")),
            };
            let (frames, height, width) =
                (num("frames", 81)?, num("height", 512)?, num("width", 896)?);
            if let Some(p) = bench_size_problem(frames, height, width) {
                return Err(p.into());
            }
            let latent = latent_size(frames, height, width);
            let cfg = DitConfig::fourteen_b();
            let r = bench_forward(&cfg, latent, dtype, &device, num("forwards", 2)?)
                .map_err(|e| e.to_string())?;
            r.print(&device);
        }
        "vae" => {
            let latent = (num("frames", 21)?, num("height", 64)?, num("width", 112)?);
            // A bf16 job's VAE on a GPU is bf16 (scail_pipeline::models::vae_dtype).
            let auto = if device.is_cuda() { "bf16" } else { "f32" };
            let dtype = match get("dtype", auto).as_str() {
                "f32" => DType::F32,
                "bf16" => DType::BF16,
                d => return Err(format!("--dtype {d}: f32 or bf16")),
            };
            bench_vae(latent, &device, dtype, num("runs", 1)?).map_err(|e| e.to_string())?;
        }
        "attention" => {
            let (frames, height, width) =
                (num("frames", 81)?, num("height", 512)?, num("width", 896)?);
            let (f, h, w) = latent_size(frames, height, width);
            let tokens = f * (h / 2) * (w / 2);
            attention_bench(&device, (num("heads", 40)?, tokens), num("runs", 3)?)?;
        }
        "offload" => {
            let (frames, height, width) =
                (num("frames", 81)?, num("height", 512)?, num("width", 896)?);
            if let Some(p) = bench_size_problem(frames, height, width) {
                return Err(p.into());
            }
            let latent = latent_size(frames, height, width);
            offload_bench(&device, num("layers", 8)?, latent, num("forwards", 2)?)?;
        }
        o => return Err(format!("`{o}`: dit, vae, attention or offload")),
    }
    Ok(())
}

/// The attention check (an error past its bound), then FlashAttention (where it applies) and the
/// chunked path timed on one self-attention of the DiT's size, bf16.
fn attention_bench(
    device: &Device,
    (heads, tokens): (usize, usize),
    runs: usize,
) -> Result<(), String> {
    let e = |e: attention::AttentionError| e.to_string();
    let d = attention::FLASH_HEAD_DIMS[0];
    for (lead, lq, lk) in [(vec![2, 3], 300, 257), (vec![5], 129, 1000)] {
        let r = check::compare_with_naive(device, DType::BF16, &lead, (lq, lk, d)).map_err(e)?;
        println!(
            "check {lead:?} {lq}x{lk}x{d}: {} max error {:.3e} (bound {:.3e}) {}",
            r.path,
            r.max_err,
            r.bound,
            if r.ok() { "ok" } else { "FAILED" }
        );
        if !r.ok() {
            return Err("attention differs from naive attention past its bound".into());
        }
    }
    let flops = 4.0 * (heads * tokens * tokens * d) as f64;
    let path = check::path(device, DType::BF16, d, d);
    let shape = (heads, tokens, d);
    let fast =
        check::time_attention(device, DType::BF16, shape, runs, attention::attention).map_err(e)?;
    println!(
        "attention {heads} heads x {tokens} tokens x {d}: {path} {fast:.3} s ({:.0} TFLOP/s)",
        flops / fast / 1e12
    );
    let chunked = check::time_attention(device, DType::BF16, shape, runs.min(1), |q, k, v| {
        attention::chunked_attention(q, k, v, attention::CHUNK_SCORE_BYTES)
    })
    .map_err(e)?;
    println!(
        "attention {heads} heads x {tokens} tokens x {d}: chunked {chunked:.3} s ({:.0} TFLOP/s); {path} is {:.1}x",
        flops / chunked / 1e12,
        chunked / fast
    );
    Ok(())
}

/// `--offload blocks` against `none` on the 14B block shape (`layers` of them, random bf16
/// weights made on the host): the outputs must agree (a block used before its copy landed would
/// not), then both are timed.
fn offload_bench(
    device: &Device,
    layers: usize,
    latent: (usize, usize, usize),
    forwards: usize,
) -> Result<(), String> {
    use scail_model::dit::{random_weights, Dit, RandomInputs};
    use scail_model::offload::Offload;
    let e = |e: scail_model::dit::DitError| e.to_string();
    let cfg = DitConfig {
        num_layers: layers,
        ..DitConfig::fourteen_b()
    };
    let weights = random_weights(&cfg, DType::BF16, &Device::Cpu).map_err(e)?;
    let vb = candle_nn::VarBuilder::from_tensors(weights, DType::BF16, device);
    let check = RandomInputs::new(&cfg, (2, 8, 8), device).map_err(e)?;
    let mut outs = Vec::new();
    for mode in [Offload::None, Offload::Blocks] {
        let model = Dit::load_offloaded(vb.clone(), &cfg, mode).map_err(e)?;
        let out = model.forward(&check.inputs(500.0)).map_err(e)?;
        outs.push(out.to_dtype(DType::F32).map_err(|e| e.to_string())?);
        let r = bench_model(&model, latent, forwards).map_err(e)?;
        println!(
            "offload {mode:<6} {layers} blocks, {} tokens: {:.3} s per forward (best {:.3}), device memory {}",
            r.tokens,
            r.seconds_per_forward,
            r.best_seconds_per_forward,
            scail_model::device_memory_used(device)
                .map_or("?".into(), |b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64))
        );
    }
    let rel = (|| -> candle_core::Result<f32> {
        let d = (&outs[1] - &outs[0])?
            .sqr()?
            .sum_all()?
            .to_scalar::<f32>()?;
        let n = outs[0].sqr()?.sum_all()?.to_scalar::<f32>()?;
        Ok((d / n).sqrt())
    })()
    .map_err(|e| e.to_string())?;
    println!("offload blocks vs none: relative RMS difference {rel:.2e} (must be below 1e-2)");
    if rel.is_nan() || rel >= 1e-2 {
        return Err("--offload blocks gives another result than none".into());
    }
    Ok(())
}
