//! Uploads: signed single and multipart, CDN tokens, truncated uploads.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

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
