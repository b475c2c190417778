//! Per-frame detections -> subject tracks: score and size filters, mask NMS, identity by
//! motion-predicted mask IoU weighted by colour similarity (surviving crossings and short
//! occlusions), selection and left-to-right ordering.

use crate::frame::{BBox, Mask, RgbImage};
use crate::StageAError;

/// One segmentation hit in one frame.
#[derive(Clone, Debug)]
pub struct SegDetection {
    pub mask: Mask,
    pub score: f32,
    /// The model's own box in frame pixels (xyxy), where it gives one.
    pub bbox: Option<BBox>,
    /// Which prompt and which of the model's queries found it (0 where that means nothing).
    pub prompt: usize,
    pub query: usize,
    /// Colour signature of the frame under the mask ([`appearance`]), where the frame was
    /// at hand.
    pub appearance: Option<Vec<f32>>,
}

/// Bins per colour channel of [`appearance`].
const BINS: usize = 4;

/// A subject's colour signature: the normalised 4x4x4 RGB histogram of the frame's pixels
/// under its mask (empty mask: None).
pub fn appearance(frame: &RgbImage, mask: &Mask) -> Option<Vec<f32>> {
    let mut hist = vec![0f32; BINS * BINS * BINS];
    let mut n = 0usize;
    for (px, &m) in frame.data.chunks_exact(3).zip(&mask.data) {
        if m != 0 {
            let b = |v: u8| v as usize * BINS / 256;
            hist[(b(px[0]) * BINS + b(px[1])) * BINS + b(px[2])] += 1.0;
            n += 1;
        }
    }
    (n > 0).then(|| hist.into_iter().map(|v| v / n as f32).collect())
}

/// Histogram intersection of two signatures, in [0, 1].
fn similarity(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x.min(*y)).sum()
}

/// Below this similarity two sightings are different subjects, whatever their overlap.
const OTHER_SUBJECT: f32 = 0.25;
/// At or above it a detection near a track's predicted place continues it even without
/// enough overlap (subjects that changed places while overlapping, or moved while hidden).
const SAME_LOOK: f32 = 0.7;

/// A track's predicted mask with what matching reads from it, computed once per frame.
struct Predicted {
    mask: Mask,
    centroid: Option<(f32, f32)>,
    /// The longer side of its box: how far counts as "near".
    reach: f32,
}

impl Predicted {
    fn new(mask: Mask) -> Self {
        let reach = mask
            .bbox()
            .map_or(1.0, |bb| (bb.x1 - bb.x0).max(bb.y1 - bb.y0).max(1.0));
        Self {
            centroid: mask.centroid(),
            mask,
            reach,
        }
    }
}

/// How well detection `d` (centroid `d_centroid`) continues a track predicted at `p`: None
/// when it cannot. Without colour signatures (detections made without their frame) this is
/// the motion-predicted IoU alone; with them, IoU and closeness of look and place together.
fn match_score(
    p: &Predicted,
    track_look: Option<&Vec<f32>>,
    d: &SegDetection,
    d_centroid: Option<(f32, f32)>,
    cfg: &TrackerConfig,
) -> Option<f32> {
    let iou = p.mask.iou(&d.mask);
    let (Some(a), Some(b)) = (track_look, d.appearance.as_ref()) else {
        return (iou >= cfg.match_iou).then_some(iou);
    };
    let sim = similarity(a, b);
    if sim < OTHER_SUBJECT {
        return None;
    }
    // Closeness: 1 at the predicted centroid, 0 a body size away.
    let near = match (p.centroid, d_centroid) {
        (Some(p0), Some(q)) => {
            (1.0 - ((p0.0 - q.0).powi(2) + (p0.1 - q.1).powi(2)).sqrt() / p.reach).max(0.0)
        }
        _ => 0.0,
    };
    (iou >= cfg.match_iou || (sim >= SAME_LOOK && near > 0.0))
        .then_some(0.5 * iou + 0.5 * sim * near)
}

impl SegDetection {
    /// A detection known by its mask and score only (user masks, tests).
    pub fn from_mask(mask: Mask, score: f32) -> Self {
        Self {
            mask,
            score,
            bbox: None,
            prompt: 0,
            query: 0,
            appearance: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Detections scoring below this are ignored (the reference's 0.25).
    pub min_score: f32,
    /// Masks covering less than this fraction of the frame are dropped (1%).
    pub min_coverage: f32,
    /// Two detections in one frame overlapping more than this are one object.
    pub nms_iou: f32,
    /// A detection continues a track when their mask IoU is at least this.
    pub match_iou: f32,
    /// Frames a track may go unseen (occlusion) and still be continued.
    pub max_gap: usize,
    /// Subjects kept (2 in animation, 1 in replacement).
    pub max_subjects: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            min_score: 0.25,
            min_coverage: 0.01,
            nms_iou: 0.5,
            match_iou: 0.3,
            max_gap: 16,
            max_subjects: 2,
        }
    }
}

/// Filters one frame's detections: score, 1% size rule, then greedy mask NMS (best
/// score first).
pub fn filter_frame(dets: Vec<SegDetection>, cfg: &TrackerConfig) -> Vec<SegDetection> {
    let mut dets: Vec<_> = dets
        .into_iter()
        .filter(|d| d.score > cfg.min_score && d.mask.coverage() >= cfg.min_coverage)
        .collect();
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<SegDetection> = Vec::new();
    for d in dets {
        if kept.iter().all(|k| k.mask.iou(&d.mask) <= cfg.nms_iou) {
            kept.push(d);
        }
    }
    kept
}

/// The detections of one frame the tracker links: [`filter_frame`] without the size rule
/// (a subject may shrink later; the size rule only picks subjects). Idempotent.
pub fn frame_candidates(dets: Vec<SegDetection>, cfg: &TrackerConfig) -> Vec<SegDetection> {
    filter_frame(
        dets,
        &TrackerConfig {
            min_coverage: 0.0,
            ..cfg.clone()
        },
    )
}

/// One subject through the video: a mask per frame (None while unseen).
#[derive(Clone, Debug)]
pub struct SubjectTrack {
    pub masks: Vec<Option<Mask>>,
    pub scores: Vec<Option<f32>>,
}

impl SubjectTrack {
    /// The box of the first frame the subject is seen in.
    pub fn first_box(&self) -> Option<BBox> {
        self.masks.iter().flatten().find_map(|m| m.bbox())
    }
    pub fn frames_seen(&self) -> usize {
        self.masks.iter().filter(|m| m.is_some()).count()
    }
}

/// The chosen subjects, ordered left to right; subject i gets palette colour i.
#[derive(Clone, Debug)]
pub struct SubjectTracks {
    pub width: u32,
    pub height: u32,
    pub num_frames: usize,
    pub subjects: Vec<SubjectTrack>,
}

impl SubjectTracks {
    /// Subject masks for one frame, in subject order.
    pub fn frame_masks(&self, t: usize) -> Vec<Option<&Mask>> {
        self.subjects.iter().map(|s| s.masks[t].as_ref()).collect()
    }
}

struct Live {
    track: SubjectTrack,
    last_mask: Mask,
    last_seen: usize,
    /// Centroid velocity in pixels per frame, from the last two sightings.
    velocity: (f32, f32),
    /// Colour signature of the last sighting that had one.
    appearance: Option<Vec<f32>>,
}

impl Live {
    /// Where the subject should be at frame `t`: its last mask moved on at its velocity.
    /// Two subjects crossing overlap their old masks both ways; the prediction is what keeps
    /// each on its own side, and what finds one again after it was hidden.
    fn predicted(&self, t: usize) -> Mask {
        let dt = (t - self.last_seen) as f32;
        let (dx, dy) = (self.velocity.0 * dt, self.velocity.1 * dt);
        if dx.abs() < 0.5 && dy.abs() < 0.5 {
            return self.last_mask.clone();
        }
        self.last_mask.shifted(dx.round() as i64, dy.round() as i64)
    }

    fn see(&mut self, t: usize, mask: Mask, appearance: Option<Vec<f32>>) {
        if appearance.is_some() {
            self.appearance = appearance;
        }
        if let (Some(a), Some(b)) = (self.last_mask.centroid(), mask.centroid()) {
            let dt = (t - self.last_seen).max(1) as f32;
            self.velocity = ((b.0 - a.0) / dt, (b.1 - a.1) / dt);
        }
        self.last_mask = mask;
        self.last_seen = t;
    }
}

/// Links per-frame detections into tracks by IoU with each track's motion-predicted mask
/// ([`Live::predicted`]), then chooses subjects as the
/// reference does: in the first frame with a detection covering at least the minimum
/// size, the largest `max_subjects` tracks present there (tracks that start later are
/// never subjects), ordered left to right by that frame's box centre. Later frames keep a
/// subject's mask whatever its size. `frames[t]` holds frame t's raw detections.
pub fn track(
    width: u32,
    height: u32,
    frames: Vec<Vec<SegDetection>>,
    cfg: &TrackerConfig,
) -> Result<SubjectTracks, StageAError> {
    let n = frames.len();
    let mut tracks: Vec<Live> = Vec::new();
    for (t, dets) in frames.into_iter().enumerate() {
        for d in &dets {
            if (d.mask.width, d.mask.height) != (width, height) {
                return Err(StageAError::SizeMismatch {
                    what: "detection mask",
                    expected: (width, height),
                    got: (d.mask.width, d.mask.height),
                });
            }
        }
        let dets = frame_candidates(dets, cfg);
        // Greedy assignment over all (track, detection) pairs by match score, best first, so a
        // subject reappearing after an occlusion returns to its own track.
        let mut pairs = Vec::new();
        let centroids: Vec<_> = dets.iter().map(|d| d.mask.centroid()).collect();
        for (ti, tr) in tracks.iter().enumerate() {
            if t - tr.last_seen > cfg.max_gap + 1 {
                continue;
            }
            let predicted = Predicted::new(tr.predicted(t));
            for (di, d) in dets.iter().enumerate() {
                let look = tr.appearance.as_ref();
                if let Some(score) = match_score(&predicted, look, d, centroids[di], cfg) {
                    pairs.push((score, ti, di));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_used = vec![false; tracks.len()];
        let mut det_used = vec![false; dets.len()];
        let mut assign = vec![None; dets.len()];
        for (_, ti, di) in pairs {
            if !track_used[ti] && !det_used[di] {
                track_used[ti] = true;
                det_used[di] = true;
                assign[di] = Some(ti);
            }
        }
        for (di, d) in dets.into_iter().enumerate() {
            let ti = match assign[di] {
                Some(ti) => ti,
                None => {
                    tracks.push(Live {
                        track: SubjectTrack {
                            masks: vec![None; n],
                            scores: vec![None; n],
                        },
                        last_mask: d.mask.clone(),
                        last_seen: t,
                        velocity: (0.0, 0.0),
                        appearance: None,
                    });
                    tracks.len() - 1
                }
            };
            let tr = &mut tracks[ti];
            tr.see(t, d.mask.clone(), d.appearance.clone());
            tr.track.scores[t] = Some(d.score);
            tr.track.masks[t] = Some(d.mask);
        }
    }
    let big = |m: &Option<Mask>| m.as_ref().is_some_and(|m| m.coverage() >= cfg.min_coverage);
    let t0 = (0..n).find(|&t| tracks.iter().any(|l| big(&l.track.masks[t])));
    let mut chosen: Vec<SubjectTrack> = match t0 {
        None => Vec::new(),
        Some(t0) => {
            let mut c: Vec<(usize, SubjectTrack)> = tracks
                .into_iter()
                .filter(|l| big(&l.track.masks[t0]))
                .map(|l| (l.track.masks[t0].as_ref().map_or(0, Mask::area), l.track))
                .collect();
            c.sort_by_key(|e| std::cmp::Reverse(e.0));
            c.truncate(cfg.max_subjects);
            c.into_iter().map(|(_, s)| s).collect()
        }
    };
    order_left_to_right(&mut chosen);
    Ok(SubjectTracks {
        width,
        height,
        num_frames: n,
        subjects: chosen,
    })
}

/// Sorts subjects by the x of their first box's centre.
pub fn order_left_to_right(subjects: &mut [SubjectTrack]) {
    subjects.sort_by(|a, b| {
        let ca = a.first_box().map_or(f32::MAX, |b| b.centre().0);
        let cb = b.first_box().map_or(f32::MAX, |b| b.centre().0);
        ca.total_cmp(&cb)
    });
}
