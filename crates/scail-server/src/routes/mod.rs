//! HTTP routes: one base URL plays fal's four hosts (queue under `/queue`, sync run under `/run`,
//! REST storage under `/rest`, CDN under `/cdn`), plus stored files under `/files`, signed
//! upload URLs under `/upload`, the proxy mode at `/proxy`, `/openapi.json`, `/health` and
//! `/.well-known/jwks.json`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::store::{now, Job};
use crate::AppState;

type St = State<Arc<AppState>>;

/// A JSON error response, fal-style: `{"detail", "error_type"}` and `x-fal-error-type`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
    error_type: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, error_type: &str, detail: impl Into<String>) -> ApiError {
        let d = detail.into();
        ApiError {
            status,
            body: json!({"detail": d, "message": d, "error_type": error_type}),
            error_type: Some(error_type.into()),
        }
    }
    fn raw(status: StatusCode, body: Value) -> ApiError {
        ApiError {
            status,
            body,
            error_type: None,
        }
    }
    fn validation(errors: Value) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"detail": errors}),
            error_type: Some("validation_error".into()),
        }
    }
    fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("internal error: {e}"),
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body)).into_response();
        if let Some(t) = self.error_type {
            if let Ok(v) = HeaderValue::from_str(&t) {
                r.headers_mut().insert("x-fal-error-type", v);
            }
        }
        r
    }
}

type ApiResult = Result<Response, ApiError>;

fn owner(st: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "Missing Authorization header: send `Authorization: Key <your key>`",
        ));
    };
    let v = v.to_str().unwrap_or("");
    st.keys
        .owner_of_header(v)
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "Invalid API key",
            )
        })
}

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
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/queue/{*path}", any(queue))
        .route("/run/{*path}", post(run_sync))
        .route("/rest/storage/upload/initiate", post(initiate))
        .route(
            "/rest/storage/upload/initiate-multipart",
            post(initiate_multipart),
        )
        .route("/rest/storage/auth/token", post(cdn_token))
        .route("/cdn/files/upload", post(cdn_upload))
        .route("/cdn/files/upload/multipart", post(cdn_multipart_create))
        .route("/upload/{id}", put(upload_put))
        .route(
            "/upload/{id}/multipart/{part}",
            put(upload_part).post(upload_complete),
        )
        .route("/files/{*path}", any(files))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state);
    let proxied = inner.clone();
    let public = PublicUrl(public_url);
    inner.route(
        "/proxy",
        any(move |req: Request| {
            let r = proxied.clone();
            let public = public.clone();
            async move { proxy(r, public, req).await }
        }),
    )
}

async fn health(State(st): St) -> Response {
    let queued = st.store.queued_count().await.unwrap_or(0);
    let running = st.running.lock().unwrap().len();
    axum::Json(json!({"status": "ok", "endpoint": scail_core::ENDPOINT_ID, "queued": queued, "running": running,
        "version": env!("CARGO_PKG_VERSION")}))
    .into_response()
}

async fn openapi(State(st): St) -> Response {
    axum::Json(scail_core::openapi(&st.public_url)).into_response()
}

async fn jwks(State(st): St) -> Response {
    axum::Json(st.webhook_key.jwks()).into_response()
}

// ---------------------------------------------------------------- queue

/// Splits `[namespace/]owner/alias[/rest…]`.
fn split_endpoint(path: &str) -> Option<(String, Vec<&str>)> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let skip = usize::from(matches!(segs.first(), Some(&"workflows") | Some(&"comfy")));
    if segs.len() < skip + 2 {
        return None;
    }
    Some((
        format!("{}/{}", segs[skip], segs[skip + 1]),
        segs[skip + 2..].to_vec(),
    ))
}

/// The path segments after the endpoint id, when the path names the endpoint this server serves.
fn served_endpoint(path: &str) -> Result<Vec<&str>, ApiError> {
    let (endpoint, rest) = split_endpoint(path).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no endpoint in the path",
        )
    })?;
    if endpoint != scail_core::ENDPOINT_ID {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "Application '{endpoint}' not found: this server serves {}",
                scail_core::ENDPOINT_ID
            ),
        ));
    }
    Ok(rest)
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(
        q.get(k).map(|s| s.to_ascii_lowercase()).as_deref(),
        Some("1" | "true" | "yes")
    )
}

async fn queue(
    State(st): St,
    method: Method,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let who = owner(&st, &headers)?;
    let rest = served_endpoint(&path)?;
    match (method.clone(), rest.as_slice()) {
        (Method::POST, r) if r.first() != Some(&"requests") => {
            let job = submit(&st, &who, &q, &headers, &body).await?;
            let pos = st.store.queue_position(&job).await?;
            let mut v = base_status(&st, &job.id);
            v["status"] = json!("IN_QUEUE");
            v["gateway_request_id"] = json!(job.id);
            v["queue_position"] = json!(pos);
            Ok(json_response(StatusCode::OK, v, Some(&job.id)))
        }
        (Method::GET, ["requests", id]) => result(&st, &who, id).await,
        (Method::GET, ["requests", id, "status"]) => {
            let job = visible_job(&st, &who, id).await?;
            let v = status_json(&st, &job, flag(&q, "logs")).await?;
            Ok(json_response(StatusCode::OK, v, Some(&job.id)))
        }
        (Method::GET, ["requests", id, "status", "stream"]) => {
            let job = visible_job(&st, &who, id).await?;
            Ok(status_stream(st.clone(), job.id, flag(&q, "logs")).await)
        }
        (Method::PUT, ["requests", id, "cancel"]) => cancel(&st, &who, id).await,
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {method} /queue/{path}"),
        )),
    }
}

async fn submit(
    st: &Arc<AppState>,
    who: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Job, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(json!([{"loc": ["body"], "msg": format!("invalid JSON body: {e}"), "type": "value_error.jsondecode"}]))
    })?;
    // Validated here for the 422; the worker validates the stored body again before running it.
    scail_core::validate_input(&value).map_err(|errs| ApiError::validation(json!(errs)))?;
    let priority = match headers
        .get("x-fal-queue-priority")
        .and_then(|v| v.to_str().ok())
    {
        Some("low") => 1,
        _ => 0,
    };
    let deadline = match headers.get("x-fal-request-timeout") {
        None => None,
        Some(v) => {
            let t = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|t| t.is_finite() && *t > 0.0);
            match t {
                Some(t) => Some(now() + t),
                None => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_header",
                        "x-fal-request-timeout must be a positive number of seconds",
                    ))
                }
            }
        }
    };
    let webhook = match q.get("fal_webhook") {
        Some(u) => {
            if scail_core::validate::check_url(u).is_err() || u.starts_with("data:") {
                return Err(ApiError::validation(
                    json!([{"loc": ["query", "fal_webhook"],
                    "msg": "fal_webhook must be an http(s) URL", "type": "value_error.url"}]),
                ));
            }
            Some(u.as_str())
        }
        None => None,
    };
    let id = uuid::Uuid::new_v4().to_string();
    let job = st
        .store
        .insert_job(
            &id,
            who,
            scail_core::ENDPOINT_ID,
            &value,
            priority,
            deadline,
            webhook,
        )
        .await?;
    st.store.add_log(&id, "INFO", "queued").await?;
    st.job_notify.notify_one();
    Ok(job)
}

fn base_status(st: &AppState, id: &str) -> Value {
    let base = format!(
        "{}/queue/{}/requests/{id}",
        st.public_url,
        scail_core::ENDPOINT_ID
    );
    json!({"request_id": id, "response_url": base, "status_url": format!("{base}/status"),
           "cancel_url": format!("{base}/cancel")})
}

async fn visible_job(st: &AppState, who: &str, id: &str) -> Result<Job, ApiError> {
    match st.store.job(id).await? {
        Some(j) if j.owner == who => Ok(j),
        // Another owner's request is indistinguishable from a missing one.
        _ => Err(ApiError::raw(
            StatusCode::NOT_FOUND,
            json!({"detail": "Request not found", "status": "NOT_FOUND"}),
        )),
    }
}

async fn status_json(st: &AppState, job: &Job, logs: bool) -> Result<Value, ApiError> {
    let mut v = base_status(st, &job.id);
    v["status"] = json!(job.status);
    let log_value = |lines| if logs { json!(lines) } else { Value::Null };
    match job.status.as_str() {
        "IN_QUEUE" => {
            v["queue_position"] = json!(st.store.queue_position(job).await?);
        }
        "IN_PROGRESS" => {
            let lines = if logs {
                st.store.logs(&job.id).await?
            } else {
                vec![]
            };
            v["logs"] = log_value(lines);
            let progress = st
                .running
                .lock()
                .unwrap()
                .get(&job.id)
                .and_then(|r| r.progress.lock().unwrap().clone());
            if let Some(p) = progress {
                v["progress"] = json!(p);
            }
        }
        _ => {
            let lines = if logs {
                st.store.logs(&job.id).await?
            } else {
                vec![]
            };
            v["logs"] = log_value(lines);
            v["metrics"] = json!({"inference_time": job.inference_time});
            if let Some(e) = &job.error {
                v["error"] = json!(e);
                v["error_type"] = json!(job.error_type);
            }
        }
    }
    Ok(v)
}

async fn result(st: &AppState, who: &str, id: &str) -> ApiResult {
    let job = visible_job(st, who, id).await?;
    result_response(&job)
}

fn result_response(job: &Job) -> ApiResult {
    if job.status != "COMPLETED" {
        return Err(ApiError::raw(
            StatusCode::BAD_REQUEST,
            json!({"detail": "Request is still in progress"}),
        ));
    }
    if let Some(r) = &job.result {
        return Ok(json_response(StatusCode::OK, r.clone(), Some(&job.id)));
    }
    let status = job
        .error_status
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = job
        .error_body
        .clone()
        .unwrap_or_else(|| json!({"detail": job.error}));
    if body.get("error_type").is_none() {
        body["error_type"] = json!(job.error_type);
    }
    let mut r = json_response(status, body, Some(&job.id));
    if let Some(t) = job
        .error_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        r.headers_mut().insert("x-fal-error-type", t);
    }
    if status == StatusCode::GATEWAY_TIMEOUT {
        r.headers_mut().insert(
            "x-fal-request-timeout-type",
            HeaderValue::from_static("user"),
        );
    }
    Ok(r)
}

async fn cancel(st: &AppState, who: &str, id: &str) -> ApiResult {
    let job = match st.store.job(id).await? {
        Some(j) if j.owner == who => j,
        _ => {
            return Ok(json_response(
                StatusCode::NOT_FOUND,
                json!({"status": "NOT_FOUND"}),
                None,
            ))
        }
    };
    match job.status.as_str() {
        "COMPLETED" => Ok(json_response(
            StatusCode::BAD_REQUEST,
            json!({"status": "ALREADY_COMPLETED"}),
            Some(id),
        )),
        _ => {
            st.store.request_cancel(id).await?;
            if job.status == "IN_QUEUE" {
                // A queued job never runs: end it now (a worker claiming it meanwhile sees the flag).
                let body =
                    json!({"detail": "Request was cancelled", "error_type": "request_cancelled"});
                let outcome = crate::store::Outcome::Err {
                    status: 400,
                    error_type: "request_cancelled".into(),
                    message: "Request was cancelled".into(),
                    body,
                    inference_time: None,
                };
                if crate::worker::finish(st, &job, &outcome).await? {
                    st.store
                        .add_log(id, "WARN", "cancelled while queued")
                        .await?;
                }
            } else if let Some(r) = st.running.lock().unwrap().get(id) {
                let _ = r.stop.compare_exchange(
                    0,
                    crate::worker::STOP_CANCEL,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            Ok(json_response(
                StatusCode::ACCEPTED,
                json!({"status": "CANCELLATION_REQUESTED"}),
                Some(id),
            ))
        }
    }
}

async fn status_stream(st: Arc<AppState>, id: String, logs: bool) -> Response {
    // Poll the store and send each changed status; close right after COMPLETED (the JS client
    // resolves at end of stream).
    let stream = futures_util::stream::unfold(
        (st, id, None::<String>, false),
        move |(st, id, last, done)| async move {
            if done {
                return None;
            }
            loop {
                let job = match st.store.job(&id).await {
                    Ok(Some(j)) => j,
                    _ => return None,
                };
                let v = match status_json(&st, &job, logs).await {
                    Ok(v) => v,
                    Err(_) => return None,
                };
                let text = v.to_string();
                let completed = job.status == "COMPLETED";
                if last.as_deref() != Some(text.as_str()) {
                    let ev = Event::default().data(text.clone());
                    return Some((Ok::<Event, Infallible>(ev), (st, id, Some(text), completed)));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn run_sync(
    State(st): St,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let who = owner(&st, &headers)?;
    served_endpoint(&path)?;
    let job = submit(&st, &who, &q, &headers, &body).await?;
    loop {
        let j = st
            .store
            .job(&job.id)
            .await?
            .ok_or_else(|| ApiError::internal("job vanished"))?;
        if j.status == "COMPLETED" {
            return result_response(&j);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------- storage

#[derive(serde::Deserialize, Default)]
struct InitiateBody {
    content_type: Option<String>,
    file_name: Option<String>,
}

fn parse_initiate(body: &[u8]) -> Result<InitiateBody, ApiError> {
    if body.is_empty() {
        return Ok(InitiateBody::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(json!([{"loc": ["body"], "msg": format!("invalid JSON body: {e}"), "type": "value_error.jsondecode"}]))
    })
}

fn expiry(st: &AppState) -> i64 {
    chrono::Utc::now().timestamp() + st.config.upload_url_ttl.as_secs() as i64
}

async fn initiate_common(
    st: &Arc<AppState>,
    headers: &HeaderMap,
    body: &[u8],
    multipart: bool,
) -> ApiResult {
    let who = owner(st, headers)?;
    let b = parse_initiate(body)?;
    let ct = b
        .content_type
        .unwrap_or_else(|| "application/octet-stream".into());
    let name = b.file_name.unwrap_or_else(|| "upload.bin".into());
    let (id, stored_name) = new_file(st, &who, &name, &ct).await?;
    let token = st.signer.sign("upload", &id, expiry(st));
    let upload_url = if multipart {
        format!("{}/upload/{id}/multipart?token={token}", st.public_url)
    } else {
        format!("{}/upload/{id}?token={token}", st.public_url)
    };
    Ok(
        axum::Json(
            json!({"upload_url": upload_url, "file_url": st.storage.url(&id, &stored_name)}),
        )
        .into_response(),
    )
}

async fn initiate(State(st): St, headers: HeaderMap, body: Bytes) -> ApiResult {
    initiate_common(&st, &headers, &body, false).await
}

async fn initiate_multipart(State(st): St, headers: HeaderMap, body: Bytes) -> ApiResult {
    initiate_common(&st, &headers, &body, true).await
}

fn check_upload_token(
    st: &AppState,
    id: &str,
    q: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let token = q.get("token").ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "authorization_error",
            "upload URL without a token",
        )
    })?;
    st.signer.verify("upload", id, token).map_err(|e| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "authorization_error",
            format!("upload URL rejected: {e}"),
        )
    })
}

fn storage_error(e: crate::storage::StorageError) -> ApiError {
    match e {
        crate::storage::StorageError::TooLarge(_) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            e.to_string(),
        ),
        crate::storage::StorageError::Body(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "upload_interrupted", e.to_string())
        }
        e => ApiError::internal(e),
    }
}

async fn pending_file(st: &AppState, id: &str) -> Result<crate::store::FileRow, ApiError> {
    match st.storage.get(id).await.map_err(ApiError::internal)? {
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such upload",
        )),
        Some(r) if r.complete => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "already_uploaded",
            "this upload URL was already used",
        )),
        Some(r) => Ok(r),
    }
}

async fn upload_put(
    State(st): St,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> ApiResult {
    check_upload_token(&st, &id, &q)?;
    pending_file(&st, &id).await?;
    let n = st
        .storage
        .put(&id, body.into_data_stream(), st.config.max_upload_bytes)
        .await
        .map_err(storage_error)?;
    Ok(axum::Json(json!({"size": n})).into_response())
}

fn part_number(s: &str) -> Result<u32, ApiError> {
    s.parse::<u32>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_part",
                format!("part number must be 1..=10000, got {s:?}"),
            )
        })
}

async fn upload_part(
    State(st): St,
    Path((id, part)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> ApiResult {
    check_upload_token(&st, &id, &q)?;
    pending_file(&st, &id).await?;
    let n = part_number(&part)?;
    let etag = st
        .storage
        .put_part(&id, n, body.into_data_stream(), st.config.max_upload_bytes)
        .await
        .map_err(storage_error)?;
    let mut r = axum::Json(json!({"partNumber": n, "etag": etag})).into_response();
    r.headers_mut()
        .insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
    Ok(r)
}

#[derive(serde::Deserialize)]
struct CompleteBody {
    parts: Vec<PartRef>,
}

#[derive(serde::Deserialize)]
struct PartRef {
    #[serde(rename = "partNumber")]
    part_number: u32,
    etag: String,
}

async fn complete_common(st: &AppState, id: &str, body: &[u8]) -> ApiResult {
    pending_file(st, id).await?;
    let b: CompleteBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(json!([{"loc": ["body", "parts"], "msg": format!("invalid completion body: {e}"), "type": "value_error"}]))
    })?;
    if b.parts.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_part",
            "no parts listed",
        ));
    }
    let mut parts: Vec<(u32, String)> = b
        .parts
        .into_iter()
        .map(|p| (p.part_number, p.etag))
        .collect();
    let n = st
        .storage
        .complete_parts(id, &mut parts, st.config.max_upload_bytes)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_part", e))?;
    let row = st
        .storage
        .get(id)
        .await
        .map_err(ApiError::internal)?
        .expect("exists");
    Ok(axum::Json(json!({"size": n, "access_url": st.storage.url(id, &row.name), "file_url": st.storage.url(id, &row.name)})).into_response())
}

async fn upload_complete(
    State(st): St,
    Path((id, what)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    check_upload_token(&st, &id, &q)?;
    if what != "complete" {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "POST …/multipart/complete",
        ));
    }
    complete_common(&st, &id, &body).await
}

async fn cdn_token(State(st): St, headers: HeaderMap) -> ApiResult {
    let who = owner(&st, &headers)?;
    let exp = expiry(&st);
    let expires_at = chrono::DateTime::from_timestamp(exp, 0)
        .expect("valid")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    Ok(axum::Json(
        json!({"token": st.signer.cdn_token(&who, exp), "token_type": "Bearer",
        "base_url": format!("{}/cdn", st.public_url), "expires_at": expires_at}),
    )
    .into_response())
}

fn cdn_owner(st: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let v = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(t) = v.strip_prefix("Bearer ") {
        return st.signer.cdn_owner(t.trim()).map_err(|e| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                format!("CDN token rejected: {e}"),
            )
        });
    }
    owner(st, headers)
}

fn header_str<'a>(headers: &'a HeaderMap, k: &str) -> Option<&'a str> {
    headers
        .get(k)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
}

/// Registers a file for a CDN upload call from its headers: (id, stored name, content type).
async fn create_cdn_file(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<(String, String, String), ApiError> {
    let who = cdn_owner(st, headers)?;
    let ct = header_str(headers, "content-type")
        .unwrap_or("application/octet-stream")
        .to_string();
    let name = header_str(headers, "x-fal-file-name").unwrap_or("upload.bin");
    let (id, stored_name) = new_file(st, &who, name, &ct).await?;
    Ok((id, stored_name, ct))
}

/// Creates an empty stored file; returns its id and the name storage kept (sanitised).
async fn new_file(
    st: &AppState,
    who: &str,
    name: &str,
    ct: &str,
) -> Result<(String, String), ApiError> {
    let id = st
        .storage
        .create(who, name, ct)
        .await
        .map_err(ApiError::internal)?;
    let row = st
        .storage
        .get(&id)
        .await
        .map_err(ApiError::internal)?
        .expect("just created");
    Ok((id, row.name))
}

async fn cdn_upload(State(st): St, headers: HeaderMap, body: Body) -> ApiResult {
    let (id, name, ct) = create_cdn_file(&st, &headers).await?;
    let size = st
        .storage
        .put(&id, body.into_data_stream(), st.config.max_upload_bytes)
        .await
        .map_err(storage_error)?;
    Ok(axum::Json(
        json!({"access_url": st.storage.url(&id, &name), "content_type": ct,
        "file_name": name, "file_size": size}),
    )
    .into_response())
}

async fn cdn_multipart_create(State(st): St, headers: HeaderMap) -> ApiResult {
    let (id, name, _) = create_cdn_file(&st, &headers).await?;
    let upload_id = st.signer.sign("multipart", &id, expiry(&st));
    Ok(
        axum::Json(json!({"access_url": st.storage.url(&id, &name), "uploadId": upload_id}))
            .into_response(),
    )
}

/// `/files/{id}/{name}`: GET/HEAD serve the file (with Range); under it, the CDN multipart calls
/// `PUT …/multipart/{uploadId}/{n}` and `POST …/multipart/{uploadId}/complete`.
async fn files(
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
            let row = pending_file(&st, id).await?;
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
                return complete_common(&st, id, &bytes).await;
            }
            if method != Method::PUT {
                return Err(not_found());
            }
            let part = part_number(n)?;
            let etag = st
                .storage
                .put_part(
                    id,
                    part,
                    body.into_data_stream(),
                    st.config.max_upload_bytes,
                )
                .await
                .map_err(storage_error)?;
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
            b.parse::<u64>()
                .map_err(|_| Unsatisfiable)?
                .min(len.saturating_sub(1))
        };
        (s, e)
    };
    if start >= len || start > end {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

async fn serve_file(st: &AppState, id: &str, headers: &HeaderMap) -> ApiResult {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let row = st
        .storage
        .get(id)
        .await
        .map_err(ApiError::internal)?
        .filter(|r| r.complete)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file"))?;
    let len = row.size as u64;
    let mut f = tokio::fs::File::open(st.storage.path(id))
        .await
        .map_err(ApiError::internal)?;
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
    if start > 0 {
        f.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(ApiError::internal)?;
    }
    let stream = tokio_util::io::ReaderStream::new(f.take(count));
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
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{}\"", row.name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some((s, e)) = range {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {s}-{e}/{len}")).expect("ascii"),
        );
    }
    Ok(r)
}

// ---------------------------------------------------------------- proxy

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

async fn proxy(inner: Router, public: PublicUrl, mut req: Request) -> Response {
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
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=5-2", 100), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=1-2", 100), Ok(None));
    }

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

    #[test]
    fn endpoints() {
        assert_eq!(
            split_endpoint("fal-ai/scail-2").unwrap().0,
            "fal-ai/scail-2"
        );
        let (e, rest) = split_endpoint("fal-ai/scail-2/requests/abc/status").unwrap();
        assert_eq!(e, "fal-ai/scail-2");
        assert_eq!(rest, ["requests", "abc", "status"]);
        assert_eq!(
            split_endpoint("workflows/fal-ai/scail-2").unwrap().0,
            "fal-ai/scail-2"
        );
        assert!(split_endpoint("fal-ai").is_none());
    }
}
