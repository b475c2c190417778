//! The official fal clients (npm `@fal-ai/client` 1.10.1, PyPI `fal-client` 1.0.3) against a live
//! server with the test generator. `.ci/run` installs both (tests/conformance); set
//! SCAIL_SKIP_CONFORMANCE=1 to skip on a machine without Node.js or Python.

mod common;

use std::path::PathBuf;

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

fn skip() -> bool {
    if std::env::var("SCAIL_SKIP_CONFORMANCE").is_ok_and(|v| v == "1") {
        eprintln!("SCAIL_SKIP_CONFORMANCE=1: client conformance skipped");
        return true;
    }
    false
}

async fn run_suite(program: &str, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let srv = common::start(dir.path(), 20).await;
    let media = common::media_server().await;
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(conformance_dir())
        .env("SCAIL_BASE", &srv.public_url)
        .env("SCAIL_KEY", common::KEY_A)
        .env("SCAIL_KEY_OTHER", common::KEY_B)
        .env("SCAIL_MEDIA", &media)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("running {program}: {e} (install it, or set SCAIL_SKIP_CONFORMANCE=1)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    srv.shutdown().await;
    assert!(
        out.status.success(),
        "{program} conformance suite failed:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client() {
    if skip() {
        return;
    }
    assert!(
        conformance_dir()
            .join("node_modules/@fal-ai/client")
            .exists(),
        "run `npm install` in tests/conformance (or bash .ci/run), or set SCAIL_SKIP_CONFORMANCE=1"
    );
    run_suite("node", &["--test", "--test-concurrency=1", "js/"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client() {
    if skip() {
        return;
    }
    let python = std::env::var("SCAIL_PYTHON").unwrap_or_else(|_| {
        let venv = "/var/cache/scail/venv/bin/python";
        if std::path::Path::new(venv).exists() {
            venv.into()
        } else {
            "python3".into()
        }
    });
    run_suite(
        &python,
        &["-m", "pytest", "-q", "-p", "no:cacheprovider", "py/"],
    )
    .await;
}
