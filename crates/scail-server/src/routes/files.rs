//! Stored files under `/files/{id}/{name}`: capability URLs served with Range support, and the
//! CDN multipart calls that live under a file's URL.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::owner::cdn_owner;
use super::{storage, St};
use crate::AppState;

/// `/files/{id}/{name}`: GET/HEAD serve the file (with Range); under it, the CDN multipart calls
/// `PUT …/multipart/{uploadId}/{n}` and `POST …/multipart/{uploadId}/complete`.
pub(super) async fn files(
    State(st): St,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file");
    match (method.clone(), segs.as_slice()) {
        (Method::GET | Method::HEAD, [id, ..]) if segs.len() <= 2 => {
            serve_file(&st, id, &headers).await
        }
        (Method::PUT, [id, _name, "multipart", upload_id, n])
        | (Method::POST, [id, _name, "multipart", upload_id, n]) => {
            let who = cdn_owner(&st, &headers)?;
            let row = storage::pending_file(&st, id).await?;
            if row.owner != who {
                return Err(not_found());
            }
            st.signer.verify("multipart", id, upload_id).map_err(|e| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "authorization_error",
                    format!("upload id rejected: {e}"),
                )
            })?;
            if method == Method::POST && *n == "complete" {
                let bytes = axum::body::to_bytes(body, 16 << 20).await.map_err(|e| {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string())
                })?;
                return storage::complete_common(&st, id, &bytes).await;
            }
            if method != Method::PUT {
                return Err(not_found());
            }
            let part = storage::part_number(n)?;
            let etag = st
                .storage
                .put_part(
                    id,
                    part,
                    body.into_data_stream(),
                    st.config.max_upload_bytes,
                )
                .await
                .map_err(storage::storage_error)?;
            let mut r = axum::Json(json!({"partNumber": part, "etag": etag})).into_response();
            r.headers_mut()
                .insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
            Ok(r)
        }
        _ => Err(not_found()),
    }
}

/// A `Range` header that no byte of the file satisfies (answered with 416).
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses a single `bytes=` range against a length: Ok(None) = whole file, Err = unsatisfiable.
pub fn parse_range(h: &str, len: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: serve the whole file, which RFC 9110 allows
    }
    let (a, b) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| Unsatisfiable)?;
        if n == 0 || len == 0 {
            return Err(Unsatisfiable);
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let s: u64 = a.parse().map_err(|_| Unsatisfiable)?;
        let e: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            // A last-byte position past the end (however large) means "to the end" (RFC 9110
            // 14.1.2); only a malformed one is refused.
            match b.parse::<u64>() {
                Ok(e) => e.min(len.saturating_sub(1)),
                Err(_) if b.bytes().all(|c| c.is_ascii_digit()) => len.saturating_sub(1),
                Err(_) => return Err(Unsatisfiable),
            }
        };
        (s, e)
    };
    if start >= len || start > end {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

/// Content types a browser renders or runs: served as attachments under a sandbox policy.
pub fn is_active_type(content_type: &str) -> bool {
    let t = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    t.is_empty()
        || t.contains("html")
        || t.contains("xml")
        || t.contains("javascript")
        || t.contains("ecmascript")
        || t == "image/svg+xml"
        || t == "application/pdf"
        || t.starts_with("text/")
        || t == "multipart/x-mixed-replace"
}

async fn serve_file(st: &AppState, id: &str, headers: &HeaderMap) -> ApiResult {
    let row = st
        .storage
        .get(id)
        .await
        .map_err(ApiError::internal)?
        .filter(|r| r.complete)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file"))?;
    let len = row.size as u64;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(h) => match parse_range(h, len) {
            Ok(r) => r,
            Err(Unsatisfiable) => {
                let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                r.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"),
                );
                return Ok(r);
            }
        },
        None => None,
    };
    let (status, start, count) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
        None => (StatusCode::OK, 0, len),
    };
    // Any node streams from the shared storage (no redirect: file URLs stay this server's, and
    // the same Range rules apply whatever the back end).
    let stream = if count == 0 {
        futures_util::stream::empty().boxed()
    } else {
        let whole = range.is_none();
        st.storage
            .read(id, (!whole).then_some((start, start + count)))
            .await
            .map_err(ApiError::internal)?
    };
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&row.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    // Uploads share this origin with the API: a type a browser would run (HTML, SVG, XML,
    // JavaScript) is served as a download inside a sandbox, never rendered inline.
    let active = is_active_type(&row.content_type);
    let disposition = if active { "attachment" } else { "inline" };
    if let Ok(v) = HeaderValue::from_str(&format!("{disposition}; filename=\"{}\"", row.name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if active {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox; default-src 'none'"),
        );
    }
    if let Some((s, e)) = range {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {s}-{e}/{len}")).expect("ascii"),
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=5-2", 100), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=1-2", 100), Ok(None));
        // A huge last position is the end of the file (RFC 9110), not an error.
        assert_eq!(
            parse_range("bytes=0-99999999999999999999999", 100),
            Ok(Some((0, 99)))
        );
        assert_eq!(parse_range("bytes=0-x", 100), Err(Unsatisfiable));
    }

    #[test]
    fn active_types() {
        for t in [
            "text/html",
            "image/svg+xml",
            "application/javascript",
            "text/xml; charset=utf-8",
            "application/xhtml+xml",
            "",
        ] {
            assert!(is_active_type(t), "{t}");
        }
        for t in [
            "video/mp4",
            "image/png",
            "image/jpeg",
            "application/octet-stream",
        ] {
            assert!(!is_active_type(t), "{t}");
        }
    }
}
