//! Wan 2.1 VAE decode benchmark at real widths with random weights (f32, CPU by default).
//!
//! Usage: vae_decode [--frames T] [--height h] [--width w] [--dim N] [--threads N] [--runs N]
//! Sizes are latent units (pixels / 8). Prints a human line and one JSON line; `bench/vae_cpu.sh`
//! runs it interleaved with PyTorch's `AutoencoderKLWan`.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use scail_model::memory::peak_rss_bytes;
use scail_model::vae::{VaeConfig, WanVae};

fn peak_rss() -> u64 {
    peak_rss_bytes().unwrap_or(0)
}

/// User + system CPU seconds of this process (from /proc/self/stat, 100 ticks a second).
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let (mut t, mut h, mut w, mut dim, mut runs) = (5usize, 32usize, 56usize, 96usize, 1usize);
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v: usize = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--frames" => t = v,
            "--height" => h = v,
            "--width" => w = v,
            "--dim" => dim = v,
            "--runs" => runs = v,
            "--threads" => {
                rayon_threads(v);
            }
            o => panic!("unknown flag {o}"),
        }
    }
    let dev = Device::Cpu;
    let cfg = VaeConfig::with_dim(dim);
    let ws = scail_model::vae::random_weights(&cfg, &dev).unwrap();
    let vae = WanVae::new(&cfg, VarBuilder::from_tensors(ws, DType::F32, &dev)).unwrap();
    let z = Tensor::randn(0f32, 1.0, (16, t, h, w), &dev).unwrap();
    let before = peak_rss();
    let mut best = f64::MAX;
    let mut cpu = f64::MAX;
    let mut frames = 0;
    for _ in 0..runs {
        let (start, c0) = (Instant::now(), cpu_seconds());
        let out = vae.decode(&z).unwrap();
        best = best.min(start.elapsed().as_secs_f64());
        cpu = cpu.min(cpu_seconds() - c0);
        frames = out.dim(1).unwrap();
    }
    let peak = peak_rss();
    println!(
        "candle vae decode: latent [16,{t},{h},{w}] -> {frames} frames {}x{}, dim {dim}: {best:.2} s ({cpu:.1} CPU s), peak RSS {:.2} GiB (weights+input {:.2} GiB)",
        8 * h,
        8 * w,
        peak as f64 / (1u64 << 30) as f64,
        before as f64 / (1u64 << 30) as f64
    );
    println!(
        "{{\"impl\":\"candle\",\"seconds\":{best:.4},\"cpu_seconds\":{cpu:.2},\"peak_rss_bytes\":{peak},\"frames\":{frames},\"threads\":{},\"blas\":\"{}\"}}",
        rayon::current_num_threads(),
        scail_model::blas::backend()
    );
}

fn rayon_threads(n: usize) {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .ok();
}
