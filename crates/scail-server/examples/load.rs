//! Load benchmark (not a test): status polls/s and submits/s against a server holding 1,000 jobs,
//! with p50/p99 latency; `/health` (no store access) is run in the same invocation as the
//! comparison. Run it with `bench/server_load.sh`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scail_core::generator::NoWeightsGenerator;
use scail_server::ServerConfig;

const KEY: &str = "bench-key";

struct Figures {
    n: usize,
    secs: f64,
    lat: Vec<f64>,
}

impl Figures {
    fn line(&self, name: &str) -> String {
        let pct = |p: f64| self.lat[((self.lat.len() as f64 - 1.0) * p) as usize] * 1e3;
        format!(
            "{name:<28} {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} requests in {:.1} s)",
            self.n as f64 / self.secs,
            pct(0.5),
            pct(0.99),
            self.n,
            self.secs
        )
    }
}

async fn hammer(
    clients: usize,
    dur: Duration,
    make: Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync>,
) -> Figures {
    let t0 = Instant::now();
    let mut tasks = vec![];
    for c in 0..clients {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            let mut i = c;
            while t0.elapsed() < dur {
                let t = Instant::now();
                let r = make(i).send().await.expect("request");
                assert!(r.status().is_success(), "status {}", r.status());
                let _ = r.bytes().await.unwrap();
                lat.push(t.elapsed().as_secs_f64());
                i += clients;
            }
            lat
        }));
    }
    let mut lat = vec![];
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Figures {
        n: lat.len(),
        secs,
        lat,
    }
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let clients: usize = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServerConfig {
            port: 0,
            data_dir: dir.path().to_path_buf(),
            api_keys: vec![format!("bench@@{KEY}")],
            ..ServerConfig::default()
        };
        let srv = scail_server::start(cfg, Arc::new(NoWeightsGenerator)).await.unwrap();
        let base = srv.public_url.clone();
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        // Inputs the worker rejects at once (not media), so the store fills with finished jobs
        // and the worker is idle while the clients run.
        let body = serde_json::json!({"prompt": "p", "image_url": "data:image/png;base64,AAAA",
            "video_url": "data:video/mp4;base64,AAAA"}).to_string();

        // 1,000 jobs in the store: submitted through the API, then left to finish.
        let t = Instant::now();
        let mut ids = vec![];
        for _ in 0..1000 {
            let r = http.post(format!("{base}/queue/fal-ai/scail-2")).header("authorization", format!("Key {KEY}")).body(body.clone()).send().await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            ids.push(v["request_id"].as_str().unwrap().to_string());
        }
        let seq_submit = 1000.0 / t.elapsed().as_secs_f64();
        loop {
            let h: serde_json::Value = serde_json::from_slice(&http.get(format!("{base}/health")).send().await.unwrap().bytes().await.unwrap()).unwrap();
            if h["queued"] == 0 && h["running"] == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let ids = Arc::new(ids);
        let dur = Duration::from_secs(secs);
        println!("scail server load, {} cores, {clients} concurrent clients, {secs} s per run, 1,000 jobs in the store", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        println!("sequential submits while filling the store: {seq_submit:.0} req/s");

        let (h, b) = (http.clone(), base.clone());
        let health = hammer(clients, dur, Arc::new(move |_| h.get(format!("{b}/health")))).await;
        let (h, b, i2) = (http.clone(), base.clone(), ids.clone());
        let status = hammer(clients, dur, Arc::new(move |i| {
            h.get(format!("{b}/queue/fal-ai/scail-2/requests/{}/status", i2[i % i2.len()])).header("authorization", format!("Key {KEY}"))
        })).await;
        let (h, b, i3) = (http.clone(), base.clone(), ids.clone());
        let status_logs = hammer(clients, dur, Arc::new(move |i| {
            h.get(format!("{b}/queue/fal-ai/scail-2/requests/{}/status?logs=1", i3[i % i3.len()])).header("authorization", format!("Key {KEY}"))
        })).await;
        let (h, b, bd) = (http.clone(), base.clone(), body.clone());
        let submit = hammer(clients, dur, Arc::new(move |_| {
            h.post(format!("{b}/queue/fal-ai/scail-2")).header("authorization", format!("Key {KEY}")).body(bd.clone())
        })).await;
        println!("{}", health.line("GET /health (comparison)"));
        println!("{}", status.line("GET status"));
        println!("{}", status_logs.line("GET status?logs=1"));
        println!("{}", submit.line("POST submit"));
        let p99 = status.lat[((status.lat.len() as f64 - 1.0) * 0.99) as usize] * 1e3;
        let rate = status.n as f64 / status.secs;
        println!("target: status >= 5000 req/s with p99 < 10 ms: {}", if rate >= 5000.0 && p99 < 10.0 { "MET" } else { "NOT MET" });
        srv.shutdown().await;
    });
}
