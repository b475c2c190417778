//! Images users upload, good and bad: EXIF orientation, alpha, 16-bit, palette, grey, WebP,
//! and image bombs. Files are generated in a temp dir at test time, by hand or with ffmpeg.
#![cfg(feature = "ffmpeg")]

mod common;

use common::generate::ffmpeg;

use std::path::Path;

use scail_media::image_io::{decode_image, decode_image_bytes};
use scail_media::{probe, Limits, MediaError};

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
