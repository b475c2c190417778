//! Stage A's palette masks through the media crate's 28-channel compression, exactly: the
//! reference mask (image normalisation, area-pooled to the latent grid) and the driving masks
//! (video normalisation, bilinear x0.5, area-pooled, four frames per latent frame).
//!
//! Expected values come from the geometry of constructed masks: with pixel values only 0 or
//! 255, a bilinear x0.5 sample (the mean of a 2x2 block) is above the on-threshold (0.529)
//! only when all four source pixels have the channel at 255, and a latent cell's value is the
//! fraction of its 8x8 half- (or full-) resolution pixels of that colour.

use scail_media::frame::Tensor;
use scail_media::mask::{driving_mask_latent, reference_mask_latent, MaskColor};
use scail_media::mask::{BLACK, PALETTE, WHITE};
use scail_stagea::stagea::{
    run_stage_a, Clip, DrivingType, StageAConfig, StageAInputs, StageAModels, SubjectType,
};
use scail_stagea::Mode;
use scail_stagea::RgbImage;

const W: usize = 64;
const H: usize = 32;
const BLUE: [u8; 3] = PALETTE[0];
const RED: [u8; 3] = PALETTE[1];

fn paint(bg: [u8; 3], colour: impl Fn(usize, usize) -> Option<[u8; 3]>) -> RgbImage {
    let mut img = RgbImage::filled_rgb(W, H, bg);
    for y in 0..H {
        for x in 0..W {
            if let Some(c) = colour(x, y) {
                img.put_rgb(x, y, c);
            }
        }
    }
    img
}

/// Value at `[c, t, y, x]` of a `[28, T, H, W]` tensor.
fn at(t: &Tensor, c: usize, f: usize, y: usize, x: usize) -> f32 {
    let (tt, hh, ww) = (t.shape[1], t.shape[2], t.shape[3]);
    t.data[((c * tt + f) * hh + y) * ww + x]
}

/// Colour of a pixel by the on-rule, None for black.
fn colour(p: [u8; 3]) -> Option<MaskColor> {
    MaskColor::classify(p)
}

/// The half-resolution colour of `img` at (hx, hy): a channel is on when all four source
/// pixels have it at 255 (values are only 0 or 255 here).
fn half_colour(img: &RgbImage, hx: usize, hy: usize) -> Option<MaskColor> {
    let mut on = [true; 3];
    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let p = img.rgb(2 * hx + dx, 2 * hy + dy);
        for c in 0..3 {
            on[c] &= p[c] == 255;
        }
    }
    colour(on.map(|b| if b { 255 } else { 0 }))
}

/// Expected `[7, H_lat, W_lat]` fractions of one frame whose pixel colours (at a resolution 8x
/// the latent grid) are given by `colour_at`.
fn expected_fractions(
    w: usize,
    h: usize,
    colour_at: impl Fn(usize, usize) -> Option<MaskColor>,
) -> Vec<f32> {
    let (wl, hl) = (w / 8, h / 8);
    let mut out = vec![0.0f32; 7 * hl * wl];
    for y in 0..h {
        for x in 0..w {
            if let Some(c) = colour_at(x, y) {
                let i = (c.channel() * hl + y / 8) * wl + x / 8;
                out[i] += 1.0 / 64.0;
            }
        }
    }
    out
}

/// Checks every channel of a compressed tensor against per-frame expected fractions: latent
/// frame 0 holds frame 0 four times, latent frame k >= 1 holds frames 4k-3 .. 4k.
fn check_packing(t: &Tensor, per_frame: &[Vec<f32>]) {
    let (tl, hl, wl) = (t.shape[1], t.shape[2], t.shape[3]);
    assert_eq!(t.shape[0], 28);
    assert_eq!(tl, (per_frame.len() - 1) / 4 + 1);
    for f in 0..tl {
        for j in 0..4 {
            let src = if f == 0 { 0 } else { 4 * f - 3 + j };
            for k in 0..7 {
                for y in 0..hl {
                    for x in 0..wl {
                        let want = per_frame[src][(k * hl + y) * wl + x];
                        let got = at(t, 7 * j + k, f, y, x);
                        // Sums of ones divided by 8 twice: exact in float32.
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "channel {} (sub-frame {j}, colour {k}) latent frame {f} cell ({x},{y}): {got} vs {want}",
                            7 * j + k
                        );
                    }
                }
            }
        }
    }
}

fn stage_a(
    mode: Mode,
    reference_mask: RgbImage,
    driving_masks: Vec<RgbImage>,
) -> (RgbImage, Vec<RgbImage>) {
    let cfg = StageAConfig::new(mode, DrivingType::EndToEnd, SubjectType::Human);
    let n = driving_masks.len();
    let inputs = StageAInputs {
        reference: RgbImage::filled_rgb(W, H, [90, 120, 150]),
        reference_alpha: None,
        driving: Clip {
            frames: vec![RgbImage::filled_rgb(W, H, [200, 100, 50]); n],
            fps: 16.0,
        },
        reference_mask: Some(reference_mask),
        driving_mask: Some(Clip {
            frames: driving_masks,
            fps: 16.0,
        }),
        pose_video: None,
    };
    // User masks: no model is needed.
    let out = run_stage_a(&cfg, &inputs, &mut StageAModels::default()).unwrap();
    assert_eq!(out.driving_mask.len(), n);
    (out.reference_mask, out.driving_mask)
}

#[test]
fn animation_masks_give_exact_one_hot_area_fractions() {
    // Blue subject on the left (odd right edge at x = 21), red subject top right (odd left
    // edge at x = 39), occluded in frame 3; in frame 0 blue reaches x = 32.
    let blue_end = |f: usize| if f == 0 { 32 } else { 21 };
    let subjects = |f: usize| {
        move |x: usize, y: usize| {
            if x < blue_end(f) {
                Some(BLUE)
            } else if x >= 39 && y < 16 && f != 3 {
                Some(RED)
            } else {
                None
            }
        }
    };
    // User masks handed in with another background than the mode's: Stage A repaints them.
    let ref_in = paint(BLACK, subjects(1));
    let drv_in: Vec<RgbImage> = (0..5).map(|f| paint(WHITE, subjects(f))).collect();
    let (ref_mask, drv_masks) = stage_a(Mode::Animation, ref_in, drv_in);

    // Animation: the reference on white, the driving masks on black.
    assert_eq!(ref_mask, paint(WHITE, subjects(1)));
    for (f, m) in drv_masks.iter().enumerate() {
        assert_eq!(*m, paint(BLACK, subjects(f)), "driving mask {f}");
    }

    let r = reference_mask_latent(&ref_mask).unwrap();
    assert_eq!(r.shape, vec![28, 1, 4, 8]);
    let want = expected_fractions(W, H, |x, y| colour(ref_mask.rgb(x, y)));
    check_packing(&r, &[want]);
    // By hand: cell 2 holds 5 blue columns of 8, cell 4 one red column.
    let (white, red, blue) = (
        MaskColor::White.channel(),
        MaskColor::Red.channel(),
        MaskColor::Blue.channel(),
    );
    assert_eq!(at(&r, blue, 0, 0, 2), 0.625);
    assert_eq!(at(&r, white, 0, 0, 2), 0.375);
    assert_eq!(at(&r, red, 0, 1, 4), 0.125);
    assert_eq!(at(&r, white, 0, 2, 4), 1.0);
    // Every sub-frame slot repeats the single reference frame.
    assert_eq!(at(&r, 21 + blue, 0, 0, 2), 0.625);

    let d = driving_mask_latent(&drv_masks).unwrap();
    assert_eq!(d.shape, vec![28, 2, 2, 4]);
    let per_frame: Vec<Vec<f32>> = drv_masks
        .iter()
        .map(|m| expected_fractions(W / 2, H / 2, |x, y| half_colour(m, x, y)))
        .collect();
    check_packing(&d, &per_frame);
    // By hand: the odd edges lose one half-resolution column (the 2x2 mean with black is
    // below the threshold): blue covers half columns 0..10, red 20..32.
    assert_eq!(at(&d, blue, 0, 0, 1), 1.0); // frame 0: blue to x = 32
    assert_eq!(at(&d, blue, 1, 0, 1), 0.25); // frames 1-4: half columns 8, 9
    assert_eq!(at(&d, red, 1, 0, 2), 0.5); // half columns 20..24
    assert_eq!(at(&d, red, 1, 1, 2), 0.0); // red only in the top half
    assert_eq!(at(&d, 14 + red, 1, 0, 3), 0.0); // sub-frame 2 = frame 3: occluded
    assert_eq!(at(&d, 21 + red, 1, 0, 3), 1.0);
    // Black is no channel: the white channel stays empty everywhere.
    for j in 0..4 {
        for f in 0..2 {
            for y in 0..2 {
                for x in 0..4 {
                    assert_eq!(at(&d, 7 * j + white, f, y, x), 0.0);
                }
            }
        }
    }
}

#[test]
fn replacement_masks_on_white_keep_blended_edges_on_the_blue_channel() {
    let blue = |x: usize, _y: usize| (x < 21).then_some(BLUE);
    let (ref_mask, drv_masks) = stage_a(
        Mode::Replacement,
        paint(WHITE, blue),
        (0..5).map(|_| paint(BLACK, blue)).collect(),
    );
    // Replacement: the reference on black, the driving masks on white.
    assert_eq!(ref_mask, paint(BLACK, blue));
    assert!(drv_masks.iter().all(|m| *m == paint(WHITE, blue)));

    let r = reference_mask_latent(&ref_mask).unwrap();
    check_packing(
        &r,
        &[expected_fractions(W, H, |x, y| colour(ref_mask.rgb(x, y)))],
    );
    let (wc, bc) = (MaskColor::White.channel(), MaskColor::Blue.channel());
    assert_eq!(at(&r, bc, 0, 3, 2), 0.625);
    assert_eq!(at(&r, wc, 0, 3, 2), 0.0);

    let d = driving_mask_latent(&drv_masks).unwrap();
    let per_frame: Vec<Vec<f32>> = drv_masks
        .iter()
        .map(|m| expected_fractions(W / 2, H / 2, |x, y| half_colour(m, x, y)))
        .collect();
    check_packing(&d, &per_frame);
    // Blue beside white: the blended edge column keeps its blue channel on (both pixels
    // have B = 255) and loses red and green, so it counts as blue: 11 half columns.
    assert_eq!(at(&d, bc, 1, 1, 1), 0.375);
    assert_eq!(at(&d, wc, 1, 1, 1), 0.625);
    assert_eq!(at(&d, wc, 1, 1, 3), 1.0);
}
