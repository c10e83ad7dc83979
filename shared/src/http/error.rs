//! The one place where an error becomes a status and a JSON body.

use crate::error::Error;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized | Error::WrongCode { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound | Error::NoRoute => StatusCode::NOT_FOUND,
            Error::Expired | Error::Revoked | Error::ExpiredCode => StatusCode::GONE,
            Error::Locked => StatusCode::LOCKED,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest { .. } => "invalid_request",
            Error::Unauthorized => "unauthorized",
            Error::WrongCode { .. } => "wrong_code",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound | Error::NoRoute => "not_found",
            Error::Expired => "expired",
            Error::Revoked => "revoked",
            Error::ExpiredCode => "expired_code",
            Error::Locked => "locked",
            Error::RateLimited { .. } => "rate_limited",
            Error::PayloadTooLarge => "payload_too_large",
            Error::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let message = match &self {
            Error::Internal(detail) => {
                // The detail may name a path or a provider's words: logs only.
                tracing::error!(error = %detail, "internal error");
                "something went wrong on our side; please try again".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({ "code": self.code(), "message": message });
        match &self {
            Error::InvalidRequest { field, .. } => body["field"] = json!(field),
            Error::WrongCode { attempts_left } => body["attempts_left"] = json!(attempts_left),
            _ => {}
        }
        let mut response = (self.status(), axum::Json(json!({ "error": body }))).into_response();
        if let Error::RateLimited { retry_after_secs, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
        }
        response
    }
}
