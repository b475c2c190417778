//! `scail generate`: one job from the command line, no server, with a progress bar.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use scail_core::schema::{DrivingType, Mode, Resolution, SubjectType};
use scail_pipeline::job::{run_job, JobProgress, JobRequest};
use scail_pipeline::models::{LoadOptions, Models};
use scail_pipeline::sampler::SolverKind;

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
    #[arg(long, default_value = "animation", value_parser = parse_mode)]
    pub mode: Mode,
    /// end_to_end or pose.
    #[arg(long, default_value = "end_to_end", value_parser = parse_driving)]
    pub driving_type: DrivingType,
    /// human or animal.
    #[arg(long, default_value = "human", value_parser = parse_subject)]
    pub subject_type: SubjectType,
    /// 512p or 704p (orientation from the reference image).
    #[arg(long, default_value = "512p", value_parser = parse_resolution)]
    pub resolution: Resolution,
    /// WxH overriding --resolution (multiples of 32), for experiments.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    #[arg(long, default_value_t = 40)]
    pub num_inference_steps: u32,
    #[arg(long, default_value_t = 5.0)]
    pub guidance_scale: f64,
    #[arg(long, default_value_t = 3.0)]
    pub shift: f64,
    /// Random when absent; the seed used is printed.
    #[arg(long)]
    pub seed: Option<u64>,
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
    /// unipc, dpm++ or euler.
    #[arg(long, default_value = "unipc")]
    pub sampler: SolverKind,
    /// Match later segments' colours to the first (fights drift on long videos).
    #[arg(long)]
    pub color_match: bool,
    /// Weight precision of the DiT, umT5 and CLIP: f32 or bf16 (the VAE stays f32).
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// cpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Folder of the Stage A ONNX models (default WEIGHTS/stagea when present).
    #[arg(long)]
    pub stagea_dir: Option<PathBuf>,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("`{s}`: animation or replacement"))
}
fn parse_driving(s: &str) -> Result<DrivingType, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("`{s}`: end_to_end or pose"))
}
fn parse_subject(s: &str) -> Result<SubjectType, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("`{s}`: human or animal"))
}
fn parse_resolution(s: &str) -> Result<Resolution, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("`{s}`: 512p or 704p"))
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

/// A one-line progress bar on stderr.
struct Bar {
    start: Instant,
}

impl JobProgress for Bar {
    fn log(&self, message: &str) {
        eprintln!("\r[{:>7.1}s] {message}", self.start.elapsed().as_secs_f64());
    }
    fn progress(&self, stage: &str, done: u64, total: u64, eta_s: Option<f64>) {
        let width = 30usize;
        let filled = (done as usize * width) / total.max(1) as usize;
        let eta = eta_s.map(|e| format!(" ETA {e:.0}s")).unwrap_or_default();
        eprint!(
            "\r{stage} [{}{}] {done}/{total}{eta}   ",
            "#".repeat(filled),
            "-".repeat(width - filled)
        );
        if done == total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let dtype = crate::device::parse_dtype(&args.precision)?;
    let device = crate::device::parse_device(&args.device)?;
    let seed = args.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        (t as u64 ^ (std::process::id() as u64).rotate_left(32)) % (u32::MAX as u64 + 1)
    });
    let bar = Bar {
        start: Instant::now(),
    };
    bar.log(&format!("loading weights from {}", args.weights.display()));
    let models = Models::load(
        &args.weights,
        LoadOptions {
            dtype,
            device,
            keep_text_encoder: false,
        },
    )
    .with_context(|| format!("loading {}", args.weights.display()))?;
    let stagea_dir = args
        .stagea_dir
        .clone()
        .or_else(|| Some(args.weights.join("stagea")).filter(|d| d.is_dir()));
    let req = JobRequest {
        prompt: args.prompt,
        image: args.image,
        video: args.video,
        reference_mask: args.reference_mask,
        driving_mask: args.driving_mask,
        pose_video: args.pose_video,
        mode: args.mode,
        driving_type: args.driving_type,
        subject_type: args.subject_type,
        resolution: args.resolution,
        size: args.size,
        steps: args.num_inference_steps as usize,
        guidance: args.guidance_scale,
        shift: args.shift,
        solver: args.sampler,
        seed,
        color_match: args.color_match,
        segment_len: 81,
        segment_overlap: 5,
        output_preprocessing: args.output_preprocessing,
        out: args.out,
        stagea_dir,
    };
    bar.log(&format!("seed {seed}"));
    let out = run_job(&models, &req, &bar)?;
    for (stage, s) in &out.timings {
        bar.log(&format!("{stage}: {s:.2} s"));
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
        })
    );
    Ok(())
}
