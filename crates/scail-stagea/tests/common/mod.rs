//! Shared helpers: find ONNX Runtime and decode test media (ffmpeg CLI), skipping with a
//! printed reason when either is unavailable.
#![allow(dead_code)]

use scail_stagea::runtime::{resolve_dylib, RuntimeConfig};
use scail_stagea::stagea::Clip;
use scail_stagea::track::SegDetection;
use scail_stagea::{Mask, RgbImage};
use std::path::PathBuf;
use std::process::Command;

/// The runtime configuration, or None (after printing why) when the library is absent.
pub fn ort_or_skip(test: &str) -> Option<RuntimeConfig> {
    match resolve_dylib(None) {
        Ok(p) => Some(RuntimeConfig {
            dylib_path: Some(p),
            intra_threads: Some(2),
            cuda: false,
        }),
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            None
        }
    }
}

pub fn media_dir() -> PathBuf {
    scail_testdata::media_dir()
}

pub fn standin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("standin")
}

fn probe_fps(path: &std::path::Path) -> Option<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=r_frame_rate",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?;
    let (a, b) = s.trim().split_once('/')?;
    Some(a.parse::<f64>().ok()? / b.parse::<f64>().ok()?)
}

/// Decodes a video at its own rate, scaled to `w` x `h`. None (printed) if ffmpeg or the
/// file is missing.
pub fn decode_or_skip(name: &str, w: usize, h: usize, test: &str) -> Option<Clip> {
    let path = media_dir().join(name);
    if !path.is_file() {
        eprintln!("skipping {test}: {} not found", path.display());
        return None;
    }
    let fps = match probe_fps(&path) {
        Some(f) => f,
        None => {
            eprintln!("skipping {test}: ffprobe unavailable");
            return None;
        }
    };
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args([
            "-vf",
            &format!("scale={w}:{h}:flags=bilinear"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .ok()?;
    let fsz = w * h * 3;
    let frames = out
        .stdout
        .chunks_exact(fsz)
        .map(|c| RgbImage::from_vec(w, h, 3, c.to_vec()))
        .collect();
    Some(Clip { frames, fps })
}

pub fn load_image(name: &str, w: usize, h: usize) -> (RgbImage, Option<Vec<u8>>) {
    let img = image::open(media_dir().join(name)).expect("test image");
    let has_alpha = img.color().has_alpha();
    let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
    let rgb = img.to_rgb8();
    let rgba = has_alpha.then(|| img.to_rgba8().into_raw());
    (RgbImage::from_vec(w, h, 3, rgb.into_raw()), rgba)
}

/// A 100x100 mask set inside [x0, x1) x [y0, y1).
pub fn rect(x0: u32, y0: u32, x1: u32, y1: u32) -> Mask {
    Mask::from_rect(100, 100, x0, y0, x1, y1)
}

pub fn det(m: Mask, score: f32) -> SegDetection {
    SegDetection::from_mask(m, score)
}
