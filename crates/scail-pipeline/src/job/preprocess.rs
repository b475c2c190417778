//! Stage A inside a job: its configuration, the models the request needs (named when the
//! installation lacks them), and per-frame progress with cancel.

use std::path::{Path, PathBuf};

use scail_core::generator::{EtaClock, LogLevel, Progress, ProgressUpdate};
use scail_core::schema::{DrivingType, ScailInput};
use scail_stagea::stagea::{self as sa, StageAConfig, StageAInputs, StageAModels};

use super::RunOptions;
use crate::{PipelineError, Result};

/// Stage A's settings for the request, checked before anything is decoded.
pub(super) fn config(i: &ScailInput<PathBuf>) -> Result<StageAConfig> {
    let cfg = StageAConfig::new(i.mode, i.driving_type, i.subject_type);
    cfg.validate()
        .map_err(|e| PipelineError::Input(format!("preprocessing: {e}")))?;
    Ok(cfg)
}

/// Runs Stage A; its inputs are consumed (frames are large).
pub(super) fn run(
    i: &ScailInput<PathBuf>,
    run: &RunOptions,
    cfg: &StageAConfig,
    inputs: StageAInputs,
    progress: &dyn Progress,
) -> Result<sa::StageAOutput> {
    let mut sa_models = stagea_models(i, run, cfg)?;
    let mut hook = StageAHook {
        p: progress,
        step: "",
        clock: EtaClock::default(),
    };
    sa::run_stage_a_with(cfg, &inputs, &mut sa_models, &mut hook).map_err(|e| match e {
        scail_stagea::StageAError::Cancelled => PipelineError::Cancelled,
        // A model that will not load or run is the installation's fault, not the input's.
        e @ scail_stagea::StageAError::Runtime(_) => {
            PipelineError::Weights(format!("preprocessing model: {e}"))
        }
        e => PipelineError::Input(format!("preprocessing: {e}")),
    })
}

/// Stage A's per-frame steps as job progress (`preprocessing: segmentation` / `pose`), with
/// an ETA, and the job's cancel flag checked after every frame.
struct StageAHook<'a> {
    p: &'a dyn Progress,
    step: &'static str,
    clock: EtaClock,
}

impl sa::StageAProgress for StageAHook<'_> {
    fn frame(
        &mut self,
        step: &'static str,
        done: usize,
        total: usize,
    ) -> std::result::Result<(), scail_stagea::StageAError> {
        if step != self.step {
            self.step = step;
            self.clock.restart();
            self.p.log(
                LogLevel::Info,
                &format!("preprocessing: {step} on {total} frames"),
            );
        }
        self.p.progress(&ProgressUpdate {
            stage: format!("preprocessing: {step}"),
            done: done as u64,
            total: total as u64,
            eta_s: self.clock.eta(done as u64, (total - done) as u64),
        });
        if self.p.is_cancelled() {
            return Err(scail_stagea::StageAError::Cancelled);
        }
        Ok(())
    }
}

fn stagea_models(
    i: &ScailInput<PathBuf>,
    run: &RunOptions,
    cfg: &StageAConfig,
) -> Result<StageAModels> {
    let mut models = StageAModels::default();
    let need_seg = i.reference_mask_url.is_none() || i.driving_mask_url.is_none();
    // A reference with real alpha needs no segmentation, so only the driving side is a must.
    let must_seg = i.driving_mask_url.is_none();
    let need_pose = i.driving_type == DrivingType::Pose && i.pose_video_url.is_none();
    // A model the request needs but this installation lacks is the operator's problem, not
    // the caller's: say what is missing, how to get it, and which inputs avoid it.
    let missing = |what: &str, path: Option<&Path>, instead: &str| {
        PipelineError::Weights(format!(
            "{what} needs {}: run `scail weights fetch --dest WEIGHTS` (or point --stagea-dir \
             at a folder holding it), or send {instead}",
            path.map_or(
                "the Stage A models (no Stage A folder is configured)".into(),
                |p| { format!("{}, which is missing", p.display()) }
            )
        ))
    };
    let seg_instead = "reference_mask_url and driving_mask_url";
    let pose_instead = "pose_video_url";
    let Some(dir) = &run.stagea_dir else {
        return match (must_seg, need_pose) {
            (true, _) => Err(missing("segmentation", None, seg_instead)),
            (_, true) => Err(missing("pose estimation", None, pose_instead)),
            _ => Ok(models),
        };
    };
    let rt = scail_stagea::runtime::RuntimeConfig::default();
    if need_seg {
        let files = scail_stagea::sam3::Sam3Files::in_dir(dir);
        if files.vision_encoder.is_file() {
            let seg = scail_stagea::sam3::Sam3Segmenter::load(&files, &cfg.prompts(), &rt)
                .map_err(|e| PipelineError::Weights(format!("segmentation model: {e}")))?;
            models.segmenter = Some(Box::new(seg));
        } else if must_seg {
            return Err(missing(
                "segmentation",
                Some(&files.vision_encoder),
                seg_instead,
            ));
        }
    }
    if need_pose {
        let dw = dir.join("dw-ll_ucoco_384.onnx");
        if !dw.is_file() {
            return Err(missing("pose estimation", Some(&dw), pose_instead));
        }
        let yolox = dir.join("yolox_l.onnx");
        let pose = scail_stagea::pose::PoseEstimator::load(
            yolox.is_file().then_some(yolox.as_path()),
            &dw,
            &rt,
        )
        .map_err(|e| PipelineError::Weights(format!("pose model: {e}")))?;
        models.pose = Some(pose);
    }
    Ok(models)
}
