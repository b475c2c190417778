//! The standard DWPose/OpenPose 2D render: OpenPose-18 body limbs and joints, hands,
//! face points, on black. Written from the published drawing rules (limb ellipses of
//! half-width 4 at 60% intensity, joint discs of radius 4, hand edges 2 px wide in
//! rainbow hues with blue joints, white face points of radius 3), drawn with OpenCV's
//! rasterisation ([`crate::raster`]) and DWPose's float32 arithmetic (points normalised by
//! the frame size and scaled back, truncated to whole pixels), so the render is the
//! reference's pixel for pixel.

use crate::dwpose::{Keypoint, WholeBody, NUM_KEYPOINTS, VISIBLE_SCORE};
use crate::frame::RgbImage;
use crate::raster::{ellipse_poly, fill_circle, fill_convex_poly, thick_line};

/// OpenPose-18 joint i is COCO-WholeBody keypoint `OPENPOSE_FROM_COCO[i]`; joint 1 (the
/// neck) is synthesised from the shoulders and marked with `usize::MAX`.
pub const OPENPOSE_FROM_COCO: [usize; 18] = [
    0,
    usize::MAX,
    6,
    8,
    10,
    5,
    7,
    9,
    12,
    14,
    16,
    11,
    13,
    15,
    2,
    1,
    4,
    3,
];

/// Limbs as 1-based OpenPose joint pairs; only the first 17 are drawn.
const LIMBS: [(usize, usize); 17] = [
    (2, 3),
    (2, 6),
    (3, 4),
    (4, 5),
    (6, 7),
    (7, 8),
    (2, 9),
    (9, 10),
    (10, 11),
    (2, 12),
    (12, 13),
    (13, 14),
    (2, 1),
    (1, 15),
    (15, 17),
    (1, 16),
    (16, 18),
];

pub const BODY_COLOURS: [[u8; 3]; 18] = [
    [255, 0, 0],
    [255, 85, 0],
    [255, 170, 0],
    [255, 255, 0],
    [170, 255, 0],
    [85, 255, 0],
    [0, 255, 0],
    [0, 255, 85],
    [0, 255, 170],
    [0, 255, 255],
    [0, 170, 255],
    [0, 85, 255],
    [0, 0, 255],
    [85, 0, 255],
    [170, 0, 255],
    [255, 0, 255],
    [255, 0, 170],
    [255, 0, 85],
];

const HAND_EDGES: [(usize, usize); 20] = [
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 4),
    (0, 5),
    (5, 6),
    (6, 7),
    (7, 8),
    (0, 9),
    (9, 10),
    (10, 11),
    (11, 12),
    (0, 13),
    (13, 14),
    (14, 15),
    (15, 16),
    (0, 17),
    (17, 18),
    (18, 19),
    (19, 20),
];

pub const HAND_JOINT_COLOUR: [u8; 3] = [0, 0, 255];
pub const FACE_COLOUR: [u8; 3] = [255, 255, 255];
/// Range of the 68 face points and the two hands in the 133-keypoint layout.
pub const FACE: std::ops::Range<usize> = 23..91;
pub const LEFT_HAND: std::ops::Range<usize> = 91..112;
pub const RIGHT_HAND: std::ops::Range<usize> = 112..133;
/// Hand and face points closer than this fraction of the frame to the top or left edge
/// are treated as missing (the reference's `eps`).
const EDGE_EPS: f32 = 0.01;

/// OpenPose-18 body joints for one person: pixel position when visible.
pub fn openpose_body(p: &WholeBody) -> [Option<(f32, f32)>; 18] {
    let k = &p.keypoints;
    let vis = |kp: &Keypoint| kp.score > VISIBLE_SCORE;
    let mut out = [None; 18];
    for (i, &c) in OPENPOSE_FROM_COCO.iter().enumerate() {
        out[i] = if c == usize::MAX {
            let (l, r) = (&k[5], &k[6]);
            (vis(l) && vis(r)).then_some(((l.x + r.x) * 0.5, (l.y + r.y) * 0.5))
        } else {
            vis(&k[c]).then_some((k[c].x, k[c].y))
        };
    }
    out
}

/// A point as DWPose's drawing sees it: normalised by the frame size, scaled back (both in
/// float32), truncated to whole pixels.
fn px(v: f32, size: f32) -> f32 {
    (v / size) * size
}

/// Renders all people on a black `width` x `height` canvas: body limbs (all people),
/// dimmed to 60%, then body joints, then hands, then faces.
pub fn render_skeleton(width: u32, height: u32, people: &[WholeBody]) -> RgbImage {
    let mut c = RgbImage::new(width as usize, height as usize, 3);
    let (w, h) = (width as f32, height as f32);
    let bodies: Vec<_> = people
        .iter()
        .filter(|p| p.keypoints.len() == NUM_KEYPOINTS)
        .map(|p| (p, openpose_body(p)))
        .collect();
    for (li, &(a, b)) in LIMBS.iter().enumerate() {
        for (_, body) in &bodies {
            let (Some(pa), Some(pb)) = (body[a - 1], body[b - 1]) else {
                continue;
            };
            let (xa, ya, xb, yb) = (px(pa.0, w), px(pa.1, h), px(pb.0, w), px(pb.1, h));
            let (mx, my) = ((xa + xb) / 2.0, (ya + yb) / 2.0);
            let length = ((ya - yb).powi(2) + (xa - xb).powi(2)).sqrt();
            // math.degrees divides by pi/180.
            let angle = ((ya - yb) as f64).atan2((xa - xb) as f64) / (std::f64::consts::PI / 180.0);
            let poly = ellipse_poly(
                (mx as i64, my as i64),
                ((length / 2.0) as i64, 4),
                angle as i64,
            );
            fill_convex_poly(&mut c, &poly, BODY_COLOURS[li], 0);
        }
    }
    // The reference dims the whole limb layer (integer truncation) before the joints.
    for v in &mut c.data {
        *v = (*v as f32 * 0.6) as u8;
    }
    for j in 0..18 {
        for (_, body) in &bodies {
            if let Some((x, y)) = body[j] {
                let centre = (px(x, w) as i64, px(y, h) as i64);
                fill_circle(&mut c, centre, 4, BODY_COLOURS[j]);
            }
        }
    }
    // Hands and face use the `>= 0.3` side of the threshold (the reference blanks points
    // scoring below it) plus the edge rule on normalised coordinates.
    let usable =
        |kp: &Keypoint| kp.score >= VISIBLE_SCORE && kp.x / w > EDGE_EPS && kp.y / h > EDGE_EPS;
    let at = |kp: &Keypoint| (px(kp.x, w) as i64, px(kp.y, h) as i64);
    for (p, _) in &bodies {
        for hand in [LEFT_HAND, RIGHT_HAND] {
            let pts = &p.keypoints[hand];
            for (ei, &(a, b)) in HAND_EDGES.iter().enumerate() {
                if usable(&pts[a]) && usable(&pts[b]) {
                    let colour = hsv_to_rgb(ei as f64 / HAND_EDGES.len() as f64);
                    thick_line(&mut c, at(&pts[a]), at(&pts[b]), 2, colour);
                }
            }
            for kp in pts.iter().filter(|kp| usable(kp)) {
                fill_circle(&mut c, at(kp), 4, HAND_JOINT_COLOUR);
            }
        }
    }
    for (p, _) in &bodies {
        for kp in p.keypoints[FACE].iter().filter(|kp| usable(kp)) {
            fill_circle(&mut c, at(kp), 3, FACE_COLOUR);
        }
    }
    c
}

/// HSV with full saturation and value to RGB8 (matplotlib's rule; OpenCV rounds the float
/// colour to the nearest integer, ties to even).
fn hsv_to_rgb(h: f64) -> [u8; 3] {
    let h6 = (h * 6.0).rem_euclid(6.0);
    let i = h6.floor() as i32;
    let f = h6 - i as f64;
    // matplotlib's q = v(1 - sf) and t = v(1 - s(1 - f)), with s = v = 1.
    let (q, t) = (1.0 - f, 1.0 - (1.0 - f));
    let (r, g, b) = match i {
        0 => (1.0, t, 0.0),
        1 => (q, 1.0, 0.0),
        2 => (0.0, 1.0, t),
        3 => (0.0, q, 1.0),
        4 => (t, 0.0, 1.0),
        _ => (1.0, 0.0, q),
    };
    [r, g, b].map(|v: f64| (v * 255.0).round_ties_even() as u8)
}
