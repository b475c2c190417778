//! The server a load tool is pointed at (`bench/server_load.sh` drives it with `wrk`): a data
//! directory seeded with JOBS finished jobs (logs and results included), BIG of them with a
//! 5 MB input, then `scail serve`'s server on it. Prints `SCAIL_LISTENING <url>`, `KEY`, `SMALL_JOB <id>` and `BIG_JOB <id>`,
//! and serves until its standard input closes. `STORE=postgres://user@host` seeds and serves
//! a fresh PostgreSQL database there instead of the SQLite file.

use std::io::BufRead;
use std::sync::Arc;

use scail_core::generator::NoWeightsGenerator;
use scail_server::store::{NewJob, Outcome, Store, StoreUrl};
use scail_server::ServerConfig;
use serde_json::json;

const KEY: &str = "bench-key";

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(d)
}

async fn seed(store: &Store, owner: &str, jobs: usize, big: usize) -> (String, String) {
    let small_input = json!({"prompt": "a dancer", "image_url": "https://example.com/a.png",
        "video_url": "https://example.com/b.mp4", "num_inference_steps": 40});
    let mut big_input = small_input.clone();
    big_input["legacy_blob"] = json!("x".repeat(5 << 20));
    let result = json!({"video": {"url": "https://example.com/o.mp4", "content_type": "video/mp4",
        "file_name": "o.mp4", "file_size": 1234}, "seed": 7});
    let (mut small_id, mut big_id) = (String::new(), String::new());
    for n in 0..jobs {
        let id = uuid::Uuid::new_v4().to_string();
        let is_big = n < big;
        store
            .insert_job(&NewJob {
                id: &id,
                owner,
                endpoint: scail_core::ENDPOINT_ID,
                input: if is_big { &big_input } else { &small_input },
                priority: 0,
                deadline: None,
                webhook_url: None,
                retain_s: None,
            })
            .await
            .unwrap();
        for line in ["queued", "fetching inputs", "segment 1/1: 40/40 (100%)"] {
            store.add_log(&id, "INFO", line).await.unwrap();
        }
        let outcome = Outcome::Ok {
            result: result.clone(),
            inference_time: 12.5,
        };
        store.complete(&id, None, &outcome, None).await.unwrap();
        if is_big {
            big_id = id;
        } else {
            small_id = id;
        }
    }
    (small_id, big_id)
}

fn main() {
    let jobs = env_usize("JOBS", 10_000);
    let big = env_usize("BIG", 20).min(jobs.saturating_sub(1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let owner = "bench";
        let store_url = std::env::var("STORE")
            .ok()
            .filter(|s| !s.is_empty())
            .map(|base| {
                let db = format!("scail_bench_{:08x}", rand::random::<u32>());
                StoreUrl::parse(&format!("{}/{db}", base.trim_end_matches('/'))).unwrap()
            });
        let store = match &store_url {
            Some(u) => Store::connect(u).await.unwrap(),
            None => Store::open(&dir.path().join("scail.db")).await.unwrap(),
        };
        let t = std::time::Instant::now();
        let (small, bigj) = seed(&store, owner, jobs, big).await;
        eprintln!(
            "seeded {jobs} finished jobs ({big} with a 5 MB input) in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        drop(store);
        let cfg = ServerConfig {
            port: env_usize("PORT", 0) as u16,
            data_dir: dir.path().to_path_buf(),
            store_url,
            api_keys: vec![format!("{owner}@@{KEY}")],
            ..ServerConfig::default()
        };
        let srv = scail_server::start(cfg, Arc::new(NoWeightsGenerator))
            .await
            .unwrap();
        println!("SCAIL_LISTENING {}", srv.public_url);
        println!("KEY {KEY}");
        println!("SMALL_JOB {small}");
        println!("BIG_JOB {bigj}");
        // Serve until the driving script closes our standard input.
        tokio::task::spawn_blocking(|| for _ in std::io::stdin().lock().lines() {})
            .await
            .unwrap();
        srv.shutdown().await;
    });
}
