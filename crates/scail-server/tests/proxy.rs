//! The proxy mode and the meta routes.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn proxy_mode_and_meta_routes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;
    let r = api
        .send(
            "POST",
            "/proxy",
            Some(KEY_A),
            Some(input(&media, 1).to_string().into_bytes()),
            &[
                ("x-fal-target-url", "https://queue.fal.run/fal-ai/scail-2"),
                ("content-type", "application/json"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["request_id"].as_str().unwrap().to_string();
    let s = api
        .send(
            "GET",
            "/proxy",
            Some(KEY_A),
            None,
            &[(
                "x-fal-target-url",
                &format!("https://queue.fal.run/fal-ai/scail-2/requests/{id}/status?logs=1"),
            )],
        )
        .await;
    assert_eq!(s.status, 200);
    assert_eq!(s.json()["request_id"], id);
    let bad = api
        .send(
            "GET",
            "/proxy",
            Some(KEY_A),
            None,
            &[("x-fal-target-url", "https://evil.example/x")],
        )
        .await;
    assert_eq!(bad.status, 400);
    let none = api.send("GET", "/proxy", Some(KEY_A), None, &[]).await;
    assert_eq!(none.status, 400);
    let oa = api
        .send("GET", "/openapi.json", None, None, &[])
        .await
        .json();
    assert_eq!(
        oa["components"]["schemas"]["ScailInput"]["properties"]["num_inference_steps"]["default"],
        40
    );
    assert_eq!(
        oa["components"]["schemas"]["ScailInput"]["required"],
        json!(["prompt", "image_url", "video_url"])
    );
    let h = api.send("GET", "/health", None, None, &[]).await.json();
    assert_eq!(h["status"], "ok");
    srv.shutdown().await;
}
