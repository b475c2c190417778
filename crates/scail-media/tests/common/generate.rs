//! Inputs generated at test time: clips from ffmpeg's test sources, and decoding them whole.

use std::path::{Path, PathBuf};
use std::process::Command;

use scail_media::video::{DecodeOptions, VideoDecoder, VideoFrame};
use scail_media::MediaError;

pub fn ffmpeg(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(st.success(), "ffmpeg failed to make {name}: {args:?}");
    out
}

pub const SRC: &[&str] = &[
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=64x64:rate=10:duration=1",
];

pub fn with_src<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = SRC.to_vec();
    v.extend_from_slice(extra);
    v
}

pub fn small() -> DecodeOptions {
    DecodeOptions::default()
}

pub fn decode_all(path: &Path, opts: &DecodeOptions) -> Result<Vec<VideoFrame>, MediaError> {
    let mut d = VideoDecoder::open(path, opts)?;
    let mut v = Vec::new();
    while let Some(f) = d.next_frame()? {
        v.push(f);
    }
    Ok(v)
}
