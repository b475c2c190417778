//! Random weights and inputs and the forward benchmark (`scail bench dit`, real-size tests):
//! feature `testing`.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::{Dit, DitConfig, DitInputs, Result, CLIP_DIM};
use crate::memory::{anon_rss_bytes, peak_rss_bytes};
use crate::rope::ScailRope;

/// Why `frames x height x width` (pixels) is not a size the benchmarks take, if it is not:
/// 4k+1 frames, sides positive multiples of 16.
pub fn bench_size_problem(frames: usize, height: usize, width: usize) -> Option<&'static str> {
    if frames == 0 || !(frames - 1).is_multiple_of(4) {
        Some("--frames must be 4k+1 (1, 5, …, 81)")
    } else if height == 0 || width == 0 || !height.is_multiple_of(16) || !width.is_multiple_of(16) {
        Some("--height and --width must be positive multiples of 16")
    } else {
        None
    }
}

/// Latent grid `(T, h, w)` of a clip of `frames` frames at `height × width` pixels (VAE stride
/// 4×8×8), the units [`bench_forward`] takes.
pub fn latent_size(frames: usize, height: usize, width: usize) -> (usize, usize, usize) {
    (frames.saturating_sub(1) / 4 + 1, height / 8, width / 8)
}

/// Output of [`bench_forward`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub tokens: usize,
    /// Mean over the timed forwards.
    pub seconds_per_forward: f64,
    /// Fastest timed forward (robust to other load on a shared machine).
    pub best_seconds_per_forward: f64,
    pub tokens_per_second: f64,
    /// Peak resident memory of the process (VmHWM) in bytes, when the OS reports it.
    pub peak_memory_bytes: Option<u64>,
    /// Peak GPU memory in use during the forwards, warm-up included (sampled every 20 ms from the
    /// driver, so a spike shorter than that can be missed).
    pub peak_device_bytes: Option<u64>,
    pub forwards: usize,
}

impl BenchReport {
    /// The report as `scail bench dit` prints it (one `name  value` line each), plus the GPU
    /// memory in use on `device`, if any.
    pub fn print(&self, device: &Device) {
        println!("tokens              {}", self.tokens);
        println!("seconds per forward {:.3}", self.seconds_per_forward);
        println!("tokens per second   {:.0}", self.tokens_per_second);
        match self.peak_memory_bytes {
            Some(m) => println!("peak memory (RSS)   {:.2} GiB", gib(m)),
            None => println!("peak memory (RSS)   unknown"),
        }
        if let Some(m) = self.peak_device_bytes {
            println!(
                "peak device memory  {:.2} GiB (sampled every 20 ms)",
                gib(m)
            );
        }
        if let Some(m) = crate::device_memory_used(device) {
            println!(
                "device memory used  {:.2} GiB (after the last forward)",
                gib(m)
            );
        }
    }
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

/// One VAE decode of random latents `[16, frames, height, width]` with random weights at the
/// real widths (`scail bench vae`): best of `runs`, printed, with peak anonymous memory.
pub fn bench_vae(
    (frames, height, width): (usize, usize, usize),
    device: &Device,
    dtype: DType,
    runs: usize,
) -> Result<()> {
    use crate::vae::{VaeConfig, WanVae};
    if frames == 0 || height == 0 || width == 0 {
        return Err(super::DitError::Config(
            "--frames, --height and --width must be positive (latent units)".into(),
        ));
    }
    let cfg = VaeConfig::wan21();
    let ws = crate::vae::random_weights(&cfg, device)?;
    let vae = WanVae::new(&cfg, VarBuilder::from_tensors(ws, dtype, device))?;
    let z = Tensor::randn(0f32, 1.0, (16, frames, height, width), device)?;
    let peak = AnonPeak::start();
    let (mut best, mut out_frames) = (f64::INFINITY, 0);
    for _ in 0..runs.max(1) {
        let start = std::time::Instant::now();
        let out = vae.decode(&z)?;
        out.device().synchronize()?;
        best = best.min(start.elapsed().as_secs_f64());
        out_frames = out.dim(1)?;
    }
    let anon = peak.finish();
    println!(
        "VAE decode          latent [16, {frames}, {height}, {width}] -> {out_frames} frames {}x{}, {dtype:?}",
        8 * width,
        8 * height
    );
    println!("seconds per decode  {best:.3}");
    println!("peak anonymous RSS  {:.2} GiB", gib(anon));
    if let Some(m) = crate::device_memory_used(device) {
        println!("device memory used  {:.2} GiB (after the decode)", gib(m));
    }
    Ok(())
}

/// Samples a memory figure every 20 ms on a thread and keeps the peak.
pub struct Peak {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<u64>>,
}

impl Peak {
    pub fn start(sample: impl Fn() -> Option<u64> + Send + 'static) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(sample().unwrap_or(0));
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            peak.max(sample().unwrap_or(0))
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// The peak so far, in bytes (0 where nothing was reported).
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.take().map_or(0, |h| h.join().unwrap_or(0))
    }
}

/// [`Peak`] of [`anon_rss_bytes`].
pub struct AnonPeak(Peak);

impl AnonPeak {
    pub fn start() -> Self {
        Self(Peak::start(anon_rss_bytes))
    }

    /// The peak so far, in bytes (0 where the OS does not report it).
    pub fn finish(self) -> u64 {
        self.0.finish()
    }
}

/// Random weights for `cfg` (normal, std 1/√fan_in; norms and modulation around their natural
/// values) in `dtype`, for benchmarks and real-size tests. Not seeded (candle's CPU RNG cannot
/// be): convert one draw to compare dtypes.
pub fn random_weights(
    cfg: &DitConfig,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut m = HashMap::new();
    for (name, shape) in cfg.weight_shapes() {
        let fan_in: usize = if shape.len() >= 2 {
            shape[1..].iter().product()
        } else {
            1
        };
        let t = if name.ends_with("modulation") {
            (Tensor::randn(0f32, 1.0, shape.as_slice(), device)? / (cfg.dim as f64).sqrt())?
        } else if shape.len() == 1
            && (name.contains("norm")
                || name.starts_with("img_emb.proj.0")
                || name.starts_with("img_emb.proj.4"))
            && name.ends_with("weight")
        {
            Tensor::ones(shape.as_slice(), DType::F32, device)?
        } else if shape.len() == 1 {
            (Tensor::randn(0f32, 1.0, shape.as_slice(), device)? * 0.02)?
        } else {
            (Tensor::randn(0f32, 1.0, shape.as_slice(), device)? / (fan_in as f64).sqrt())?
        };
        m.insert(name, t.to_dtype(dtype)?);
    }
    Ok(m)
}

/// Random inputs for a forward at latent size `frames × height × width` (latent units).
pub struct RandomInputs {
    pub x: Tensor,
    pub context: Tensor,
    pub clip_fea: Tensor,
    pub ref_latents: Tensor,
    pub ref_masks: Tensor,
    pub pose_latents: Tensor,
    pub driving_masks: Tensor,
}

impl RandomInputs {
    pub fn new(cfg: &DitConfig, (t, h, w): (usize, usize, usize), device: &Device) -> Result<Self> {
        let c = cfg.latent_channels();
        let r = |s: &[usize]| Tensor::randn(0f32, 1.0, s, device);
        let u = |s: &[usize]| Tensor::rand(0f32, 1.0, s, device);
        Ok(Self {
            x: r(&[c, t, h, w])?,
            context: r(&[cfg.text_len.min(64), cfg.text_dim])?,
            clip_fea: r(&[1, 257, CLIP_DIM])?,
            ref_latents: r(&[c, 1, h, w])?,
            ref_masks: u(&[cfg.mask_dim, 1 + t, h, w])?,
            pose_latents: r(&[c, t, h / 2, w / 2])?,
            driving_masks: u(&[cfg.mask_dim, t, h / 2, w / 2])?,
        })
    }

    pub fn inputs(&self, t: f64) -> DitInputs<'_> {
        DitInputs {
            x: &self.x,
            t,
            context: &self.context,
            clip_fea: &self.clip_fea,
            ref_latents: &self.ref_latents,
            ref_masks: &self.ref_masks,
            pose_latents: &self.pose_latents,
            driving_masks: &self.driving_masks,
            history_mask: None,
            additional_refs: None,
            replace: false,
        }
    }
}

/// `scail bench dit`: the forward of `cfg` with random weights at a latent size of
/// `frames × height × width` (latent units: pixels / 8, frames (n−1)/4+1), `dtype` weights.
/// One warm-up forward, then `forwards` timed ones.
pub fn bench_forward(
    cfg: &DitConfig,
    (frames, height, width): (usize, usize, usize),
    dtype: DType,
    device: &Device,
    forwards: usize,
) -> Result<BenchReport> {
    let weights = random_weights(cfg, dtype, device)?;
    let vb = VarBuilder::from_tensors(weights, dtype, device);
    let model = Dit::load(vb, cfg)?;
    bench_model(&model, (frames, height, width), forwards)
}

/// [`bench_forward`] of a loaded model (e.g. real checkpoint files under an offload mode).
pub fn bench_model(
    model: &Dit,
    (frames, height, width): (usize, usize, usize),
    forwards: usize,
) -> Result<BenchReport> {
    let (cfg, device) = (model.config(), model.device());
    let inputs = RandomInputs::new(cfg, (frames, height, width), device)?;
    let tokens = ScailRope {
        head_dim: cfg.head_dim(),
        grid: (
            frames / cfg.patch_size[0],
            height / cfg.patch_size[1],
            width / cfg.patch_size[2],
        ),
        n_additional_refs: 0,
        replace: false,
    }
    .seq_len();
    let device_peak = crate::device_memory_sampler(device).map(Peak::start);
    let out = model.forward(&inputs.inputs(500.0))?;
    out.device().synchronize()?;
    let forwards = forwards.max(1);
    let mut times = Vec::with_capacity(forwards);
    for _ in 0..forwards {
        let start = std::time::Instant::now();
        let out = model.forward(&inputs.inputs(500.0))?;
        out.device().synchronize()?;
        times.push(start.elapsed().as_secs_f64());
    }
    let secs = times.iter().sum::<f64>() / forwards as f64;
    Ok(BenchReport {
        tokens,
        seconds_per_forward: secs,
        best_seconds_per_forward: times.iter().copied().fold(f64::INFINITY, f64::min),
        tokens_per_second: tokens as f64 / secs,
        peak_memory_bytes: peak_rss_bytes(),
        peak_device_bytes: device_peak.map(Peak::finish),
        forwards,
    })
}
