//! The server's real [`Generator`]: a weights folder loaded once, one job per request. A request
//! that names other LoRAs than the loaded ones reloads the DiT with them first.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use scail_core::generator::{
    GenerateError, GenerateOutput, GenerateRequest, GeneratedFile, Generator, LogLevel, Progress,
};

use crate::job::{run_job, JobRequest, RunOptions};
use crate::models::{LoadOptions, Models};
use crate::PipelineError;
use scail_model::lora::LoraSpec;

/// SCAIL-2 on the networks of one weights folder, kept loaded between jobs.
pub struct PipelineGenerator {
    /// Jobs read the models; a LoRA swap writes them (waiting for running jobs to finish).
    models: RwLock<Models>,
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
            models: RwLock::new(models),
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

    /// The models with `loras` fused in, reloading the DiT first if another set is loaded.
    fn models_with(
        &self,
        loras: &[LoraSpec],
        progress: &dyn Progress,
    ) -> crate::Result<std::sync::RwLockReadGuard<'_, Models>> {
        loop {
            let m = self.models.read().unwrap_or_else(|e| e.into_inner());
            if m.opts.loras == loras {
                return Ok(m);
            }
            drop(m);
            let mut m = self.models.write().unwrap_or_else(|e| e.into_inner());
            let names: Vec<String> = loras
                .iter()
                // By file name: the job log is the caller's to read, the server's paths are not.
                .map(|l| {
                    let name = l.path.file_name().unwrap_or(l.path.as_os_str());
                    format!("{} ×{}", name.to_string_lossy(), l.scale)
                })
                .collect();
            let msg = if loras.is_empty() {
                "reloading the DiT without LoRAs".to_string()
            } else {
                format!("reloading the DiT with LoRAs: {}", names.join(", "))
            };
            progress.log(LogLevel::Info, &msg);
            m.set_loras(loras)?;
            // Another job may swap again before this one reads: check under the read lock.
        }
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
        let i = &r.input;
        let recipe = format!(
            "sampling: {} steps, guidance {}, shift {}, {}",
            i.num_inference_steps, i.guidance_scale, i.shift, i.sampler
        );
        progress.log(LogLevel::Info, &recipe);
        if r.input.preset.is_some_and(|p| p.wants_distill_lora()) && r.loras.is_empty() {
            let msg = "the fast and balanced presets expect a step-distillation LoRA in `loras`; without one the video will be poor";
            progress.log(LogLevel::Warn, msg);
        }
        let loras: Vec<LoraSpec> = r
            .loras
            .iter()
            .map(|l| LoraSpec {
                path: l.path.clone(),
                scale: l.scale,
            })
            .collect();
        let models = match self.models_with(&loras, progress) {
            Ok(m) => m,
            // The LoRA was the request's choice: a key or shape that does not fit is its error.
            Err(e) => {
                let message = e.to_string();
                progress.log(LogLevel::Error, &message);
                return Err(GenerateError::Input {
                    field: Some("loras".into()),
                    message,
                });
            }
        };
        match run_job(&models, &req, progress) {
            Ok(o) => Ok(GenerateOutput {
                video: file(o.video),
                preprocessing_video: o.preprocessing_video.map(file),
                preprocessing_mask_video: o.preprocessing_mask_video.map(file),
                preprocessing_mask_video_lossless: o.preprocessing_mask_video_lossless.map(|p| {
                    GeneratedFile {
                        content_type: "video/x-matroska".into(),
                        ..file(p)
                    }
                }),
            }),
            Err(PipelineError::Cancelled) => Err(GenerateError::Cancelled),
            // Too big for this server's memory: the caller can ask for less (the message also
            // names the operator's --offload).
            Err(PipelineError::Input(message) | PipelineError::Memory(message)) => {
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
