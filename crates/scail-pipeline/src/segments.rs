//! The sampling core of `SCAIL2Pipeline.generate()`: reference and mask latents, segments with
//! clean history, classifier-free guidance, the solver loop and VAE decode.
//!
//! Inputs are pixel tensors already cropped to the target size and normalised to [-1, 1]; text
//! and CLIP features are already encoded. Everything the reference records in the `e2e_*`
//! fixtures is handed to [`Hooks::record`] under the fixture's names (without `out.`).

use candle_core::{DType, Device, Tensor};
use scail_core::schema::defaults;
use scail_media::frame::Tensor as HostTensor;
use scail_media::{mask, resize};
use scail_model::dit::{self, Dit, DitInputs};
use scail_model::vae::WanVae;

use crate::noise::NoiseGen;
use crate::sampler::{self, SolverKind};
use crate::{PipelineError, Result};

/// Sampling settings of one job.
#[derive(Debug, Clone)]
pub struct SamplingOptions {
    pub solver: SolverKind,
    pub steps: usize,
    pub shift: f64,
    /// Classifier-free guidance scale; the unconditional forward is skipped when <= 1.
    pub guidance: f64,
    /// Pixel frames per segment (81 in the released model).
    pub segment_len: usize,
    /// Pixel frames shared with the previous segment as clean history (5).
    pub segment_overlap: usize,
    /// Replacement mode (reference RoPE shift).
    pub replace: bool,
    /// Round history pixels to bf16 before re-encoding, as the reference does under bf16.
    pub round_history_bf16: bool,
    /// Match each later segment's per-channel colour statistics to the first segment's.
    pub color_match: bool,
    /// `true`: the reference's segment rule (tail frames dropped, 4k+1 truncation);
    /// `false`: every frame covered (last segment padded with its last frame, output trimmed).
    pub reference_segments: bool,
    /// Activation memory (bytes, [`Dit::activation_bytes`]) the conditional and unconditional
    /// branches may use together: when guidance is on and both fit, they run as one batch of
    /// two; otherwise as two forwards. 0 always runs two forwards.
    pub guidance_batch_bytes: u64,
}

/// Default [`SamplingOptions::guidance_batch_bytes`]: 8 GiB of activations.
pub const DEFAULT_GUIDANCE_BATCH_BYTES: u64 = 8 << 30;

/// Whether the sampling loop runs the guidance branches of `inp` as one batch under `opts`.
pub fn batched_guidance(dit: &Dit, inp: &DitInputs, opts: &SamplingOptions) -> Result<bool> {
    // The same rule the memory estimate applies before the job starts.
    let branches = scail_model::memory::guidance_branches(
        dit.config(),
        dit.seq_len(inp)?,
        opts.guidance,
        opts.guidance_batch_bytes,
    );
    Ok(branches == 2)
}

impl Default for SamplingOptions {
    fn default() -> Self {
        Self {
            solver: SolverKind::UniPc,
            steps: defaults::NUM_INFERENCE_STEPS as usize,
            shift: defaults::SHIFT,
            guidance: defaults::GUIDANCE_SCALE,
            segment_len: 81,
            segment_overlap: 5,
            replace: false,
            round_history_bf16: false,
            color_match: false,
            reference_segments: false,
            guidance_batch_bytes: DEFAULT_GUIDANCE_BATCH_BYTES,
        }
    }
}

/// Pixel inputs at the target size, in [-1, 1].
#[derive(Debug, Clone)]
pub struct PixelInputs {
    /// Reference image `[3, H, W]`.
    pub ref_image: Tensor,
    /// Reference mask image `[3, H, W]`.
    pub ref_mask: Tensor,
    /// Driving ("pose") video `[T, 3, H, W]`: f32 in [-1, 1], or u8 (normalised per segment
    /// with `(x - 127.5) / 127.5`, so long videos are held at a quarter of the memory).
    pub pose_video: Tensor,
    /// Driving mask video `[3, T, H, W]`, f32 or u8 as `pose_video`.
    pub driving_mask: Tensor,
}

/// Encoded conditioning shared by all segments.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// umT5 features of the prompt `[L, text_dim]`.
    pub context: Tensor,
    /// umT5 features of the negative prompt (the empty string) `[L', text_dim]`.
    pub context_null: Tensor,
    /// CLIP features `[1, N, 1280]`.
    pub clip_fea: Tensor,
}

/// Where initial noise comes from: the seeded generator, or injected tensors in tests.
pub trait NoiseSource {
    fn noise(&mut self, segment: usize, shape: &[usize], device: &Device) -> Result<Tensor>;
}

impl NoiseSource for NoiseGen {
    fn noise(&mut self, _segment: usize, shape: &[usize], device: &Device) -> Result<Tensor> {
        Ok(self.tensor(shape, device)?)
    }
}

/// Observation and control of a run. All methods have no-op defaults.
pub trait Hooks {
    /// An intermediate tensor under its fixture name (e.g. `seg0_noise_pred_cond` once per step).
    fn record(&mut self, _name: &str, _t: &Tensor) {}
    /// Segment `index` of `count` starts; it covers driving frames `[start, end)`.
    fn segment(&mut self, _index: usize, _count: usize, _start: usize, _end: usize) {}
    /// Step `done` of `total` of segment `index` finished.
    fn step(&mut self, _index: usize, _done: usize, _total: usize) {}
    /// A stage of the job (e.g. "vae_decode") starts.
    fn stage(&mut self, _name: &str) {}
    /// Checked before every model forward.
    fn cancelled(&self) -> bool {
        false
    }
}

/// No observation.
pub struct NoHooks;
impl Hooks for NoHooks {}

/// One segment: frame indices into the driving video (indices past the end repeat the last
/// frame) and how many leading output frames to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub start: usize,
    /// Frames sampled (4k+1).
    pub len: usize,
    /// Leading frames dropped from the output (the history overlap; 0 for the first).
    pub skip: usize,
}

/// The segment plan for `total` driving frames.
///
/// Reference rule: one segment truncated to 4k+1 when `total <= segment_len`; otherwise windows
/// of `segment_len` every `segment_len - overlap` frames while they fit (the tail is dropped).
/// Our rule (`reference = false`): the same windows, but a last window starting before the end
/// is always added and padded to 4k+1, so every frame is covered; short clips are padded to 4k+1.
pub fn plan_segments(
    total: usize,
    segment_len: usize,
    overlap: usize,
    reference: bool,
) -> Result<Vec<Segment>> {
    if segment_len == 0 || !(segment_len - 1).is_multiple_of(4) {
        return Err(PipelineError::Input(format!(
            "segment length {segment_len} is not 4k+1"
        )));
    }
    if overlap == 0 || overlap >= segment_len {
        return Err(PipelineError::Input(format!(
            "segment overlap {overlap} must be in (0, {segment_len})"
        )));
    }
    if total == 0 {
        return Err(PipelineError::Input(
            "the driving video has no frames".into(),
        ));
    }
    let pad = |n: usize| 1 + (n - 1).div_ceil(4) * 4;
    if total <= segment_len {
        let len = if reference {
            1 + (total - 1) / 4 * 4
        } else {
            pad(total)
        };
        return Ok(vec![Segment {
            start: 0,
            len,
            skip: 0,
        }]);
    }
    let stride = segment_len - overlap;
    let mut segs = Vec::new();
    let mut start = 0;
    while start + segment_len <= total {
        segs.push(Segment {
            start,
            len: segment_len,
            skip: if start == 0 { 0 } else { overlap },
        });
        start += stride;
    }
    let covered = segs.last().map(|s| s.start + s.len).unwrap_or(0);
    if !reference && covered < total {
        // The next window starts `overlap` frames before the covered end; pad it to 4k+1.
        let start = covered - overlap;
        segs.push(Segment {
            start,
            len: pad(total - start).max(pad(overlap + 1)),
            skip: overlap,
        });
    }
    Ok(segs)
}

fn to_host(t: &Tensor) -> Result<HostTensor> {
    let t = t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
    Ok(HostTensor::new(
        t.dims().to_vec(),
        t.flatten_all()?.to_vec1::<f32>()?,
    ))
}

fn from_host(t: &HostTensor, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(&t.data, t.shape.as_slice(), device)?)
}

/// Frames `[start, start+len)` of axis `axis`, indices past the end repeating the last frame.
fn take_frames(t: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let total = t.dim(axis)?;
    let avail = total.saturating_sub(start).min(len);
    let body = t.narrow(axis, start, avail)?;
    if avail == len {
        return Ok(body);
    }
    let last = t.narrow(axis, total - 1, 1)?;
    let mut parts = vec![body];
    parts.extend(std::iter::repeat_n(last, len - avail));
    Ok(Tensor::cat(&parts, axis)?)
}

/// u8 video samples → `(x - 127.5) / 127.5` in f32 (the reference's exact arithmetic, which the
/// mask threshold depends on); f32 input is returned as is.
fn video_to_f32(t: &Tensor) -> Result<Tensor> {
    if t.dtype() != DType::U8 {
        return Ok(t.to_dtype(DType::F32)?);
    }
    let v: Vec<f32> = t
        .flatten_all()?
        .to_vec1::<u8>()?
        .into_iter()
        .map(resize::normalize_video_u8)
        .collect();
    Ok(Tensor::from_vec(v, t.dims(), t.device())?)
}

/// Per-channel mean and std of a `[3, T, H, W]` video.
fn channel_stats(v: &Tensor) -> Result<(Tensor, Tensor)> {
    let c = v.dim(0)?;
    let flat = v.reshape((c, ()))?;
    let mean = flat.mean_keepdim(1)?;
    let var = flat.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)?;
    Ok((mean, var.sqrt()?))
}

/// Shifts and scales each channel of `v` to the given statistics (colour drift correction).
fn match_colors(v: &Tensor, target: &(Tensor, Tensor)) -> Result<Tensor> {
    let dims = v.dims().to_vec();
    let c = dims[0];
    let (m, s) = channel_stats(v)?;
    let flat = v.reshape((c, ()))?;
    let out = flat
        .broadcast_sub(&m)?
        .broadcast_div(&(s + 1e-6)?)?
        .broadcast_mul(&target.1)?
        .broadcast_add(&target.0)?;
    Ok(out.reshape(dims)?.clamp(-1f32, 1f32)?)
}

/// `latent[:, :h] = history` (no-op without history).
fn apply_history(latent: &Tensor, history: Option<&Tensor>) -> Result<Tensor> {
    let Some(h) = history else {
        return Ok(latent.clone());
    };
    let ht = h.dim(1)?.min(latent.dim(1)?);
    let t = latent.dim(1)?;
    if ht == t {
        return Ok(h.narrow(1, 0, t)?.clone());
    }
    Ok(Tensor::cat(
        &[h.narrow(1, 0, ht)?, latent.narrow(1, ht, t - ht)?],
        1,
    )?)
}

/// Runs the whole sampling job: returns the video `[3, T_out, H, W]` in [-1, 1], T_out the
/// driving frame count under our segment rule (or the reference's count with
/// `reference_segments`).
#[allow(clippy::too_many_arguments)]
pub fn sample_video(
    dit: &Dit,
    vae: &WanVae,
    inputs: &PixelInputs,
    cond: &Conditioning,
    opts: &SamplingOptions,
    noise: &mut dyn NoiseSource,
    hooks: &mut dyn Hooks,
) -> Result<Tensor> {
    let dev = dit.device().clone();
    let vdev = vae.device().clone();
    let f32d =
        |t: &Tensor, d: &Device| -> Result<Tensor> { Ok(t.to_dtype(DType::F32)?.to_device(d)?) };
    let total = inputs.pose_video.dim(0)?;
    if inputs.driving_mask.dim(1)? != total {
        return Err(PipelineError::Input(format!(
            "pose video has {total} frames but the driving mask video has {}",
            inputs.driving_mask.dim(1)?
        )));
    }
    let segments = plan_segments(
        total,
        opts.segment_len,
        opts.segment_overlap,
        opts.reference_segments,
    )?;

    hooks.stage("vae_encode");
    let ref_img = f32d(&inputs.ref_image, &vdev)?.unsqueeze(1)?; // [3, 1, H, W]
    let ref_latent = f32d(&vae.encode(&ref_img)?, &dev)?;
    hooks.record("ref_latent", &ref_latent);
    let ref_mask_host = to_host(&inputs.ref_mask.unsqueeze(1)?)?;
    let ref_mask_latent = from_host(&mask::compress_mask(&ref_mask_host, 1)?, &dev)?;
    hooks.record("ref_mask_latent_28ch", &ref_mask_latent);
    let (lat_c, _, lat_h, lat_w) = ref_latent.dims4()?;

    let context = f32d(&cond.context, &dev)?;
    let context_null = f32d(&cond.context_null, &dev)?;
    let clip_fea = f32d(&cond.clip_fea, &dev)?;

    let mut outputs: Vec<Tensor> = Vec::with_capacity(segments.len());
    let mut prev_history: Option<Tensor> = None;
    let mut first_stats: Option<(Tensor, Tensor)> = None;
    let n_seg = segments.len();
    for (k, seg) in segments.iter().enumerate() {
        hooks.segment(k, n_seg, seg.start, (seg.start + seg.len).min(total));
        let p = |n: &str| format!("seg{k}_{n}");
        let mut sched = sampler::build(opts.solver, opts.steps, opts.shift)?;
        let ts = Tensor::new(sched.timesteps(), &Device::Cpu)?;
        hooks.record(&p("timesteps"), &ts);
        hooks.record(
            &p("sigmas"),
            &Tensor::new(sched.schedule().sigmas.as_slice(), &Device::Cpu)?,
        );

        // Pose stream: bilinear x0.5 of [T, 3, H, W], then [3, T, H/2, W/2] into the VAE.
        hooks.stage("vae_encode");
        let pose = video_to_f32(&take_frames(&inputs.pose_video, 0, seg.start, seg.len)?)?;
        let pose_half = from_host(&resize::half_bilinear(&to_host(&pose)?), &vdev)?
            .permute((1, 0, 2, 3))?
            .contiguous()?;
        hooks.record(&p("pose_video_half"), &pose_half);
        let pose_latent = f32d(&vae.encode(&pose_half)?, &dev)?;
        hooks.record(&p("pose_latent"), &pose_latent);
        let lat_t = pose_latent.dim(1)?;

        let ref_masks = Tensor::cat(
            &[
                ref_mask_latent.clone(),
                Tensor::zeros(
                    (ref_mask_latent.dim(0)?, lat_t, lat_h, lat_w),
                    DType::F32,
                    &dev,
                )?,
            ],
            1,
        )?;
        hooks.record(&p("ref_masks"), &ref_masks);

        let dm = video_to_f32(&take_frames(&inputs.driving_mask, 1, seg.start, seg.len)?)?;
        let dm_half = resize::half_bilinear(&to_host(&dm)?);
        hooks.record(&p("driving_mask_half"), &from_host(&dm_half, &Device::Cpu)?);
        let driving_masks = from_host(&mask::compress_mask(&dm_half, 1)?, &dev)?;
        hooks.record(&p("driving_masks_28ch"), &driving_masks);

        let (history, history_mask) = match &prev_history {
            None => (None, None),
            Some(px) => {
                let px = if opts.round_history_bf16 {
                    px.to_dtype(DType::BF16)?.to_dtype(DType::F32)?
                } else {
                    px.clone()
                };
                let h = f32d(&vae.encode(&px.to_device(&vdev)?)?, &dev)?;
                let ht = h.dim(1)?.min(lat_t);
                let hm = dit::history_mask(ht, (lat_t, lat_h, lat_w), &dev)?;
                hooks.record(&p("history_latent"), &h);
                hooks.record(&p("history_mask"), &hm);
                (Some(h), Some(hm))
            }
        };

        let n = noise.noise(k, &[lat_c, lat_t, lat_h, lat_w], &dev)?;
        hooks.record(&p("noise"), &n);
        let mut latent = apply_history(&n, history.as_ref())?;
        let steps = sched.timesteps().len();
        hooks.stage("sampling");
        for i in 0..steps {
            if hooks.cancelled() {
                return Err(PipelineError::Cancelled);
            }
            let t = sched.timesteps()[i] as f64;
            let lmi = apply_history(&latent, history.as_ref())?;
            hooks.record(&p("latent_model_input"), &lmi);
            let cond_in = DitInputs {
                x: &lmi,
                t,
                context: &context,
                clip_fea: &clip_fea,
                ref_latents: &ref_latent,
                ref_masks: &ref_masks,
                pose_latents: &pose_latent,
                driving_masks: &driving_masks,
                history_mask: history_mask.as_ref(),
                additional_refs: None,
                replace: opts.replace,
            };
            let (cond_v, unc) = if batched_guidance(dit, &cond_in, opts)? {
                let mut both = dit.forward_batch(&cond_in, &[&context, &context_null])?;
                let unc = both.pop().expect("two branches").to_dtype(DType::F32)?;
                (
                    both.pop().expect("two branches").to_dtype(DType::F32)?,
                    Some(unc),
                )
            } else {
                (dit.forward(&cond_in)?.to_dtype(DType::F32)?, None)
            };
            hooks.record(&p("noise_pred_cond"), &cond_v);
            let pred = if opts.guidance <= 1.0 {
                cond_v
            } else {
                let unc = match unc {
                    Some(u) => u,
                    None => {
                        if hooks.cancelled() {
                            return Err(PipelineError::Cancelled);
                        }
                        dit.forward(&DitInputs {
                            context: &context_null,
                            ..cond_in
                        })?
                        .to_dtype(DType::F32)?
                    }
                };
                hooks.record(&p("noise_pred_uncond"), &unc);
                (&unc + (cond_v - &unc)?.affine(opts.guidance, 0.0)?)?
            };
            hooks.record(&p("noise_pred_cfg"), &pred);
            let out = sched.step(&pred, &lmi)?;
            hooks.record(&p("x0_pred"), &out.x0);
            // Recorded as the scheduler returns it, before the history frames are restored.
            hooks.record(&p("latent_after_step"), &out.prev_sample);
            latent = apply_history(&out.prev_sample, history.as_ref())?;
            hooks.step(k, i + 1, steps);
        }
        hooks.record(&p("final_latent"), &latent);

        hooks.stage("vae_decode");
        let mut video = vae
            .decode(&latent.to_device(&vdev)?)?
            .to_device(&Device::Cpu)?;
        if opts.color_match {
            match &first_stats {
                None => first_stats = Some(channel_stats(&video)?),
                Some(st) => video = match_colors(&video, st)?,
            }
        }
        if k + 1 < n_seg {
            let f = video.dim(1)?;
            prev_history = Some(
                video
                    .narrow(1, f - opts.segment_overlap, opts.segment_overlap)?
                    .contiguous()?,
            );
        }
        let f = video.dim(1)?;
        outputs.push(video.narrow(1, seg.skip, f - seg.skip)?);
    }
    let video = Tensor::cat(&outputs, 1)?;
    let keep = if opts.reference_segments {
        video.dim(1)?
    } else {
        total.min(video.dim(1)?)
    };
    Ok(video.narrow(1, 0, keep)?.contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_segments_match_official_rule() {
        // 13 frames, 9/5: [0,9) and [4,13).
        let s = plan_segments(13, 9, 5, true).unwrap();
        assert_eq!(
            s,
            vec![
                Segment {
                    start: 0,
                    len: 9,
                    skip: 0
                },
                Segment {
                    start: 4,
                    len: 9,
                    skip: 5
                }
            ]
        );
        // Short clip: truncated to 4k+1.
        assert_eq!(
            plan_segments(12, 81, 5, true).unwrap(),
            vec![Segment {
                start: 0,
                len: 9,
                skip: 0
            }]
        );
        // 200 frames: windows at 0, 76 fit; 152+81 > 200 -> tail dropped.
        let s = plan_segments(200, 81, 5, true).unwrap();
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn colour_matching_takes_the_first_segments_statistics() {
        let dev = Device::Cpu;
        let a = Tensor::rand(-0.5f32, 0.5, (3, 5, 4, 4), &dev).unwrap();
        let b = (Tensor::rand(-0.2f32, 0.2, (3, 5, 4, 4), &dev).unwrap() + 0.3).unwrap();
        let target = channel_stats(&a).unwrap();
        let m = match_colors(&b, &target).unwrap();
        let (mm, ms) = channel_stats(&m).unwrap();
        let d = |x: &Tensor, y: &Tensor| {
            (x - y)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(d(&mm, &target.0) < 1e-4 && d(&ms, &target.1) < 1e-3);
        // Before matching, the means were clearly apart.
        assert!(d(&channel_stats(&b).unwrap().0, &target.0) > 0.1);
    }

    #[test]
    fn our_segments_cover_every_frame() {
        for total in [1usize, 2, 9, 12, 80, 81, 82, 157, 158, 200, 500] {
            let segs = plan_segments(total, 81, 5, false).unwrap();
            let mut out = 0;
            for (i, s) in segs.iter().enumerate() {
                assert_eq!((s.len - 1) % 4, 0, "{total}: len {} not 4k+1", s.len);
                assert!(s.len <= 81);
                if i > 0 {
                    assert_eq!(
                        s.start + s.skip,
                        out,
                        "{total}: segment {i} does not continue the output"
                    );
                    assert!(s.len > s.skip);
                }
                out += s.len - s.skip;
            }
            assert!(out >= total, "{total}: only {out} frames covered");
        }
    }
}
