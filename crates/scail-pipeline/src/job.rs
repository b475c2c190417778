//! One whole job from files: reference image + driving video (+ optional masks / pose video)
//! → Stage A → encoders → sampling per segment → VAE decode → mp4 with the driving video's
//! timing and audio (DESIGN.md "Frame timing").

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use scail_core::generator::{EtaClock, LogLevel, Progress, ProgressUpdate};
use scail_core::schema::{DrivingType, Mode, ScailInput};
use scail_media::encode::{EncodeOptions, Mp4Writer};
use scail_media::frame::{ImageF32, ImageU8};
use scail_media::image_io::decode_image;
use scail_media::resize;
use scail_media::timing::MODEL_FPS;
use scail_media::video::{decode_resampled, DecodeOptions};
use scail_media::Limits;
use scail_stagea::stagea::{self as sa, Clip, StageAConfig, StageAInputs, StageAModels};
use scail_stagea::RgbImage;

use crate::models::Models;
use crate::noise::NoiseGen;
use crate::sampler::SolverKind;
use crate::segments::{sample_video, Conditioning, Hooks, PixelInputs, SamplingOptions};
use crate::{PipelineError, Result};

/// How this installation runs jobs: settings that are not part of the API request.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `(width, height)` overriding the request's resolution (multiples of 32), for experiments.
    pub size: Option<(u32, u32)>,
    pub solver: SolverKind,
    /// Match later segments' colours to the first (fights drift on long videos).
    pub color_match: bool,
    /// Pixel frames per segment (81 for the released model; smaller for tests) and the history
    /// overlap (5).
    pub segment_len: usize,
    pub segment_overlap: usize,
    /// Folder of the Stage A ONNX models (SAM3, DWPose), if any.
    pub stagea_dir: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        let s = SamplingOptions::default();
        RunOptions {
            size: None,
            solver: s.solver,
            color_match: false,
            segment_len: s.segment_len,
            segment_overlap: s.segment_overlap,
            stagea_dir: None,
        }
    }
}

/// One job: the validated request with its files local, the seed, how to run it, and where the
/// video goes (the Stage A videos are written beside it).
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub input: ScailInput<PathBuf>,
    pub seed: u64,
    pub run: RunOptions,
    pub out: PathBuf,
}

#[derive(Debug, Clone)]
pub struct JobOutput {
    pub video: PathBuf,
    pub preprocessing_video: Option<PathBuf>,
    pub preprocessing_mask_video: Option<PathBuf>,
    pub seed: u64,
    /// Frames written (16 fps) and the driving video's duration they cover.
    pub frames: usize,
    pub duration_s: f64,
    /// Seconds spent per stage, in order.
    pub timings: Vec<(String, f64)>,
    /// The final latent of the last segment (for reproducibility checks).
    pub last_latent: Option<Tensor>,
}

fn input_err(what: &str, e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Input(format!("{what}: {e}"))
}

/// A palette mask at the target size: the same cover-resize and centre crop as the image or
/// video it belongs to, but nearest-neighbour so palette colours stay exact.
fn mask_to_target(img: &ImageU8, h: usize, w: usize) -> Result<RgbImage> {
    let cc = resize::cover_crop(img.height, img.width, h, w);
    let big = img
        .take_channels(3)
        .resize_nearest(cc.resize_w, cc.resize_h);
    Ok(big.crop(cc.top, cc.left, h, w))
}

/// The subject mask of an RGBA reference with real transparency, cropped like the reference
/// (nearest on the alpha plane); None for opaque images.
fn reference_alpha(img: &ImageU8, h: usize, w: usize) -> Result<Option<scail_stagea::Mask>> {
    if img.channels != 4 {
        return Ok(None);
    }
    let alpha: Vec<u8> = img.data.chunks_exact(4).flat_map(|p| [p[3]; 3]).collect();
    let a = mask_to_target(&ImageU8::from_vec(img.width, img.height, 3, alpha), h, w)?;
    let rgba: Vec<u8> = a
        .data
        .chunks_exact(3)
        .flat_map(|p| [0, 0, 0, p[0]])
        .collect();
    scail_stagea::compose::mask_from_alpha(w as u32, h as u32, &rgba)
        .map_err(|e| input_err("reference alpha", e))
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

/// Decodes a video at 16 fps, every frame resized and centre-cropped to `(h, w)` (nearest for
/// palette masks).
fn decode_clip(
    path: &Path,
    h: usize,
    w: usize,
    what: &str,
    is_mask: bool,
) -> Result<(Vec<RgbImage>, f64, Option<f64>)> {
    let mut frames = Vec::new();
    let mut err = None;
    let summary = decode_resampled(path, &DecodeOptions::default(), MODEL_FPS, |_, f| {
        let img = &f.image;
        let cc = resize::cover_crop(img.height, img.width, h, w);
        let r = if is_mask {
            mask_to_target(img, h, w)
        } else {
            Ok(resize::video_frame_resize_crop(img, &cc))
        };
        match r {
            Ok(r) => frames.push(r),
            Err(e) => err = Some(e),
        }
        Ok(())
    })
    .map_err(|e| input_err(what, e))?;
    if let Some(e) = err {
        return Err(e);
    }
    if frames.is_empty() {
        return Err(PipelineError::Input(format!("{what} has no frames")));
    }
    Ok((
        frames,
        summary.duration_s,
        summary.info.audio.as_ref().map(|a| a.offset_s),
    ))
}

fn write_mp4(
    path: &Path,
    frames: impl Iterator<Item = ImageU8>,
    w: usize,
    h: usize,
    opts: &EncodeOptions,
) -> Result<()> {
    let mut wr = Mp4Writer::create(path, w, h, opts)?;
    for f in frames {
        wr.write(&f)?;
    }
    wr.finish()?;
    Ok(())
}

/// Stage A's per-frame steps as job progress (`preprocessing: segmentation` / `pose`), with
/// an ETA, and the job's cancel flag checked after every frame.
struct StageAHook<'a> {
    p: &'a dyn Progress,
    step: &'static str,
    clock: EtaClock,
}

impl sa::StageAProgress for StageAHook<'_> {
    fn frame(
        &mut self,
        step: &'static str,
        done: usize,
        total: usize,
    ) -> std::result::Result<(), scail_stagea::StageAError> {
        if step != self.step {
            self.step = step;
            self.clock.restart();
            self.p.log(
                LogLevel::Info,
                &format!("preprocessing: {step} on {total} frames"),
            );
        }
        self.p.progress(&ProgressUpdate {
            stage: format!("preprocessing: {step}"),
            done: done as u64,
            total: total as u64,
            eta_s: self.clock.eta(done as u64, (total - done) as u64),
        });
        if self.p.is_cancelled() {
            return Err(scail_stagea::StageAError::Cancelled);
        }
        Ok(())
    }
}

/// Adapts sampling hooks to job progress, with an ETA over this and the remaining segments.
struct ProgressHooks<'a> {
    p: &'a dyn Progress,
    clock: EtaClock,
    segments: usize,
}

impl Hooks for ProgressHooks<'_> {
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

fn stagea_models(
    i: &ScailInput<PathBuf>,
    run: &RunOptions,
    cfg: &StageAConfig,
) -> Result<StageAModels> {
    let mut models = StageAModels::default();
    let need_seg = i.reference_mask_url.is_none() || i.driving_mask_url.is_none();
    // A reference with real alpha needs no segmentation, so only the driving side is a must.
    let must_seg = i.driving_mask_url.is_none();
    let need_pose = i.driving_type == DrivingType::Pose && i.pose_video_url.is_none();
    // A model the request needs but this installation lacks is the operator's problem, not
    // the caller's: say what is missing, how to get it, and which inputs avoid it.
    let missing = |what: &str, path: Option<&Path>, instead: &str| {
        PipelineError::Weights(format!(
            "{what} needs {}: run `scail weights fetch --dest WEIGHTS` (or point --stagea-dir \
             at a folder holding it), or send {instead}",
            path.map_or(
                "the Stage A models (no Stage A folder is configured)".into(),
                |p| { format!("{}, which is missing", p.display()) }
            )
        ))
    };
    let seg_instead = "reference_mask_url and driving_mask_url";
    let pose_instead = "pose_video_url";
    let Some(dir) = &run.stagea_dir else {
        return match (must_seg, need_pose) {
            (true, _) => Err(missing("segmentation", None, seg_instead)),
            (_, true) => Err(missing("pose estimation", None, pose_instead)),
            _ => Ok(models),
        };
    };
    let rt = scail_stagea::runtime::RuntimeConfig::default();
    if need_seg {
        let files = scail_stagea::sam3::Sam3Files::in_dir(dir);
        if files.vision_encoder.is_file() {
            let seg = scail_stagea::sam3::Sam3Segmenter::load(&files, &cfg.prompts(), &rt)
                .map_err(|e| PipelineError::Weights(format!("segmentation model: {e}")))?;
            models.segmenter = Some(Box::new(seg));
        } else if must_seg {
            return Err(missing(
                "segmentation",
                Some(&files.vision_encoder),
                seg_instead,
            ));
        }
    }
    if need_pose {
        let dw = dir.join("dw-ll_ucoco_384.onnx");
        if !dw.is_file() {
            return Err(missing("pose estimation", Some(&dw), pose_instead));
        }
        let yolox = dir.join("yolox_l.onnx");
        let pose = scail_stagea::pose::PoseEstimator::load(
            yolox.is_file().then_some(yolox.as_path()),
            &dw,
            &rt,
        )
        .map_err(|e| PipelineError::Weights(format!("pose model: {e}")))?;
        models.pose = Some(pose);
    }
    Ok(models)
}

/// Runs one job and writes `req.out` (and the Stage A videos when asked).
pub fn run_job(models: &Models, req: &JobRequest, progress: &dyn Progress) -> Result<JobOutput> {
    let (i, run) = (&req.input, &req.run);
    let mut timings: Vec<(String, f64)> = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &str, timings: &mut Vec<(String, f64)>| {
        timings.push((name.to_string(), clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };
    // Stage A settings, checked before any decoding or model loading (animal + pose is refused).
    let cfg = StageAConfig::new(i.mode, i.driving_type, i.subject_type);
    cfg.validate()
        .map_err(|e| PipelineError::Input(format!("preprocessing: {e}")))?;
    // Reference and target size.
    let decoded =
        decode_image(&i.image_url, &Limits::default()).map_err(|e| input_err("image", e))?;
    let img = decoded.rgb();
    let (tw, th) = match run.size {
        Some((w, h)) => {
            if w % 32 != 0 || h % 32 != 0 || w == 0 || h == 0 {
                return Err(PipelineError::Input(format!(
                    "size {w}x{h}: both sides must be positive multiples of 32"
                )));
            }
            // An explicit size is used as given (no orientation swap).
            (w as usize, h as usize)
        }
        None => {
            let (w, h) = i
                .resolution
                .target_size(img.width as u32, img.height as u32);
            (w as usize, h as usize)
        }
    };
    let ref_model = resize::reference_image_to_model(&img, th, tw);
    let ref_u8 =
        resize::video_frame_resize_crop(&img, &resize::cover_crop(img.height, img.width, th, tw));
    progress.log(LogLevel::Info, &format!("target size {tw}x{th}"));

    // Driving video on the 16 fps timeline.
    let (driving, duration_s, audio_offset) =
        decode_clip(&i.video_url, th, tw, "driving video", false)?;
    let n = driving.len();
    progress.log(
        LogLevel::Info,
        &format!("driving video: {n} frames at {MODEL_FPS} fps, {duration_s:.3} s"),
    );
    lap("decode", &mut timings);

    // Stage A.
    if progress.is_cancelled() {
        return Err(PipelineError::Cancelled);
    }
    let mut sa_models = stagea_models(i, run, &cfg)?;
    // The reference mask is cover-cropped exactly like the reference image it describes.
    let reference_mask = match &i.reference_mask_url {
        Some(p) => Some(mask_to_target(
            &decode_image(p, &Limits::default())
                .map_err(|e| input_err("reference mask", e))?
                .rgb(),
            th,
            tw,
        )?),
        None => None,
    };
    let clip_of = |p: &Option<PathBuf>, what: &str| -> Result<Option<Clip>> {
        match p {
            None => Ok(None),
            Some(p) => {
                // Mask videos keep exact palette colours; a pose video is resized like a video.
                let (frames, _, _) = decode_clip(p, th, tw, what, what.contains("mask"))?;
                Ok(Some(Clip {
                    frames,
                    fps: MODEL_FPS as f64,
                }))
            }
        }
    };
    let inputs = StageAInputs {
        reference: ref_u8,
        reference_alpha: reference_alpha(&decoded.image, th, tw)?,
        driving: Clip {
            frames: driving,
            fps: MODEL_FPS as f64,
        },
        reference_mask,
        driving_mask: clip_of(&i.driving_mask_url, "driving mask video")?,
        pose_video: clip_of(&i.pose_video_url, "pose video")?,
    };
    let mut hook = StageAHook {
        p: progress,
        step: "",
        clock: EtaClock::default(),
    };
    let stagea = sa::run_stage_a_with(&cfg, &inputs, &mut sa_models, &mut hook).map_err(|e| {
        match e {
            scail_stagea::StageAError::Cancelled => PipelineError::Cancelled,
            // A model that will not load or run is the installation's fault, not the input's.
            e @ scail_stagea::StageAError::Runtime(_) => {
                PipelineError::Weights(format!("preprocessing model: {e}"))
            }
            e => PipelineError::Input(format!("preprocessing: {e}")),
        }
    })?;
    drop(inputs);
    lap("stage_a", &mut timings);

    // Encoders: umT5 for the prompt and the empty negative prompt, CLIP on the reference.
    let dev = models.dit.device().clone();
    let ctx = models.encode_text(&[&i.prompt, ""])?;
    lap("text_encode", &mut timings);
    let clip_in = resize::clip_preprocess(&ref_model);
    let clip_px = Tensor::from_vec(clip_in.data.clone(), clip_in.shape.as_slice(), &dev)?;
    let clip_fea = models.clip.forward(&clip_px)?.to_dtype(DType::F32)?;
    lap("clip_encode", &mut timings);

    let pixels = PixelInputs {
        ref_image: hwc_to_chw(&ref_model, &Device::Cpu)?,
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
        solver: run.solver,
        steps: i.num_inference_steps as usize,
        shift: i.shift,
        guidance: i.guidance_scale,
        replace: i.mode == Mode::Replacement,
        round_history_bf16: models.dit.dtype() == DType::BF16,
        color_match: run.color_match,
        segment_len: run.segment_len,
        segment_overlap: run.segment_overlap,
        ..SamplingOptions::default()
    };
    let mut hooks = ProgressHooks {
        p: progress,
        clock: EtaClock::default(),
        segments: 1,
    };
    let mut noise = NoiseGen::new(req.seed);
    let mut last_latent = LastLatent {
        hooks: &mut hooks,
        latent: None,
    };
    let video = sample_video(
        &models.dit,
        &models.vae,
        &pixels,
        &cond,
        &opts,
        &mut noise,
        &mut last_latent,
    )?;
    let latent = last_latent.latent.take();
    lap("sampling_and_decode", &mut timings);

    // Output at 16 fps with the driving video's duration and audio.
    let (_, t, h, w) = (video.dim(0)?, video.dim(1)?, video.dim(2)?, video.dim(3)?);
    let u8v = ((video.clamp(-1f32, 1f32)? + 1.0)? * 127.5)?
        .round()?
        .to_dtype(DType::U8)?
        .permute((1, 2, 3, 0))?
        .contiguous()?;
    let data = u8v.flatten_all()?.to_vec1::<u8>()?;
    let enc = EncodeOptions {
        fps: MODEL_FPS,
        audio_from: Some(i.video_url.clone()),
        audio_offset_s: audio_offset.unwrap_or(0.0),
        duration_s: Some(duration_s),
        ..EncodeOptions::default()
    };
    if let Some(parent) = req.out.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| input_err("output folder", e))?;
        }
    }
    let fsz = h * w * 3;
    write_mp4(
        &req.out,
        (0..t).map(|k| ImageU8::from_vec(w, h, 3, data[k * fsz..(k + 1) * fsz].to_vec())),
        w,
        h,
        &enc,
    )?;
    let (mut pre_v, mut pre_m) = (None, None);
    if i.output_preprocessing {
        let stem = req
            .out
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("output");
        let dir = req.out.parent().unwrap_or(Path::new("."));
        let pv = dir.join(format!("{stem}_preprocessing.mp4"));
        let pm = dir.join(format!("{stem}_preprocessing_mask.mp4"));
        let noaudio = EncodeOptions {
            audio_from: None,
            ..enc.clone()
        };
        write_mp4(&pv, stagea.driving_video.iter().cloned(), w, h, &noaudio)?;
        write_mp4(&pm, stagea.driving_mask.iter().cloned(), w, h, &noaudio)?;
        pre_v = Some(pv);
        pre_m = Some(pm);
    }
    lap("encode_mp4", &mut timings);
    Ok(JobOutput {
        video: req.out.clone(),
        preprocessing_video: pre_v,
        preprocessing_mask_video: pre_m,
        seed: req.seed,
        frames: t,
        duration_s,
        timings,
        last_latent: latent,
    })
}

/// Keeps the last segment's final latent while forwarding everything else.
struct LastLatent<'a, 'b> {
    hooks: &'a mut ProgressHooks<'b>,
    latent: Option<Tensor>,
}

impl Hooks for LastLatent<'_, '_> {
    fn record(&mut self, name: &str, t: &Tensor) {
        if name.ends_with("_final_latent") {
            self.latent = Some(t.clone());
        }
    }
    fn segment(&mut self, index: usize, count: usize, start: usize, end: usize) {
        self.hooks.segment(index, count, start, end)
    }
    fn step(&mut self, index: usize, done: usize, total: usize) {
        self.hooks.step(index, done, total)
    }
    fn cancelled(&self) -> bool {
        self.hooks.cancelled()
    }
}
