//! Opening a file: container and stream facts, display size, and the decoder's state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

use super::{init, AudioInfo, DecodeOptions, VideoInfo};
use crate::error::{MediaError, Result};
use crate::limits::Limits;

pub(super) fn q(r: ff::Rational) -> f64 {
    if r.denominator() == 0 {
        0.0
    } else {
        r.numerator() as f64 / r.denominator() as f64
    }
}

/// Clockwise display rotation from a display matrix (ffmpeg's convention: the matrix rotates
/// counter-clockwise by `av_display_rotation_get` degrees; players rotate by its negation).
fn rotation_from_matrix(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < 36 {
        return None;
    }
    let m: Vec<f64> = bytes
        .chunks_exact(4)
        .take(9)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f64 / 65536.0)
        .collect();
    let s0 = m[0].hypot(m[3]);
    let s1 = m[1].hypot(m[4]);
    if s0 == 0.0 || s1 == 0.0 {
        return None;
    }
    let ccw = -(m[1] / s1).atan2(m[0] / s0).to_degrees();
    let cw = (-ccw).round() as i64;
    let r = cw.rem_euclid(360);
    // Only right angles are meaningful for video; snap to the nearest.
    Some(((((r + 45) / 90) % 4) * 90) as u32)
}

/// A container we recognise by its first bytes, so that an open failure on it means a damaged
/// file rather than something that is not a video at all.
fn known_container_magic(path: &Path) -> Option<&'static str> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .ok()?;
    let h = &head[..n];
    if h.len() >= 8 && (&h[4..8] == b"ftyp" || &h[4..8] == b"moov" || &h[4..8] == b"mdat") {
        Some("mp4/mov")
    } else if h.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        Some("matroska/webm")
    } else if h.len() >= 12 && h.starts_with(b"RIFF") && &h[8..12] == b"AVI " {
        Some("avi")
    } else if h.starts_with(b"GIF8") {
        Some("gif")
    } else {
        None
    }
}

fn open_err(path: &Path, e: ff::Error) -> MediaError {
    if let (ff::Error::InvalidData | ff::Error::Eof, Some(kind)) = (&e, known_container_magic(path))
    {
        return MediaError::Corrupt {
            path: path.into(),
            reason: format!("{kind} container cannot be opened (truncated or damaged header: {e})"),
        };
    }
    match e {
        ff::Error::InvalidData => MediaError::UnrecognisedFormat {
            path: path.into(),
            reason: "ffmpeg found no known container in the data".into(),
        },
        ff::Error::Eof => MediaError::Corrupt {
            path: path.into(),
            reason: "file ends before the container header is complete".into(),
        },
        source => MediaError::Ffmpeg {
            path: path.into(),
            source,
        },
    }
}

/// Display size after SAR (stretching width or height, never shrinking) and rotation, then
/// fitted into `max_output`. Even sides are not required here.
fn output_size(
    w: u32,
    h: u32,
    sar: (i32, i32),
    rotation: u32,
    cap: Option<(u32, u32)>,
) -> (u32, u32) {
    let (mut dw, mut dh) = (w as f64, h as f64);
    if sar.0 > 0 && sar.1 > 0 && sar.0 != sar.1 {
        let r = sar.0 as f64 / sar.1 as f64;
        if r > 1.0 {
            dw *= r;
        } else {
            dh /= r;
        }
    }
    if rotation == 90 || rotation == 270 {
        std::mem::swap(&mut dw, &mut dh);
    }
    if let Some((mw, mh)) = cap {
        let s = (mw as f64 / dw).min(mh as f64 / dh).min(1.0);
        dw *= s;
        dh *= s;
    }
    ((dw.round() as u32).max(1), (dh.round() as u32).max(1))
}

/// A streaming decoder over one file's best video stream.
pub struct VideoDecoder {
    pub(super) path: PathBuf,
    pub(super) ictx: ff::format::context::Input,
    pub(super) decoder: ff::decoder::Video,
    pub(super) stream_index: usize,
    pub(super) time_base: f64,
    pub(super) info: VideoInfo,
    pub(super) limits: Limits,
    pub(super) scaler: Option<(Pixel, u32, u32, scaling::Context)>,
    pub(super) frame: ff::frame::Video,
    pub(super) rgb: ff::frame::Video,
    pub(super) first_ts: Option<i64>,
    pub(super) frames_out: u64,
    pub(super) eof_sent: bool,
    pub(super) done: bool,
    pub(super) end_s: f64,
    pub(super) decode_errors: u64,
    /// Spent frame buffers handed back by a consumer: reusing them spares mapping and zeroing
    /// fresh pages for every frame.
    pub(super) pool: Option<FramePool>,
}

/// Frame buffers returned for reuse (bounded: a few frames in flight at most).
pub(crate) type FramePool = Arc<std::sync::Mutex<Vec<Vec<u8>>>>;
pub(super) const POOL_MAX: usize = 4;

impl VideoDecoder {
    pub fn open(path: &Path, opts: &DecodeOptions) -> Result<Self> {
        init();
        let limits = opts.limits.clone();
        limits.check_file(path)?;
        let ictx = ff::format::input(&path).map_err(|e| open_err(path, e))?;
        let container = ictx.format().name().to_string();
        let stream = ictx
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| MediaError::NoVideoStream(path.into()))?;
        let stream_index = stream.index();
        let tb = stream.time_base();
        let params = stream.parameters();
        let codec_id = params.id();
        let codec = codec_id.name().to_string();
        let rotation = stream
            .side_data()
            .find(|sd| sd.kind() == ff::packet::side_data::Type::DisplayMatrix)
            .and_then(|sd| rotation_from_matrix(sd.data()))
            .unwrap_or(0);
        let avg = stream.avg_frame_rate();
        let fps = if q(avg) > 0.0 {
            q(avg)
        } else {
            q(stream.rate())
        };
        let declared_frames = (stream.frames() > 0).then_some(stream.frames() as u64);
        let stream_dur = (stream.duration() > 0).then(|| stream.duration() as f64 * q(tb));
        let container_dur =
            (ictx.duration() > 0).then(|| ictx.duration() as f64 / ff::ffi::AV_TIME_BASE as f64);
        let duration_s = stream_dur.or(container_dur);
        let video_start = stream.start_time();
        let video_start_s = if video_start == ff::ffi::AV_NOPTS_VALUE {
            0.0
        } else {
            video_start as f64 * q(tb)
        };

        let mut ctx = ff::codec::context::Context::from_parameters(params).map_err(|source| {
            MediaError::Ffmpeg {
                path: path.into(),
                source,
            }
        })?;
        if ff::decoder::find(codec_id).is_none() {
            return Err(MediaError::UnsupportedCodec {
                path: path.into(),
                codec,
            });
        }
        ctx.set_threading(ff::threading::Config {
            kind: ff::threading::Type::Frame,
            count: 0,
            ..Default::default()
        });
        let decoder = ctx.decoder().video().map_err(|e| match e {
            ff::Error::DecoderNotFound => MediaError::UnsupportedCodec {
                path: path.into(),
                codec: codec.clone(),
            },
            source => MediaError::Ffmpeg {
                path: path.into(),
                source,
            },
        })?;
        let (width, height) = (decoder.width(), decoder.height());
        if width == 0 || height == 0 {
            return Err(MediaError::Corrupt {
                path: path.into(),
                reason: "video stream declares no frame size".into(),
            });
        }
        if width > limits.max_side
            || height > limits.max_side
            || width as u64 * height as u64 > limits.max_pixels
        {
            return Err(MediaError::TooManyPixels {
                path: path.into(),
                width: width as u64,
                height: height as u64,
                max_pixels: limits.max_pixels,
            });
        }
        if let Some(d) = duration_s {
            if d > limits.max_duration_s {
                return Err(MediaError::TooLong {
                    path: path.into(),
                    duration_s: d,
                    max_s: limits.max_duration_s,
                });
            }
        }
        let sar_r = decoder.aspect_ratio();
        let sar = if sar_r.numerator() > 0 && sar_r.denominator() > 0 {
            (sar_r.numerator(), sar_r.denominator())
        } else {
            (1, 1)
        };
        let (out_width, out_height) = output_size(width, height, sar, rotation, opts.max_output);

        let audio = ictx.streams().best(ff::media::Type::Audio).and_then(|a| {
            let atb = q(a.time_base());
            let actx = ff::codec::context::Context::from_parameters(a.parameters()).ok()?;
            let id = a.parameters().id();
            let dec = actx.decoder().audio().ok();
            let start = a.start_time();
            let start_s = if start == ff::ffi::AV_NOPTS_VALUE {
                0.0
            } else {
                start as f64 * atb
            };
            Some(AudioInfo {
                codec: id.name().to_string(),
                sample_rate: dec.as_ref().map(|d| d.rate()).unwrap_or(0),
                channels: dec.as_ref().map(|d| d.channels()).unwrap_or(0),
                duration_s: (a.duration() > 0).then(|| a.duration() as f64 * atb),
                offset_s: start_s - video_start_s,
            })
        });

        Ok(VideoDecoder {
            path: path.into(),
            ictx,
            decoder,
            stream_index,
            time_base: q(tb),
            info: VideoInfo {
                container,
                codec,
                width,
                height,
                sar,
                rotation,
                fps,
                declared_frames,
                duration_s,
                out_width,
                out_height,
                audio,
            },
            limits,
            scaler: None,
            frame: ff::frame::Video::empty(),
            rgb: ff::frame::Video::empty(),
            first_ts: None,
            frames_out: 0,
            eof_sent: false,
            done: false,
            end_s: 0.0,
            decode_errors: 0,
            pool: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sar_and_rotation_sizes() {
        assert_eq!(output_size(720, 576, (16, 15), 0, None), (768, 576));
        assert_eq!(output_size(1920, 1080, (1, 1), 90, None), (1080, 1920));
        assert_eq!(
            output_size(2048, 1080, (1, 1), 0, Some((512, 512))),
            (512, 270)
        );
    }
}
