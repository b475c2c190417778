//! The queue host: keys and owners, validation, cancel in every state, sync run, SSE, priority and timeouts.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn auth_and_owners() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;
    let none = api
        .send(
            "POST",
            "/queue/fal-ai/scail-2",
            None,
            Some(b"{}".to_vec()),
            &[],
        )
        .await;
    assert_eq!(none.status, 401);
    let v = none.json();
    assert!(v["detail"].is_string() && v["message"].is_string());
    let wrong = api.submit("nope", &input(&media, 1)).await;
    assert_eq!(wrong.status, 401);

    let id = api.submit(KEY_A, &input(&media, 1)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    // Bob cannot see, fetch or cancel Alice's request.
    let s = api
        .send(
            "GET",
            &format!("/queue/fal-ai/scail-2/requests/{id}/status"),
            Some(KEY_B),
            None,
            &[],
        )
        .await;
    assert_eq!(s.status, 404);
    assert_eq!(api.result(KEY_B, &id).await.status, 404);
    let c = api
        .send(
            "PUT",
            &format!("/queue/fal-ai/scail-2/requests/{id}/cancel"),
            Some(KEY_B),
            None,
            &[],
        )
        .await;
    assert_eq!(c.status, 404);
    assert_eq!(c.json()["status"], "NOT_FOUND");
    // Unknown endpoint.
    let r = api
        .send(
            "POST",
            "/queue/fal-ai/other-model",
            Some(KEY_A),
            Some(b"{}".to_vec()),
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
    srv.shutdown().await;
}

#[tokio::test]
async fn validation_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"image_url": "https://a/b.png", "video_url": "https://a/b.mp4"}),
            "prompt",
            "value_error.missing",
        ),
        (
            json!({"prompt": "p", "image_url": "https://a/b.png", "video_url": "https://a/b.mp4", "num_inference_steps": 0}),
            "num_inference_steps",
            "value_error.number.not_ge",
        ),
        (
            json!({"prompt": "p", "image_url": "https://a/b.png", "video_url": "https://a/b.mp4", "guidance_scale": 99}),
            "guidance_scale",
            "value_error.number.not_le",
        ),
        (
            json!({"prompt": "p", "image_url": "https://a/b.png", "video_url": "https://a/b.mp4", "shift": -1}),
            "shift",
            "value_error.number.not_ge",
        ),
        (
            json!({"prompt": "p", "image_url": "https://a/b.png", "video_url": "https://a/b.mp4", "seed": -5}),
            "seed",
            "value_error.number.not_ge",
        ),
        (
            json!({"prompt": "p", "image_url": "https://a/b.png", "video_url": "https://a/b.mp4", "resolution": "4k"}),
            "resolution",
            "type_error.enum",
        ),
        (
            json!({"prompt": "p", "image_url": "b.png", "video_url": "https://a/b.mp4"}),
            "image_url",
            "value_error.url.scheme",
        ),
        (
            json!({"prompt": "p", "image_url": "https://a/b.png", "video_url": "data:video/mp4;base64,***"}),
            "video_url",
            "value_error.url.data",
        ),
        (
            json!({"prompt": 3, "image_url": "https://a/b.png", "video_url": "https://a/b.mp4"}),
            "prompt",
            "type_error.str",
        ),
    ];
    for (body, field, kind) in cases {
        let r = api.submit(KEY_A, &body).await;
        assert_eq!(r.status, 422, "{body}");
        assert_eq!(
            r.header("x-fal-error-type").as_deref(),
            Some("validation_error")
        );
        let d = &r.json()["detail"][0];
        assert_eq!(d["loc"], json!(["body", field]), "{body}");
        assert_eq!(d["type"], kind, "{body}");
    }
    let r = api
        .send(
            "POST",
            "/queue/fal-ai/scail-2",
            Some(KEY_A),
            Some(b"{not json".to_vec()),
            &[],
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["type"], "value_error.jsondecode");
    let r = api
        .send(
            "POST",
            "/queue/fal-ai/scail-2?fal_webhook=notaurl",
            Some(KEY_A),
            Some(input("https://x.example", 1).to_string().into_bytes()),
            &[],
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["detail"][0]["loc"],
        json!(["query", "fal_webhook"])
    );
    // The server keeps serving after all of that.
    assert_eq!(
        api.send("GET", "/health", None, None, &[]).await.status,
        200
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn cancel_in_all_four_states() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 50).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;
    let cancel = |id: String| {
        let api = api.clone();
        async move {
            api.send(
                "PUT",
                &format!("/queue/fal-ai/scail-2/requests/{id}/cancel"),
                Some(KEY_A),
                None,
                &[],
            )
            .await
        }
    };
    // Running: a long job, cancelled once in progress, stops at the next step.
    let running = api.submit(KEY_A, &input(&media, 100)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Queued: behind it.
    let queued = api.submit(KEY_A, &input(&media, 1)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = api.wait_status(KEY_A, &running, "IN_PROGRESS", T).await;
    assert_eq!(s["status"], "IN_PROGRESS");
    let s = api.status(KEY_A, &queued).await;
    assert_eq!(s["status"], "IN_QUEUE");
    assert_eq!(s["queue_position"], 0);

    let r = cancel(queued.clone()).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["status"], "CANCELLATION_REQUESTED");
    let r = cancel(running.clone()).await;
    assert_eq!(r.status, 202);
    let t0 = std::time::Instant::now();
    let done = api.wait_status(KEY_A, &running, "COMPLETED", T).await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "stopped at a step boundary, not after 100 steps"
    );
    assert_eq!(done["error_type"], "request_cancelled");
    let q = api.status(KEY_A, &queued).await;
    assert_eq!(q["status"], "COMPLETED");
    assert_eq!(q["error_type"], "request_cancelled");
    // The queued job never ran: no generator log line.
    assert!(
        !q["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"].as_str().unwrap().contains("test generator")),
        "{q}"
    );
    let res = api.result(KEY_A, &queued).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["error_type"], "request_cancelled");
    // Finished: ALREADY_COMPLETED. Unknown: NOT_FOUND.
    let r = cancel(running.clone()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["status"], "ALREADY_COMPLETED");
    let r = cancel("00000000-0000-0000-0000-000000000000".into()).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["status"], "NOT_FOUND");
    srv.shutdown().await;
}

#[tokio::test]
async fn sync_run_sse_stream_priority_and_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 30).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;
    // Sync run returns the result body directly.
    let r = api
        .send(
            "POST",
            "/run/fal-ai/scail-2",
            Some(KEY_A),
            Some(input(&media, 2).to_string().into_bytes()),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["video"]["content_type"], "video/mp4");

    // SSE: events until COMPLETED, then the stream closes.
    let id = api.submit(KEY_A, &input(&media, 5)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = tokio::time::timeout(
        T,
        api.send(
            "GET",
            &format!("/queue/fal-ai/scail-2/requests/{id}/status/stream?logs=1"),
            Some(KEY_A),
            None,
            &[],
        ),
    )
    .await
    .expect("stream closes");
    assert!(s
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let text = String::from_utf8(s.body).unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    assert!(events.len() >= 2, "{text}");
    assert_eq!(events.last().unwrap()["status"], "COMPLETED");

    // Priority: a low-priority job submitted first runs after a normal one submitted later.
    let blocker = api.submit(KEY_A, &input(&media, 20)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_status(KEY_A, &blocker, "IN_PROGRESS", T).await;
    let low = api
        .send(
            "POST",
            "/queue/fal-ai/scail-2",
            Some(KEY_A),
            Some(input(&media, 1).to_string().into_bytes()),
            &[("x-fal-queue-priority", "low")],
        )
        .await
        .json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let normal = api
        .send(
            "POST",
            "/queue/fal-ai/scail-2",
            Some(KEY_A),
            Some(input(&media, 1).to_string().into_bytes()),
            &[
                ("x-fal-queue-priority", "normal"),
                ("x-fal-request-timeout", "30.0"),
            ],
        )
        .await
        .json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(api.status(KEY_A, &normal).await["queue_position"], 0);
    assert_eq!(api.status(KEY_A, &low).await["queue_position"], 1);
    // Timeout: a job that cannot start within 0.2 s ends with a 504 the clients do not retry.
    let late = api
        .send(
            "POST",
            "/queue/fal-ai/scail-2",
            Some(KEY_A),
            Some(input(&media, 1).to_string().into_bytes()),
            &[("x-fal-request-timeout", "0.2")],
        )
        .await
        .json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = api.wait_status(KEY_A, &late, "COMPLETED", T).await;
    assert_eq!(s["error_type"], "request_timeout");
    let r = api.result(KEY_A, &late).await;
    assert_eq!(r.status, 504);
    assert_eq!(
        r.header("x-fal-request-timeout-type").as_deref(),
        Some("user")
    );
    let bad = api
        .send(
            "POST",
            "/queue/fal-ai/scail-2",
            Some(KEY_A),
            Some(input(&media, 1).to_string().into_bytes()),
            &[("x-fal-request-timeout", "soon")],
        )
        .await;
    assert_eq!(bad.status, 400);
    api.wait_status(KEY_A, &low, "COMPLETED", T).await;
    api.wait_status(KEY_A, &normal, "COMPLETED", T).await;
    srv.shutdown().await;
}
