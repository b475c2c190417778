//! SIGKILL at the worst moments: during a running job and during an upload. After a restart on
//! the same data directory nothing is lost: the job runs again and completes, the queued job
//! runs, the half upload is not served and its URL still works.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;

/// Not a test: the server process the crash test kills. It runs only when the crash test starts
/// this test binary with SCAIL_CHILD_DATA set.
#[test]
#[ignore]
fn child_server() {
    let Ok(data) = std::env::var("SCAIL_CHILD_DATA") else {
        return;
    };
    let port: u16 = std::env::var("SCAIL_CHILD_PORT").unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let mut cfg = config(std::path::Path::new(&data));
        cfg.port = port;
        cfg.lease = Duration::from_secs(60);
        let srv = start_with(cfg, 50).await;
        println!("SCAIL_LISTENING {}", srv.public_url);
        std::future::pending::<()>().await;
    });
}

fn spawn_child(data: &std::path::Path, port: u16) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_server", "--nocapture"])
        .env("SCAIL_CHILD_DATA", data)
        .env("SCAIL_CHILD_PORT", port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("child prints its URL").unwrap();
        if let Some(u) = line.strip_prefix("SCAIL_LISTENING ") {
            break u.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn kill9(child: &mut Child) {
    let ok = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_job_and_an_upload_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let media = media_server().await;
    let (mut child, url) = spawn_child(dir.path(), port);
    let api = Api::new(&url);
    let t = Duration::from_secs(60);

    // A finished job whose result and file must survive.
    let done = api.submit(KEY_A, &input(&media, 1)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_status(KEY_A, &done, "COMPLETED", t).await;
    let done_result = api.result(KEY_A, &done).await.json();
    // A long job, running when the process dies, and one queued behind it.
    let running = api.submit(KEY_A, &input(&media, 60)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Its webhook goes to a port nobody listens on yet: deliveries fail and are retried.
    let hook_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook = format!("http%3A%2F%2F127.0.0.1%3A{hook_port}%2Fhook");
    let queued = api
        .send(
            "POST",
            &format!("/queue/fal-ai/scail-2?fal_webhook={hook}"),
            Some(KEY_A),
            Some(input(&media, 1).to_string().into_bytes()),
            &[],
        )
        .await
        .json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = api.wait_status(KEY_A, &running, "IN_PROGRESS", t).await;
    assert_eq!(s["status"], "IN_PROGRESS");
    // An upload in flight: half the bytes sent, the rest never comes.
    let init = api
        .send(
            "POST",
            "/rest/storage/upload/initiate",
            Some(KEY_A),
            Some(
                serde_json::json!({"content_type": "video/mp4", "file_name": "d.mp4"})
                    .to_string()
                    .into_bytes(),
            ),
            &[],
        )
        .await
        .json();
    let upload_url = init["upload_url"].as_str().unwrap().to_string();
    let file_url = init["file_url"].as_str().unwrap().to_string();
    let body = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(
        vec![1u8; 64 << 10],
    ))])
    .chain(futures_util::stream::pending());
    let http = api.http.clone();
    let up = upload_url.clone();
    let inflight = tokio::spawn(async move {
        http.put(up)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    kill9(&mut child);
    assert!(
        inflight.await.unwrap().is_err(),
        "the upload died with the server"
    );

    let (mut child, url2) = spawn_child(dir.path(), port);
    assert_eq!(url, url2);
    // Finished work is still there.
    assert_eq!(api.result(KEY_A, &done).await.json(), done_result);
    let f = api
        .send(
            "GET",
            done_result["video"]["url"].as_str().unwrap(),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(f.status, 200);
    // The half upload is not served; its URL still takes the whole file.
    assert_eq!(
        api.send("GET", &file_url, None, None, &[]).await.status,
        404
    );
    let mp4 = mp4_bytes();
    assert_eq!(
        api.send("PUT", &upload_url, None, Some(mp4.clone()), &[])
            .await
            .status,
        200
    );
    assert_eq!(api.send("GET", &file_url, None, None, &[]).await.body, mp4);
    // The interrupted job runs again and completes; the queued one runs too.
    let s = api.wait_status(KEY_A, &running, "COMPLETED", t).await;
    assert!(s.get("error").is_none(), "{s}");
    let logs = s["logs"].as_array().unwrap();
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .unwrap()
            .contains("restarted (attempt 2)")),
        "{logs:?}"
    );
    let s = api.wait_status(KEY_A, &queued, "COMPLETED", t).await;
    assert!(s.get("error").is_none(), "{s}");
    assert_eq!(api.result(KEY_A, &running).await.status, 200);
    // The webhook receiver comes up: the delivery recorded before or after the restart arrives.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |b: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(b.to_vec());
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind(("127.0.0.1", hook_port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let body = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("webhook delivered after restart")
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["request_id"], queued);
    assert_eq!(v["status"], "OK");
    kill9(&mut child);
}
