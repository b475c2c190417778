//! SAM3 against Hugging Face transformers. `scripts/sam3_reference.py` builds transformers'
//! `Sam3Model` at a tiny random configuration, exports it as the public exports split it
//! (vision encoder, text encoder, decoder) and records what transformers' processor and
//! post-processing make of frames of the test media. Here Stage A loads those files through
//! the code path that loads the full-size export and must agree: the resized input bit for
//! bit, the tokens exactly, scores within 1e-4, boxes within 1e-4 of the frame, mask pixels
//! at least 99.9%. Every threshold and size comes from the fixture.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use scail_stagea::sam3::{input_pixels, Sam3Files, Sam3Segmenter, Segmenter, MASK_THRESHOLD};
use scail_stagea::tokenizer::{ClipTokenizer, CONTEXT_LENGTH};
use scail_stagea::track::SegDetection;
use scail_stagea::{Mask, RgbImage};
use serde_json::Value;
use sha2::{Digest, Sha256};

const SCORE_TOL: f32 = 1e-4;
const BOX_TOL: f32 = 1e-4;
const MASK_AGREEMENT: f64 = 0.999;

fn fixture() -> PathBuf {
    scail_testdata::reference_dir().join("sam3_tiny")
}

fn json(name: &str) -> Value {
    let p = fixture().join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("fixture JSON")
}

fn png_rgb(path: &std::path::Path) -> RgbImage {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    RgbImage::from_vec(w as usize, h as usize, 3, img.into_raw())
}

fn png_mask(path: &std::path::Path) -> Mask {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_luma8();
    let (w, h) = img.dimensions();
    let mut m = Mask::empty(w, h);
    for (d, p) in m.data.iter_mut().zip(img.pixels()) {
        *d = u8::from(p.0[0] > 127);
    }
    m
}

#[test]
fn tokenizer_matches_transformers_on_prompts_and_odd_text() {
    let tok = ClipTokenizer::from_file(&Sam3Files::in_dir(&fixture()).tokenizer).unwrap();
    let cases = json("tokenizer_cases.json");
    assert_eq!(
        cases["context_length"].as_u64(),
        Some(CONTEXT_LENGTH as u64),
        "the fixture's context length"
    );
    let cases = cases["cases"].as_array().expect("cases");
    assert!(cases.len() >= 10, "prompts and odd text");
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = |k: &str| -> Vec<i64> {
            c[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect()
        };
        let (ids, att) = tok.encode(text).unwrap();
        assert_eq!(ids, want("input_ids"), "ids of {text:?}");
        assert_eq!(att, want("attention_mask"), "attention mask of {text:?}");
    }
}

/// Our detections for one prompt, by query.
fn by_query(dets: &[SegDetection], prompt: usize) -> BTreeMap<usize, &SegDetection> {
    dets.iter()
        .filter(|d| d.prompt == prompt)
        .map(|d| (d.query, d))
        .collect()
}

#[test]
fn sam3_matches_transformers_scores_boxes_and_masks() {
    let Some(rt) = common::ort_or_skip("sam3_matches_transformers") else {
        return;
    };
    let dir = fixture();
    let exp = json("expected.json");
    let threshold = exp["score_threshold"].as_f64().unwrap() as f32;
    assert_eq!(
        exp["mask_threshold"].as_f64().map(|v| v as f32),
        Some(MASK_THRESHOLD),
        "the fixture was made at another mask threshold"
    );
    let prompts: Vec<String> = exp["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let mut seg = Sam3Segmenter::load(&Sam3Files::in_dir(&dir), &prompts, &rt).unwrap();
    seg.min_score = threshold;

    let (mut compared, mut masks_checked, mut worst) = (0usize, 0usize, 1.0f64);
    for f in exp["frames"].as_array().unwrap() {
        let name = f["file"].as_str().unwrap();
        let frame = png_rgb(&dir.join("frames").join(name));
        assert_eq!(
            (frame.width as u64, frame.height as u64),
            (f["width"].as_u64().unwrap(), f["height"].as_u64().unwrap())
        );
        let input = input_pixels(&frame, seg.input_size());
        assert_eq!(
            format!("{:x}", Sha256::digest(&input.data)),
            f["input_sha256"].as_str().unwrap(),
            "{name}: the resized encoder input differs from transformers'"
        );
        let dets = seg.detect(&frame).unwrap();
        for (pi, p) in f["prompts"].as_array().unwrap().iter().enumerate() {
            assert_eq!(p["prompt"].as_str(), Some(prompts[pi].as_str()));
            let ours = by_query(&dets, pi);
            let queries: Vec<usize> = p["queries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| q.as_u64().unwrap() as usize)
                .collect();
            let scores: Vec<f32> = p["scores"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_f64().unwrap() as f32)
                .collect();
            let what = format!("{name} {:?}", prompts[pi]);
            // A detection within the score tolerance of the threshold may fall either side.
            for (k, q) in queries.iter().enumerate() {
                let Some(d) = ours.get(q) else {
                    assert!(
                        scores[k] - threshold <= SCORE_TOL,
                        "{what}: query {q} (score {}) missing",
                        scores[k]
                    );
                    continue;
                };
                assert!(
                    (d.score - scores[k]).abs() <= SCORE_TOL,
                    "{what}: query {q} score {} vs {}",
                    d.score,
                    scores[k]
                );
                let b = &p["boxes"][k];
                let bb = d.bbox.expect("the export gives boxes");
                let scale = frame.width.max(frame.height) as f32;
                for (got, i) in [bb.x0, bb.y0, bb.x1, bb.y1].into_iter().zip(0..) {
                    let want = b[i].as_f64().unwrap() as f32;
                    assert!(
                        (got - want).abs() <= BOX_TOL * scale,
                        "{what}: query {q} box[{i}] {got} vs {want}"
                    );
                }
                compared += 1;
            }
            for (q, d) in &ours {
                assert!(
                    queries.contains(q) || d.score - threshold <= SCORE_TOL,
                    "{what}: query {q} (score {}) kept, transformers dropped it",
                    d.score
                );
            }
            for m in p["masks"].as_array().unwrap() {
                let k = m["index"].as_u64().unwrap() as usize;
                let want = png_mask(&dir.join("masks").join(m["file"].as_str().unwrap()));
                let got = &ours
                    .get(&queries[k])
                    .unwrap_or_else(|| panic!("{what}: no detection for query {}", queries[k]))
                    .mask;
                assert_eq!((got.width, got.height), (want.width, want.height));
                let same = got
                    .data
                    .iter()
                    .zip(&want.data)
                    .filter(|(a, b)| a == b)
                    .count();
                let agreement = same as f64 / want.data.len() as f64;
                assert!(
                    agreement >= MASK_AGREEMENT,
                    "{what}: query {} mask agrees on {:.4}% of pixels",
                    queries[k],
                    agreement * 100.0
                );
                masks_checked += 1;
                worst = worst.min(agreement);
            }
        }
    }
    eprintln!(
        "{compared} detections and {masks_checked} masks matched transformers (worst mask \
         {:.4}% of pixels)",
        worst * 100.0
    );
    assert!(
        compared > 0 && masks_checked > 0,
        "the fixture compared nothing"
    );
}

/// A copy of the fixture's SAM3 folder with `change` applied; the load error's text.
fn load_error(test: &str, change: impl FnOnce(&std::path::Path)) -> Option<String> {
    let rt = common::ort_or_skip(test)?;
    let tmp = std::env::temp_dir().join(format!("scail-sam3-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let src = Sam3Files::in_dir(&fixture());
    let dst = Sam3Files::in_dir(&tmp);
    let d = dst.tokenizer.parent().unwrap();
    std::fs::create_dir_all(d).unwrap();
    for e in std::fs::read_dir(src.tokenizer.parent().unwrap()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    change(d);
    let err = match Sam3Segmenter::load(&dst, &["human".to_string()], &rt) {
        Ok(_) => panic!("{test}: a broken SAM3 folder loaded"),
        Err(e) => e.to_string(),
    };
    let _ = std::fs::remove_dir_all(&tmp);
    Some(err)
}

#[test]
fn a_missing_tokenizer_is_named() {
    let Some(err) = load_error("missing_tokenizer", |d| {
        std::fs::remove_file(d.join("tokenizer.json")).unwrap()
    }) else {
        return;
    };
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn a_graph_with_other_inputs_is_refused_at_load() {
    // The text encoder where the decoder belongs: integer inputs, no prompt features.
    let Some(err) = load_error("wrong_decoder", |d| {
        std::fs::copy(d.join("text_encoder.onnx"), d.join("decoder.onnx")).unwrap();
    }) else {
        return;
    };
    assert!(err.contains("decoder.onnx"), "{err}");
    assert!(err.contains("input_ids"), "names what it found: {err}");
}

#[test]
fn a_vision_encoder_of_the_wrong_shape_is_refused_at_load() {
    // The decoder where the vision encoder belongs: its first input is a feature map.
    let Some(err) = load_error("wrong_vision", |d| {
        std::fs::copy(d.join("decoder.onnx"), d.join("vision_encoder.onnx")).unwrap();
    }) else {
        return;
    };
    assert!(err.contains("vision_encoder.onnx"), "{err}");
    assert!(
        err.contains("[1, 3, 1008, 1008]"),
        "says what it expects: {err}"
    );
}
