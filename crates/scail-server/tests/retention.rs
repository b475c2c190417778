//! Retention and per-key limits: finished jobs, outputs and uploads expire (sooner when the
//! request's lifecycle header asks), leftovers of failed uploads are swept, the database gives
//! its pages back; one key cannot fill the queue or the disk.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const LIFECYCLE: &str = "x-fal-object-lifecycle-preference";

async fn freelist(dir: &std::path::Path) -> i64 {
    let pool = db(dir).await;
    sqlx::query_scalar("PRAGMA freelist_count")
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn expired_jobs_outputs_and_uploads_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.upload_url_ttl = Duration::from_secs(1);
    let srv = start_with(cfg, 1).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;
    let submit = |lifecycle: Option<&'static str>| {
        let api = api.clone();
        let input = input(&media, 1);
        async move {
            let h: Vec<(&str, &str)> = lifecycle.map(|l| (LIFECYCLE, l)).into_iter().collect();
            let r = api
                .send(
                    "POST",
                    "/queue/fal-ai/scail-2",
                    Some(KEY_A),
                    Some(input.to_string().into_bytes()),
                    &h,
                )
                .await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            r.json()["request_id"].as_str().unwrap().to_string()
        }
    };
    let short = submit(Some(r#"{"expiration_duration_seconds": 1}"#)).await;
    let kept = submit(None).await;
    for id in [&short, &kept] {
        api.wait_status(KEY_A, id, "COMPLETED", T).await;
    }
    let out = api.result(KEY_A, &short).await.json();
    let video = out["video"]["url"].as_str().unwrap().to_string();
    assert_eq!(api.send("GET", &video, None, None, &[]).await.status, 200);
    // An upload that asks for a short life, and one that is never completed.
    let up = api
        .cdn_upload(
            KEY_A,
            mp4_bytes(),
            &[
                ("content-type", "video/mp4"),
                (LIFECYCLE, r#"{"expiration_duration_seconds": 1}"#),
            ],
        )
        .await;
    let upload = up.json()["access_url"].as_str().unwrap().to_string();
    let init = api
        .send(
            "POST",
            "/rest/storage/upload/initiate-multipart",
            Some(KEY_A),
            Some(
                json!({"content_type": "video/mp4"})
                    .to_string()
                    .into_bytes(),
            ),
            &[],
        )
        .await
        .json();
    let (base, query) = init["upload_url"]
        .as_str()
        .unwrap()
        .split_once('?')
        .unwrap();
    let part = api
        .send(
            "PUT",
            &format!("{base}/1?{query}"),
            None,
            Some(mp4_bytes()),
            &[],
        )
        .await;
    assert_eq!(part.status, 200);
    let parts_in =
        |d: &std::path::Path| std::fs::read_dir(d.join("parts")).map_or(0, |r| r.count());
    let parts_before = parts_in(dir.path());
    assert!(parts_before >= 1);

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let swept = scail_server::retention::sweep_once(&srv.state)
        .await
        .unwrap();
    assert_eq!(swept.jobs, 1, "only the job that asked for 1 s");
    let gone = api
        .send(
            "GET",
            &format!("/queue/fal-ai/scail-2/requests/{short}/status"),
            Some(KEY_A),
            None,
            &[],
        )
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(api.send("GET", &video, None, None, &[]).await.status, 404);
    assert_eq!(api.send("GET", &upload, None, None, &[]).await.status, 404);
    assert_eq!(parts_in(dir.path()), 0);
    // The job kept by default is still whole.
    let s = api.status(KEY_A, &kept).await;
    assert_eq!(s["status"], "COMPLETED");
    let kept_video = api.result(KEY_A, &kept).await.json()["video"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        api.send("GET", &kept_video, None, None, &[]).await.status,
        200
    );
    assert_eq!(
        freelist(dir.path()).await,
        0,
        "freed pages returned to the file system"
    );

    let bad = api
        .send(
            "POST",
            "/queue/fal-ai/scail-2",
            Some(KEY_A),
            Some(input(&media, 1).to_string().into_bytes()),
            &[(LIFECYCLE, "soon")],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error_type"], "invalid_header");
    srv.shutdown().await;
}

#[tokio::test]
async fn one_key_cannot_fill_the_queue_or_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_queued_per_key = 2;
    cfg.max_storage_per_key = 1000;
    // No worker: the jobs stay unfinished (a worker would end them at once, their URLs
    // unreachable here, and free the key's queue).
    cfg.workers = 0;
    let srv = start_with(cfg, 2000).await;
    let api = Api::new(&srv.public_url);
    let body = json!({"prompt": "p", "num_inference_steps": 50,
        "image_url": format!("data:image/png;base64,{}", base64_of(&png_bytes())),
        "video_url": format!("data:video/mp4;base64,{}", base64_of(&mp4_bytes()))});
    // Data URIs are stored at submit, so this key's storage fills too: use bob for the queue.
    let small = json!({"prompt": "p", "num_inference_steps": 50,
        "image_url": "https://example.com/a.png", "video_url": "https://example.com/b.mp4"});
    for _ in 0..2 {
        assert_eq!(api.submit(KEY_B, &small).await.status, 200);
    }
    let r = api.submit(KEY_B, &small).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error_type"], "queue_limit_exceeded");
    // Another key is not held back by bob's queue.
    assert_eq!(api.submit(KEY_A, &body).await.status, 200);
    // Alice now stores more than her 1000 bytes: further uploads are refused.
    let r = api
        .cdn_upload(
            KEY_A,
            vec![1u8; 10],
            &[("content-type", "application/octet-stream")],
        )
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error_type"], "storage_quota_exceeded");
    srv.shutdown().await;
}
