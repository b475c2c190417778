//! Who is calling: extractors every authenticated handler takes instead of reading headers
//! itself, so no route can forget the check.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};

use super::error::ApiError;
use crate::AppState;

/// The owner of the request's API key (`Authorization: Key <key>`); 401 otherwise.
pub struct Owner(pub String);

impl FromRequestParts<Arc<AppState>> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, ApiError> {
        key_owner(st, &parts.headers).map(Owner)
    }
}

/// The owner of a CDN bearer token (`Authorization: Bearer <token>`) or of an API key.
pub struct CdnOwner(pub String);

impl FromRequestParts<Arc<AppState>> for CdnOwner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, ApiError> {
        cdn_owner(st, &parts.headers).map(CdnOwner)
    }
}

/// The owner of the key in `Authorization: Key <key>`.
fn key_owner(st: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
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

/// The owner of a CDN bearer token, or of an API key.
pub(crate) fn cdn_owner(st: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
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
    key_owner(st, headers)
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, k: &str) -> Option<&'a str> {
    headers
        .get(k)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
}
