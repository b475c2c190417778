//! The web playground at `/`: three static files compiled into the binary (no CDN, no build
//! step). The page builds its form from `/openapi.json` and talks to the same public API as the
//! official clients, so it needs no routes of its own.
//!
//! `SCAIL_PLAYGROUND_DIR` serves the files from a folder instead, read on every request: for
//! working on the page without rebuilding the server.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// `(name, content type, compiled-in bytes)` of each asset.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../assets/playground/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/playground/app.js"),
    ),
    (
        "form.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/playground/form.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/playground/app.css"),
    ),
];

fn serve(name: &str) -> Response {
    let Some((name, ct, built_in)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such playground file").into_response();
    };
    let body = std::env::var_os("SCAIL_PLAYGROUND_DIR")
        .and_then(|d| std::fs::read_to_string(std::path::Path::new(&d).join(name)).ok())
        .unwrap_or_else(|| built_in.to_string());
    (
        [
            (header::CONTENT_TYPE, *ct),
            (header::CACHE_CONTROL, "no-cache"),
            // Everything the page loads comes from this server; media and uploads go to the
            // server's own /files and /upload URLs (or whatever public URL it is configured with).
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' blob: data: *; media-src 'self' blob: *; connect-src 'self' *; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn index() -> Response {
    serve("index.html")
}

pub(super) async fn asset(Path(name): Path<String>) -> Response {
    serve(&name)
}
