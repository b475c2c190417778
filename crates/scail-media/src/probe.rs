//! `scail probe FILE`: facts about a video or image as JSON.

use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::error::{MediaError, Result};
use crate::image_io::{decode_image, sniff_image_format};
use crate::limits::Limits;
use crate::video::{DecodeOptions, VideoDecoder};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeInfo {
    /// "video" or "image".
    pub kind: String,
    /// Demuxer name for videos (as ffprobe's `format_name`), image format for images.
    pub container: String,
    pub video: ProbeVideo,
    pub audio: Option<ProbeAudio>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeVideo {
    pub codec: String,
    /// As stored, before rotation.
    pub width: u32,
    pub height: u32,
    /// Sample aspect ratio "num:den".
    pub sar: String,
    /// Clockwise display rotation in degrees (0, 90, 180, 270); for images the EXIF
    /// orientation's rotation.
    pub rotation: u32,
    /// Average frame rate (0 for still images).
    pub fps: f64,
    /// Frames counted by decoding.
    pub frames: u64,
    /// Decoded duration: last frame's timestamp plus its duration (0 for still images).
    pub duration_s: f64,
    /// Duration the container declares for the stream, if any.
    pub declared_duration_s: Option<f64>,
    /// Size as displayed (rotation and SAR applied).
    pub display_width: u32,
    pub display_height: u32,
    /// Images only: whether an alpha channel is present.
    pub has_alpha: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeAudio {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
    pub duration_s: Option<f64>,
}

fn exif_rotation(o: u8) -> u32 {
    match o {
        3 | 4 => 180,
        5 | 6 => 90,
        7 | 8 => 270,
        _ => 0,
    }
}

/// Probe with default limits.
pub fn probe(path: &Path) -> Result<ProbeInfo> {
    probe_with(path, &Limits::default())
}

pub fn probe_with(path: &Path, limits: &Limits) -> Result<ProbeInfo> {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|source| MediaError::Io {
            path: path.into(),
            source,
        })?;
    if n == 0 {
        return Err(MediaError::EmptyFile(path.into()));
    }
    // Animated GIFs go through ffmpeg as videos; other images through the image decoder.
    match sniff_image_format(&head[..n]) {
        Some(f) if f != image::ImageFormat::Gif => {
            let img = decode_image(path, limits)?;
            let rotation = exif_rotation(img.exif_orientation);
            Ok(ProbeInfo {
                kind: "image".into(),
                container: img.format.clone(),
                video: ProbeVideo {
                    codec: img.format.clone(),
                    width: img.stored_width,
                    height: img.stored_height,
                    sar: "1:1".into(),
                    rotation,
                    fps: 0.0,
                    frames: 1,
                    duration_s: 0.0,
                    declared_duration_s: None,
                    display_width: img.image.width as u32,
                    display_height: img.image.height as u32,
                    has_alpha: img.has_alpha(),
                },
                audio: None,
            })
        }
        _ => probe_video(path, limits),
    }
}

fn probe_video(path: &Path, limits: &Limits) -> Result<ProbeInfo> {
    let opts = DecodeOptions {
        limits: limits.clone(),
        max_output: Some((64, 64)),
    };
    let mut dec = VideoDecoder::open(path, &opts)?;
    // Counting needs decoding but no colour conversion.
    while dec.skip_frame()?.is_some() {}
    let info = dec.info().clone();
    let (mut dw, mut dh) = (info.width as f64, info.height as f64);
    let (sn, sd) = info.sar;
    if sn > 0 && sd > 0 && sn != sd {
        let r = sn as f64 / sd as f64;
        if r > 1.0 {
            dw *= r
        } else {
            dh /= r
        }
    }
    if info.rotation % 180 == 90 {
        std::mem::swap(&mut dw, &mut dh);
    }
    Ok(ProbeInfo {
        kind: "video".into(),
        container: info.container.clone(),
        video: ProbeVideo {
            codec: info.codec.clone(),
            width: info.width,
            height: info.height,
            sar: format!("{sn}:{sd}"),
            rotation: info.rotation,
            fps: info.fps,
            frames: dec.frames_decoded(),
            duration_s: dec.end_time_s(),
            declared_duration_s: info.duration_s,
            display_width: dw.round() as u32,
            display_height: dh.round() as u32,
            has_alpha: false,
        },
        audio: info.audio.as_ref().map(|a| ProbeAudio {
            codec: a.codec.clone(),
            sample_rate: a.sample_rate,
            channels: a.channels,
            duration_s: a.duration_s,
        }),
    })
}
