//! A fleet on real parts: 2 API nodes (`scail serve --no-worker`) behind a load balancer and 3
//! workers (`scail worker`, tiny random weights) on one PostgreSQL database and one S3 server
//! (SeaweedFS). The official JS client submits 30 jobs; a random worker is SIGKILLed every few
//! seconds and restarted, and one API node is killed mid-run. Every job must complete exactly
//! once with a downloadable video. Then both official clients' conformance suites run against
//! the fleet.

#[allow(dead_code)]
#[path = "../../scail-server/tests/common/backends.rs"]
mod backends;
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const KEY: &str = "k-test";
const KEY_OTHER: &str = "k-other";

/// A node process and how to start it again.
struct Node {
    child: Child,
    args: Vec<String>,
}

impl Node {
    fn start(args: Vec<String>, ready: &str) -> (Node, String) {
        let mut child = scail()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("{args:?} exited before {ready}"))
                .unwrap();
            if line.starts_with(ready) {
                break line;
            }
        };
        // Keep draining stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        (Node { child, args }, line)
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP load balancer: each connection goes to the next upstream that accepts it, so a dead
/// API node is skipped (what a fleet's balancer does with health checks).
fn balancer(upstreams: Arc<Mutex<Vec<String>>>) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut next = 0usize;
        for conn in l.incoming() {
            let Ok(client) = conn else { continue };
            let ups = upstreams.lock().unwrap().clone();
            let upstream = (0..ups.len()).find_map(|i| {
                let host = ups[(next + i) % ups.len()].trim_start_matches("http://");
                std::net::TcpStream::connect(host).ok()
            });
            next += 1;
            let Some(up) = upstream else { continue };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), up.try_clone().unwrap()),
                (up, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    url
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn thirty_jobs_survive_killed_workers_and_a_killed_api_node() {
    if std::env::var("SCAIL_SKIP_CONFORMANCE").is_ok_and(|v| v == "1") {
        eprintln!("SCAIL_SKIP_CONFORMANCE=1: skipped");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let weights = root.path().join("weights");
    ok(scail()
        .args(["weights", "init-random", "--config", "tiny"])
        .arg(&weights));
    let store = match backends::pg_store(root.path()) {
        scail_server::store::StoreUrl::Postgres(u) => u,
        other => panic!("{other:?}"),
    };
    let storage = match backends::s3_storage(root.path()) {
        scail_server::storage::StorageUrl::S3 { bucket, prefix } => {
            format!("s3://{bucket}/{prefix}")
        }
        other => panic!("{other:?}"),
    };
    // The balancer's URL is the fleet's public URL: every node names files under it.
    let upstreams = Arc::new(Mutex::new(Vec::new()));
    let public = balancer(upstreams.clone());
    let dir = |name: &str| -> String {
        let p: PathBuf = root.path().join(name);
        p.to_str().unwrap().to_string()
    };
    let common_args = |data: String| {
        vec![
            s("--store"),
            store.clone(),
            s("--storage"),
            storage.clone(),
            s("--data-dir"),
            data,
            s("--public-url"),
            public.clone(),
            s("--allow-fetch-from"),
            s("127.0.0.1"),
            s("--lease-s"),
            s("2"),
        ]
    };
    let mut apis = Vec::new();
    for i in 0..2 {
        let mut args = vec![s("serve"), s("--no-worker"), s("--port"), s("0")];
        args.extend(common_args(dir(&format!("api{i}"))));
        args.extend([s("--api-keys"), format!("alice@@{KEY},bob@@{KEY_OTHER}")]);
        // The node's own address (SCAIL_LISTENING names the public URL, the balancer).
        let (node, line) = Node::start(args, "SCAIL_BOUND ");
        let addr = line.trim_start_matches("SCAIL_BOUND ").to_string();
        upstreams.lock().unwrap().push(format!("http://{addr}"));
        apis.push(node);
    }
    let worker_args = |i: usize| {
        let mut args = vec![
            s("worker"),
            s("--weights"),
            weights.to_str().unwrap().to_string(),
            s("--size"),
            s("64x64"),
            s("--max-attempts"),
            s("20"),
        ];
        args.extend(common_args(dir(&format!("worker{i}"))));
        args
    };
    let mut workers: Vec<Node> = (0..3)
        .map(|i| Node::start(worker_args(i), "SCAIL_WORKER_READY").0)
        .collect();

    // Short, small inputs: a job takes a few seconds, so most finish between kills (each
    // worker is killed every ~9 s on average) and the kills still land on running jobs.
    let clips = root.path().join("media");
    std::fs::create_dir_all(&clips).unwrap();
    let ffmpeg = |input: &str, out: &str, extra: &[&str]| {
        ok(Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(media_dir().join(input))
            .args(extra)
            .arg(clips.join(out)));
    };
    ffmpeg(
        "dance_woman_16fps.mp4",
        "drive.mp4",
        &["-frames:v", "9", "-vf", "scale=128:-2", "-an"],
    );
    ffmpeg(
        "ref_photo_woman_shore.jpg",
        "ref.jpg",
        &["-vf", "scale=128:-2"],
    );
    // The names the conformance suite asks for.
    ffmpeg(
        "ref_photo_woman_shore.jpg",
        "ref.png",
        &["-vf", "scale=128:-2"],
    );
    let (media, media_url) = media_server_in(&clips);
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance");
    let mut client = Command::new("node")
        .arg("model/fleet.mjs")
        .current_dir(&conf)
        .env("SCAIL_BASE", &public)
        .env("SCAIL_KEY", KEY)
        .env("SCAIL_MEDIA", &media_url)
        .env("SCAIL_JOBS", "30")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let t0 = Instant::now();
    let mut kills = 0;
    let mut api_killed = false;
    while client.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_secs(3));
        let w = rand::random_range(0..workers.len());
        workers[w].kill();
        kills += 1;
        let args = workers[w].args.clone();
        workers[w] = Node::start(args, "SCAIL_WORKER_READY").0;
        if !api_killed && t0.elapsed() > Duration::from_secs(8) {
            apis[1].kill();
            api_killed = true;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1200),
            "the fleet run took too long"
        );
    }
    let out = client.wait_with_output().unwrap();
    drop(media);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "fleet client failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(api_killed, "the run ended before an API node was killed");
    let v: serde_json::Value =
        serde_json::from_str(text.lines().rfind(|l| l.starts_with('{')).unwrap()).unwrap();
    let ids: Vec<&str> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 30);
    assert_eq!(v["results"].as_object().unwrap().len(), 30, "{v}");

    // Exactly once: each job's log has one completion; some jobs were restarted by the kills.
    let mut restarted = 0;
    for id in &ids {
        let (code, body) = http_json(
            "GET",
            &format!("{public}/queue/fal-ai/scail-2/requests/{id}/status?logs=1"),
            KEY,
            "",
        );
        assert_eq!(code, 200, "{body}");
        let st: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(st["status"], "COMPLETED");
        let lines: Vec<&str> = st["logs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["message"].as_str())
            .collect();
        let done = lines
            .iter()
            .filter(|l| l.starts_with("completed in"))
            .count();
        assert_eq!(done, 1, "{id} completed {done} times: {lines:#?}");
        if lines.iter().any(|l| l.starts_with("restarted (attempt")) {
            restarted += 1;
        }
    }
    eprintln!("{kills} worker kills; {restarted} of 30 jobs were restarted after a kill");
    assert!(
        restarted >= 1,
        "no job was interrupted: the kills proved nothing"
    );

    // The protocol conformance suite against the surviving API node, through the balancer, with
    // one worker left: its cancel test needs a job to wait in the queue behind a running one,
    // as on a one-worker server.
    for w in workers.iter_mut().skip(1) {
        w.kill();
    }
    let (media, media_url) = media_server_in(&clips);
    let python = std::env::var("SCAIL_PYTHON").unwrap_or_else(|_| "python3".into());
    for (program, args) in [
        ("node", vec!["--test", "--test-concurrency=1", "js/"]),
        (
            python.as_str(),
            vec!["-m", "pytest", "-q", "-p", "no:cacheprovider", "py/"],
        ),
    ] {
        let out = Command::new(program)
            .args(&args)
            .current_dir(&conf)
            .env("SCAIL_BASE", &public)
            .env("SCAIL_KEY", KEY)
            .env("SCAIL_KEY_OTHER", KEY_OTHER)
            .env("SCAIL_MEDIA", &media_url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} conformance against the fleet:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(media);
}
