//! One whole job from files: reference image + driving video (+ optional masks / pose video)
//! → Stage A → encoders → sampling per segment → VAE decode → mp4 with the driving video's
//! timing and audio (DESIGN.md "Frame timing"). [`run_job`] runs the stages in order, each in
//! its own file: [`decode`], [`preprocess`] (Stage A), [`sample`] (encoders, sampler, VAE),
//! [`output`].

mod decode;
mod output;
mod preprocess;
mod sample;
mod stagea_only;

pub use stagea_only::{run_stage_a_only, StageAFiles};

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Tensor;
use scail_core::generator::{LogLevel, Progress};
use scail_core::schema::ScailInput;
use scail_media::timing::MODEL_FPS;

use crate::models::Models;
use crate::segments::SamplingOptions;
use crate::{PipelineError, Result};

/// How this installation runs jobs: settings that are not part of the API request.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `(width, height)` overriding the request's resolution (multiples of 32), for experiments.
    pub size: Option<(u32, u32)>,
    /// Match later segments' colours to the first (fights drift on long videos).
    pub color_match: bool,
    /// Pixel frames per segment (81 for the released model; smaller for tests) and the history
    /// overlap (5).
    pub segment_len: usize,
    pub segment_overlap: usize,
    /// Folder of the Stage A ONNX models (SAM3, DWPose), if any.
    pub stagea_dir: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        let s = SamplingOptions::default();
        RunOptions {
            size: None,
            color_match: false,
            segment_len: s.segment_len,
            segment_overlap: s.segment_overlap,
            stagea_dir: None,
        }
    }
}

/// One job: the validated request with its files local, the seed, how to run it, and where the
/// video goes (the Stage A videos are written beside it).
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub input: ScailInput<PathBuf>,
    pub seed: u64,
    pub run: RunOptions,
    pub out: PathBuf,
}

#[derive(Debug, Clone)]
pub struct JobOutput {
    pub video: PathBuf,
    pub preprocessing_video: Option<PathBuf>,
    pub preprocessing_mask_video: Option<PathBuf>,
    /// The masks lossless (FFV1 in Matroska), beside the mp4 one.
    pub preprocessing_mask_video_lossless: Option<PathBuf>,
    pub seed: u64,
    /// Frames written (16 fps) and the driving video's duration they cover.
    pub frames: usize,
    pub duration_s: f64,
    /// Seconds spent per stage, in order.
    pub timings: Vec<(String, f64)>,
    /// The final latent of the last segment (for reproducibility checks).
    pub last_latent: Option<Tensor>,
}

/// Seconds spent per stage, in order.
struct Laps {
    clock: Instant,
    laps: Vec<(String, f64)>,
}

impl Laps {
    fn new() -> Self {
        Laps {
            clock: Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, name: &str) {
        self.laps
            .push((name.to_string(), self.clock.elapsed().as_secs_f64()));
        self.clock = Instant::now();
    }
}

/// Runs one job and writes `req.out` (and the Stage A videos when asked).
pub fn run_job(models: &Models, req: &JobRequest, progress: &dyn Progress) -> Result<JobOutput> {
    let mut laps = Laps::new();
    // Stage A settings, checked before any decoding or model loading (animal + pose is refused).
    let cfg = preprocess::config(&req.input)?;
    let (inputs, stagea_inputs) = decode::decode_inputs(&req.input, &req.run)?;
    progress.log(
        LogLevel::Info,
        &format!("target size {}x{}", inputs.width, inputs.height),
    );
    progress.log(
        LogLevel::Info,
        &format!(
            "driving video: {} frames at {MODEL_FPS} fps, {:.3} s",
            inputs.frames, inputs.duration_s
        ),
    );
    laps.lap("decode");
    // The whole job's peak, from here on known, checked before any model runs.
    let mut shape = scail_model::memory::JobShape {
        width: inputs.width,
        height: inputs.height,
        segment_frames: inputs.frames.min(req.run.segment_len),
        total_frames: inputs.frames,
        branches: 1,
    };
    shape.branches = scail_model::memory::guidance_branches(
        &models.contract.dit,
        shape.tokens(&models.contract.dit),
        req.input.guidance_scale,
        SamplingOptions::default().guidance_batch_bytes,
    );
    let est = models.check_memory(&shape)?;
    progress.log(
        LogLevel::Info,
        &format!(
            "memory estimate: {} host{} (--offload {})",
            scail_model::memory::gib(est.host),
            if est.device > 0 {
                format!(", {} device", scail_model::memory::gib(est.device))
            } else {
                String::new()
            },
            est.offload
        ),
    );

    if progress.is_cancelled() {
        return Err(PipelineError::Cancelled);
    }
    let stagea = preprocess::run(&req.input, &req.run, &cfg, stagea_inputs, progress)?;
    laps.lap("stage_a");

    let sampled = sample::run(models, req, &inputs, &stagea, progress, &mut laps)?;

    let written = output::write(req, &sampled.video, &stagea, &inputs)?;
    laps.lap("encode_mp4");
    Ok(JobOutput {
        video: req.out.clone(),
        preprocessing_video: written.preprocessing_video,
        preprocessing_mask_video: written.preprocessing_mask_video,
        preprocessing_mask_video_lossless: written.preprocessing_mask_video_lossless,
        seed: req.seed,
        frames: written.frames,
        duration_s: inputs.duration_s,
        timings: laps.laps,
        last_latent: sampled.last_latent,
    })
}
