//! Shared harness of the binary's tests: the built `scail`, the test media, running commands
//! with their output kept for failure messages, a served instance that is killed when dropped,
//! and plain HTTP calls (no client library or curl needed).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub fn scail() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scail"))
}

pub fn media_dir() -> PathBuf {
    scail_testdata::media_dir()
}

pub fn have_ffmpeg() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a command, returning (success, stdout, stdout+stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), stdout, all)
}

pub fn ok(cmd: &mut Command) -> String {
    let (success, stdout, all) = run(cmd);
    assert!(success, "{cmd:?} failed:\n{all}");
    stdout
}

/// The ONNX Runtime library from `ORT_DYLIB_PATH` (or the active venv); false, printed, when
/// it is absent.
pub fn ort_or_skip(test: &str) -> bool {
    match scail_stagea::runtime::resolve_dylib(None) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            false
        }
    }
}

pub struct Reap(pub std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Served {
    pub child: std::process::Child,
    pub url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(data: &Path, extra: &[&str]) -> Served {
    let mut child = scail()
        .args([
            "serve",
            "--port",
            "0",
            "--api-keys",
            "tester@@k-test",
            "--allow-fetch-from",
            "127.0.0.1",
        ])
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("serve prints SCAIL_LISTENING").unwrap();
        if let Some(u) = line.strip_prefix("SCAIL_LISTENING ") {
            break u.to_string();
        }
    };
    Served { child, url }
}

/// A plain HTTP/1.0 GET (no client library or curl needed); returns the whole response.
pub fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Serves the test media folder over HTTP on 127.0.0.1 (the server fetches inputs by URL).
pub fn media_server() -> (Reap, String) {
    media_server_in(&media_dir())
}

/// Serves `dir` over HTTP on 127.0.0.1.
pub fn media_server_in(dir: &Path) -> (Reap, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Reap)
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, url)
}

/// A plain HTTP/1.0 request with a JSON body; returns (status, body).
pub fn http_json(method: &str, url: &str, key: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nAuthorization: Key {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// A kijai-named LoRA on the self-attention q and k of `blocks` (rank 4, alpha 4) in `dir`,
/// for tiny weights.
pub fn kijai_lora(dir: &Path, blocks: &[usize]) -> PathBuf {
    let d = scail_model::weights::Contract::new(scail_model::weights::ModelSize::Tiny)
        .dit
        .dim;
    let mut m = std::collections::HashMap::new();
    for &b in blocks {
        for p in ["q", "k"] {
            let k = format!("diffusion_model.blocks.{b}.self_attn.{p}");
            let t = |shape: &[usize]| {
                (candle_core::Tensor::ones(
                    shape,
                    candle_core::DType::F32,
                    &candle_core::Device::Cpu,
                )
                .unwrap()
                    * 0.05)
                    .unwrap()
            };
            m.insert(format!("{k}.lora_down.weight"), t(&[4, d]));
            m.insert(format!("{k}.lora_up.weight"), t(&[d, 4]));
            m.insert(
                format!("{k}.alpha"),
                candle_core::Tensor::new(4f32, &candle_core::Device::Cpu).unwrap(),
            );
        }
    }
    let path = dir.join(format!("kijai_{}.safetensors", blocks.len()));
    candle_core::safetensors::save(&m, &path).unwrap();
    path
}

/// Runs `tests/conformance/{script}` (the official JS client) against a served instance, with the
/// test media served over HTTP and `env` added; asserts it succeeds and returns the JSON line it
/// prints last.
pub fn run_client_script(url: &str, script: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let conf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance");
    assert!(
        conf.join("node_modules/@fal-ai/client").exists(),
        "run `npm install` in tests/conformance (or bash .ci/run)"
    );
    let (media, media_url) = media_server();
    let out = Command::new("node")
        .arg(script)
        .current_dir(&conf)
        .env("SCAIL_BASE", url)
        .env("SCAIL_KEY", "k-test")
        .env("SCAIL_MEDIA", &media_url)
        .envs(env.iter().copied())
        .output()
        .expect("node");
    drop(media);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script}: {text}");
    let line = text.lines().rfind(|l| l.starts_with('{'));
    serde_json::from_str(line.expect("a JSON result line")).unwrap()
}
