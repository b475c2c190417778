//! `scail serve`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use scail_core::generator::{Generator, NoWeightsGenerator};
use scail_server::storage::StorageUrl;
use scail_server::store::StoreUrl;
use scail_server::{AllowNet, ServerConfig};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to bind. The default serves this machine only; use 0.0.0.0 to serve a network.
    #[arg(long, default_value = "127.0.0.1", env = "SCAIL_HOST")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8188, env = "SCAIL_PORT")]
    port: u16,
    /// Where the job database, stored files, keys and secrets live (with --store and
    /// --storage: only the node's scratch files).
    #[arg(long, default_value = "scail-data", env = "SCAIL_DATA_DIR")]
    data_dir: PathBuf,
    /// The job store: postgres://user@host/db (shared by a fleet's API nodes and workers; the
    /// database is created when missing) or sqlite://path. Default: DATA_DIR/scail.db.
    #[arg(long, value_parser = StoreUrl::parse, env = "SCAIL_STORE")]
    store: Option<StoreUrl>,
    /// Where files' bytes live: s3://bucket/prefix (endpoint, region and credentials from the
    /// standard AWS_* variables, e.g. AWS_ENDPOINT_URL, AWS_ALLOW_HTTP) or file://path.
    /// Default: DATA_DIR.
    #[arg(long, value_parser = StorageUrl::parse, env = "SCAIL_STORAGE")]
    storage: Option<StorageUrl>,
    /// Run the HTTP API only, no worker (jobs run on `scail worker` processes sharing --store
    /// and --storage). No model is loaded.
    #[arg(long, env = "SCAIL_NO_WORKER")]
    no_worker: bool,
    /// Runs of one job that may end with their worker dying (killed, out of memory) before the
    /// job fails with an error saying so.
    #[arg(long, default_value_t = 3, env = "SCAIL_MAX_ATTEMPTS")]
    max_attempts: i64,
    /// Base URL clients reach this server at, used in every URL it returns
    /// (default http://HOST:PORT). Set it when behind a proxy or on another host name.
    #[arg(long, env = "SCAIL_PUBLIC_URL")]
    public_url: Option<String>,
    /// Folder with the SCAIL-2 weights (as `scail weights fetch` lays them out). Without it,
    /// the server runs and every job ends with an error saying how to get weights.
    #[arg(long, env = "SCAIL_WEIGHTS")]
    weights: Option<PathBuf>,
    /// Demo mode: no real weights needed. Tiny random weights are made once in
    /// DATA_DIR/demo-weights, so the whole flow runs offline; every video is noise, and says so.
    /// Unless --lora-dir is given, requests may name its small random LoRA
    /// (`demo-lora.safetensors`) in `loras`.
    #[arg(long, conflicts_with = "weights", env = "SCAIL_DEMO")]
    demo: bool,
    /// Folder with the Stage A models (default: WEIGHTS/stagea when it exists).
    #[arg(long, env = "SCAIL_STAGEA_DIR")]
    stagea_dir: Option<PathBuf>,
    /// Where the model runs: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu", env = "SCAIL_DEVICE")]
    device: String,
    /// Matmul weight precision: auto (as the DiT is stored: f32 for the official file, bf16
    /// for bf16 or fp8_scaled ones), f32 or bf16 (bf16 halves memory; norms, modulation and the
    /// residual stream stay f32). On CPU f32 is faster.
    #[arg(long, default_value = "auto", env = "SCAIL_PRECISION")]
    precision: String,
    /// Where the networks' blocks live between uses: none (all resident), blocks (in host
    /// memory, copied to the GPU at use) or stream (read from the checkpoint at use, about one
    /// block in memory at a time: runs the 14B model in under 10 GiB).
    #[arg(long, default_value = "none", env = "SCAIL_OFFLOAD")]
    offload: scail_model::offload::Offload,
    /// Host memory jobs may use, e.g. 10GiB (default: the cgroup limit or the available
    /// memory). A job estimated to need more is refused before it starts.
    #[arg(long, value_parser = scail_model::memory::parse_bytes, env = "SCAIL_HOST_MEMORY")]
    host_memory: Option<u64>,
    /// Render every job at WxH (multiples of 32) instead of the request's resolution: for
    /// experiments and smoke tests with small random weights.
    #[arg(long, value_parser = crate::generate::parse_size)]
    size: Option<(u32, u32)>,
    /// API keys, comma-separated. A bare entry is one whole key, never split (`=`, `:`, `+`, `/`
    /// are part of it) and is its own owner; `owner@@key` names the owner. Without keys here or
    /// in --keys-file, a key is generated at first start, stored in DATA_DIR/keys and printed.
    #[arg(
        long,
        alias = "api-key",
        env = "SCAIL_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,
    /// File of API keys, one entry a line in the same form (`key` or `owner@@key`); `#` comments.
    #[arg(long, env = "SCAIL_KEYS_FILE")]
    keys_file: Option<PathBuf>,
    /// Jobs run at once (each holds a model's worth of memory).
    #[arg(long, default_value_t = 1, env = "SCAIL_WORKERS")]
    workers: usize,
    /// Largest accepted upload, in MiB.
    #[arg(long, default_value_t = 2048)]
    max_upload_mib: u64,
    /// Largest input file fetched from a URL or data URI, in MiB.
    #[arg(long, default_value_t = 1024)]
    max_input_mib: u64,
    /// Largest JSON request body (data URIs travel inside it), in MiB.
    #[arg(long, default_value_t = 100)]
    max_request_mib: usize,
    /// Seconds allowed for downloading one input URL.
    #[arg(long, default_value_t = 120.0)]
    fetch_timeout_s: f64,
    /// Private/loopback address ranges input URLs and webhooks may reach (CIDR, repeatable or
    /// comma-separated), e.g. 127.0.0.1 or 10.0.0.0/8. By default only public addresses.
    #[arg(long, env = "SCAIL_ALLOW_FETCH_FROM", value_delimiter = ',')]
    allow_fetch_from: Vec<AllowNet>,
    /// First webhook retry delay in seconds; it doubles with each of the 10 attempts.
    #[arg(long, default_value_t = 7.0)]
    webhook_retry_base_s: f64,
    /// Seconds a running job's lease lasts without a heartbeat before another worker may take it.
    #[arg(long, default_value_t = 30.0)]
    lease_s: f64,
    /// On SIGTERM/Ctrl-C, seconds to let the running job finish before it is stopped at its next
    /// step and put back in the queue.
    #[arg(long, default_value_t = 30.0)]
    shutdown_grace_s: f64,
    /// Open connections at most; more are closed at once (lowered to fit `ulimit -n`).
    #[arg(long, default_value_t = 4096, env = "SCAIL_MAX_CONNECTIONS")]
    max_connections: usize,
    /// Open connections at most from one client address (an IPv6 /64 counts as one).
    #[arg(long, default_value_t = 256, env = "SCAIL_MAX_CONNECTIONS_PER_PEER")]
    max_connections_per_peer: usize,
    /// Seconds a client has to send a request's headers; also closes idle keep-alive
    /// connections.
    #[arg(long, default_value_t = 20.0)]
    header_read_timeout_s: f64,
    /// Hours finished jobs, their outputs and uploaded files are kept; a request may ask for
    /// less with x-fal-object-lifecycle-preference, never more.
    #[arg(long, default_value_t = 7.0 * 24.0, env = "SCAIL_RETENTION_HOURS")]
    retention_hours: f64,
    /// Unfinished (queued or running) jobs one key may have at once.
    #[arg(long, default_value_t = 200)]
    max_queued_per_key: usize,
    /// GiB of stored files one key may keep; uploads beyond it are refused.
    #[arg(long, default_value_t = 50.0)]
    max_storage_per_key_gib: f64,
    /// Folder of LoRA files (.safetensors, .pt) that requests may name in `loras`, by file name
    /// only; /openapi.json lists them. E.g. the folder `scail weights fetch --with-loras` fills.
    #[arg(long, env = "SCAIL_LORA_DIR")]
    lora_dir: Option<PathBuf>,
}

/// What runs in this process: `scail serve` (API, and a worker unless --no-worker) or
/// `scail worker` (a worker, no API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Serve,
    Worker,
}

pub fn run(args: ServeArgs, role: Role) -> anyhow::Result<()> {
    if role == Role::Worker {
        anyhow::ensure!(
            !args.no_worker,
            "--no-worker: `scail worker` is the worker; for an API node use `scail serve --no-worker`"
        );
    }
    anyhow::ensure!(args.max_attempts >= 1, "--max-attempts must be at least 1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(args, role))
}

/// The generator, and what `/health` says about the weights.
fn generator_for(a: &ServeArgs) -> anyhow::Result<(Arc<dyn Generator>, String)> {
    if a.no_worker {
        let note = "none on this node: an API node (--no-worker); jobs run on `scail worker`";
        return Ok((Arc::new(NoWeightsGenerator), note.into()));
    }
    if a.demo {
        let dir = crate::demo::ensure_weights(&a.data_dir)?;
        // Tiny weights render quickly at a small size; --size still overrides.
        let size = a.size.or(Some((128, 96)));
        let g = load_pipeline(a, &dir, size)?;
        let g: Arc<dyn Generator> = Arc::new(crate::demo::DemoGenerator(g));
        return Ok((g, crate::demo::DEMO_NOTE.to_string()));
    }
    let Some(dir) = &a.weights else {
        return Ok((
            Arc::new(NoWeightsGenerator),
            "none: every job ends with an error until weights are configured (`scail weights fetch`, or --demo)".into(),
        ));
    };
    let g = load_pipeline(a, dir, a.size)?;
    Ok((g, format!("loaded from {}", dir.display())))
}

fn load_pipeline(
    a: &ServeArgs,
    dir: &std::path::Path,
    size: Option<(u32, u32)>,
) -> anyhow::Result<Arc<dyn Generator>> {
    anyhow::ensure!(dir.is_dir(), "--weights {}: no such folder", dir.display());
    let opts = scail_pipeline::models::LoadOptions {
        dtype: crate::device::precision(&a.precision, dir)?,
        device: crate::device::parse_device(&a.device)?,
        // The server keeps every network loaded between jobs.
        keep_text_encoder: true,
        loras: Vec::new(),
        offload: a.offload,
        host_memory: a.host_memory,
        dit_after_text: false,
    };
    eprintln!("loading weights from {} …", dir.display());
    let g = scail_pipeline::generator::PipelineGenerator::load(dir, opts, a.stagea_dir.clone())
        .with_context(|| format!("loading the weights in {}", dir.display()))?;
    Ok(Arc::new(g.with_size(size)))
}

async fn serve(mut a: ServeArgs, role: Role) -> anyhow::Result<()> {
    if let Some(d) = &a.lora_dir {
        anyhow::ensure!(d.is_dir(), "--lora-dir {}: no such folder", d.display());
    }
    let (generator, weights_note) = generator_for(&a)?;
    if a.demo && a.lora_dir.is_none() {
        // The demo LoRA, so `loras` can be tried offline too.
        a.lora_dir = Some(crate::demo::lora_dir(&crate::demo::weights_dir(
            &a.data_dir,
        )));
    }
    let secs = |s: f64, name: &str| -> anyhow::Result<Duration> {
        anyhow::ensure!(
            s.is_finite() && s > 0.0,
            "{name} must be a positive number of seconds"
        );
        Ok(Duration::from_secs_f64(s))
    };
    let config = ServerConfig {
        host: a.host,
        port: a.port,
        data_dir: a.data_dir.clone(),
        store_url: a.store.clone(),
        storage_url: a.storage.clone(),
        http: role == Role::Serve,
        max_attempts: a.max_attempts,
        public_url: a.public_url.clone(),
        api_keys: a.api_keys,
        keys_file: a.keys_file,
        workers: if a.no_worker { 0 } else { a.workers.max(1) },
        max_upload_bytes: a.max_upload_mib << 20,
        max_input_bytes: a.max_input_mib << 20,
        max_request_bytes: a.max_request_mib << 20,
        fetch_timeout: secs(a.fetch_timeout_s, "--fetch-timeout-s")?,
        allow_fetch_from: a.allow_fetch_from,
        webhook_retry_base: secs(a.webhook_retry_base_s, "--webhook-retry-base-s")?,
        lease: secs(a.lease_s, "--lease-s")?,
        shutdown_grace: secs(a.shutdown_grace_s, "--shutdown-grace-s")?,
        weights_note,
        retention: secs(a.retention_hours * 3600.0, "--retention-hours")?,
        max_queued_per_key: a.max_queued_per_key.max(1),
        max_storage_per_key: (a.max_storage_per_key_gib.max(0.0) * (1u64 << 30) as f64) as u64,
        connections: scail_server::listen::ConnLimits {
            max_connections: a.max_connections.max(1),
            max_connections_per_peer: a.max_connections_per_peer.max(1),
            header_read_timeout: secs(a.header_read_timeout_s, "--header-read-timeout-s")?,
        },
        lora_dir: a.lora_dir.clone(),
        ..ServerConfig::default()
    };
    let server = scail_server::start(config, generator)
        .await
        .context(match role {
            Role::Serve => "starting the server",
            Role::Worker => "starting the worker",
        })?;
    match role {
        Role::Serve => eprintln!(
            "scail {} serving fal-ai/scail-2 at {}{}",
            env!("CARGO_PKG_VERSION"),
            server.public_url,
            if a.no_worker {
                " (API node, no worker)"
            } else {
                ""
            }
        ),
        Role::Worker => eprintln!(
            "scail {} worker: {} job(s) at once; output URLs under {}",
            env!("CARGO_PKG_VERSION"),
            a.workers.max(1),
            server.public_url
        ),
    }
    eprintln!("  data directory: {}", a.data_dir.display());
    if let Some(s) = &a.store {
        eprintln!("  job store: {}", s.redacted());
    }
    if let Some(s) = &a.storage {
        eprintln!("  storage: {s:?}");
    }
    if role == Role::Worker && a.public_url.is_none() {
        eprintln!(
            "  warning: no --public-url: output URLs name {}; give the URL clients reach the API at",
            server.public_url
        );
    }
    if let Some(d) = &a.lora_dir {
        let names = scail_server::loras::available(Some(d));
        eprintln!("  LoRA folder: {} ({} files)", d.display(), names.len());
    }
    if let (Some(k), Role::Serve) = (&server.generated_key, role) {
        match &a.store {
            None => eprintln!(
                "  generated an API key (stored in {}):",
                a.data_dir.join("keys").display()
            ),
            Some(_) => eprintln!("  generated an API key (kept in the job store for every node):"),
        }
        eprintln!("    FAL_KEY={k}");
    }
    if a.demo {
        eprintln!("  {}", crate::demo::DEMO_NOTE);
    } else if a.weights.is_none() {
        eprintln!("  no --weights: jobs will end with an error until weights are configured");
        eprintln!(
            "  (`scail weights fetch --dest DIR` for the real model, or --demo to try the flow)"
        );
    }
    // Machine-readable line for scripts and tests that start the server on port 0.
    match role {
        Role::Serve => {
            // The bound address first: behind a proxy the public URL names the proxy.
            println!("SCAIL_BOUND {}", server.addr);
            println!("SCAIL_LISTENING {}", server.public_url);
        }
        Role::Worker => println!("SCAIL_WORKER_READY"),
    }
    wait_for_signal().await;
    eprintln!("shutting down: no new jobs; the running job finishes or is requeued");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
