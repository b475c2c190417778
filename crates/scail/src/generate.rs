//! `scail generate`: one job from the command line, no server, with a progress bar.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use scail_core::generator::{LogLevel, Progress, ProgressUpdate};
use scail_core::schema::{DrivingType, Mode, Preset, Resolution, Sampler, ScailInput, SubjectType};
use scail_core::Fields;
use scail_model::lora::LoraSpec;
use scail_pipeline::job::{run_job, JobRequest, RunOptions};
use scail_pipeline::models::{LoadOptions, Models};

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Weights folder (as `scail weights` lays it out).
    #[arg(long, env = "SCAIL_WEIGHTS")]
    pub weights: PathBuf,
    /// Reference character image.
    #[arg(long)]
    pub image: PathBuf,
    /// Driving video.
    #[arg(long)]
    pub video: PathBuf,
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Output mp4; with --output-preprocessing the Stage A videos are written beside it.
    #[arg(long)]
    pub out: PathBuf,
    /// animation or replacement.
    #[arg(long, default_value_t)]
    pub mode: Mode,
    /// end_to_end or pose.
    #[arg(long, default_value_t)]
    pub driving_type: DrivingType,
    /// human or animal.
    #[arg(long, default_value_t)]
    pub subject_type: SubjectType,
    /// 512p or 704p (orientation from the reference image).
    #[arg(long, default_value_t)]
    pub resolution: Resolution,
    /// WxH overriding --resolution (multiples of 32), for experiments.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    /// Sampling recipe: fast (4 steps, CFG 1, shift 5, euler: for the lightx2v
    /// step-distillation LoRA), balanced (the same at 8 steps) or quality (the hosted
    /// defaults). Explicit --num-inference-steps, --guidance-scale, --shift and --sampler win.
    #[arg(long)]
    pub preset: Option<Preset>,
    /// Sampling steps per segment (the same bounds as the API's) [default: 40].
    #[arg(long, allow_negative_numbers = true)]
    pub num_inference_steps: Option<i64>,
    /// [default: 5]
    #[arg(long, allow_negative_numbers = true)]
    pub guidance_scale: Option<f64>,
    /// [default: 3]
    #[arg(long, allow_negative_numbers = true)]
    pub shift: Option<f64>,
    /// Random when absent; the seed used is printed.
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<i64>,
    /// Also write the Stage A videos (`OUT_preprocessing.mp4`, `OUT_preprocessing_mask.mp4`).
    #[arg(long)]
    pub output_preprocessing: bool,
    /// Palette-coded reference mask (skips segmentation of the reference).
    #[arg(long)]
    pub reference_mask: Option<PathBuf>,
    /// Palette-coded driving mask video (skips segmentation of the driving video).
    #[arg(long)]
    pub driving_mask: Option<PathBuf>,
    /// Pre-rendered skeleton video for --driving-type pose.
    #[arg(long)]
    pub pose_video: Option<PathBuf>,
    /// unipc, dpm++ or euler [default: unipc].
    #[arg(long)]
    pub sampler: Option<Sampler>,
    /// Match later segments' colours to the first (fights drift on long videos).
    #[arg(long)]
    pub color_match: bool,
    /// Weight precision of the DiT, umT5 and CLIP: auto (as the DiT is stored: f32 for the
    /// official file, bf16 for bf16 or fp8_scaled ones), f32 or bf16 (the VAE stays f32).
    #[arg(long, default_value = "auto")]
    pub precision: String,
    /// cpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Where the networks' blocks live between uses: none (all resident), blocks (in host
    /// memory, copied to the GPU at use) or stream (read from the checkpoint at use, about one
    /// block in memory at a time: runs the 14B model in under 10 GiB).
    #[arg(long, default_value = "none", env = "SCAIL_OFFLOAD")]
    pub offload: scail_model::offload::Offload,
    /// Host memory jobs may use, e.g. 10GiB (default: the cgroup limit or the available
    /// memory). A job estimated to need more is refused before it starts.
    #[arg(long, value_parser = scail_model::memory::parse_bytes, env = "SCAIL_HOST_MEMORY")]
    pub host_memory: Option<u64>,
    /// Folder of the Stage A ONNX models (default WEIGHTS/stagea when present).
    #[arg(long)]
    pub stagea_dir: Option<PathBuf>,
    /// LoRA fused into the DiT as it loads: FILE or FILE=SCALE (scale 1 by default).
    /// Repeatable; kijai/ComfyUI (lora_down/lora_up/alpha), PEFT/diffusers (lora_A/lora_B),
    /// kohya (lora_unet_*) and .diff/.diff_b safetensors.
    #[arg(long = "lora", value_name = "FILE[=SCALE]")]
    pub loras: Vec<LoraSpec>,
}

/// `WxH` with both sides positive multiples of 32.
pub(crate) fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}`: expected WxH"))?;
    let w: u32 = w.parse().map_err(|_| format!("`{s}`: bad width"))?;
    let h: u32 = h.parse().map_err(|_| format!("`{s}`: bad height"))?;
    if w == 0 || h == 0 || !w.is_multiple_of(32) || !h.is_multiple_of(32) {
        return Err(format!(
            "`{s}`: both sides must be positive multiples of 32"
        ));
    }
    Ok((w, h))
}

/// A request given on the command line, through the validation the HTTP door applies (the same
/// rules and messages), then every named file checked to exist: a missing one is found now, not
/// after minutes of loading weights.
pub(crate) fn validate_local(fields: Fields<PathBuf>) -> anyhow::Result<ScailInput<PathBuf>> {
    let input = fields.validate().map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        anyhow::anyhow!("invalid request:\n{}", lines.join("\n"))
    })?;
    for (which, path) in input.files() {
        anyhow::ensure!(
            path.is_file(),
            "{}: no such file: {}",
            which.field(),
            path.display()
        );
    }
    Ok(input)
}

/// A one-line progress bar on stderr.
pub(crate) struct Bar {
    pub(crate) start: Instant,
}

impl Progress for Bar {
    fn log(&self, _level: LogLevel, message: &str) {
        eprintln!("\r[{:>7.1}s] {message}", self.start.elapsed().as_secs_f64());
    }
    fn progress(&self, u: &ProgressUpdate) {
        let width = 30usize;
        let filled = (u.done as usize * width) / u.total.max(1) as usize;
        let eta = u.eta_s.map(|e| format!(" ETA {e:.0}s")).unwrap_or_default();
        eprint!(
            "\r{} [{}{}] {}/{}{eta}   ",
            u.stage,
            "#".repeat(filled.min(width)),
            "-".repeat(width - filled.min(width)),
            u.done,
            u.total
        );
        if u.done == u.total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }
    fn is_cancelled(&self) -> bool {
        false
    }
}

impl GenerateArgs {
    /// The request these flags make, through the validation the HTTP door applies: the same
    /// rules and the same messages.
    fn request(&self) -> anyhow::Result<ScailInput<PathBuf>> {
        #[allow(clippy::needless_update)]
        let fields = Fields {
            prompt: Some(self.prompt.clone()),
            image_url: Some(self.image.clone()),
            video_url: Some(self.video.clone()),
            mode: Some(self.mode),
            driving_type: Some(self.driving_type),
            subject_type: Some(self.subject_type),
            resolution: Some(self.resolution),
            num_inference_steps: self.num_inference_steps,
            guidance_scale: self.guidance_scale,
            shift: self.shift,
            seed: self.seed,
            output_preprocessing: Some(self.output_preprocessing),
            reference_mask_url: self.reference_mask.clone(),
            driving_mask_url: self.driving_mask.clone(),
            pose_video_url: self.pose_video.clone(),
            // The preset fills what the flags leave out, as it does for a request.
            preset: self.preset,
            sampler: self.sampler,
            // --lora names files on this machine; they load below, not through the request.
            // A field added to the request works here with its default until it gets a flag.
            ..Fields::default()
        };
        let input = validate_local(fields)?;
        for lora in &self.loras {
            if !lora.path.is_file() {
                anyhow::bail!("--lora: no such file: {}", lora.path.display());
            }
        }
        Ok(input)
    }
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let mut input = args.request()?;
    let dtype = crate::device::precision(&args.precision, &args.weights)?;
    let device = crate::device::parse_device(&args.device)?;
    let seed = input.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        (t as u64 ^ (std::process::id() as u64).rotate_left(32)) % (u32::MAX as u64 + 1)
    });
    input.seed = Some(seed);
    let bar = Bar {
        start: Instant::now(),
    };
    bar.log(
        LogLevel::Info,
        &format!("loading weights from {}", args.weights.display()),
    );
    if args.preset.is_some_and(Preset::wants_distill_lora) && args.loras.is_empty() {
        let msg = "the fast and balanced presets expect a step-distillation LoRA (--lora)";
        bar.log(LogLevel::Warn, msg);
    }
    for l in &args.loras {
        let msg = format!("LoRA {} at scale {}", l.path.display(), l.scale);
        bar.log(LogLevel::Info, &msg);
    }
    let models = Models::load(
        &args.weights,
        LoadOptions {
            dtype,
            device,
            keep_text_encoder: false,
            loras: args.loras.clone(),
            offload: args.offload,
            host_memory: args.host_memory,
            // One job: umT5 encodes and is freed before the DiT loads.
            dit_after_text: true,
        },
    )
    .with_context(|| format!("loading {}", args.weights.display()))?;
    let stagea_dir = args
        .stagea_dir
        .clone()
        .or_else(|| Some(args.weights.join("stagea")).filter(|d| d.is_dir()));
    let req = JobRequest {
        input,
        seed,
        run: RunOptions {
            size: args.size,
            color_match: args.color_match,
            stagea_dir,
            ..RunOptions::default()
        },
        out: args.out,
    };
    bar.log(LogLevel::Info, &format!("seed {seed}"));
    let out = run_job(&models, &req, &bar)?;
    for (stage, s) in &out.timings {
        bar.log(LogLevel::Info, &format!("{stage}: {s:.2} s"));
    }
    if let Some(peak) = scail_model::memory::peak_rss_bytes() {
        let msg = format!("peak resident memory {}", scail_model::memory::gib(peak));
        bar.log(LogLevel::Info, &msg);
    }
    println!(
        "{}",
        serde_json::json!({
            "video": out.video,
            "seed": out.seed,
            "frames": out.frames,
            "duration_s": out.duration_s,
            "preprocessing_video": out.preprocessing_video,
            "preprocessing_mask_video": out.preprocessing_mask_video,
            "preprocessing_mask_video_lossless": out.preprocessing_mask_video_lossless,
        })
    );
    Ok(())
}
