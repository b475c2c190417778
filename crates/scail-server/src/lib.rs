//! scail-server: the fal queue protocol for `fal-ai/scail-2` (spec/api.md): axum routes, API
//! keys, uploads and file serving, signed webhooks, a durable job store and the worker loop that
//! drives a [`scail_core::generator::Generator`]. One machine with no other service by default
//! (SQLite and a local folder); a fleet of API nodes and workers on PostgreSQL and S3.

pub mod auth;
pub mod datalock;
pub mod fetch;
pub mod keys;
pub mod listen;
pub mod loras;
pub mod retention;
pub mod routes;
pub mod storage;
pub mod store;
pub mod webhook;
pub mod worker;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use scail_core::generator::Generator;
use tokio::sync::{watch, Notify};

pub use fetch::AllowNet;

/// Everything `scail serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    /// The job store (`--store`); None: the SQLite file in the data directory.
    pub store_url: Option<store::StoreUrl>,
    /// Where files' bytes live (`--storage`); None: the data directory.
    pub storage_url: Option<storage::StorageUrl>,
    /// Serve the HTTP API (false for `scail worker`).
    pub http: bool,
    /// Runs of one job that may die with their worker before the job fails.
    pub max_attempts: i64,
    /// Base URL clients reach this server at (absolute URLs in responses); default
    /// `http://{host}:{port}`.
    pub public_url: Option<String>,
    /// Key entries (a bare `key`, never split, or `owner@@key`), e.g. from `SCAIL_API_KEYS`.
    pub api_keys: Vec<String>,
    pub keys_file: Option<PathBuf>,
    pub workers: usize,
    /// Largest stored upload.
    pub max_upload_bytes: u64,
    /// Largest fetched input file (URL or data URI).
    pub max_input_bytes: u64,
    /// Largest JSON request body (data URIs travel inside it).
    pub max_request_bytes: usize,
    pub fetch_timeout: Duration,
    pub allow_fetch_from: Vec<AllowNet>,
    /// First webhook retry delay; doubles with each attempt.
    pub webhook_retry_base: Duration,
    pub lease: Duration,
    /// How long a graceful shutdown waits for the running job before releasing it.
    pub shutdown_grace: Duration,
    pub upload_url_ttl: Duration,
    /// How long finished jobs, their outputs and uploads are kept (a request's
    /// `x-fal-object-lifecycle-preference` may ask for less, never more).
    pub retention: Duration,
    /// How often expired jobs and files are swept.
    pub sweep_interval: Duration,
    /// Unfinished (queued or running) jobs one key may have at once.
    pub max_queued_per_key: usize,
    /// Bytes of stored files one key may keep (uploads beyond it are refused).
    pub max_storage_per_key: u64,
    /// What `/health` says about the model weights (none, demo, loaded from …).
    pub weights_note: String,
    /// Connection caps and the header-read timeout.
    pub connections: listen::ConnLimits,
    /// The folder whose LoRA files requests may name in `loras`.
    pub lora_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8188,
            data_dir: PathBuf::from("scail-data"),
            store_url: None,
            storage_url: None,
            http: true,
            max_attempts: 3,
            public_url: None,
            api_keys: Vec::new(),
            keys_file: None,
            workers: 1,
            max_upload_bytes: 2 << 30,
            max_input_bytes: 1 << 30,
            max_request_bytes: 100 << 20,
            fetch_timeout: Duration::from_secs(120),
            allow_fetch_from: Vec::new(),
            webhook_retry_base: Duration::from_secs(7),
            lease: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            upload_url_ttl: Duration::from_secs(3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            sweep_interval: Duration::from_secs(600),
            max_queued_per_key: 200,
            max_storage_per_key: 50 << 30,
            connections: listen::ConnLimits::default(),
            weights_note: "none".into(),
            lora_dir: None,
        }
    }
}

/// Shared state of a running server.
pub struct AppState {
    pub config: ServerConfig,
    pub public_url: String,
    pub instance_id: String,
    pub store: store::Store,
    pub storage: storage::Storage,
    pub keys: auth::Keys,
    pub signer: auth::Signer,
    pub webhook_key: Arc<webhook::WebhookKey>,
    pub fetcher: fetch::Fetcher,
    pub generator: Arc<dyn Generator>,
    pub job_notify: Arc<Notify>,
    pub webhook_notify: Arc<Notify>,
    pub running: Mutex<HashMap<String, Arc<worker::RunningJob>>>,
}

/// A started server.
pub struct Server {
    pub addr: SocketAddr,
    pub public_url: String,
    /// A key generated at first start (to print), when none was configured.
    pub generated_key: Option<String>,
    pub state: Arc<AppState>,
    stop: watch::Sender<bool>,
    http: Option<tokio::task::JoinHandle<()>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    _data_lock: datalock::DataLock,
}

/// Opens the data directory, the store and the storage, requeues jobs a dead process left
/// running (embedded store only: on a shared one, leases decide), binds and starts serving.
pub async fn start(config: ServerConfig, generator: Arc<dyn Generator>) -> anyhow::Result<Server> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    // Before anything in the directory is read or changed: a second server must not touch it.
    let data_lock = datalock::DataLock::acquire(&data_dir)?;
    let listener = if config.http {
        let l = tokio::net::TcpListener::bind((config.host, config.port))
            .await
            .with_context(|| format!("binding {}:{}", config.host, config.port))?;
        Some(l)
    } else {
        None
    };
    let addr = match &listener {
        Some(l) => l.local_addr()?,
        None => SocketAddr::new(config.host, config.port),
    };
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| match addr.ip() {
            IpAddr::V6(ip) => format!("http://[{ip}]:{}", addr.port()),
            ip => format!("http://{ip}:{}", addr.port()),
        })
        .trim_end_matches('/')
        .to_string();

    let embedded = config.store_url.is_none();
    let store = match &config.store_url {
        Some(url) => store::Store::connect(url).await?,
        None => store::Store::open(&data_dir.join("scail.db"))
            .await
            .context("opening the job store")?,
    };
    let (keys, generated_key) = load_keys(&config, &store, embedded).await?;
    if embedded && config.workers > 0 {
        let requeued = store.requeue_running(None).await?;
        if !requeued.is_empty() {
            tracing::warn!(
                "requeued {} job(s) left running by a previous process",
                requeued.len()
            );
        }
    }
    let storage = match &config.storage_url {
        Some(url) => {
            let s = storage::Storage::open(url, store.clone(), public_url.clone())?;
            s.check(&format!("{url:?}")).await?;
            s
        }
        None => storage::Storage::local(&data_dir, store.clone(), public_url.clone())?,
    };
    let fetcher = fetch::Fetcher {
        max_bytes: config.max_input_bytes,
        timeout: config.fetch_timeout,
        allow: config.allow_fetch_from.clone(),
        storage: storage.clone(),
    };
    let (signer, webhook_key) = if embedded {
        (
            auth::Signer::load_or_create(&data_dir)?,
            webhook::WebhookKey::load_or_create(&data_dir)?,
        )
    } else {
        (
            auth::Signer::shared(&store).await?,
            webhook::WebhookKey::shared(&store).await?,
        )
    };
    let state = Arc::new(AppState {
        public_url: public_url.clone(),
        instance_id: auth::random_hex(4),
        signer,
        webhook_key: Arc::new(webhook_key),
        store: store.clone(),
        storage,
        keys,
        fetcher: fetcher.clone(),
        generator,
        job_notify: Arc::new(Notify::new()),
        webhook_notify: Arc::new(Notify::new()),
        running: Mutex::new(HashMap::new()),
        config,
    });

    let (stop, stop_rx) = watch::channel(false);
    let workers = (0..state.config.workers)
        .map(|i| tokio::spawn(worker::run_worker(state.clone(), i, stop_rx.clone())))
        .collect();
    let mut background = vec![tokio::spawn(wake_on_notifications(
        state.clone(),
        stop_rx.clone(),
    ))];
    let http = match listener {
        Some(listener) => {
            // Sweeping and webhook delivery are API-node work; on a shared store each
            // delivery is claimed, so several nodes never send one twice.
            background.push(tokio::spawn(retention::run_sweeper(
                state.clone(),
                stop_rx.clone(),
            )));
            background.push(tokio::spawn(webhook::run_deliveries(
                store,
                state.webhook_key.clone(),
                fetcher,
                state.webhook_notify.clone(),
                state.config.webhook_retry_base,
                stop_rx.clone(),
            )));
            let app = routes::router(state.clone());
            let mut http_stop = stop_rx.clone();
            let limits = state.config.connections;
            let grace = state.config.shutdown_grace;
            Some(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = http_stop.wait_for(|s| *s).await;
                };
                listen::serve(listener, app, limits, shutdown, grace).await;
            }))
        }
        None => None,
    };
    Ok(Server {
        addr,
        public_url,
        generated_key,
        state,
        stop,
        http,
        workers,
        background,
        _data_lock: data_lock,
    })
}

/// The configured keys, else a generated one: kept in the data directory on one machine, in
/// the store (so every node accepts it) on a shared one.
async fn load_keys(
    config: &ServerConfig,
    store: &store::Store,
    embedded: bool,
) -> anyhow::Result<(auth::Keys, Option<String>)> {
    let mut keys = auth::Keys::parse(
        "SCAIL_API_KEYS (--api-keys)",
        config.api_keys.iter().map(String::as_str),
    )?;
    if let Some(f) = &config.keys_file {
        keys.merge(
            auth::Keys::from_file(f)
                .with_context(|| format!("reading keys file {}", f.display()))?,
        )?;
    }
    if !keys.is_empty() {
        return Ok((keys, None));
    }
    if embedded {
        return auth::ensure_generated_key(&config.data_dir);
    }
    let fresh = format!("scail_{}", auth::random_hex(24));
    let key = store.shared_secret("generated_api_key", &fresh).await?;
    let keys = auth::Keys::parse(
        "the fleet's generated key",
        [format!("local@@{key}").as_str()],
    )?;
    Ok((keys, Some(key)))
}

/// Turns store notifications into local wake-ups (a fleet on PostgreSQL).
async fn wake_on_notifications(state: Arc<AppState>, stop: watch::Receiver<bool>) {
    let s = state.clone();
    state
        .store
        .listen(
            move |w| match w {
                store::Wake::NewJob => {
                    s.job_notify.notify_waiters();
                    s.job_notify.notify_one();
                }
                store::Wake::Cancel(id) => {
                    if let Some(job) = s.running.lock().unwrap().get(id) {
                        job.request_stop(worker::STOP_CANCEL);
                    }
                }
                store::Wake::Webhook => s.webhook_notify.notify_one(),
            },
            stop,
        )
        .await
}

impl Server {
    /// Graceful shutdown: stop taking jobs, let the running one finish within the grace period,
    /// otherwise stop it at its next step and put it back in the queue.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let grace = self.state.config.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        let mut workers = self.workers;
        for w in workers.iter_mut() {
            if tokio::time::timeout_at(deadline, &mut *w).await.is_err() {
                for job in self.state.running.lock().unwrap().values() {
                    job.stop
                        .store(worker::STOP_SHUTDOWN, std::sync::atomic::Ordering::Relaxed);
                }
                let _ = w.await;
            }
        }
        for b in self.background {
            b.abort();
        }
        if let Some(h) = self.http {
            let _ = h.await;
        }
    }
}
