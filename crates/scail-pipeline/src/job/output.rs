//! The job's files: the video at 16 fps with the driving video's duration and audio, and the
//! Stage A videos beside it when asked.

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use scail_media::encode::{EncodeOptions, Mp4Writer};
use scail_media::frame::ImageU8;
use scail_media::timing::MODEL_FPS;
use scail_stagea::stagea::StageAOutput;

use super::decode::{input_err, Decoded};
use super::JobRequest;
use crate::Result;

pub(super) struct Written {
    pub frames: usize,
    pub preprocessing_video: Option<PathBuf>,
    pub preprocessing_mask_video: Option<PathBuf>,
    pub preprocessing_mask_video_lossless: Option<PathBuf>,
}

/// Writes `req.out` from the decoded video `[3, T, H, W]` in [-1, 1].
pub(super) fn write(
    req: &JobRequest,
    video: &Tensor,
    stagea: &StageAOutput,
    d: &Decoded,
) -> Result<Written> {
    let (_, t, h, w) = (video.dim(0)?, video.dim(1)?, video.dim(2)?, video.dim(3)?);
    let u8v = ((video.clamp(-1f32, 1f32)? + 1.0)? * 127.5)?
        .round()?
        .to_dtype(DType::U8)?
        .permute((1, 2, 3, 0))?
        .contiguous()?;
    let data = u8v.flatten_all()?.to_vec1::<u8>()?;
    let enc = EncodeOptions {
        fps: MODEL_FPS,
        audio_from: Some(req.input.video_url.clone()),
        audio_offset_s: d.audio_offset.unwrap_or(0.0),
        duration_s: Some(d.duration_s),
        ..EncodeOptions::default()
    };
    if let Some(parent) = req.out.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| input_err("output folder", e))?;
        }
    }
    let fsz = h * w * 3;
    write_mp4(
        &req.out,
        (0..t).map(|k| ImageU8::from_vec(w, h, 3, data[k * fsz..(k + 1) * fsz].to_vec())),
        w,
        h,
        &enc,
    )?;
    let mut written = Written {
        frames: t,
        preprocessing_video: None,
        preprocessing_mask_video: None,
        preprocessing_mask_video_lossless: None,
    };
    if req.input.output_preprocessing {
        let stem = req
            .out
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("output");
        let dir = req.out.parent().unwrap_or(Path::new("."));
        let pv = dir.join(format!("{stem}_preprocessing.mp4"));
        let pm = dir.join(format!("{stem}_preprocessing_mask.mp4"));
        let noaudio = EncodeOptions {
            audio_from: None,
            ..enc.clone()
        };
        write_mp4(&pv, stagea.driving_video.iter().cloned(), w, h, &noaudio)?;
        write_mp4(&pm, stagea.driving_mask.iter().cloned(), w, h, &noaudio)?;
        // H.264 blurs palette edges; this copy keeps every colour for editing and passing back.
        let pl = dir.join(format!("{stem}_preprocessing_mask.mkv"));
        let lossless = EncodeOptions {
            ffv1_mkv: true,
            ..noaudio.clone()
        };
        write_mp4(&pl, stagea.driving_mask.iter().cloned(), w, h, &lossless)?;
        written.preprocessing_video = Some(pv);
        written.preprocessing_mask_video = Some(pm);
        written.preprocessing_mask_video_lossless = Some(pl);
    }
    Ok(written)
}

fn write_mp4(
    path: &Path,
    frames: impl Iterator<Item = ImageU8>,
    w: usize,
    h: usize,
    opts: &EncodeOptions,
) -> Result<()> {
    let mut wr = Mp4Writer::create(path, w, h, opts)?;
    for f in frames {
        wr.write(&f)?;
    }
    wr.finish()?;
    Ok(())
}
