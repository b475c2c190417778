//! DWPose host code against rtmlib's (`scripts/dwpose_reference.py`): on the same frame and
//! the same graph outputs, scail's letterbox, YOLOX decode and NMS, affine crop, SimCC decode
//! and inverse mapping give rtmlib's boxes, crops and keypoints. Sizes and thresholds are
//! read from the fixture and checked against scail's constants.
//!
//! Pixels: the letterbox is OpenCV's fixed-point `resize`, reproduced exactly. The crop goes
//! through OpenCV's fixed-point `warpAffine` in rtmlib and a float bilinear here, so its
//! pixels may differ by one level (a rounding step); the geometry (crop centre and scale) is
//! exact, and boxes and keypoints, which the graphs' outputs and this geometry alone decide,
//! agree to 1e-3 px.

use std::path::{Path, PathBuf};

use scail_stagea::dwpose::{
    decode_simcc, keypoints_to_source, Crop, INPUT_H, INPUT_W, NUM_KEYPOINTS,
};
use scail_stagea::yolox::{letterbox, postprocess, INPUT_SIZE, NMS_IOU, NMS_SCORE, PERSON_SCORE};
use scail_stagea::{BBox, RgbImage};
use serde_json::Value;

const PX_TOL: f32 = 1e-3;

fn fixture() -> PathBuf {
    scail_testdata::reference_dir().join("dwpose")
}

fn expected() -> Value {
    let p = fixture().join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("JSON")
}

fn rgb(path: &Path) -> RgbImage {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    RgbImage::from_vec(w as usize, h as usize, 3, img.into_raw())
}

fn floats(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn f(v: &Value) -> f32 {
    v.as_f64().expect("number") as f32
}

fn bbox(v: &Value) -> BBox {
    BBox::new(f(&v[0]), f(&v[1]), f(&v[2]), f(&v[3]))
}

/// Pixels differing, and by how much at most.
fn pixel_diff(a: &[u8], b: &[u8]) -> (usize, u8) {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|(x, y)| x != y)
        .fold((0, 0), |(n, m), (x, y)| (n + 1, m.max(x.abs_diff(*y))))
}

#[test]
fn the_fixture_uses_scails_sizes_and_thresholds() {
    let e = expected();
    assert_eq!(e["det_size"][0].as_u64(), Some(INPUT_SIZE as u64));
    assert_eq!(e["pose_size"][0].as_u64(), Some(INPUT_W as u64));
    assert_eq!(e["pose_size"][1].as_u64(), Some(INPUT_H as u64));
    assert_eq!(e["keypoints"].as_u64(), Some(NUM_KEYPOINTS as u64));
    assert_eq!(f(&e["nms_iou"]), NMS_IOU);
    assert_eq!(f(&e["nms_score"]), NMS_SCORE);
    assert_eq!(f(&e["person_score"]), PERSON_SCORE);
}

#[test]
fn letterbox_matches_rtmlib() {
    let e = expected();
    let frame = rgb(&fixture().join("frame.png"));
    let lb = letterbox(&frame, INPUT_SIZE);
    assert!((lb.scale as f64 - e["ratio"].as_f64().unwrap()).abs() < 1e-6);
    // rtmlib's padded input, stored RGB; ours is CHW in BGR order, raw 0-255 floats.
    let want = rgb(&fixture().join("letterbox.png"));
    let n = (INPUT_SIZE * INPUT_SIZE) as usize;
    let ours: Vec<u8> = (0..n)
        .flat_map(|p| (0..3).map(move |c| (p, c)))
        .map(|(p, c)| lb.chw[(2 - c) * n + p] as u8)
        .collect();
    // Placement and padding exact: every pixel that is 114 in one is 114 in the other
    // outside the resized image, and the resized area has the same extent.
    let (nw, nh) = (
        (frame.width as f64 * e["ratio"].as_f64().unwrap()) as usize,
        (frame.height as f64 * e["ratio"].as_f64().unwrap()) as usize,
    );
    for y in 0..INPUT_SIZE as usize {
        for x in 0..INPUT_SIZE as usize {
            if x >= nw || y >= nh {
                let p = (y * INPUT_SIZE as usize + x) * 3;
                assert_eq!(&ours[p..p + 3], &[114, 114, 114], "padding at ({x}, {y})");
                assert_eq!(&want.data[p..p + 3], &[114, 114, 114]);
            }
        }
    }
    let (n_diff, max) = pixel_diff(&ours, &want.data);
    eprintln!(
        "letterbox: {n_diff} of {} values differ, by at most {max}",
        ours.len()
    );
    assert_eq!(
        n_diff, 0,
        "letterbox pixels differ from OpenCV's, by up to {max}"
    );
}

#[test]
fn yolox_boxes_match_rtmlib_nms_and_dwpose_person_rule() {
    let e = expected();
    let raw = floats(&fixture().join("yolox_output.f32"));
    let row = raw.len() / 8400;
    let ratio = e["ratio"].as_f64().unwrap() as f32;
    let ours = postprocess(&raw, row, INPUT_SIZE, ratio).unwrap();
    let persons = e["persons"].as_array().unwrap();
    assert!(!persons.is_empty(), "the fixture keeps at least one person");
    assert_eq!(ours.len(), persons.len(), "people kept");
    for (d, p) in ours.iter().zip(persons) {
        let want = bbox(&p["box"]);
        for (a, b) in [
            (d.bbox.x0, want.x0),
            (d.bbox.y0, want.y0),
            (d.bbox.x1, want.x1),
            (d.bbox.y1, want.y1),
        ] {
            assert!((a - b).abs() <= PX_TOL, "box {:?} vs {want:?}", d.bbox);
        }
    }
    // rtmlib's class-aware NMS keeps more (other classes, weak people); each of its class-0
    // detections above the person threshold is one of ours, and no other.
    let nms = e["nms"].as_array().unwrap();
    let kept: Vec<_> = nms
        .iter()
        .filter(|d| d["class"].as_u64() == Some(0) && f(&d["score"]) > PERSON_SCORE)
        .collect();
    assert_eq!(kept.len(), ours.len());
    for (d, k) in ours.iter().zip(kept) {
        assert!((d.score - f(&k["score"])).abs() < 1e-6);
    }
}

#[test]
fn crops_and_keypoints_match_rtmlib() {
    let e = expected();
    let frame = rgb(&fixture().join("frame.png"));
    let k = e["keypoints"].as_u64().unwrap() as usize;
    for (i, p) in e["persons"].as_array().unwrap().iter().enumerate() {
        let crop = Crop::from_box(&bbox(&p["box"]));
        for (got, want) in [
            (crop.centre.0, &p["center"][0]),
            (crop.centre.1, &p["center"][1]),
            (crop.scale.0, &p["scale"][0]),
            (crop.scale.1, &p["scale"][1]),
        ] {
            assert!(
                (got - f(want)).abs() <= PX_TOL,
                "person {i}: {got} vs {want}"
            );
        }
        let ours = crop.warp(&frame);
        let want = rgb(&fixture().join(format!("crop_{i}.png")));
        assert_eq!(
            (ours.width, ours.height),
            (INPUT_W as usize, INPUT_H as usize)
        );
        let (n_diff, max) = pixel_diff(&ours.data, &want.data);
        eprintln!(
            "crop {i}: {n_diff} of {} values differ, by at most {max}",
            ours.data.len()
        );
        assert!(max <= 1, "person {i}: crop pixels differ by {max} levels");

        let sim = floats(&fixture().join(format!("simcc_{i}.f32")));
        let wx = 2 * INPUT_W as usize;
        let (sx, sy) = sim.split_at(k * wx);
        let decoded = decode_simcc(sx, sy, k).unwrap();
        let body = keypoints_to_source(&crop, &decoded);
        let mut lost = 0;
        for (j, kp) in body.keypoints.iter().enumerate() {
            // DWPose's confidence: the smaller maximum (rtmlib 0.0.16 averages them), and a
            // keypoint at or below 0 sits at SimCC index -1. Where only the average is
            // positive rtmlib keeps the location; DWPose's rule is checked instead.
            let conf = f(&p["max_x"][j]).min(f(&p["max_y"][j]));
            assert_eq!(kp.score, conf, "person {i} keypoint {j} confidence");
            let (wx, wy) = if conf <= 0.0 {
                lost += 1;
                crop.inverse(-0.5, -0.5)
            } else {
                let w = &p["keypoints"][j];
                (f(&w[0]), f(&w[1]))
            };
            assert!(
                (kp.x - wx).abs() <= PX_TOL && (kp.y - wy).abs() <= PX_TOL,
                "person {i} keypoint {j}: ({}, {}) vs ({wx}, {wy})",
                kp.x,
                kp.y
            );
        }
        assert!(lost > 0, "the fixture exercises the -1 rule");
    }
}
