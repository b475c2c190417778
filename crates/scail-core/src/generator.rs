//! The boundary between the server's worker and whatever produces videos. The real implementation
//! is the model pipeline; the server only knows this trait, so API work never compiles candle.

use std::path::PathBuf;

use crate::schema::ScailInput;

/// The one progress report, from the sampler to the store and the client: what stage, how far,
/// and the ETA computed once where the work is timed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProgressUpdate {
    pub stage: String,
    pub done: u64,
    pub total: u64,
    /// Seconds left for the whole job's remaining work of this kind (all segments when sampling).
    pub eta_s: Option<f64>,
}

impl ProgressUpdate {
    /// The log line for this update (`segment 1/2: 3/8 (38%), ETA 12 s`).
    pub fn log_line(&self) -> String {
        let pct = if self.total > 0 {
            100.0 * self.done as f64 / self.total as f64
        } else {
            0.0
        };
        let eta = self
            .eta_s
            .map(|e| format!(", ETA {e:.0} s"))
            .unwrap_or_default();
        format!(
            "{}: {}/{} ({pct:.0}%){eta}",
            self.stage, self.done, self.total
        )
    }
}

/// Log levels as fal's status logs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

/// One job as the generator sees it: the validated input with every URL already fetched to a
/// local file, a seed, and a private working folder for its outputs.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub request_id: String,
    pub input: ScailInput<PathBuf>,
    pub seed: u64,
    pub work_dir: PathBuf,
    /// The request's `loras`, resolved to files by the front door that took it.
    pub loras: Vec<crate::LoraFile>,
}

/// A file the generator wrote into its working folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: PathBuf,
    pub content_type: String,
    pub file_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOutput {
    pub video: GeneratedFile,
    pub preprocessing_video: Option<GeneratedFile>,
    pub preprocessing_mask_video: Option<GeneratedFile>,
    /// The same masks lossless (FFV1 in Matroska), for a user to edit and send back.
    pub preprocessing_mask_video_lossless: Option<GeneratedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// `Progress::is_cancelled` said stop; the generator stopped at a step boundary.
    #[error("cancelled")]
    Cancelled,
    /// The inputs cannot be used (no subject found, unreadable video, …): the user's to fix.
    #[error("{message}")]
    Input {
        field: Option<String>,
        message: String,
    },
    /// The server has no model to run.
    #[error("{0}")]
    NotConfigured(String),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

/// Progress and control for a running job. Implementations must be cheap: generators call
/// `is_cancelled` at every step boundary.
pub trait Progress: Send + Sync {
    fn log(&self, level: LogLevel, message: &str);
    /// How far the job is (the ETA already computed by whoever timed the work).
    fn progress(&self, update: &ProgressUpdate);
    fn is_cancelled(&self) -> bool;
}

/// Progress that goes nowhere (tests, benchmarks, library use).
pub struct NoProgress;

impl Progress for NoProgress {
    fn log(&self, _: LogLevel, _: &str) {}
    fn progress(&self, _: &ProgressUpdate) {}
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// Times one stage's units and computes its ETA: the one place an ETA is worked out.
#[derive(Debug, Clone)]
pub struct EtaClock {
    start: std::time::Instant,
}

impl Default for EtaClock {
    fn default() -> Self {
        EtaClock {
            start: std::time::Instant::now(),
        }
    }
}

impl EtaClock {
    /// Restarts the clock (a new stage or segment begins).
    pub fn restart(&mut self) {
        self.start = std::time::Instant::now();
    }

    /// Seconds left when `done` units took the time since the last restart and `left` remain.
    pub fn eta(&self, done: u64, left: u64) -> Option<f64> {
        (done > 0).then(|| self.start.elapsed().as_secs_f64() / done as f64 * left as f64)
    }
}

/// Produces a video for one request. Runs on a blocking thread.
pub trait Generator: Send + Sync + 'static {
    fn generate(
        &self,
        request: &GenerateRequest,
        progress: &dyn Progress,
    ) -> Result<GenerateOutput, GenerateError>;
}

/// The generator of a server started without model weights: every job ends with an error that
/// says how to get weights. Never fake output.
pub struct NoWeightsGenerator;

/// The message every job gets from [`NoWeightsGenerator`].
pub const NO_WEIGHTS_MESSAGE: &str = "no model weights are configured on this server: download them with `scail weights fetch --dest DIR` (about 82 GB), then restart with `scail serve --weights DIR` (or set SCAIL_WEIGHTS=DIR)";

impl Generator for NoWeightsGenerator {
    fn generate(
        &self,
        _request: &GenerateRequest,
        progress: &dyn Progress,
    ) -> Result<GenerateOutput, GenerateError> {
        progress.log(LogLevel::Error, NO_WEIGHTS_MESSAGE);
        Err(GenerateError::NotConfigured(NO_WEIGHTS_MESSAGE.to_string()))
    }
}
