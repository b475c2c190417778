//! API nodes and workers as separate servers sharing only a PostgreSQL store (and the storage:
//! S3 with `SCAIL_TEST_BACKEND=postgres+s3`, else a shared folder): status, logs and progress
//! written by a worker read from any API node; files served by a node that did not make them;
//! one webhook delivery with two API nodes delivering; a cancel crossing nodes within one step;
//! a job whose workers keep dying failing with the reason; workers riding out a store outage.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use scail_server::storage::StorageUrl;
use scail_server::store::StoreUrl;
use scail_server::{Server, ServerConfig};
use serde_json::Value;

/// One shared store and storage for the nodes of a test.
fn shared(root: &Path) -> (StoreUrl, StorageUrl) {
    let storage = if backends::fleet_backend() {
        backends::s3_storage(root)
    } else {
        StorageUrl::File(root.join("shared-files"))
    };
    (backends::pg_store(root), storage)
}

fn node(root: &Path, name: &str, store: &StoreUrl, storage: &StorageUrl) -> ServerConfig {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    ServerConfig {
        store_url: Some(store.clone()),
        storage_url: Some(storage.clone()),
        ..config(&dir)
    }
}

async fn api_node(root: &Path, name: &str, s: &(StoreUrl, StorageUrl)) -> Server {
    let cfg = ServerConfig {
        workers: 0,
        ..node(root, name, &s.0, &s.1)
    };
    start_with(cfg, 1).await
}

async fn worker_node(
    root: &Path,
    name: &str,
    s: &(StoreUrl, StorageUrl),
    public_url: &str,
    step_ms: u64,
    edit: impl FnOnce(&mut ServerConfig),
) -> Server {
    let mut cfg = ServerConfig {
        http: false,
        public_url: Some(public_url.to_string()),
        ..node(root, name, &s.0, &s.1)
    };
    edit(&mut cfg);
    start_with(cfg, step_ms).await
}

/// A webhook receiver answering 200 and counting deliveries per request id.
async fn counting_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: axum::http::HeaderMap| {
            let s = s.clone();
            async move {
                let id = h
                    .get("x-fal-webhook-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                s.lock().unwrap().push(id);
                axum::http::StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_api_node_answers_for_a_remote_workers_job() {
    let root = tempfile::tempdir().unwrap();
    let s = shared(root.path());
    let a1 = api_node(root.path(), "api1", &s).await;
    let a2 = api_node(root.path(), "api2", &s).await;
    let w = worker_node(root.path(), "worker", &s, &a1.public_url, 400, |_| {}).await;
    let (api1, api2) = (Api::new(&a1.public_url), Api::new(&a2.public_url));
    let media = media_server().await;
    let (hook, seen) = counting_receiver().await;

    // Submitted through node 2, with a webhook; both API nodes run deliveries.
    let r = api2
        .submit_with_webhook(KEY_A, &input(&media, 4), &hook)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let id = r.json()["request_id"].as_str().unwrap().to_string();

    // Node 1 sees the worker's progress and logs while the job runs.
    let deadline = Instant::now() + T;
    let running = loop {
        let st = api1
            .send(
                "GET",
                &format!("/queue/fal-ai/scail-2/requests/{id}/status?logs=1"),
                Some(KEY_A),
                None,
                &[],
            )
            .await
            .json();
        if st["status"] == "IN_PROGRESS" && st["progress"]["done"].as_u64().unwrap_or(0) >= 1 {
            break st;
        }
        assert!(Instant::now() < deadline, "no progress seen: {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(running["progress"]["stage"], "sampling", "{running}");
    assert_eq!(running["progress"]["total"], 4, "{running}");
    let lines: Vec<&str> = running["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    assert!(
        lines.iter().any(|l| l.starts_with("test generator: seed")),
        "{lines:?}"
    );

    api1.wait_status(KEY_A, &id, "COMPLETED", T).await;
    let result = api2.result(KEY_A, &id).await.json();
    let url = result["video"]["url"].as_str().unwrap();
    assert!(url.starts_with(&a1.public_url), "{url}");
    // The file, through the node that did not name it (Range included).
    let other = url.replace(&a1.public_url, &a2.public_url);
    let whole = api2.send("GET", &other, None, None, &[]).await;
    assert_eq!(whole.status, 200);
    assert_eq!(
        whole.body.len() as u64,
        result["video"]["file_size"].as_u64().unwrap()
    );
    assert_eq!(&whole.body[4..8], b"ftyp");
    let part = api2
        .send("GET", &other, None, None, &[("range", "bytes=4-7")])
        .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, b"ftyp");

    // One delivery, although two nodes deliver.
    let t = Instant::now();
    while seen.lock().unwrap().is_empty() && t.elapsed() < T {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(*seen.lock().unwrap(), vec![id.clone()]);

    // A cancel through node 2 stops the job on the worker within one step (1.5 s here).
    w.shutdown().await;
    let w = worker_node(root.path(), "worker-slow", &s, &a1.public_url, 1500, |_| {}).await;
    let long = api1.submit(KEY_A, &input(&media, 50)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    api1.wait_status(KEY_A, &long, "IN_PROGRESS", T).await;
    let asked = Instant::now();
    let c = api2
        .send(
            "PUT",
            &format!("/queue/fal-ai/scail-2/requests/{long}/cancel"),
            Some(KEY_A),
            None,
            &[],
        )
        .await;
    assert_eq!(c.status, 202, "{:?}", c.json());
    let done = api1.wait_status(KEY_A, &long, "COMPLETED", T).await;
    let took = asked.elapsed();
    assert_eq!(done["error_type"], "request_cancelled", "{done}");
    assert!(took < Duration::from_millis(2000), "cancel took {took:?}");
    w.shutdown().await;
    a2.shutdown().await;
    a1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_workers_keep_dying_fails_saying_why() {
    let root = tempfile::tempdir().unwrap();
    let s = shared(root.path());
    let a = api_node(root.path(), "api", &s).await;
    let api = Api::new(&a.public_url);
    let media = media_server().await;
    let id = api.submit(KEY_A, &input(&media, 2)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Two workers take it and die (no heartbeat, no outcome): their leases run out.
    for ghost in ["ghost-1", "ghost-2"] {
        let job = a
            .state
            .store
            .claim(ghost, Duration::from_millis(300))
            .await
            .unwrap()
            .expect("the job is claimable again once the lease ran out");
        assert_eq!(job.id, id);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let w = worker_node(root.path(), "worker", &s, &a.public_url, 1, |c| {
        c.max_attempts = 2
    })
    .await;
    let done = api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    assert_eq!(done["error_type"], "worker_lost", "{done}");
    let r = api.result(KEY_A, &id).await;
    assert_eq!(r.status, 500);
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("started 2 times"), "{detail}");
    w.shutdown().await;
    a.shutdown().await;
}

/// A TCP proxy to PostgreSQL that can be cut (every connection dropped, new ones refused) and
/// restored: the store going away under a worker.
struct Outage {
    port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Outage {
    async fn start(upstream: &str) -> Outage {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (c, cs, up) = (cut.clone(), conns.clone(), upstream.to_string());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = l.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the store is away
                }
                let up = up.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&up).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                cs.lock().unwrap().push(h.abort_handle());
            }
        });
        Outage { port, cut, conns }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_back_off_and_resume_when_the_store_goes_away() {
    let root = tempfile::tempdir().unwrap();
    let s = shared(root.path());
    let StoreUrl::Postgres(url) = &s.0 else {
        unreachable!()
    };
    // The worker reaches the same database through the proxy.
    let (base, db) = url.rsplit_once('/').unwrap();
    let host = base.rsplit_once('@').map_or(base, |(_, h)| h);
    let host = host.trim_start_matches("postgres://");
    let outage = Outage::start(host).await;
    let via = StoreUrl::Postgres(format!(
        "{}127.0.0.1:{}/{db}",
        base.strip_suffix(host).unwrap(),
        outage.port
    ));
    let a = api_node(root.path(), "api", &s).await;
    let api = Api::new(&a.public_url);
    let w = worker_node(root.path(), "worker", &s, &a.public_url, 300, |c| {
        c.store_url = Some(via.clone());
    })
    .await;
    let media = media_server().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = api.submit(KEY_A, &input(&media, 4)).await.json();
        ids.push(r["request_id"].as_str().unwrap().to_string());
    }
    api.wait_status(KEY_A, &ids[0], "IN_PROGRESS", T).await;
    // The store goes away for 4 s under the running job, then comes back.
    outage.cut();
    tokio::time::sleep(Duration::from_secs(4)).await;
    outage.restore();
    for id in &ids {
        let st = api
            .wait_status(KEY_A, id, "COMPLETED", Duration::from_secs(60))
            .await;
        assert!(st["error"].is_null(), "{id}: {st}");
        let r: Value = api.result(KEY_A, id).await.json();
        assert_eq!(r["seed"], 7, "{r}");
    }
    // The job that was running kept its one run: its outcome waited for the store instead of
    // being lost (which would have re-run it once its lease ran out).
    let logs = a.state.store.logs(&ids[0]).await.unwrap();
    assert!(
        !logs.iter().any(|l| l.message.starts_with("restarted")),
        "{:?}",
        logs.iter().map(|l| &l.message).collect::<Vec<_>>()
    );
    w.shutdown().await;
    a.shutdown().await;
}
