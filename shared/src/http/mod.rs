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
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use bytes::Bytes;
use std::sync::Arc;

/// A create body may be this big: 25 MiB of documents as base64 (×4/3) plus JSON around them
/// (on AWS, Lambda's 6 MiB event limit comes first).
pub const MAX_BODY_BYTES: usize = 36 * 1024 * 1024;
/// Every other body (a code, a date): anonymous callers must not make the server hold megabytes.
pub const SMALL_BODY_BYTES: usize = 16 * 1024;
/// A reply's start: 4,000 characters of message (up to 4 bytes each, some escaped in JSON) and
/// five files' names and hashes.
pub const REPLY_BODY_BYTES: usize = 64 * 1024;

pub type AppState = Arc<Service>;

/// The router type, for callers that hold one without depending on axum themselves.
pub use axum::Router as HttpRouter;
/// The body type of requests the router takes.
pub use axum::body::Body;

/// Declares every route once, a line each: its name, method and path (as in the HTTP API's route
/// keys, template.yaml), the Lambda function that serves it (its `Handler` in template.yaml), what it uses
/// besides the store ([`Uses`]: a function is built with what its routes use and no more), and
/// its handler. Everything [`Route`] says is derived from the line.
macro_rules! routes {
    ($($(#[$doc:meta])* $route:ident: $method:ident $path:literal => $function:literal, $handler:path, $uses:expr;)+) => {
        /// The API's routes (declared in `routes!`). Each Lambda function mounts its own;
        /// `sealpost serve` mounts all.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Route {
            $($(#[$doc])* $route,)+
        }

        impl Route {
            pub const ALL: [Route; { [$(stringify!($route)),+].len() }] = [$(Route::$route),+];

            /// The path pattern (axum syntax, as in the HTTP API's route keys).
            pub fn path(self) -> &'static str {
                match self { $(Route::$route => $path,)+ }
            }

            /// The HTTP method (`POST /v1/shares` is its route key).
            pub fn method(self) -> Method {
                match self { $(Route::$route => Method::$method,)+ }
            }

            /// The function's name: its `Handler` in `template.yaml`.
            pub fn function_name(self) -> &'static str {
                match self { $(Route::$route => $function,)+ }
            }

            /// The ports the route's handler may use besides the store. The contract suite
            /// runs every route on AWS with only these, so one that starts to use another port
            /// fails there.
            pub const fn uses(self) -> Uses {
                match self { $(Route::$route => $uses,)+ }
            }

            fn handler(self) -> MethodRouter<AppState> {
                match self { $(Route::$route => on(MethodFilter::$method, $handler),)+ }
            }
        }
    };
}

// Every share route has a function of its own; the webhook settings (a few calls a month per
// practice) share one, `webhooks`.
routes! {
    /// Documents stored or uploaded (and deleted again if that fails), the code hashed, the
    /// patient notified.
    CreateShare: POST "/v1/shares" => "create-share", practice::create,
        Uses::DOCUMENTS.and(Uses::UPLOAD_LINKS).and(Uses::DOCUMENT_DELETION).and(Uses::KEYS).and(Uses::SMS).and(Uses::EMAIL);
    /// The email and SMS create would send, rendered; nothing kept.
    PreviewShare: POST "/v1/shares/preview" => "preview-share", practice::preview, Uses::NOTHING;
    ListShares: GET "/v1/shares" => "list-shares", practice::list, Uses::NOTHING;
    GetShare: GET "/v1/shares/{id}" => "get-share", practice::get, Uses::NOTHING;
    /// Documents deleted.
    RevokeShare: DELETE "/v1/shares/{id}" => "revoke-share", practice::revoke, Uses::DOCUMENT_DELETION;
    /// A new code, the patient notified again.
    ResendShare: POST "/v1/shares/{id}/resend" => "resend-share", practice::resend, Uses::KEYS.and(Uses::SMS).and(Uses::EMAIL);
    /// Each upload's size checked, a manual share's code hashed, the rest queued for the
    /// worker (`send-worker`).
    SendShare: POST "/v1/shares/{id}/send" => "send-share", practice::send,
        Uses::DOCUMENT_SIZES.and(Uses::KEYS).and(Uses::SENDS);
    /// A fresh upload URL signed, the share's upload window recorded, the upload's size read.
    UploadUrl: POST "/v1/shares/{id}/documents/{doc}/upload-url" => "upload-url", practice::upload_url,
        Uses::UPLOAD_LINKS.and(Uses::DOCUMENT_SIZES);
    PublicShare: GET "/v1/public/shares/{id}" => "public-share", patient::info, Uses::NOTHING;
    /// The answer hashed, an access token issued.
    VerifyCode: POST "/v1/public/shares/{id}/verify" => "verify-code", patient::verify, Uses::KEYS;
    RequestCode: POST "/v1/public/shares/{id}/code" => "request-code", patient::request_code, Uses::KEYS.and(Uses::SMS);
    /// The access token checked, a URL signed.
    DocumentUrl: GET "/v1/public/shares/{id}/documents/{doc}" => "document-url", patient::document,
        Uses::KEYS.and(Uses::DOCUMENT_LINKS);
    ArchiveUrl: GET "/v1/public/shares/{id}/archive" => "archive-url", patient::archive, Uses::KEYS.and(Uses::DOCUMENT_LINKS);
    /// The access token checked, the reply counted and kept, upload URLs signed.
    StartReply: POST "/v1/public/shares/{id}/replies" => "reply", patient::start_reply,
        Uses::KEYS.and(Uses::DOCUMENTS).and(Uses::UPLOAD_LINKS);
    /// Each upload's size and first bytes read, a refused one deleted, the reply kept.
    SubmitReply: POST "/v1/public/shares/{id}/replies/{reply}/submit" => "reply", patient::submit_reply,
        Uses::KEYS.and(Uses::DOCUMENTS).and(Uses::DOCUMENT_SIZES).and(Uses::DOCUMENT_DELETION);
    /// The replies read.
    ListReplies: GET "/v1/shares/{id}/replies" => "replies", practice::replies, Uses::BLOB_READS;
    /// A reply's file: a URL signed.
    ReplyFileUrl: GET "/v1/shares/{id}/replies/{reply}/files/{index}" => "replies", practice::reply_file,
        Uses::BLOB_READS.and(Uses::DOCUMENT_LINKS);
    /// The endpoint's signing secret, shown.
    CreateWebhook: POST "/v1/webhooks" => "webhooks", webhooks::create, Uses::KEYS;
    ListWebhooks: GET "/v1/webhooks" => "webhooks", webhooks::list, Uses::NOTHING;
    GetWebhook: GET "/v1/webhooks/{id}" => "webhooks", webhooks::get, Uses::NOTHING;
    UpdateWebhook: PATCH "/v1/webhooks/{id}" => "webhooks", webhooks::update, Uses::KEYS;
    DeleteWebhook: DELETE "/v1/webhooks/{id}" => "webhooks", webhooks::remove, Uses::NOTHING;
    TestWebhook: POST "/v1/webhooks/{id}/test" => "webhooks", webhooks::test, Uses::KEYS.and(Uses::WEBHOOK_POSTS);
    WebhookFailures: GET "/v1/webhooks/{id}/failures" => "webhooks", webhooks::failures, Uses::NOTHING;
}

impl Route {
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

/// The layers and fallbacks every router gets.
fn finish(routes: Router<AppState>, service: Arc<Service>) -> Router {
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
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
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

/// A body read by the handler itself (after its credentials checked out), up to `limit`.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, Error> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large =
            std::error::Error::source(&e).is_some_and(|s| s.downcast_ref::<http_body_util::LengthLimitError>().is_some());
        if too_large { Error::PayloadTooLarge } else { Error::invalid("body", "the request body could not be read") }
    })
}

/// A share id from the path, parsed once here: one that cannot be a share's is one that does
/// not exist.
fn share_id(raw: &str) -> Result<crate::domain::ShareId, Error> {
    crate::domain::ShareId::parse(raw).ok_or(Error::NotFound)
}

/// A webhook endpoint's id from the path, likewise.
fn webhook_id(raw: &str) -> Result<crate::domain::WebhookId, Error> {
    crate::domain::WebhookId::parse(raw).ok_or(Error::NotFound)
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
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    let fallback: String =
        filename.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
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
