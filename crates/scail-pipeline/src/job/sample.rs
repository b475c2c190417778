//! The model stages of a job: umT5 and CLIP encode, then sampling per segment with the VAE
//! decode, progress reported per step with one ETA over the remaining segments.

use candle_core::{DType, Device, Tensor};
use scail_core::generator::{EtaClock, LogLevel, Progress, ProgressUpdate};
use scail_core::schema::Mode;
use scail_media::frame::ImageF32;
use scail_media::resize;
use scail_stagea::stagea::StageAOutput;
use scail_stagea::RgbImage;

use super::decode::Decoded;
use super::{JobRequest, Laps};
use crate::models::Models;
use crate::noise::NoiseGen;
use crate::segments::{sample_video, Conditioning, Hooks, PixelInputs, SamplingOptions};
use crate::Result;

/// The decoded video `[3, T, H, W]` in [-1, 1], and the last segment's final latent.
pub(super) struct Sampled {
    pub video: Tensor,
    pub last_latent: Option<Tensor>,
}

pub(super) fn run(
    models: &Models,
    req: &JobRequest,
    d: &Decoded,
    stagea: &StageAOutput,
    progress: &dyn Progress,
    laps: &mut Laps,
) -> Result<Sampled> {
    let (i, run) = (&req.input, &req.run);
    // Encoders: umT5 for the prompt and the empty negative prompt, CLIP on the reference. In a
    // one-job run each is freed after its encode, before the DiT is loaded.
    let ctx = models.encode_text(&[&i.prompt, ""])?;
    laps.lap("text_encode");
    let dev = models.opts.device.clone();
    let clip_in = resize::clip_preprocess(&d.ref_model);
    let clip_px = Tensor::from_vec(clip_in.data.clone(), clip_in.shape.as_slice(), &dev)?;
    let clip_fea = models.encode_image(&clip_px)?;
    laps.lap("clip_encode");
    let dit = models.dit()?;

    let pixels = PixelInputs {
        ref_image: hwc_to_chw(&d.ref_model, &Device::Cpu)?,
        ref_mask: frames_tensor(
            std::slice::from_ref(&stagea.reference_mask),
            resize::normalize_image_u8,
            true,
        )?
        .squeeze(1)?,
        // Kept as u8 and normalised per segment by the sampler.
        pose_video: frames_u8(&stagea.driving_video, false)?,
        driving_mask: frames_u8(&stagea.driving_mask, true)?,
    };
    let cond = Conditioning {
        context: ctx[0].clone(),
        context_null: ctx[1].clone(),
        clip_fea,
    };
    let opts = SamplingOptions {
        solver: i.sampler.into(),
        steps: i.num_inference_steps as usize,
        shift: i.shift,
        guidance: i.guidance_scale,
        replace: i.mode == Mode::Replacement,
        round_history_bf16: dit.dtype() == DType::BF16,
        color_match: run.color_match,
        segment_len: run.segment_len,
        segment_overlap: run.segment_overlap,
        ..SamplingOptions::default()
    };
    let mut hooks = ProgressHooks {
        p: progress,
        clock: EtaClock::default(),
        segments: 1,
        latent: None,
    };
    let mut noise = NoiseGen::new(req.seed);
    let video = sample_video(
        dit,
        &models.vae,
        &pixels,
        &cond,
        &opts,
        &mut noise,
        &mut hooks,
    )?;
    laps.lap("sampling_and_decode");
    Ok(Sampled {
        video,
        last_latent: hooks.latent,
    })
}

/// HWC float image → `[C, H, W]`.
fn hwc_to_chw(img: &ImageF32, dev: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        img.to_chw(),
        (img.channels, img.height, img.width),
        dev,
    )?)
}

/// RGB8 frames → `[T, 3, H, W]` (or `[3, T, H, W]` with `channels_first`) with `norm`.
fn frames_tensor(frames: &[RgbImage], norm: fn(u8) -> f32, channels_first: bool) -> Result<Tensor> {
    let t = frames_u8(frames, channels_first)?;
    let v: Vec<f32> = t
        .flatten_all()?
        .to_vec1::<u8>()?
        .into_iter()
        .map(norm)
        .collect();
    Ok(Tensor::from_vec(v, t.dims(), &Device::Cpu)?)
}

/// RGB8 frames → u8 `[T, 3, H, W]` (or `[3, T, H, W]`).
fn frames_u8(frames: &[RgbImage], channels_first: bool) -> Result<Tensor> {
    let t = frames.len();
    let (w, h) = (frames[0].width, frames[0].height);
    let mut data = vec![0u8; 3 * t * h * w];
    for (f, img) in frames.iter().enumerate() {
        for (i, px) in img.data.chunks_exact(3).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                let idx = if channels_first {
                    (c * t + f) * h * w + i
                } else {
                    (f * 3 + c) * h * w + i
                };
                data[idx] = v;
            }
        }
    }
    let shape = if channels_first {
        (3, t, h, w)
    } else {
        (t, 3, h, w)
    };
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

/// Adapts sampling hooks to job progress, with an ETA over this and the remaining segments,
/// and keeps the last segment's final latent (for reproducibility checks).
struct ProgressHooks<'a> {
    p: &'a dyn Progress,
    clock: EtaClock,
    segments: usize,
    latent: Option<Tensor>,
}

impl Hooks for ProgressHooks<'_> {
    fn record(&mut self, name: &str, t: &Tensor) {
        if name.ends_with("_final_latent") {
            self.latent = Some(t.clone());
        }
    }
    fn segment(&mut self, index: usize, count: usize, start: usize, end: usize) {
        self.clock.restart();
        self.segments = count;
        self.p.log(
            LogLevel::Info,
            &format!(
                "segment {}/{count}: driving frames [{start}, {end})",
                index + 1
            ),
        );
    }
    fn step(&mut self, index: usize, done: usize, total: usize) {
        // Remaining steps of this segment and of the segments after it.
        let left = (total - done) + (self.segments - index - 1) * total;
        self.p.progress(&ProgressUpdate {
            stage: format!("segment {}/{}", index + 1, self.segments),
            done: done as u64,
            total: total as u64,
            eta_s: self.clock.eta(done as u64, left as u64),
        });
    }
    fn cancelled(&self) -> bool {
        self.p.is_cancelled()
    }
}
