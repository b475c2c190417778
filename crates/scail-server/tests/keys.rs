//! API keys over HTTP: the reported bypass (`SCAIL_API_KEYS='c2VjcmV0a2V5MTIz=='`, then
//! `Authorization: Key =` was accepted and the secret went out as the webhook user id), keys with
//! `=`, `:`, `+`, `/`, and a data directory whose keys file an older version generated.

mod common;

use std::time::Duration;

use common::*;

const SECRET: &str = "c2VjcmV0a2V5MTIz==";

async fn hook_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: axum::http::HeaderMap| {
            let tx = tx.clone();
            async move {
                let user = h
                    .get("x-fal-webhook-user-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let _ = tx.send(user);
                axum::http::StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/hook"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reported_bypass_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.api_keys = vec![SECRET.into(), "alice@@a+b/c=:d==".into()];
    let srv = start_with(cfg, 1).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;
    let body = || Some(input(&media, 1).to_string().into_bytes());
    let ct = [("content-type", "application/json")];

    for wrong in ["=", "==", "c2VjcmV0a2V5MTIz", "a+b/c", "alice@@a+b/c=:d=="] {
        let r = api
            .send("POST", "/queue/fal-ai/scail-2", Some(wrong), body(), &ct)
            .await;
        assert_eq!(r.status, 401, "Key {wrong}");
    }

    let (hook, mut rx) = hook_receiver().await;
    let path = format!(
        "/queue/fal-ai/scail-2?fal_webhook={}",
        hook.replace(':', "%3A").replace('/', "%2F")
    );
    let r = api.send("POST", &path, Some(SECRET), body(), &ct).await;
    assert_eq!(r.status, 200, "the real key is accepted");
    let id = r.json()["request_id"].as_str().unwrap().to_string();
    let user = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("webhook arrives")
        .unwrap();
    assert!(user.starts_with("key-"), "{user}");
    assert!(
        !user.contains("c2Vj") && !SECRET.contains(&user[4..]),
        "{user}"
    );
    let owner = srv.state.store.job(&id).await.unwrap().unwrap().owner;
    assert_eq!(owner, user, "the stored owner is the hash name too");

    // A key with `=`, `:`, `+`, `/` and an explicit owner.
    let r = api
        .send(
            "POST",
            "/queue/fal-ai/scail-2",
            Some("a+b/c=:d=="),
            body(),
            &ct,
        )
        .await;
    assert_eq!(r.status, 200);
    let id = r.json()["request_id"].as_str().unwrap().to_string();
    assert_eq!(
        srv.state.store.job(&id).await.unwrap().unwrap().owner,
        "alice"
    );
    // Owners are separate: the bare key cannot see alice's request.
    assert_eq!(api.result(SECRET, &id).await.status, 404);
    srv.shutdown().await;
}

#[tokio::test]
async fn an_old_generated_keys_file_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let key = format!("scail_{}", "ab12".repeat(12));
    std::fs::write(
        dir.path().join("keys"),
        format!(
            "# scail API keys: one `owner=key` a line. Clients send `Authorization: Key <key>`.\n\
             local={key}\n"
        ),
    )
    .unwrap();
    let mut cfg = config(dir.path());
    cfg.api_keys.clear();
    let srv = start_with(cfg, 1).await;
    assert!(srv.generated_key.is_none());
    let api = Api::new(&srv.public_url);
    let r = api
        .send(
            "GET",
            "/queue/fal-ai/scail-2/requests/none/status",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_ne!(r.status, 401, "the old generated key is still accepted");
    let r = api
        .send(
            "GET",
            "/queue/fal-ai/scail-2/requests/none/status",
            Some("x"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 401);
    let text = std::fs::read_to_string(dir.path().join("keys")).unwrap();
    assert!(text.contains(&format!("local@@{key}")), "{text}");
    srv.shutdown().await;
}
