//! The server's real [`Generator`]: a weights folder loaded once, one job per request.

use std::path::{Path, PathBuf};

use scail_core::generator::{
    GenerateError, GenerateOutput, GenerateRequest, GeneratedFile, Generator, LogLevel, Progress,
};

use crate::job::{run_job, JobProgress, JobRequest};
use crate::models::{LoadOptions, Models};
use crate::sampler::SolverKind;
use crate::PipelineError;

/// SCAIL-2 on the networks of one weights folder, kept loaded between jobs.
pub struct PipelineGenerator {
    models: Models,
    stagea_dir: Option<PathBuf>,
    solver: SolverKind,
    size: Option<(u32, u32)>,
}

impl PipelineGenerator {
    /// Loads (and verifies) `weights`. Stage A models are looked for in `weights/stagea`
    /// unless `stagea_dir` names another folder.
    pub fn load(
        weights: &Path,
        opts: LoadOptions,
        stagea_dir: Option<PathBuf>,
    ) -> crate::Result<Self> {
        let models = Models::load(weights, opts)?;
        let stagea_dir = stagea_dir.or_else(|| Some(weights.join("stagea")).filter(|d| d.is_dir()));
        Ok(Self {
            models,
            stagea_dir,
            solver: SolverKind::UniPc,
            size: None,
        })
    }

    /// Renders every job at `(width, height)` instead of the request's resolution (multiples
    /// of 32; for experiments and tests).
    pub fn with_size(mut self, size: Option<(u32, u32)>) -> Self {
        self.size = size;
        self
    }

    /// The sampler every job uses (UniPC unless changed).
    pub fn with_solver(mut self, solver: SolverKind) -> Self {
        self.solver = solver;
        self
    }

    pub fn models(&self) -> &Models {
        &self.models
    }
}

struct Bridge<'a>(&'a dyn Progress);

impl JobProgress for Bridge<'_> {
    fn log(&self, message: &str) {
        self.0.log(LogLevel::Info, message);
    }
    fn progress(&self, stage: &str, done: u64, total: u64, eta_s: Option<f64>) {
        self.0.progress(stage, done, total);
        if let Some(eta) = eta_s {
            self.0.log(
                LogLevel::Info,
                &format!("{stage}: step {done}/{total}, about {eta:.0} s left"),
            );
        }
    }
    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

fn file(path: PathBuf) -> GeneratedFile {
    let file_name = path
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("output.mp4")
        .to_string();
    GeneratedFile {
        path,
        content_type: "video/mp4".into(),
        file_name,
    }
}

impl Generator for PipelineGenerator {
    fn generate(
        &self,
        r: &GenerateRequest,
        progress: &dyn Progress,
    ) -> Result<GenerateOutput, GenerateError> {
        let i = &r.input;
        let req = JobRequest {
            prompt: i.prompt.clone(),
            image: r.image.clone(),
            video: r.video.clone(),
            reference_mask: r.reference_mask.clone(),
            driving_mask: r.driving_mask.clone(),
            pose_video: r.pose_video.clone(),
            mode: i.mode,
            driving_type: i.driving_type,
            subject_type: i.subject_type,
            resolution: i.resolution,
            size: self.size,
            steps: i.num_inference_steps as usize,
            guidance: i.guidance_scale,
            shift: i.shift,
            solver: self.solver,
            seed: r.seed,
            color_match: false,
            segment_len: 81,
            segment_overlap: 5,
            output_preprocessing: i.output_preprocessing,
            out: r.work_dir.join("output.mp4"),
            stagea_dir: self.stagea_dir.clone(),
        };
        progress.log(LogLevel::Info, &format!("seed {}", r.seed));
        match run_job(&self.models, &req, &Bridge(progress)) {
            Ok(o) => Ok(GenerateOutput {
                video: file(o.video),
                preprocessing_video: o.preprocessing_video.map(file),
                preprocessing_mask_video: o.preprocessing_mask_video.map(file),
            }),
            Err(PipelineError::Cancelled) => Err(GenerateError::Cancelled),
            Err(PipelineError::Input(message)) => {
                progress.log(LogLevel::Error, &message);
                Err(GenerateError::Input {
                    field: None,
                    message,
                })
            }
            Err(e) => {
                progress.log(LogLevel::Error, &e.to_string());
                Err(GenerateError::Failed(e.to_string()))
            }
        }
    }
}
