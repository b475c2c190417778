//! Frame timing (DESIGN.md): the driving video is resampled to the model's 16 fps by timestamp
//! (nearest source frame, no blending); output frame k shows driving time k/16 s and the output
//! lasts the driving video's duration within one output frame.

/// The model's frame rate.
pub const MODEL_FPS: u32 = 16;

/// Output frames for a driving video of `duration_s` at `fps`: frames k with k/fps inside the
/// duration, i.e. `ceil(duration * fps)` (at least 1 for a non-empty video). A tiny slack
/// absorbs timestamp rounding (e.g. 65 frames at 16 fps = 4.0625 s must give 65, not 66).
pub fn output_frame_count(duration_s: f64, fps: u32) -> u64 {
    if duration_s <= 0.0 || !duration_s.is_finite() {
        return 0;
    }
    ((duration_s * fps as f64 - 1e-6).ceil() as u64).max(1)
}

/// Smallest 4k+1 frame count holding `n` frames (the generated length before trimming).
pub fn pad_to_4k1(n: u64) -> u64 {
    if n <= 1 {
        1
    } else {
        (n - 1).div_ceil(4) * 4 + 1
    }
}

/// Largest 4k+1 frame count not above `n` (the official CLI's truncation), 0 for 0.
pub fn truncate_to_4k1(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        (n - 1) / 4 * 4 + 1
    }
}

/// Latent frames for `n` = 4k+1 pixel frames.
pub fn latent_frames(n: u64) -> u64 {
    1 + n.saturating_sub(1) / 4
}

/// Which source frame each output frame shows, for source timestamps `pts_s` (seconds from the
/// start of the video, increasing) and the total duration: output k takes the source frame
/// whose timestamp is nearest to k/fps (ties to the earlier frame).
pub fn resample_indices(pts_s: &[f64], duration_s: f64, fps: u32) -> Vec<usize> {
    let mut r = FpsResampler::new(fps);
    let mut out = Vec::new();
    for (i, &t) in pts_s.iter().enumerate() {
        r.push(t, i, |f| out.push(f));
    }
    r.finish(duration_s, |f| out.push(f));
    out
}

/// Streaming nearest-timestamp resampler: holds at most one source frame, so memory stays
/// bounded whatever the video's length.
#[derive(Debug)]
pub struct FpsResampler<F> {
    fps: u32,
    next_k: u64,
    prev: Option<(f64, F)>,
}

impl<F: Clone> FpsResampler<F> {
    pub fn new(fps: u32) -> Self {
        FpsResampler {
            fps,
            next_k: 0,
            prev: None,
        }
    }

    fn target(&self) -> f64 {
        self.next_k as f64 / self.fps as f64
    }

    /// Output frames emitted so far.
    pub fn emitted(&self) -> u64 {
        self.next_k
    }

    /// Feed the next source frame (timestamps must not decrease; a frame with an earlier
    /// timestamp than the previous one is dropped). `emit` receives output frames in order.
    pub fn push(&mut self, pts_s: f64, frame: F, mut emit: impl FnMut(F)) {
        match self.prev.take() {
            None => {
                // The first frame covers every target up to its own timestamp.
                while self.target() <= pts_s {
                    emit(frame.clone());
                    self.next_k += 1;
                }
                self.prev = Some((pts_s, frame));
            }
            Some((ppts, pframe)) => {
                if pts_s < ppts {
                    self.prev = Some((ppts, pframe));
                    return;
                }
                while self.target() < pts_s {
                    let t = self.target();
                    if t - ppts <= pts_s - t {
                        emit(pframe.clone());
                    } else {
                        emit(frame.clone());
                    }
                    self.next_k += 1;
                }
                // A target exactly at this frame's time shows this frame.
                while self.target() <= pts_s {
                    emit(frame.clone());
                    self.next_k += 1;
                }
                self.prev = Some((pts_s, frame));
            }
        }
    }

    /// End of the source: the last frame fills the targets up to `duration_s`.
    pub fn finish(mut self, duration_s: f64, mut emit: impl FnMut(F)) {
        let total = output_frame_count(duration_s, self.fps);
        if let Some((_, f)) = self.prev.take() {
            while self.next_k < total {
                emit(f.clone());
                self.next_k += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(output_frame_count(65.0 / 16.0, 16), 65);
        assert_eq!(output_frame_count(106.0 / 30.0, 16), 57);
        assert_eq!(pad_to_4k1(57), 57);
        assert_eq!(pad_to_4k1(58), 61);
        assert_eq!(pad_to_4k1(1), 1);
        assert_eq!(truncate_to_4k1(64), 61);
        assert_eq!(latent_frames(81), 21);
    }

    #[test]
    fn same_rate_is_identity() {
        let pts: Vec<f64> = (0..65).map(|i| i as f64 / 16.0).collect();
        let idx = resample_indices(&pts, 65.0 / 16.0, 16);
        assert_eq!(idx, (0..65).collect::<Vec<_>>());
    }

    #[test]
    fn thirty_to_sixteen_is_nearest() {
        let pts: Vec<f64> = (0..106).map(|i| i as f64 / 30.0).collect();
        let idx = resample_indices(&pts, 106.0 / 30.0, 16);
        assert_eq!(idx.len(), 57);
        for (k, &i) in idx.iter().enumerate() {
            let t = k as f64 / 16.0;
            let best = (0..106)
                .min_by(|&a, &b| (pts[a] - t).abs().partial_cmp(&(pts[b] - t).abs()).unwrap())
                .unwrap();
            assert!((pts[i] - t).abs() <= (pts[best] - t).abs() + 1e-12, "k={k}");
        }
    }

    #[test]
    fn variable_frame_rate_uses_timestamps() {
        // A 1 s still then 8 frames at 8 fps: the still is repeated for its whole span.
        let mut pts = vec![0.0];
        pts.extend((0..8).map(|i| 1.0 + i as f64 / 8.0));
        let idx = resample_indices(&pts, 2.0, 16);
        assert_eq!(idx.len(), 32);
        assert!(idx[..8].iter().all(|&i| i == 0));
        assert_eq!(idx[16], 1);
        assert_eq!(idx[18], 2);
        assert_eq!(*idx.last().unwrap(), 8);
    }

    #[test]
    fn low_rate_source_is_repeated() {
        let pts: Vec<f64> = (0..8).map(|i| i as f64 / 4.0).collect();
        let idx = resample_indices(&pts, 2.0, 16);
        assert_eq!(idx.len(), 32);
        assert_eq!(idx[0], 0);
        assert_eq!(idx[4], 1);
        assert_eq!(idx[31], 7);
    }
}
