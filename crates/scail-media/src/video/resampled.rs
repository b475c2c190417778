//! Decoding onto a fixed-rate timeline: every output frame shows the source frame nearest its
//! time, and the whole-clip variant decodes ahead on its own thread.

use std::path::Path;
use std::sync::Arc;

use super::open::{FramePool, VideoDecoder, POOL_MAX};
use super::{DecodeOptions, VideoFrame, VideoInfo};
use crate::error::{MediaError, Result};
use crate::frame::ImageU8;
use crate::timing::FpsResampler;

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
    use std::path::PathBuf;

    fn media_dir() -> PathBuf {
        scail_testdata::media_dir()
    }

    #[test]
    fn pipelined_decode_resize_equals_frame_by_frame() {
        // A source off the 16 fps timeline (repeated and dropped frames), at reduced decode
        // size to stay quick: the decode thread, shared frames, buffer recycling and the
        // planned resizer must give exactly the frames of the plain path. The clip is the
        // media folder's first (by name) not at 16 fps, else its first: no file is assumed.
        let opts = DecodeOptions {
            max_output: Some((320, 320)),
            ..Default::default()
        };
        let mut clips: Vec<PathBuf> = std::fs::read_dir(media_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
            .collect();
        clips.sort();
        let off_rate = |p: &&PathBuf| {
            VideoDecoder::open(p, &opts).is_ok_and(|d| (d.info().fps - 16.0).abs() > 1e-6)
        };
        let clip = clips
            .iter()
            .find(off_rate)
            .or(clips.first())
            .expect("an mp4 in the media folder")
            .clone();
        let (fast, summary) = decode_frames(&clip, &opts, 16, Some((128, 224))).unwrap();
        let mut plain = Vec::new();
        decode_resampled(&clip, &opts, 16, |_, f| {
            let cc = crate::resize::cover_crop(f.image.height, f.image.width, 128, 224);
            plain.push(crate::resize::video_frame_resize_crop(&f.image, &cc));
            Ok(())
        })
        .unwrap();
        assert_eq!(fast.len() as u64, summary.output_frames);
        assert!(!fast.is_empty(), "{}: no frames", clip.display());
        assert_eq!(fast, plain);
    }
}
