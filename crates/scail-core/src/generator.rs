//! The boundary between the server's worker and whatever produces videos. The real implementation
//! is the model pipeline; the server only knows this trait, so API work never compiles candle.

use std::path::PathBuf;

use crate::schema::ScailInput;

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

/// One job as the generator sees it: a validated input with every URL already fetched to a local
/// file, a seed, and a private working folder for its outputs.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub request_id: String,
    pub input: ScailInput,
    pub seed: u64,
    pub image: PathBuf,
    pub video: PathBuf,
    pub reference_mask: Option<PathBuf>,
    pub driving_mask: Option<PathBuf>,
    pub pose_video: Option<PathBuf>,
    pub work_dir: PathBuf,
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
    /// `done` of `total` units of the named stage (e.g. sampling steps of a segment).
    fn progress(&self, stage: &str, done: u64, total: u64);
    fn is_cancelled(&self) -> bool;
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
