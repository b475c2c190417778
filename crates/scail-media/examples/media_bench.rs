//! Benchmark: decode + 16 fps resample + cover-resize + centre-crop of a clip to the model size,
//! against the ffmpeg CLI doing the same (`-vf fps=16,scale=..,crop=..` to rawvideo), in the
//! same run. Run through `bench/media_bench.sh`.
//!
//! Usage: media_bench CLIP [WIDTH HEIGHT] [REPEATS]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use scail_media::resize::{cover_crop, video_frame_resize_crop};
use scail_media::video::{decode_frames, decode_resampled, DecodeOptions, VideoDecoder};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clip = PathBuf::from(
        args.get(1)
            .expect("usage: media_bench CLIP [W H] [REPEATS]"),
    );
    let tw: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(896);
    let th: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(512);
    let repeats: usize = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(3);
    let fps = 16u32;

    let opts = DecodeOptions::default();
    let info = VideoDecoder::open(&clip, &opts).unwrap().info().clone();
    let cc = cover_crop(info.out_height as usize, info.out_width as usize, th, tw);
    println!(
        "clip {} {}x{} {} @ {:.3} fps -> resize {}x{} crop {}x{}+{}+{} @ {fps} fps",
        clip.display(),
        info.width,
        info.height,
        info.codec,
        info.fps,
        cc.resize_w,
        cc.resize_h,
        tw,
        th,
        cc.left,
        cc.top
    );

    // `media_bench CLIP W H N resize`: only the resize of the first frame, N times (for CPU
    // profiling with perf stat).
    if args.get(5).map(String::as_str) == Some("resize") {
        let first = VideoDecoder::open(&clip, &opts)
            .unwrap()
            .next_frame()
            .unwrap()
            .unwrap();
        let t = Instant::now();
        for _ in 0..repeats {
            std::hint::black_box(video_frame_resize_crop(&first.image, &cc));
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0 / repeats as f64;
        println!("resize+crop {ms:.2} ms/frame over {repeats}");
        return;
    }

    let vf = format!(
        "fps={fps},scale={}:{}:flags=bicubic,crop={tw}:{th}:{}:{}",
        cc.resize_w, cc.resize_h, cc.left, cc.top
    );
    // The model path's entry point: decode (own thread) -> 16 fps -> resize + crop.
    let run_ours = || {
        let t = Instant::now();
        let (frames, _) = decode_frames(&clip, &opts, fps, Some((th, tw))).unwrap();
        let elapsed = t.elapsed().as_secs_f64();
        let sum = frames
            .iter()
            .flat_map(|f| f.data.iter())
            .map(|&v| v as u64)
            .sum::<u64>();
        (elapsed, frames.len() as u64, sum)
    };
    let run_cli = || {
        let t = Instant::now();
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
            .arg(&clip)
            .args(["-vf", &vf, "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("ffmpeg CLI");
        let mut bytes = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        let mut out = child.stdout.take().unwrap();
        loop {
            let k = out.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            bytes += k;
        }
        assert!(child.wait().unwrap().success());
        (t.elapsed().as_secs_f64(), bytes / (tw * th * 3))
    };

    // `media_bench CLIP W H N ours`: only our pipeline, N times (for profiling).
    if args.get(5).map(String::as_str) == Some("ours") {
        let best = (0..repeats)
            .map(|_| run_ours().0)
            .fold(f64::INFINITY, f64::min);
        println!("scail-media: best {best:.3} s over {repeats}");
        return;
    }

    // Interleaved repeats, so both see the same machine load; best of each.
    let (mut ours, mut cli) = (f64::INFINITY, f64::INFINITY);
    let (mut our_frames, mut checksum, mut cli_frames) = (0u64, 0u64, 0usize);
    for _ in 0..repeats {
        let (t, n, sum) = run_ours();
        ours = ours.min(t);
        (our_frames, checksum) = (n, sum);
        let (t, n) = run_cli();
        cli = cli.min(t);
        cli_frames = n;
    }

    // Resize + crop alone on one decoded frame.
    let first = VideoDecoder::open(&clip, &opts)
        .unwrap()
        .next_frame()
        .unwrap()
        .unwrap();
    let t = Instant::now();
    for _ in 0..20 {
        std::hint::black_box(video_frame_resize_crop(&first.image, &cc));
    }
    let resize_ms = t.elapsed().as_secs_f64() * 1000.0 / 20.0;

    // Decode + colour conversion alone, to split the time.
    let t = Instant::now();
    decode_resampled(&clip, &opts, fps, |_, _| Ok(())).unwrap();
    let decode_only = t.elapsed().as_secs_f64();

    println!(
        "scail-media: {our_frames} frames in {:.3} s ({:.1} fps)  [checksum {checksum}]",
        ours,
        our_frames as f64 / ours
    );
    println!("  of which decode + RGB conversion: {decode_only:.3} s; resize+crop {resize_ms:.1} ms/frame");
    println!(
        "ffmpeg CLI : {cli_frames} frames in {:.3} s ({:.1} fps)",
        cli,
        cli_frames as f64 / cli
    );
    println!(
        "ratio scail-media / CLI time: {:.2} (below 1 = faster than the CLI); best of {repeats}",
        ours / cli
    );
}
