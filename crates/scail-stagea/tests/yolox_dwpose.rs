//! Person detection and keypoint decoding on constructed model outputs (no ONNX Runtime
//! needed): YOLOX letterbox, grid decode, NMS and post-processing; the DWPose affine crop and
//! SimCC decode.

use scail_stagea::dwpose::{decode_simcc, keypoints_to_source, Crop, INPUT_H, INPUT_W};
use scail_stagea::yolox::{decode_grid, letterbox, nms, postprocess, STRIDES};
use scail_stagea::{BBox, RgbImage};

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
    assert_eq!(
        (warped.width, warped.height),
        (INPUT_W as usize, INPUT_H as usize)
    );
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
