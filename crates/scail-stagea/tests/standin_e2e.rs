//! Stage A through ONNX Runtime with the committed stand-in graphs, on real clips.
//! Skips (printing why) when the ONNX Runtime library or ffmpeg is not available.

mod common;

use common::*;
use scail_media::mask::{BLACK, PALETTE, WHITE};
use scail_stagea::compose::{decode_palette_mask, mask_from_alpha};
use scail_stagea::pose::PoseEstimator;
use scail_stagea::runtime::{OnnxModel, RuntimeError};
use scail_stagea::sam3::{Sam3Files, Sam3Segmenter, Segmenter};
use scail_stagea::stagea::{
    resample_clip, run_stage_a, Clip, DrivingType, StageAConfig, StageAInputs, StageAModels,
    SubjectType,
};
use scail_stagea::weights::{verify_dir, verify_graph};
use scail_stagea::Mode;
use scail_stagea::{standin, StageAError};

const W: usize = 224;
const H: usize = 128;

#[test]
fn library_is_found_in_a_wheel_or_venv_folder_or_named_clearly_when_missing() {
    use scail_stagea::runtime::resolve_from;
    let root = std::env::temp_dir().join(format!("scail-stagea-ort-{}", std::process::id()));
    let capi = root.join("lib/python3.11/site-packages/onnxruntime/capi");
    std::fs::create_dir_all(&capi).unwrap();
    let lib = capi.join("libonnxruntime.so.1.32.0");
    std::fs::write(&lib, b"").unwrap();
    let missing = std::path::PathBuf::from("/nonexistent/ort");
    // A venv root, the capi folder and the file itself all resolve to the library.
    for c in [root.clone(), capi.clone(), lib.clone()] {
        assert_eq!(resolve_from(&[missing.clone(), c]).unwrap(), lib);
    }
    let e = resolve_from(&[missing.clone(), root.join("empty")]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RuntimeError::LibraryMissing { .. }));
    assert!(
        msg.contains("/nonexistent/ort")
            && msg.contains("ORT_DYLIB_PATH")
            && msg.contains("onnxruntime"),
        "{msg}"
    );
    assert!(resolve_from(&[])
        .unwrap_err()
        .to_string()
        .contains("no configured path"));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn standin_graphs_have_the_published_signatures() {
    let Some(rt) = ort_or_skip("standin_graphs_have_the_published_signatures") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("scail-stagea-standin-{}", std::process::id()));
    let written = standin::write_standin_files(&dir).unwrap();
    assert_eq!(written.len(), 8);
    // Five graphs and the tokenizer.
    let checked = verify_dir(&dir, &rt).unwrap();
    assert_eq!(checked.len(), 6);
    // Names are read from the session.
    let m = OnnxModel::load(&dir.join("dw-ll_ucoco_384.onnx"), &rt).unwrap();
    let outs: Vec<_> = m.outputs().iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outs, ["simcc_x", "simcc_y"]);
    // A graph in the wrong slot fails verification, naming what it found.
    let e = verify_graph(&dir.join("yolox_l.onnx"), "dw-ll_ucoco_384.onnx", &rt).unwrap_err();
    assert!(
        e.to_string().contains("found images[1, 3, 640, 640]"),
        "{e}"
    );
    let missing = OnnxModel::load(&dir.join("nope.onnx"), &rt).err().unwrap();
    assert!(matches!(missing, RuntimeError::ModelMissing { .. }));
    std::fs::remove_dir_all(&dir).ok();
}

/// `scail weights fetch` links each graph into the Stage A folder from a download cache; a
/// graph whose weights sit in a `.onnx.data` file must still find them through the link.
#[test]
fn graph_with_external_weights_loads_through_a_link_and_names_missing_weights() {
    let Some(rt) = ort_or_skip("graph_with_external_weights_loads_through_a_link") else {
        return;
    };
    let root = std::env::temp_dir().join(format!("scail-stagea-link-{}", std::process::id()));
    let cache = root.join("cache");
    standin::write_standin_files(&cache).unwrap();
    let linked = root.join("stagea/sam3");
    std::fs::create_dir_all(&linked).unwrap();
    let graph = linked.join("text_encoder.onnx");
    std::os::unix::fs::symlink(cache.join("sam3/text_encoder.onnx"), &graph).unwrap();
    assert!(!linked.join("text_encoder.onnx.data").exists());
    let mut m = OnnxModel::load(&graph, &rt).unwrap();
    let ids = scail_stagea::runtime::HostTensor::i64(vec![1, 32], vec![3; 32]);
    let att = scail_stagea::runtime::HostTensor::i64(vec![1, 32], vec![1; 32]);
    let out = m
        .run(vec![
            ("input_ids".into(), ids),
            ("attention_mask".into(), att),
        ])
        .unwrap();
    // The features are rows of the table stored in the external file: not all zero.
    let feats = out["text_features"].as_f32().unwrap();
    assert!(feats.iter().any(|v| *v != 0.0));
    // Without its weights file the graph fails to load, and the error names the graph.
    std::fs::remove_file(cache.join("sam3/text_encoder.onnx.data")).unwrap();
    let e = OnnxModel::load(&graph, &rt).err().unwrap();
    assert!(matches!(e, RuntimeError::Session { .. }), "{e}");
    assert!(e.to_string().contains("text_encoder.onnx"), "{e}");
    std::fs::remove_dir_all(&root).ok();
}

fn segmenter(rt: &scail_stagea::runtime::RuntimeConfig) -> Sam3Segmenter {
    // One prompt keeps the test quick; the prompt loop is exercised in its own test.
    Sam3Segmenter::load(
        &Sam3Files::in_dir(&standin_dir()),
        &["human".to_string()],
        rt,
    )
    .unwrap()
}

#[test]
fn sam3_standin_detects_per_prompt_at_frame_size() {
    let Some(rt) = ort_or_skip("sam3_standin_detects_per_prompt_at_frame_size") else {
        return;
    };
    let prompts = vec!["human".to_string(), "character".to_string()];
    let mut seg = Sam3Segmenter::load(&Sam3Files::in_dir(&standin_dir()), &prompts, &rt).unwrap();
    // Left half bright, right half dark: the stand-in's query 0 is the bright region,
    // query 1 the dark one, for each prompt.
    let mut img = scail_stagea::RgbImage::filled_rgb(200, 100, [20, 20, 20]);
    for y in 0..100 {
        for x in 0..100 {
            img.put_rgb(x, y, [230, 230, 230]);
        }
    }
    let dets = seg.detect(&img).unwrap();
    assert_eq!(dets.len(), 4);
    for d in &dets {
        assert_eq!((d.mask.width, d.mask.height), (200, 100));
        assert!(
            (d.mask.coverage() - 0.5).abs() < 0.03,
            "{}",
            d.mask.coverage()
        );
    }
    assert!(dets[0].mask.get(10, 50) && !dets[0].mask.get(190, 50));
    assert!(dets[1].mask.get(190, 50));
    // sigmoid(2) * sigmoid(3)
    assert!((dets[0].score - 0.8390).abs() < 1e-3, "{}", dets[0].score);
}

#[test]
fn clip_tokenizer_encodes_prompts_with_bos_eos_and_padding() {
    use scail_stagea::tokenizer::ClipTokenizer;
    let tok = ClipTokenizer::from_file(&Sam3Files::in_dir(&standin_dir()).tokenizer).unwrap();
    let (ids, mask) = tok.encode("human").unwrap();
    assert_eq!(ids.len(), 32);
    assert_eq!(ids[0], 49406);
    // "human" is one merged token in the stand-in vocabulary, not a byte symbol.
    assert!(ids[1] >= 512 && ids[1] < 49406, "{}", ids[1]);
    assert_eq!(&ids[2..], &[49407; 30]);
    assert_eq!(mask.iter().sum::<i64>(), 3);
    // Case and spacing do not matter; two words give two tokens.
    let (ids2, mask2) = tok.encode("  Human   CHARACTER ").unwrap();
    assert_eq!(ids2[1], ids[1]);
    assert_eq!(mask2.iter().sum::<i64>(), 4);
    // A word without merges falls back to byte symbols, the last one end-of-word.
    let (ids3, mask3) = tok.encode("zebra").unwrap();
    assert_eq!(mask3.iter().sum::<i64>(), 7);
    assert!(ids3[1..5].iter().all(|&i| i < 256) && (256..512).contains(&ids3[5]));
}

#[test]
fn end_to_end_animation_on_a_30fps_clip_resampled_to_16fps() {
    let test = "end_to_end_animation_on_a_30fps_clip_resampled_to_16fps";
    let Some(rt) = ort_or_skip(test) else { return };
    let Some(src) = decode_or_skip("talk_show_host_30fps_audio.mp4", W, H, test) else {
        return;
    };
    // Timing policy: 16 fps covering the source's duration; frame k is source time k/16
    // (at 30 fps, frame 15 is source frame 28.1 -> 28). Counts come from the clip itself, so
    // another media set passes too.
    let n = (src.frames.len() as f64 / src.fps * 16.0).ceil() as usize;
    let frames = resample_clip(&src, n, 16.0, "driving video").unwrap();
    assert_eq!(frames.len(), n);
    for (k, f) in frames.iter().enumerate() {
        let i = (k as f64 / 16.0 * src.fps).round() as usize;
        assert_eq!(*f, src.frames[i.min(src.frames.len() - 1)], "frame {k}");
    }
    let driving = Clip { frames, fps: 16.0 };
    let (reference, _) = load_image("ref_photo_woman_shore.jpg", W, H);
    let cfg = StageAConfig::new(Mode::Animation, DrivingType::EndToEnd, SubjectType::Human);
    let mut models = StageAModels {
        segmenter: Some(Box::new(segmenter(&rt))),
        pose: None,
    };
    let inputs = StageAInputs {
        reference,
        reference_alpha: None,
        driving: driving.clone(),
        reference_mask: None,
        driving_mask: None,
        pose_video: None,
    };
    let out = run_stage_a(&cfg, &inputs, &mut models).unwrap();
    assert_eq!(out.num_subjects, 2);
    assert_eq!(out.driving_mask.len(), n);
    assert_eq!(out.driving_video.len(), n);
    for (t, (m, v)) in out.driving_mask.iter().zip(&out.driving_video).enumerate() {
        assert_eq!((m.width, m.height, v.width, v.height), (W, H, W, H));
        // Masked driving: black exactly where the mask is background; the source pixel
        // where a subject colour is.
        for y in (0..H).step_by(7) {
            for x in (0..W).step_by(7) {
                let c = m.rgb(x, y);
                if c == BLACK {
                    assert_eq!(v.rgb(x, y), BLACK);
                } else {
                    assert!(c == PALETTE[0] || c == PALETTE[1], "{c:?}");
                    assert_eq!(v.rgb(x, y), driving.frames[t].rgb(x, y));
                }
            }
        }
    }
    // Reference on white in animation, both colours present.
    let r = &out.reference_mask;
    let count = |c: [u8; 3]| r.data.chunks_exact(3).filter(|p| *p == c).count();
    assert!(count(PALETTE[0]) > 0 && count(PALETTE[1]) > 0);
    assert_eq!(decode_palette_mask(r).len(), 2);
    assert!(count(WHITE) + count(PALETTE[0]) + count(PALETTE[1]) == W * H);
}

#[test]
fn pose_mode_renders_skeletons_inside_subject_boxes() {
    let test = "pose_mode_renders_skeletons_inside_subject_boxes";
    let Some(rt) = ort_or_skip(test) else { return };
    let Some(mut src) = decode_or_skip("gesture_woman_closeup_16fps.mp4", W, H, test) else {
        return;
    };
    // The first 9 frames (or all of a shorter clip) keep the stand-in run quick.
    let kept = src.frames.len().min(9);
    src.frames.truncate(kept);
    let (reference, _) = load_image("ref_photo_old_man_headphones.jpg", W, H);
    let mut cfg = StageAConfig::new(Mode::Replacement, DrivingType::Pose, SubjectType::Human);
    cfg.prompts = Some(vec!["human".into()]);
    let pose = PoseEstimator::load(
        Some(&standin_dir().join("yolox_l.onnx")),
        &standin_dir().join("dw-ll_ucoco_384.onnx"),
        &rt,
    )
    .unwrap();
    let mut models = StageAModels {
        segmenter: Some(Box::new(segmenter(&rt))),
        pose: Some(pose),
    };
    let inputs = StageAInputs {
        reference,
        reference_alpha: None,
        driving: src.clone(),
        reference_mask: None,
        driving_mask: None,
        pose_video: None,
    };
    let out = run_stage_a(&cfg, &inputs, &mut models).unwrap();
    // Replacement keeps one subject; driving masks on white, reference on black.
    assert_eq!(out.num_subjects, 1);
    assert_eq!(out.driving_video.len(), kept);
    let m0 = decode_palette_mask(&out.driving_mask[0]);
    let subject = m0[0].as_ref().unwrap();
    let b = subject.bbox().unwrap();
    for (t, sk) in out.driving_video.iter().enumerate() {
        assert_eq!((sk.width, sk.height), (W, H));
        let lit: Vec<(usize, usize)> = (0..H)
            .flat_map(|y| (0..W).map(move |x| (x, y)))
            .filter(|&(x, y)| sk.rgb(x, y) != BLACK)
            .collect();
        assert!(lit.len() > 50, "frame {t}: skeleton nearly empty");
        // Nothing is drawn far outside the subject's box (joint radius + limb width).
        if t == 0 {
            for &(x, y) in &lit {
                assert!(
                    x as f32 >= b.x0 - 8.0
                        && x as f32 <= b.x1 + 8.0
                        && y as f32 >= b.y0 - 8.0
                        && y as f32 <= b.y1 + 8.0,
                    "pixel ({x},{y}) outside {b:?}"
                );
            }
        }
    }
    assert!(out.driving_mask[0].data.chunks_exact(3).any(|p| p == WHITE));
    assert!(out.reference_mask.data.chunks_exact(3).any(|p| p == BLACK));
}

#[test]
fn yolox_standin_finds_people_in_bright_cells() {
    let Some(rt) = ort_or_skip("yolox_standin_finds_people_in_bright_cells") else {
        return;
    };
    let mut pose = PoseEstimator::load(
        Some(&standin_dir().join("yolox_l.onnx")),
        &standin_dir().join("dw-ll_ucoco_384.onnx"),
        &rt,
    )
    .unwrap();
    // A bright square on a dark 1280x640 frame: letterbox scale 0.5.
    let mut img = scail_stagea::RgbImage::filled_rgb(1280, 640, [10, 10, 10]);
    for y in 256..384 {
        for x in 512..640 {
            img.put_rgb(x, y, [250, 250, 250]);
        }
    }
    let boxes = pose.detect_people(&img).unwrap();
    assert!(!boxes.is_empty());
    // Every kept box is a stride-32 anchor centred in the bright area (frame pixels).
    for b in &boxes {
        let (cx, cy) = b.centre();
        assert!(
            (512.0..640.0).contains(&cx) && (256.0..384.0).contains(&cy),
            "{b:?}"
        );
        assert!((b.x1 - b.x0 - 256.0).abs() < 0.5, "{b:?}");
    }
    let people = pose.estimate(&img, &boxes[..1]).unwrap();
    assert_eq!(people[0].keypoints.len(), 133);
    // Peaks at half-bin positions: confidence just under the stand-in's 0.9.
    assert!(people[0]
        .keypoints
        .iter()
        .all(|k| k.score > 0.85 && k.score <= 0.9));
}

#[test]
fn user_masks_and_pose_video_skip_the_models() {
    let test = "user_masks_and_pose_video_skip_the_models";
    let Some(driving) = decode_or_skip("dance_woman_16fps.mp4", W, H, test) else {
        return;
    };
    // A 30 fps, 4.53 s pre-rendered skeleton at another size: resampled by time.
    let Some(pose_clip) = decode_or_skip("pose_dwpose_skeleton_30fps.mp4", 128, 192, test) else {
        return;
    };
    let n = driving.frames.len();
    // Hand-made palette masks at half size and 8 fps, covering the driving clip: blue subject
    // left, red right.
    let mask_n = (n as f64 / 16.0 * 8.0).ceil() as usize + 1;
    let mut mask_frames = Vec::new();
    for t in 0..mask_n {
        let mut f = scail_stagea::RgbImage::filled_rgb(112, 64, BLACK);
        for y in 10..60 {
            for x in 5 + t / 4..40 + t / 4 {
                f.put_rgb(x, y, PALETTE[0]);
            }
            for x in 70..100 {
                f.put_rgb(x, y, PALETTE[1]);
            }
        }
        mask_frames.push(f);
    }
    let mut ref_mask = scail_stagea::RgbImage::filled_rgb(W, H, WHITE);
    for y in 20..100 {
        for x in 30..80 {
            ref_mask.put_rgb(x, y, PALETTE[0]);
        }
        for x in 140..200 {
            ref_mask.put_rgb(x, y, PALETTE[1]);
        }
    }
    let (reference, _) = load_image("ref_photo_woman_shore.jpg", W, H);
    let cfg = StageAConfig::new(Mode::Animation, DrivingType::Pose, SubjectType::Human);
    let mut inputs = StageAInputs {
        reference,
        reference_alpha: None,
        driving: driving.clone(),
        reference_mask: Some(ref_mask),
        driving_mask: Some(Clip {
            frames: mask_frames.clone(),
            fps: 8.0,
        }),
        pose_video: Some(pose_clip.clone()),
    };
    let out = run_stage_a(&cfg, &inputs, &mut StageAModels::default()).unwrap();
    assert_eq!(out.num_subjects, 2);
    assert_eq!(out.driving_mask.len(), n);
    assert_eq!(out.driving_video.len(), n);
    // Frame 20 (1.25 s) takes mask frame 10 (8 fps), upscaled x2 with exact colours.
    let m20 = &out.driving_mask[20];
    assert_eq!((m20.width, m20.height), (W, H));
    assert_eq!(m20.rgb(2 * (5 + 10 / 4) + 1, 40), PALETTE[0]);
    assert_eq!(m20.rgb(2 * (5 + 10 / 4) - 1, 40), BLACK);
    assert_eq!(m20.rgb(150, 40), PALETTE[1]);
    // Pose frame 20 is the source frame at 1.25 s (round(1.25 * 30) = 38 at 30 fps), resized
    // to the driving size.
    let i = ((1.25 * pose_clip.fps).round() as usize).min(pose_clip.frames.len() - 1);
    assert_eq!(
        out.driving_video[20],
        pose_clip.frames[i].resize_bilinear(W, H)
    );

    // A mask video that ends too early is refused with the durations.
    inputs.driving_mask = Some(Clip {
        frames: mask_frames[..20].to_vec(),
        fps: 8.0,
    });
    let e = run_stage_a(&cfg, &inputs, &mut StageAModels::default()).unwrap_err();
    assert!(matches!(e, StageAError::TooShort { got: 20, .. }), "{e}");

    // One subject in the reference mask, two in the driving masks: named mismatch.
    inputs.driving_mask = Some(Clip {
        frames: mask_frames,
        fps: 8.0,
    });
    let mut one = scail_stagea::RgbImage::filled_rgb(W, H, WHITE);
    one.put_rgb(50, 50, PALETTE[0]);
    for y in 20..100 {
        for x in 30..80 {
            one.put_rgb(x, y, PALETTE[0]);
        }
    }
    inputs.reference_mask = Some(one);
    let e = run_stage_a(&cfg, &inputs, &mut StageAModels::default()).unwrap_err();
    assert!(
        matches!(
            e,
            StageAError::SubjectCountMismatch {
                reference: 1,
                driving: 2
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("1 subject(s)") && e.to_string().contains("has 2"));
}

#[test]
fn rgba_reference_alpha_gives_its_mask() {
    let (reference, rgba) = load_image("ref_anime_girl_rgba.png", W, H);
    let mut rgba = rgba.expect("the test image is RGBA");
    // Its alpha is fully opaque: not a real alpha channel, so segmentation decides.
    assert!(mask_from_alpha(W as u32, H as u32, &rgba)
        .unwrap()
        .is_none());
    // Cut the left 40% away: the alpha now is the subject.
    for y in 0..H {
        for x in 0..(W * 2 / 5) {
            rgba[(y * W + x) * 4 + 3] = 0;
        }
    }
    let alpha = mask_from_alpha(W as u32, H as u32, &rgba)
        .unwrap()
        .expect("real alpha");
    let cfg = StageAConfig::new(Mode::Animation, DrivingType::EndToEnd, SubjectType::Human);
    let subjects = scail_stagea::stagea::reference_subjects(
        None,
        &reference,
        Some(&alpha),
        &cfg.tracker,
        "human",
    )
    .unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0], alpha);
    assert!(!subjects[0].get(10, 10) && subjects[0].get(200, 10));
}
