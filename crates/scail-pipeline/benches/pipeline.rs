//! Pipeline benchmark on CPU: seconds per step, per segment and per job, peak memory, and the
//! share of time in each stage, for the tiny config (a whole job from files, `init-random`
//! weights) and a mid-size DiT (the sampling core at a larger size), each with and without
//! classifier-free guidance as the comparison run.
//!
//! With `BENCH_PRESETS=1` it compares the `fast` preset (the distilled recipe: 4 Euler steps at
//! CFG 1) with `quality` (the hosted 40 UniPC steps at CFG 5) instead: seconds per job and per
//! segment at both sizes, the two interleaved for `BENCH_ROUNDS` rounds (default 3), min and
//! median of each, and the speed-up.
//!
//! Run through `bench/pipeline.sh` / `bench/presets.sh` (build under the shared cargo lock, run
//! outside it). Environment: `SCAIL_MEDIA_DIR` (default testdata/media), `BENCH_STEPS`
//! (default 4).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use scail_core::generator::{LogLevel, Progress, ProgressUpdate};
use scail_core::schema::ScailInput;
use scail_core::schema::{DrivingType, Mode, Preset, Recipe, Resolution, SubjectType};
use scail_media::encode::{EncodeOptions, Mp4Writer};
use scail_media::frame::ImageU8;
use scail_model::dit::{self, Dit, DitConfig};
use scail_pipeline::job::{run_job, JobRequest, RunOptions};
use scail_pipeline::models::{LoadOptions, Models};
use scail_pipeline::noise::NoiseGen;
use scail_pipeline::{sample_video, Conditioning, Hooks, PixelInputs, SamplingOptions};

fn peak_mib() -> String {
    scail_model::memory::peak_rss_bytes()
        .map(|b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64))
        .unwrap_or_else(|| "n/a".into())
}

/// Step and segment timestamps of a job.
struct StepTimes {
    start: Instant,
    /// (time, step index within its segment) of every finished step.
    steps: std::sync::Mutex<Vec<(f64, u64)>>,
}

impl Progress for StepTimes {
    fn log(&self, _: LogLevel, _: &str) {}
    fn progress(&self, u: &ProgressUpdate) {
        self.steps
            .lock()
            .unwrap()
            .push((self.start.elapsed().as_secs_f64(), u.done));
    }
    fn is_cancelled(&self) -> bool {
        false
    }
}

fn media_dir() -> PathBuf {
    scail_testdata::media_dir()
}

/// Seconds per job and per segment of one run.
#[derive(Clone, Copy)]
struct Timing {
    job: f64,
    segment: f64,
}

fn recipe(steps: usize, guidance: f64) -> Recipe {
    Recipe {
        steps: steps as u32,
        guidance_scale: guidance,
        ..Preset::Quality.recipe()
    }
}

fn tiny_job(r: Recipe, tmp: &Path, models: &Models, w: usize, h: usize) -> Timing {
    let (steps, guidance) = (r.steps as usize, r.guidance_scale);
    let t = StepTimes {
        start: Instant::now(),
        steps: Default::default(),
    };
    let req = JobRequest {
        input: ScailInput {
            prompt: "a woman dancing".into(),
            image_url: media_dir().join("ref_photo_woman_shore.jpg"),
            video_url: media_dir().join("dance_woman_16fps.mp4"),
            mode: Mode::Animation,
            driving_type: DrivingType::EndToEnd,
            subject_type: SubjectType::Human,
            resolution: Resolution::R512p,
            num_inference_steps: r.steps,
            guidance_scale: r.guidance_scale,
            shift: r.shift,
            seed: Some(1),
            output_preprocessing: false,
            reference_mask_url: Some(tmp.join("ref_mask.png")),
            driving_mask_url: Some(tmp.join("drv_mask.mp4")),
            pose_video_url: None,
            preset: None,
            sampler: r.sampler,
            loras: Vec::new(),
        },
        seed: 1,
        run: RunOptions {
            size: Some((w as u32, h as u32)),
            segment_len: 33,
            ..RunOptions::default()
        },
        out: tmp.join("bench.mp4"),
    };
    let wall = Instant::now();
    let out = run_job(models, &req, &t).expect("job");
    let job = wall.elapsed().as_secs_f64();
    let st = t.steps.lock().unwrap();
    // Step-to-step intervals inside a segment only (the first step of a segment also carries
    // that segment's VAE encode).
    let per_step: Vec<f64> = st
        .windows(2)
        .filter(|w| w[1].1 > 1)
        .map(|w| w[1].0 - w[0].0)
        .collect();
    let mean_step = if per_step.is_empty() {
        f64::NAN
    } else {
        per_step.iter().sum::<f64>() / per_step.len() as f64
    };
    let segments = st.len() / steps.max(1);
    let sampling: f64 = out
        .timings
        .iter()
        .filter(|(n, _)| n == "sampling_and_decode")
        .map(|(_, s)| s)
        .sum();
    println!(
        "tiny job {w}x{h}, {} frames, {segments} segment(s) of 33, {steps} steps, guidance {guidance}: {job:.2} s/job, {:.3} s/segment (sampling+decode), {mean_step:.4} s/step, peak RSS {}",
        out.frames,
        sampling / segments.max(1) as f64,
        peak_mib()
    );
    let total: f64 = out.timings.iter().map(|(_, s)| s).sum();
    for (n, s) in &out.timings {
        println!("    {n:<22} {s:>8.3} s  {:>5.1}%", 100.0 * s / total);
    }
    Timing {
        job,
        segment: sampling / segments.max(1) as f64,
    }
}

#[derive(Default)]
struct Stages {
    current: Option<(String, Instant)>,
    acc: Vec<(String, f64)>,
    steps: usize,
    segments: usize,
}

impl Stages {
    fn close(&mut self) {
        if let Some((n, t)) = self.current.take() {
            let d = t.elapsed().as_secs_f64();
            match self.acc.iter_mut().find(|(k, _)| *k == n) {
                Some(e) => e.1 += d,
                None => self.acc.push((n, d)),
            }
        }
    }
}

impl Hooks for Stages {
    fn stage(&mut self, name: &str) {
        self.close();
        self.current = Some((name.to_string(), Instant::now()));
    }
    fn step(&mut self, _: usize, _: usize, _: usize) {
        self.steps += 1;
    }
    fn segment(&mut self, _: usize, _: usize, _: usize, _: usize) {
        self.segments += 1;
    }
}

/// The sampling core with a mid-size random DiT and the tiny VAE.
fn mid_core(
    vae: &scail_model::vae::WanVae,
    r: Recipe,
    (frames, h, w): (usize, usize, usize),
) -> Timing {
    let (steps, guidance) = (r.steps as usize, r.guidance_scale);
    let cfg = DitConfig {
        dim: 512,
        ffn_dim: 1536,
        num_heads: 8,
        num_layers: 8,
        text_dim: 32,
        freq_dim: 256,
        ..DitConfig::fourteen_b()
    };
    let dev = Device::Cpu;
    let weights = dit::random_weights(&cfg, DType::F32, &dev).unwrap();
    let model = Dit::load(VarBuilder::from_tensors(weights, DType::F32, &dev), &cfg).unwrap();
    let rnd = |s: &[usize]| Tensor::rand(-1f32, 1.0, s, &dev).unwrap();
    let inputs = PixelInputs {
        ref_image: rnd(&[3, h, w]),
        ref_mask: Tensor::ones((3, h, w), DType::F32, &dev).unwrap(),
        pose_video: rnd(&[frames, 3, h, w]),
        driving_mask: Tensor::ones((3, frames, h, w), DType::F32, &dev)
            .unwrap()
            .affine(1.0, 0.0)
            .unwrap(),
    };
    let cond = Conditioning {
        context: rnd(&[20, 32]),
        context_null: rnd(&[1, 32]),
        clip_fea: rnd(&[1, 257, 1280]),
    };
    let opts = SamplingOptions {
        steps,
        guidance,
        shift: r.shift,
        solver: r.sampler.into(),
        segment_len: 33,
        ..SamplingOptions::default()
    };
    let mut st = Stages::default();
    let wall = Instant::now();
    sample_video(
        &model,
        vae,
        &inputs,
        &cond,
        &opts,
        &mut NoiseGen::new(1),
        &mut st,
    )
    .unwrap();
    st.close();
    let job = wall.elapsed().as_secs_f64();
    let sampling = st
        .acc
        .iter()
        .find(|(n, _)| n == "sampling")
        .map(|e| e.1)
        .unwrap_or(0.0);
    println!(
        "mid DiT (dim 512, 8 layers) {w}x{h}, {frames} frames, {} segment(s), {steps} steps, guidance {guidance}: {job:.2} s/job, {:.2} s/segment, {:.3} s/step, peak RSS {}",
        st.segments,
        job / st.segments.max(1) as f64,
        sampling / st.steps.max(1) as f64,
        peak_mib()
    );
    for (n, s) in &st.acc {
        println!("    {n:<22} {s:>8.3} s  {:>5.1}%", 100.0 * s / job);
    }
    Timing {
        job,
        segment: job / st.segments.max(1) as f64,
    }
}

fn min_median(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (s[0], s[s.len() / 2])
}

/// `fast` against `quality` at one size, interleaved round by round.
fn compare_presets(name: &str, rounds: usize, mut run: impl FnMut(Recipe) -> Timing) {
    let presets = [Preset::Fast, Preset::Quality];
    let mut t: Vec<Vec<Timing>> = vec![Vec::new(); presets.len()];
    for round in 0..rounds {
        for (i, p) in presets.iter().enumerate() {
            println!("  [{name}, round {}/{rounds}, {p}]", round + 1);
            t[i].push(run(p.recipe()));
        }
    }
    println!("== {name}: {rounds} interleaved rounds");
    let mut med = Vec::new();
    for (p, ts) in presets.iter().zip(&t) {
        let (jmin, jmed) = min_median(&ts.iter().map(|x| x.job).collect::<Vec<_>>());
        let (smin, smed) = min_median(&ts.iter().map(|x| x.segment).collect::<Vec<_>>());
        let r = p.recipe();
        println!(
            "  {:<8} ({} steps, CFG {}, {}): s/job min {jmin:.2} median {jmed:.2}; s/segment min {smin:.2} median {smed:.2}",
            p.to_string(), r.steps, r.guidance_scale, r.sampler
        );
        med.push((jmed, smed));
    }
    println!(
        "  fast vs quality: {:.1}x less time per job, {:.1}x per segment (medians)",
        med[1].0 / med[0].0,
        med[1].1 / med[0].1
    );
}

fn main() {
    let steps: usize = std::env::var("BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let tmp = tempfile::tempdir().unwrap();
    let wdir = tmp.path().join("weights");
    std::fs::create_dir_all(&wdir).unwrap();
    scail_model::weights::init_random(scail_model::weights::ModelSize::Tiny, &wdir, false, 1)
        .unwrap();
    let models = Models::load(&wdir, LoadOptions::default()).unwrap();
    let (w, h) = (128usize, 64usize);
    // Palette masks at the job size: subject 0 (blue) in the middle.
    let mut rm = ImageU8::from_vec(w, h, 3, [255u8; 3].repeat(w * h));
    let mut dm = ImageU8::from_vec(w, h, 3, vec![0u8; w * h * 3]);
    for y in 0..h {
        for x in w / 4..3 * w / 4 {
            rm.data[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[0, 0, 255]);
            dm.data[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[0, 0, 255]);
        }
    }
    scail_media::image_io::save_png(&rm, &tmp.path().join("ref_mask.png")).unwrap();
    let mut wr = Mp4Writer::create(
        &tmp.path().join("drv_mask.mp4"),
        w,
        h,
        &EncodeOptions {
            crf: 0,
            ..EncodeOptions::default()
        },
    )
    .unwrap();
    for _ in 0..80 {
        wr.write(&dm).unwrap();
    }
    wr.finish().unwrap();

    println!(
        "# scail-pipeline CPU benchmark ({} threads available)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    if std::env::var("BENCH_PRESETS").is_ok_and(|v| v == "1") {
        let rounds: usize = std::env::var("BENCH_ROUNDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3);
        compare_presets("tiny job", rounds, |r| {
            tiny_job(r, tmp.path(), &models, w, h)
        });
        compare_presets("mid DiT sampling core", rounds, |r| {
            mid_core(&models.vae, r, (33, 64, 128))
        });
        return;
    }
    for g in [5.0, 1.0] {
        tiny_job(recipe(steps, g), tmp.path(), &models, w, h);
    }
    for g in [5.0, 1.0] {
        mid_core(&models.vae, recipe(steps, g), (33, 128, 256));
    }
}
