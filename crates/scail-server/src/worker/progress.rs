//! A running job's progress and control as the generator sees them: updates kept in memory for
//! status calls, log lines sent to the store, the stop flag read at every step.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use scail_core::generator::{LogLevel, Progress, ProgressUpdate};
use tokio::sync::mpsc;

/// Why a running job was asked to stop.
pub const STOP_NONE: u8 = 0;
pub const STOP_CANCEL: u8 = 1;
pub const STOP_TIMEOUT: u8 = 2;
pub const STOP_SHUTDOWN: u8 = 3;

/// In-memory handle of a job this process is running.
#[derive(Default)]
pub struct RunningJob {
    /// The worker that holds the job's lease.
    pub worker: String,
    pub stop: AtomicU8,
    /// The latest update, as the generator computed it (ETA included).
    pub progress: Mutex<Option<ProgressUpdate>>,
}

impl RunningJob {
    /// Asks the job to stop for `why`, unless it was already asked for another reason.
    pub fn request_stop(&self, why: u8) {
        let _ = self
            .stop
            .compare_exchange(STOP_NONE, why, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn stop_reason(&self) -> u8 {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The generator's side: logs go to a channel the worker drains into the store.
pub(super) struct JobProgress {
    pub tx: mpsc::UnboundedSender<(LogLevel, String)>,
    pub job: Arc<RunningJob>,
    /// Log lines are user-visible: local paths under it are scrubbed.
    pub data_dir: std::path::PathBuf,
}

impl Progress for JobProgress {
    fn log(&self, level: LogLevel, message: &str) {
        let line = crate::fetch::scrub_local_paths(message, &self.data_dir);
        let _ = self.tx.send((level, line));
    }

    fn progress(&self, update: &ProgressUpdate) {
        *self.job.progress.lock().unwrap() = Some(update.clone());
        let _ = self.tx.send((LogLevel::Info, update.log_line()));
    }

    fn is_cancelled(&self) -> bool {
        self.job.stop_reason() != STOP_NONE
    }
}
