//! Stage A orchestration: reference and driving masks, masked driving video or skeleton
//! video, with the user-supplied mask and pose-video extensions.
//!
//! All frames handed in are expected at the model's input size (the caller's crop); user
//! masks and pose videos of another size or frame rate are resampled here.

use crate::compose::{colour_mask_frame, connected_components, decode_palette_mask, masked_frame};
use crate::dwpose::WholeBody;
use crate::frame::{dims, BBox, Mask, RgbImage};
use crate::palette::ModeMasks;
use crate::pose::{DetectionFrame, PoseEstimator};
use crate::sam3::Segmenter;
use crate::skeleton::render_skeleton;
use crate::track::{
    frame_candidates, order_left_to_right, track, SubjectTrack, SubjectTracks, TrackerConfig,
};
use crate::StageAError;
pub use scail_core::schema::{DrivingType, Mode, SubjectType};

/// Prompts for SAM3: the reference's `human`, `character` for people; animal words
/// otherwise (configurable through [`StageAConfig::prompts`]).
pub fn default_prompts(subject: SubjectType) -> Vec<String> {
    let words: &[&str] = match subject {
        SubjectType::Human => &["human", "character"],
        SubjectType::Animal => &["animal", "dog", "cat", "horse", "bird"],
    };
    words.iter().map(|s| s.to_string()).collect()
}

#[derive(Clone, Debug)]
pub struct StageAConfig {
    pub mode: Mode,
    pub driving_type: DrivingType,
    pub subject_type: SubjectType,
    /// Overrides [`default_prompts`].
    pub prompts: Option<Vec<String>>,
    pub tracker: TrackerConfig,
}

impl StageAConfig {
    pub fn new(mode: Mode, driving_type: DrivingType, subject_type: SubjectType) -> Self {
        Self {
            mode,
            driving_type,
            subject_type,
            prompts: None,
            tracker: TrackerConfig {
                max_subjects: mode.max_subjects(),
                ..TrackerConfig::default()
            },
        }
    }

    pub fn prompts(&self) -> Vec<String> {
        self.prompts
            .clone()
            .unwrap_or_else(|| default_prompts(self.subject_type))
    }

    /// Refuses what the reference cannot do (a 422 at the API).
    pub fn validate(&self) -> Result<(), StageAError> {
        if self.driving_type == DrivingType::Pose && self.subject_type == SubjectType::Animal {
            return Err(StageAError::PoseForAnimal);
        }
        Ok(())
    }
}

/// A decoded video: frames and their rate.
#[derive(Clone, Debug)]
pub struct Clip {
    pub frames: Vec<RgbImage>,
    pub fps: f64,
}

pub struct StageAInputs {
    /// The reference at the model's input size.
    pub reference: RgbImage,
    /// The reference's own subject mask when it has a real alpha channel
    /// ([`crate::compose::mask_from_alpha`]).
    pub reference_alpha: Option<Mask>,
    /// The driving video at the model's input size and rate.
    pub driving: Clip,
    /// Extension `reference_mask_url`: a palette-coded mask image.
    pub reference_mask: Option<RgbImage>,
    /// Extension `driving_mask_url`: a palette-coded mask video.
    pub driving_mask: Option<Clip>,
    /// Extension `pose_video_url`: a pre-rendered skeleton video.
    pub pose_video: Option<Clip>,
}

/// What Stage A hands to the model, and the debug videos.
#[derive(Clone, Debug)]
pub struct StageAOutput {
    /// Palette-coded reference mask on the mode's reference background.
    pub reference_mask: RgbImage,
    /// `preprocessing_mask_video`: palette-coded masks on the mode's driving background.
    pub driving_mask: Vec<RgbImage>,
    /// `preprocessing_video`: the masked driving video (end_to_end) or the skeleton
    /// render (pose); this is what drives the model.
    pub driving_video: Vec<RgbImage>,
    pub num_subjects: usize,
}

/// The models Stage A may need; what is missing must be covered by user inputs.
#[derive(Default)]
pub struct StageAModels {
    pub segmenter: Option<Box<dyn Segmenter>>,
    pub pose: Option<PoseEstimator>,
}

/// Hears about every frame of Stage A's per-frame steps (segmentation, pose), which take
/// seconds per frame on a CPU with the real models: `done` runs from 0 (the step starts)
/// to `total`. An error stops Stage A there (return [`StageAError::Cancelled`] to cancel).
pub trait StageAProgress {
    fn frame(&mut self, step: &'static str, done: usize, total: usize) -> Result<(), StageAError>;
}

/// No progress reporting, never cancels.
pub struct NoProgress;

impl StageAProgress for NoProgress {
    fn frame(&mut self, _: &'static str, _: usize, _: usize) -> Result<(), StageAError> {
        Ok(())
    }
}

/// Detects subjects on every frame and links them into tracks.
pub fn segment_video(
    seg: &mut dyn Segmenter,
    frames: &[RgbImage],
    cfg: &TrackerConfig,
) -> Result<SubjectTracks, StageAError> {
    segment_video_with(seg, frames, cfg, &mut NoProgress)
}

/// [`segment_video`], reporting each frame as step `segmentation`.
pub fn segment_video_with(
    seg: &mut dyn Segmenter,
    frames: &[RgbImage],
    cfg: &TrackerConfig,
    progress: &mut dyn StageAProgress,
) -> Result<SubjectTracks, StageAError> {
    let first = frames
        .first()
        .ok_or_else(|| StageAError::Invalid("the driving video has no frames".into()))?;
    let mut dets = Vec::with_capacity(frames.len());
    progress.frame("segmentation", 0, frames.len())?;
    for (i, f) in frames.iter().enumerate() {
        let found = seg.detect(f)?;
        // Colour signatures only for what the tracker keeps (a model may return many weak or
        // duplicate hits). A mask of the wrong size is left for `track` to report.
        if found
            .iter()
            .all(|d| (d.mask.width, d.mask.height) == dims(f))
        {
            let mut kept = frame_candidates(found, cfg);
            for d in kept.iter_mut().filter(|d| d.appearance.is_none()) {
                d.appearance = crate::track::appearance(f, &d.mask);
            }
            dets.push(kept);
        } else {
            dets.push(found);
        }
        progress.frame("segmentation", i + 1, frames.len())?;
    }
    let (w, h) = dims(first);
    track(w, h, dets, cfg)
}

/// The reference image's subjects, left to right: from its alpha channel when it has
/// one (split into connected parts of at least the minimum size), else segmented.
pub fn reference_subjects(
    seg: Option<&mut (dyn Segmenter + '_)>,
    reference: &RgbImage,
    alpha: Option<&Mask>,
    cfg: &TrackerConfig,
    prompts: &str,
) -> Result<Vec<Mask>, StageAError> {
    let subjects: Vec<Mask> = if let Some(a) = alpha {
        let mut parts: Vec<SubjectTrack> = connected_components(a)
            .into_iter()
            .filter(|m| m.coverage() >= cfg.min_coverage)
            .take(cfg.max_subjects)
            .map(|m| SubjectTrack {
                masks: vec![Some(m)],
                scores: vec![Some(1.0)],
            })
            .collect();
        order_left_to_right(&mut parts);
        parts
            .into_iter()
            .filter_map(|mut s| s.masks.remove(0))
            .collect()
    } else {
        let seg = seg.ok_or_else(|| {
            StageAError::Invalid(
                "no segmentation model loaded and no reference mask supplied".into(),
            )
        })?;
        let dets = seg.detect(reference)?;
        let (w, h) = dims(reference);
        let tr = track(w, h, vec![dets], cfg)?;
        tr.subjects
            .into_iter()
            .filter_map(|mut s| s.masks.remove(0))
            .collect()
    };
    if subjects.is_empty() {
        return Err(StageAError::NoSubject {
            what: "reference image",
            frames: String::new(),
            prompts: prompts.to_string(),
        });
    }
    Ok(subjects)
}

/// Frame `k` of the output (at `fps`) takes the source frame nearest in time. Refuses a
/// source that ends more than one source frame before the output does.
pub fn resample_clip(
    clip: &Clip,
    count: usize,
    fps: f64,
    what: &'static str,
) -> Result<Vec<RgbImage>, StageAError> {
    let n = clip.frames.len();
    if n == 0 || clip.fps <= 0.0 || fps <= 0.0 {
        return Err(StageAError::Invalid(format!(
            "{what} has no frames or no frame rate"
        )));
    }
    let needed = count as f64 / fps;
    let got = n as f64 / clip.fps;
    if got + 1.0 / clip.fps < needed - 1e-9 {
        return Err(StageAError::TooShort {
            what,
            got: n,
            got_secs: got,
            needed_secs: needed,
        });
    }
    Ok((0..count)
        .map(|k| {
            let i = ((k as f64 / fps) * clip.fps + 1e-9).round() as usize;
            clip.frames[i.min(n - 1)].clone()
        })
        .collect())
}

/// Every frame handed in must be RGB8: the kernels read three samples per pixel.
fn check_rgb_inputs(inputs: &StageAInputs) -> Result<(), StageAError> {
    let clips = [
        Some(&inputs.driving),
        inputs.driving_mask.as_ref(),
        inputs.pose_video.as_ref(),
    ];
    let frames = std::iter::once(&inputs.reference)
        .chain(inputs.reference_mask.as_ref())
        .chain(clips.into_iter().flatten().flat_map(|c| &c.frames));
    for f in frames {
        let want = f.width * f.height * 3;
        if f.channels != 3 || f.data.len() != want {
            return Err(StageAError::BadBuffer {
                what: "RGB frame",
                expected: want,
                got: f.data.len(),
            });
        }
    }
    Ok(())
}

fn fit_mask_image(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if dims(img) == (w, h) {
        img.clone()
    } else {
        // Nearest keeps palette colours exact.
        img.resize_nearest(w as usize, h as usize)
    }
}

/// Tracks from a palette-coded mask video: subject i is palette colour i.
pub fn tracks_from_mask_video(frames: &[RgbImage]) -> SubjectTracks {
    let decoded: Vec<Vec<Option<Mask>>> = frames.iter().map(decode_palette_mask).collect();
    let n_sub = decoded.iter().map(Vec::len).max().unwrap_or(0);
    // Palette slots empty in every frame are no subject (the reference mask drops them too,
    // so a red-only pair of masks counts one subject on both sides).
    let subjects = (0..n_sub)
        .filter(|&i| decoded.iter().any(|d| matches!(d.get(i), Some(Some(_)))))
        .map(|i| SubjectTrack {
            masks: decoded
                .iter()
                .map(|d| d.get(i).cloned().flatten())
                .collect(),
            scores: decoded
                .iter()
                .map(|d| d.get(i).and_then(|m| m.as_ref()).map(|_| 1.0))
                .collect(),
        })
        .collect();
    SubjectTracks {
        width: frames.first().map_or(0, |f| dims(f).0),
        height: frames.first().map_or(0, |f| dims(f).1),
        num_frames: frames.len(),
        subjects,
    }
}

/// Keypoints (frame pixels) per frame per subject, each subject estimated in its mask's
/// box on the frame resized to the reference's detection size ([`DetectionFrame`], once
/// per frame); keypoints landing away from the subject's mask are dropped (score 0) so
/// one subject's skeleton does not borrow another's limbs.
pub fn estimate_pose(
    pose: &mut PoseEstimator,
    frames: &[RgbImage],
    tracks: &SubjectTracks,
) -> Result<Vec<Vec<WholeBody>>, StageAError> {
    estimate_pose_with(pose, frames, tracks, &mut NoProgress)
}

/// [`estimate_pose`], reporting each frame as step `pose`.
pub fn estimate_pose_with(
    pose: &mut PoseEstimator,
    frames: &[RgbImage],
    tracks: &SubjectTracks,
    progress: &mut dyn StageAProgress,
) -> Result<Vec<Vec<WholeBody>>, StageAError> {
    let mut out = Vec::with_capacity(frames.len());
    for (t, frame) in frames.iter().enumerate() {
        progress.frame("pose", t, frames.len())?;
        let present: Vec<(&Mask, BBox)> = tracks
            .subjects
            .iter()
            .filter_map(|s| {
                let m = s.masks[t].as_ref()?;
                Some((m, m.bbox()?))
            })
            .collect();
        if present.is_empty() {
            // No subject in this frame: skip the resize too.
            out.push(Vec::new());
            continue;
        }
        let view = DetectionFrame::new(frame);
        let boxes: Vec<BBox> = present.iter().map(|&(_, b)| b).collect();
        let mut people = pose.estimate_at(&view, &boxes)?;
        for (body, &(m, _)) in people.iter_mut().zip(&present) {
            restrict_to_mask(body, m);
        }
        out.push(people);
    }
    progress.frame("pose", frames.len(), frames.len())?;
    Ok(out)
}

/// Zeroes the score of keypoints farther than 2% of the frame's long side from `mask`.
pub fn restrict_to_mask(body: &mut WholeBody, mask: &Mask) {
    let r = (mask.width.max(mask.height) as f32 * 0.02).ceil() as i64;
    for k in &mut body.keypoints {
        let (x, y) = (k.x.round() as i64, k.y.round() as i64);
        let inside = x >= 0
            && y >= 0
            && x < mask.width as i64
            && y < mask.height as i64
            && mask.near(x, y, r);
        if !inside {
            k.score = 0.0;
        }
    }
}

/// The skeleton video: every frame's people drawn on black.
pub fn render_pose_video(width: u32, height: u32, poses: &[Vec<WholeBody>]) -> Vec<RgbImage> {
    poses
        .iter()
        .map(|p| render_skeleton(width, height, p))
        .collect()
}

/// The whole of Stage A.
pub fn run_stage_a(
    cfg: &StageAConfig,
    inputs: &StageAInputs,
    models: &mut StageAModels,
) -> Result<StageAOutput, StageAError> {
    run_stage_a_with(cfg, inputs, models, &mut NoProgress)
}

/// [`run_stage_a`], reporting every frame of segmentation and pose estimation.
pub fn run_stage_a_with(
    cfg: &StageAConfig,
    inputs: &StageAInputs,
    models: &mut StageAModels,
    progress: &mut dyn StageAProgress,
) -> Result<StageAOutput, StageAError> {
    cfg.validate()?;
    check_rgb_inputs(inputs)?;
    let prompts = cfg.prompts().join(", ");
    let drv = &inputs.driving;
    let first = drv
        .frames
        .first()
        .ok_or_else(|| StageAError::Invalid("the driving video has no frames".into()))?;
    let (w, h) = dims(first);
    let (ref_w, ref_h) = dims(&inputs.reference);
    let n = drv.frames.len();

    // Driving subjects.
    let tracks = match &inputs.driving_mask {
        Some(clip) => {
            let frames: Vec<RgbImage> = resample_clip(clip, n, drv.fps, "driving mask video")?
                .iter()
                .map(|f| fit_mask_image(f, w, h))
                .collect();
            let mut t = tracks_from_mask_video(&frames);
            t.subjects.truncate(cfg.tracker.max_subjects);
            t
        }
        None => {
            let seg = models.segmenter.as_deref_mut().ok_or_else(|| {
                StageAError::Invalid(
                    "no segmentation model loaded and no driving mask supplied".into(),
                )
            })?;
            segment_video_with(seg, &drv.frames, &cfg.tracker, progress)?
        }
    };
    if tracks.subjects.is_empty() {
        let last = n.saturating_sub(1);
        let fps = drv.fps.max(1e-9);
        return Err(StageAError::NoSubject {
            what: "driving video",
            frames: format!(" in frames 0–{last} (0–{:.2} s)", last as f64 / fps),
            prompts,
        });
    }

    // Reference subjects.
    let ref_masks: Vec<Mask> = match &inputs.reference_mask {
        Some(img) => {
            let img = fit_mask_image(img, ref_w, ref_h);
            let masks: Vec<Mask> = decode_palette_mask(&img).into_iter().flatten().collect();
            if masks.is_empty() {
                return Err(StageAError::NoSubject {
                    what: "reference mask image",
                    frames: String::new(),
                    prompts: "none: supplied mask".into(),
                });
            }
            masks
        }
        None => reference_subjects(
            models.segmenter.as_deref_mut(),
            &inputs.reference,
            inputs.reference_alpha.as_ref(),
            &cfg.tracker,
            &prompts,
        )?,
    };
    if ref_masks.len() != tracks.subjects.len() {
        return Err(StageAError::SubjectCountMismatch {
            reference: ref_masks.len(),
            driving: tracks.subjects.len(),
        });
    }

    let ref_refs: Vec<Option<&Mask>> = ref_masks.iter().map(Some).collect();
    let reference_mask =
        colour_mask_frame(ref_w, ref_h, &ref_refs, cfg.mode.reference_background())?;
    let driving_mask = (0..n)
        .map(|t| colour_mask_frame(w, h, &tracks.frame_masks(t), cfg.mode.driving_background()))
        .collect::<Result<Vec<_>, _>>()?;

    let driving_video = match cfg.driving_type {
        DrivingType::EndToEnd => drv
            .frames
            .iter()
            .enumerate()
            .map(|(t, f)| masked_frame(f, &tracks.frame_masks(t)))
            .collect::<Result<Vec<_>, _>>()?,
        DrivingType::Pose => match &inputs.pose_video {
            Some(clip) => resample_clip(clip, n, drv.fps, "pose video")?
                .into_iter()
                .map(|f| {
                    if dims(&f) == (w, h) {
                        f
                    } else {
                        f.resize_bilinear(w as usize, h as usize)
                    }
                })
                .collect(),
            None => {
                let pose = models.pose.as_mut().ok_or_else(|| {
                    StageAError::Invalid("no pose model loaded and no pose video supplied".into())
                })?;
                let poses = estimate_pose_with(pose, &drv.frames, &tracks, progress)?;
                render_pose_video(w, h, &poses)
            }
        },
    };
    Ok(StageAOutput {
        reference_mask,
        driving_mask,
        driving_video,
        num_subjects: tracks.subjects.len(),
    })
}
