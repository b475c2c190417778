//! The proxy mode (`x-fal-target-url`): a fal URL is mapped to this server's own route and
//! answered in-process.

use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt;

use super::error::ApiError;

/// Maps a fal URL to this server's path for it.
pub fn map_fal_url(target: &str, public_url: &str) -> Option<String> {
    if let Some(rest) = target.strip_prefix(public_url) {
        return Some(if rest.is_empty() {
            "/".into()
        } else {
            rest.to_string()
        });
    }
    let rest = target
        .strip_prefix("https://")
        .or_else(|| target.strip_prefix("http://"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = host.split(':').next().unwrap_or(host);
    let prefix = if host == "queue.fal.run" {
        "/queue"
    } else if host == "fal.run" {
        "/run"
    } else if host == "rest.fal.ai" || host == "rest.alpha.fal.ai" {
        "/rest"
    } else if host.ends_with(".fal.media") {
        "/cdn"
    } else {
        return None;
    };
    Some(format!("{prefix}{path}"))
}

pub(super) async fn proxy(inner: Router, public: PublicUrl, mut req: Request) -> Response {
    let Some(target) = req
        .headers()
        .get("x-fal-target-url")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the proxy needs an x-fal-target-url header",
        )
        .into_response();
    };
    let Some(path) = map_fal_url(&target, &public.0) else {
        return ApiError::new(StatusCode::BAD_REQUEST, "invalid_request",
            format!("x-fal-target-url must name a fal host (queue.fal.run, fal.run, rest.fal.ai, *.fal.media): {target}")).into_response();
    };
    let Ok(uri) = path.parse::<Uri>() else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "bad target path",
        )
        .into_response();
    };
    *req.uri_mut() = uri;
    req.headers_mut().remove("x-fal-target-url");
    match inner.oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    }
}

/// This server's public URL, for the proxy to recognise its own URLs.
#[derive(Clone)]
pub struct PublicUrl(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fal_urls_map_to_prefixes() {
        let p = "http://127.0.0.1:9";
        for (fal, ours) in [
            (
                "https://queue.fal.run/fal-ai/scail-2?x=1",
                "/queue/fal-ai/scail-2?x=1",
            ),
            ("https://fal.run/fal-ai/scail-2", "/run/fal-ai/scail-2"),
            (
                "https://rest.fal.ai/storage/auth/token",
                "/rest/storage/auth/token",
            ),
            ("https://v3.fal.media/files/upload", "/cdn/files/upload"),
            ("http://127.0.0.1:9/files/ab/x.mp4", "/files/ab/x.mp4"),
        ] {
            assert_eq!(map_fal_url(fal, p).as_deref(), Some(ours), "{fal}");
        }
        assert!(map_fal_url("https://evil.example/x", p).is_none());
    }
}
