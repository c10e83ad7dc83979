//! Routes only the embedded backend has: the signed local blob URLs and the outbox listing.

use super::blobs::{FolderBlobs, download_canonical, upload_canonical};
use super::outbox::Outbox;
use crate::error::Error;
use crate::http::content_disposition;
use crate::ports::{BlobStore, Clock};
use crate::secrets::Keys;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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

async fn outbox(State(s): State<EmbeddedState>) -> Result<Response, Error> {
    let messages = s.outbox.messages().await?;
    Ok(axum::Json(serde_json::json!({ "messages": messages })).into_response())
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
    let disposition =
        HeaderValue::from_str(&content_disposition(&q.filename)).map_err(|_| Error::Forbidden(BAD_SIGNATURE))?;
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
    sig: String,
}

/// Streams an upload to the folder; nothing appears under the key unless exactly the signed
/// number of bytes arrived.
async fn upload(
    State(s): State<EmbeddedState>,
    Path(key): Path<String>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, Error> {
    let Query(q) = query.map_err(|_| Error::Forbidden(BAD_SIGNATURE))?;
    if !s.keys.url_signature_matches(&upload_canonical(&key, q.exp, q.size), &q.sig) || s.clock.now().timestamp() >= q.exp {
        return Err(Error::Forbidden(BAD_SIGNATURE));
    }
    let mut writer = s.blobs.create(&key).await?;
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Error::invalid("body", "the upload was interrupted"))?;
        received += chunk.len() as u64;
        if received > q.size {
            return Err(Error::PayloadTooLarge);
        }
        writer.write_all(&chunk).await.map_err(|e| Error::Internal(e.to_string()))?;
    }
    if received != q.size {
        return Err(Error::invalid("body", format!("expected {} bytes, received {received}", q.size)));
    }
    writer.finish().await?;
    Ok(StatusCode::OK.into_response())
}
