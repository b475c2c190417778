//! The attack run's findings in the server's own rows (issue "Hardening the server"): what the
//! attack did, then the right answer. Connection-level and key-format rows live beside the code
//! that answers them.

mod common;

use common::*;
use serde_json::{json, Value};

/// The stored `input` column of a job, read from the data directory's database.
async fn stored_input(dir: &std::path::Path, id: &str) -> String {
    use sqlx::Row;
    let pool = db(dir).await;
    let row = sqlx::query("SELECT input FROM job_inputs WHERE job_id = ?")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    row.get("input")
}

/// Row 3: the job row keeps the validated input only: unknown fields dropped, data URIs moved
/// to storage at submit; status on such a job reads no input at all.
#[tokio::test]
async fn job_row_keeps_the_validated_input_only() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    let junk = "j".repeat(2 << 20);
    let body = json!({"prompt": "p", "num_inference_steps": 1, "unknown_field": junk,
        "image_url": format!("data:image/png;base64,{}", base64_of(&png_bytes())),
        "video_url": format!("data:video/mp4;base64,{}", base64_of(&mp4_bytes()))});
    let sub = api.submit(KEY_A, &body).await;
    assert_eq!(sub.status, 200, "{}", String::from_utf8_lossy(&sub.body));
    let id = sub.json()["request_id"].as_str().unwrap().to_string();
    let stored = stored_input(dir.path(), &id).await;
    assert!(
        stored.len() < 2_000,
        "stored input is {} bytes",
        stored.len()
    );
    let v: Value = serde_json::from_str(&stored).unwrap();
    assert!(v.get("unknown_field").is_none());
    assert_eq!(v["num_inference_steps"], 1);
    assert_eq!(
        v["guidance_scale"],
        scail_core::schema::defaults::GUIDANCE_SCALE
    );
    for f in ["image_url", "video_url"] {
        let u = v[f].as_str().unwrap();
        assert!(
            u.starts_with(&format!("{}/files/", srv.public_url)),
            "{f}: {u}"
        );
    }
    // The job runs from the stored files.
    let s = api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    assert!(s.get("error").is_none(), "{s}");
    srv.shutdown().await;
}

/// Row 3 (at submit): a data URI that is not what its field needs is refused at once.
#[tokio::test]
async fn a_bad_data_uri_is_refused_at_submit() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    let body = json!({"prompt": "p", "image_url": format!("data:image/png;base64,{}", base64_of(b"<html>hi</html>")),
        "video_url": format!("data:video/mp4;base64,{}", base64_of(&mp4_bytes()))});
    let r = api.submit(KEY_A, &body).await;
    assert_eq!(r.status, 422);
    let v = r.json();
    assert_eq!(v["detail"][0]["loc"], json!(["body", "image_url"]));
    assert!(r.header("x-fal-error-type").is_some());
    srv.shutdown().await;
}

/// Row 5: an upload declared as HTML (or SVG, JavaScript) is never rendered on the API origin.
#[tokio::test]
async fn active_uploads_are_served_as_sandboxed_attachments() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    for (ct, body) in [
        ("text/html", &b"<script>alert(1)</script>"[..]),
        ("image/svg+xml", &b"<svg onload=alert(1)></svg>"[..]),
        ("application/javascript", &b"alert(1)"[..]),
    ] {
        let up = api
            .cdn_upload(
                KEY_A,
                body.to_vec(),
                &[("content-type", ct), ("x-fal-file-name", "x")],
            )
            .await;
        assert_eq!(up.status, 200);
        let url = up.json()["access_url"].as_str().unwrap().to_string();
        let got = api.send("GET", &url, None, None, &[]).await;
        assert_eq!(got.status, 200);
        let cd = got.header("content-disposition").unwrap();
        assert!(cd.starts_with("attachment"), "{ct}: {cd}");
        assert!(got
            .header("content-security-policy")
            .unwrap()
            .contains("sandbox"));
        assert_eq!(
            got.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
    }
    // A video stays inline (players need it), still with nosniff.
    let up = api
        .cdn_upload(KEY_A, mp4_bytes(), &[("content-type", "video/mp4")])
        .await;
    let url = up.json()["access_url"].as_str().unwrap().to_string();
    let got = api.send("GET", &url, None, None, &[]).await;
    assert!(got
        .header("content-disposition")
        .unwrap()
        .starts_with("inline"));
    assert_eq!(
        got.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    // And every other response carries nosniff too.
    for path in ["/health", "/openapi.json", "/nope"] {
        let r = api.send("GET", path, None, None, &[]).await;
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
    }
    srv.shutdown().await;
}

/// Row 9: every error body is JSON (a 413 from the body limit, an unknown route, a wrong
/// method); `Range: bytes=0-<huge>` is a 206 to the end; a part listed twice is refused; a
/// 422 does not echo a huge value back.
#[tokio::test]
async fn errors_are_json_ranges_follow_rfc_9110_and_parts_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_request_bytes = 64 << 10;
    let srv = start_with(cfg, 1).await;
    let api = Api::new(&srv.public_url);
    let big = vec![b'x'; 200 << 10];
    let r = api
        .send(
            "POST",
            "/queue/fal-ai/scail-2",
            Some(KEY_A),
            Some(big),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error_type"], "request_too_large");
    let r = api.send("GET", "/no/such/route", None, None, &[]).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["detail"].is_string());
    let r = api.send("DELETE", "/health", None, None, &[]).await;
    assert_eq!(r.status, 405);
    assert!(r.json()["detail"].is_string());

    let up = api
        .cdn_upload(KEY_A, mp4_bytes(), &[("content-type", "video/mp4")])
        .await;
    let file = up.json();
    let url = file["access_url"].as_str().unwrap().to_string();
    let len = file["file_size"].as_u64().unwrap();
    let r = api
        .send(
            "GET",
            &url,
            None,
            None,
            &[("range", "bytes=0-99999999999999999999999")],
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.len() as u64, len);
    assert_eq!(
        r.header("content-range").unwrap(),
        format!("bytes 0-{}/{len}", len - 1)
    );
    let r = api
        .send(
            "GET",
            &url,
            None,
            None,
            &[("range", &format!("bytes={len}-"))],
        )
        .await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range").unwrap(), format!("bytes */{len}"));
    assert!(r.json()["detail"].is_string());

    // Multipart: part 1 listed twice.
    let init = api
        .send(
            "POST",
            "/rest/storage/upload/initiate-multipart",
            Some(KEY_A),
            Some(
                json!({"content_type": "video/mp4", "file_name": "v.mp4"})
                    .to_string()
                    .into_bytes(),
            ),
            &[],
        )
        .await
        .json();
    let upload = init["upload_url"].as_str().unwrap().to_string();
    let (base, query) = upload.split_once('?').unwrap();
    let p = api
        .send(
            "PUT",
            &format!("{base}/1?{query}"),
            None,
            Some(mp4_bytes()),
            &[],
        )
        .await;
    let etag = p.json()["etag"].clone();
    let parts =
        json!({"parts": [{"partNumber": 1, "etag": etag}, {"partNumber": 1, "etag": etag}]});
    let r = api
        .send(
            "POST",
            &format!("{base}/complete?{query}"),
            None,
            Some(parts.to_string().into_bytes()),
            &[],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("listed twice"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("files"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !leftovers
            .iter()
            .any(|n| n.to_string_lossy().ends_with(".assembling")),
        "{leftovers:?}"
    );

    let r = api
        .submit(KEY_A, &json!({"prompt": "p", "image_url": "x".repeat(30_000), "video_url": "https://e/v.mp4"}))
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.len() < 2_000, "a 422 of {} bytes", r.body.len());
    srv.shutdown().await;
}

/// Row 4: large bodies queue for a permit instead of all being held at once, and every one of a
/// burst is still answered.
#[tokio::test]
async fn a_burst_of_large_bodies_is_served_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    let pad = "p".repeat(3 << 20);
    let body = json!({"prompt": "p", "padding": pad, "num_inference_steps": 1,
        "image_url": format!("data:image/png;base64,{}", base64_of(&png_bytes())),
        "video_url": format!("data:video/mp4;base64,{}", base64_of(&mp4_bytes()))});
    let subs = (0..6).map(|_| {
        let api = api.clone();
        let body = body.clone();
        async move { api.submit(KEY_A, &body).await.status }
    });
    let statuses = futures_util::future::join_all(subs).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    srv.shutdown().await;
}

/// Row 8: job errors and logs never show the server's paths; the input is named by its field.
#[tokio::test]
async fn job_errors_name_fields_not_server_paths() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    let media = media_server().await;
    let mut body = input(&media, 1);
    body["prompt"] = json!("fail naming the input");
    let id = api.submit(KEY_A, &body).await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = api.wait_status(KEY_A, &id, "COMPLETED", T).await;
    let r = api.result(KEY_A, &id).await;
    assert_eq!(r.status, 422);
    let text = format!("{s}{}", String::from_utf8_lossy(&r.body));
    let root = dir.path().display().to_string();
    assert!(!text.contains(&root), "a server path leaked: {text}");
    assert!(!text.contains("/work/"), "{text}");
    assert!(text.contains("video_url"), "{text}");
    srv.shutdown().await;
}

/// Row 3, for databases an older server wrote: inputs kept in the status row move to their own
/// table at start (status calls never read them again), and the job still runs from them.
#[tokio::test]
async fn inputs_in_old_status_rows_move_out_at_start() {
    use scail_server::store::{NewJob, Store};
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("scail.db");
    let input = json!({"prompt": "p", "image_url": "https://e.com/a.png", "video_url": "https://e.com/b.mp4",
        "num_inference_steps": 2, "padding": "z".repeat(1 << 20)});
    let store = Store::open(&db_file).await.unwrap();
    store
        .insert_job(&NewJob {
            id: "old",
            owner: "alice",
            endpoint: "fal-ai/scail-2",
            input: &input,
            priority: 0,
            deadline: None,
            webhook_url: None,
            retain_s: None,
        })
        .await
        .unwrap();
    drop(store);
    // As an older server left it: the input in the status row, no row in job_inputs.
    let pool = db(dir.path()).await;
    sqlx::query("UPDATE jobs SET input = (SELECT input FROM job_inputs WHERE job_id = 'old')")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM job_inputs")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = Store::open(&db_file).await.unwrap();
    assert_eq!(store.job("old").await.unwrap().unwrap().input, input);
    let pool = db(dir.path()).await;
    let left: String = sqlx::query_scalar("SELECT input FROM jobs WHERE id = 'old'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, "");
}
