//! `scail bench …`: model benchmarks with random weights at any size.

use clap::{Args, Subcommand};
use scail_model::dit::DitConfig;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// One DiT forward with random weights: seconds per forward, tokens/s, peak memory.
    Dit(DitBench),
}

#[derive(Args, Debug)]
struct DitBench {
    /// Model width (14B: 5120).
    #[arg(long, default_value_t = 1024)]
    dim: usize,
    /// Attention heads (14B: 40; head dim = dim / heads).
    #[arg(long, default_value_t = 16)]
    heads: usize,
    /// Transformer blocks (14B: 40).
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// FFN width (default: 2.7 x dim, as the 14B's 13824 / 5120).
    #[arg(long)]
    ffn_dim: Option<usize>,
    /// Video frames (4k+1; 81 is one full segment).
    #[arg(long, default_value_t = 17)]
    frames: usize,
    /// Video height in pixels (multiple of 16).
    #[arg(long, default_value_t = 256)]
    height: usize,
    /// Video width in pixels (multiple of 16).
    #[arg(long, default_value_t = 448)]
    width: usize,
    /// Weight precision: f32, bf16 or f16 (norms, modulation and the residual stream stay f32).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Timed forwards after one warm-up.
    #[arg(long, default_value_t = 2)]
    forwards: usize,
    /// Use the full 14B config (overrides --dim, --heads, --layers, --ffn-dim).
    #[arg(long)]
    full_14b: bool,
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    match a.what {
        BenchWhat::Dit(b) => dit(b),
    }
}

fn dit(b: DitBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        b.frames >= 1 && (b.frames - 1).is_multiple_of(4),
        "--frames must be 4k+1 (1, 5, …, 81)"
    );
    anyhow::ensure!(
        b.height.is_multiple_of(16) && b.width.is_multiple_of(16),
        "--height and --width must be multiples of 16"
    );
    let mut cfg = DitConfig::fourteen_b();
    if !b.full_14b {
        anyhow::ensure!(
            b.heads > 0 && b.dim.is_multiple_of(b.heads) && (b.dim / b.heads).is_multiple_of(2),
            "--dim must be a multiple of 2 x --heads"
        );
        cfg.dim = b.dim;
        cfg.num_heads = b.heads;
        cfg.num_layers = b.layers;
        cfg.ffn_dim = b.ffn_dim.unwrap_or(b.dim * 27 / 10);
    }
    let device = crate::device::parse_device(&b.device)?;
    let dtype = crate::device::parse_dtype(&b.dtype)?;
    let latent = ((b.frames - 1) / 4 + 1, b.height / 8, b.width / 8);
    eprintln!(
        "DiT dim {} heads {} layers {} ffn {} | {} frames {}x{} (latent {:?}) | {} on {}",
        cfg.dim,
        cfg.num_heads,
        cfg.num_layers,
        cfg.ffn_dim,
        b.frames,
        b.width,
        b.height,
        latent,
        b.dtype,
        b.device
    );
    let r = scail_model::dit::bench_forward(&cfg, latent, dtype, &device, b.forwards)?;
    println!("tokens              {}", r.tokens);
    println!("seconds per forward {:.3}", r.seconds_per_forward);
    println!("tokens per second   {:.0}", r.tokens_per_second);
    match r.peak_memory_bytes {
        Some(m) => println!(
            "peak memory (RSS)   {:.2} GiB",
            m as f64 / (1u64 << 30) as f64
        ),
        None => println!("peak memory (RSS)   unknown"),
    }
    Ok(())
}
