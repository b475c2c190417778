//! Webhooks: signed, retried, delivered once.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

async fn webhook_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, Vec<u8>)>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let hits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: axum::http::HeaderMap, b: axum::body::Bytes| {
            let tx = tx.clone();
            let hits = hits.clone();
            async move {
                let _ = tx.send((h, b.to_vec()));
                // The first delivery fails, so the retry path is exercised.
                if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/hook"), rx)
}

#[tokio::test]
async fn webhook_signed_and_retried() {
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;
    let (hook, mut rx) = webhook_receiver().await;
    let r = api
        .submit_with_webhook(KEY_A, &input(&media, 1), &hook)
        .await;
    let id = r.json()["request_id"].as_str().unwrap().to_string();
    let jwks = api
        .send("GET", "/.well-known/jwks.json", None, None, &[])
        .await
        .json();
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    use base64::Engine;
    let pk: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x)
        .unwrap()
        .try_into()
        .unwrap();
    let vk = VerifyingKey::from_bytes(&pk).unwrap();
    for attempt in 0..2 {
        let (h, body) = tokio::time::timeout(T, rx.recv())
            .await
            .expect("webhook arrives")
            .unwrap();
        let g = |k: &str| h.get(k).unwrap().to_str().unwrap().to_string();
        assert_eq!(g("x-fal-webhook-request-id"), id);
        assert_eq!(g("x-fal-webhook-user-id"), "alice");
        let ts: i64 = g("x-fal-webhook-timestamp").parse().unwrap();
        assert!((chrono_now() - ts).abs() < 300);
        let msg = format!(
            "{id}\nalice\n{ts}\n{}",
            hex::encode(sha2::Sha256::digest(&body))
        );
        let sig =
            Signature::from_slice(&hex::decode(g("x-fal-webhook-signature")).unwrap()).unwrap();
        vk.verify(msg.as_bytes(), &sig)
            .expect("signature verifies against the JWKS");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "OK", "attempt {attempt}");
        assert_eq!(v["request_id"], id);
        assert_eq!(v["payload"]["seed"], 7);
    }
    // Both attempts are recorded: the 500, then the success.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let attempts = srv.state.store.webhook_attempts(&id).await.unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].1, Some(500));
    assert_eq!(attempts[1].1, Some(200));
    srv.shutdown().await;
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
