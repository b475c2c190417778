//! H.264 mp4 encode (yuv420p, even sides, `+faststart`, CRF) with the driving video's audio
//! copied through and trimmed to the output's duration.
//!
//! Frames are piped as raw RGB24 into the ffmpeg CLI (the same system ffmpeg the decoder links):
//! its muxer handles audio stream copy, trimming and the AAC fallback for codecs mp4 cannot
//! carry, which the library bindings would need several hundred lines to reproduce. Memory
//! stays at one frame: the pipe applies back-pressure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::error::{MediaError, Result};
use crate::frame::ImageU8;

/// Audio codecs the mp4 muxer takes as they are; anything else is re-encoded to AAC.
const MP4_AUDIO_COPY: &[&str] = &["aac", "mp3", "ac3", "eac3", "alac"];

#[derive(Clone, Debug)]
pub struct EncodeOptions {
    /// Output frame rate.
    pub fps: u32,
    /// x264 constant rate factor (0 = lossless .. 51); 18 is visually near-lossless.
    pub crf: u8,
    /// x264 preset.
    pub preset: String,
    /// The ffmpeg executable.
    pub ffmpeg: PathBuf,
    /// Copy the first audio track of this file (the driving video), if it has one.
    pub audio_from: Option<PathBuf>,
    /// Where the audio starts relative to the first video frame of `audio_from`, seconds
    /// (`AudioInfo::offset_s`); the output's time 0 is that first video frame.
    pub audio_offset_s: f64,
    /// Trim the output (audio included) to this duration, seconds. None: the frames' length.
    pub duration_s: Option<f64>,
    /// Lossless RGB H.264 (`libx264rgb`, qp 0) instead of yuv420p: for colour-mask videos,
    /// which must survive bit-exact until they are thresholded.
    pub lossless_rgb: bool,
    /// Lossless FFV1 (RGB) in Matroska instead of mp4: mask videos a user decodes, edits and
    /// sends back, every palette colour exact.
    pub ffv1_mkv: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            fps: crate::timing::MODEL_FPS,
            crf: 18,
            preset: "veryfast".into(),
            ffmpeg: PathBuf::from("ffmpeg"),
            audio_from: None,
            audio_offset_s: 0.0,
            duration_s: None,
            lossless_rgb: false,
            ffv1_mkv: false,
        }
    }
}

/// An mp4 being written; push frames with [`Mp4Writer::write`], then [`Mp4Writer::finish`].
pub struct Mp4Writer {
    path: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    width: usize,
    height: usize,
    frames: u64,
    log: PathBuf,
}

fn enc_err(path: &Path, reason: impl Into<String>) -> MediaError {
    MediaError::Encode {
        path: path.into(),
        reason: reason.into(),
    }
}

impl Mp4Writer {
    pub fn create(path: &Path, width: usize, height: usize, opts: &EncodeOptions) -> Result<Self> {
        if width < 2 || height < 2 {
            return Err(enc_err(
                path,
                format!("frame size {width}x{height} too small"),
            ));
        }
        let audio_codec = match &opts.audio_from {
            Some(src) => audio_codec_of(src)?,
            None => None,
        };
        let mut cmd = Command::new(&opts.ffmpeg);
        cmd.args(["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]);
        cmd.args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s"])
            .arg(format!("{width}x{height}"))
            .args(["-framerate", &opts.fps.to_string(), "-i", "pipe:0"]);
        if let (Some(src), Some(_)) = (&opts.audio_from, &audio_codec) {
            // A positive offset (audio starts after the video) delays the audio input; a
            // negative one skips the audio that precedes the first video frame.
            if opts.audio_offset_s > 0.0 {
                cmd.args(["-itsoffset", &format!("{:.6}", opts.audio_offset_s)]);
            } else if opts.audio_offset_s < 0.0 {
                cmd.args(["-ss", &format!("{:.6}", -opts.audio_offset_s)]);
            }
            cmd.arg("-i").arg(src);
            cmd.args(["-map", "0:v:0", "-map", "1:a:0"]);
        }
        if opts.ffv1_mkv {
            cmd.args(["-c:v", "ffv1", "-level", "3", "-pix_fmt", "bgr0"]);
        } else if opts.lossless_rgb {
            cmd.args(["-c:v", "libx264rgb", "-qp", "0", "-preset", &opts.preset]);
        } else {
            // Odd sides cannot be yuv420p: drop the last row/column.
            cmd.args([
                "-vf",
                "crop=trunc(iw/2)*2:trunc(ih/2)*2",
                "-c:v",
                "libx264",
                "-preset",
                &opts.preset,
                "-crf",
                &opts.crf.to_string(),
                "-pix_fmt",
                "yuv420p",
            ]);
        }
        if !opts.ffv1_mkv {
            cmd.args(["-movflags", "+faststart"]);
        }
        match audio_codec.as_deref() {
            Some(c) if MP4_AUDIO_COPY.contains(&c) => {
                cmd.args(["-c:a", "copy"]);
            }
            Some(_) => {
                cmd.args(["-c:a", "aac", "-b:a", "192k"]);
            }
            None => {}
        }
        if let Some(d) = opts.duration_s {
            cmd.args(["-t", &format!("{d:.6}")]);
        }
        let format = if opts.ffv1_mkv { "matroska" } else { "mp4" };
        cmd.args(["-f", format]).arg(path);
        // Unique per writer: several jobs in one process may write files of the same name.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let log = std::env::temp_dir().join(format!(
            "scail-encode-{}-{}.log",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let log_file = std::fs::File::create(&log).map_err(|source| MediaError::Io {
            path: log.clone(),
            source,
        })?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| enc_err(path, format!("cannot run {}: {e}", opts.ffmpeg.display())))?;
        let stdin = child.stdin.take();
        Ok(Mp4Writer {
            path: path.into(),
            child,
            stdin,
            width,
            height,
            frames: 0,
            log,
        })
    }

    pub fn write(&mut self, frame: &ImageU8) -> Result<()> {
        if frame.width != self.width || frame.height != self.height || frame.channels != 3 {
            return Err(enc_err(
                &self.path,
                format!(
                    "frame {} is {}x{}x{}, the stream is {}x{}x3",
                    self.frames, frame.width, frame.height, frame.channels, self.width, self.height
                ),
            ));
        }
        let stdin = self.stdin.as_mut().expect("writer not finished");
        if let Err(e) = stdin.write_all(&frame.data) {
            let detail = std::fs::read_to_string(&self.log).unwrap_or_default();
            return Err(enc_err(
                &self.path,
                format!("ffmpeg pipe: {e}; {}", detail.trim()),
            ));
        }
        self.frames += 1;
        Ok(())
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Close the stream and wait for the muxer.
    pub fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = self
            .child
            .wait()
            .map_err(|e| enc_err(&self.path, format!("waiting for ffmpeg: {e}")))?;
        let detail = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        if !status.success() {
            return Err(enc_err(
                &self.path,
                format!("ffmpeg exited with {status}: {}", detail.trim()),
            ));
        }
        if self.frames == 0 {
            return Err(enc_err(&self.path, "no frames written"));
        }
        Ok(())
    }
}

impl Drop for Mp4Writer {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            drop(self.stdin.take());
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The first audio track's codec name, None when the file has none.
fn audio_codec_of(path: &Path) -> Result<Option<String>> {
    crate::video::init();
    let ictx = ffmpeg_next::format::input(&path).map_err(|source| MediaError::Ffmpeg {
        path: path.into(),
        source,
    })?;
    let codec = ictx
        .streams()
        .best(ffmpeg_next::media::Type::Audio)
        .map(|s| s.parameters().id().name().to_string());
    Ok(codec)
}

/// Side-by-side preview (driving | reference | output), each scaled to `height` rows with its
/// aspect kept, for debugging and the web page. Frame k of each video is taken at the same
/// index; the reference is a still.
pub fn side_by_side(panels: &[&ImageU8], height: usize) -> ImageU8 {
    let scaled: Vec<ImageU8> = panels
        .iter()
        .map(|p| {
            let w = ((p.width as f64 * height as f64 / p.height as f64).round() as usize).max(1);
            resize_nearest(&p.take_channels(3), w, height)
        })
        .collect();
    let total_w: usize = scaled.iter().map(|p| p.width).sum();
    let mut out = ImageU8::new(total_w, height, 3);
    let mut x0 = 0;
    for p in &scaled {
        for y in 0..height {
            let d = (y * total_w + x0) * 3;
            let s = y * p.width * 3;
            out.data[d..d + p.width * 3].copy_from_slice(&p.data[s..s + p.width * 3]);
        }
        x0 += p.width;
    }
    out
}

fn resize_nearest(img: &ImageU8, w: usize, h: usize) -> ImageU8 {
    let c = img.channels;
    let mut out = ImageU8::new(w, h, c);
    for y in 0..h {
        let sy = (y * img.height / h).min(img.height - 1);
        for x in 0..w {
            let sx = (x * img.width / w).min(img.width - 1);
            let s = (sy * img.width + sx) * c;
            let d = (y * w + x) * c;
            out.data[d..d + c].copy_from_slice(&img.data[s..s + c]);
        }
    }
    out
}

/// Write a side-by-side preview mp4 of three streams of frames (driving | reference still |
/// output), `height` rows, at `opts.fps`.
pub fn write_preview(
    path: &Path,
    driving: &[ImageU8],
    reference: &ImageU8,
    output: &[ImageU8],
    height: usize,
    opts: &EncodeOptions,
) -> Result<()> {
    let n = driving.len().max(output.len());
    if n == 0 {
        return Err(enc_err(path, "no frames for the preview"));
    }
    let mut writer: Option<Mp4Writer> = None;
    for k in 0..n {
        let d = &driving[k.min(driving.len().saturating_sub(1))];
        let o = &output[k.min(output.len().saturating_sub(1))];
        let frame = side_by_side(&[d, reference, o], height);
        if writer.is_none() {
            writer = Some(Mp4Writer::create(path, frame.width, frame.height, opts)?);
        }
        writer.as_mut().unwrap().write(&frame)?;
    }
    writer.unwrap().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_by_side_layout() {
        let a = ImageU8::from_vec(2, 2, 3, vec![10; 12]);
        let b = ImageU8::from_vec(1, 1, 3, vec![20; 3]);
        let out = side_by_side(&[&a, &b], 4);
        assert_eq!((out.width, out.height), (8, 4));
        assert_eq!(out.pixel(0, 0), &[10, 10, 10]);
        assert_eq!(out.pixel(4, 3), &[20, 20, 20]);
    }
}
