//! The server's real [`Generator`]: a weights folder loaded once, one job per request.

use std::path::{Path, PathBuf};

use scail_core::generator::{
    GenerateError, GenerateOutput, GenerateRequest, GeneratedFile, Generator, LogLevel, Progress,
};

use crate::job::{run_job, JobRequest, RunOptions};
use crate::models::{LoadOptions, Models};
use crate::sampler::SolverKind;
use crate::PipelineError;

/// SCAIL-2 on the networks of one weights folder, kept loaded between jobs.
pub struct PipelineGenerator {
    models: Models,
    run: RunOptions,
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
            run: RunOptions {
                stagea_dir,
                ..RunOptions::default()
            },
        })
    }

    /// Renders every job at `(width, height)` instead of the request's resolution (multiples
    /// of 32; for experiments and tests).
    pub fn with_size(mut self, size: Option<(u32, u32)>) -> Self {
        self.run.size = size;
        self
    }

    /// The sampler every job uses (UniPC unless changed).
    pub fn with_solver(mut self, solver: SolverKind) -> Self {
        self.run.solver = solver;
        self
    }

    pub fn models(&self) -> &Models {
        &self.models
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
        let req = JobRequest {
            input: r.input.clone(),
            seed: r.seed,
            run: self.run.clone(),
            out: r.work_dir.join("output.mp4"),
        };
        progress.log(LogLevel::Info, &format!("seed {}", r.seed));
        match run_job(&self.models, &req, progress) {
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
            // A model the installation lacks or cannot run (a missing ONNX Runtime, a Stage A
            // file) is the server's set-up, not the caller's input.
            Err(PipelineError::Weights(message)) => {
                progress.log(LogLevel::Error, &message);
                Err(GenerateError::NotConfigured(message))
            }
            Err(e) => {
                progress.log(LogLevel::Error, &e.to_string());
                Err(GenerateError::Failed(e.to_string()))
            }
        }
    }
}
