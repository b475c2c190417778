//! Tests on the real clips and images in `testdata/media/` (or `SCAIL_MEDIA_DIR`): probe facts
//! against ffprobe's, 16 fps timing, audio round trip, image decode. Videos are decoded at
//! reduced size to keep this fast.
#![cfg(feature = "ffmpeg")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use scail_media::encode::{EncodeOptions, Mp4Writer};
use scail_media::image_io::decode_image;
use scail_media::timing::{output_frame_count, MODEL_FPS};
use scail_media::video::{decode_resampled, DecodeOptions};
use scail_media::{probe, Limits};

fn media_files(exts: &[&str]) -> Vec<PathBuf> {
    let dir = common::media_dir();
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {exts:?} files in {}", dir.display());
    v
}

/// ffprobe's facts (frames counted by decoding).
fn ffprobe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,codec_type,width,height,sample_aspect_ratio,avg_frame_rate,nb_read_frames,duration,sample_rate,channels:format=format_name,duration")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe failed on {}", path.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stream<'a>(fp: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    fp["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
}

fn num(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => {
            if let Some((a, b)) = s.split_once('/') {
                a.parse::<f64>().unwrap() / b.parse::<f64>().unwrap()
            } else {
                s.parse().unwrap()
            }
        }
        other => other.as_f64().unwrap(),
    }
}

#[test]
fn probe_matches_ffprobe_on_every_clip() {
    for path in media_files(&["mp4", "mov", "webm", "mkv"]) {
        let got = probe(&path).unwrap();
        let fp = ffprobe(&path);
        let v = stream(&fp, "video").unwrap();
        let name = path.display();
        assert_eq!(got.kind, "video");
        assert_eq!(
            got.container,
            fp["format"]["format_name"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(got.video.codec, v["codec_name"].as_str().unwrap(), "{name}");
        assert_eq!(got.video.width as f64, num(&v["width"]), "{name}");
        assert_eq!(got.video.height as f64, num(&v["height"]), "{name}");
        assert_eq!(
            got.video.frames as f64,
            num(&v["nb_read_frames"]),
            "{name}: frames"
        );
        assert!(
            (got.video.fps - num(&v["avg_frame_rate"])).abs() < 1e-6,
            "{name}: fps"
        );
        let sar = v["sample_aspect_ratio"].as_str().unwrap_or("1:1");
        assert_eq!(got.video.sar, sar, "{name}");
        let dur = num(&v["duration"]);
        assert!(
            (got.video.duration_s - dur).abs() < 1e-3,
            "{name}: duration {} vs {dur}",
            got.video.duration_s
        );
        match (stream(&fp, "audio"), &got.audio) {
            (None, None) => {}
            (Some(a), Some(g)) => {
                assert_eq!(g.codec, a["codec_name"].as_str().unwrap());
                assert_eq!(g.sample_rate as f64, num(&a["sample_rate"]));
                assert_eq!(g.channels as f64, num(&a["channels"]));
                assert!((g.duration_s.unwrap() - num(&a["duration"])).abs() < 1e-3);
            }
            (a, g) => panic!("{name}: audio mismatch ffprobe {a:?} vs {g:?}"),
        }
        // The JSON shape the binary prints.
        let j = serde_json::to_value(&got).unwrap();
        for k in [
            "codec",
            "width",
            "height",
            "sar",
            "rotation",
            "fps",
            "frames",
            "duration_s",
        ] {
            assert!(j["video"].get(k).is_some(), "missing video.{k}");
        }
        assert!(j.get("audio").is_some() && j.get("container").is_some());
    }
}

#[test]
fn every_clip_resamples_to_16fps_with_its_duration() {
    let opts = DecodeOptions {
        max_output: Some((96, 96)),
        ..Default::default()
    };
    for path in media_files(&["mp4"]) {
        let fp = ffprobe(&path);
        let v = stream(&fp, "video").unwrap();
        let src_frames = num(&v["nb_read_frames"]) as u64;
        let src_fps = num(&v["avg_frame_rate"]);
        let src_dur = src_frames as f64 / src_fps;
        let mut shown = Vec::new();
        let s = decode_resampled(&path, &opts, MODEL_FPS, |k, f| {
            assert_eq!(k as usize, shown.len());
            shown.push(f.pts_s);
            Ok(())
        })
        .unwrap();
        let name = path.display();
        assert_eq!(s.source_frames, src_frames, "{name}");
        assert!(
            (s.duration_s - src_dur).abs() < 1e-3,
            "{name}: {} vs {src_dur}",
            s.duration_s
        );
        assert_eq!(
            s.output_frames,
            output_frame_count(src_dur, MODEL_FPS),
            "{name}"
        );
        // Output duration within one output frame of the input's.
        let out_dur = s.output_frames as f64 / MODEL_FPS as f64;
        assert!(
            (out_dur - src_dur).abs() <= 1.0 / MODEL_FPS as f64,
            "{name}: {out_dur} vs {src_dur}"
        );
        // Output frame k shows the source frame nearest to k/16 s.
        for (k, pts) in shown.iter().enumerate() {
            let t = k as f64 / MODEL_FPS as f64;
            assert!(
                (pts - t).abs() <= 0.5 / src_fps + 1e-6,
                "{name}: frame {k} shows {pts} for {t}"
            );
        }
        if (src_fps - 16.0).abs() < 1e-9 {
            assert_eq!(
                s.output_frames, src_frames,
                "{name}: 16 fps input passes 1:1"
            );
        }
    }
}

/// The 30 fps clip with audio: decode -> resample to 16 fps -> encode with the audio copied and
/// trimmed; the result has 16 fps, the input's duration and its audio.
#[test]
fn talk_show_round_trip_keeps_audio_and_duration() {
    let path = common::media_dir().join("talk_show_host_30fps_audio.mp4");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let opts = DecodeOptions {
        max_output: Some((320, 320)),
        ..Default::default()
    };
    let info = scail_media::video::VideoDecoder::open(&path, &opts)
        .unwrap()
        .info()
        .clone();
    let audio = info.audio.clone().expect("clip has audio");
    let (w, h) = (info.out_width as usize, info.out_height as usize);
    let mut writer: Option<Mp4Writer> = None;
    let mut enc = EncodeOptions {
        audio_from: Some(path.clone()),
        audio_offset_s: audio.offset_s,
        ..Default::default()
    };
    let mut frames = Vec::new();
    let s = decode_resampled(&path, &opts, MODEL_FPS, |_, f| {
        frames.push(f.image.clone());
        Ok(())
    })
    .unwrap();
    enc.duration_s = Some(s.duration_s);
    for f in &frames {
        writer
            .get_or_insert_with(|| Mp4Writer::create(&out, w, h, &enc).unwrap())
            .write(f)
            .unwrap();
    }
    writer.unwrap().finish().unwrap();

    let p = probe(&out).unwrap();
    assert_eq!(p.video.codec, "h264");
    assert_eq!(p.video.fps, 16.0);
    assert_eq!(p.video.frames, s.output_frames);
    assert_eq!(p.video.width % 2, 0);
    assert!(
        (p.video.duration_s - s.duration_s).abs() <= 1.0 / 16.0,
        "video {} vs {}",
        p.video.duration_s,
        s.duration_s
    );
    let a = p.audio.expect("audio copied through");
    assert_eq!(a.codec, "aac");
    assert_eq!(
        (a.sample_rate, a.channels),
        (audio.sample_rate, audio.channels)
    );
    let ad = a.duration_s.unwrap();
    assert!(
        (ad - s.duration_s).abs() <= 1.0 / 16.0,
        "audio {ad} vs video {}",
        s.duration_s
    );
    // faststart: the moov atom precedes mdat.
    let bytes = std::fs::read(&out).unwrap();
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag).unwrap();
    assert!(find(b"moov") < find(b"mdat"));
}

#[test]
fn every_image_decodes_with_alpha_kept() {
    for path in media_files(&["png", "jpg", "jpeg", "webp"]) {
        let img = decode_image(&path, &Limits::default()).unwrap();
        let fp = ffprobe(&path);
        let v = stream(&fp, "video").unwrap();
        assert_eq!(img.stored_width as f64, num(&v["width"]));
        assert_eq!(img.stored_height as f64, num(&v["height"]));
        if path.to_string_lossy().contains("rgba") {
            assert!(img.has_alpha(), "{}: alpha dropped", path.display());
        }
        let p = probe(&path).unwrap();
        assert_eq!(p.kind, "image");
        assert_eq!(p.video.frames, 1);
        assert_eq!(p.video.has_alpha, img.has_alpha());
    }
}
