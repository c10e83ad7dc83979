//! One axum router for every runtime shape: `sealpost serve` runs it on a socket, each Lambda
//! function answers API Gateway's events with it (`crate::lambda`). Handlers never ask where they run.

mod error;
mod openapi;
mod page;
mod patient;
mod practice;
mod webhooks;

use crate::error::Error;
use crate::ports::Uses;
use crate::service::Service;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use bytes::Bytes;
use std::sync::Arc;

/// A create body may be this big: 25 MiB of documents as base64 (×4/3) plus JSON around them
/// (on AWS, Lambda's 6 MiB event limit comes first).
pub const MAX_BODY_BYTES: usize = 36 * 1024 * 1024;
/// Every other body (a code, a date): anonymous callers must not make the server hold megabytes.
pub const SMALL_BODY_BYTES: usize = 16 * 1024;

pub type AppState = Arc<Service>;

/// The router type, for callers that hold one without depending on axum themselves.
pub use axum::Router as HttpRouter;
/// The body type of requests the router takes.
pub use axum::body::Body;

/// The API's routes. Each Lambda function mounts exactly one; `sealpost serve` mounts all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    CreateShare,
    ListShares,
    GetShare,
    RevokeShare,
    ResendShare,
    SendShare,
    PublicShare,
    VerifyCode,
    RequestCode,
    DocumentUrl,
    ArchiveUrl,
    CreateWebhook,
    ListWebhooks,
    GetWebhook,
    UpdateWebhook,
    DeleteWebhook,
    TestWebhook,
    WebhookFailures,
}

impl Route {
    pub const ALL: [Route; 18] = [
        Route::CreateShare,
        Route::ListShares,
        Route::GetShare,
        Route::RevokeShare,
        Route::ResendShare,
        Route::SendShare,
        Route::PublicShare,
        Route::VerifyCode,
        Route::RequestCode,
        Route::DocumentUrl,
        Route::ArchiveUrl,
        Route::CreateWebhook,
        Route::ListWebhooks,
        Route::GetWebhook,
        Route::UpdateWebhook,
        Route::DeleteWebhook,
        Route::TestWebhook,
        Route::WebhookFailures,
    ];

    /// The path pattern (axum syntax, as in the HTTP API's route keys).
    #[inline(always)]
    pub fn path(self) -> &'static str {
        match self {
            Route::CreateShare | Route::ListShares => "/v1/shares",
            Route::GetShare | Route::RevokeShare => "/v1/shares/{id}",
            Route::ResendShare => "/v1/shares/{id}/resend",
            Route::SendShare => "/v1/shares/{id}/send",
            Route::PublicShare => "/v1/public/shares/{id}",
            Route::VerifyCode => "/v1/public/shares/{id}/verify",
            Route::RequestCode => "/v1/public/shares/{id}/code",
            Route::DocumentUrl => "/v1/public/shares/{id}/documents/{doc}",
            Route::ArchiveUrl => "/v1/public/shares/{id}/archive",
            Route::CreateWebhook | Route::ListWebhooks => "/v1/webhooks",
            Route::GetWebhook | Route::UpdateWebhook | Route::DeleteWebhook => "/v1/webhooks/{id}",
            Route::TestWebhook => "/v1/webhooks/{id}/test",
            Route::WebhookFailures => "/v1/webhooks/{id}/failures",
        }
    }

    /// The HTTP method (as in the HTTP API's route keys: `POST /v1/shares`).
    pub fn method(self) -> &'static str {
        match self {
            Route::CreateShare
            | Route::ResendShare
            | Route::SendShare
            | Route::VerifyCode
            | Route::RequestCode
            | Route::CreateWebhook
            | Route::TestWebhook => "POST",
            Route::ListShares
            | Route::GetShare
            | Route::PublicShare
            | Route::DocumentUrl
            | Route::ArchiveUrl
            | Route::ListWebhooks
            | Route::GetWebhook
            | Route::WebhookFailures => "GET",
            Route::RevokeShare | Route::DeleteWebhook => "DELETE",
            Route::UpdateWebhook => "PATCH",
        }
    }

    /// The function's name in `functions/` and `template.yaml`. Every share route has its own;
    /// the webhook settings (a few calls a month per practice) share one, `webhooks`.
    pub fn function_name(self) -> &'static str {
        match self {
            Route::CreateShare => "create-share",
            Route::ListShares => "list-shares",
            Route::GetShare => "get-share",
            Route::RevokeShare => "revoke-share",
            Route::ResendShare => "resend-share",
            Route::SendShare => "send-share",
            Route::PublicShare => "public-share",
            Route::VerifyCode => "verify-code",
            Route::RequestCode => "request-code",
            Route::DocumentUrl => "document-url",
            Route::ArchiveUrl => "archive-url",
            Route::CreateWebhook
            | Route::ListWebhooks
            | Route::GetWebhook
            | Route::UpdateWebhook
            | Route::DeleteWebhook
            | Route::TestWebhook
            | Route::WebhookFailures => "webhooks",
        }
    }

    /// The ports the route's handler may use besides the store ([`Uses`]): a Lambda function
    /// is built with those of its routes and no others. The contract suite runs every route on
    /// AWS with only these, so one that starts to use another port fails there.
    pub const fn uses(self) -> Uses {
        match self {
            // Documents stored or uploaded (and deleted again if that fails), the code hashed,
            // the patient notified.
            Route::CreateShare | Route::SendShare => {
                Uses::DOCUMENTS.and(Uses::DOCUMENT_DELETION).and(Uses::KEYS).and(Uses::SMS).and(Uses::EMAIL)
            }
            // A new code, the patient notified again.
            Route::ResendShare => Uses::KEYS.and(Uses::SMS).and(Uses::EMAIL),
            // Documents deleted.
            Route::RevokeShare => Uses::DOCUMENT_DELETION,
            Route::ListShares | Route::GetShare | Route::PublicShare => Uses::NOTHING,
            // The answer hashed, an access token issued.
            Route::VerifyCode => Uses::KEYS,
            Route::RequestCode => Uses::KEYS.and(Uses::SMS),
            // The access token checked, a URL signed.
            Route::DocumentUrl | Route::ArchiveUrl => Uses::KEYS.and(Uses::DOCUMENT_LINKS),
            // The endpoint's signing secret, shown.
            Route::CreateWebhook | Route::UpdateWebhook => Uses::KEYS,
            Route::TestWebhook => Uses::KEYS.and(Uses::WEBHOOK_POSTS),
            Route::ListWebhooks | Route::GetWebhook | Route::DeleteWebhook | Route::WebhookFailures => Uses::NOTHING,
        }
    }

    /// What all of `routes` use.
    pub const fn uses_of(routes: &[Route]) -> Uses {
        let (mut uses, mut i) = (Uses::NOTHING, 0);
        while i < routes.len() {
            uses = uses.and(routes[i].uses());
            i += 1;
        }
        uses
    }

    /// The routes a function serves.
    pub fn of_function(name: &str) -> Vec<Route> {
        Route::ALL.into_iter().filter(|r| r.function_name() == name).collect()
    }

    /// Always inlined: called with a constant route (`sealpost::serve_routes!`), it is that
    /// route's handler alone, and the others are not linked.
    #[doc(hidden)]
    #[inline(always)]
    pub fn handler(self) -> MethodRouter<AppState> {
        match self {
            Route::CreateShare => post(practice::create),
            Route::ListShares => get(practice::list),
            Route::GetShare => get(practice::get),
            Route::RevokeShare => delete(practice::revoke),
            Route::ResendShare => post(practice::resend),
            Route::SendShare => post(practice::send),
            Route::PublicShare => get(patient::info),
            Route::VerifyCode => post(patient::verify),
            Route::RequestCode => post(patient::request_code),
            Route::DocumentUrl => get(patient::document),
            Route::ArchiveUrl => get(patient::archive),
            Route::CreateWebhook => post(webhooks::create),
            Route::ListWebhooks => get(webhooks::list),
            Route::GetWebhook => get(webhooks::get),
            Route::UpdateWebhook => patch(webhooks::update),
            Route::DeleteWebhook => delete(webhooks::remove),
            Route::TestWebhook => post(webhooks::test),
            Route::WebhookFailures => get(webhooks::failures),
        }
    }
}

/// Every route of the practice and patient APIs, and the download page.
pub fn router(service: Arc<Service>) -> Router {
    finish(mount(&Route::ALL).merge(page::routes()).merge(openapi::routes()), service)
}

/// The routes of one Lambda function. Anything else it is sent is a 404.
pub fn route_router(routes: &[Route], service: Arc<Service>) -> Router {
    finish(mount(routes), service)
}

fn mount(routes: &[Route]) -> Router<AppState> {
    routes.iter().fold(Router::new(), |router, r| router.route(r.path(), r.handler()))
}

/// The layers and fallbacks every router gets (for `sealpost::serve_routes!`).
#[doc(hidden)]
pub fn finish(routes: Router<AppState>, service: Arc<Service>) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(SMALL_BODY_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(service)
}

async fn not_found() -> Error {
    Error::NoRoute
}

/// Headers every answer carries: nothing cached, nothing sniffed, no referrer leaking a link.
/// Also the safety net for errors axum answers by itself (a path or query it cannot read):
/// those become SPEC's JSON errors too.
pub(crate) async fn security_headers(response: Response) -> Response {
    let mut response = json_errors_only(response);
    let h = response.headers_mut();
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    response
}

fn json_errors_only(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Error::NoRoute,
        s if s.is_server_error() => Error::Internal(format!("framework answered {s}")),
        _ => Error::invalid("request", "the request could not be read"),
    }
    .into_response()
}

/// A body, or the JSON error for one that is too large or unreadable.
fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Error> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge
        } else {
            Error::invalid("body", "the request body could not be read")
        }
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn json_response(status: StatusCode, value: impl serde::Serialize) -> Response {
    (status, axum::Json(value)).into_response()
}

/// `Content-Disposition: attachment` for a file name that may hold any Unicode: an ASCII
/// fallback in `filename` (quotes, backslashes and non-ASCII replaced) and the exact name in
/// `filename*` (RFC 6266 / RFC 8187 percent-encoding), which every current browser prefers.
pub fn content_disposition(filename: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    // RFC 8187 attr-char: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
    const ATTR: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'!').remove(b'#').remove(b'$').remove(b'&').remove(b'+').remove(b'-')
        .remove(b'.').remove(b'^').remove(b'_').remove(b'`').remove(b'|').remove(b'~');
    let fallback: String = filename
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{}", utf8_percent_encode(filename, ATTR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn framework_errors_become_json() {
        let plain = (StatusCode::BAD_REQUEST, "Invalid URL").into_response();
        let fixed = security_headers(plain).await;
        assert_eq!(fixed.status(), StatusCode::BAD_REQUEST);
        assert_eq!(fixed.headers()[header::CONTENT_TYPE], "application/json");
        let ok = security_headers((StatusCode::OK, "fine").into_response()).await;
        assert_eq!(ok.headers()[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    }

    #[test]
    fn content_disposition_keeps_unicode_and_escapes_quotes() {
        assert_eq!(
            content_disposition("Röntgen \"links\".pdf"),
            "attachment; filename=\"R_ntgen _links_.pdf\"; filename*=UTF-8''R%C3%B6ntgen%20%22links%22.pdf"
        );
        let header = content_disposition("a\r\nb;c.pdf");
        assert!(!header.contains('\r') && !header.contains('\n'));
        assert!(HeaderValue::from_str(&content_disposition("日本語.pdf")).is_ok());
    }
}
