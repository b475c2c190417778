//! Validation of request bodies: defaults, types, enums, ranges, URLs and combinations.

use scail_core::*;
use serde_json::{json, Value};

fn base() -> Value {
    json!({"prompt": "a dancer", "image_url": "https://example.com/a.png",
           "video_url": "https://example.com/b.mp4"})
}

fn errs(v: Value) -> Vec<FieldError> {
    validate_input(&v).expect_err("should fail")
}

fn with(k: &str, v: Value) -> Value {
    let mut b = base();
    b[k] = v;
    b
}

#[test]
fn defaults_applied_and_extras_ignored() {
    let mut b = base();
    b["something_else"] = json!(123);
    let i = validate_input(&b).unwrap();
    assert_eq!(i.mode, Mode::Animation);
    assert_eq!(i.driving_type, DrivingType::EndToEnd);
    assert_eq!(i.subject_type, SubjectType::Human);
    assert_eq!(i.resolution, Resolution::R512p);
    assert_eq!(i.num_inference_steps, 40);
    assert_eq!(i.guidance_scale, 5.0);
    assert_eq!(i.shift, 3.0);
    assert_eq!(i.seed, None);
    assert!(!i.output_preprocessing);
}

#[test]
fn every_missing_required_field_is_reported() {
    let e = errs(json!({}));
    let locs: Vec<_> = e.iter().map(|e| e.loc[1].clone()).collect();
    assert_eq!(locs, ["prompt", "image_url", "video_url"]);
    assert!(e
        .iter()
        .all(|e| e.kind == "value_error.missing" && e.loc[0] == "body"));
}

#[test]
fn wrong_types() {
    assert_eq!(errs(with("prompt", json!(5)))[0].kind, "type_error.str");
    assert_eq!(
        errs(with("num_inference_steps", json!("x")))[0].kind,
        "type_error.integer"
    );
    assert_eq!(
        errs(with("num_inference_steps", json!(2.5)))[0].kind,
        "type_error.integer"
    );
    assert_eq!(
        errs(with("guidance_scale", json!("x")))[0].kind,
        "type_error.float"
    );
    assert_eq!(
        errs(with("output_preprocessing", json!("yes")))[0].kind,
        "type_error.bool"
    );
    assert_eq!(errs(json!([1]))[0].kind, "type_error.dict");
}

#[test]
fn enums() {
    let e = errs(with("mode", json!("dance")));
    assert_eq!(e[0].loc, ["body", "mode"]);
    assert_eq!(e[0].kind, "type_error.enum");
    assert!(e[0].msg.contains("'animation', 'replacement'"));
    assert_eq!(
        errs(with("resolution", json!("1080p")))[0].loc[1],
        "resolution"
    );
    assert_eq!(
        errs(with("driving_type", json!(1)))[0].loc[1],
        "driving_type"
    );
    assert_eq!(
        errs(with("subject_type", json!("robot")))[0].loc[1],
        "subject_type"
    );
    let ok = validate_input(&with("resolution", json!("704p"))).unwrap();
    assert_eq!(ok.resolution, Resolution::R704p);
}

#[test]
fn ranges() {
    for (k, v, kind) in [
        ("num_inference_steps", json!(0), "value_error.number.not_ge"),
        (
            "num_inference_steps",
            json!(101),
            "value_error.number.not_le",
        ),
        ("guidance_scale", json!(-0.5), "value_error.number.not_ge"),
        ("guidance_scale", json!(20.5), "value_error.number.not_le"),
        ("shift", json!(0), "value_error.number.not_ge"),
        ("shift", json!(25), "value_error.number.not_le"),
        ("seed", json!(-1), "value_error.number.not_ge"),
        ("seed", json!(4294967296u64), "value_error.number.not_le"),
        (
            "seed",
            json!(18446744073709551615u64),
            "value_error.number.not_le",
        ),
    ] {
        let e = errs(with(k, v.clone()));
        assert_eq!(e.len(), 1, "{k}={v}");
        assert_eq!(e[0].loc, ["body", k]);
        assert_eq!(e[0].kind, kind, "{k}={v}");
        assert!(e[0].ctx.is_some());
    }
    let i = validate_input(&with("seed", json!(4294967295u64))).unwrap();
    assert_eq!(i.seed, Some(4294967295));
    let i = validate_input(&with("num_inference_steps", json!(8.0))).unwrap();
    assert_eq!(i.num_inference_steps, 8);
}

#[test]
fn urls_and_data_uris() {
    for bad in [
        "ftp://x/y",
        "example.com/a.png",
        "https:///a.png",
        "data:image/png,abc",
        "data:image/png;base64,!!!",
        "data:image/png;base64",
    ] {
        let e = errs(with("image_url", json!(bad)));
        assert_eq!(e[0].loc, ["body", "image_url"], "{bad}");
        assert!(
            e[0].kind.starts_with("value_error.url"),
            "{bad}: {}",
            e[0].kind
        );
    }
    let ok = validate_input(&with(
        "image_url",
        json!("data:image/png;base64,iVBORw0KGgo="),
    ))
    .unwrap();
    assert!(ok.image_url.starts_with("data:"));
    let e = errs(with("pose_video_url", json!("nope")));
    assert_eq!(e[0].loc, ["body", "pose_video_url"]);
}

#[test]
fn animal_pose_is_refused() {
    let mut b = with("subject_type", json!("animal"));
    b["driving_type"] = json!("pose");
    let e = errs(b);
    assert_eq!(e[0].loc, ["body", "driving_type"]);
    assert!(e[0].msg.contains("animal"));
}

#[test]
fn several_errors_at_once() {
    let mut b = with("mode", json!("x"));
    b["shift"] = json!(100);
    b.as_object_mut().unwrap().remove("prompt");
    assert_eq!(errs(b).len(), 3);
}

#[test]
fn prompt_length_is_bounded() {
    let ok = validate_input(&with("prompt", json!("é".repeat(MAX_PROMPT_CHARS)))).unwrap();
    assert_eq!(ok.prompt.chars().count(), MAX_PROMPT_CHARS);
    let e = errs(with("prompt", json!("a".repeat(MAX_PROMPT_CHARS + 1))));
    assert_eq!(e[0].loc, ["body", "prompt"]);
    assert_eq!(e[0].kind, "value_error.any_str.max_length");
}
