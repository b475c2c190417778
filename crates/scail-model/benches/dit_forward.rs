//! DiT forward benchmark with random weights (the library side of `scail bench dit`).
//!
//! Usage: dit_forward [--dim N] [--heads N] [--layers N] [--ffn N] [--frames T] [--height h]
//!                    [--width w] [--dtype f32|bf16|f16] [--forwards N] [--threads N]
//! Sizes are latent units (h, w = pixels / 8). Prints a human line and one JSON line.

use candle_core::{DType, Device};
use scail_model::dit::{bench_forward, DitConfig};

fn main() {
    let mut cfg = DitConfig {
        dim: 1024,
        num_heads: 16,
        num_layers: 4,
        ffn_dim: 4096,
        ..DitConfig::fourteen_b()
    };
    let (mut frames, mut height, mut width, mut forwards) = (8usize, 32usize, 48usize, 2usize);
    let mut dtype = DType::F32;
    let mut attention_only = false;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue; // passed by `cargo bench`
        }
        if flag == "--attention-only" {
            attention_only = true;
            continue;
        }
        let val = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let num = || {
            val.parse::<usize>()
                .unwrap_or_else(|_| panic!("{flag}: bad number {val}"))
        };
        match flag.as_str() {
            "--dim" => cfg.dim = num(),
            "--heads" => cfg.num_heads = num(),
            "--layers" => cfg.num_layers = num(),
            "--ffn" => cfg.ffn_dim = num(),
            "--frames" => frames = num(),
            "--height" => height = num(),
            "--width" => width = num(),
            "--forwards" => forwards = num(),
            "--threads" => {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(num())
                    .build_global()
                    .expect("rayon pool");
            }
            "--dtype" => {
                dtype = match val.as_str() {
                    "f32" => DType::F32,
                    "bf16" => DType::BF16,
                    "f16" => DType::F16,
                    other => panic!("--dtype {other}: f32, bf16 or f16"),
                }
            }
            other => panic!("unknown flag {other}"),
        }
    }
    if attention_only {
        attention_bench(&cfg, (frames, height, width), forwards);
        return;
    }
    let r = bench_forward(&cfg, (frames, height, width), dtype, &Device::Cpu, forwards)
        .expect("benchmark forward");
    let peak_gb = r
        .peak_memory_bytes
        .map(|b| b as f64 / 1e9)
        .unwrap_or(f64::NAN);
    println!(
        "scail dit forward ({} matmuls): dim {} heads {} layers {} ffn {} tokens {} {:?}: {:.3} s/forward (best {:.3}), {:.0} tokens/s, peak {:.2} GB",
        scail_model::blas::backend(), cfg.dim, cfg.num_heads, cfg.num_layers, cfg.ffn_dim, r.tokens, dtype,
        r.seconds_per_forward, r.best_seconds_per_forward, r.tokens_per_second, peak_gb
    );
    println!("{}", serde_json::to_string(&r).expect("json"));
}

/// Self-attention alone at the forward's token count: the head-split blockwise kernel, the
/// token-layout one the CPU forward uses, and materialised scores.
fn attention_bench(cfg: &DitConfig, (t, h, w): (usize, usize, usize), reps: usize) {
    use scail_model::attention::{attention, attention_tokens, naive_attention};
    let tokens = (1 + t) * (h / 2) * (w / 2) + t * (h / 4) * (w / 4);
    let shape = (cfg.num_heads, tokens, cfg.head_dim());
    let r = |s: &[usize]| candle_core::Tensor::randn(0f32, 1.0, s, &Device::Cpu).expect("randn");
    let (q, k, v) = (
        r(&[shape.0, shape.1, shape.2]),
        r(&[shape.0, shape.1, shape.2]),
        r(&[shape.0, shape.1, shape.2]),
    );
    let tok = [1, tokens, cfg.dim];
    let (qt, kt, vt) = (r(&tok), r(&tok), r(&tok));
    let heads = cfg.num_heads;
    type Run<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let runs: [Run; 3] = [
        (
            "blockwise",
            Box::new(|| drop(attention(&q, &k, &v).expect("attention"))),
        ),
        (
            "tokens",
            Box::new(|| drop(attention_tokens(&qt, &kt, &vt, heads).expect("attention"))),
        ),
        (
            "naive",
            Box::new(|| drop(naive_attention(&q, &k, &v).expect("attention"))),
        ),
    ];
    for (name, f) in runs {
        f();
        let start = std::time::Instant::now();
        for _ in 0..reps.max(1) {
            f();
        }
        let s = start.elapsed().as_secs_f64() / reps.max(1) as f64;
        let gflop = 4.0 * (tokens * tokens * cfg.dim) as f64 / 1e9;
        println!(
            "{name} attention {shape:?}: {s:.3} s ({:.1} GFLOP/s)",
            gflop / s
        );
    }
}
