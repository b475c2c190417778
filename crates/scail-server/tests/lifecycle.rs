//! Jobs from submit to result: status, logs, files, failures, restarts and graceful shutdown.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn job_lifecycle_status_logs_result_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 20).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;

    let r = api.submit(KEY_A, &input(&media, 10)).await;
    assert_eq!(r.status, 200);
    let sub = r.json();
    let id = sub["request_id"].as_str().unwrap().to_string();
    assert_eq!(r.header("x-fal-request-id").as_deref(), Some(id.as_str()));
    assert_eq!(sub["status"], "IN_QUEUE");
    assert!(sub["queue_position"].is_i64());
    assert_eq!(
        sub["status_url"],
        format!(
            "{}/queue/fal-ai/scail-2/requests/{id}/status",
            srv.public_url
        )
    );
    assert_eq!(
        sub["response_url"],
        format!("{}/queue/fal-ai/scail-2/requests/{id}", srv.public_url)
    );
    assert_eq!(
        sub["cancel_url"],
        format!(
            "{}/queue/fal-ai/scail-2/requests/{id}/cancel",
            srv.public_url
        )
    );

    let running = api.wait_status(KEY_A, &id, "IN_PROGRESS", T).await;
    if running["status"] == "IN_PROGRESS" {
        assert!(running["logs"].is_array());
        // Not finished: the result is refused.
        let early = api.result(KEY_A, &id).await;
        assert!(early.status == 400 || early.status == 200);
    }
    let done = api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    assert_eq!(done["status"], "COMPLETED");
    assert!(done["metrics"]["inference_time"].as_f64().unwrap() > 0.0);
    assert!(done.get("error").is_none(), "{done}");
    let logs = done["logs"].as_array().unwrap();
    for l in logs {
        assert_eq!(l["source"], "USER");
        assert!(l["timestamp"].as_str().unwrap().contains('T'));
        assert!(["INFO", "WARN", "ERROR", "DEBUG"].contains(&l["level"].as_str().unwrap()));
    }
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .unwrap()
            .starts_with("sampling: 10/10")),
        "{logs:?}"
    );
    assert!(logs
        .iter()
        .any(|l| l["message"].as_str().unwrap().contains("ETA")));

    // Without logs=1 the logs are null.
    let r = api
        .send(
            "GET",
            &format!("/queue/fal-ai/scail-2/requests/{id}/status"),
            Some(KEY_A),
            None,
            &[],
        )
        .await;
    assert!(r.json()["logs"].is_null());
    // Python's spelling of the flag.
    let r = api
        .send(
            "GET",
            &format!("/queue/fal-ai/scail-2/requests/{id}/status?logs=true"),
            Some(KEY_A),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert!(r.json()["logs"].is_array());

    let res = api.result(KEY_A, &id).await;
    assert_eq!(res.status, 200);
    let out = res.json();
    assert_eq!(out["seed"], 7);
    assert_eq!(out["video"]["content_type"], "video/mp4");
    assert!(out.get("preprocessing_video").is_none());
    let url = out["video"]["url"].as_str().unwrap();
    // The file is served without Authorization, byte-exact, with ranges.
    let f = api.send("GET", url, None, None, &[]).await;
    assert_eq!(f.status, 200);
    assert_eq!(f.header("content-type").as_deref(), Some("video/mp4"));
    assert_eq!(
        f.body.len() as u64,
        out["video"]["file_size"].as_u64().unwrap()
    );
    assert_eq!(&f.body[4..8], b"ftyp");
    let part = api
        .send("GET", url, None, None, &[("range", "bytes=4-7")])
        .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, b"ftyp");
    assert_eq!(
        part.header("content-range").unwrap(),
        format!("bytes 4-7/{}", f.body.len())
    );
    let bad = api
        .send(
            "GET",
            url,
            None,
            None,
            &[("range", &format!("bytes={}-", f.body.len() + 10))],
        )
        .await;
    assert_eq!(bad.status, 416);
    let head = api.send("HEAD", url, None, None, &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length").unwrap(),
        f.body.len().to_string()
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn generator_failure_and_no_weights_error() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;
    let mut i = input(&media, 1);
    i["prompt"] = json!("please fail");
    let id = api.submit(KEY_A, &i).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    assert_eq!(s["error_type"], "generation_error");
    let r = api.result(KEY_A, &id).await;
    assert_eq!(r.status, 500);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("asked to fail"));
    srv.shutdown().await;

    // A server without weights: every job ends with the message that says how to get them.
    let dir = tempfile::tempdir().unwrap();
    let srv = scail_server::start(
        config(dir.path()),
        std::sync::Arc::new(scail_core::generator::NoWeightsGenerator),
    )
    .await
    .unwrap();
    let api = Api::new(&srv.public_url);
    let id = api.submit(KEY_A, &input(&media, 1)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    assert_eq!(s["error_type"], "model_not_configured");
    assert!(s["error"].as_str().unwrap().contains("scail weights fetch"));
    let r = api.result(KEY_A, &id).await;
    assert_eq!(r.status, 503);
    srv.shutdown().await;
}

#[tokio::test]
async fn restart_keeps_everything_and_requeues_running_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let media = media_server().await;
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    let id = api.submit(KEY_A, &input(&media, 1)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    let out = api.result(KEY_A, &id).await.json();
    let port = srv.addr.port();
    srv.shutdown().await;
    // Same data dir and port: results, logs and files are all still served.
    let mut cfg = config(dir.path());
    cfg.port = port;
    let srv = start_with(cfg, 1).await;
    let api = Api::new(&srv.public_url);
    assert_eq!(api.result(KEY_A, &id).await.json(), out);
    let s = api.status(KEY_A, &id).await;
    assert!(s["logs"].as_array().unwrap().len() >= 3);
    let f = api
        .send(
            "GET",
            out["video"]["url"].as_str().unwrap(),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(f.status, 200);
    srv.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_releases_the_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let media = media_server().await;
    let mut cfg = config(dir.path());
    cfg.shutdown_grace = Duration::from_millis(300);
    let srv = start_with(cfg, 50).await;
    let port = srv.addr.port();
    let api = Api::new(&srv.public_url);
    let id = api.submit(KEY_A, &input(&media, 100)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_status(KEY_A, &id, "IN_PROGRESS", T).await;
    let t0 = std::time::Instant::now();
    srv.shutdown().await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "shutdown does not wait for 100 steps"
    );
    // Back in the queue, not failed: a restart runs it to completion.
    let mut cfg = config(dir.path());
    cfg.port = port;
    let srv = start_with(cfg, 1).await;
    let s = api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    assert!(s.get("error").is_none(), "{s}");
    assert!(s["logs"].as_array().unwrap().iter().any(|l| l["message"]
        .as_str()
        .unwrap()
        .contains("released by a shutting-down worker")));
    srv.shutdown().await;
}
