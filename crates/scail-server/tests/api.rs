//! The fal queue protocol end to end over HTTP, with the test generator.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

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

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
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

#[tokio::test]
async fn uploads_single_multipart_and_cdn() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_upload_bytes = 1 << 20;
    let srv = start_with(cfg, 1).await;
    let api = Api::new(&srv.public_url);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();

    // JS multipart: initiate-multipart, PUT parts (out of order), complete.
    let init = api
        .send(
            "POST",
            "/rest/storage/upload/initiate-multipart?storage_type=fal-cdn-v3",
            Some(KEY_A),
            Some(
                json!({"content_type": "application/octet-stream", "file_name": "big.bin"})
                    .to_string()
                    .into_bytes(),
            ),
            &[],
        )
        .await
        .json();
    let up = reqwest::Url::parse(init["upload_url"].as_str().unwrap()).unwrap();
    let part_url = |n: &str| {
        format!(
            "{}://{}{}/{n}?{}",
            up.scheme(),
            up.host_str().unwrap().to_owned() + ":" + &up.port().unwrap().to_string(),
            up.path(),
            up.query().unwrap()
        )
    };
    let chunks: Vec<&[u8]> = data.chunks(100_000).collect();
    let mut parts = vec![];
    for n in [2usize, 1, 3] {
        let r = api
            .send(
                "PUT",
                &part_url(&n.to_string()),
                None,
                Some(chunks[n - 1].to_vec()),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(v["partNumber"], n);
        parts.push(json!({"partNumber": v["partNumber"], "etag": v["etag"]}));
    }
    let r = api
        .send(
            "POST",
            &part_url("complete"),
            None,
            Some(json!({"parts": parts}).to_string().into_bytes()),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = api
        .send("GET", init["file_url"].as_str().unwrap(), None, None, &[])
        .await;
    assert_eq!(got.body, data, "byte-exact after reassembly");

    // Python v3: token, then POST to the CDN with the bearer token.
    let tok = api
        .send(
            "POST",
            "/rest/storage/auth/token?storage_type=fal-cdn-v3",
            Some(KEY_A),
            Some(b"{}".to_vec()),
            &[],
        )
        .await
        .json();
    assert_eq!(tok["token_type"], "Bearer");
    assert!(tok["expires_at"].as_str().unwrap().ends_with("+00:00"));
    let bearer = format!("Bearer {}", tok["token"].as_str().unwrap());
    let cdn = tok["base_url"].as_str().unwrap();
    let r = api
        .send(
            "POST",
            &format!("{cdn}/files/upload"),
            None,
            Some(b"hello".to_vec()),
            &[
                ("authorization", &bearer),
                ("content-type", "text/plain"),
                ("x-fal-file-name", "hi.txt"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    let acc = r.json()["access_url"].as_str().unwrap().to_string();
    let g = api.send("GET", &acc, None, None, &[]).await;
    assert_eq!(g.body, b"hello");
    assert_eq!(g.header("content-type").as_deref(), Some("text/plain"));
    // Python multipart through the CDN: ETag header per part, parts completed unordered.
    let m = api
        .send(
            "POST",
            &format!("{cdn}/files/upload/multipart"),
            None,
            None,
            &[
                ("authorization", &bearer),
                ("content-type", "application/octet-stream"),
                ("x-fal-file-name", "p.bin"),
            ],
        )
        .await
        .json();
    let acc = m["access_url"].as_str().unwrap();
    let uid = m["uploadId"].as_str().unwrap();
    let mut parts = vec![];
    for n in [3usize, 1, 2] {
        let r = api
            .send(
                "PUT",
                &format!("{acc}/multipart/{uid}/{n}"),
                None,
                Some(chunks[n - 1].to_vec()),
                &[("authorization", &bearer)],
            )
            .await;
        assert_eq!(r.status, 200);
        parts.push(json!({"partNumber": n, "etag": r.header("etag").unwrap()}));
    }
    let r = api
        .send(
            "POST",
            &format!("{acc}/multipart/{uid}/complete"),
            None,
            Some(json!({"parts": parts}).to_string().into_bytes()),
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(api.send("GET", acc, None, None, &[]).await.body, data);

    // Tampered and missing tokens, a bad bearer, an oversized upload, a reused upload URL.
    let init = api
        .send(
            "POST",
            "/rest/storage/upload/initiate",
            Some(KEY_A),
            Some(json!({"file_name": "x.bin"}).to_string().into_bytes()),
            &[],
        )
        .await
        .json();
    let url = init["upload_url"].as_str().unwrap();
    let tampered = format!("{}0", url);
    assert_eq!(
        api.send("PUT", &tampered, None, Some(b"x".to_vec()), &[])
            .await
            .status,
        403
    );
    assert_eq!(
        api.send(
            "PUT",
            url.split('?').next().unwrap(),
            None,
            Some(b"x".to_vec()),
            &[]
        )
        .await
        .status,
        403
    );
    let r = api
        .send(
            "POST",
            &format!("{cdn}/files/upload"),
            None,
            Some(b"x".to_vec()),
            &[("authorization", "Bearer forged.1.2")],
        )
        .await;
    assert_eq!(r.status, 401);
    let r = api
        .send("PUT", url, None, Some(vec![0u8; (1 << 20) + 1]), &[])
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        api.send("GET", init["file_url"].as_str().unwrap(), None, None, &[])
            .await
            .status,
        404,
        "no half file is served"
    );
    assert_eq!(
        api.send("PUT", url, None, Some(b"ok".to_vec()), &[])
            .await
            .status,
        200
    );
    assert_eq!(
        api.send("PUT", url, None, Some(b"again".to_vec()), &[])
            .await
            .status,
        400
    );
    // Unknown file ids.
    assert_eq!(
        api.send("GET", "/files/deadbeef/x.bin", None, None, &[])
            .await
            .status,
        404
    );
    assert_eq!(
        api.send("GET", "/files/../../etc/passwd", None, None, &[])
            .await
            .status,
        404
    );
    srv.shutdown().await;
}

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
    let path = format!(
        "/queue/fal-ai/scail-2?fal_webhook={}",
        hook.replace(':', "%3A").replace('/', "%2F")
    );
    let r = api
        .send(
            "POST",
            &path,
            Some(KEY_A),
            Some(input(&media, 1).to_string().into_bytes()),
            &[],
        )
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

#[tokio::test]
async fn truncated_upload_is_not_stored_and_the_url_stays_usable() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    let init = api
        .send(
            "POST",
            "/rest/storage/upload/initiate",
            Some(KEY_A),
            Some(json!({"file_name": "t.bin"}).to_string().into_bytes()),
            &[],
        )
        .await
        .json();
    let url = reqwest::Url::parse(init["upload_url"].as_str().unwrap()).unwrap();
    // Declare 1000 bytes, send 10, hang up.
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let req = format!(
        "PUT {}?{} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
        url.path(),
        url.query().unwrap()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        api.send("GET", init["file_url"].as_str().unwrap(), None, None, &[])
            .await
            .status,
        404
    );
    assert_eq!(
        api.send("PUT", url.as_str(), None, Some(b"complete".to_vec()), &[])
            .await
            .status,
        200
    );
    assert_eq!(
        api.send("GET", init["file_url"].as_str().unwrap(), None, None, &[])
            .await
            .body,
        b"complete"
    );
    srv.shutdown().await;
}
