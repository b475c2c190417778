//! Fetched inputs: specific errors for bad URLs and files, data URIs and uploaded files.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn bad_inputs_are_specific_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.fetch_timeout = Duration::from_millis(1500);
    cfg.max_input_bytes = 64 << 10;
    let srv = start_with(cfg, 1).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;
    let run = |field: &'static str, url: String| {
        let api = api.clone();
        let media = media.clone();
        async move {
            let mut i = input(&media, 1);
            i[field] = json!(url);
            // A data URI is checked when submitted; a URL when the job fetches it.
            let sub = api.submit(KEY_A, &i).await;
            if sub.status == 422 {
                return (sub.status, sub.json());
            }
            let id = sub.json()["request_id"].as_str().unwrap().to_string();
            api.wait_status(KEY_A, &id, "COMPLETED", T).await;
            let r = api.result(KEY_A, &id).await;
            (r.status, r.json())
        }
    };
    // (field, URL, what the error must say: a message fragment, or `type:` an error_type)
    let big = base64_of(&vec![7u8; 100 << 10]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("video_url", format!("{media}/text.mp4"), "text file"),
        ("video_url", format!("{media}/ref.png"), "expected a video"),
        ("video_url", format!("{media}/slow.mp4"), "longer than"),
        ("video_url", format!("{media}/missing.mp4"), "HTTP 404"),
        (
            "video_url",
            format!("{media}/redirect-private"),
            "type:forbidden_address",
        ),
        (
            "video_url",
            "http://10.1.2.3/video.mp4".into(),
            "type:forbidden_address",
        ),
        (
            "image_url",
            "http://169.254.169.254/latest/meta-data".into(),
            "type:forbidden_address",
        ),
        // Over the size limit, by data URI.
        (
            "video_url",
            format!("data:video/mp4;base64,{big}"),
            "type:file_too_large",
        ),
    ];
    for (field, url, want) in cases {
        let (st, body) = run(field, url.clone()).await;
        assert_eq!(st, 422, "{url}: {body}");
        assert_eq!(
            body["detail"][0]["loc"],
            json!(["body", field]),
            "{url}: {body}"
        );
        match want.strip_prefix("type:") {
            Some(t) => assert_eq!(body["error_type"], t, "{url}: {body}"),
            None => assert!(
                body["detail"][0]["msg"].as_str().unwrap().contains(want),
                "{url}: {body}"
            ),
        }
    }
    srv.shutdown().await;

    // Without an allow-list, loopback is refused too.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.allow_fetch_from.clear();
    let srv = start_with(cfg, 1).await;
    let api = Api::new(&srv.public_url);
    let id = api.submit(KEY_A, &input(&media, 1)).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    let r = api.result(KEY_A, &id).await;
    assert_eq!(r.json()["error_type"], "forbidden_address");
    srv.shutdown().await;
}

#[tokio::test]
async fn data_uri_and_uploaded_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.allow_fetch_from.clear(); // own-file URLs must not need loopback fetches
    let srv = start_with(cfg, 1).await;
    let api = Api::new(&srv.public_url);
    // Upload the video via the JS flow, pass the image as a data URI.
    let init = api
        .send(
            "POST",
            "/rest/storage/upload/initiate?storage_type=fal-cdn-v3",
            Some(KEY_A),
            Some(
                json!({"content_type": "video/mp4", "file_name": "drive.mp4"})
                    .to_string()
                    .into_bytes(),
            ),
            &[],
        )
        .await;
    assert_eq!(init.status, 200);
    let init = init.json();
    let put = api
        .send(
            "PUT",
            init["upload_url"].as_str().unwrap(),
            None,
            Some(mp4_bytes()),
            &[("content-type", "video/mp4")],
        )
        .await;
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    let i = json!({"prompt": "p", "video_url": init["file_url"], "num_inference_steps": 1,
        "image_url": format!("data:image/png;base64,{}", base64_of(&png_bytes()))});
    let id = api.submit(KEY_A, &i).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    assert!(s.get("error").is_none(), "{s}");
    // No seed given: a random one is returned.
    let out = api.result(KEY_A, &id).await.json();
    assert!(out["seed"].is_u64());
    srv.shutdown().await;
}
