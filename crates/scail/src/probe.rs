//! `scail probe FILE`: JSON facts about a video or image.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// A video or image file.
    file: PathBuf,
}

pub fn run(a: ProbeArgs) -> anyhow::Result<()> {
    let info = scail_media::probe::probe(&a.file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(())
}
