//! `scail stagea`: Stage A alone with user masks writes the reference mask, a lossless FFV1 mask
//! video whose palette colours are exact after decoding (equal, pixel for pixel, to the PNG
//! frames it also writes), the driving input and a side-by-side preview.

use super::*;

#[test]
fn stagea_alone_writes_lossless_masks_and_a_preview() {
    let test = "stagea_alone_writes_lossless_masks_and_a_preview";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let d = inp.dir.path();
    let (ref_mask, drv_mask) = animation_masks(&inp);
    let out = d.join("stagea");
    let stdout = ok(scail()
        .arg("stagea")
        .arg("--image")
        .arg(&inp.image)
        .arg("--video")
        .arg(&inp.video)
        .arg("--out")
        .arg(&out)
        .args(["--size", &format!("{W}x{H}"), "--png-frames"])
        .args(with_masks(&ref_mask, &drv_mask, &[])));
    let v: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .expect("a JSON summary line"),
    )
    .unwrap();
    let frames = (inp.seconds * 16.0) as usize;
    assert_eq!(v["frames"], frames);
    assert_eq!(v["subjects"], 2);

    let mkv = PathBuf::from(v["driving_mask"].as_str().unwrap());
    assert_eq!(mkv.extension().unwrap(), "mkv");
    let info = scail_media::probe(&mkv).unwrap();
    assert_eq!(info.video.codec, "ffv1");
    let decoded = decode(&mkv);
    assert_eq!(decoded.len(), frames);
    let png_dir = PathBuf::from(v["driving_mask_frames"].as_str().unwrap());
    for (t, m) in decoded.iter().enumerate() {
        let png = scail_media::image_io::decode_image(
            &png_dir.join(format!("{t:05}.png")),
            &scail_media::Limits::default(),
        )
        .unwrap()
        .rgb();
        assert_eq!(m.data, png.data, "frame {t}: the video is not lossless");
        for y in 0..H {
            for x in 0..W {
                let c = m.pixel(x, y);
                assert!(
                    [BLUE, RED, BLACK].iter().any(|p| p[..] == c[..3]),
                    "frame {t} ({x},{y}): {c:?} is not exactly a palette colour or black"
                );
                if boundary_distance(x, y) >= 3 {
                    assert_eq!(c[..3], expected_colour(x, y), "frame {t} ({x},{y})");
                }
            }
        }
    }
    // The mask passes back into generate as it is.
    let reference = PathBuf::from(v["reference_mask"].as_str().unwrap());
    let again = d.join("again.mp4");
    ok(&mut generate(
        &inp,
        &again,
        &with_masks(&reference, &mkv, &[]),
    ));
    check_timing(&again, &inp);
    for key in ["driving_video", "preview"] {
        let p = PathBuf::from(v[key].as_str().unwrap());
        assert_eq!(
            scail_media::probe(&p).unwrap().video.frames as usize,
            frames,
            "{key}"
        );
    }
}
