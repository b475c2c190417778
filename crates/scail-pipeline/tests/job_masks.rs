//! User-supplied palette masks in `run_job`: a reference mask must be cover-cropped exactly
//! like the reference image it belongs to (DESIGN.md: masks share the image's crop).
//! Skips (printing why) without ffmpeg.

use std::path::Path;

use scail_core::generator::NoProgress as Silent;
use scail_core::schema::{DrivingType, Mode, Resolution, ScailInput, SubjectType};
use scail_media::encode::{EncodeOptions, Mp4Writer};
use scail_media::frame::ImageU8;
use scail_pipeline::job::{run_job, JobRequest, RunOptions};
use scail_pipeline::models::{LoadOptions, Models};

const W: usize = 64;
const H: usize = 32;
const BLUE: [u8; 3] = [0, 0, 255];
const RED: [u8; 3] = [255, 0, 0];

fn have_ffmpeg() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn image(w: usize, h: usize, colour: impl Fn(usize, usize) -> [u8; 3]) -> ImageU8 {
    let mut img = ImageU8::new(w, h, 3);
    for y in 0..h {
        for x in 0..w {
            img.data[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&colour(x, y));
        }
    }
    img
}

fn video(path: &Path, frame: &ImageU8, frames: usize, lossless: bool) {
    let opts = EncodeOptions {
        lossless_rgb: lossless,
        ..EncodeOptions::default()
    };
    let mut wr = Mp4Writer::create(path, frame.width, frame.height, &opts).unwrap();
    for _ in 0..frames {
        wr.write(frame).unwrap();
    }
    wr.finish().unwrap();
}

#[test]
fn reference_mask_is_cropped_like_the_reference_image() {
    if !have_ffmpeg() {
        eprintln!("skipping: no ffmpeg");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wdir = d.join("weights");
    std::fs::create_dir_all(&wdir).unwrap();
    scail_model::weights::init_random(scail_model::weights::ModelSize::Tiny, &wdir, false, 7)
        .unwrap();
    let models = Models::load(&wdir, LoadOptions::default()).unwrap();

    // A 4:1 reference for a 2:1 target: the cover crop keeps source columns [64, 192).
    let (rw, rh) = (256, 64);
    scail_media::image_io::save_png(&image(rw, rh, |_, _| [120, 130, 140]), &d.join("ref.png"))
        .unwrap();
    // Its mask: the blue subject inside the crop, a red one only in the cropped-away strip.
    let mask = image(rw, rh, |x, _| match x {
        0..48 => RED,
        96..160 => BLUE,
        _ => [255, 255, 255],
    });
    scail_media::image_io::save_png(&mask, &d.join("ref_mask.png")).unwrap();
    // One subject (blue) in the driving masks, which match what the crop leaves.
    let drv = image(W * 2, H * 2, |x, _| {
        if (40..88).contains(&x) {
            BLUE
        } else {
            [0; 3]
        }
    });
    video(&d.join("drv_mask.mp4"), &drv, 8, true);
    video(
        &d.join("drv.mp4"),
        &image(W * 2, H * 2, |x, y| [(x * 2) as u8, (y * 4) as u8, 90]),
        8,
        false,
    );
    let req = JobRequest {
        input: ScailInput {
            prompt: String::new(),
            image_url: d.join("ref.png"),
            video_url: d.join("drv.mp4"),
            mode: Mode::Animation,
            driving_type: DrivingType::EndToEnd,
            subject_type: SubjectType::Human,
            resolution: Resolution::R512p,
            num_inference_steps: 1,
            guidance_scale: 1.0,
            shift: 3.0,
            seed: Some(1),
            output_preprocessing: false,
            reference_mask_url: Some(d.join("ref_mask.png")),
            driving_mask_url: Some(d.join("drv_mask.mp4")),
            pose_video_url: None,
            preset: None,
            sampler: Default::default(),
            loras: Vec::new(),
        },
        seed: 1,
        run: RunOptions {
            size: Some((W as u32, H as u32)),
            ..RunOptions::default()
        },
        out: d.join("out.mp4"),
    };
    // Cropped like the image, the reference mask holds one subject, as the driving masks do;
    // stretched, the red strip survives as a second subject and the counts differ.
    run_job(&models, &req, &Silent).unwrap();
}
