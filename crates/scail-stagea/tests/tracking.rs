//! Segmentation detections to subject tracks on constructed masks (no ONNX Runtime needed):
//! the per-frame filters, identity through occlusions and crossings, subject choice and ordering.

mod common;

use common::{det, rect};
use scail_media::mask::{BLACK, PALETTE};
use scail_stagea::compose::colour_mask_frame;
use scail_stagea::sam3::Segmenter;
use scail_stagea::stagea::segment_video;
use scail_stagea::track::{filter_frame, track, SegDetection, TrackerConfig};
use scail_stagea::{Mask, Mode, ModeMasks, RgbImage, StageAError};

#[test]
fn one_percent_and_score_filters_and_mask_nms() {
    let cfg = TrackerConfig::default();
    let dets = vec![
        det(rect(0, 0, 9, 10), 0.9),    // 0.9% of the frame: dropped
        det(rect(20, 0, 31, 10), 0.9),  // 1.1%: kept
        det(rect(50, 0, 70, 20), 0.24), // below 0.25: dropped
        det(rect(50, 50, 70, 70), 0.8), // kept
        det(rect(51, 50, 70, 70), 0.7), // duplicate of the previous: suppressed
    ];
    let kept = filter_frame(dets, &cfg);
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].score, 0.9);
    assert_eq!(kept[0].mask.area(), 110);
    assert_eq!(kept[1].score, 0.8);
}

#[test]
fn tracking_keeps_identities_through_an_occlusion() {
    // A walks right from x=10; B stands at x=70 and is hidden in frames 3..6.
    let mut frames = Vec::new();
    for t in 0..10u32 {
        let mut f = Vec::new();
        if !(3..6).contains(&t) {
            f.push(det(rect(70, 20, 85, 80), 0.8));
        }
        f.push(det(rect(10 + 2 * t, 20, 25 + 2 * t, 80), 0.9));
        if t == 7 {
            // A one-frame false positive: never a subject.
            f.push(det(rect(40, 0, 55, 12), 0.5));
        }
        frames.push(f);
    }
    let tracks = track(100, 100, frames, &TrackerConfig::default()).unwrap();
    assert_eq!(tracks.subjects.len(), 2);
    assert_eq!(tracks.num_frames, 10);
    let (a, b) = (&tracks.subjects[0], &tracks.subjects[1]);
    assert_eq!(a.frames_seen(), 10);
    for t in 0..10u32 {
        assert_eq!(
            a.masks[t as usize].as_ref().unwrap().bbox().unwrap().x0,
            (10 + 2 * t) as f32
        );
    }
    assert_eq!(b.frames_seen(), 7);
    assert!(b.masks[4].is_none());
    assert_eq!(b.masks[6].as_ref().unwrap().bbox().unwrap().x0, 70.0);
    // Colours follow identities: frame 4 paints only A (blue), B's red is unused.
    let f4 = colour_mask_frame(100, 100, &tracks.frame_masks(4), BLACK).unwrap();
    assert_eq!(f4.rgb(20, 50), PALETTE[0]);
    assert_eq!(f4.rgb(75, 50), BLACK);
    let f6 = colour_mask_frame(100, 100, &tracks.frame_masks(6), BLACK).unwrap();
    assert_eq!(f6.rgb(75, 50), PALETTE[1]);
}

#[test]
fn subjects_are_chosen_in_the_first_frame_by_size_and_keep_small_masks_later() {
    let cfg = TrackerConfig {
        max_subjects: 2,
        ..TrackerConfig::default()
    };
    // Largest at first: chosen, and kept while it shrinks to 0.9% (IoU >= 0.3 per step).
    let shrinking = [(90, 90), (80, 70), (74, 50), (70, 30), (70, 19)];
    let mut frames = Vec::new();
    for (t, &(x1, y1)) in shrinking.iter().enumerate() {
        let mut f = vec![
            det(rect(60, 10, x1, y1), 0.9),
            det(rect(5, 10, 25, 60), 0.9),
            // Third largest in frame 0: not chosen with max 2.
            det(rect(30, 70, 45, 80), 0.9),
        ];
        if t >= 1 {
            // Appears after the first frame, bigger than everyone: never a subject.
            f.push(det(rect(0, 62, 30, 100), 0.95));
        }
        frames.push(f);
    }
    let tr = track(100, 100, frames, &cfg).unwrap();
    assert_eq!(tr.subjects.len(), 2);
    assert_eq!(tr.subjects[0].first_box().unwrap().x0, 5.0);
    let right = &tr.subjects[1];
    assert_eq!(right.first_box().unwrap().x0, 60.0);
    let last = right.masks[4].as_ref().unwrap();
    assert_eq!(last.area(), 90);
}

#[test]
fn subjects_are_ordered_left_to_right_by_first_box_centre() {
    // Right person detected first and with a higher score; the left one still comes first.
    let frames = vec![
        vec![
            det(rect(60, 10, 90, 90), 0.99),
            det(rect(5, 10, 35, 90), 0.5),
        ],
        vec![
            det(rect(60, 10, 90, 90), 0.99),
            det(rect(5, 10, 35, 90), 0.5),
        ],
    ];
    let tr = track(100, 100, frames.clone(), &TrackerConfig::default()).unwrap();
    assert_eq!(tr.subjects[0].first_box().unwrap().x0, 5.0);
    assert_eq!(tr.subjects[1].first_box().unwrap().x0, 60.0);
    // Replacement keeps one subject.
    let cfg = TrackerConfig {
        max_subjects: Mode::Replacement.max_subjects(),
        ..TrackerConfig::default()
    };
    let tr1 = track(100, 100, frames, &cfg).unwrap();
    assert_eq!(tr1.subjects.len(), 1);
}

const W: u32 = 200;

/// Two subjects walking through each other: A from the left at 7 px a frame, B from the right
/// at `b_speed`; B passes behind A and is hidden while less than `min_visible` px of it shows.
fn crossing(
    frames: u32,
    min_visible: u32,
    b_speed: u32,
) -> (Vec<Vec<SegDetection>>, Vec<u32>, Vec<u32>) {
    let (w, h, size) = (W, 60u32, 16u32);
    let (mut dets, mut ax, mut bx) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..frames {
        let a0 = 4 + 7 * t;
        let b0 = 120 - b_speed * t;
        ax.push(a0);
        bx.push(b0);
        let a = Mask::from_rect(w, h, a0, 10, a0 + size, 50);
        let mut b = Mask::from_rect(w, h, b0, 12, b0 + size, 48);
        for (bv, av) in b.data.iter_mut().zip(&a.data) {
            *bv &= 1 - av;
        }
        let visible = b.bbox().map_or(0, |bb| (bb.x1 - bb.x0) as u32);
        let mut f = vec![det(a, 0.9)];
        if visible >= min_visible {
            f.push(det(b, 0.8));
        }
        dets.push(f);
    }
    (dets, ax, bx)
}

#[test]
fn identities_hold_through_a_crossing_with_occlusion() {
    let frames = 17;
    let (dets, ax, bx) = crossing(frames, 6, 7);
    let hidden = dets.iter().filter(|f| f.len() == 1).count();
    assert!(hidden >= 1, "B must vanish for a while ({hidden} frames)");
    let tracks = track(W, 60, dets, &TrackerConfig::default()).unwrap();
    assert_eq!(tracks.subjects.len(), 2);
    // Ordered left to right at the start: A is subject 0 (first palette colour) and stays so
    // after it ends up on the right.
    let (a, b) = (&tracks.subjects[0], &tracks.subjects[1]);
    for t in 0..frames as usize {
        let abox = a.masks[t]
            .as_ref()
            .expect("A is never hidden")
            .bbox()
            .unwrap();
        assert_eq!(abox.x0, ax[t] as f32, "frame {t}: subject 0 is not A");
        if let Some(m) = &b.masks[t] {
            let bb = m.bbox().unwrap();
            // B's visible part lies within B's own rectangle.
            assert!(
                bb.x0 >= bx[t] as f32 && bb.x1 <= (bx[t] + 16) as f32,
                "frame {t}: subject 1 at {bb:?} is not B (x {})",
                bx[t]
            );
        }
    }
    assert_eq!(a.frames_seen(), frames as usize);
    assert!(b.frames_seen() >= frames as usize - 3);
    assert!(
        b.masks[frames as usize - 1].is_some(),
        "B is found again after the crossing"
    );
    let last = frames as usize - 1;
    let f = colour_mask_frame(W, 60, &tracks.frame_masks(last), BLACK).unwrap();
    assert_eq!(f.rgb(ax[last] as usize + 8, 30), PALETTE[0]);
    assert_eq!(f.rgb(bx[last] as usize + 8, 30), PALETTE[1]);
}

#[test]
fn identities_hold_when_the_hidden_subject_is_gone_several_frames() {
    // B walks slowly and shows only when 14 px of it are clear of A: hidden for longer.
    let frames = 22;
    let (dets, ax, bx) = crossing(frames, 14, 1);
    let hidden = dets.iter().filter(|f| f.len() == 1).count();
    assert!(hidden >= 3, "B hidden {hidden} frames");
    let tracks = track(W, 60, dets, &TrackerConfig::default()).unwrap();
    assert_eq!(tracks.subjects.len(), 2);
    for (t, (m, &x)) in tracks.subjects[0].masks.iter().zip(&ax).enumerate() {
        let abox = m.as_ref().unwrap().bbox().unwrap();
        assert_eq!(abox.x0, x as f32, "frame {t}");
    }
    let b = &tracks.subjects[1];
    for (t, m) in b.masks.iter().enumerate() {
        if let Some(m) = m {
            let bb = m.bbox().unwrap();
            assert!(
                bb.x0 >= bx[t] as f32 && bb.x1 <= (bx[t] + 16) as f32,
                "frame {t}"
            );
        }
    }
    assert!(b.masks[frames as usize - 1].is_some());
}

/// Hands out prepared masks, one frame's list per call.
struct Scripted(std::vec::IntoIter<Vec<Mask>>);

impl Segmenter for Scripted {
    fn detect(&mut self, _: &RgbImage) -> Result<Vec<SegDetection>, StageAError> {
        let masks = self.0.next().expect("a frame per call");
        Ok(masks
            .into_iter()
            .map(|m| SegDetection::from_mask(m, 0.9))
            .collect())
    }
}

#[test]
fn colours_keep_identities_when_subjects_change_places_while_overlapping() {
    // A (red, in front) and B (green) stand overlapping, then change places in one step:
    // motion alone (both still) would hand each the other's new place.
    let (w, h, size) = (120u32, 60u32, 16u32);
    let place = |t: u32| if t < 3 { (44u32, 58u32) } else { (60, 42) };
    let (mut frames, mut masks) = (Vec::new(), Vec::new());
    for t in 0..6 {
        let (a0, b0) = place(t);
        let mut f = RgbImage::new(w as usize, h as usize, 3);
        f.data.iter_mut().for_each(|v| *v = 60);
        let a = Mask::from_rect(w, h, a0, 10, a0 + size, 50);
        let mut b = Mask::from_rect(w, h, b0, 10, b0 + size, 50);
        for (bv, av) in b.data.iter_mut().zip(&a.data) {
            *bv &= 1 - av;
        }
        for (i, px) in f.data.chunks_exact_mut(3).enumerate() {
            if a.data[i] != 0 {
                px.copy_from_slice(&[200, 30, 40]);
            } else if b.data[i] != 0 {
                px.copy_from_slice(&[40, 190, 60]);
            }
        }
        frames.push(f);
        masks.push(vec![a, b]);
    }
    let mut seg = Scripted(masks.into_iter());
    let tracks = segment_video(&mut seg, &frames, &TrackerConfig::default()).unwrap();
    assert_eq!(tracks.subjects.len(), 2);
    let (a, b) = (&tracks.subjects[0], &tracks.subjects[1]);
    for t in 0..6u32 {
        let (a0, _) = place(t);
        let abox = a.masks[t as usize].as_ref().unwrap().bbox().unwrap();
        assert_eq!(abox.x0, a0 as f32, "frame {t}: subject 0 is not A");
        let bbox = b.masks[t as usize].as_ref().unwrap().bbox().unwrap();
        assert!(bbox.x0 != a0 as f32, "frame {t}: subject 1 took A's place");
    }
}
