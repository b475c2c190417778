//! Typed errors of the media crate: every bad input gets its own specific message.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: file is empty (0 bytes)", .0.display())]
    EmptyFile(PathBuf),
    #[error("{}: not a recognised video or image container ({reason})", path.display())]
    UnrecognisedFormat { path: PathBuf, reason: String },
    #[error("{}: no video stream (only audio/data tracks)", .0.display())]
    NoVideoStream(PathBuf),
    #[error("{}: codec {codec} cannot be decoded by this ffmpeg", path.display())]
    UnsupportedCodec { path: PathBuf, codec: String },
    #[error("{}: corrupt or truncated data: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: no decodable video frames", .0.display())]
    NoFrames(PathBuf),
    #[error("{}: {width}x{height} exceeds the limit of {max_pixels} pixels per frame", path.display())]
    TooManyPixels {
        path: PathBuf,
        width: u64,
        height: u64,
        max_pixels: u64,
    },
    #[error("{}: duration {duration_s:.1} s exceeds the limit of {max_s:.1} s", path.display())]
    TooLong {
        path: PathBuf,
        duration_s: f64,
        max_s: f64,
    },
    #[error("{}: more than {max_frames} frames (limit)", path.display())]
    TooManyFrames { path: PathBuf, max_frames: u64 },
    #[error("{}: image decode failed: {reason}", path.display())]
    Image { path: PathBuf, reason: String },
    #[error("{}: encode failed: {reason}", path.display())]
    Encode { path: PathBuf, reason: String },
    #[error("invalid shape: {0}")]
    Shape(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[cfg(feature = "ffmpeg")]
    #[error("{}: ffmpeg: {source}", path.display())]
    Ffmpeg {
        path: PathBuf,
        #[source]
        source: ffmpeg_next::Error,
    },
}

pub type Result<T, E = MediaError> = std::result::Result<T, E>;
