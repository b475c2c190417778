//! Videos scail writes: lossless mask videos, the 16 fps output timeline end to end, and the
//! driving audio carried over. Sources are generated in a temp dir with the ffmpeg CLI.
#![cfg(feature = "ffmpeg")]

mod common;

use common::generate::{ffmpeg, small};

use scail_media::probe;
use scail_media::video::VideoDecoder;

/// Colour-mask video written losslessly and read back: bit-exact frames, so the 28-channel
/// compression of the file equals that of the frames that were written.
#[test]
fn mask_video_round_trips_losslessly() {
    use scail_media::encode::{EncodeOptions, Mp4Writer};
    use scail_media::mask::{driving_mask_latent, paint_mask, MaskColor};
    let dir = tempfile::tempdir().unwrap();
    let (w, h, n) = (64usize, 48usize, 9usize);
    let frames: Vec<_> = (0..n)
        .map(|f| {
            paint_mask(w, h, |x, y| {
                let c = MaskColor::ALL[(x / 8 + y / 8 + f) % 7];
                ((x + 2 * f) % 24 < 16).then_some(c)
            })
        })
        .collect();
    let p = dir.path().join("mask.mp4");
    let opts = EncodeOptions {
        lossless_rgb: true,
        ..Default::default()
    };
    let mut wr = Mp4Writer::create(&p, w, h, &opts).unwrap();
    for f in &frames {
        wr.write(f).unwrap();
    }
    wr.finish().unwrap();
    let (back, s) = scail_media::video::decode_frames(&p, &small(), 16, None).unwrap();
    assert_eq!(s.output_frames, n as u64);
    assert_eq!(back, frames);
    assert_eq!(
        driving_mask_latent(&back).unwrap(),
        driving_mask_latent(&frames).unwrap()
    );
}

/// Output frame k shows driving time k/16 s, end to end: a 30 fps clip whose frame N is grey
/// level 8N goes through decode -> 16 fps -> encode, and the encoded frame k is the source
/// frame nearest to k/16 s.
#[test]
fn output_frame_k_shows_driving_time_k_over_16() {
    use scail_media::encode::{EncodeOptions, Mp4Writer};
    let dir = tempfile::tempdir().unwrap();
    let src = ffmpeg(
        dir.path(),
        "ramp.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=black:s=32x32:r=30:d=1,format=gray,geq=lum='N*8'",
            "-c:v",
            "libx264",
            "-qp",
            "0",
            "-pix_fmt",
            "yuv444p",
        ],
    );
    let grey = |img: &scail_media::ImageU8| {
        img.data.iter().map(|&v| v as f64).sum::<f64>() / img.data.len() as f64
    };
    // Grey levels of the source frames nearest to k/16 s (two at an exact tie).
    let expect = |k: usize| -> Vec<f64> {
        let x = k as f64 / 16.0 * 30.0;
        let mut v = vec![x.round().min(29.0) * 8.0];
        if (x - x.floor() - 0.5).abs() < 1e-6 {
            v.push(x.floor() * 8.0);
        }
        v
    };
    let near = |g: f64, want: &[f64], tol: f64| want.iter().any(|w| (g - w).abs() < tol);
    let (frames, s) = scail_media::video::decode_frames(&src, &small(), 16, None).unwrap();
    assert_eq!(s.output_frames, 16);
    for (k, f) in frames.iter().enumerate() {
        assert!(
            near(grey(f), &expect(k), 2.5),
            "decoded frame {k}: {} vs {:?}",
            grey(f),
            expect(k)
        );
    }
    let out = dir.path().join("out.mp4");
    let opts = EncodeOptions {
        crf: 0,
        duration_s: Some(s.duration_s),
        ..Default::default()
    };
    let mut wr = Mp4Writer::create(&out, 32, 32, &opts).unwrap();
    for f in &frames {
        wr.write(f).unwrap();
    }
    wr.finish().unwrap();
    let mut d = VideoDecoder::open(&out, &small()).unwrap();
    let mut k = 0;
    while let Some(f) = d.next_frame().unwrap() {
        assert!(
            (f.pts_s - k as f64 / 16.0).abs() < 1e-3,
            "frame {k} at {}",
            f.pts_s
        );
        assert!(
            near(grey(&f.image), &expect(k), 3.5),
            "encoded frame {k}: {} vs {:?}",
            grey(&f.image),
            expect(k)
        );
        k += 1;
    }
    assert_eq!(k, 16);
}

/// Audio mp4 cannot carry (Vorbis) is re-encoded to AAC; the output is trimmed to the video's
/// duration although the driving audio runs longer.
#[test]
fn non_mp4_audio_is_reencoded_and_trimmed() {
    use scail_media::encode::{EncodeOptions, Mp4Writer};
    let dir = tempfile::tempdir().unwrap();
    let src = ffmpeg(
        dir.path(),
        "drive.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x64:rate=10:duration=1",
            "-f",
            "lavfi",
            "-i",
            "sine=d=3",
            "-c:v",
            "libx264",
            "-c:a",
            "libvorbis",
        ],
    );
    let dec = VideoDecoder::open(&src, &small()).unwrap();
    let audio = dec.info().audio.clone().unwrap();
    assert_eq!(audio.codec, "vorbis");
    let (frames, s) = scail_media::video::decode_frames(&src, &small(), 16, None).unwrap();
    let out = dir.path().join("out.mp4");
    let opts = EncodeOptions {
        audio_from: Some(src.clone()),
        audio_offset_s: audio.offset_s,
        duration_s: Some(s.duration_s),
        ..Default::default()
    };
    let mut wr = Mp4Writer::create(&out, 64, 64, &opts).unwrap();
    for f in &frames {
        wr.write(f).unwrap();
    }
    wr.finish().unwrap();
    let p = probe(&out).unwrap();
    let a = p.audio.expect("audio kept");
    assert_eq!(a.codec, "aac");
    assert!(
        (a.duration_s.unwrap() - 1.0).abs() <= 1.0 / 16.0,
        "{:?}",
        a.duration_s
    );
    assert_eq!(p.video.frames, 16);
}
