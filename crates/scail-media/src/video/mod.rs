//! Streaming video decode through the system's ffmpeg libraries.
//!
//! Frames come out one at a time as RGB24 in display orientation (rotation metadata applied)
//! with square pixels (SAR applied), so memory stays bounded by a few frames whatever the
//! video's length. Data tracks (timecode, subtitles) are ignored; a file without a video
//! stream is a specific error. Limits are checked before frame buffers exist.
//!
//! One job per file: [`open`] reads the container and sets the decoder up, [`frames`] decodes,
//! converts and rotates frame by frame, [`resampled`] puts the frames on a fixed-rate
//! timeline (and decodes ahead on a thread).

use std::sync::Once;

use ffmpeg_next as ff;

use crate::frame::ImageU8;
use crate::limits::Limits;

mod frames;
mod open;
mod resampled;

pub use frames::rotate;
pub use open::VideoDecoder;
pub use resampled::{decode_frames, decode_resampled, ResampleSummary};

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
