//! The practice API: bearer API key, a practice sees only its own shares.

use super::{AppState, MAX_BODY_BYTES, header_str, json_response, read_body, share_id};
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
    let body = read_body(body, MAX_BODY_BYTES).await?;
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
    let body = read_body(body, MAX_BODY_BYTES).await?;
    Ok(json_response(StatusCode::OK, svc.preview_share(&practice, &body)?))
}

/// `GET /v1/shares/{id}/replies`.
pub async fn replies(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    Ok(json_response(StatusCode::OK, svc.list_replies(&practice, &share_id(&id)?).await?))
}

/// `GET /v1/shares/{id}/replies/{reply}/files/{index}`.
pub async fn reply_file(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path((id, reply, index)): Path<(String, String, String)>,
) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    Ok(json_response(StatusCode::OK, svc.reply_file_url(&practice, &share_id(&id)?, &reply, &index).await?))
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
