//! The storage hosts: REST storage (`rest.fal.ai`: signed upload URLs, single and multipart),
//! the CDN upload calls (`*.fal.media`: bearer tokens, direct and multipart uploads) and the
//! signed `/upload/...` URLs they hand out.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::owner::{header_str, CdnOwner, Owner};
use super::St;
use crate::AppState;

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
    who: &str,
    headers: &HeaderMap,
    body: &[u8],
    multipart: bool,
) -> ApiResult {
    let b = parse_initiate(body)?;
    let ct = b
        .content_type
        .unwrap_or_else(|| "application/octet-stream".into());
    let name = b.file_name.unwrap_or_else(|| "upload.bin".into());
    let (id, stored_name) = new_file(st, who, &name, &ct, headers).await?;
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

pub(super) async fn initiate(
    State(st): St,
    Owner(who): Owner,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    initiate_common(&st, &who, &headers, &body, false).await
}

pub(super) async fn initiate_multipart(
    State(st): St,
    Owner(who): Owner,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    initiate_common(&st, &who, &headers, &body, true).await
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

pub(super) fn storage_error(e: crate::storage::StorageError) -> ApiError {
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

pub(super) async fn pending_file(
    st: &AppState,
    id: &str,
) -> Result<crate::store::FileRow, ApiError> {
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

pub(super) async fn upload_put(
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

pub(super) fn part_number(s: &str) -> Result<u32, ApiError> {
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

pub(super) async fn upload_part(
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

pub(super) async fn complete_common(st: &AppState, id: &str, body: &[u8]) -> ApiResult {
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
    // Clients list parts in the order their uploads finished, so the list is put in part order
    // here; a part listed twice would be written twice into the file, so that is refused.
    parts.sort_by_key(|p| p.0);
    if let Some(w) = parts.windows(2).find(|w| w[0].0 == w[1].0) {
        let why = format!("part {} is listed twice", w[0].0);
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_part", why));
    }
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

pub(super) async fn upload_complete(
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

pub(super) async fn cdn_token(State(st): St, Owner(who): Owner) -> ApiResult {
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

/// Registers a file for a CDN upload call from its headers: (id, stored name, content type).
async fn create_cdn_file(
    st: &AppState,
    who: &str,
    headers: &HeaderMap,
) -> Result<(String, String, String), ApiError> {
    let ct = header_str(headers, "content-type")
        .unwrap_or("application/octet-stream")
        .to_string();
    let name = header_str(headers, "x-fal-file-name").unwrap_or("upload.bin");
    let (id, stored_name) = new_file(st, who, name, &ct, headers).await?;
    Ok((id, stored_name, ct))
}

/// Creates an empty stored file within the key's storage quota, expiring as the request's
/// lifecycle header asks (or after the server's retention); returns its id and the name
/// storage kept (sanitised).
async fn new_file(
    st: &AppState,
    who: &str,
    name: &str,
    ct: &str,
    headers: &HeaderMap,
) -> Result<(String, String), ApiError> {
    let used = st.store.stored_bytes_of(who).await?;
    if used as u64 >= st.config.max_storage_per_key {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "storage_quota_exceeded",
            format!(
                "this key stores {used} bytes, the limit is {}; files expire after their retention",
                st.config.max_storage_per_key
            ),
        ));
    }
    let retain = crate::retention::requested_retention(headers, st.config.retention)
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_header", m))?;
    let id = st
        .storage
        .create(who, name, ct)
        .await
        .map_err(ApiError::internal)?;
    if let Some(s) = retain {
        st.store
            .set_file_expiry(&id, crate::store::now() + s)
            .await?;
    }
    let row = st
        .storage
        .get(&id)
        .await
        .map_err(ApiError::internal)?
        .expect("just created");
    Ok((id, row.name))
}

pub(super) async fn cdn_upload(
    State(st): St,
    CdnOwner(who): CdnOwner,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let (id, name, ct) = create_cdn_file(&st, &who, &headers).await?;
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

pub(super) async fn cdn_multipart_create(
    State(st): St,
    CdnOwner(who): CdnOwner,
    headers: HeaderMap,
) -> ApiResult {
    let (id, name, _) = create_cdn_file(&st, &who, &headers).await?;
    let upload_id = st.signer.sign("multipart", &id, expiry(&st));
    Ok(
        axum::Json(json!({"access_url": st.storage.url(&id, &name), "uploadId": upload_id}))
            .into_response(),
    )
}
