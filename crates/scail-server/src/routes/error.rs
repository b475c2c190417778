//! The one error type of every route: a JSON body, fal-style, and `x-fal-error-type`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

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
    pub(crate) fn raw(status: StatusCode, body: Value) -> ApiError {
        ApiError {
            status,
            body,
            error_type: None,
        }
    }
    pub(crate) fn validation(errors: Value) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"detail": errors}),
            error_type: Some("validation_error".into()),
        }
    }
    /// A 422 whose cause has a more specific type than `validation_error` (a data URI that is
    /// too large or not the media its field needs).
    pub(crate) fn input(detail: Value, error_type: &str) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"detail": detail, "error_type": error_type}),
            error_type: Some(error_type.into()),
        }
    }
    pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
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

pub type ApiResult = Result<Response, ApiError>;
