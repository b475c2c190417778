//! DWPose at the reference's detection size: `resize_image(img, 512)` (short side 512,
//! sides rounded to 64, INTER_AREA shrinking / INTER_LANCZOS4 enlarging), keypoints
//! mapped back to frame pixels. Resampler fixtures are OpenCV 5.0's outputs
//! (`cv2.resize`) on the `pattern` image below. The ORT tests skip when the library is
//! missing.

mod common;

use common::*;
use scail_stagea::dwpose::{Crop, WholeBody};
use scail_stagea::pose::{
    detect_size, resize_for_detection, DetectionFrame, PoseEstimator, DETECT_RESOLUTION,
};
use scail_stagea::stagea::{estimate_pose, restrict_to_mask};
use scail_stagea::track::{SubjectTrack, SubjectTracks};
use scail_stagea::{BBox, Mask, RgbImage};

/// A deterministic image with structure on every channel (the fixtures' input).
fn pattern(w: usize, h: usize) -> RgbImage {
    let mut img = RgbImage::filled_rgb(w, h, [0, 0, 0]);
    for y in 0..h {
        for x in 0..w {
            let v = |c: usize| ((x * x * 7 + y * y * 13 + c * 101 + x * y * 3) % 256) as u8;
            img.put_rgb(x, y, [v(0), v(1), v(2)]);
        }
    }
    img
}

/// Single-channel rows -> a grey image.
fn grey(rows: &[&[u8]]) -> RgbImage {
    let (w, h) = (rows[0].len(), rows.len());
    let data = rows
        .iter()
        .flat_map(|r| r.iter().flat_map(|&v| [v, v, v]))
        .collect();
    RgbImage::from_vec(w, h, 3, data)
}

fn channel0(img: &RgbImage) -> Vec<u8> {
    img.data.iter().step_by(3).copied().collect()
}

#[test]
fn detect_size_scales_the_short_side_to_512_and_rounds_sides_to_64() {
    assert_eq!(DETECT_RESOLUTION, 512);
    // k = 512/512: identity at the model's 512p sizes.
    assert_eq!(detect_size(896, 512), (896, 512));
    // k = 512/704; 1280 k / 64 = 14.55 -> 15 * 64.
    assert_eq!(detect_size(1280, 704), (960, 512));
    assert_eq!(detect_size(512, 896), (512, 896));
    assert_eq!(detect_size(704, 1280), (512, 960));
    // Enlarging: k = 8.53; 100 k / 64 = 13.33 -> 13 * 64.
    assert_eq!(detect_size(100, 60), (832, 512));
    // k = 512/1079; 1919 k / 64 = 14.23 -> 14 * 64.
    assert_eq!(detect_size(1919, 1079), (896, 512));
    assert_eq!(detect_size(1920, 1080), (896, 512));
}

#[test]
fn detect_size_rounds_exact_halves_to_even_like_numpy() {
    // 544 / 64 = 8.5 -> 8; 608 / 64 = 9.5 -> 10 (round-half-up would give 576 and 640).
    assert_eq!(detect_size(544, 512), (512, 512));
    assert_eq!(detect_size(608, 512), (640, 512));
    // k = 0.5: 1088 -> 544 -> 8.5 -> 512.
    assert_eq!(detect_size(1088, 1024), (512, 512));
    assert_eq!(detect_size(1024, 1216), (512, 640));
}

#[test]
fn resize_area_averages_2x2_blocks_exactly() {
    // Block means 2.5, 0.5, 10.25, 8: at a 2x factor on both axes OpenCV rounds
    // halves up (2.5 -> 3, 0.5 -> 1).
    let src = grey(&[
        &[2, 3, 0, 1],
        &[3, 2, 0, 1],
        &[10, 10, 7, 7],
        &[10, 11, 9, 9],
    ]);
    let out = src.resize_area(2, 2);
    assert_eq!((out.width, out.height), (2, 2));
    assert_eq!(channel0(&out), [3, 1, 10, 8]);
    // Channels are independent.
    let mut rgb = RgbImage::filled_rgb(4, 4, [0, 0, 0]);
    for y in 0..4 {
        for x in 0..4 {
            rgb.put_rgb(x, y, [4 * (x / 2) as u8, 100, 8 * (y / 2) as u8 + 1]);
        }
    }
    let out = rgb.resize_area(2, 2);
    assert_eq!(out.rgb(1, 0), [4, 100, 1]);
    assert_eq!(out.rgb(0, 1), [0, 100, 9]);
}

#[test]
fn resize_area_weights_partial_pixels_at_non_integer_factors() {
    // 5 -> 3: output d covers source [5d/3, 5(d+1)/3); weights in fifths:
    // d0 = (3 * 0 + 2 * 100) / 5 = 40, d1 = (1 * 100 + 3 * 200 + 1 * 50) / 5 = 150,
    // d2 = (2 * 50 + 3 * 250) / 5 = 170.
    let row: &[u8] = &[0, 100, 200, 50, 250];
    assert_eq!(channel0(&grey(&[row]).resize_area(3, 1)), [40, 150, 170]);
    // Separable: the same along y, and both at once (row weights times column weights).
    let col = grey(&[&[0], &[100], &[200], &[50], &[250]]);
    assert_eq!(channel0(&col.resize_area(1, 3)), [40, 150, 170]);
    let rows: Vec<Vec<u8>> = (0..5)
        .map(|y| row.iter().map(|&v| v / 5 * (y as u8 + 1) / 2).collect())
        .collect();
    let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
    let img = grey(&refs);
    let wx = [
        [3.0, 2.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 3.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 2.0, 3.0],
    ];
    let out = img.resize_area(3, 3);
    for oy in 0..3 {
        for ox in 0..3 {
            let mut sum = 0.0;
            for (y, r) in rows.iter().enumerate() {
                for (x, &v) in r.iter().enumerate() {
                    sum += wx[oy][y] * wx[ox][x] * v as f64;
                }
            }
            let want = (sum / 25.0).round() as u8;
            assert_eq!(out.rgb(ox, oy)[0], want, "({ox},{oy}) {sum}");
        }
    }
    // Away from 2x, exact halves round to even (OpenCV's general path): 2.5 -> 2.
    assert_eq!(channel0(&grey(&[&[2, 3]]).resize_area(1, 1)), [2]);
    assert_eq!(channel0(&grey(&[&[2, 2, 3, 3]]).resize_area(1, 1)), [2]);
    assert_eq!(channel0(&grey(&[&[3, 4]]).resize_area(1, 1)), [4]);
}

#[test]
fn resize_area_keeps_constants_and_copies_at_equal_size() {
    let c = RgbImage::filled_rgb(37, 23, [17, 200, 255]);
    for (w, h) in [(5, 3), (36, 23), (37, 1), (12, 12), (40, 20), (50, 30)] {
        let out = c.resize_area(w, h);
        assert_eq!((out.width, out.height), (w, h));
        assert!(
            out.data.chunks_exact(3).all(|p| p == [17, 200, 255]),
            "{w}x{h}"
        );
    }
    let p = pattern(31, 17);
    assert_eq!(p.resize_area(31, 17), p);
    assert_eq!(p.resize_lanczos4(31, 17), p);
}

#[test]
fn resize_area_matches_opencv() {
    // Non-integer factors on both axes.
    assert_eq!(pattern(13, 11).resize_area(5, 4).data, AREA_13X11_TO_5X4);
    assert_eq!(pattern(8, 4).resize_area(4, 2).data, AREA_8X4_TO_4X2);
    // One side grows: OpenCV's two-tap fixed-point path.
    assert_eq!(pattern(7, 6).resize_area(9, 4).data, AREA_7X6_TO_9X4);
}

#[test]
fn resize_lanczos4_keeps_constants_and_output_size() {
    let c = RgbImage::filled_rgb(11, 7, [0, 128, 255]);
    for (w, h) in [(22, 14), (100, 60), (13, 7), (5, 3)] {
        let out = c.resize_lanczos4(w, h);
        assert_eq!((out.width, out.height, out.data.len()), (w, h, w * h * 3));
        assert!(
            out.data.chunks_exact(3).all(|p| p == [0, 128, 255]),
            "{w}x{h}"
        );
    }
}

#[test]
fn resize_lanczos4_upscales_a_ramp_to_a_ramp_inside() {
    // A linear ramp along x (and a constant along y): away from the replicated edges a
    // 2x upscale samples source position (x + 0.5) / 2 - 0.5 on the same line.
    let (w, h) = (40usize, 6usize);
    let mut src = RgbImage::filled_rgb(w, h, [0, 0, 0]);
    for y in 0..h {
        for x in 0..w {
            let v = (10 + 5 * x) as u8;
            src.put_rgb(x, y, [v, 255 - v, 77]);
        }
    }
    let out = src.resize_lanczos4(2 * w, 2 * h);
    assert_eq!((out.width, out.height), (80, 12));
    for y in 0..2 * h {
        for x in 8..2 * w - 8 {
            let s = (x as f64 + 0.5) / 2.0 - 0.5;
            let want = 10.0 + 5.0 * s;
            let p = out.rgb(x, y);
            assert!((p[0] as f64 - want).abs() <= 1.0, "({x},{y}) {p:?} {want}");
            assert!(
                (p[1] as f64 - (255.0 - want)).abs() <= 1.0,
                "({x},{y}) {p:?}"
            );
            assert_eq!(p[2], 77);
        }
    }
    // Near the edges the replicated border bends the ramp, but only toward the edge value.
    assert!(out.rgb(0, 0)[0] >= 9 && out.rgb(0, 0)[0] <= 11);
}

#[test]
fn resize_lanczos4_matches_opencv() {
    assert_eq!(
        pattern(6, 5).resize_lanczos4(11, 9).data,
        LANCZOS4_6X5_TO_11X9
    );
}

#[test]
fn resize_for_detection_shrinks_with_area_and_enlarges_with_lanczos() {
    let big = pattern(1280, 704);
    let r = resize_for_detection(&big);
    assert_eq!(r, big.resize_area(960, 512));
    assert_ne!(r, big.resize_lanczos4(960, 512));
    let small = pattern(100, 60);
    let r = resize_for_detection(&small);
    assert_eq!(r, small.resize_lanczos4(832, 512));
    assert_ne!(r, small.resize_area(832, 512));
    // Short side exactly 512: k = 1, INTER_AREA at equal size, a copy.
    let same = pattern(896, 512);
    assert_eq!(resize_for_detection(&same), same);
}

#[test]
fn detection_frame_maps_boxes_and_keypoints_per_axis() {
    let d = DetectionFrame::new(&RgbImage::filled_rgb(1280, 704, [9, 9, 9]));
    assert_eq!((d.image.width, d.image.height), (960, 512));
    assert_eq!((d.frame_width, d.frame_height), (1280, 704));
    let b = BBox::new(128.0, 88.0, 640.0, 704.0);
    let r = d.box_to_detection(&b);
    let near = |a: f32, b: f32| (a - b).abs() < 1e-3;
    assert!(near(r.x0, 96.0) && near(r.y0, 64.0) && near(r.x1, 480.0) && near(r.y1, 512.0));
    let back = d.box_to_frame(&r);
    assert!(near(back.x0, b.x0) && near(back.y1, b.y1));
    let body = WholeBody {
        keypoints: vec![scail_stagea::dwpose::Keypoint {
            x: 480.0,
            y: 256.0,
            score: 0.7,
        }],
    };
    let k = d.body_to_frame(&body).keypoints[0];
    assert!(near(k.x, 640.0) && near(k.y, 352.0) && k.score == 0.7);
}

// --- ONNX Runtime, stand-in graphs -------------------------------------------------------

fn standin_pose(rt: &scail_stagea::runtime::RuntimeConfig) -> PoseEstimator {
    PoseEstimator::load(
        Some(&standin_dir().join("yolox_l.onnx")),
        &standin_dir().join("dw-ll_ucoco_384.onnx"),
        rt,
    )
    .unwrap()
}

/// One subject on one frame: the rectangle [x0, x1) x [y0, y1) of a w x h frame.
fn one_subject(w: u32, h: u32, r: [u32; 4]) -> (Mask, SubjectTracks) {
    let m = Mask::from_rect(w, h, r[0], r[1], r[2], r[3]);
    let tracks = SubjectTracks {
        width: w,
        height: h,
        num_frames: 1,
        subjects: vec![SubjectTrack {
            masks: vec![Some(m.clone())],
            scores: vec![Some(1.0)],
        }],
    };
    (m, tracks)
}

fn run_one(pose: &mut PoseEstimator, w: u32, h: u32, r: [u32; 4]) -> WholeBody {
    let (_, tracks) = one_subject(w, h, r);
    let mut out = estimate_pose(pose, &[pattern(w as usize, h as usize)], &tracks).unwrap();
    assert_eq!((out.len(), out[0].len()), (1, 1));
    out.remove(0).remove(0)
}

#[test]
fn estimate_pose_at_512p_is_what_it_was_before_the_resize() {
    let Some(rt) = ort_or_skip("estimate_pose_at_512p_is_what_it_was_before_the_resize") else {
        return;
    };
    let mut pose = standin_pose(&rt);
    for (w, h, r) in [
        (896, 512, [350, 64, 546, 456]),
        (512, 896, [100, 300, 400, 800]),
    ] {
        let (m, tracks) = one_subject(w, h, r);
        let frame = pattern(w as usize, h as usize);
        // The code before this change: the model on the full frame in the mask's box.
        let mut before = pose
            .estimate(&frame, &[m.bbox().unwrap()])
            .unwrap()
            .remove(0);
        restrict_to_mask(&mut before, &m);
        let now = estimate_pose(&mut pose, &[frame], &tracks).unwrap();
        assert_eq!(now[0][0], before, "{w}x{h}");
        assert!(before.keypoints.iter().filter(|k| k.score > 0.0).count() > 100);
    }
}

#[test]
fn estimate_pose_maps_keypoints_from_the_detection_size_back_to_the_frame() {
    let test = "estimate_pose_maps_keypoints_from_the_detection_size_back_to_the_frame";
    let Some(rt) = ort_or_skip(test) else { return };
    let mut pose = standin_pose(&rt);
    // The subject at 896x512 (identity resize); the stand-in's figure is fixed in crop
    // space, so the crop coordinates of its keypoints follow from this run.
    let r512 = [350, 64, 546, 456];
    let base = run_one(&mut pose, 896, 512, r512);
    let crop512 = Crop::from_box(&BBox::new(350.0, 64.0, 546.0, 456.0));
    let uv: Vec<(f32, f32)> = base
        .keypoints
        .iter()
        .map(|k| crop512.forward(k.x, k.y))
        .collect();

    // The same scene at exactly 2x: resized back to 896x512, so every keypoint lands at
    // exactly twice its 512p position.
    let r2 = r512.map(|v| 2 * v);
    let twice = run_one(&mut pose, 1792, 1024, r2);
    for (a, b) in twice.keypoints.iter().zip(&base.keypoints) {
        assert!((a.x - 2.0 * b.x).abs() < 1e-2 && (a.y - 2.0 * b.y).abs() < 1e-2);
        assert_eq!(a.score, b.score);
    }

    // 1280x704 (x 10/7, y 11/8 of the 512p scene: the same rectangle): detection at
    // 960x512, the box there is (375, 64)-(585, 456). Keypoints must be the crop
    // coordinates mapped through that box's crop, then scaled by 1280/960 and 704/512.
    let r704 = [500, 88, 780, 627];
    let body = run_one(&mut pose, 1280, 704, r704);
    let det_box = BBox::new(375.0, 64.0, 585.0, 456.0);
    let crop960 = Crop::from_box(&det_box);
    let mut worst_x = 0f32;
    for (i, (k, &(u, v))) in body.keypoints.iter().zip(&uv).enumerate() {
        let (dx, dy) = crop960.inverse(u, v);
        let (ex, ey) = (dx * 1280.0 / 960.0, dy * 704.0 / 512.0);
        assert!(
            (k.x - ex).abs() < 0.02 && (k.y - ey).abs() < 0.02,
            "kp {i}: {k:?} vs ({ex}, {ey})"
        );
        // Against the 512p run in normalised coordinates: y agrees (the crop is set by
        // the box height, 392 px in both detection images); x offsets from the box
        // centre shrink by 896/960, since 960x512 is 7% wider than 1280x704 scaled.
        let (b, cx) = (&base.keypoints[i], 448.0);
        assert!((k.y / 704.0 - b.y / 512.0).abs() * 512.0 < 0.02, "kp {i}");
        let off704 = k.x / 1280.0 * 896.0 - cx;
        let off512 = (b.x - cx) * 896.0 / 960.0;
        assert!(
            (off704 - off512).abs() < 0.02,
            "kp {i}: {off704} vs {off512}"
        );
        worst_x = worst_x.max((k.x / 1280.0 * 896.0 - b.x).abs());
    }
    // The stand-in ignores the pixels, so the aspect change shows; it stays small.
    assert!(worst_x < 5.0, "{worst_x}");
    assert!(body.keypoints.iter().filter(|k| k.score > 0.0).count() > 100);
}

#[test]
fn detect_people_runs_yolox_on_the_resized_frame() {
    let Some(rt) = ort_or_skip("detect_people_runs_yolox_on_the_resized_frame") else {
        return;
    };
    let mut pose = standin_pose(&rt);
    // A bright block on a dark 1280x704 frame.
    let mut img = RgbImage::filled_rgb(1280, 704, [10, 10, 10]);
    for y in 256..448 {
        for x in 512..704 {
            img.put_rgb(x, y, [250, 250, 250]);
        }
    }
    let boxes = pose.detect_people(&img).unwrap();
    assert!(!boxes.is_empty());
    // The stand-in's boxes are 128 letterbox px square. Letterboxing the 960x512
    // detection image scales by 2/3, so in frame pixels they are 128 * 3/2 * 1280/960 =
    // 256 wide and 128 * 3/2 * 704/512 = 264 tall (on the full frame: 256 x 256).
    for b in &boxes {
        let (cx, cy) = b.centre();
        assert!(
            (512.0..704.0).contains(&cx) && (256.0..448.0).contains(&cy),
            "{b:?}"
        );
        assert!((b.x1 - b.x0 - 256.0).abs() < 0.5, "{b:?}");
        assert!((b.y1 - b.y0 - 264.0).abs() < 0.5, "{b:?}");
    }
    let view = DetectionFrame::new(&img);
    let direct = pose.detect_people_in(&view.image).unwrap();
    assert_eq!(direct.len(), boxes.len());
    // Same boxes as detecting on the detection image and mapping back.
    let again = pose.detect_people_at(&view).unwrap();
    assert_eq!(again, boxes);
    // Estimation in frame-pixel boxes, on the detection image.
    let people = pose.estimate_at(&view, &boxes[..1]).unwrap();
    assert_eq!(people[0].keypoints.len(), 133);
    // The figure fills the padded crop around the box: every keypoint within a quarter
    // of the box's size of it (a box read as detection pixels would put them at 3/4 the
    // distance from the origin, far outside).
    let b = boxes[0];
    let (mw, mh) = ((b.x1 - b.x0) * 0.25, (b.y1 - b.y0) * 0.25);
    for k in &people[0].keypoints {
        assert!(
            k.x >= b.x0 - mw && k.x <= b.x1 + mw && k.y >= b.y0 - mh && k.y <= b.y1 + mh,
            "{k:?} outside {b:?}"
        );
    }
}

// cv2.resize(pattern(w, h), (W, H), interpolation=INTER_AREA / INTER_LANCZOS4), OpenCV 5.0.
const AREA_13X11_TO_5X4: [u8; 60] = [
    30, 131, 189, 108, 168, 88, 129, 115, 132, 135, 104, 119, 137, 132, 135, 132, 140, 109, 116,
    115, 150, 94, 105, 126, 136, 155, 138, 119, 121, 128, 145, 153, 112, 140, 139, 109, 141, 122,
    102, 116, 125, 133, 140, 111, 108, 68, 169, 85, 166, 97, 139, 120, 123, 95, 145, 108, 98, 151,
    157, 97,
];
const AREA_8X4_TO_4X2: [u8; 24] = [
    11, 112, 213, 56, 157, 130, 157, 130, 103, 122, 159, 132, 92, 193, 102, 149, 122, 95, 70, 107,
    144, 111, 84, 121,
];
const AREA_7X6_TO_9X4: [u8; 108] = [
    4, 105, 206, 10, 111, 212, 22, 123, 224, 39, 140, 205, 70, 171, 16, 113, 214, 59, 157, 111,
    103, 182, 51, 153, 177, 107, 208, 39, 140, 241, 47, 148, 128, 62, 163, 93, 82, 184, 102, 117,
    218, 63, 163, 118, 109, 112, 91, 156, 67, 107, 160, 65, 166, 96, 147, 163, 93, 159, 175, 105,
    141, 120, 123, 116, 47, 148, 155, 85, 186, 59, 136, 164, 85, 137, 104, 117, 108, 87, 118, 48,
    149, 115, 131, 61, 130, 146, 76, 115, 167, 97, 93, 170, 124, 135, 65, 166, 189, 119, 147, 144,
    124, 90, 106, 97, 76, 110, 40, 141,
];
const LANCZOS4_6X5_TO_11X9: [u8; 297] = [
    0, 100, 209, 0, 101, 194, 4, 105, 192, 13, 117, 229, 25, 131, 225, 42, 138, 113, 64, 170, 2,
    90, 214, 6, 123, 184, 73, 152, 73, 115, 167, 0, 125, 2, 104, 195, 4, 107, 196, 8, 111, 221, 17,
    120, 255, 32, 124, 255, 54, 123, 132, 70, 165, 8, 84, 239, 13, 121, 223, 81, 178, 95, 115, 212,
    3, 118, 9, 112, 207, 12, 116, 205, 17, 121, 226, 28, 131, 255, 44, 139, 255, 66, 140, 142, 84,
    182, 21, 101, 250, 27, 139, 232, 97, 191, 110, 134, 222, 21, 139, 27, 119, 255, 31, 118, 215,
    38, 125, 139, 48, 150, 136, 54, 191, 157, 60, 228, 112, 98, 233, 47, 163, 195, 50, 185, 132,
    111, 142, 77, 176, 104, 54, 208, 51, 152, 255, 55, 157, 182, 62, 166, 36, 77, 165, 0, 91, 189,
    34, 100, 243, 70, 138, 228, 80, 193, 107, 104, 171, 24, 145, 59, 64, 186, 0, 118, 209, 81, 206,
    152, 83, 232, 102, 92, 240, 26, 112, 163, 6, 152, 83, 39, 195, 99, 71, 196, 122, 118, 137, 67,
    185, 62, 45, 195, 19, 123, 131, 7, 188, 81, 126, 196, 54, 135, 231, 68, 145, 239, 90, 136, 137,
    112, 149, 10, 126, 203, 0, 135, 191, 54, 169, 74, 105, 213, 0, 136, 185, 55, 164, 78, 118, 176,
    4, 176, 103, 104, 203, 120, 122, 213, 130, 152, 140, 102, 168, 60, 60, 187, 72, 56, 222, 104,
    110, 224, 77, 181, 162, 69, 188, 98, 132, 121, 80, 182, 69, 86, 204, 34, 171, 243, 35, 174,
    252, 46, 178, 138, 82, 176, 0, 121, 205, 0, 138, 255, 39, 174, 254, 100, 227, 117, 141, 199,
    34, 179, 76, 99, 196, 0, 173,
];
