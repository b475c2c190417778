//! HTTP routes: one base URL plays fal's four hosts (queue under `/queue`, sync run under `/run`,
//! REST storage under `/rest`, CDN under `/cdn`), plus stored files under `/files`, signed
//! upload URLs under `/upload`, the proxy mode at `/proxy`, the web playground at `/`,
//! `/openapi.json`, `/health` and `/.well-known/jwks.json`. One file per host played; every authenticated handler takes the
//! [`owner::Owner`] extractor.

mod error;
mod files;
mod owner;
mod playground;
mod proxy;
mod queue;
mod storage;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::Router;
use serde_json::{json, Value};

pub use error::{ApiError, ApiResult};
pub use files::{parse_range, Unsatisfiable};
pub use proxy::{map_fal_url, PublicUrl};

use crate::AppState;

type St = State<Arc<AppState>>;

fn json_response(status: StatusCode, v: Value, request_id: Option<&str>) -> Response {
    let mut r = (status, axum::Json(v)).into_response();
    if let Some(id) = request_id {
        if let Ok(h) = HeaderValue::from_str(id) {
            r.headers_mut().insert("x-fal-request-id", h);
        }
    }
    r
}

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_request_bytes;
    let public_url = state.public_url.clone();
    let inner: Router = Router::new()
        .route("/", get(playground::index))
        .route("/playground/{name}", get(playground::asset))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/queue/{*path}", any(queue::queue))
        .route("/run/{*path}", post(queue::run_sync))
        .route("/rest/storage/upload/initiate", post(storage::initiate))
        .route(
            "/rest/storage/upload/initiate-multipart",
            post(storage::initiate_multipart),
        )
        .route("/rest/storage/auth/token", post(storage::cdn_token))
        .route("/cdn/files/upload", post(storage::cdn_upload))
        .route(
            "/cdn/files/upload/multipart",
            post(storage::cdn_multipart_create),
        )
        .route("/upload/{id}", put(storage::upload_put))
        .route(
            "/upload/{id}/multipart/{part}",
            put(storage::upload_part).post(storage::upload_complete),
        )
        .route("/files/{*path}", any(files::files))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state);
    let proxied = inner.clone();
    let public = PublicUrl(public_url);
    inner
        .route(
            "/proxy",
            any(move |req: Request| {
                let r = proxied.clone();
                let public = public.clone();
                async move { proxy::proxy(r, public, req).await }
            }),
        )
        .layer(axum::middleware::map_response(harden_response))
}

/// On every response: `nosniff`, and an error that is not JSON yet (axum's own rejections:
/// 413 from the body limit, 405, a malformed path) rewritten as our JSON error body, headers
/// such as `Content-Range` kept.
async fn harden_response(r: Response) -> Response {
    let status = r.status();
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let mut r = if (status.is_client_error() || status.is_server_error()) && !is_json {
        let (parts, body) = r.into_parts();
        let bytes = axum::body::to_bytes(body, 64 << 10)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        let detail = if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            text
        };
        let error_type = match status.as_u16() {
            400 => "invalid_request",
            404 => "not_found",
            405 => "method_not_allowed",
            413 => "request_too_large",
            416 => "range_not_satisfiable",
            s if s >= 500 => "internal_error",
            _ => "request_error",
        };
        let mut out = ApiError::new(status, error_type, detail).into_response();
        for (k, v) in parts.headers.iter() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                out.headers_mut().insert(k.clone(), v.clone());
            }
        }
        out
    } else {
        r
    };
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn health(State(st): St) -> Response {
    let queued = st.store.queued_count().await.unwrap_or(0);
    let running = st.running.lock().unwrap().len();
    axum::Json(json!({"status": "ok", "endpoint": scail_core::ENDPOINT_ID, "queued": queued, "running": running,
        "weights": st.config.weights_note,
        "version": env!("CARGO_PKG_VERSION")}))
    .into_response()
}

async fn openapi(State(st): St) -> Response {
    let mut doc = scail_core::openapi(&st.public_url);
    crate::loras::list_in_openapi(&mut doc, st.config.lora_dir.as_deref());
    axum::Json(doc).into_response()
}

async fn jwks(State(st): St) -> Response {
    axum::Json(st.webhook_key.jwks()).into_response()
}
