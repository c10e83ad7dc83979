//! Routes only the embedded backend has: the signed local blob URLs and the outbox listing.

use super::blobs::{FolderBlobs, download_canonical, upload_canonical};
use super::outbox::Outbox;
use crate::domain::is_loopback_host;
use crate::error::Error;
use crate::http::content_disposition;
use crate::ports::{BlobStore, Clock, UPLOAD_CHECKSUM_HEADER};
use crate::secrets::Keys;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use futures_util::StreamExt;
use serde::Deserialize;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

#[derive(Clone)]
pub struct EmbeddedState {
    pub blobs: Arc<FolderBlobs>,
    pub outbox: Arc<Outbox>,
    pub keys: Keys,
    pub clock: Arc<dyn Clock>,
}

pub fn routes(state: EmbeddedState, outbox_route: bool) -> Router {
    let router = Router::new().route("/_blobs/{*key}", get(download).put(upload));
    let router = if outbox_route { router.route("/_outbox", get(outbox)) } else { router };
    router.with_state(state)
}

/// Lists every code and address sent, so it answers only a request addressed to this machine by
/// name: a page whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own `Host`.
async fn outbox(State(s): State<EmbeddedState>, uri: Uri, headers: HeaderMap) -> Result<Response, Error> {
    let host = uri.authority().map(|a| a.as_str()).or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
    if !host.is_some_and(is_loopback_authority) {
        return Err(Error::Forbidden("GET /_outbox answers only requests to a loopback host (localhost, 127.0.0.1 or [::1])"));
    }
    let messages = s.outbox.messages().await?;
    Ok(axum::Json(serde_json::json!({ "messages": messages })).into_response())
}

/// `localhost:8080`, `127.0.0.1`, `[::1]:8080`: a `Host` naming this machine, with no user part.
fn is_loopback_authority(authority: &str) -> bool {
    let Ok(authority) = authority.parse::<axum::http::uri::Authority>() else { return false };
    !authority.as_str().contains('@') && url::Host::parse(authority.host()).is_ok_and(|host| is_loopback_host(&host))
}

#[derive(Deserialize)]
struct DownloadQuery {
    exp: i64,
    #[serde(rename = "fn")]
    filename: String,
    ct: String,
    sig: String,
}

const BAD_SIGNATURE: &str = "this link is invalid or has expired; ask for a new one";

async fn download(
    State(s): State<EmbeddedState>,
    Path(key): Path<String>,
    query: Result<Query<DownloadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Error> {
    let Query(q) = query.map_err(|_| Error::Forbidden(BAD_SIGNATURE))?;
    let canonical = download_canonical(&key, q.exp, &q.filename, &q.ct);
    if !s.keys.url_signature_matches(&canonical, &q.sig) || s.clock.now().timestamp() >= q.exp {
        return Err(Error::Forbidden(BAD_SIGNATURE));
    }
    let size = s.blobs.size(&key).await?.ok_or(Error::NotFound)?;
    let reader = s.blobs.open(&key).await?.ok_or(Error::NotFound)?;
    let content_type = HeaderValue::from_str(&q.ct).map_err(|_| Error::Forbidden(BAD_SIGNATURE))?;
    let disposition = HeaderValue::from_str(&content_disposition(&q.filename)).map_err(|_| Error::Forbidden(BAD_SIGNATURE))?;
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_DISPOSITION, disposition);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    // A document is data, never a page of ours: even an HTML or SVG file cannot run here.
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    Ok(response)
}

#[derive(Deserialize)]
struct UploadQuery {
    exp: i64,
    size: u64,
    sha256: String,
    sig: String,
}

/// Streams an upload to the folder; nothing appears under the key unless exactly the signed
/// bytes arrived: their number and their SHA-256, which the uploader also sends as
/// `x-amz-checksum-sha256` (base64), as S3 wants it.
async fn upload(
    State(s): State<EmbeddedState>,
    Path(key): Path<String>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let Query(q) = query.map_err(|_| Error::Forbidden(BAD_SIGNATURE))?;
    if !s.keys.url_signature_matches(&upload_canonical(&key, q.exp, q.size, &q.sha256), &q.sig)
        || s.clock.now().timestamp() >= q.exp
    {
        return Err(Error::Forbidden(BAD_SIGNATURE));
    }
    // The signed header must come with the value signed (S3 answers a missing or other one so).
    let declared = hex::decode(&q.sha256).map_err(|_| Error::Forbidden(BAD_SIGNATURE))?;
    let sent = headers.get(UPLOAD_CHECKSUM_HEADER).and_then(|v| v.to_str().ok());
    if sent != Some(base64::engine::general_purpose::STANDARD.encode(&declared).as_str()) {
        return Err(Error::Forbidden(BAD_SIGNATURE));
    }
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut writer = s.blobs.create(&key).await?;
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Error::invalid("body", "the upload was interrupted"))?;
        received += chunk.len() as u64;
        if received > q.size {
            return Err(Error::PayloadTooLarge);
        }
        hash.update(&chunk);
        writer.write_all(&chunk).await.map_err(|e| Error::Internal(e.to_string()))?;
    }
    if received != q.size {
        return Err(Error::invalid("body", format!("expected {} bytes, received {received}", q.size)));
    }
    if hash.finish().as_ref() != declared.as_slice() {
        return Err(Error::invalid("body", "the bytes do not match the SHA-256 the URL was made for"));
    }
    writer.finish().await?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SystemClock;
    use tower::ServiceExt;

    async fn outbox_status(host: Option<&str>, uri: &str) -> StatusCode {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::from_pepper(&[1; 32]);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let state = EmbeddedState {
            blobs: Arc::new(FolderBlobs::new(
                dir.path().join("blobs"),
                "http://127.0.0.1:8080".into(),
                keys.clone(),
                clock.clone(),
            )),
            outbox: Arc::new(Outbox::new(dir.path().join("outbox.jsonl"), false, clock.clone())),
            keys,
            clock,
        };
        let mut request = axum::http::Request::get(uri);
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        routes(state, true).oneshot(request.body(Body::empty()).unwrap()).await.unwrap().status()
    }

    #[tokio::test]
    async fn the_outbox_answers_only_a_loopback_host() {
        for host in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]:8080", "127.0.0.2", "app.localhost:3000"] {
            assert_eq!(outbox_status(Some(host), "/_outbox").await, StatusCode::OK, "{host}");
        }
        // A rebound name, a proxy's public name, a user part, garbage, none at all.
        for host in [
            "evil.example:8080",
            "sealpost.example.ch",
            "127.0.0.1.nip.io",
            "localhost.evil.example",
            "evil@127.0.0.1",
            "10.0.0.5",
            "[",
            "",
        ] {
            assert_eq!(outbox_status(Some(host), "/_outbox").await, StatusCode::FORBIDDEN, "{host}");
        }
        assert_eq!(outbox_status(None, "/_outbox").await, StatusCode::FORBIDDEN);
        assert_eq!(outbox_status(Some("127.0.0.1"), "http://evil.example/_outbox").await, StatusCode::FORBIDDEN);
    }
}
