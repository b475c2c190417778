//! What users upload, good and bad: containers and codecs, rotation, SAR, variable frame rate,
//! data tracks, images with EXIF/alpha/16-bit/palette, and hostile files (empty, text, no video,
//! truncated, corrupt, absurd sizes, hours long, image bombs). Every file is generated in a
//! temp dir at test time with the ffmpeg CLI or by hand.
#![cfg(feature = "ffmpeg")]

use std::path::{Path, PathBuf};
use std::process::Command;

use scail_media::image_io::{decode_image, decode_image_bytes};
use scail_media::video::{decode_resampled, DecodeOptions, VideoDecoder};
use scail_media::{probe, Limits, MediaError};

fn ffmpeg(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(st.success(), "ffmpeg failed to make {name}: {args:?}");
    out
}

const SRC: &[&str] = &[
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=64x64:rate=10:duration=1",
];

fn with_src<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = SRC.to_vec();
    v.extend_from_slice(extra);
    v
}

fn small() -> DecodeOptions {
    DecodeOptions::default()
}

fn decode_all(
    path: &Path,
    opts: &DecodeOptions,
) -> Result<Vec<scail_media::video::VideoFrame>, MediaError> {
    let mut d = VideoDecoder::open(path, opts)?;
    let mut v = Vec::new();
    while let Some(f) = d.next_frame()? {
        v.push(f);
    }
    Ok(v)
}

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

/// A PNG that declares `w`x`h` with one tiny IDAT: an image bomb.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut v, b"IHDR", &ihdr);
    // zlib stream of an empty stored block.
    chunk(
        &mut v,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01,
        ],
    );
    chunk(&mut v, b"IEND", &[]);
    v
}

#[test]
fn image_bombs_and_bad_images_are_refused() {
    let bomb = png_bomb(30000, 30000);
    assert!(bomb.len() < 100);
    let e = decode_image_bytes(&bomb, Path::new("bomb.png"), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            e,
            MediaError::TooManyPixels { .. } | MediaError::Image { .. }
        ),
        "{e}"
    );
    // Within limits but with missing data: corrupt, not a crash.
    let e = decode_image_bytes(
        &png_bomb(64, 64),
        Path::new("short.png"),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, MediaError::Corrupt { .. }), "{e}");
    let e = decode_image_bytes(b"GIF89a", Path::new("x.gif"), &Limits::default()).unwrap_err();
    assert!(matches!(e, MediaError::Corrupt { .. }), "{e}");
    let e = decode_image_bytes(b"hello", Path::new("x.png"), &Limits::default()).unwrap_err();
    assert!(matches!(e, MediaError::UnrecognisedFormat { .. }), "{e}");
}

/// Minimal EXIF APP1 segment carrying only an orientation tag.
fn exif_orientation_app1(orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\x00\x08\x00\x00\x00".to_vec();
    tiff.extend(1u16.to_le_bytes()); // one IFD entry
    tiff.extend(0x0112u16.to_le_bytes());
    tiff.extend(3u16.to_le_bytes()); // SHORT
    tiff.extend(1u32.to_le_bytes());
    tiff.extend(orientation.to_le_bytes());
    tiff.extend([0, 0]);
    tiff.extend(0u32.to_le_bytes()); // no next IFD
    let mut payload = b"Exif\x00\x00".to_vec();
    payload.extend(tiff);
    let mut seg = vec![0xff, 0xe1];
    seg.extend(((payload.len() + 2) as u16).to_be_bytes());
    seg.extend(payload);
    seg
}

#[test]
fn images_exif_alpha_16bit_palette_grey_webp() {
    use image::{ImageBuffer, Luma, Rgb, Rgba};
    let dir = tempfile::tempdir().unwrap();
    let lim = Limits::default();

    // JPEG 40x20, red block top-left, EXIF orientation 6 (rotate 90 clockwise to display).
    let img = ImageBuffer::from_fn(40, 20, |x, y| {
        if x < 10 && y < 10 {
            Rgb([255u8, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let mut jpg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 95)
        .encode_image(&img)
        .unwrap();
    let mut with_exif = jpg[..2].to_vec();
    with_exif.extend(exif_orientation_app1(6));
    with_exif.extend_from_slice(&jpg[2..]);
    let p = dir.path().join("rot.jpg");
    std::fs::write(&p, &with_exif).unwrap();
    let d = decode_image(&p, &lim).unwrap();
    assert_eq!(d.exif_orientation, 6);
    assert_eq!((d.stored_width, d.stored_height), (40, 20));
    assert_eq!((d.image.width, d.image.height), (20, 40));
    // Top-left went to top-right.
    assert!(d.image.pixel(17, 2)[0] > 200 && d.image.pixel(2, 2)[0] < 60);
    assert_eq!(probe(&p).unwrap().video.rotation, 90);

    // RGBA PNG with a transparent half: alpha kept.
    let rgba = ImageBuffer::from_fn(8, 8, |x, _| {
        Rgba([10u8, 20, 30, if x < 4 { 0 } else { 255 }])
    });
    let p = dir.path().join("a.png");
    rgba.save(&p).unwrap();
    let d = decode_image(&p, &lim).unwrap();
    assert!(d.has_alpha());
    assert_eq!(d.image.pixel(0, 0), &[10, 20, 30, 0]);
    assert_eq!(d.rgb().pixel(5, 5), &[10, 20, 30]);

    // 16-bit RGB PNG: scaled to 8 bits.
    let deep: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_fn(4, 4, |_, _| Rgb([65535u16, 32896, 0]));
    let p = dir.path().join("d.png");
    deep.save(&p).unwrap();
    let d = decode_image(&p, &lim).unwrap();
    assert_eq!(d.image.pixel(1, 1), &[255, 128, 0]);

    // Grey PNG: expanded to RGB.
    let grey: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_fn(4, 4, |_, _| Luma([77u8]));
    let p = dir.path().join("g.png");
    grey.save(&p).unwrap();
    assert_eq!(
        decode_image(&p, &lim).unwrap().image.pixel(0, 0),
        &[77, 77, 77]
    );

    // Palette PNG and WebP made by ffmpeg.
    let pal = ffmpeg(
        dir.path(),
        "pal.png",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=32x16:d=0.1",
            "-frames:v",
            "1",
            "-pix_fmt",
            "pal8",
        ],
    );
    let d = decode_image(&pal, &lim).unwrap();
    assert_eq!(
        (d.image.width, d.image.height, d.image.channels),
        (32, 16, 3)
    );
    let webp = ffmpeg(
        dir.path(),
        "w.webp",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=32x16:d=0.1",
            "-frames:v",
            "1",
            "-c:v",
            "libwebp",
        ],
    );
    let d = decode_image(&webp, &lim).unwrap();
    assert_eq!((d.image.width, d.image.height), (32, 16));
    assert_eq!(d.format, "webp");
}

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
