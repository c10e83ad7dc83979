//! The practice API: bearer API key, a practice sees only its own shares.

use super::{AppState, MAX_BODY_BYTES, header_str, json_response, share_id};
use crate::error::Error;
use crate::service::{Created, Sent};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

/// Takes the raw body and reads it only once the API key checked out: up to 36 MiB are for
/// practices, not for anyone who can reach the port.
pub async fn create(State(svc): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    let body = create_body(body).await?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Error::invalid("Idempotency-Key", "Idempotency-Key must be 1 to 255 visible ASCII characters"))?,
        ),
    };
    Ok(match svc.create_share(&practice, &body, key).await? {
        Created::New(view) => json_response(StatusCode::CREATED, view),
        Created::Replayed { status, body } => json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED), body),
    })
}

/// Takes a create body, as [`create`] does: a preview is checked as the create would be.
pub async fn preview(State(svc): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    let body = create_body(body).await?;
    Ok(json_response(StatusCode::OK, svc.preview_share(&practice, &body)?))
}

/// A create body, up to [`MAX_BODY_BYTES`].
async fn create_body(body: Body) -> Result<axum::body::Bytes, Error> {
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        let too_large =
            std::error::Error::source(&e).is_some_and(|s| s.downcast_ref::<http_body_util::LengthLimitError>().is_some());
        if too_large { Error::PayloadTooLarge } else { Error::invalid("body", "the request body could not be read") }
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

pub async fn list(
    State(svc): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    let Query(q) = query.map_err(|_| Error::invalid("query", "the query string could not be read"))?;
    let list = svc.list_shares(&practice, q.cursor.as_deref(), q.limit.as_deref()).await?;
    Ok(json_response(StatusCode::OK, list))
}

pub async fn get(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    Ok(json_response(StatusCode::OK, svc.get_share(&practice, &share_id(&id)?).await?))
}

pub async fn resend(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    Ok(json_response(StatusCode::OK, svc.resend(&practice, &share_id(&id)?).await?))
}

pub async fn send(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    Ok(match svc.send_share(&practice, &share_id(&id)?).await? {
        Sent::Accepted(view) => json_response(StatusCode::ACCEPTED, view),
        Sent::Done(view) => json_response(StatusCode::OK, view),
    })
}

pub async fn upload_url(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path((id, doc)): Path<(String, String)>,
) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    Ok(json_response(StatusCode::OK, svc.renew_upload_url(&practice, &share_id(&id)?, &doc).await?))
}

pub async fn revoke(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    Ok(json_response(StatusCode::OK, svc.revoke(&practice, &share_id(&id)?).await?))
}
