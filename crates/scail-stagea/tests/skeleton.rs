//! Known keypoints -> the skeleton image. The golden PNG is compared exactly; regenerate
//! it only for an intended rendering change with `SCAIL_BLESS=1`.

use scail_stagea::dwpose::{Keypoint, WholeBody, NUM_KEYPOINTS};
use scail_stagea::skeleton::{
    openpose_body, render_skeleton, BODY_COLOURS, FACE, FACE_COLOUR, HAND_JOINT_COLOUR, LEFT_HAND,
    RIGHT_HAND,
};
use scail_stagea::RgbImage;
use std::path::PathBuf;

fn kp(x: f32, y: f32, score: f32) -> Keypoint {
    Keypoint { x, y, score }
}

/// A standing figure centred at `cx` with COCO-WholeBody keypoints, face ring and hands.
fn person(cx: f32, s: f32) -> WholeBody {
    let mut k = vec![kp(0.0, 0.0, 0.0); NUM_KEYPOINTS];
    let body = [
        (0.0, 20.0),   // 0 nose
        (-4.0, 16.0),  // 1 left eye (image right is the person's left: mirror)
        (4.0, 16.0),   // 2 right eye
        (-9.0, 18.0),  // 3 left ear
        (9.0, 18.0),   // 4 right ear
        (-18.0, 40.0), // 5 left shoulder
        (18.0, 40.0),  // 6 right shoulder
        (-26.0, 70.0), // 7 left elbow
        (26.0, 70.0),  // 8 right elbow
        (-30.0, 98.0), // 9 left wrist
        (30.0, 98.0),  // 10 right wrist
        (-12.0, 100.0),
        (12.0, 100.0),
        (-14.0, 140.0),
        (14.0, 140.0),
        (-15.0, 178.0),
        (15.0, 178.0),
    ];
    for (i, &(dx, y)) in body.iter().enumerate() {
        k[i] = kp(cx + dx * s, y * s, 0.9);
    }
    for i in 0..68 {
        let a = i as f32 / 68.0 * std::f32::consts::TAU;
        k[FACE.start + i] = kp(cx + 7.0 * s * a.cos(), 17.0 * s + 8.0 * s * a.sin(), 0.8);
    }
    for (hand, (wx, dir)) in [(LEFT_HAND, (-30.0, -1.0)), (RIGHT_HAND, (30.0, 1.0))] {
        let base = hand.start;
        k[base] = kp(cx + wx * s, 100.0 * s, 0.7);
        for f in 0..5 {
            for j in 0..4 {
                let x = cx + (wx + dir * (f as f32 * 2.5 - 5.0)) * s;
                let y = (104.0 + 3.0 * (j + 1) as f32) * s;
                k[base + 1 + f * 4 + j] = kp(x, y, 0.7);
            }
        }
    }
    WholeBody { keypoints: k }
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/skeleton_two_people.png")
}

fn scene() -> RgbImage {
    let mut a = person(70.0, 1.0);
    // Low-confidence right knee and ankle: those limbs vanish.
    a.keypoints[14].score = 0.2;
    a.keypoints[16].score = 0.3;
    let b = person(190.0, 1.05);
    render_skeleton(256, 200, &[a, b])
}

#[test]
fn skeleton_matches_golden_png() {
    let img = scene();
    let path = golden_path();
    if std::env::var_os("SCAIL_BLESS").is_some() {
        image::save_buffer(
            &path,
            &img.data,
            img.width as u32,
            img.height as u32,
            image::ColorType::Rgb8,
        )
        .unwrap();
    }
    let golden = image::open(&path)
        .unwrap_or_else(|e| panic!("golden {} unreadable: {e}", path.display()))
        .to_rgb8();
    assert_eq!(golden.dimensions(), (img.width as u32, img.height as u32));
    let diff = golden
        .as_raw()
        .iter()
        .zip(&img.data)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(diff, 0, "{diff} bytes differ from the golden skeleton");
}

#[test]
fn skeleton_colours_follow_the_openpose_rules() {
    let p = person(70.0, 1.0);
    let img = render_skeleton(256, 200, std::slice::from_ref(&p));
    let body = openpose_body(&p);
    // Neck = mid-shoulders.
    assert_eq!(body[1], Some((70.0, 40.0)));
    // Joint discs at full colour: nose (joint 0) red, right shoulder (joint 2) orange.
    assert_eq!(img.rgb(70, 20), BODY_COLOURS[0]);
    assert_eq!(img.rgb(88, 40), BODY_COLOURS[2]);
    // Limb pixels at 60%: the right upper arm (limb 2, joints 3-4) midway shoulder->elbow,
    // away from the joint discs.
    let mid = img.rgb(92, 55);
    assert_eq!(mid, BODY_COLOURS[2].map(|c| (c as f32 * 0.6) as u8));
    // Face points white, hand joints blue.
    let f = p.keypoints[FACE.start];
    assert_eq!(img.rgb(f.x as usize, f.y as usize), FACE_COLOUR);
    let h = p.keypoints[RIGHT_HAND.start + 4];
    assert_eq!(img.rgb(h.x as usize, h.y as usize), HAND_JOINT_COLOUR);
    // Background black far from the figure.
    assert_eq!(img.rgb(250, 5), [0, 0, 0]);
    // Below 0.3 nothing is drawn for that joint.
    let mut q = p.clone();
    q.keypoints[0].score = 0.29;
    let img2 = render_skeleton(256, 200, &[q]);
    assert_ne!(img2.rgb(70, 20), BODY_COLOURS[0]);
}
