//! `scail stagea`: Stage A alone, writing what the DiT would see so a user can check it, fix the
//! masks and pass them back (`--reference-mask`, `--driving-mask`): the masks lossless (PNG for
//! the reference, FFV1 in Matroska for the driving video, PNG frames on request), the video that
//! drives the model, and a side-by-side preview.

use std::path::{Path, PathBuf};

use scail_core::generator::{LogLevel, Progress};
use scail_core::schema::ScailInput;
use scail_media::encode::{side_by_side, EncodeOptions, Mp4Writer};
use scail_media::frame::ImageU8;
use scail_media::timing::MODEL_FPS;

use super::decode::{decode_inputs, input_err};
use super::{preprocess, RunOptions};
use crate::Result;

/// The files [`run_stage_a_only`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageAFiles {
    pub reference_mask: PathBuf,
    pub driving_mask: PathBuf,
    /// One PNG per driving-mask frame, when asked.
    pub driving_mask_frames: Option<PathBuf>,
    pub driving_video: PathBuf,
    pub preview: PathBuf,
    pub frames: usize,
    pub subjects: usize,
}

fn write(path: &Path, frames: &[ImageU8], opts: &EncodeOptions) -> Result<()> {
    let Some(first) = frames.first() else {
        return Err(input_err("driving video", "no frames"));
    };
    let mut wr = Mp4Writer::create(path, first.width, first.height, opts)?;
    for f in frames {
        wr.write(f)?;
    }
    wr.finish()?;
    Ok(())
}

/// Runs Stage A for `input` and writes its results into `out_dir`.
pub fn run_stage_a_only(
    input: &ScailInput<PathBuf>,
    run: &RunOptions,
    out_dir: &Path,
    png_frames: bool,
    progress: &dyn Progress,
) -> Result<StageAFiles> {
    let cfg = preprocess::config(input)?;
    let (decoded, sa_inputs) = decode_inputs(input, run)?;
    let reference = scail_media::image_io::decode_image(
        &input.image_url,
        &scail_media::limits::Limits::default(),
    )
    .map_err(|e| input_err("image", e))?
    .rgb();
    progress.log(
        LogLevel::Info,
        &format!(
            "target size {}x{}, {} frames",
            decoded.width, decoded.height, decoded.frames
        ),
    );
    let out = preprocess::run(input, run, &cfg, sa_inputs, progress)?;
    std::fs::create_dir_all(out_dir).map_err(|e| input_err("output folder", e))?;
    let files = StageAFiles {
        reference_mask: out_dir.join("reference_mask.png"),
        driving_mask: out_dir.join("driving_mask.mkv"),
        driving_mask_frames: png_frames.then(|| out_dir.join("driving_mask")),
        driving_video: out_dir.join("driving_video.mp4"),
        preview: out_dir.join("preview.mp4"),
        frames: out.driving_mask.len(),
        subjects: out.num_subjects,
    };
    scail_media::image_io::save_png(&out.reference_mask, &files.reference_mask)?;
    let base = EncodeOptions {
        fps: MODEL_FPS,
        ..EncodeOptions::default()
    };
    let lossless = EncodeOptions {
        ffv1_mkv: true,
        ..base.clone()
    };
    write(&files.driving_mask, &out.driving_mask, &lossless)?;
    if let Some(dir) = &files.driving_mask_frames {
        std::fs::create_dir_all(dir).map_err(|e| input_err("output folder", e))?;
        for (k, f) in out.driving_mask.iter().enumerate() {
            scail_media::image_io::save_png(f, &dir.join(format!("{k:05}.png")))?;
        }
    }
    write(&files.driving_video, &out.driving_video, &base)?;
    // Reference and its mask, then the driving frame's model input and mask, side by side.
    let h = decoded.height.max(2);
    let preview: Vec<ImageU8> = out
        .driving_video
        .iter()
        .zip(&out.driving_mask)
        .map(|(v, m)| side_by_side(&[&reference, &out.reference_mask, v, m], h))
        .collect();
    write(&files.preview, &preview, &base)?;
    Ok(files)
}
