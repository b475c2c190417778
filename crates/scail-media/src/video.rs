//! Streaming video decode through the system's ffmpeg libraries.
//!
//! Frames come out one at a time as RGB24 in display orientation (rotation metadata applied)
//! with square pixels (SAR applied), so memory stays bounded by a few frames whatever the
//! video's length. Data tracks (timecode, subtitles) are ignored; a file without a video
//! stream is a specific error. Limits are checked before frame buffers exist.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

use crate::error::{MediaError, Result};
use crate::frame::ImageU8;
use crate::limits::Limits;
use crate::timing::FpsResampler;

/// Facts about a video file, read from the container and codec parameters (no decoding).
#[derive(Clone, Debug, PartialEq)]
pub struct VideoInfo {
    /// Container (demuxer) name as ffmpeg reports it, e.g. "mov,mp4,m4a,3gp,3g2,mj2".
    pub container: String,
    pub codec: String,
    /// As stored, before rotation and SAR.
    pub width: u32,
    pub height: u32,
    /// Sample (pixel) aspect ratio, (1, 1) when unknown.
    pub sar: (i32, i32),
    /// Clockwise rotation to apply for display (0, 90, 180, 270).
    pub rotation: u32,
    /// Average frame rate, 0 when unknown.
    pub fps: f64,
    /// Frame count declared by the container, if any.
    pub declared_frames: Option<u64>,
    /// Declared duration of the video stream (or the container), seconds.
    pub duration_s: Option<f64>,
    /// Size of the decoded frames this decoder hands out (after SAR, rotation and any
    /// requested size cap).
    pub out_width: u32,
    pub out_height: u32,
    pub audio: Option<AudioInfo>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AudioInfo {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
    pub duration_s: Option<f64>,
    /// Start of the audio relative to the first video frame, seconds.
    pub offset_s: f64,
}

/// How to decode.
#[derive(Clone, Debug, Default)]
pub struct DecodeOptions {
    pub limits: Limits,
    /// Fit output frames inside this (width, height), keeping the display aspect: decode at
    /// reduced size for previews and tests. None: full resolution.
    pub max_output: Option<(u32, u32)>,
}

/// One decoded frame.
#[derive(Clone, Debug)]
pub struct VideoFrame {
    /// Presentation time from the first frame, seconds.
    pub pts_s: f64,
    /// How long this frame is shown, seconds.
    pub duration_s: f64,
    /// RGB24, display orientation, square pixels.
    pub image: ImageU8,
}

pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ff::init();
        // Corrupt inputs make ffmpeg log at error level; the caller gets a typed error instead.
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

fn q(r: ff::Rational) -> f64 {
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
    path: PathBuf,
    ictx: ff::format::context::Input,
    decoder: ff::decoder::Video,
    stream_index: usize,
    time_base: f64,
    info: VideoInfo,
    limits: Limits,
    scaler: Option<(Pixel, u32, u32, scaling::Context)>,
    frame: ff::frame::Video,
    rgb: ff::frame::Video,
    first_ts: Option<i64>,
    frames_out: u64,
    eof_sent: bool,
    done: bool,
    end_s: f64,
    decode_errors: u64,
    /// Spent frame buffers handed back by a consumer: reusing them spares mapping and zeroing
    /// fresh pages for every frame.
    pool: Option<FramePool>,
}

/// Frame buffers returned for reuse (bounded: a few frames in flight at most).
pub(crate) type FramePool = Arc<std::sync::Mutex<Vec<Vec<u8>>>>;
const POOL_MAX: usize = 4;

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

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Frames handed out so far.
    pub fn frames_decoded(&self) -> u64 {
        self.frames_out
    }

    /// Packets the decoder rejected as corrupt (decoding went on past them).
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }

    /// End of the last frame handed out (its timestamp plus its duration), seconds from the
    /// first frame: the decoded duration once the stream is exhausted.
    pub fn end_time_s(&self) -> f64 {
        self.end_s
    }

    fn corrupt(&self, reason: String) -> MediaError {
        MediaError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    /// Decode the next frame into `self.frame`; false at the end of the stream.
    fn decode_next(&mut self) -> Result<bool> {
        loop {
            if self.done {
                return Ok(false);
            }
            match self.decoder.receive_frame(&mut self.frame) {
                Ok(()) => return Ok(true),
                Err(ff::Error::Eof) => {
                    self.done = true;
                    return Ok(false);
                }
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {}
                Err(ff::Error::InvalidData) => {
                    self.decode_errors += 1;
                    continue;
                }
                Err(e) => return Err(self.corrupt(format!("decoder: {e}"))),
            }
            if self.eof_sent {
                self.done = true;
                return Ok(false);
            }
            // Feed the next packet of our stream; other tracks (audio, timecode) are skipped.
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.ictx) {
                Ok(()) => {
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => {}
                        // A damaged packet: skip it as the ffmpeg CLI does, count it.
                        Err(ff::Error::InvalidData) => self.decode_errors += 1,
                        Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {}
                        Err(e) => return Err(self.corrupt(format!("sending packet: {e}"))),
                    }
                }
                Err(ff::Error::Eof) => {
                    let _ = self.decoder.send_eof();
                    self.eof_sent = true;
                }
                Err(e) => return Err(self.corrupt(format!("reading packet: {e}"))),
            }
        }
    }

    /// Timestamp bookkeeping and limits for the frame in `self.frame`; returns (pts, dur).
    fn stamp(&mut self) -> Result<(f64, f64)> {
        let default_dur = if self.info.fps > 0.0 {
            1.0 / self.info.fps
        } else {
            1.0 / 25.0
        };
        let ts = self.frame.timestamp().or(self.frame.pts());
        let pts_s = match (ts, self.first_ts) {
            (Some(t), Some(f)) => (t - f) as f64 * self.time_base,
            (Some(t), None) => {
                self.first_ts = Some(t);
                0.0
            }
            // No timestamps at all: assume a constant rate.
            (None, _) => self.frames_out as f64 * default_dur,
        };
        let pd = self.frame.packet().duration;
        let dur = if pd > 0 {
            pd as f64 * self.time_base
        } else {
            default_dur
        };
        self.frames_out += 1;
        if self.frames_out > self.limits.max_frames {
            return Err(MediaError::TooManyFrames {
                path: self.path.clone(),
                max_frames: self.limits.max_frames,
            });
        }
        if pts_s > self.limits.max_duration_s {
            return Err(MediaError::TooLong {
                path: self.path.clone(),
                duration_s: pts_s,
                max_s: self.limits.max_duration_s,
            });
        }
        self.end_s = self.end_s.max(pts_s + dur);
        Ok((pts_s, dur))
    }

    /// Advance one frame without converting it (frame counting); returns its timestamp.
    pub fn skip_frame(&mut self) -> Result<Option<f64>> {
        if !self.decode_next()? {
            return self.finish_check().map(|_| None);
        }
        Ok(Some(self.stamp()?.0))
    }

    fn finish_check(&self) -> Result<()> {
        // A stream that ends far short of the frame count its container declares was cut off
        // (edit lists can hide a few frames, hence the slack).
        if let Some(n) = self.info.declared_frames {
            if self.frames_out * 10 < n * 9 {
                return Err(self.corrupt(format!(
                    "truncated: {} of {} declared frames decodable",
                    self.frames_out, n
                )));
            }
        }
        // Damaged packets are skipped like the ffmpeg CLI does, up to a point.
        if self.decode_errors > 0 && self.decode_errors * 10 > self.frames_out {
            return Err(self.corrupt(format!(
                "{} damaged packets for {} frames",
                self.decode_errors, self.frames_out
            )));
        }
        if self.frames_out == 0 {
            return Err(if self.decode_errors > 0 {
                self.corrupt(format!(
                    "{} damaged packets and no decodable frame",
                    self.decode_errors
                ))
            } else {
                MediaError::NoFrames(self.path.clone())
            });
        }
        Ok(())
    }

    /// The next frame, or None at the end of the stream.
    pub fn next_frame(&mut self) -> Result<Option<VideoFrame>> {
        if !self.decode_next()? {
            self.finish_check()?;
            return Ok(None);
        }
        let (pts_s, duration_s) = self.stamp()?;
        let image = self.convert()?;
        Ok(Some(VideoFrame {
            pts_s,
            duration_s,
            image,
        }))
    }

    /// Colour conversion (and SAR/size scaling) to RGB24, then rotation.
    fn convert(&mut self) -> Result<ImageU8> {
        let (fw, fh, fmt) = (self.frame.width(), self.frame.height(), self.frame.format());
        if fw as u64 * fh as u64 > self.limits.max_pixels {
            return Err(MediaError::TooManyPixels {
                path: self.path.clone(),
                width: fw as u64,
                height: fh as u64,
                max_pixels: self.limits.max_pixels,
            });
        }
        // Pre-rotation size of the RGB frame.
        let (ow, oh) = if self.info.rotation % 180 == 90 {
            (self.info.out_height, self.info.out_width)
        } else {
            (self.info.out_width, self.info.out_height)
        };
        let rebuild =
            !matches!(&self.scaler, Some((f, w, h, _)) if *f == fmt && *w == fw && *h == fh);
        if rebuild {
            // swscale's default flags, as the reference's decoder (decord) uses them; the
            // accurate-rounding flags would leave its SIMD colour conversion.
            let flags = scaling::Flags::BICUBIC;
            let ctx = scaling::Context::get(fmt, fw, fh, Pixel::RGB24, ow, oh, flags)
                .map_err(|e| self.corrupt(format!("no conversion from {fmt:?} {fw}x{fh}: {e}")))?;
            self.scaler = Some((fmt, fw, fh, ctx));
        }
        let (_, _, _, sws) = self.scaler.as_mut().unwrap();
        sws.run(&self.frame, &mut self.rgb)
            .map_err(|e| MediaError::Corrupt {
                path: self.path.clone(),
                reason: format!("colour conversion: {e}"),
            })?;
        let stride = self.rgb.stride(0);
        let data = self.rgb.data(0);
        let (w, h) = (ow as usize, oh as usize);
        let mut buf = self
            .pool
            .as_ref()
            .and_then(|p| p.lock().ok()?.pop())
            .unwrap_or_default();
        buf.clear();
        buf.reserve(w * h * 3);
        for y in 0..h {
            buf.extend_from_slice(&data[y * stride..y * stride + w * 3]);
        }
        Ok(rotate(ImageU8::from_vec(w, h, 3, buf), self.info.rotation))
    }
}

/// Rotate clockwise by 0/90/180/270 degrees.
pub fn rotate(img: ImageU8, cw: u32) -> ImageU8 {
    let (w, h, c) = (img.width, img.height, img.channels);
    match cw {
        90 | 180 | 270 => {}
        _ => return img,
    }
    let (nw, nh) = if cw == 180 { (w, h) } else { (h, w) };
    let mut out = vec![0u8; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            let (nx, ny) = match cw {
                90 => (h - 1 - y, x),
                180 => (w - 1 - x, h - 1 - y),
                _ => (y, w - 1 - x),
            };
            let s = (y * w + x) * c;
            let d = (ny * nw + nx) * c;
            out[d..d + c].copy_from_slice(&img.data[s..s + c]);
        }
    }
    ImageU8::from_vec(nw, nh, c, out)
}

/// Summary of a resampled decode.
#[derive(Clone, Debug, PartialEq)]
pub struct ResampleSummary {
    pub info: VideoInfo,
    /// Source frames decoded.
    pub source_frames: u64,
    /// Decoded duration (last frame's end), seconds.
    pub duration_s: f64,
    /// Output frames emitted (`ceil(duration * fps)`).
    pub output_frames: u64,
}

/// Decode `path` and hand every output frame of the `fps` timeline to `sink(k, frame)`:
/// output frame k shows the source frame nearest to time k/fps. Holds at most two decoded
/// frames at a time.
pub fn decode_resampled(
    path: &Path,
    opts: &DecodeOptions,
    fps: u32,
    mut sink: impl FnMut(u64, &VideoFrame) -> Result<()>,
) -> Result<ResampleSummary> {
    decode_resampled_shared(path, opts, fps, None, |k, f| sink(k, f))
}

/// [`decode_resampled`] handing out the shared frame, so a sink can keep or pass it on
/// without copying the pixels (a repeated frame is the same allocation).
fn decode_resampled_shared(
    path: &Path,
    opts: &DecodeOptions,
    fps: u32,
    pool: Option<FramePool>,
    mut sink: impl FnMut(u64, &Arc<VideoFrame>) -> Result<()>,
) -> Result<ResampleSummary> {
    let mut dec = VideoDecoder::open(path, opts)?;
    dec.pool = pool;
    let mut rs: FpsResampler<Arc<VideoFrame>> = FpsResampler::new(fps);
    let mut k = 0u64;
    let mut err: Option<MediaError> = None;
    while let Some(f) = dec.next_frame()? {
        let pts = f.pts_s;
        rs.push(pts, Arc::new(f), |fr| {
            if err.is_none() {
                if let Err(e) = sink(k, &fr) {
                    err = Some(e);
                }
            }
            k += 1;
        });
        if let Some(e) = err.take() {
            return Err(e);
        }
    }
    let duration_s = dec.end_time_s();
    rs.finish(duration_s, |fr| {
        if err.is_none() {
            if let Err(e) = sink(k, &fr) {
                err = Some(e);
            }
        }
        k += 1;
    });
    if let Some(e) = err {
        return Err(e);
    }
    Ok(ResampleSummary {
        info: dec.info().clone(),
        source_frames: dec.frames_decoded(),
        duration_s,
        output_frames: k,
    })
}

/// Decode `path` on the `fps` timeline and return every output frame, resized and centre-
/// cropped to `(h, w)` with the reference's uint8 video arithmetic when `target_hw` is given.
/// Holds all output frames: meant for model-sized clips (and mask videos, which stay
/// lossless here: decoded RGB, never re-encoded). Decoding runs on its own thread, two frames
/// ahead of the resizing.
pub fn decode_frames(
    path: &Path,
    opts: &DecodeOptions,
    fps: u32,
    target_hw: Option<(usize, usize)>,
) -> Result<(Vec<ImageU8>, ResampleSummary)> {
    // Frames cross the thread shared, not copied (a full-size RGB frame is megabytes).
    let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<VideoFrame>>(2);
    let (path_owned, opts_owned) = (path.to_path_buf(), opts.clone());
    let pool: FramePool = Arc::default();
    let decoder_pool = target_hw.is_some().then(|| Arc::clone(&pool));
    let worker = std::thread::spawn(move || {
        decode_resampled_shared(&path_owned, &opts_owned, fps, decoder_pool, |_, f| {
            // The receiver only hangs up when it is gone; stop quietly then.
            let _ = tx.send(Arc::clone(f));
            Ok(())
        })
    });
    let mut frames = Vec::new();
    // Planned once per source size: tap tables and working buffers are reused.
    let mut resizer: Option<crate::resize::FrameResizer> = None;
    for f in rx {
        let img = &f.image;
        frames.push(match target_hw {
            Some((h, w)) => {
                let fresh = !matches!(&resizer,
                    Some(r) if (img.height, img.width) == (r.cover_crop().src_h, r.cover_crop().src_w));
                if fresh {
                    let cc = crate::resize::cover_crop(img.height, img.width, h, w);
                    resizer = Some(crate::resize::FrameResizer::new(&cc));
                }
                let out = resizer.as_mut().expect("planned above").resize_u8(img);
                // The decoder has usually moved on by now: the last holder recycles the pixels.
                if let Ok(done) = Arc::try_unwrap(f) {
                    if let Ok(mut p) = pool.lock() {
                        if p.len() < POOL_MAX {
                            p.push(done.image.data);
                        }
                    }
                }
                out
            }
            // The last holder takes the pixels without a copy.
            None => Arc::try_unwrap(f).map(|v| v.image).unwrap_or_else(|a| a.image.clone()),
        });
    }
    let summary = worker
        .join()
        .map_err(|_| MediaError::Invalid("video decode thread panicked".into()))??;
    Ok((frames, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_pixels() {
        // 2x1 image [a b] rotated 90 cw becomes a column [a; b].
        let img = ImageU8::from_vec(2, 1, 1, vec![1, 2]);
        let r = rotate(img.clone(), 90);
        assert_eq!((r.width, r.height, r.data.clone()), (1, 2, vec![1, 2]));
        let r = rotate(img.clone(), 270);
        assert_eq!(r.data, vec![2, 1]);
        assert_eq!(rotate(img, 180).data, vec![2, 1]);
    }

    fn media_dir() -> PathBuf {
        scail_testdata::media_dir()
    }

    #[test]
    fn pipelined_decode_resize_equals_frame_by_frame() {
        // 30 fps source on the 16 fps timeline, reduced decode size to stay quick: the
        // decode thread, shared frames, buffer recycling and the planned resizer must give
        // exactly the frames of the plain path.
        let clip = media_dir().join("pose_dwpose_skeleton_30fps.mp4");
        let opts = DecodeOptions {
            max_output: Some((320, 320)),
            ..Default::default()
        };
        let (fast, summary) = decode_frames(&clip, &opts, 16, Some((128, 224))).unwrap();
        let mut plain = Vec::new();
        decode_resampled(&clip, &opts, 16, |_, f| {
            let cc = crate::resize::cover_crop(f.image.height, f.image.width, 128, 224);
            plain.push(crate::resize::video_frame_resize_crop(&f.image, &cc));
            Ok(())
        })
        .unwrap();
        assert_eq!(fast.len() as u64, summary.output_frames);
        assert!(fast.len() > 8, "{} frames", fast.len());
        assert_eq!(fast, plain);
    }

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
