//! The queue host (`queue.fal.run`) and the synchronous one (`fal.run`): submit, status (plain
//! and SSE), result, cancel, and the blocking run.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::error::{ApiError, ApiResult};
use super::owner::Owner;
use super::{json_response, St};
use scail_core::ScailInput;

use crate::store::{now, Job, JobHead, JobStatus, NewJob};
use crate::AppState;

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

pub(super) async fn queue(
    State(st): St,
    Owner(who): Owner,
    method: Method,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let rest = served_endpoint(&path)?;
    match (method.clone(), rest.as_slice()) {
        (Method::POST, r) if r.first() != Some(&"requests") => {
            let (body, _permit) = read_body(&st, &headers, body).await?;
            let job = submit(&st, &who, &q, &headers, &body).await?;
            let pos = st.store.queue_position(&job).await?;
            let mut v = base_status(&st, &job.id);
            v["status"] = json!(JobStatus::InQueue);
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

/// A body above this size waits for one of [`LARGE_BODIES`]'s permits before it is read.
const LARGE_BODY: u64 = 1 << 20;
/// How many large request bodies (data URIs travel inside them) are held in memory at once; a
/// burst of them queues here instead of multiplying the server's memory.
static LARGE_BODIES: Semaphore = Semaphore::const_new(2);

/// Reads a request body within the configured limit; a large (or unsized) one first takes a
/// permit, held until the submit is done with the bytes.
async fn read_body(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, Option<SemaphorePermit<'static>>), ApiError> {
    let limit = st.config.max_request_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("the request body is larger than the limit of {limit} bytes; send large files by URL or through the storage API"),
        )
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let permit = match declared {
        Some(n) if n <= LARGE_BODY => None,
        _ => Some(LARGE_BODIES.acquire().await.map_err(ApiError::internal)?),
    };
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| match declared {
            // Within the declared size, a failed read is a client that went away.
            Some(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "upload_interrupted",
                "the request body ended early",
            ),
            None => too_large(),
        })?;
    Ok((bytes, permit))
}

async fn submit(
    st: &Arc<AppState>,
    who: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<JobHead, ApiError> {
    // Per-key fairness: one key cannot fill the queue for everyone.
    let open = st.store.open_jobs_of(who).await?;
    if open as usize >= st.config.max_queued_per_key {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_limit_exceeded",
            format!(
                "this key already has {open} unfinished requests (the limit is {}); wait for some to finish",
                st.config.max_queued_per_key
            ),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(json!([{"loc": ["body"], "msg": format!("invalid JSON body: {e}"), "type": "value_error.jsondecode"}]))
    })?;
    // Validated once, here: the job row keeps the validated input (defaults applied, unknown
    // fields dropped) and the worker runs it as it is.
    let input =
        scail_core::validate_input(&value).map_err(|errs| ApiError::validation(json!(errs)))?;
    drop(value);
    // A LoRA the server does not have is the caller's error, refused now rather than at run.
    crate::loras::resolve(st.config.lora_dir.as_deref(), &input.loras)
        .map_err(|errs| ApiError::validation(json!(errs)))?;
    let input = store_data_uris(st, who, input).await?;
    let input = serde_json::to_value(&input).map_err(ApiError::internal)?;
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
    let retain_s = crate::retention::requested_retention(headers, st.config.retention)
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_header", m))?;
    let id = uuid::Uuid::new_v4().to_string();
    let job = st
        .store
        .insert_job(&NewJob {
            id: &id,
            owner: who,
            endpoint: scail_core::ENDPOINT_ID,
            input: &input,
            priority,
            deadline,
            webhook_url: webhook,
            retain_s,
        })
        .await?;
    st.store.add_log(&id, "INFO", "queued").await?;
    st.job_notify.notify_one();
    Ok(job)
}

/// Writes each data-URI file to storage at submit and puts its file URL in the request, so the
/// job row stays small whatever was sent and a bad data URI is refused now (422), not when the
/// job runs.
async fn store_data_uris(
    st: &AppState,
    who: &str,
    input: ScailInput,
) -> Result<ScailInput, ApiError> {
    if !input.files().any(|(_, u)| u.starts_with("data:")) {
        return Ok(input);
    }
    let tmp_dir = st.config.data_dir.join("tmp");
    tokio::fs::create_dir_all(&tmp_dir)
        .await
        .map_err(ApiError::internal)?;
    let mut stored = std::collections::HashMap::new();
    for (which, url) in input.files() {
        if !url.starts_with("data:") {
            continue;
        }
        let tmp = tmp_dir.join(uuid::Uuid::new_v4().to_string());
        let fetched = st
            .fetcher
            .fetch(which.field(), url, which.kind(), &tmp)
            .await;
        let file = match fetched {
            Ok(f) => {
                let ext = f.mime.rsplit('/').next().unwrap_or("bin");
                let name = format!("{}.{ext}", which.stem());
                st.storage.import(who, &tmp, &name, f.mime).await
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                let detail = crate::worker::fetch_error_detail(which.field(), &e);
                return Err(if e.kind == "internal_error" {
                    ApiError::internal(e.message)
                } else {
                    ApiError::input(detail, e.kind)
                });
            }
        };
        let _ = tokio::fs::remove_file(&tmp).await;
        stored.insert(which, file.map_err(ApiError::internal)?.url);
    }
    input.try_map_files(|which, url| Ok(stored.remove(&which).unwrap_or(url)))
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

fn not_found() -> ApiError {
    ApiError::raw(
        StatusCode::NOT_FOUND,
        json!({"detail": "Request not found", "status": "NOT_FOUND"}),
    )
}

/// The status columns of a job the caller owns. Another owner's request is indistinguishable
/// from a missing one.
async fn visible_job(st: &AppState, who: &str, id: &str) -> Result<JobHead, ApiError> {
    match st.store.job_head(id).await? {
        Some(j) if j.owner == who => Ok(j),
        _ => Err(not_found()),
    }
}

async fn status_json(st: &AppState, job: &JobHead, logs: bool) -> Result<Value, ApiError> {
    let mut v = base_status(st, &job.id);
    v["status"] = json!(job.status);
    let log_value = |lines| if logs { json!(lines) } else { Value::Null };
    match job.status {
        JobStatus::InQueue => {
            v["queue_position"] = json!(st.store.queue_position(job).await?);
        }
        JobStatus::InProgress => {
            let lines = if logs {
                st.store.logs(&job.id).await?
            } else {
                vec![]
            };
            v["logs"] = log_value(lines);
            // This process's own job: the newest update; another worker's: the stored one.
            let progress = st
                .running
                .lock()
                .unwrap()
                .get(&job.id)
                .and_then(|r| r.progress.lock().unwrap().clone());
            if let Some(p) = progress {
                v["progress"] = json!(p);
            } else if let Some(p) = job.progress.as_deref() {
                if let Ok(p) = serde_json::from_str::<Value>(p) {
                    v["progress"] = p;
                }
            }
        }
        JobStatus::Completed => {
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
    match st.store.job(id).await? {
        Some(j) if j.owner == who => result_response(&j),
        _ => Err(not_found()),
    }
}

fn result_response(job: &Job) -> ApiResult {
    if job.status != JobStatus::Completed {
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
    let job = match st.store.job_head(id).await? {
        Some(j) if j.owner == who => j,
        _ => {
            return Ok(json_response(
                StatusCode::NOT_FOUND,
                json!({"status": "NOT_FOUND"}),
                None,
            ))
        }
    };
    match job.status {
        JobStatus::Completed => Ok(json_response(
            StatusCode::BAD_REQUEST,
            json!({"status": "ALREADY_COMPLETED"}),
            Some(id),
        )),
        _ => {
            st.store.request_cancel(id).await?;
            if job.status == JobStatus::InQueue {
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
                let full = st.store.job(id).await?.ok_or_else(not_found)?;
                if crate::worker::finish(st, None, &full, &outcome).await? {
                    st.store
                        .add_log(id, "WARN", "cancelled while queued")
                        .await?;
                }
            } else if let Some(r) = st.running.lock().unwrap().get(id) {
                r.request_stop(crate::worker::STOP_CANCEL);
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
                let job = match st.store.job_head(&id).await {
                    Ok(Some(j)) => j,
                    _ => return None,
                };
                let v = match status_json(&st, &job, logs).await {
                    Ok(v) => v,
                    Err(_) => return None,
                };
                let text = v.to_string();
                let completed = job.status == JobStatus::Completed;
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

pub(super) async fn run_sync(
    State(st): St,
    Owner(who): Owner,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    served_endpoint(&path)?;
    let (body, permit) = read_body(&st, &headers, body).await?;
    let job = submit(&st, &who, &q, &headers, &body).await?;
    drop((body, permit));
    loop {
        let j = st
            .store
            .job_head(&job.id)
            .await?
            .ok_or_else(|| ApiError::internal("job vanished"))?;
        if j.status == JobStatus::Completed {
            let full = st.store.job(&job.id).await?.ok_or_else(not_found)?;
            return result_response(&full);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
