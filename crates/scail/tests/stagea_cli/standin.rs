//! The stand-in SAM3 and DWPose graphs through ONNX Runtime, end to end: segmentation and
//! the skeleton video, each timed like the driving video.

use super::*;

#[test]
fn standin_segmentation_through_generate_gives_timed_stage_a_videos() {
    let test = "standin_segmentation_through_generate_gives_timed_stage_a_videos";
    if !ort_or_skip(test) {
        return;
    }
    let Some(inp) = inputs(test, STANDIN_CLIP_S) else {
        return;
    };
    let out = inp.dir.path().join("seg.mp4");
    // No masks: both the reference and every driving frame go through the stand-in SAM3
    // graphs that `init-random` wrote into WEIGHTS/stagea.
    let stdout = ok(&mut generate(&inp, &out, &[]));
    let v: serde_json::Value =
        serde_json::from_str(stdout.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    let frames = check_timing(&out, &inp);
    let mask_video = PathBuf::from(v["preprocessing_mask_video"].as_str().unwrap());
    let pre_video = PathBuf::from(v["preprocessing_video"].as_str().unwrap());
    for p in [&mask_video, &pre_video] {
        assert_eq!(check_timing(p, &inp), frames);
    }
    let masks = decode(&mask_video);
    let pre = decode(&pre_video);
    assert_eq!((masks.len() as u64, pre.len() as u64), (frames, frames));
    // Animation: driving masks on black. Every clearly classified pixel is black or one of
    // the first two palette colours, both subjects appear, and the masked video is black
    // where the mask is.
    let (mut blue, mut red, mut black) = (0usize, 0usize, 0usize);
    for (m, f) in masks.iter().zip(&pre) {
        for y in 0..H {
            for x in 0..W {
                match classify(m.pixel(x, y)) {
                    Some(BLUE) => blue += 1,
                    Some(RED) => red += 1,
                    Some(BLACK) => {
                        black += 1;
                        // Only far from any subject is the lossy masked video surely black.
                        let far = (y.saturating_sub(3)..(y + 4).min(H)).all(|yy| {
                            (x.saturating_sub(3)..(x + 4).min(W))
                                .all(|xx| classify(m.pixel(xx, yy)) == Some(BLACK))
                        });
                        if far {
                            assert!(
                                f.pixel(x, y).iter().all(|&v| v < 30),
                                "({x},{y}) {:?}",
                                f.pixel(x, y)
                            );
                        }
                    }
                    Some(c) => panic!("({x},{y}): unexpected mask colour {c:?}"),
                    None => {}
                }
            }
        }
    }
    // The stand-in graphs split frames into bright and dark regions (two subjects here, as
    // in the reference, or generate would have refused); how much each covers depends on
    // the content, so only their presence is checked.
    let total = masks.len() * W * H;
    assert!(
        blue > 0 && red > 0 && blue + red > total / 100,
        "blue {blue}, red {red} of {total}"
    );
    assert!(
        blue + red + black > total * 8 / 10,
        "too many unclear pixels: blue {blue}, red {red}, black {black} of {total}"
    );
}

#[test]
fn standin_pose_through_generate_renders_a_timed_skeleton_video() {
    let test = "standin_pose_through_generate_renders_a_timed_skeleton_video";
    if !ort_or_skip(test) {
        return;
    }
    let Some(inp) = inputs(test, STANDIN_CLIP_S) else {
        return;
    };
    let out = inp.dir.path().join("pose.mp4");
    // Segmentation by the stand-in SAM3, then the stand-in DWPose inside each subject's box.
    let mut cmd = generate(&inp, &out, &["--driving-type".as_ref(), "pose".as_ref()]);
    let (success, stdout, all) = run(&mut cmd);
    assert!(success, "{all}");
    let v: serde_json::Value =
        serde_json::from_str(stdout.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    let frames = check_timing(&out, &inp);
    // Both per-frame Stage A steps showed progress through every driving frame.
    for step in ["segmentation", "pose"] {
        let done = format!(
            "preprocessing: {step} [{}] {frames}/{frames}",
            "#".repeat(30)
        );
        assert!(all.contains(&done), "no `{done}` in:\n{all}");
    }
    let pre_video = PathBuf::from(v["preprocessing_video"].as_str().unwrap());
    let mask_video = PathBuf::from(v["preprocessing_mask_video"].as_str().unwrap());
    assert_eq!(check_timing(&pre_video, &inp), frames);
    assert_eq!(check_timing(&mask_video, &inp), frames);
    // A skeleton on black: mostly black, some coloured limbs or joints in every frame.
    for (t, f) in decode(&pre_video).iter().enumerate() {
        let lit = f
            .data
            .chunks_exact(3)
            .filter(|p| p.iter().any(|&v| v > 60))
            .count();
        assert!(lit > 0, "frame {t}: no skeleton drawn");
        assert!(
            lit < W * H * 3 / 4,
            "frame {t}: {lit} lit pixels, not on black"
        );
    }
}
