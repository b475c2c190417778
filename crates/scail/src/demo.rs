//! Demo mode (`scail serve --demo`): tiny random weights made once in the data directory, so the
//! whole flow (upload, queue, Stage A, sampling, mp4) runs offline on any machine. Its videos
//! are noise, and every place a user looks says so: the start-up banner, `/health`, each job's
//! log and the output's file name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use scail_core::generator::{
    GenerateError, GenerateOutput, GenerateRequest, Generator, LogLevel, Progress,
};

/// What `/health` and the banner say about demo weights.
pub const DEMO_NOTE: &str =
    "demo: tiny random weights, every video is noise (run `scail weights fetch` for the real model)";

/// The demo weights folder in `data_dir`, made on first use.
pub fn ensure_weights(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join("demo-weights");
    let done = dir.join(".complete");
    if !done.exists() {
        eprintln!(
            "demo mode: making tiny random weights in {} …",
            dir.display()
        );
        let _ = std::fs::remove_dir_all(&dir);
        crate::weights::init_random(scail_model::weights::ModelSize::Tiny, &dir, false, 0)?;
        // Written last: a half-made folder from an interrupted start is made again.
        std::fs::write(&done, b"")?;
    }
    Ok(dir)
}

/// A generator that labels its output as demo noise.
pub struct DemoGenerator(pub Arc<dyn Generator>);

impl Generator for DemoGenerator {
    fn generate(
        &self,
        request: &GenerateRequest,
        progress: &dyn Progress,
    ) -> Result<GenerateOutput, GenerateError> {
        progress.log(LogLevel::Warn, DEMO_NOTE);
        let mut out = self.0.generate(request, progress)?;
        for f in [
            Some(&mut out.video),
            out.preprocessing_video.as_mut(),
            out.preprocessing_mask_video.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            f.file_name = format!("demo-noise-{}", f.file_name);
        }
        Ok(out)
    }
}
