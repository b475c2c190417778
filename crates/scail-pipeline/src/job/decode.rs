//! The job's inputs decoded at the target size: the reference for the model and for Stage A,
//! its alpha when it has real transparency, the driving video on the 16 fps timeline, and the
//! user's masks and pose video cropped exactly like what they describe.

use std::path::{Path, PathBuf};

use scail_core::schema::ScailInput;
use scail_media::frame::{ImageF32, ImageU8};
use scail_media::image_io::decode_image;
use scail_media::resize;
use scail_media::timing::MODEL_FPS;
use scail_media::video::{decode_resampled, DecodeOptions};
use scail_media::Limits;
use scail_stagea::stagea::{Clip, StageAInputs};
use scail_stagea::RgbImage;

use super::RunOptions;
use crate::{PipelineError, Result};

/// What later stages need of the decoded inputs (Stage A's own inputs travel separately, so
/// they are dropped as soon as Stage A is done with them).
pub(super) struct Decoded {
    pub width: usize,
    pub height: usize,
    /// The reference as the model sees it (float, [-1, 1]).
    pub ref_model: ImageF32,
    /// Frames of the driving video on the 16 fps timeline, and its duration and audio offset.
    pub frames: usize,
    pub duration_s: f64,
    pub audio_offset: Option<f64>,
}

/// Decodes every input file at the target size.
pub(super) fn decode_inputs(
    i: &ScailInput<PathBuf>,
    run: &RunOptions,
) -> Result<(Decoded, StageAInputs)> {
    let decoded =
        decode_image(&i.image_url, &Limits::default()).map_err(|e| input_err("image", e))?;
    let img = decoded.rgb();
    let (width, height) = target_size(i, run, &img)?;
    let (tw, th) = (width, height);
    let ref_model = resize::reference_image_to_model(&img, th, tw);
    let ref_u8 =
        resize::video_frame_resize_crop(&img, &resize::cover_crop(img.height, img.width, th, tw));
    let (driving, duration_s, audio_offset) =
        decode_clip(&i.video_url, th, tw, "driving video", false)?;
    // The reference mask is cover-cropped exactly like the reference image it describes.
    let reference_mask = match &i.reference_mask_url {
        Some(p) => Some(mask_to_target(
            &decode_image(p, &Limits::default())
                .map_err(|e| input_err("reference mask", e))?
                .rgb(),
            th,
            tw,
        )?),
        None => None,
    };
    let clip_of = |p: &Option<PathBuf>, what: &str| -> Result<Option<Clip>> {
        match p {
            None => Ok(None),
            Some(p) => {
                // Mask videos keep exact palette colours; a pose video is resized like a video.
                let (frames, _, _) = decode_clip(p, th, tw, what, what.contains("mask"))?;
                Ok(Some(Clip {
                    frames,
                    fps: MODEL_FPS as f64,
                }))
            }
        }
    };
    let meta = Decoded {
        width,
        height,
        ref_model,
        frames: driving.len(),
        duration_s,
        audio_offset,
    };
    let stagea = StageAInputs {
        reference: ref_u8,
        reference_alpha: reference_alpha(&decoded.image, th, tw)?,
        driving: Clip {
            frames: driving,
            fps: MODEL_FPS as f64,
        },
        reference_mask,
        driving_mask: clip_of(&i.driving_mask_url, "driving mask video")?,
        pose_video: clip_of(&i.pose_video_url, "pose video")?,
    };
    Ok((meta, stagea))
}

/// `(width, height)`: the run's explicit size, else the request's resolution oriented like the
/// reference.
fn target_size(i: &ScailInput<PathBuf>, run: &RunOptions, img: &ImageU8) -> Result<(usize, usize)> {
    match run.size {
        Some((w, h)) => {
            if w % 32 != 0 || h % 32 != 0 || w == 0 || h == 0 {
                return Err(PipelineError::Input(format!(
                    "size {w}x{h}: both sides must be positive multiples of 32"
                )));
            }
            // An explicit size is used as given (no orientation swap).
            Ok((w as usize, h as usize))
        }
        None => {
            let (w, h) = i
                .resolution
                .target_size(img.width as u32, img.height as u32);
            Ok((w as usize, h as usize))
        }
    }
}

pub(super) fn input_err(what: &str, e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Input(format!("{what}: {e}"))
}

/// A palette mask at the target size: the same cover-resize and centre crop as the image or
/// video it belongs to, but nearest-neighbour so palette colours stay exact.
fn mask_to_target(img: &ImageU8, h: usize, w: usize) -> Result<RgbImage> {
    let cc = resize::cover_crop(img.height, img.width, h, w);
    let big = img
        .take_channels(3)
        .resize_nearest(cc.resize_w, cc.resize_h);
    Ok(big.crop(cc.top, cc.left, h, w))
}

/// The subject mask of an RGBA reference with real transparency, cropped like the reference
/// (nearest on the alpha plane); None for opaque images.
fn reference_alpha(img: &ImageU8, h: usize, w: usize) -> Result<Option<scail_stagea::Mask>> {
    if img.channels != 4 {
        return Ok(None);
    }
    let alpha: Vec<u8> = img.data.chunks_exact(4).flat_map(|p| [p[3]; 3]).collect();
    let a = mask_to_target(&ImageU8::from_vec(img.width, img.height, 3, alpha), h, w)?;
    let rgba: Vec<u8> = a
        .data
        .chunks_exact(3)
        .flat_map(|p| [0, 0, 0, p[0]])
        .collect();
    scail_stagea::compose::mask_from_alpha(w as u32, h as u32, &rgba)
        .map_err(|e| input_err("reference alpha", e))
}

/// Decodes a video at 16 fps, every frame resized and centre-cropped to `(h, w)` (nearest for
/// palette masks).
fn decode_clip(
    path: &Path,
    h: usize,
    w: usize,
    what: &str,
    is_mask: bool,
) -> Result<(Vec<RgbImage>, f64, Option<f64>)> {
    let mut frames = Vec::new();
    let mut err = None;
    let summary = decode_resampled(path, &DecodeOptions::default(), MODEL_FPS, |_, f| {
        let img = &f.image;
        let cc = resize::cover_crop(img.height, img.width, h, w);
        let r = if is_mask {
            mask_to_target(img, h, w)
        } else {
            Ok(resize::video_frame_resize_crop(img, &cc))
        };
        match r {
            Ok(r) => frames.push(r),
            Err(e) => err = Some(e),
        }
        Ok(())
    })
    .map_err(|e| input_err(what, e))?;
    if let Some(e) = err {
        return Err(e);
    }
    if frames.is_empty() {
        return Err(PipelineError::Input(format!("{what} has no frames")));
    }
    Ok((
        frames,
        summary.duration_s,
        summary.info.audio.as_ref().map(|a| a.offset_s),
    ))
}
