//! Request LoRAs against the server's folder (`--lora-dir`): listed in `/openapi.json`, a name
//! the folder lacks or a path refused at submit with the field named, a known one handed to the
//! generator as its file with the request's scale, and one removed before the job runs failing
//! that job (not the server).

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn loras_come_from_the_servers_folder_only() {
    let dir = tempfile::tempdir().unwrap();
    let loras = tempfile::tempdir().unwrap();
    std::fs::write(loras.path().join("lightx2v.safetensors"), b"x").unwrap();
    std::fs::write(loras.path().join("gone.pt"), b"x").unwrap();
    let mut cfg = config(dir.path());
    cfg.lora_dir = Some(loras.path().to_path_buf());
    // 20 ms a step: the 40-step blocker below holds the worker while a file is removed.
    let srv = start_with(cfg, 20).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;

    let doc = api
        .send("GET", "/openapi.json", None, None, &[])
        .await
        .json();
    let props = &doc["components"]["schemas"]["ScailInput"]["properties"];
    assert_eq!(
        props["loras"]["items"]["properties"]["name"]["enum"],
        json!(["gone.pt", "lightx2v.safetensors"])
    );
    assert_eq!(
        props["preset"]["enum"],
        json!(["fast", "balanced", "quality"])
    );

    let with = |loras: serde_json::Value| {
        let mut i = input(&media, 2);
        i["loras"] = loras;
        i
    };
    for (loras, msg) in [
        (
            json!([{"name": "nope.safetensors"}]),
            "available: gone.pt, lightx2v.safetensors",
        ),
        (json!([{"name": "../keys.pt"}]), "not by a path"),
        (
            json!([{"name": "https://e.com/x.safetensors"}]),
            "not by a path",
        ),
    ] {
        let r = api.submit(KEY_A, &with(loras.clone())).await;
        assert_eq!(r.status, 422, "{loras}");
        let d = &r.json()["detail"][0];
        assert_eq!(d["loc"], json!(["body", "loras", "0", "name"]), "{loras}");
        assert!(d["msg"].as_str().unwrap().contains(msg), "{loras}: {d}");
    }

    // Known: the generator gets the file in the folder and the request's scale.
    let r = api
        .submit(
            KEY_A,
            &with(json!([{"name": "lightx2v.safetensors", "scale": 0.5}])),
        )
        .await;
    assert_eq!(r.status, 200);
    let id = r.json()["request_id"].as_str().unwrap().to_string();
    let st = api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    let path = loras.path().join("lightx2v.safetensors");
    let want = format!("LoRA {} at 0.5", path.display());
    let logs = st["logs"].to_string();
    assert!(logs.contains(&want), "{logs}");
    assert_eq!(api.result(KEY_A, &id).await.status, 200);

    // Removed from the folder after the submit: that job fails with a 422 naming it.
    let slow = with(json!([{"name": "gone.pt"}]));
    let blocker = api.submit(KEY_A, &input(&media, 40)).await.json();
    let r = api.submit(KEY_A, &slow).await;
    assert_eq!(r.status, 200);
    std::fs::remove_file(loras.path().join("gone.pt")).unwrap();
    let id = r.json()["request_id"].as_str().unwrap().to_string();
    api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    let res = api.result(KEY_A, &id).await;
    assert_eq!(res.status, 422, "{}", res.json());
    assert!(res.json().to_string().contains("gone.pt"));
    let b = blocker["request_id"].as_str().unwrap();
    api.wait_status(KEY_A, b, "COMPLETED", T).await;
}
