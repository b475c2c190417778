//! Submit-to-claim latency on a shared store: an API node and a separate idle worker (two
//! servers in this process, sharing nothing but the store, so the wake-up crosses PostgreSQL's
//! LISTEN/NOTIFY as between machines). Each job is submitted over HTTP once the previous one has
//! finished; the time from just before the POST to the job's `started_at` is its claim latency.
//! Prints min, median, p99 and max. `STORE=postgres://user@host` (default the local server),
//! `JOBS` (default 200). Run by bench/fleet_store.sh.

use std::sync::Arc;
use std::time::Duration;

use scail_core::generator::NoWeightsGenerator;
use scail_server::store::{now, StoreUrl};
use scail_server::ServerConfig;

fn main() {
    let jobs: usize = std::env::var("JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let base =
        std::env::var("STORE").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let url = StoreUrl::parse(&format!(
        "{}/scail_bench_{:08x}",
        base.trim_end_matches('/'),
        rand::random::<u32>()
    ))
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let storage = scail_server::storage::StorageUrl::File(d1.path().join("files"));
        let cfg = |dir: &std::path::Path, api: bool| ServerConfig {
            port: 0,
            data_dir: dir.to_path_buf(),
            store_url: Some(url.clone()),
            storage_url: Some(storage.clone()),
            http: api,
            workers: if api { 0 } else { 1 },
            api_keys: vec!["bench@@bench-key".into()],
            ..ServerConfig::default()
        };
        let api = scail_server::start(cfg(d1.path(), true), Arc::new(NoWeightsGenerator))
            .await
            .unwrap();
        let worker = scail_server::start(cfg(d2.path(), false), Arc::new(NoWeightsGenerator))
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let submit = format!("{}/queue/fal-ai/scail-2", api.public_url);
        let body = serde_json::json!({"prompt": "a dancer", "image_url": "https://example.com/a.png",
            "video_url": "https://example.com/b.mp4"});
        let mut lat = Vec::with_capacity(jobs);
        for _ in 0..jobs {
            // The worker is idle: the previous job has finished.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let t = now();
            let bytes = http
                .post(&submit)
                .header("Authorization", "Key bench-key")
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let r: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let id = r["request_id"].as_str().unwrap().to_string();
            let started = loop {
                let job = api.state.store.job(&id).await.unwrap().unwrap();
                if let (Some(s), scail_server::store::JobStatus::Completed) = (job.started_at, job.status) {
                    break s;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            lat.push((started - t) * 1000.0);
        }
        lat.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
        println!(
            "submit -> claim by an idle worker ({jobs} jobs, {}): min {:.1} ms, median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            url.redacted(),
            q(0.0),
            q(0.5),
            q(0.99),
            q(1.0)
        );
        worker.shutdown().await;
        api.shutdown().await;
    });
}
