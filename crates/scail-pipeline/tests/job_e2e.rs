//! The whole job on real media with `init-random --config tiny` weights: small sizes, few steps.
//! Checks the output's timing (16 fps, the driving video's duration, one frame per 1/16 s),
//! audio passthrough, the Stage A videos, determinism of the seed and the server's Generator.
//! Masks are supplied (no segmentation model in CI), as the `*_mask_url` extensions allow.
//! Skips (printing why) when ffmpeg or the shared media are missing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use scail_core::generator::{
    GenerateRequest, Generator, LogLevel, NoProgress as Silent, Progress, ProgressUpdate,
};
use scail_core::schema::{DrivingType, Mode, Resolution, ScailInput, SubjectType};
use scail_media::encode::{EncodeOptions, Mp4Writer};
use scail_media::frame::ImageU8;
use scail_model::memory::JobShape;
use scail_model::offload::Offload;
use scail_pipeline::job::{run_job, JobRequest, RunOptions};
use scail_pipeline::models::{LoadOptions, Models};
use scail_pipeline::PipelineGenerator;

const W: usize = 64;
const H: usize = 32;
const BLUE: [u8; 3] = [0, 0, 255];

/// A file of the test media folder, when present.
fn media(name: &str) -> Option<PathBuf> {
    Some(scail_testdata::media(name)).filter(|p| p.is_file())
}

fn have_ffmpeg() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

struct Fixture {
    dir: tempfile::TempDir,
    models: Models,
}

/// One job at a time in this binary. OpenBLAS's thread count is process-wide, attention's
/// single-threaded sections lower it while they run, and a matmul's last bits depend on how its
/// rows are split among threads: a job running beside another is not bit-reproducible.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let wdir = dir.path().join("weights");
        std::fs::create_dir_all(&wdir).unwrap();
        scail_model::weights::init_random(scail_model::weights::ModelSize::Tiny, &wdir, false, 7)
            .unwrap();
        let models = Models::load(&wdir, LoadOptions::default()).unwrap();
        // Palette-coded masks at the model size: subject 0 (blue) in a 16-aligned block, so
        // H.264's 4:2:0 chroma keeps the colour exact inside it.
        let mut rm = ImageU8::from_vec(W, H, 3, [255u8; 3].repeat(W * H));
        let mut dm = ImageU8::from_vec(W, H, 3, vec![0u8; W * H * 3]);
        for y in 0..H {
            for x in 16..48 {
                rm.data[(y * W + x) * 3..(y * W + x) * 3 + 3].copy_from_slice(&BLUE);
                dm.data[(y * W + x) * 3..(y * W + x) * 3 + 3].copy_from_slice(&BLUE);
            }
        }
        scail_media::image_io::save_png(&rm, &dir.path().join("ref_mask.png")).unwrap();
        if have_ffmpeg() {
            let opts = EncodeOptions {
                crf: 0,
                ..EncodeOptions::default()
            };
            let mut wr = Mp4Writer::create(&dir.path().join("drv_mask.mp4"), W, H, &opts).unwrap();
            for _ in 0..16 * 6 {
                wr.write(&dm).unwrap();
            }
            wr.finish().unwrap();
        }
        Fixture { dir, models }
    })
}

fn request(
    f: &Fixture,
    image: PathBuf,
    video: PathBuf,
    out: &str,
    seed: u64,
    segment_len: usize,
) -> JobRequest {
    JobRequest {
        input: ScailInput {
            prompt: "a person dancing".into(),
            image_url: image,
            video_url: video,
            mode: Mode::Animation,
            driving_type: DrivingType::EndToEnd,
            subject_type: SubjectType::Human,
            resolution: Resolution::R512p,
            num_inference_steps: 2,
            guidance_scale: 2.0,
            shift: 3.0,
            seed: Some(seed),
            output_preprocessing: true,
            reference_mask_url: Some(f.dir.path().join("ref_mask.png")),
            driving_mask_url: Some(f.dir.path().join("drv_mask.mp4")),
            pose_video_url: None,
            preset: None,
            sampler: Default::default(),
            loras: Vec::new(),
        },
        seed,
        run: RunOptions {
            size: Some((W as u32, H as u32)),
            segment_len,
            ..RunOptions::default()
        },
        out: f.dir.path().join(out),
    }
}

fn inputs(names: [&str; 2]) -> Option<(PathBuf, PathBuf)> {
    if !have_ffmpeg() {
        eprintln!("skipping: no ffmpeg");
        return None;
    }
    match (media(names[0]), media(names[1])) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            eprintln!("skipping: shared media not found");
            None
        }
    }
}

/// Output frame count and duration follow the driving video: ceil(duration * 16) frames at
/// 16 fps, trimmed to the driving duration.
fn check_timing(out: &Path, drive: &Path, frames: usize) {
    let o = scail_media::probe(out).unwrap();
    let d = scail_media::probe(drive).unwrap();
    let want = (d.video.duration_s * 16.0 - 1e-6).ceil() as u64;
    assert_eq!(o.video.frames, want, "frames of {}", out.display());
    assert_eq!(frames as u64, want);
    assert!((o.video.fps - 16.0).abs() < 1e-6, "fps {}", o.video.fps);
    assert_eq!((o.video.width as usize, o.video.height as usize), (W, H));
    assert!(
        (o.video.duration_s - d.video.duration_s).abs() <= 1.0 / 16.0 + 1e-3,
        "duration {} vs driving {}",
        o.video.duration_s,
        d.video.duration_s
    );
}

#[test]
fn short_clip_single_segment_with_preprocessing_and_same_seed_same_latent() {
    let _one = one_at_a_time();
    let Some((img, drv)) = inputs(["ref_photo_woman_shore.jpg", "dance_woman_16fps.mp4"]) else {
        return;
    };
    let f = fixture();
    let a = run_job(
        &f.models,
        &request(f, img.clone(), drv.clone(), "a.mp4", 11, 81),
        &Silent,
    )
    .unwrap();
    check_timing(&a.video, &drv, a.frames);
    assert!(scail_media::probe(&a.video).unwrap().audio.is_none());
    for p in [
        a.preprocessing_video.as_ref().unwrap(),
        a.preprocessing_mask_video.as_ref().unwrap(),
    ] {
        let pi = scail_media::probe(p).unwrap();
        assert_eq!(pi.video.frames as usize, a.frames, "{}", p.display());
    }
    let b = run_job(
        &f.models,
        &request(f, img.clone(), drv.clone(), "b.mp4", 11, 81),
        &Silent,
    )
    .unwrap();
    let bytes = |o: &scail_pipeline::job::JobOutput| {
        o.last_latent
            .as_ref()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (la, lb) = (bytes(&a), bytes(&b));
    assert!(
        la.iter().zip(&lb).all(|(x, y)| x.to_bits() == y.to_bits()),
        "same seed, different latent"
    );
    let c = run_job(&f.models, &request(f, img, drv, "c.mp4", 12, 81), &Silent).unwrap();
    assert_ne!(la, bytes(&c), "another seed must change the latent");
}

#[test]
fn stream_offload_and_a_deferred_dit_give_the_same_latent_and_a_job_too_big_is_refused_first() {
    let _one = one_at_a_time();
    let Some((img, drv)) = inputs(["ref_photo_woman_shore.jpg", "dance_woman_16fps.mp4"]) else {
        return;
    };
    let f = fixture();
    let wdir = f.dir.path().join("weights");
    let latent = |o: &scail_pipeline::job::JobOutput| -> Vec<u32> {
        let t = o.last_latent.as_ref().unwrap().flatten_all().unwrap();
        t.to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    let req = |out: &str| request(f, img.clone(), drv.clone(), out, 11, 81);
    let resident = run_job(&f.models, &req("resident.mp4"), &Silent).unwrap();
    let opts = |offload, host_memory| LoadOptions {
        offload,
        host_memory,
        ..LoadOptions::default()
    };
    let streamed = Models::load(&wdir, opts(Offload::Stream, None)).unwrap();
    assert_eq!(streamed.dit().unwrap().offload(), Offload::Stream);
    let s = run_job(&streamed, &req("stream.mp4"), &Silent).unwrap();
    assert_eq!(latent(&s), latent(&resident), "stream changed the numbers");
    // The DiT deferred until umT5 has encoded and gone (what `generate` does): same numbers.
    let deferred = LoadOptions {
        dit_after_text: true,
        ..LoadOptions::default()
    };
    let deferred = Models::load(&wdir, deferred).unwrap();
    let d = run_job(&deferred, &req("deferred.mp4"), &Silent).unwrap();
    assert_eq!(
        latent(&d),
        latent(&resident),
        "deferring the DiT changed the numbers"
    );

    // A budget that holds the weights and one frame at this size but not this job (many
    // frames, two guidance branches): refused after decoding, before any model runs, and
    // nothing written.
    let one_frame = JobShape {
        width: W,
        height: H,
        ..JobShape::SMALLEST
    };
    let budget = f.models.check_memory(&one_frame).unwrap().host;
    let tight = Models::load(&wdir, opts(Offload::None, Some(budget))).unwrap();
    let out = req("tight.mp4");
    match run_job(&tight, &out, &Silent) {
        Err(scail_pipeline::PipelineError::Memory(m)) => {
            assert!(m.contains("needs about") && m.contains("--offload"), "{m}");
            assert!(m.contains(&format!("{}x{}", W, H)), "{m}");
        }
        other => panic!(
            "expected a memory refusal, got {:?}",
            other.map(|o| o.video)
        ),
    }
    assert!(!out.out.exists());
    // A budget below the weights themselves is refused when they load.
    let e = Models::load(&wdir, opts(Offload::None, Some(1 << 20)))
        .err()
        .expect("1 MiB cannot hold the weights")
        .to_string();
    assert!(e.contains("no offload mode fits"), "{e}");
}

#[test]
fn long_clip_many_segments_keeps_timing_and_audio() {
    let _one = one_at_a_time();
    let Some((img, drv)) = inputs(["ref_fantasy_elf.jpeg", "talk_show_host_30fps_audio.mp4"])
    else {
        return;
    };
    let f = fixture();
    // 57 output frames with 17-frame segments: 5 segments (more than two), last one padded.
    let mut req = request(f, img, drv.clone(), "long.mp4", 5, 17);
    req.input.output_preprocessing = false;
    let o = run_job(&f.models, &req, &Silent).unwrap();
    check_timing(&o.video, &drv, o.frames);
    let pi = scail_media::probe(&o.video).unwrap();
    let audio = pi.audio.expect("the driving video's audio is copied");
    let src = scail_media::probe(&drv).unwrap().audio.unwrap();
    assert_eq!(audio.sample_rate, src.sample_rate);
    if let Some(d) = audio.duration_s {
        assert!(
            d <= pi.video.duration_s + 0.05,
            "audio {d} s longer than video {}",
            pi.video.duration_s
        );
    }
}

struct Log(std::sync::Mutex<Vec<String>>);
impl Progress for Log {
    fn log(&self, _level: LogLevel, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
    fn progress(&self, u: &ProgressUpdate) {
        let eta = u.eta_s.map(|e| format!(" eta {e:.1}")).unwrap_or_default();
        self.0
            .lock()
            .unwrap()
            .push(format!("progress {} {}/{}{eta}", u.stage, u.done, u.total));
    }
    fn is_cancelled(&self) -> bool {
        false
    }
}

struct Cancelled;
impl Progress for Cancelled {
    fn log(&self, _: LogLevel, _: &str) {}
    fn progress(&self, _: &ProgressUpdate) {}
    fn is_cancelled(&self) -> bool {
        true
    }
}

#[test]
fn generator_runs_a_request_and_honours_cancel() {
    let _one = one_at_a_time();
    let Some((img, drv)) = inputs([
        "ref_photo_old_man_headphones.jpg",
        "gesture_woman_closeup_16fps.mp4",
    ]) else {
        return;
    };
    let f = fixture();
    let g = PipelineGenerator::load(&f.dir.path().join("weights"), LoadOptions::default(), None)
        .unwrap()
        .with_size(Some((W as u32, H as u32)));
    let work = f.dir.path().join("job1");
    std::fs::create_dir_all(&work).unwrap();
    let input = ScailInput {
        prompt: "a man talking".into(),
        image_url: img,
        video_url: drv.clone(),
        mode: Mode::Animation,
        driving_type: DrivingType::EndToEnd,
        subject_type: SubjectType::Human,
        resolution: Resolution::R512p,
        num_inference_steps: 1,
        guidance_scale: 1.0,
        shift: 3.0,
        seed: Some(3),
        output_preprocessing: true,
        reference_mask_url: Some(f.dir.path().join("ref_mask.png")),
        driving_mask_url: Some(f.dir.path().join("drv_mask.mp4")),
        pose_video_url: None,
        preset: None,
        sampler: Default::default(),
        loras: Vec::new(),
    };
    let req = GenerateRequest {
        request_id: "r1".into(),
        input,
        seed: 3,
        work_dir: work,
        loras: Vec::new(),
    };
    let log = Log(Default::default());
    let out = g.generate(&req, &log).unwrap();
    let pi = scail_media::probe(&out.video.path).unwrap();
    assert_eq!((pi.video.width as usize, pi.video.height as usize), (W, H));
    check_timing(&out.video.path, &drv, pi.video.frames as usize);
    assert!(out.preprocessing_video.is_some() && out.preprocessing_mask_video.is_some());
    let lines = log.0.lock().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("progress segment 1/1 1/1")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("progress segment") && l.contains(" eta ")),
        "the ETA travels with the update: {lines:?}"
    );
    drop(lines);
    let e = g.generate(&req, &Cancelled).unwrap_err();
    assert_eq!(e, scail_core::generator::GenerateError::Cancelled);
}

/// A reference with real transparency needs no reference mask: its alpha is the subject.
#[test]
fn transparent_reference_takes_its_mask_from_alpha() {
    let _one = one_at_a_time();
    let Some((_, drv)) = inputs(["ref_photo_woman_shore.jpg", "dance_woman_16fps.mp4"]) else {
        return;
    };
    let f = fixture();
    let (w, h) = (200usize, 100usize);
    let mut rgba = vec![0u8; w * h * 4];
    for y in 0..h {
        for x in 0..w {
            let p = &mut rgba[(y * w + x) * 4..(y * w + x) * 4 + 4];
            p.copy_from_slice(&[200, 150, 100, if (50..150).contains(&x) { 255 } else { 0 }]);
        }
    }
    let png = f.dir.path().join("rgba_ref.png");
    image::save_buffer(
        &png,
        &rgba,
        w as u32,
        h as u32,
        image::ExtendedColorType::Rgba8,
    )
    .unwrap();
    let mut req = request(f, png.clone(), drv, "alpha.mp4", 2, 81);
    req.input.reference_mask_url = None;
    req.input.output_preprocessing = false;
    run_job(&f.models, &req, &Silent).unwrap();
    // Without alpha and without a mask or segmentation model, Stage A must refuse clearly.
    let opaque: Vec<u8> = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    image::save_buffer(
        &png,
        &opaque,
        w as u32,
        h as u32,
        image::ExtendedColorType::Rgba8,
    )
    .unwrap();
    let e = run_job(&f.models, &req, &Silent).unwrap_err().to_string();
    assert!(e.contains("preprocessing"), "{e}");
}
