//! Decoding frame by frame: packets in, RGB24 frames in display orientation out, with
//! timestamps, corrupt-stream checks and reusable buffers.

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

use super::open::VideoDecoder;
use super::{VideoFrame, VideoInfo};
use crate::error::{MediaError, Result};
use crate::frame::ImageU8;

impl VideoDecoder {
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
}
