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
    /// One Wan 2.1 VAE decode with random weights at the real widths: seconds and peak memory.
    Vae(VaeBench),
    /// The memory table: peak host and GPU memory of a 14B job for each precision and offload
    /// mode, computed from the published checkpoints' tensor sizes (no weights needed).
    Memory(MemoryBench),
}

#[derive(Args, Debug)]
struct VaeBench {
    /// Latent frames (21 is one 81-frame segment).
    #[arg(long, default_value_t = 21)]
    frames: usize,
    /// Latent height (pixels / 8; 64 for 512).
    #[arg(long, default_value_t = 64)]
    height: usize,
    /// Latent width (pixels / 8; 112 for 896).
    #[arg(long, default_value_t = 112)]
    width: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Timed decodes (the best is reported).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// f32 or bf16; `auto` is what a bf16 job uses: bf16 on a GPU, f32 on the CPU.
    #[arg(long, default_value = "auto")]
    dtype: String,
}

#[derive(Args, Debug)]
struct MemoryBench {
    /// Video width x height in pixels.
    #[arg(long, default_value = "896x512", value_parser = crate::generate::parse_size)]
    size: (u32, u32),
    /// Frames per segment (81 for the released model) and of the whole video.
    #[arg(long, default_value_t = 81)]
    frames: usize,
    /// Guidance scale: above 1 the two branches are batched when their activations fit the
    /// sampler's batch limit (8 GiB), as a job does; 1 is the fast preset.
    #[arg(long, default_value_t = 5.0)]
    guidance_scale: f64,
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
    /// Read the DiT from this weights folder (its real files: official SAT or canonical
    /// safetensors, fp8_scaled included) instead of random weights made in memory; the config
    /// is the folder's.
    #[arg(long, value_name = "DIR")]
    weights: Option<std::path::PathBuf>,
    /// With --weights: none, blocks or stream (see `scail generate --help`).
    #[arg(long, default_value = "none")]
    offload: scail_model::offload::Offload,
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    match a.what {
        BenchWhat::Dit(b) => dit(b),
        BenchWhat::Memory(m) => memory_table(m),
        BenchWhat::Vae(v) => vae(v),
    }
}

fn vae(v: VaeBench) -> anyhow::Result<()> {
    let device = crate::device::parse_device(&v.device)?;
    let dtype = match v.dtype.as_str() {
        "auto" => scail_pipeline::models::vae_dtype(candle_core::DType::BF16, &device),
        d => crate::device::parse_dtype(d)?,
    };
    scail_model::dit::bench_vae((v.frames, v.height, v.width), &device, dtype, v.runs)?;
    Ok(())
}

fn memory_table(m: MemoryBench) -> anyhow::Result<()> {
    use candle_core::DType;
    use scail_model::memory::{estimate, gib, JobShape, WeightBytes};
    use scail_model::offload::Offload;
    use scail_model::weights::{Contract, ModelSize};
    let c = Contract::new(ModelSize::FourteenB);
    let mut shape = JobShape {
        width: m.size.0 as usize,
        height: m.size.1 as usize,
        segment_frames: m.frames,
        total_frames: m.frames,
        branches: 1,
    };
    shape.branches = scail_model::memory::guidance_branches(
        &c.dit,
        shape.tokens(&c.dit),
        m.guidance_scale,
        scail_pipeline::segments::DEFAULT_GUIDANCE_BATCH_BYTES,
    );
    println!(
        "14B, {}x{}, {} frames, {} guidance branch(es) per forward, {} tokens per branch \
         (computed, not measured)\n",
        shape.width,
        shape.height,
        shape.frames_label(),
        shape.branches,
        shape.tokens(&c.dit)
    );
    println!("| weights | --offload | CPU: host | GPU: device | GPU: host |");
    println!("|---|---|---|---|---|");
    let rows = [
        ("f32 (official)", DType::F32, false),
        ("bf16", DType::BF16, false),
        ("fp8_scaled, bf16 compute", DType::BF16, true),
    ];
    for (label, dtype, fp8) in rows {
        let w = WeightBytes::for_contract(&c, dtype, fp8);
        for mode in Offload::ALL {
            // As `generate` places them: the DiT loaded after umT5 is freed.
            let p = scail_model::memory::Placement {
                offload: mode,
                dit_after_t5: true,
                ..Default::default()
            };
            let cpu = estimate(&w, &c.dit, &shape, p);
            let gpu = estimate(
                &w,
                &c.dit,
                &shape,
                scail_model::memory::Placement { on_gpu: true, ..p },
            );
            println!(
                "| {label} | {mode} | {} | {} | {} |",
                gib(cpu.host),
                gib(gpu.device),
                gib(gpu.host)
            );
        }
    }
    Ok(())
}

fn dit(b: DitBench) -> anyhow::Result<()> {
    if let Some(p) = scail_model::dit::bench_size_problem(b.frames, b.height, b.width) {
        anyhow::bail!(p);
    }
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
    if let Some(dir) = &b.weights {
        return dit_from_files(&b, dir, latent, dtype, &device);
    }
    let r = scail_model::dit::bench_forward(&cfg, latent, dtype, &device, b.forwards)?;
    r.print(&device);
    Ok(())
}

/// `--weights DIR`: the folder's DiT read through the loaders under `--offload`, with the
/// peak of anonymous memory (heap and tensors; the page cache of the files is not counted).
fn dit_from_files(
    b: &DitBench,
    dir: &std::path::Path,
    latent: (usize, usize, usize),
    dtype: candle_core::DType,
    device: &candle_core::Device,
) -> anyhow::Result<()> {
    use scail_model::weights::{self, Checkpoint, Contract, ModelSize};
    let report = weights::verify(dir)?;
    let dit = report
        .components
        .iter()
        .find(|c| c.component == "dit")
        .expect("the contract has a DiT");
    let file = match (&dit.file, &dit.error) {
        (Some(f), None) => f.clone(),
        (_, Some(e)) => anyhow::bail!("--weights {}: DiT: {e}", dir.display()),
        (None, None) => anyhow::bail!("--weights {}: no DiT checkpoint", dir.display()),
    };
    if b.full_14b {
        anyhow::ensure!(
            report.size == ModelSize::FourteenB,
            "--full-14b: {} holds the tiny model",
            dir.display()
        );
    }
    let cfg = Contract::new(report.size).dit;
    eprintln!(
        "{}: DiT dim {} layers {}, --offload {}",
        file.display(),
        cfg.dim,
        cfg.num_layers,
        b.offload
    );
    let peak = scail_model::dit::AnonPeak::start();
    let start = std::time::Instant::now();
    let vb = Checkpoint::open(&file)?.var_builder(dtype, device);
    let model = scail_model::dit::Dit::load_offloaded(vb, &cfg, b.offload)?;
    let load_s = start.elapsed().as_secs_f64();
    let r = scail_model::dit::bench_model(&model, latent, b.forwards)?;
    let anon = peak.finish();
    println!("load seconds        {load_s:.1}");
    r.print(device);
    println!(
        "peak anonymous RSS  {:.2} GiB (heap and tensors, not page cache)",
        anon as f64 / (1u64 << 30) as f64
    );
    Ok(())
}
