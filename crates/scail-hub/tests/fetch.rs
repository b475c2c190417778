//! `weights fetch` against a local HTTP server that serves files in the hub's URL layout
//! (tree API + `resolve/{revision}/{path}` with Range support).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use scail_hub::{fetch, git_blob_id, FetchError, FetchOptions};
use sha2::Digest;

struct Repo {
    /// path -> (content served, stored in LFS)
    files: HashMap<String, (Vec<u8>, bool)>,
    /// path -> content the listing's checksum is computed from (differs = corrupted serving)
    listed: HashMap<String, Vec<u8>>,
}

/// Starts a server for `repo` at `owner/name` and returns its base URL and request log.
fn serve(repo: Repo) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            log2.lock().unwrap().push(format!("{target} {range:?}"));
            let (status, body, extra) = if target.starts_with("/api/models/owner/name/tree/main") {
                let list: Vec<_> = repo
                    .files
                    .iter()
                    .map(|(p, (_, lfs))| {
                        let listed = &repo.listed[p];
                        let mut e = serde_json::json!({"type": "file", "path": p, "size": listed.len(), "oid": git_blob_id(listed)});
                        if *lfs {
                            let sha = sha2::Sha256::digest(listed).iter().map(|b| format!("{b:02x}")).collect::<String>();
                            e["lfs"] = serde_json::json!({"oid": sha, "size": listed.len(), "pointerSize": 134});
                        }
                        e
                    })
                    .chain([serde_json::json!({"type": "directory", "path": "model", "oid": "x", "size": 0})])
                    .collect();
                ("200 OK", serde_json::to_vec(&list).unwrap(), String::new())
            } else if let Some(p) = target.strip_prefix("/owner/name/resolve/main/") {
                match repo.files.get(p) {
                    Some((c, _)) => match range {
                        Some(n) if n < c.len() => (
                            "206 Partial Content",
                            c[n..].to_vec(),
                            format!("Content-Range: bytes {n}-{}/{}\r\n", c.len() - 1, c.len()),
                        ),
                        _ => ("200 OK", c.clone(), String::new()),
                    },
                    None => ("404 Not Found", b"missing".to_vec(), String::new()),
                }
            } else {
                ("404 Not Found", b"missing".to_vec(), String::new())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    (url, log)
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(seed as u32) as u8)
        .collect()
}

fn repo() -> Repo {
    let mut files = HashMap::new();
    files.insert("model/latest".to_string(), (b"1\n".to_vec(), false));
    files.insert(
        "model/1/fsdp2_rank_0000_checkpoint.pt".to_string(),
        (bytes(300_000, 1), true),
    );
    files.insert("Wan2.1_VAE.pth".to_string(), (bytes(200_000, 2), true));
    files.insert(
        "umt5-xxl/models_t5_umt5-xxl-enc-bf16.pth".to_string(),
        (bytes(50_000, 3), true),
    );
    files.insert(
        "umt5-xxl/tokenizer.json".to_string(),
        (b"{\"version\": \"1.0\"}".to_vec(), false),
    );
    files.insert(
        "models_clip_open-clip-xlm-roberta-large-vit-huge-14-onlyvisual.pth".to_string(),
        (bytes(70_000, 4), true),
    );
    files.insert(
        "model/relighting-lora.pt".to_string(),
        (bytes(10_000, 5), true),
    );
    let listed = files
        .iter()
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect();
    Repo { files, listed }
}

fn opts(url: &str, dest: PathBuf) -> FetchOptions {
    FetchOptions {
        endpoint: url.to_string(),
        revision: "main".into(),
        include: scail_model::weights::fetch_include(),
        token: None,
        progress: None,
        ..FetchOptions::from_env("owner/name", dest)
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scail-fetch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn fetches_verifies_resumes_and_skips() {
    let r = repo();
    let contents: HashMap<String, Vec<u8>> = r
        .files
        .iter()
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect();
    let (url, log) = serve(r);
    let dest = tmp("ok");
    // A previous run stopped 120000 bytes into the VAE.
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(
        dest.join("Wan2.1_VAE.pth.incomplete"),
        &contents["Wan2.1_VAE.pth"][..120_000],
    )
    .unwrap();

    let rep = rt().block_on(fetch(&opts(&url, dest.clone()))).unwrap();
    assert_eq!(rep.downloaded.len(), 6, "{rep:?}");
    assert_eq!(rep.resumed_bytes, 120_000);
    for (p, c) in &contents {
        let f = dest.join(p);
        if p.contains("lora") {
            assert!(!f.exists(), "LoRAs are not fetched by default");
        } else {
            assert_eq!(&std::fs::read(&f).unwrap(), c, "{p}");
            assert!(!PathBuf::from(format!("{}.incomplete", f.display())).exists());
        }
    }
    let reqs = log.lock().unwrap().clone();
    assert!(
        reqs.contains(&"/owner/name/resolve/main/Wan2.1_VAE.pth Some(120000)".to_string()),
        "{reqs:?}"
    );
    assert!(!reqs.iter().any(|r| r.contains("lora")), "{reqs:?}");

    // A second run finds everything verified and downloads nothing.
    log.lock().unwrap().clear();
    let rep = rt().block_on(fetch(&opts(&url, dest.clone()))).unwrap();
    assert_eq!((rep.downloaded.len(), rep.skipped.len()), (0, 6));
    assert!(!log.lock().unwrap().iter().any(|r| r.contains("/resolve/")));
    std::fs::remove_dir_all(&dest).unwrap();
}

#[test]
fn corrupted_download_is_rejected() {
    let mut r = repo();
    // The server sends a flipped byte in the VAE; the listing has the true checksum.
    r.files.get_mut("Wan2.1_VAE.pth").unwrap().0[1234] ^= 0xff;
    let (url, _) = serve(r);
    let dest = tmp("bad");
    let mut o = opts(&url, dest.clone());
    o.include = vec!["Wan2.1_VAE.pth".into()];
    match rt().block_on(fetch(&o)) {
        Err(FetchError::Checksum { path, .. }) => assert_eq!(path, "Wan2.1_VAE.pth"),
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert!(!dest.join("Wan2.1_VAE.pth").exists());
    assert!(!dest.join("Wan2.1_VAE.pth.incomplete").exists());
    std::fs::remove_dir_all(&dest).unwrap();
}
