//! Host-code tests on constructed model outputs (no ONNX Runtime needed).

use scail_stagea::compose::{
    colour_mask_frame, decode_palette_mask, mask_from_alpha, masked_frame,
};
use scail_stagea::dwpose::{decode_simcc, keypoints_to_source, Crop, INPUT_H, INPUT_W};
use scail_media::mask::{BLACK, PALETTE, WHITE};
use scail_stagea::{Mode, ModeMasks};
use scail_stagea::track::{filter_frame, track, SegDetection, TrackerConfig};
use scail_stagea::yolox::{decode_grid, letterbox, nms, postprocess, STRIDES};
use scail_stagea::{BBox, Mask, RgbImage};

const ROW: usize = 85;

fn anchor_index(stride: u32, gx: u32, gy: u32) -> usize {
    let mut base = 0;
    for &s in &STRIDES {
        let n = 640 / s;
        if s == stride {
            return base + (gy * n + gx) as usize;
        }
        base += (n * n) as usize;
    }
    unreachable!()
}

/// Writes one raw anchor prediction so that it decodes to `b` (in letterbox pixels).
fn set_anchor(preds: &mut [f32], stride: u32, b: BBox, obj: f32, cls: usize, cls_score: f32) {
    let s = stride as f32;
    let (cx, cy) = b.centre();
    let gx = (cx / s).floor() as u32;
    let gy = (cy / s).floor() as u32;
    let a = anchor_index(stride, gx, gy);
    let p = &mut preds[a * ROW..(a + 1) * ROW];
    p[0] = cx / s - gx as f32;
    p[1] = cy / s - gy as f32;
    p[2] = ((b.x1 - b.x0) / s).ln();
    p[3] = ((b.y1 - b.y0) / s).ln();
    p[4] = obj;
    p[5 + cls] = cls_score;
}

#[test]
fn letterbox_scales_to_fit_and_pads_bottom_right_with_114() {
    let img = RgbImage::filled_rgb(320, 160, [10, 20, 30]);
    let lb = letterbox(&img, 640);
    assert_eq!(lb.scale, 2.0);
    let plane = 640 * 640;
    assert_eq!(lb.chw.len(), plane * 3);
    // Image at top-left: 640x320 of the original colour, channels in BGR order.
    assert_eq!(lb.chw[0], 30.0);
    assert_eq!(lb.chw[plane + 319 * 640 + 639], 20.0);
    assert_eq!(lb.chw[2 * plane + 100 * 640 + 5], 10.0);
    // Below it, padding.
    assert_eq!(lb.chw[320 * 640], 114.0);
    assert_eq!(lb.chw[2 * plane + 639 * 640 + 639], 114.0);
}

#[test]
fn yolox_grid_decode_places_anchors_by_stride() {
    let n: usize = STRIDES
        .iter()
        .map(|s| ((640 / s) * (640 / s)) as usize)
        .sum();
    assert_eq!(n, 8400);
    let mut preds = vec![0f32; n * ROW];
    let a = anchor_index(16, 3, 5);
    preds[a * ROW..a * ROW + 5].copy_from_slice(&[0.5, 0.25, 2f32.ln(), 4f32.ln(), 1.0]);
    preds[a * ROW + 5] = 0.5;
    let dec = decode_grid(&preds, ROW, 640).unwrap();
    let (b, s) = &dec[a];
    // xy = (p + grid) * stride; wh = exp(p) * stride.
    let (cx, cy) = b.centre();
    assert!((cx - 3.5 * 16.0).abs() < 1e-4 && (cy - 5.25 * 16.0).abs() < 1e-4);
    assert!((b.x1 - b.x0 - 32.0).abs() < 1e-3 && (b.y1 - b.y0 - 64.0).abs() < 1e-3);
    assert!((s[0] - 0.5).abs() < 1e-6);
    // Zero predictions decode to a stride-sized box at the grid cell.
    let (b0, _) = &dec[anchor_index(32, 19, 19)];
    assert!((b0.x0 - (19.0 * 32.0 - 16.0)).abs() < 1e-4);
    assert!(decode_grid(&preds[..100], ROW, 640).is_err());
}

#[test]
fn nms_uses_inclusive_pixel_areas() {
    // With +1 areas the IoU is 50/150 = 0.333; without it 36/126 = 0.286.
    let boxes = [
        BBox::new(0.0, 0.0, 9.0, 9.0),
        BBox::new(5.0, 0.0, 14.0, 9.0),
    ];
    assert_eq!(nms(&boxes, &[0.9, 0.8], 0.3), vec![0]);
    assert_eq!(nms(&boxes, &[0.9, 0.8], 0.34), vec![0, 1]);
    assert_eq!(nms(&boxes, &[0.7, 0.8], 0.3), vec![1]);
}

#[test]
fn yolox_postprocess_keeps_people_above_threshold_and_undoes_scale() {
    let mut preds = vec![0f32; 8400 * ROW];
    // Two overlapping people: the weaker is suppressed (IoU > 0.45).
    set_anchor(
        &mut preds,
        32,
        BBox::new(100.0, 100.0, 300.0, 500.0),
        0.95,
        0,
        0.95,
    );
    set_anchor(
        &mut preds,
        16,
        BBox::new(110.0, 105.0, 305.0, 495.0),
        0.9,
        0,
        0.9,
    );
    // A separate person.
    set_anchor(
        &mut preds,
        32,
        BBox::new(400.0, 80.0, 560.0, 480.0),
        0.8,
        0,
        0.8,
    );
    // obj * cls = 0.54 * 0.54 = 0.2916: passes NMS's 0.1 but not the person rule (> 0.3).
    set_anchor(
        &mut preds,
        8,
        BBox::new(20.0, 20.0, 60.0, 100.0),
        0.54,
        0,
        0.54,
    );
    // A confident non-person (class 3).
    set_anchor(
        &mut preds,
        16,
        BBox::new(600.0, 600.0, 630.0, 630.0),
        0.99,
        3,
        0.99,
    );
    let dets = postprocess(&preds, ROW, 640, 0.5).unwrap();
    assert_eq!(dets.len(), 2, "{dets:?}");
    assert!((dets[0].score - 0.9025).abs() < 1e-5);
    let b = dets[0].bbox;
    // Letterbox scale 0.5 undone: coordinates doubled.
    assert!(
        (b.x0 - 200.0).abs() < 0.01 && (b.y1 - 1000.0).abs() < 0.01,
        "{b:?}"
    );
    assert!((dets[1].bbox.x0 - 800.0).abs() < 0.01);
}

#[test]
fn affine_crop_round_trips_and_fixes_aspect() {
    let b = BBox::new(100.0, 50.0, 200.0, 450.0);
    let crop = Crop::from_box(&b);
    // Tall box: height padded by 1.25, width widened to 288:384.
    assert!((crop.scale.1 - 500.0).abs() < 1e-3);
    assert!((crop.scale.0 - 375.0).abs() < 1e-3);
    assert_eq!(crop.centre, (150.0, 250.0));
    for &(x, y) in &[
        (100.0f32, 50.0f32),
        (150.0, 250.0),
        (37.5, 0.0),
        (262.0, 499.0),
    ] {
        let (u, v) = crop.forward(x, y);
        let (x2, y2) = crop.inverse(u, v);
        assert!((x - x2).abs() < 1e-3 && (y - y2).abs() < 1e-3);
    }
    // The crop centre maps to the middle of the 288x384 input.
    assert_eq!(crop.forward(150.0, 250.0), (144.0, 192.0));
    // Wide box: width governs.
    let wide = Crop::from_box(&BBox::new(0.0, 0.0, 400.0, 100.0));
    assert!(
        (wide.scale.0 - 500.0).abs() < 1e-3 && (wide.scale.1 - 500.0 * 384.0 / 288.0).abs() < 1e-2
    );

    // A bright pixel lands where `forward` says, and keypoints come back through it.
    let mut img = RgbImage::filled_rgb(300, 500, [0, 0, 0]);
    // 3x3 patch so bilinear sampling of a downscaled crop still sees it.
    for y in 199..202 {
        for x in 119..122 {
            img.put_rgb(x, y, [255, 255, 255]);
        }
    }
    let warped = crop.warp(&img);
    assert_eq!((warped.width, warped.height), (INPUT_W as usize, INPUT_H as usize));
    let (u, v) = crop.forward(120.0, 200.0);
    assert!(warped.rgb(u.round() as usize, v.round() as usize)[0] > 128);
    assert_eq!(warped.rgb(5, 5), [0, 0, 0]);
    let tensor = crop.input_tensor(&img);
    assert_eq!(tensor.len(), 3 * 288 * 384);
    assert!((tensor[0] - (0.0 - 123.675) / 58.395).abs() < 1e-5);
    // BGR order: input channel 0 is the blue channel, normalised with mean[0] / std[0].
    let coloured = RgbImage::filled_rgb(300, 500, [200, 100, 50]);
    let t = crop.input_tensor(&coloured);
    let plane = 288 * 384;
    let mid = 192 * 288 + 144;
    assert!((t[mid] - (50.0 - 123.675) / 58.395).abs() < 1e-4);
    assert!((t[plane + mid] - (100.0 - 116.28) / 57.12).abs() < 1e-4);
    assert!((t[2 * plane + mid] - (200.0 - 103.53) / 57.375).abs() < 1e-4);
}

#[test]
fn simcc_decode_argmax_half_and_min_confidence() {
    let k = 3;
    let (wx, wy) = (576, 768);
    let mut sx = vec![0.01f32; k * wx];
    let mut sy = vec![0.01f32; k * wy];
    sx[101] = 0.9; // keypoint 0: x = 50.5
    sy[301] = 0.6; // y = 150.5, confidence = min(0.9, 0.6)
    sx[wx + 575] = 0.2;
    sy[wy] = 0.7; // keypoint 1: (287.5, 0), confidence 0.2
                  // keypoint 2: all negative -> location -1 before the split ratio.
    for v in &mut sx[2 * wx..] {
        *v = -0.5;
    }
    let dec = decode_simcc(&sx, &sy, k).unwrap();
    assert_eq!(dec[0], (50.5, 150.5, 0.6));
    assert_eq!(dec[1], (287.5, 0.0, 0.2));
    assert_eq!(dec[2].0, -0.5);
    assert_eq!(dec[2].1, -0.5);
    assert!(dec[2].2 <= 0.0);
    // Back to the source image through the crop.
    let crop = Crop::from_box(&BBox::new(100.0, 50.0, 200.0, 450.0));
    let body = keypoints_to_source(&crop, &dec);
    let (u, v) = crop.forward(body.keypoints[0].x, body.keypoints[0].y);
    assert!((u - 50.5).abs() < 1e-3 && (v - 150.5).abs() < 1e-3);
    assert!(decode_simcc(&sx[..10], &sy, k).is_err());
}

fn rect(x0: u32, y0: u32, x1: u32, y1: u32) -> Mask {
    Mask::from_rect(100, 100, x0, y0, x1, y1)
}

fn det(m: Mask, score: f32) -> SegDetection {
    SegDetection { mask: m, score }
}

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

#[test]
fn palette_and_background_per_mode() {
    assert_eq!(PALETTE[0], [0, 0, 255]);
    assert_eq!(PALETTE[1], [255, 0, 0]);
    assert_eq!(Mode::Animation.reference_background(), WHITE);
    assert_eq!(Mode::Animation.driving_background(), BLACK);
    assert_eq!(Mode::Replacement.reference_background(), BLACK);
    assert_eq!(Mode::Replacement.driving_background(), WHITE);
    let (a, b) = (rect(0, 0, 40, 100), rect(60, 0, 100, 100));
    for mode in [Mode::Animation, Mode::Replacement] {
        let r = colour_mask_frame(100, 100, &[Some(&a), Some(&b)], mode.reference_background())
            .unwrap();
        assert_eq!(r.rgb(10, 10), PALETTE[0]);
        assert_eq!(r.rgb(80, 10), PALETTE[1]);
        assert_eq!(r.rgb(50, 10), mode.reference_background());
        // And back: the decoder recovers both masks exactly whatever the background.
        let back = decode_palette_mask(&r);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].as_ref().unwrap(), &a);
        assert_eq!(back[1].as_ref().unwrap(), &b);
    }
    assert!(colour_mask_frame(
        100,
        100,
        &[Some(&rect(0, 0, 1, 1).resize_nearest(50, 50))],
        BLACK
    )
    .is_err());
}

#[test]
fn masked_driving_frame_blacks_out_everything_but_subjects() {
    let mut frame = RgbImage::filled_rgb(100, 100, [0, 0, 0]);
    for (i, v) in frame.data.iter_mut().enumerate() {
        *v = (i % 251) as u8 | 1;
    }
    let (a, b) = (rect(0, 0, 10, 10), rect(90, 90, 100, 100));
    let out = masked_frame(&frame, &[Some(&a), None, Some(&b)]).unwrap();
    for y in 0..100 {
        for x in 0..100 {
            let inside = a.get(x, y) || b.get(x, y);
            let (px, py) = (x as usize, y as usize);
            assert_eq!(out.rgb(px, py), if inside { frame.rgb(px, py) } else { BLACK });
        }
    }
}

#[test]
fn alpha_channel_gives_the_reference_mask() {
    let (w, h) = (4u32, 2u32);
    let mut rgba = vec![255u8; (w * h * 4) as usize];
    assert!(mask_from_alpha(w, h, &rgba).unwrap().is_none());
    rgba[3] = 0;
    rgba[7] = 127;
    rgba[11] = 128;
    let m = mask_from_alpha(w, h, &rgba).unwrap().unwrap();
    assert_eq!(m.data, vec![0, 0, 1, 1, 1, 1, 1, 1]);
    assert!(mask_from_alpha(w, h, &rgba[1..]).is_err());
}

mod refusals {
    use scail_stagea::Mode;
    use scail_stagea::sam3::Segmenter;
    use scail_stagea::stagea::{
        run_stage_a, run_stage_a_with, Clip, DrivingType, StageAConfig, StageAInputs, StageAModels,
        StageAProgress, SubjectType,
    };
    use scail_stagea::track::SegDetection;
    use scail_stagea::{Mask, RgbImage, StageAError};

    /// Finds one subject in the left half of bright frames, nothing in dark ones.
    struct Fake;
    impl Segmenter for Fake {
        fn detect(&mut self, f: &RgbImage) -> Result<Vec<SegDetection>, StageAError> {
            if f.data[0] > 128 {
                let (w, h) = (f.width as u32, f.height as u32);
                Ok(vec![SegDetection {
                    mask: Mask::from_rect(w, h, 0, 0, w / 2, h),
                    score: 0.9,
                }])
            } else {
                Ok(vec![])
            }
        }
    }

    fn inputs(reference: [u8; 3], driving: [u8; 3]) -> StageAInputs {
        StageAInputs {
            reference: RgbImage::filled_rgb(32, 16, reference),
            reference_alpha: None,
            driving: Clip {
                frames: vec![RgbImage::filled_rgb(32, 16, driving); 3],
                fps: 16.0,
            },
            reference_mask: None,
            driving_mask: None,
            pose_video: None,
        }
    }

    fn models() -> StageAModels {
        StageAModels {
            segmenter: Some(Box::new(Fake)),
            pose: None,
        }
    }

    #[test]
    fn pose_driving_is_refused_for_animals() {
        let cfg = StageAConfig::new(Mode::Animation, DrivingType::Pose, SubjectType::Animal);
        let e = run_stage_a(&cfg, &inputs([255; 3], [255; 3]), &mut models()).unwrap_err();
        assert!(matches!(e, StageAError::PoseForAnimal));
        assert!(e.to_string().contains("subject_type=animal"));
        let ok = StageAConfig::new(Mode::Animation, DrivingType::EndToEnd, SubjectType::Animal);
        assert!(ok.prompts().contains(&"dog".to_string()));
        let out = run_stage_a(&ok, &inputs([255; 3], [255; 3]), &mut models()).unwrap();
        assert_eq!(out.num_subjects, 1);
        assert_eq!(out.driving_mask.len(), 3);
    }

    #[test]
    fn no_subject_is_a_named_error() {
        let cfg = StageAConfig::new(Mode::Animation, DrivingType::EndToEnd, SubjectType::Human);
        let e = run_stage_a(&cfg, &inputs([255; 3], [0; 3]), &mut models()).unwrap_err();
        assert!(
            matches!(
                e,
                StageAError::NoSubject {
                    what: "driving video",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("human, character"));
        let e = run_stage_a(&cfg, &inputs([0; 3], [255; 3]), &mut models()).unwrap_err();
        assert!(
            matches!(
                e,
                StageAError::NoSubject {
                    what: "reference image",
                    ..
                }
            ),
            "{e}"
        );
        // Without a segmenter or masks, the error says what is missing.
        let e = run_stage_a(
            &cfg,
            &inputs([255; 3], [255; 3]),
            &mut StageAModels::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no segmentation model"), "{e}");
    }

    /// Records every report; cancels once `stop_at` frames are done.
    struct Recorder {
        seen: Vec<(&'static str, usize, usize)>,
        stop_at: Option<usize>,
    }
    impl StageAProgress for Recorder {
        fn frame(
            &mut self,
            step: &'static str,
            done: usize,
            total: usize,
        ) -> Result<(), StageAError> {
            self.seen.push((step, done, total));
            match self.stop_at {
                Some(n) if done >= n => Err(StageAError::Cancelled),
                _ => Ok(()),
            }
        }
    }

    /// Counts `detect` calls.
    struct Counting(std::rc::Rc<std::cell::Cell<usize>>);
    impl Segmenter for Counting {
        fn detect(&mut self, f: &RgbImage) -> Result<Vec<SegDetection>, StageAError> {
            self.0.set(self.0.get() + 1);
            Fake.detect(f)
        }
    }

    #[test]
    fn segmentation_reports_every_frame_and_stops_when_cancelled() {
        let cfg = StageAConfig::new(Mode::Animation, DrivingType::EndToEnd, SubjectType::Human);
        let mut rec = Recorder {
            seen: Vec::new(),
            stop_at: None,
        };
        run_stage_a_with(&cfg, &inputs([255; 3], [255; 3]), &mut models(), &mut rec).unwrap();
        let want: Vec<_> = (0..=3).map(|d| ("segmentation", d, 3)).collect();
        assert_eq!(rec.seen, want);

        // Cancelled after the second frame: no third detection, and Stage A says so.
        let calls = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut counting = StageAModels {
            segmenter: Some(Box::new(Counting(calls.clone()))),
            pose: None,
        };
        let mut rec = Recorder {
            seen: Vec::new(),
            stop_at: Some(2),
        };
        let e = run_stage_a_with(&cfg, &inputs([255; 3], [255; 3]), &mut counting, &mut rec)
            .unwrap_err();
        assert!(matches!(e, StageAError::Cancelled), "{e}");
        assert_eq!(calls.get(), 2);
        assert_eq!(rec.seen.last(), Some(&("segmentation", 2, 3)));
    }
}

mod timing_and_pose_masks {
    use scail_stagea::dwpose::{Keypoint, WholeBody};
    use scail_stagea::stagea::{resample_clip, restrict_to_mask, Clip};
    use scail_stagea::{Mask, RgbImage, StageAError};

    fn numbered(n: usize) -> Vec<RgbImage> {
        (0..n)
            .map(|i| RgbImage::filled_rgb(2, 2, [i as u8, 0, 0]))
            .collect()
    }

    #[test]
    fn resampling_takes_the_nearest_frame_in_time() {
        // 30 fps, 106 frames (3.533 s) -> 57 frames at 16 fps: frame k is time k/16.
        let clip = Clip {
            frames: numbered(106),
            fps: 30.0,
        };
        let out = resample_clip(&clip, 57, 16.0, "driving").unwrap();
        assert_eq!(out.len(), 57);
        for (k, f) in out.iter().enumerate() {
            let want = ((k as f64 / 16.0) * 30.0).round() as usize;
            assert_eq!(f.data[0] as usize, want.min(105), "frame {k}");
        }
        // Same rate and length: identity.
        let same = Clip {
            frames: numbered(10),
            fps: 16.0,
        };
        let out = resample_clip(&same, 10, 16.0, "mask").unwrap();
        assert!(out.iter().enumerate().all(|(i, f)| f.data[0] as usize == i));
        // 8 fps mask video, 20 frames (2.5 s) cannot cover 65 frames at 16 fps (4.06 s).
        let short = Clip {
            frames: numbered(20),
            fps: 8.0,
        };
        let e = resample_clip(&short, 65, 16.0, "driving mask video").unwrap_err();
        assert!(matches!(e, StageAError::TooShort { got: 20, .. }));
        assert!(
            e.to_string().contains("2.500 s") && e.to_string().contains("4.062 s"),
            "{e}"
        );
    }

    #[test]
    fn keypoints_away_from_the_subject_mask_are_dropped() {
        let mask = Mask::from_rect(100, 100, 20, 20, 40, 80);
        let kp = |x: f32, y: f32| Keypoint { x, y, score: 0.9 };
        let mut body = WholeBody {
            keypoints: vec![
                kp(30.0, 50.0),
                kp(41.0, 50.0),
                kp(60.0, 50.0),
                kp(-5.0, 10.0),
            ],
        };
        restrict_to_mask(&mut body, &mask);
        let s: Vec<f32> = body.keypoints.iter().map(|k| k.score).collect();
        // Inside, within 2 px (2% of 100) of the edge, far away, outside the frame.
        assert_eq!(s, vec![0.9, 0.9, 0.0, 0.0]);
    }
}
