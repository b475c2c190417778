//! Both front doors apply one rule set: whatever `POST /queue/fal-ai/scail-2` answers 422 for,
//! `scail generate` refuses before loading anything, with the same message for the same field.

mod common;

use common::*;
use serde_json::{json, Value};

/// A request the HTTP door refuses, and the same request as `scail generate` flags.
struct Case {
    body: Value,
    flags: Vec<String>,
}

fn cases() -> Vec<Case> {
    let c = |patch: Value, flags: &[&str]| {
        let mut flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        if let Some(p) = patch.get("prompt") {
            flags.extend(["--prompt".to_string(), p.as_str().unwrap().to_string()]);
        }
        let mut body = json!({"prompt": "p", "image_url": "https://example.com/a.png",
            "video_url": "https://example.com/b.mp4"});
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        Case { body, flags }
    };
    vec![
        c(
            json!({"num_inference_steps": 500}),
            &["--num-inference-steps", "500"],
        ),
        // An explicit flag wins over --preset, and is validated like any other.
        c(
            json!({"num_inference_steps": 500}),
            &["--preset", "fast", "--num-inference-steps", "500"],
        ),
        c(
            json!({"num_inference_steps": 0}),
            &["--num-inference-steps", "0"],
        ),
        c(
            json!({"guidance_scale": 25.5}),
            &["--guidance-scale", "25.5"],
        ),
        c(json!({"shift": 0.0}), &["--shift", "0"]),
        c(json!({"seed": -1}), &["--seed", "-1"]),
        c(json!({"seed": 4294967296u64}), &["--seed", "4294967296"]),
        c(
            json!({"driving_type": "pose", "subject_type": "animal"}),
            &["--driving-type", "pose", "--subject-type", "animal"],
        ),
        c(json!({"mode": "dance"}), &["--mode", "dance"]),
        c(json!({"resolution": "1080p"}), &["--resolution", "1080p"]),
        c(
            json!({"prompt": "a".repeat(scail_core::MAX_PROMPT_CHARS + 1)}),
            &[],
        ),
    ]
}

#[test]
fn generate_refuses_what_http_refuses_with_the_same_message() {
    let data = tempfile::tempdir().unwrap();
    let s = serve(data.path(), &[]);
    let files = tempfile::tempdir().unwrap();
    let (img, vid) = (files.path().join("a.png"), files.path().join("b.mp4"));
    std::fs::write(&img, b"x").unwrap();
    std::fs::write(&vid, b"x").unwrap();
    for case in cases() {
        let url = format!("{}/queue/fal-ai/scail-2", s.url);
        let (status, body) = http_json("POST", &url, "k-test", &case.body.to_string());
        assert_eq!(status, 422, "{}: {body}", case.body);
        let detail: Value = serde_json::from_str(&body).unwrap();
        let errors = detail["detail"].as_array().unwrap().clone();
        assert!(!errors.is_empty());

        let out = scail()
            .arg("generate")
            .arg("--weights")
            .arg(files.path().join("no-weights-needed"))
            .arg("--image")
            .arg(&img)
            .arg("--video")
            .arg(&vid)
            .arg("--out")
            .arg(files.path().join("out.mp4"))
            .args(&case.flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{:?} was accepted", case.flags);
        assert!(
            !stderr.contains("loading weights"),
            "refused before loading: {stderr}"
        );
        for e in &errors {
            let msg = e["msg"].as_str().unwrap();
            assert!(
                stderr.contains(msg),
                "{:?}: HTTP says {msg:?}; generate says {stderr}",
                case.flags
            );
            // Range and combination errors name their field as the API does; clap names the
            // flag of an enum it could not parse.
            let field = e["loc"][1].as_str().unwrap();
            assert!(
                stderr.contains(&format!("{field}: {msg}"))
                    || stderr.contains(&format!("--{}", field.replace('_', "-"))),
                "{stderr}"
            );
        }
    }
}

#[test]
fn generate_names_a_missing_input_file_before_loading_weights() {
    let files = tempfile::tempdir().unwrap();
    let out = scail()
        .args(["generate", "--weights", "/nonexistent", "--image"])
        .arg(files.path().join("missing.png"))
        .arg("--video")
        .arg(files.path().join("missing.mp4"))
        .arg("--out")
        .arg(files.path().join("o.mp4"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("image_url: no such file"), "{stderr}");
    assert!(!stderr.contains("loading weights"), "{stderr}");
}

#[test]
fn generate_refuses_a_memory_budget_the_weights_cannot_fit_and_an_unknown_offload_mode() {
    let files = tempfile::tempdir().unwrap();
    let w = files.path().join("w");
    let init = scail()
        .args(["weights", "init-random", "--config", "tiny"])
        .arg(&w)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let media = |n: &str| scail_testdata::media(n);
    let run = |extra: &[&str]| {
        let out = scail()
            .arg("generate")
            .arg("--weights")
            .arg(&w)
            .arg("--image")
            .arg(media("ref_photo_woman_shore.jpg"))
            .arg("--video")
            .arg(media("dance_woman_16fps.mp4"))
            .arg("--out")
            .arg(files.path().join("o.mp4"))
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, stderr) = run(&["--offload", "stream", "--host-memory", "1MiB"]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("--offload stream") && stderr.contains("no offload mode fits"),
        "{stderr}"
    );
    assert!(stderr.contains("1.0 MiB is available"), "{stderr}");
    assert!(
        !stderr.contains("segment 1/"),
        "refused before sampling: {stderr}"
    );
    let (ok, stderr) = run(&["--offload", "disk"]);
    assert!(!ok);
    assert!(stderr.contains("none, blocks or stream"), "{stderr}");
    let (ok, stderr) = run(&["--host-memory", "lots"]);
    assert!(!ok);
    assert!(
        stderr.contains("--host-memory") && stderr.contains("lots"),
        "{stderr}"
    );
}
