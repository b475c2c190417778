//! Stage A CPU timing: seconds per frame for the person detector (YOLOX-L-sized graph),
//! the pose model (DWPose-l-sized graph, per person), SAM3 at its real I/O sizes (stand-in
//! compute), and the host code alone. Run through `bench/stagea_bench.sh`.
//!
//! usage: stagea_bench REAL_SIZE_DIR STANDIN_DIR [FRAMES]

use std::path::PathBuf;
use std::time::Instant;

use scail_media::mask::BLACK;
use scail_stagea::compose::{colour_mask_frame, masked_frame};
use scail_stagea::dwpose::{decode_simcc, keypoints_to_source, Crop};
use scail_stagea::pose::{resize_for_detection, PoseEstimator};
use scail_stagea::runtime::RuntimeConfig;
use scail_stagea::sam3::{Sam3Files, Sam3Segmenter, Segmenter};
use scail_stagea::skeleton::render_skeleton;
use scail_stagea::track::{track, SegDetection, TrackerConfig};
use scail_stagea::yolox::{letterbox, postprocess};
use scail_stagea::{BBox, Mask, RgbImage};

const W: u32 = 896;
const H: u32 = 512;

fn frame(t: u32) -> RgbImage {
    let mut f = RgbImage::filled_rgb(W as usize, H as usize, [40, 60, 90]);
    for y in 0..H {
        for x in 0..W {
            let v = ((x * 7 + y * 3 + t * 11) % 255) as u8;
            if (200..420).contains(&x) && (60..480).contains(&y) {
                f.put_rgb(x as usize, y as usize, [v, 200, 180]);
            }
        }
    }
    f
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>(n: usize, mut f: impl FnMut(usize) -> T) -> f64 {
    f(0); // warm-up (graph optimisation, allocations)
    median(
        (1..=n)
            .map(|i| {
                let t = Instant::now();
                std::hint::black_box(f(i));
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: stagea_bench REAL_SIZE_DIR STANDIN_DIR [FRAMES]");
        std::process::exit(2);
    }
    let real = PathBuf::from(&args[1]);
    let standin = PathBuf::from(&args[2]);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let rt = RuntimeConfig::default();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("Stage A CPU benchmark: {W}x{H} frames, median of {n}, {threads} threads");

    let frames: Vec<RgbImage> = (0..=n as u32).map(frame).collect();
    let person = BBox::new(200.0, 60.0, 420.0, 480.0);

    // Host code alone.
    let host_det = time(n, |i| letterbox(&frames[i], 640));
    let fake_yolox = vec![0f32; 8400 * 85];
    let host_post = time(n, |_| postprocess(&fake_yolox, 85, 640, 1.4).unwrap());
    let crop = Crop::from_box(&person);
    let host_crop = time(n, |i| crop.input_tensor(&frames[i]));
    let sx = vec![0.1f32; 133 * 576];
    let sy = vec![0.1f32; 133 * 768];
    let body = keypoints_to_source(&crop, &decode_simcc(&sx, &sy, 133).unwrap());
    let host_decode = time(n, |_| decode_simcc(&sx, &sy, 133).unwrap());
    let host_render = time(n, |_| render_skeleton(W, H, std::slice::from_ref(&body)));
    let m = Mask::from_rect(W, H, 200, 60, 420, 480);
    let host_masks = time(n, |i| {
        let dets = vec![vec![SegDetection::from_mask(m.clone(), 0.9)]; 2];
        let tr = track(W, H, dets, &TrackerConfig::default()).unwrap();
        let c = colour_mask_frame(W, H, &tr.frame_masks(0), BLACK).unwrap();
        (c, masked_frame(&frames[i], &tr.frame_masks(1)).unwrap())
    });
    println!("host: letterbox {:.4} s, yolox decode+nms {:.4} s, crop+normalise {:.4} s, simcc decode {:.4} s, skeleton render {:.4} s, track+compose {:.4} s",
        host_det, host_post, host_crop, host_decode, host_render, host_masks);
    // The reference's 512 detection resize: identity at the 512p model sizes, a real area
    // resize at 704p (1280x704 -> 960x512).
    let big: Vec<RgbImage> = frames
        .iter()
        .map(|f| f.resize_bilinear(1280, 704))
        .collect();
    let resize_704 = time(n, |i| resize_for_detection(&big[i]));
    println!("host: detection resize at 704p (1280x704 -> 960x512, area) {resize_704:.4} s/frame");

    // Models (random weights at real sizes).
    let mut pose = PoseEstimator::load(
        Some(&real.join("yolox_l.onnx")),
        &real.join("dw-ll_ucoco_384.onnx"),
        &rt,
    )
    .unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let det = time(n, |i| pose.detect_people(&frames[i]).unwrap());
    let pz = time(n, |i| pose.estimate(&frames[i], &[person]).unwrap());
    println!("detector (YOLOX-L-sized, 79.4 GMAC): {det:.3} s/frame");
    println!("pose (DWPose-l-sized, 9.7 GMAC): {pz:.3} s/frame/person");

    let mut sam = Sam3Segmenter::load(&Sam3Files::in_dir(&standin), &["human".into()], &rt)
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1)
        });
    let seg = time(n, |i| sam.detect(&frames[i]).unwrap());
    println!(
        "sam3 I/O + host at real tensor sizes (stand-in compute, one prompt): {seg:.3} s/frame"
    );
    println!(
        "pose path total (detector + 1 person + render): {:.3} s/frame",
        det + pz + host_render
    );
}
