//! Videos users upload, good and bad: containers and codecs, rotation, SAR, variable frame
//! rate, data tracks, and hostile files (empty, text, no video, truncated, corrupt, absurd
//! sizes, hours long). Every file is generated in a temp dir at test time with the ffmpeg CLI.
#![cfg(feature = "ffmpeg")]

mod common;

use common::generate::{decode_all, ffmpeg, small, with_src};

use scail_media::image_io::decode_image;
use scail_media::video::{decode_resampled, VideoDecoder};
use scail_media::{probe, Limits, MediaError};

#[test]
fn containers_and_codecs_decode() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "a.mp4",
            with_src(&["-c:v", "libx264", "-pix_fmt", "yuv420p"]),
            "h264",
        ),
        (
            "b.mov",
            with_src(&["-c:v", "libx264", "-pix_fmt", "yuv444p"]),
            "h264",
        ),
        (
            "c.mkv",
            with_src(&["-c:v", "libx265", "-x265-params", "log-level=none"]),
            "hevc",
        ),
        (
            "d.webm",
            with_src(&["-c:v", "libvpx-vp9", "-deadline", "realtime"]),
            "vp9",
        ),
        (
            "e.webm",
            with_src(&["-c:v", "libvpx", "-deadline", "realtime"]),
            "vp8",
        ),
        (
            "f.mkv",
            with_src(&["-c:v", "libsvtav1", "-preset", "12"]),
            "av1",
        ),
        ("g.avi", with_src(&["-c:v", "mpeg4"]), "mpeg4"),
        ("h.gif", with_src(&[]), "gif"),
    ];
    for (name, args, codec) in cases {
        let p = ffmpeg(dir.path(), name, &args);
        let frames = decode_all(&p, &small()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(frames.len(), 10, "{name}");
        assert!(
            frames
                .iter()
                .all(|f| (f.image.width, f.image.height) == (64, 64)),
            "{name}"
        );
        // testsrc2 is colourful: a decoded frame is not flat.
        let px = &frames[0].image.data;
        assert!(px.iter().max() != px.iter().min(), "{name}: flat frame");
        let pr = probe(&p).unwrap();
        assert_eq!(pr.video.codec, codec, "{name}");
        assert_eq!(pr.video.frames, 10, "{name}");
        assert!(
            (pr.video.duration_s - 1.0).abs() < 0.02,
            "{name}: {}",
            pr.video.duration_s
        );
    }
}

/// A white square in the top-left corner of a black frame.
const MARKED: &[&str] = &[
    "-f",
    "lavfi",
    "-i",
    "color=c=black:s=64x32:r=10:d=0.5,drawbox=x=0:y=0:w=16:h=16:c=white:t=fill",
];

fn bright(img: &scail_media::ImageU8, x: usize, y: usize) -> bool {
    img.pixel(x, y)[0] > 200
}

#[test]
fn rotation_metadata_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = MARKED.to_vec();
    args.extend(["-c:v", "libx264"]);
    let plain = ffmpeg(dir.path(), "plain.mp4", &args);
    // ffmpeg 5.1 cannot tag a rotation, so write a phone's portrait matrix into the track
    // header: [0 1 0; -1 0 0; 0 0 1] in 16.16 (ffprobe reports rotation -90).
    let mut b = std::fs::read(&plain).unwrap();
    let tkhd = b.windows(4).position(|w| w == b"tkhd").unwrap();
    let m = tkhd + 4 + 40;
    let vals: [i32; 9] = [0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x4000_0000];
    for (i, v) in vals.iter().enumerate() {
        b[m + 4 * i..m + 4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    let p = dir.path().join("rot.mp4");
    std::fs::write(&p, &b).unwrap();
    let pr = probe(&p).unwrap();
    assert_eq!(
        (pr.video.width, pr.video.height, pr.video.rotation),
        (64, 32, 90)
    );
    assert_eq!((pr.video.display_width, pr.video.display_height), (32, 64));
    let f = &decode_all(&p, &small()).unwrap()[0].image;
    assert_eq!((f.width, f.height), (32, 64));
    // Rotated clockwise: the top-left mark is now top-right.
    assert!(bright(f, 28, 4) && !bright(f, 3, 4) && !bright(f, 28, 60));
}

#[test]
fn non_square_pixels_are_stretched() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = MARKED.to_vec();
    args.extend(["-vf", "setsar=2/1", "-c:v", "libx264"]);
    let p = ffmpeg(dir.path(), "sar.mp4", &args);
    let pr = probe(&p).unwrap();
    assert_eq!(pr.video.sar, "2:1");
    assert_eq!((pr.video.display_width, pr.video.display_height), (128, 32));
    let f = &decode_all(&p, &small()).unwrap()[0].image;
    assert_eq!((f.width, f.height), (128, 32));
    // The 16-pixel mark is 32 display pixels wide.
    assert!(bright(f, 28, 8) && !bright(f, 36, 8));
}

#[test]
fn variable_frame_rate_follows_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    // 10 frames: 5 at 0.2 s spacing, then 5 at 0.05 s: timestamps, not a rate, place them.
    let p = ffmpeg(
        dir.path(),
        "vfr.mkv",
        &with_src(&[
            "-vf",
            "settb=1/1000,setpts='if(lt(N,5),N*0.2,1+(N-5)*0.05)/TB'",
            "-fps_mode",
            "vfr",
            "-enc_time_base",
            "1:1000",
            "-c:v",
            "libx264",
        ]),
    );
    let frames = decode_all(&p, &small()).unwrap();
    let pts: Vec<f64> = frames.iter().map(|f| f.pts_s).collect();
    assert_eq!(pts.len(), 10);
    assert!(
        (pts[4] - 0.8).abs() < 1e-3 && (pts[6] - 1.05).abs() < 1e-3,
        "{pts:?}"
    );
    let mut shown = Vec::new();
    let s = decode_resampled(&p, &small(), 16, |_, f| {
        shown.push(f.pts_s);
        Ok(())
    })
    .unwrap();
    for (k, t) in shown.iter().enumerate() {
        let target = k as f64 / 16.0;
        let best = pts
            .iter()
            .map(|p| (p - target).abs())
            .fold(f64::INFINITY, f64::min);
        assert!(
            ((t - target).abs() - best).abs() < 1e-9,
            "frame {k}: {t} for {target}"
        );
    }
    assert_eq!(s.output_frames as usize, shown.len());
}

#[test]
fn timecode_track_is_ignored_and_audio_only_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = ffmpeg(
        dir.path(),
        "tc.mov",
        &with_src(&["-c:v", "libx264", "-timecode", "01:00:00:00"]),
    );
    assert_eq!(decode_all(&p, &small()).unwrap().len(), 10);

    let a = ffmpeg(
        dir.path(),
        "audio.mp4",
        &["-f", "lavfi", "-i", "sine=d=0.5", "-c:a", "aac"],
    );
    assert!(matches!(
        VideoDecoder::open(&a, &small()),
        Err(MediaError::NoVideoStream(_))
    ));
    assert!(matches!(probe(&a), Err(MediaError::NoVideoStream(_))));
}

#[test]
fn single_frame_video_gives_one_output_frame() {
    let dir = tempfile::tempdir().unwrap();
    let p = ffmpeg(
        dir.path(),
        "one.mp4",
        &with_src(&["-frames:v", "1", "-c:v", "libx264"]),
    );
    let mut n = 0;
    let s = decode_resampled(&p, &small(), 16, |_, _| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(s.source_frames, 1);
    // One 0.1 s frame covers output times 0 and 1/16.
    assert_eq!(n, 2);
}

#[test]
fn empty_text_and_missing_files_get_specific_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(probe(&empty), Err(MediaError::EmptyFile(_))));
    assert!(matches!(
        VideoDecoder::open(&empty, &small()),
        Err(MediaError::EmptyFile(_))
    ));
    assert!(matches!(
        decode_image(&empty, &Limits::default()),
        Err(MediaError::EmptyFile(_))
    ));

    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video, just some text\n".repeat(20)).unwrap();
    let e = probe(&text).unwrap_err();
    assert!(matches!(e, MediaError::UnrecognisedFormat { .. }), "{e}");

    let missing = dir.path().join("nope.mp4");
    assert!(matches!(probe(&missing), Err(MediaError::Io { .. })));
}

#[test]
fn truncated_and_corrupt_videos_get_specific_errors() {
    let dir = tempfile::tempdir().unwrap();
    // moov at the end: cutting the file loses the index.
    let p = ffmpeg(dir.path(), "full.mp4", &with_src(&["-c:v", "libx264"]));
    let bytes = std::fs::read(&p).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = VideoDecoder::open(&cut, &small())
        .err()
        .expect("truncated mp4 must fail");
    assert!(matches!(e, MediaError::Corrupt { .. }), "{e}");

    // moov first (faststart): the index survives, the frames do not.
    let fs = ffmpeg(
        dir.path(),
        "fs.mp4",
        &with_src(&["-c:v", "libx264", "-movflags", "+faststart"]),
    );
    let bytes = std::fs::read(&fs).unwrap();
    let cut = dir.path().join("cut_fs.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let e = decode_all(&cut, &small()).expect_err("truncated data must fail");
    assert!(matches!(e, MediaError::Corrupt { .. }), "{e}");

    // Garbage over the whole payload of a matroska file.
    let mk = ffmpeg(dir.path(), "g.mkv", &with_src(&["-c:v", "libx264"]));
    let mut bytes = std::fs::read(&mk).unwrap();
    let n = bytes.len();
    for (i, b) in bytes[n / 8..].iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3];
    }
    let bad = dir.path().join("bad.mkv");
    std::fs::write(&bad, &bytes).unwrap();
    let e = decode_all(&bad, &small()).expect_err("garbage must fail");
    assert!(
        matches!(e, MediaError::Corrupt { .. } | MediaError::NoFrames(_)),
        "{e}"
    );
}

#[test]
fn absurd_dimensions_hours_and_frame_limits() {
    let dir = tempfile::tempdir().unwrap();
    // A GIF whose logical screen claims 30000x30000.
    let g = ffmpeg(dir.path(), "small.gif", &with_src(&[]));
    let mut bytes = std::fs::read(&g).unwrap();
    bytes[6..8].copy_from_slice(&30000u16.to_le_bytes());
    bytes[8..10].copy_from_slice(&30000u16.to_le_bytes());
    let huge = dir.path().join("huge.gif");
    std::fs::write(&huge, &bytes).unwrap();
    let e = VideoDecoder::open(&huge, &small())
        .err()
        .expect("30000x30000 must be refused");
    assert!(
        matches!(
            e,
            MediaError::TooManyPixels { .. } | MediaError::Corrupt { .. }
        ),
        "{e}"
    );

    // Three frames an hour apart: three hours declared in a tiny file.
    let long = ffmpeg(
        dir.path(),
        "long.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=s=32x32:r=1:d=3",
            "-vf",
            "setpts=N*3600/TB",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
        ],
    );
    let e = VideoDecoder::open(&long, &small())
        .err()
        .expect("hours-long video must be refused");
    assert!(matches!(e, MediaError::TooLong { .. }), "{e}");
    // Within a permissive limit it decodes.
    let mut lax = small();
    lax.limits.max_duration_s = 4.0 * 3600.0;
    assert_eq!(decode_all(&long, &lax).unwrap().len(), 3);

    // Frame and pixel limits are configurable.
    let p = ffmpeg(dir.path(), "ten.mp4", &with_src(&["-c:v", "libx264"]));
    let mut few = small();
    few.limits.max_frames = 5;
    assert!(matches!(
        decode_all(&p, &few),
        Err(MediaError::TooManyFrames { .. })
    ));
    let mut tiny = small();
    tiny.limits.max_pixels = 1000;
    assert!(matches!(
        VideoDecoder::open(&p, &tiny),
        Err(MediaError::TooManyPixels { .. })
    ));
}
