//! The `scail` binary end to end: help texts, probe, weights, and `serve` (SIGTERM; with tiny
//! random weights, a request from the official JS client returns a real video).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn serve_help_documents_every_option() {
    let help = ok(scail().args(["serve", "--help"]));
    for opt in [
        "--port",
        "--host",
        "--data-dir",
        "--public-url",
        "--weights",
        "--api-keys",
        "--keys-file",
        "--workers",
        "--max-upload-mib",
        "--max-input-mib",
        "--max-request-mib",
        "--fetch-timeout-s",
        "--allow-fetch-from",
        "--shutdown-grace-s",
        "--max-connections",
        "--max-connections-per-peer",
        "--header-read-timeout-s",
        "--retention-hours",
        "--max-queued-per-key",
        "--max-storage-per-key-gib",
        "--device",
        "--precision",
        "--offload",
        "--host-memory",
    ] {
        assert!(help.contains(opt), "serve --help lacks {opt}");
    }
    let top = ok(scail().arg("--help"));
    for sub in ["serve", "generate", "probe", "weights", "bench"] {
        assert!(top.contains(sub), "--help lacks {sub}");
    }
}

#[test]
fn probe_prints_json_facts_and_refuses_non_media() {
    let v: serde_json::Value = serde_json::from_str(&ok(scail()
        .arg("probe")
        .arg(media_dir().join("talk_show_host_30fps_audio.mp4"))))
    .unwrap();
    assert_eq!(v["video"]["width"], 1920);
    assert_eq!(v["video"]["frames"], 106);
    assert_eq!(v["audio"]["codec"], "aac");
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("not-a-video.mp4");
    std::fs::write(&txt, "hello").unwrap();
    let out = scail().arg("probe").arg(&txt).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-a-video.mp4"));
}

/// A CUDA device asked of a build or a machine without one is an error that says what to do,
/// never a panic.
#[test]
fn cuda_without_a_gpu_is_a_clear_error() {
    if std::path::Path::new("/dev/nvidia0").exists() {
        eprintln!("a GPU is present: skipped");
        return;
    }
    let (success, _, err) = run(scail()
        .args([
            "bench",
            "dit",
            "--device",
            "cuda",
            "--forwards",
            "1",
            "--dim",
            "64",
            "--heads",
            "2",
            "--layers",
            "1",
        ])
        .env("RUST_BACKTRACE", "0"));
    assert!(!success);
    assert!(err.contains("--device cuda"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn weights_init_random_then_verify() {
    let dir = tempfile::tempdir().unwrap();
    ok(scail()
        .args(["weights", "init-random", "--config", "tiny"])
        .arg(dir.path()));
    let table = ok(scail().args(["weights", "verify"]).arg(dir.path()));
    assert!(table.contains("overall: ok"), "{table}");
    // A damaged folder fails with a table that says where.
    std::fs::write(dir.path().join("Wan2.1_VAE.pth"), b"junk").unwrap();
    let out = scail()
        .args(["weights", "verify"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Kills and reaps a helper process when the test ends, however it ends.
#[test]
fn serve_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = serve(dir.path(), &[]);
    let health = http_get(&format!("{}/health", s.url));
    assert!(health.contains("\"ok\""));
    assert!(Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            assert!(st.success(), "exit status {st}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_with_tiny_weights_answers_the_official_js_client_with_a_real_video() {
    if std::env::var("SCAIL_SKIP_CONFORMANCE").is_ok_and(|v| v == "1") {
        eprintln!("SCAIL_SKIP_CONFORMANCE=1: skipped");
        return;
    }
    let w = tempfile::tempdir().unwrap();
    ok(scail()
        .args(["weights", "init-random", "--config", "tiny"])
        .arg(w.path()));
    let data = tempfile::tempdir().unwrap();
    let s = serve(
        data.path(),
        &["--weights", w.path().to_str().unwrap(), "--size", "128x96"],
    );
    let v = run_client_script(&s.url, "model/real_video.mjs", &[]);
    assert_eq!(v["video"]["content_type"], "video/mp4");
}

/// `weights fetch` against a local stand-in of the hub (tests/support/fake_hub.py) holding the
/// official repository (tiny random weights in its layout) and the Stage A repositories; the
/// fetched folder verifies, and a second run downloads nothing. The SAM3 repository is laid
/// out like the published export (encoders with `.onnx.data` weights) plus a reduced-precision
/// decoy, and ships no tokenizer, so the CLIP tokenizer comes from the fallback repository.
#[test]
fn weights_fetch_from_a_hub_mirror_then_verify() {
    let src = tempfile::tempdir().unwrap();
    ok(scail()
        .args(["weights", "init-random", "--config", "tiny"])
        .arg(src.path()));
    let hub = tempfile::tempdir().unwrap();
    let official = hub.path().join("zai-org/SCAIL-2");
    std::fs::create_dir_all(official.parent().unwrap()).unwrap();
    let local = hub.path().join("stagea-local");
    std::fs::rename(src.path().join("stagea"), &local).unwrap();
    std::fs::rename(src.path(), &official).unwrap_or_else(|_| {
        ok(Command::new("cp").arg("-r").arg(src.path()).arg(&official));
    });
    let put = |repo: &str, path: &str, from: &str| {
        let to = hub.path().join(repo).join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(local.join(from), &to).unwrap();
    };
    put("yzd-v/DWPose", "yolox_l.onnx", "yolox_l.onnx");
    put(
        "yzd-v/DWPose",
        "dw-ll_ucoco_384.onnx",
        "dw-ll_ucoco_384.onnx",
    );
    let sam3 = "danilobukvic/sam3-text-onnx";
    for f in [
        "vision_encoder.onnx",
        "vision_encoder.onnx.data",
        "text_encoder.onnx",
        "text_encoder.onnx.data",
        "decoder.onnx",
    ] {
        put(sam3, f, &format!("sam3/{f}"));
    }
    put(sam3, "fp16/decoder.onnx", "yolox_l.onnx");
    put(
        "openai/clip-vit-large-patch14",
        "tokenizer.json",
        "sam3/tokenizer.json",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/fake_hub.py");
    let _server = Command::new("python3")
        .arg(script)
        .arg(hub.path())
        .arg(port.to_string())
        .spawn()
        .map(Reap)
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dest = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    // The mirror's DWPose files are stand-ins, not the published graphs scail pins: refused,
    // naming both checksums, unless the user accepts them.
    // A fetch that must fail: its stderr.
    let failing_fetch = |args: &[&str], dest: &std::path::Path| {
        let out = scail()
            .args(args)
            .arg(dest)
            .env("HF_ENDPOINT", &endpoint)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let refused = tempfile::tempdir().unwrap();
    let err = failing_fetch(&["weights", "fetch", "--dest"], refused.path());
    assert!(
        err.contains("yzd-v/DWPose:yolox_l.onnx")
            && err.contains("7860ae79de6c89a3c1eb72ae9a2756c0ccfbe04b7791bb5880afabd97855a411")
            && err.contains("--accept-changed-stagea"),
        "{err}"
    );
    assert!(!refused.path().join("stagea/yolox_l.onnx").exists());
    let fetch_args = ["weights", "fetch", "--accept-changed-stagea", "--dest"];
    let first = ok(scail()
        .args(fetch_args)
        .arg(dest.path())
        .env("HF_ENDPOINT", &endpoint));
    let second = ok(scail()
        .args(fetch_args)
        .arg(dest.path())
        .env("HF_ENDPOINT", &endpoint));
    // The official repository's six files: DiT, its `latest` pointer, VAE, umT5, tokenizer, CLIP.
    assert!(first.contains("zai-org/SCAIL-2: 6 downloaded"), "{first}");
    assert!(second.contains("zai-org/SCAIL-2: 0 downloaded"), "{second}");
    assert!(dest.path().join("stagea/dw-ll_ucoco_384.onnx").exists());
    for line in [
        "stagea/sam3/decoder.onnx <- danilobukvic/sam3-text-onnx:decoder.onnx",
        "stagea/sam3/tokenizer.json <- openai/clip-vit-large-patch14:tokenizer.json",
        "danilobukvic/sam3-text-onnx: 5 downloaded",
    ] {
        assert!(first.contains(line), "{line} missing from:\n{first}");
    }
    assert!(
        second.contains("danilobukvic/sam3-text-onnx: 0 downloaded"),
        "{second}"
    );
    // The graphs are links; their weights files were fetched beside the targets; the decoy
    // was never downloaded.
    let enc = dest.path().join("stagea/sam3/vision_encoder.onnx");
    assert!(enc.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(std::fs::canonicalize(&enc)
        .unwrap()
        .with_extension("onnx.data")
        .is_file());
    assert!(!dest
        .path()
        .join("stagea/.hub/danilobukvic--sam3-text-onnx/fp16")
        .exists());
    if std::env::var_os("ORT_DYLIB_PATH").is_some() {
        let table = ok(scail().args(["weights", "verify"]).arg(dest.path()));
        assert!(
            table.contains("overall: ok") && table.contains("stagea  ok"),
            "{table}"
        );
    } else {
        eprintln!("ORT_DYLIB_PATH unset: Stage A signatures not verified");
    }
    // A repository without a decoder: the fetch stops, naming the file and what is there.
    std::fs::remove_file(hub.path().join(sam3).join("decoder.onnx")).unwrap();
    std::fs::remove_file(hub.path().join(sam3).join("fp16/decoder.onnx")).unwrap();
    let again = tempfile::tempdir().unwrap();
    let err = failing_fetch(&fetch_args, again.path());
    assert!(
        err.contains("has no file for stagea/sam3/decoder.onnx")
            && err.contains("text_encoder.onnx"),
        "{err}"
    );
}

/// `scail serve --demo` on an empty data directory: it makes tiny random weights itself, says
/// so on `/health`, and a request with real media comes back as a video labelled as noise.
#[test]
fn serve_demo_runs_the_whole_flow_and_labels_its_output() {
    if scail_stagea::runtime::resolve_dylib(None).is_err() {
        eprintln!("skipping: ONNX Runtime not found (Stage A runs in demo mode)");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let s = serve(data.path(), &["--demo"]);
    let health = http_get(&format!("{}/health", s.url));
    assert!(health.contains("demo: tiny random weights"), "{health}");
    let data_uri = |name: &str, mime: &str| {
        let bytes = std::fs::read(media_dir().join(name)).unwrap();
        format!("data:{mime};base64,{}", b64(&bytes))
    };
    let body = serde_json::json!({"prompt": "a dancer", "num_inference_steps": 1,
        "image_url": data_uri("ref_photo_woman_shore.jpg", "image/jpeg"),
        "video_url": data_uri("dance_woman_16fps.mp4", "video/mp4")});
    let url = format!("{}/queue/fal-ai/scail-2", s.url);
    let (status, sub) = http_json("POST", &url, "k-test", &body.to_string());
    assert_eq!(status, 200, "{sub}");
    let id = serde_json::from_str::<serde_json::Value>(&sub).unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let t0 = Instant::now();
    let result = loop {
        let (st, r) = http_json("GET", &format!("{url}/requests/{id}"), "k-test", "");
        if st != 400 {
            break (st, r);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "the demo job did not finish"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(result.0, 200, "{}", result.1);
    let out: serde_json::Value = serde_json::from_str(&result.1).unwrap();
    let name = out["video"]["file_name"].as_str().unwrap();
    assert!(name.starts_with("demo-noise-"), "{name}");
    assert!(out["video"]["file_size"].as_u64().unwrap() > 0);
    let (_, status_body) = http_json(
        "GET",
        &format!("{url}/requests/{id}/status?logs=1"),
        "k-test",
        "",
    );
    assert!(
        status_body.contains("every video is noise"),
        "{status_body}"
    );
    assert!(data.path().join("demo-weights/.complete").exists());
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A fleet node whose store or storage is wrong or unreachable stops at start with the reason
/// and a non-zero exit, before it takes any job.
#[test]
fn fleet_nodes_refuse_an_unreachable_store_or_storage() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    // Nothing listens on port 1.
    let (ok, _, err) = run(scail().args([
        "worker",
        "--data-dir",
        d,
        "--store",
        "postgres://postgres@127.0.0.1:1/scail",
    ]));
    assert!(!ok);
    assert!(
        err.contains("connecting to the job store postgres://postgres@127.0.0.1:1/scail"),
        "{err}"
    );
    let (ok, _, err) = run(scail().args([
        "serve",
        "--no-worker",
        "--data-dir",
        d,
        "--store",
        "mysql://h/db",
    ]));
    assert!(!ok);
    assert!(
        err.contains("expected postgres://user@host/db or sqlite://path"),
        "{err}"
    );
    let (ok, _, err) = run(scail().args(["serve", "--data-dir", d, "--storage", "gs://b/p"]));
    assert!(!ok);
    assert!(
        err.contains("expected s3://bucket/prefix or file://path"),
        "{err}"
    );
    // An S3 endpoint that refuses connections: the start-up probe says so.
    let (ok, _, err) = run(scail()
        .args([
            "serve",
            "--no-worker",
            "--port",
            "0",
            "--data-dir",
            d,
            "--storage",
            "s3://media/x",
        ])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("AWS_REGION", "us-east-1"));
    assert!(!ok);
    assert!(
        err.contains("storage S3")
            && (err.contains("not usable") || err.contains("did not answer")),
        "{err}"
    );
    let (ok, _, err) = run(scail().args(["worker", "--no-worker", "--data-dir", d]));
    assert!(!ok);
    assert!(err.contains("`scail worker` is the worker"), "{err}");
}
