//! The pose render against DWPose's drawing done with OpenCV's own primitives
//! (`scripts/skeleton_reference.py`, keypoints and render in `testdata/reference/skeleton`):
//! pixel for pixel. On a failure the message says how far off the differing pixels are.

use scail_stagea::dwpose::{Keypoint, WholeBody};
use scail_stagea::skeleton::render_skeleton;
use scail_stagea::RgbImage;
use serde_json::Value;

fn fixture() -> std::path::PathBuf {
    scail_testdata::reference_dir().join("skeleton")
}

fn load() -> (u32, u32, Vec<WholeBody>, RgbImage) {
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("people.json")).unwrap())
            .unwrap();
    let (w, h) = (
        j["width"].as_u64().unwrap() as u32,
        j["height"].as_u64().unwrap() as u32,
    );
    let people = j["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| WholeBody {
            keypoints: p
                .as_array()
                .unwrap()
                .iter()
                .map(|k| Keypoint {
                    x: k[0].as_f64().unwrap() as f32,
                    y: k[1].as_f64().unwrap() as f32,
                    score: k[2].as_f64().unwrap() as f32,
                })
                .collect(),
        })
        .collect();
    let img = image::open(fixture().join("render.png")).unwrap().to_rgb8();
    let r = RgbImage::from_vec(
        img.width() as usize,
        img.height() as usize,
        3,
        img.into_raw(),
    );
    (w, h, people, r)
}

fn has_near(img: &RgbImage, x: usize, y: usize, colour: [u8; 3]) -> bool {
    let (x0, x1) = (x.saturating_sub(1), (x + 1).min(img.width - 1));
    let (y0, y1) = (y.saturating_sub(1), (y + 1).min(img.height - 1));
    (y0..=y1).any(|yy| (x0..=x1).any(|xx| img.rgb(xx, yy) == colour))
}

#[test]
fn render_matches_dwposes_opencv_drawing_pixel_for_pixel() {
    let (w, h, people, want) = load();
    let ours = render_skeleton(w, h, &people);
    assert_eq!((ours.width, ours.height), (want.width, want.height));
    let (mut differ, mut far) = (0usize, Vec::new());
    let mut drawn = 0usize;
    for y in 0..want.height {
        for x in 0..want.width {
            let (a, b) = (ours.rgb(x, y), want.rgb(x, y));
            drawn += usize::from(b != [0, 0, 0]);
            if a != b {
                differ += 1;
                if !(has_near(&want, x, y, a) && has_near(&ours, x, y, b)) {
                    far.push((x, y, a, b));
                }
            }
        }
    }
    eprintln!(
        "{differ} of {drawn} drawn pixels differ; {} more than 1 px off",
        far.len()
    );
    assert!(drawn > 1000, "the reference draws the scene");
    assert_eq!(
        differ,
        0,
        "{} of them more than 1 px off: {:?}",
        far.len(),
        &far[..far.len().min(20)]
    );
}
