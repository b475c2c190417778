//! User-supplied palette masks (the `reference_mask_url` / `driving_mask_url` extensions)
//! without any model: subject identity by palette colour, counted the same way on both sides.

use scail_media::mask::{BLACK, PALETTE, WHITE};
use scail_stagea::stagea::{
    run_stage_a, Clip, DrivingType, StageAConfig, StageAInputs, StageAModels, SubjectType,
};
use scail_stagea::Mode;
use scail_stagea::RgbImage;

const W: usize = 48;
const H: usize = 32;

fn block(bg: [u8; 3], colour: [u8; 3], x0: usize, x1: usize) -> RgbImage {
    let mut img = RgbImage::filled_rgb(W, H, bg);
    for y in 4..28 {
        for x in x0..x1 {
            img.put_rgb(x, y, colour);
        }
    }
    img
}

fn inputs(reference_mask: RgbImage, driving: Vec<RgbImage>) -> StageAInputs {
    let n = driving.len();
    StageAInputs {
        reference: RgbImage::filled_rgb(W, H, [100, 100, 100]),
        reference_alpha: None,
        driving: Clip {
            frames: vec![RgbImage::filled_rgb(W, H, [50, 60, 70]); n],
            fps: 16.0,
        },
        reference_mask: Some(reference_mask),
        driving_mask: Some(Clip {
            frames: driving,
            fps: 16.0,
        }),
        pose_video: None,
    }
}

#[test]
fn two_user_subjects_keep_their_colours_and_backgrounds() {
    let cfg = StageAConfig::new(Mode::Animation, DrivingType::EndToEnd, SubjectType::Human);
    let mut two = block(WHITE, PALETTE[0], 4, 16);
    for y in 4..28 {
        for x in 30..44 {
            two.put_rgb(x, y, PALETTE[1]);
        }
    }
    let mut drv = block(BLACK, PALETTE[0], 2, 14);
    for y in 4..28 {
        for x in 32..46 {
            drv.put_rgb(x, y, PALETTE[1]);
        }
    }
    let out = run_stage_a(
        &cfg,
        &inputs(two.clone(), vec![drv.clone(); 3]),
        &mut StageAModels::default(),
    )
    .unwrap();
    assert_eq!(out.num_subjects, 2);
    assert_eq!(out.reference_mask, two);
    assert!(out.driving_mask.iter().all(|m| *m == drv));
    // The masked driving video keeps the source inside the subjects, black elsewhere.
    let v = &out.driving_video[0];
    assert_eq!(v.rgb(5, 10), [50, 60, 70]);
    assert_eq!(v.rgb(20, 10), BLACK);
    assert_eq!(v.rgb(40, 10), [50, 60, 70]);
}

#[test]
fn one_red_subject_in_both_masks_is_one_subject() {
    let cfg = StageAConfig::new(Mode::Animation, DrivingType::EndToEnd, SubjectType::Human);
    let reference = block(WHITE, PALETTE[1], 10, 30);
    let driving = vec![block(BLACK, PALETTE[1], 12, 32); 3];
    let out = run_stage_a(
        &cfg,
        &inputs(reference, driving),
        &mut StageAModels::default(),
    )
    .unwrap();
    assert_eq!(out.num_subjects, 1);
}
