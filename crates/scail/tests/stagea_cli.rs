//! Stage A through the real `scail` binary with `init-random --config tiny` weights:
//! user-supplied palette masks on a two-person clip (no segmentation model needed), the
//! subject-count refusal, and a run segmented by the stand-in SAM3 graphs through ONNX Runtime.
//!
//! The two-person clip is built here (ffmpeg `hstack` of two shared single-person clips at
//! 128x64, one second), since no shared clip has two people. Skips (printing why) when ffmpeg
//! or the shared media are missing; the stand-in run also skips when ONNX Runtime is absent.

use std::path::{Path, PathBuf};
use std::process::Command;

use scail_media::encode::{EncodeOptions, Mp4Writer};
use scail_media::frame::ImageU8;
use scail_media::video::{decode_frames, DecodeOptions};

/// Output (model) size and the built clip's size: an exact 2x cover-resize, so the mask's
/// blocks land on exact target pixels.
const W: usize = 64;
const H: usize = 32;
const SRC_W: usize = 128;
const SRC_H: usize = 64;
/// Length of the built clip with user masks (16 output frames at 16 fps); the stand-in
/// runs segment every frame through 1008-pixel graphs, so they take half of it.
const CLIP_S: f64 = 1.0;
const STANDIN_CLIP_S: f64 = 0.5;

const BLUE: [u8; 3] = [0, 0, 255];
const RED: [u8; 3] = [255, 0, 0];
const BLACK: [u8; 3] = [0, 0, 0];
const WHITE: [u8; 3] = [255, 255, 255];

fn scail() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scail"))
}

fn media_dir() -> PathBuf {
    scail_testdata::media_dir()
}

fn have_ffmpeg() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a command, returning (success, stdout, stdout+stderr).
fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), stdout, all)
}

fn ok(cmd: &mut Command) -> String {
    let (success, stdout, all) = run(cmd);
    assert!(success, "{cmd:?} failed:\n{all}");
    stdout
}

/// Target-space subject regions: blue on the left (full height), red on the right (lower
/// three quarters), black in between. All boundaries are multiples of 8 in target pixels.
fn expected_colour(x: usize, y: usize) -> [u8; 3] {
    if x < 24 {
        BLUE
    } else if x >= 40 && y >= 8 {
        RED
    } else {
        BLACK
    }
}

/// Distance in target pixels from (x, y) to the nearest region boundary (frame edges do
/// not count): codec loss in a lossy video stays near boundaries.
fn boundary_distance(x: usize, y: usize) -> usize {
    let dx = [24usize, 40]
        .iter()
        .map(|&b| (x as isize - b as isize).unsigned_abs())
        .min()
        .unwrap();
    // The red block's top edge only matters on the red side.
    let dy = if x >= 40 {
        (y as isize - 8).unsigned_abs()
    } else {
        usize::MAX
    };
    dx.min(dy)
}

/// A source-size frame painted from target-space colours (each target pixel is 2x2 source
/// pixels), `background` where the target colour is black.
fn source_mask(background: [u8; 3], colour: impl Fn(usize, usize) -> [u8; 3]) -> ImageU8 {
    mask_image(SRC_W, SRC_H, background, colour)
}

/// A `w` x `h` mask of the target-space colours (pixel (x, y) shows target pixel
/// (x * W / w, y * H / h)), `background` where the target colour is black.
fn mask_image(
    w: usize,
    h: usize,
    background: [u8; 3],
    colour: impl Fn(usize, usize) -> [u8; 3],
) -> ImageU8 {
    let mut img = ImageU8::new(w, h, 3);
    for y in 0..h {
        for x in 0..w {
            let c = colour(x * W / w, y * H / h);
            let c = if c == BLACK { background } else { c };
            img.data[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
        }
    }
    img
}

struct Inputs {
    dir: tempfile::TempDir,
    weights: PathBuf,
    video: PathBuf,
    image: PathBuf,
    seconds: f64,
}

/// Tiny random weights (with the Stage A stand-ins) and the two-person clip with its first
/// frame as the reference image. None (printed) without ffmpeg or the shared clips.
fn inputs(test: &str, seconds: f64) -> Option<Inputs> {
    if !have_ffmpeg() {
        eprintln!("skipping {test}: no ffmpeg");
        return None;
    }
    let a = media_dir().join("dance_woman_16fps.mp4");
    let b = media_dir().join("gesture_woman_closeup_16fps.mp4");
    if !a.is_file() || !b.is_file() {
        eprintln!(
            "skipping {test}: shared media not found in {}",
            media_dir().display()
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("weights");
    ok(scail()
        .args(["weights", "init-random", "--config", "tiny"])
        .arg(&weights));
    let video = dir.path().join("two_people.mp4");
    let half = format!("scale={}:{},setsar=1", SRC_W / 2, SRC_H);
    let t = seconds.to_string();
    let (success, _, log) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-t", &t, "-i"])
        .arg(&a)
        .args(["-t", &t, "-i"])
        .arg(&b)
        .args([
            "-filter_complex",
            &format!("[0:v]{half}[a];[1:v]{half}[b];[a][b]hstack=inputs=2,format=yuv420p[v]"),
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .arg(&video));
    assert!(success, "building the two-person clip: {log}");
    let image = dir.path().join("reference.png");
    let (success, _, log) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&video)
        .args(["-frames:v", "1"])
        .arg(&image));
    assert!(success, "extracting the reference frame: {log}");
    Some(Inputs {
        dir,
        weights,
        video,
        image,
        seconds,
    })
}

/// A lossless (RGB H.264, qp 0) palette mask video at 16 fps.
fn write_mask_video(path: &Path, frame: &ImageU8, frames: usize) {
    write_mask_video_at(path, frame, frames, 16);
}

fn write_mask_video_at(path: &Path, frame: &ImageU8, frames: usize, fps: u32) {
    write_mask_frames(path, &vec![frame; frames], fps);
}

fn write_mask_frames(path: &Path, frames: &[&ImageU8], fps: u32) {
    let opts = EncodeOptions {
        lossless_rgb: true,
        fps,
        ..EncodeOptions::default()
    };
    let mut wr = Mp4Writer::create(path, frames[0].width, frames[0].height, &opts).unwrap();
    for f in frames {
        wr.write(f).unwrap();
    }
    wr.finish().unwrap();
}

/// `--reference-mask REF --driving-mask DRV` followed by `extra`.
fn with_masks<'a>(
    ref_mask: &'a Path,
    drv_mask: &'a Path,
    extra: &[&'a std::ffi::OsStr],
) -> Vec<&'a std::ffi::OsStr> {
    let mut a: Vec<&std::ffi::OsStr> = vec![
        "--reference-mask".as_ref(),
        ref_mask.as_os_str(),
        "--driving-mask".as_ref(),
        drv_mask.as_os_str(),
    ];
    a.extend_from_slice(extra);
    a
}

fn generate(inp: &Inputs, out: &Path, extra: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = scail();
    cmd.arg("generate")
        .arg("--weights")
        .arg(&inp.weights)
        .arg("--image")
        .arg(&inp.image)
        .arg("--video")
        .arg(&inp.video)
        .arg("--out")
        .arg(out)
        .args([
            "--size",
            &format!("{W}x{H}"),
            "--num-inference-steps",
            "1",
            "--guidance-scale",
            "1",
            "--seed",
            "3",
            "--output-preprocessing",
        ])
        .args(extra);
    cmd
}

/// DESIGN.md "Frame timing": 16 fps, ceil(duration * 16) frames, the driving video's duration
/// within one output frame, at the model size.
fn check_timing(video: &Path, inp: &Inputs) -> u64 {
    let driving = &inp.video;
    let o = scail_media::probe(video).unwrap();
    let d = scail_media::probe(driving).unwrap();
    let want = (d.video.duration_s * 16.0 - 1e-6).ceil() as u64;
    assert_eq!(want, (inp.seconds * 16.0) as u64, "driving clip duration");
    assert_eq!(o.video.frames, want, "frames of {}", video.display());
    assert!((o.video.fps - 16.0).abs() < 1e-6, "fps {}", o.video.fps);
    assert_eq!((o.video.width as usize, o.video.height as usize), (W, H));
    assert!(
        (o.video.duration_s - d.video.duration_s).abs() <= 1.0 / 16.0 + 1e-3,
        "{}: duration {} vs driving {}",
        video.display(),
        o.video.duration_s,
        d.video.duration_s
    );
    want
}

fn decode(path: &Path) -> Vec<ImageU8> {
    decode_frames(path, &DecodeOptions::default(), 16, None)
        .unwrap()
        .0
}

/// Palette class of a decoded pixel: each channel must be clearly on (> 225, the model's
/// threshold) or clearly off (< 30).
fn classify(p: &[u8]) -> Option<[u8; 3]> {
    let mut c = [0u8; 3];
    for (o, &v) in c.iter_mut().zip(p) {
        *o = if v > 225 {
            255
        } else if v < 30 {
            0
        } else {
            return None;
        };
    }
    Some(c)
}

/// The returned mask video is yuv420p H.264 (crf 18): lossy, so colours are checked at least
/// 3 target pixels away from region boundaries, where every pixel must be exact in class;
/// within 2 pixels only a clear palette class or an unclear blend is allowed.
fn check_mask_video(
    mask_video: &Path,
    frames: u64,
    expected: impl Fn(usize, usize, usize) -> [u8; 3],
) {
    let masks = decode(mask_video);
    assert_eq!(masks.len() as u64, frames);
    let mut checked = 0usize;
    for (t, m) in masks.iter().enumerate() {
        assert_eq!((m.width, m.height), (W, H));
        for y in 0..H {
            for x in 0..W {
                let got = classify(m.pixel(x, y));
                let want = expected(t, x, y);
                if boundary_distance(x, y) >= 3 {
                    assert_eq!(got, Some(want), "frame {t} ({x},{y}): {:?}", m.pixel(x, y));
                    checked += 1;
                } else if let Some(c) = got {
                    assert!(
                        [BLUE, RED, BLACK].contains(&c),
                        "frame {t} ({x},{y}): {c:?} is not a palette colour or black"
                    );
                }
            }
        }
    }
    assert!(
        checked >= masks.len() * W * H / 2,
        "{checked} pixels checked"
    );
}

#[test]
fn user_masks_drive_a_two_person_clip_and_the_mask_video_is_returned() {
    let test = "user_masks_drive_a_two_person_clip_and_the_mask_video_is_returned";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let d = inp.dir.path();
    // Animation: reference mask on white, driving masks on black.
    let ref_mask = d.join("ref_mask.png");
    scail_media::image_io::save_png(&source_mask(WHITE, expected_colour), &ref_mask).unwrap();
    let drv_mask = d.join("drv_mask.mp4");
    write_mask_video(&drv_mask, &source_mask(BLACK, expected_colour), 16);

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

/// The ONNX Runtime library from `ORT_DYLIB_PATH` (or the active venv); None, printed, when
/// it is absent.
fn ort_or_skip(test: &str) -> bool {
    match scail_stagea::runtime::resolve_dylib(None) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            false
        }
    }
}

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

#[test]
fn pose_driving_for_animals_is_refused_even_with_user_inputs() {
    let test = "pose_driving_for_animals_is_refused_even_with_user_inputs";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let d = inp.dir.path();
    let ref_mask = d.join("ref_mask.png");
    scail_media::image_io::save_png(&source_mask(WHITE, expected_colour), &ref_mask).unwrap();
    let drv_mask = d.join("drv_mask.mp4");
    write_mask_video(&drv_mask, &source_mask(BLACK, expected_colour), 16);
    // Masks and a pose video supplied: no model is loaded, the refusal is about the request.
    let pose = media_dir().join("pose_dwpose_skeleton_30fps.mp4");
    let out = d.join("animal.mp4");
    let (success, _, all) = run(&mut generate(
        &inp,
        &out,
        &[
            "--subject-type".as_ref(),
            "animal".as_ref(),
            "--driving-type".as_ref(),
            "pose".as_ref(),
            "--reference-mask".as_ref(),
            ref_mask.as_os_str(),
            "--driving-mask".as_ref(),
            drv_mask.as_os_str(),
            "--pose-video".as_ref(),
            pose.as_os_str(),
        ],
    ));
    assert!(
        !success,
        "pose driving for an animal must be refused:\n{all}"
    );
    assert!(
        all.contains("driving_type=pose is not available for subject_type=animal"),
        "{all}"
    );
    assert!(!out.exists());
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

#[test]
fn pose_driving_for_animals_is_refused_before_any_model_is_loaded() {
    let test = "pose_driving_for_animals_is_refused_before_any_model_is_loaded";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let out = inp.dir.path().join("animal.mp4");
    // No masks (segmentation would be needed) and no ONNX Runtime to be found.
    let (success, _, all) = run(generate(
        &inp,
        &out,
        &[
            "--subject-type".as_ref(),
            "animal".as_ref(),
            "--driving-type".as_ref(),
            "pose".as_ref(),
        ],
    )
    .env_remove("ORT_DYLIB_PATH")
    .env_remove("VIRTUAL_ENV"));
    assert!(!success, "{all}");
    assert!(
        all.contains("driving_type=pose is not available for subject_type=animal"),
        "{all}"
    );
}

/// A Stage A model the request needs but the installation lacks fails the job with the
/// missing path, the command that fetches it, and the inputs that avoid it; no video.
#[test]
fn missing_stage_a_models_are_named_with_the_way_to_get_them() {
    let test = "missing_stage_a_models_are_named_with_the_way_to_get_them";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let d = inp.dir.path();
    let stagea = inp.weights.join("stagea");
    std::fs::remove_dir_all(stagea.join("sam3")).unwrap();
    std::fs::remove_file(stagea.join("dw-ll_ucoco_384.onnx")).unwrap();
    let out = d.join("no_seg.mp4");
    let (success, _, all) = run(&mut generate(&inp, &out, &[]));
    assert!(!success, "segmentation without SAM3 must fail:\n{all}");
    let want = stagea.join("sam3/vision_encoder.onnx");
    assert!(
        all.contains(&format!("segmentation needs {}", want.display()))
            && all.contains("scail weights fetch")
            && all.contains("reference_mask_url and driving_mask_url"),
        "{all}"
    );
    assert!(!out.exists());
    // With both masks supplied segmentation is not needed, but pose still is.
    let ref_mask = d.join("ref_mask.png");
    scail_media::image_io::save_png(&source_mask(WHITE, expected_colour), &ref_mask).unwrap();
    let drv_mask = d.join("drv_mask.mp4");
    write_mask_video(&drv_mask, &source_mask(BLACK, expected_colour), 16);
    let out = d.join("no_pose.mp4");
    let (success, _, all) = run(&mut generate(
        &inp,
        &out,
        &with_masks(
            &ref_mask,
            &drv_mask,
            &["--driving-type".as_ref(), "pose".as_ref()],
        ),
    ));
    assert!(!success, "pose without DWPose must fail:\n{all}");
    let want = stagea.join("dw-ll_ucoco_384.onnx");
    assert!(
        all.contains(&format!("pose estimation needs {}", want.display()))
            && all.contains("pose_video_url"),
        "{all}"
    );
    assert!(!out.exists());
}
