//! The standard DWPose/OpenPose 2D render: OpenPose-18 body limbs and joints, hands,
//! face points, on black. Written from the published drawing rules (limb ellipses of
//! half-width 4 at 60% intensity, joint discs of radius 4, hand edges 2 px wide in
//! rainbow hues with blue joints, white face points of radius 3).

use crate::dwpose::{Keypoint, WholeBody, NUM_KEYPOINTS, VISIBLE_SCORE};
use crate::frame::RgbImage;

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

/// Renders all people on a black `width` x `height` canvas: body limbs (all people),
/// dimmed to 60%, then body joints, then hands, then faces.
pub fn render_skeleton(width: u32, height: u32, people: &[WholeBody]) -> RgbImage {
    let mut c = RgbImage::new(width as usize, height as usize, 3);
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
            fill_limb(&mut c, pa, pb, 4.0, BODY_COLOURS[li]);
        }
    }
    // The reference dims the whole limb layer (integer truncation) before the joints.
    for v in &mut c.data {
        *v = (*v as f32 * 0.6) as u8;
    }
    for j in 0..18 {
        for (_, body) in &bodies {
            if let Some((x, y)) = body[j] {
                fill_disc(&mut c, x.trunc(), y.trunc(), 4.0, BODY_COLOURS[j]);
            }
        }
    }
    let (w, h) = (width as f32, height as f32);
    // Hands and face use the `>= 0.3` side of the threshold (the reference blanks points
    // scoring below it) plus the edge rule.
    let usable =
        |kp: &Keypoint| kp.score >= VISIBLE_SCORE && kp.x / w > EDGE_EPS && kp.y / h > EDGE_EPS;
    for (p, _) in &bodies {
        for hand in [LEFT_HAND, RIGHT_HAND] {
            let pts = &p.keypoints[hand];
            for (ei, &(a, b)) in HAND_EDGES.iter().enumerate() {
                if usable(&pts[a]) && usable(&pts[b]) {
                    let colour = hsv_to_rgb(ei as f32 / HAND_EDGES.len() as f32);
                    draw_line(
                        &mut c,
                        (pts[a].x.trunc(), pts[a].y.trunc()),
                        (pts[b].x.trunc(), pts[b].y.trunc()),
                        colour,
                    );
                }
            }
            for kp in pts.iter().filter(|kp| usable(kp)) {
                fill_disc(&mut c, kp.x.trunc(), kp.y.trunc(), 4.0, HAND_JOINT_COLOUR);
            }
        }
    }
    for (p, _) in &bodies {
        for kp in p.keypoints[FACE].iter().filter(|kp| usable(kp)) {
            fill_disc(&mut c, kp.x.trunc(), kp.y.trunc(), 3.0, FACE_COLOUR);
        }
    }
    c
}

/// HSV with full saturation and value to RGB8 (matplotlib's rule, rounded).
fn hsv_to_rgb(h: f32) -> [u8; 3] {
    let h6 = (h * 6.0).rem_euclid(6.0);
    let i = h6.floor() as i32;
    let f = h6 - i as f32;
    let (q, t) = (1.0 - f, f);
    let (r, g, b) = match i {
        0 => (1.0, t, 0.0),
        1 => (q, 1.0, 0.0),
        2 => (0.0, 1.0, t),
        3 => (0.0, q, 1.0),
        4 => (t, 0.0, 1.0),
        _ => (1.0, 0.0, q),
    };
    [r, g, b].map(|v: f32| (v * 255.0).round() as u8)
}

fn fill_disc(c: &mut RgbImage, cx: f32, cy: f32, r: f32, colour: [u8; 3]) {
    let (w, h) = (c.width as i64, c.height as i64);
    let ri = r.ceil() as i64;
    let (x0, y0) = (cx as i64, cy as i64);
    for y in (y0 - ri).max(0)..=(y0 + ri).min(h - 1) {
        for x in (x0 - ri).max(0)..=(x0 + ri).min(w - 1) {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            if dx * dx + dy * dy <= r * r + 0.5 {
                c.put_rgb(x as usize, y as usize, colour);
            }
        }
    }
}

/// A filled ellipse along the segment a-b: centre at the (truncated) midpoint, semi-axis
/// half the (truncated) length along the limb, `half_width` across, angle in whole
/// degrees, as the reference's polygonised ellipse.
fn fill_limb(c: &mut RgbImage, a: (f32, f32), b: (f32, f32), half_width: f32, colour: [u8; 3]) {
    let (mx, my) = (((a.0 + b.0) * 0.5).trunc(), ((a.1 + b.1) * 0.5).trunc());
    let len = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
    let semi = ((len / 2.0).trunc()).max(0.5);
    let angle = (a.1 - b.1)
        .atan2(a.0 - b.0)
        .to_degrees()
        .trunc()
        .to_radians();
    let (ca, sa) = (angle.cos(), angle.sin());
    let (w, h) = (c.width as i64, c.height as i64);
    let ext = (semi.max(half_width) + 1.0).ceil() as i64;
    let (cx, cy) = (mx as i64, my as i64);
    for y in (cy - ext).max(0)..=(cy + ext).min(h - 1) {
        for x in (cx - ext).max(0)..=(cx + ext).min(w - 1) {
            let (dx, dy) = (x as f32 - mx, y as f32 - my);
            let u = dx * ca + dy * sa;
            let v = -dx * sa + dy * ca;
            if (u / semi).powi(2) + (v / half_width).powi(2) <= 1.0 + 1e-4 {
                c.put_rgb(x as usize, y as usize, colour);
            }
        }
    }
}

/// A 2 px wide line: pixels within 1 px of the segment.
fn draw_line(c: &mut RgbImage, a: (f32, f32), b: (f32, f32), colour: [u8; 3]) {
    let (w, h) = (c.width as i64, c.height as i64);
    let (x0, x1) = (a.0.min(b.0) as i64 - 1, a.0.max(b.0) as i64 + 1);
    let (y0, y1) = (a.1.min(b.1) as i64 - 1, a.1.max(b.1) as i64 + 1);
    let (ex, ey) = (b.0 - a.0, b.1 - a.1);
    let l2 = ex * ex + ey * ey;
    for y in y0.max(0)..=y1.min(h - 1) {
        for x in x0.max(0)..=x1.min(w - 1) {
            let (px, py) = (x as f32 - a.0, y as f32 - a.1);
            let t = if l2 > 0.0 {
                ((px * ex + py * ey) / l2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (dx, dy) = (px - t * ex, py - t * ey);
            if dx * dx + dy * dy <= 1.0 {
                c.put_rgb(x as usize, y as usize, colour);
            }
        }
    }
}
