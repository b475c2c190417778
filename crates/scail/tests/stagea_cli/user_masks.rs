//! User-supplied palette masks through `generate`: a two-person run, the subject-count
//! refusal, and masks of another size and rate.

use super::*;

#[test]
fn user_masks_drive_a_two_person_clip_and_the_mask_video_is_returned() {
    let test = "user_masks_drive_a_two_person_clip_and_the_mask_video_is_returned";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let d = inp.dir.path();
    // Animation: reference mask on white, driving masks on black.
    let (ref_mask, drv_mask) = animation_masks(&inp);

    let out = d.join("out.mp4");
    let stdout = ok(&mut generate(
        &inp,
        &out,
        &with_masks(&ref_mask, &drv_mask, &[]),
    ));
    let v: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .expect("a JSON summary line"),
    )
    .unwrap();
    let frames = check_timing(&out, &inp);
    assert_eq!(v["frames"], frames);
    let mask_video = PathBuf::from(v["preprocessing_mask_video"].as_str().unwrap());
    let pre_video = PathBuf::from(v["preprocessing_video"].as_str().unwrap());
    check_timing(&mask_video, &inp);
    check_timing(&pre_video, &inp);

    check_mask_video(&mask_video, frames, |_, x, y| expected_colour(x, y));
    // The lossless copy: FFV1, every pixel exactly a palette colour or black.
    let lossless = PathBuf::from(v["preprocessing_mask_video_lossless"].as_str().unwrap());
    assert_eq!(scail_media::probe(&lossless).unwrap().video.codec, "ffv1");
    let exact = decode(&lossless);
    assert_eq!(exact.len() as u64, frames);
    for (t, m) in exact.iter().enumerate() {
        for y in 0..H {
            for x in 0..W {
                let c = &m.pixel(x, y)[..3];
                assert!(
                    [BLUE, RED, BLACK].iter().any(|p| p[..] == *c),
                    "lossless frame {t} ({x},{y}): {c:?}"
                );
                if boundary_distance(x, y) >= 3 {
                    assert_eq!(c, expected_colour(x, y), "lossless frame {t} ({x},{y})");
                }
            }
        }
    }

    // The masked driving video is black away from both subjects (same codec tolerance).
    for (t, f) in decode(&pre_video).iter().enumerate() {
        for y in 0..H {
            for x in 0..W {
                if expected_colour(x, y) == BLACK && boundary_distance(x, y) >= 3 {
                    assert!(
                        f.pixel(x, y).iter().all(|&v| v < 30),
                        "preprocessing frame {t} ({x},{y}) not black: {:?}",
                        f.pixel(x, y)
                    );
                }
            }
        }
    }
}

#[test]
fn mismatched_subject_counts_in_user_masks_are_refused_by_name() {
    let test = "mismatched_subject_counts_in_user_masks_are_refused_by_name";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let d = inp.dir.path();
    // The reference mask has only the blue subject; the driving masks have blue and red.
    let ref_mask = d.join("ref_mask_one.png");
    let only_blue = |x, y| match expected_colour(x, y) {
        BLUE => BLUE,
        _ => BLACK,
    };
    scail_media::image_io::save_png(&source_mask(WHITE, only_blue), &ref_mask).unwrap();
    let drv_mask = d.join("drv_mask.mp4");
    write_mask_video(&drv_mask, &source_mask(BLACK, expected_colour), 16);
    let out = d.join("refused.mp4");
    let (success, _, all) = run(&mut generate(
        &inp,
        &out,
        &with_masks(&ref_mask, &drv_mask, &[]),
    ));
    assert!(!success, "a 1-vs-2 subject mismatch must fail:\n{all}");
    assert!(
        all.contains("reference image has 1 subject(s)") && all.contains("driving video has 2"),
        "the error must name both counts:\n{all}"
    );
    assert!(!out.exists(), "no output video on refusal");
}

#[test]
fn user_masks_of_another_size_and_rate_are_resampled_and_short_ones_refused() {
    let test = "user_masks_of_another_size_and_rate_are_resampled_and_short_ones_refused";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let d = inp.dir.path();
    // A quarter-size reference mask and a half-size driving mask at 8 fps: nearest
    // resampling in space and time keeps the palette colours.
    let ref_mask = d.join("ref_mask_small.png");
    scail_media::image_io::save_png(&mask_image(32, 16, WHITE, expected_colour), &ref_mask)
        .unwrap();
    let drv_frame = mask_image(SRC_W / 4, SRC_H / 4, BLACK, expected_colour);
    // The red subject enters at mask frame 4 (0.5 s): output frame k shows driving time
    // k/16 s, i.e. mask frame floor(k / 2) (ties go to the earlier frame), so red appears
    // from output frame 8 on.
    let no_red = |x, y| match expected_colour(x, y) {
        RED => BLACK,
        c => c,
    };
    let drv_early = mask_image(SRC_W / 4, SRC_H / 4, BLACK, no_red);
    let drv_mask = d.join("drv_mask_8fps.mp4");
    write_mask_frames(
        &drv_mask,
        &[
            &drv_early, &drv_early, &drv_early, &drv_early, &drv_frame, &drv_frame, &drv_frame,
            &drv_frame,
        ],
        8,
    );
    let out = d.join("resampled.mp4");
    let args = |m: &Path| {
        [
            "--reference-mask".as_ref(),
            ref_mask.as_os_str(),
            "--driving-mask".as_ref(),
            m.as_os_str(),
        ]
        .map(|a: &std::ffi::OsStr| a.to_os_string())
    };
    let a = args(&drv_mask);
    let refs: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
    let stdout = ok(&mut generate(&inp, &out, &refs));
    let v: serde_json::Value =
        serde_json::from_str(stdout.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    let frames = check_timing(&out, &inp);
    let mask_video = PathBuf::from(v["preprocessing_mask_video"].as_str().unwrap());
    assert_eq!(check_timing(&mask_video, &inp), frames);
    check_mask_video(&mask_video, frames, |t, x, y| {
        if t < 8 {
            no_red(x, y)
        } else {
            expected_colour(x, y)
        }
    });

    // Half a second of masks for a one-second clip: refused with both durations.
    let short = d.join("drv_mask_short.mp4");
    write_mask_video_at(&short, &drv_frame, 4, 8);
    let a = args(&short);
    let refs: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
    let out2 = d.join("short.mp4");
    let (success, _, all) = run(&mut generate(&inp, &out2, &refs));
    assert!(!success, "a too-short mask video must be refused:\n{all}");
    assert!(
        all.contains("driving mask video has 8 frames covering 0.500 s")
            && all.contains("needs 1.000 s"),
        "{all}"
    );
    assert!(!out2.exists());
}
