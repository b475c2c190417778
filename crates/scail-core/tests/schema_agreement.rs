//! One request type: the validated `ScailInput`, the OpenAPI document and the JSON parser must
//! name the same fields, so a field added to the type but not to its document or its parsing
//! (or the other way round) fails here rather than drifting. docs/ARCHITECTURE.md says where a
//! new field goes.

use std::collections::BTreeSet;

use scail_core::*;
use serde_json::{json, Value};

fn full_input() -> ScailInput {
    validate_input(&json!({"prompt": "p", "image_url": "https://e.com/a.png",
        "video_url": "https://e.com/b.mp4", "seed": 1,
        "reference_mask_url": "https://e.com/m.png", "driving_mask_url": "https://e.com/d.mp4",
        "pose_video_url": "https://e.com/p.mp4"}))
    .unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn type_document_and_parser_name_the_same_fields() {
    let stored = serde_json::to_value(full_input()).unwrap();
    let doc = openapi::input_schema();
    assert_eq!(keys(&stored), keys(&doc["properties"]));
    // Every documented field is read by the parser: a value of the wrong JSON type is an error
    // located at that field (no field is silently ignored).
    for (field, schema) in doc["properties"].as_object().unwrap() {
        let wrong = match schema["type"].as_str().unwrap() {
            "string" => json!(5),
            _ => json!("not a number or bool"),
        };
        let mut body = serde_json::to_value(full_input()).unwrap();
        body[field] = wrong;
        let e = validate_input(&body).expect_err(field);
        assert!(
            e.iter().any(|e| e.field() == Some(field.as_str())),
            "{field}: {e:?}"
        );
    }
}

#[test]
fn documented_defaults_are_the_defaults_applied() {
    let doc = openapi::input_schema();
    let applied = serde_json::to_value(
        validate_input(&json!({"prompt": "p", "image_url": "https://e.com/a.png",
            "video_url": "https://e.com/b.mp4"}))
        .unwrap(),
    )
    .unwrap();
    for (field, schema) in doc["properties"].as_object().unwrap() {
        if let Some(d) = schema.get("default") {
            assert_eq!(&applied[field], d, "{field}");
        }
    }
    let required: Vec<&str> = doc["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in &required {
        let mut body = json!({"prompt": "p", "image_url": "https://e.com/a.png",
            "video_url": "https://e.com/b.mp4"});
        body.as_object_mut().unwrap().remove(*f);
        let e = validate_input(&body).unwrap_err();
        assert_eq!(e[0].field(), Some(*f));
        assert_eq!(e[0].kind, "value_error.missing");
    }
}

#[test]
fn every_input_file_has_its_field() {
    let input = full_input();
    let named: Vec<&str> = input.files().map(|(k, _)| k.field()).collect();
    let doc = openapi::input_schema();
    for f in &named {
        assert!(doc["properties"].get(*f).is_some(), "{f}");
    }
    assert_eq!(named.len(), InputFile::ALL.len());
    // Mapping files keeps the name: each URL becomes the value made from its own field.
    let mapped = input
        .try_map_files(|k, url| Ok::<_, ()>(format!("{}<-{url}", k.stem())))
        .unwrap();
    assert_eq!(mapped.video_url, "video<-https://e.com/b.mp4");
    assert_eq!(
        mapped.pose_video_url.as_deref(),
        Some("pose_video<-https://e.com/p.mp4")
    );
}

#[test]
fn long_offending_values_are_not_echoed_whole() {
    let long = "x".repeat(100_000);
    let e =
        validate_input(&json!({"prompt": 1, "image_url": long, "video_url": [long]})).unwrap_err();
    let text = serde_json::to_string(&e).unwrap();
    assert!(text.len() < 2_000, "{} bytes", text.len());
}
