//! Stage A through the real `scail` binary with `init-random --config tiny` weights:
//! user-supplied palette masks on a two-person clip (no segmentation model needed), the
//! subject-count refusal, and a run segmented by the stand-in SAM3 graphs through ONNX Runtime.
//!
//! The two-person clip is built here (ffmpeg `hstack` of two shared single-person clips at
//! 128x64, one second), since no shared clip has two people. Skips (printing why) when ffmpeg
//! or the shared media are missing; the stand-in run also skips when ONNX Runtime is absent.
//!
//! One test binary (`--test stagea_cli`), its tests grouped by job: [`user_masks`],
//! [`standin`] (the stand-in graphs through ONNX Runtime), [`refusals`], [`lora`]
//! (`--lora` runs, which pass masks the same way) and [`stagea_only`] (`scail stagea`). This file holds the
//! clip, mask and checking helpers they share.

#[path = "../common/mod.rs"]
mod common;
mod lora;
mod refusals;
mod stagea_only;
mod standin;
mod user_masks;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use scail_media::encode::{EncodeOptions, Mp4Writer};
use scail_media::frame::ImageU8;
use scail_media::mask::{BLACK, ON_THRESHOLD, PALETTE, WHITE};
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

const BLUE: [u8; 3] = PALETTE[0];
const RED: [u8; 3] = PALETTE[1];

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

/// The animation-mode user masks of [`expected_colour`] in the inputs' folder: the reference
/// mask (PNG, on white) and a 16-frame driving mask video (on black).
fn animation_masks(inp: &Inputs) -> (PathBuf, PathBuf) {
    let d = inp.dir.path();
    let ref_mask = d.join("ref_mask.png");
    scail_media::image_io::save_png(&source_mask(WHITE, expected_colour), &ref_mask).unwrap();
    let drv_mask = d.join("drv_mask.mp4");
    write_mask_video(&drv_mask, &source_mask(BLACK, expected_colour), 16);
    (ref_mask, drv_mask)
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
        *o = if v > ON_THRESHOLD {
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
