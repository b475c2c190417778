//! Test support: a generator that writes a real small mp4 (with the ffmpeg CLI) in steps that
//! honour cancellation, a server launcher, and a tiny HTTP client. Test code only.
#![allow(dead_code)]

pub mod backends;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scail_core::generator::*;
use scail_server::{AllowNet, Server, ServerConfig};
use serde_json::{json, Value};

pub const KEY_A: &str = "alice-key-123";
pub const KEY_B: &str = "bob-key-456";

/// Sleeps `step_delay` per inference step, then encodes a 9-frame 64x48 H.264 mp4.
pub struct TestGenerator {
    pub step_delay: Duration,
}

fn mp4(path: &Path, frames: u32) -> Result<(), GenerateError> {
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=16",
        ])
        .args([
            "-frames:v",
            &frames.to_string(),
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-movflags",
            "+faststart",
        ])
        .arg(path)
        .output()
        .map_err(|e| GenerateError::Failed(format!("test generator needs the ffmpeg CLI: {e}")))?;
    if !out.status.success() {
        return Err(GenerateError::Failed(
            String::from_utf8_lossy(&out.stderr).into(),
        ));
    }
    Ok(())
}

impl Generator for TestGenerator {
    fn generate(
        &self,
        req: &GenerateRequest,
        progress: &dyn Progress,
    ) -> Result<GenerateOutput, GenerateError> {
        progress.log(
            LogLevel::Info,
            &format!("test generator: seed {}", req.seed),
        );
        for l in &req.loras {
            let line = format!("test generator: LoRA {} at {}", l.path.display(), l.scale);
            progress.log(LogLevel::Info, &line);
        }
        for p in [&req.input.image_url, &req.input.video_url] {
            if std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) == 0 {
                return Err(GenerateError::Failed(format!(
                    "input {} is missing",
                    p.display()
                )));
            }
        }
        let steps = req.input.num_inference_steps as u64;
        let clock = EtaClock::default();
        for i in 0..steps {
            if progress.is_cancelled() {
                return Err(GenerateError::Cancelled);
            }
            std::thread::sleep(self.step_delay);
            progress.progress(&ProgressUpdate {
                stage: "sampling".into(),
                done: i + 1,
                total: steps,
                eta_s: clock.eta(i + 1, steps - i - 1),
            });
        }
        if req.input.prompt == "fail naming the input" {
            // As a decoder does: the message names the local file it could not read.
            return Err(GenerateError::Input {
                field: None,
                message: format!("{}: invalid data found", req.input.video_url.display()),
            });
        }
        if req.input.prompt == "please fail" {
            return Err(GenerateError::Failed(
                "the test generator was asked to fail".into(),
            ));
        }
        let video = req.work_dir.join("out.mp4");
        mp4(&video, 9)?;
        let file = |p: &Path, n: &str| GeneratedFile {
            path: p.to_path_buf(),
            content_type: "video/mp4".into(),
            file_name: n.into(),
        };
        let (pre, mask) = if req.input.output_preprocessing {
            let a = req.work_dir.join("pre.mp4");
            mp4(&a, 5)?;
            (
                Some(file(&a, "preprocessing.mp4")),
                Some(file(&a, "mask.mp4")),
            )
        } else {
            (None, None)
        };
        Ok(GenerateOutput {
            video: file(&video, "output.mp4"),
            preprocessing_video: pre,
            preprocessing_mask_video: mask,
            preprocessing_mask_video_lossless: None,
        })
    }
}

/// A test server's configuration: embedded store and storage, or with
/// `SCAIL_TEST_BACKEND=postgres+s3` a fresh PostgreSQL database and S3 prefix.
pub fn config(dir: &Path) -> ServerConfig {
    let fleet = backends::fleet_backend();
    ServerConfig {
        store_url: fleet.then(|| backends::pg_store(dir)),
        storage_url: fleet.then(|| backends::s3_storage(dir)),
        port: 0,
        data_dir: dir.to_path_buf(),
        api_keys: vec![format!("alice@@{KEY_A}"), format!("bob@@{KEY_B}")],
        allow_fetch_from: vec!["127.0.0.0/8".parse::<AllowNet>().unwrap()],
        webhook_retry_base: Duration::from_millis(200),
        fetch_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

pub async fn start(dir: &Path, step_ms: u64) -> Server {
    start_with(config(dir), step_ms).await
}

pub async fn start_with(cfg: ServerConfig, step_ms: u64) -> Server {
    scail_server::start(
        cfg,
        Arc::new(TestGenerator {
            step_delay: Duration::from_millis(step_ms),
        }),
    )
    .await
    .expect("server starts")
}

/// Minimal JSON-over-HTTP client for the tests.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn header(&self, k: &str) -> Option<String> {
        self.headers.get(k).map(|v| v.to_str().unwrap().to_string())
    }
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut rb = self.http.request(method.parse().unwrap(), url);
        if let Some(k) = key {
            rb = rb.header("authorization", format!("Key {k}"));
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let r = rb.send().await.expect("request sent");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.unwrap().to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A direct CDN upload (`POST /cdn/files/upload`) with the API key.
    pub async fn cdn_upload(&self, key: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Resp {
        self.send("POST", "/cdn/files/upload", Some(key), Some(body), headers)
            .await
    }

    pub async fn submit(&self, key: &str, input: &Value) -> Resp {
        self.send(
            "POST",
            "/queue/fal-ai/scail-2",
            Some(key),
            Some(input.to_string().into_bytes()),
            &[("content-type", "application/json")],
        )
        .await
    }

    /// Submits with `fal_webhook` set to `hook`.
    pub async fn submit_with_webhook(&self, key: &str, input: &Value, hook: &str) -> Resp {
        let path = format!(
            "/queue/fal-ai/scail-2?fal_webhook={}",
            hook.replace(':', "%3A").replace('/', "%2F")
        );
        let body = Some(input.to_string().into_bytes());
        self.send("POST", &path, Some(key), body, &[]).await
    }

    pub async fn status(&self, key: &str, id: &str) -> Value {
        let r = self
            .send(
                "GET",
                &format!("/queue/fal-ai/scail-2/requests/{id}/status?logs=1"),
                Some(key),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    /// Polls until the status is `want` (or COMPLETED), within `timeout`.
    pub async fn wait_status(&self, key: &str, id: &str, want: &str, timeout: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let s = self.status(key, id).await;
            if s["status"] == want || s["status"] == "COMPLETED" {
                return s;
            }
            assert!(
                t0.elapsed() < timeout,
                "request {id} never reached {want}: {s}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn result(&self, key: &str, id: &str) -> Resp {
        self.send(
            "GET",
            &format!("/queue/fal-ai/scail-2/requests/{id}"),
            Some(key),
            None,
            &[],
        )
        .await
    }
}

/// A valid request whose inputs are served by `media_base` (see [`media_server`]).
pub fn input(media_base: &str, steps: u32) -> Value {
    json!({"prompt": "a person dancing", "image_url": format!("{media_base}/ref.png"),
           "video_url": format!("{media_base}/drive.mp4"), "num_inference_steps": steps, "seed": 7})
}

/// The bytes of a 1x1 PNG.
pub fn png_bytes() -> Vec<u8> {
    let path = std::env::temp_dir().join(format!(
        "scail-test-{}-{}.png",
        std::process::id(),
        rand::random::<u32>()
    ));
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=8x8",
            "-frames:v",
            "1",
        ])
        .arg(&path)
        .output()
        .expect("ffmpeg CLI");
    assert!(out.status.success());
    let b = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    b
}

pub fn mp4_bytes() -> Vec<u8> {
    let path = std::env::temp_dir().join(format!(
        "scail-test-{}-{}.mp4",
        std::process::id(),
        rand::random::<u32>()
    ));
    mp4(&path, 9).unwrap();
    let b = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    b
}

/// Serves `/ref.png`, `/drive.mp4`, `/text.mp4` (a text file), `/slow.mp4` (never finishes
/// within a test's timeout) on 127.0.0.1; returns the base URL.
pub async fn media_server() -> String {
    use axum::routing::get;
    let png = png_bytes();
    let mp4 = mp4_bytes();
    let app = axum::Router::new()
        .route(
            "/ref.png",
            get(move || {
                let b = png.clone();
                async move { ([("content-type", "image/png")], b) }
            }),
        )
        .route(
            "/drive.mp4",
            get(move || {
                let b = mp4.clone();
                async move { ([("content-type", "video/mp4")], b) }
            }),
        )
        .route(
            "/text.mp4",
            get(|| async {
                (
                    [("content-type", "video/mp4")],
                    "this is not a video, just text",
                )
            }),
        )
        .route(
            "/slow.mp4",
            get(|| async {
                let s = futures_util::stream::unfold(0u32, |i| async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Some((
                        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"\0\0\0\x20ftypisom")),
                        i + 1,
                    ))
                });
                axum::body::Body::from_stream(s)
            }),
        )
        .route(
            "/redirect-private",
            get(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [("location", "http://10.255.255.1/x.mp4")],
                    "",
                )
            }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

/// How long a test waits for a job to reach a state.
pub const T: Duration = Duration::from_secs(30);

pub fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A direct connection to a data directory's job database, for tests that look at what is
/// stored.
pub async fn db(data_dir: &Path) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}", data_dir.join("scail.db").display());
    sqlx::SqlitePool::connect(&url).await.unwrap()
}
