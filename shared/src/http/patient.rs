//! The patient API: the share id from the link, then a short-lived access token.

use super::{AppState, REPLY_BODY_BYTES, body_or_error, header_str, json_response, read_body, share_id};
use crate::error::Error;
use crate::service::{VerifyIn, parse_json};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

pub async fn info(State(svc): State<AppState>, Path(id): Path<String>) -> Result<Response, Error> {
    Ok(json_response(StatusCode::OK, svc.public_share(&share_id(&id)?).await?))
}

pub async fn verify(
    State(svc): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Error> {
    let answer: VerifyIn = parse_json(&body_or_error(body)?)?;
    Ok(json_response(StatusCode::OK, svc.verify(&share_id(&id)?, &answer).await?))
}

pub async fn request_code(State(svc): State<AppState>, Path(id): Path<String>) -> Result<Response, Error> {
    Ok(json_response(StatusCode::ACCEPTED, svc.request_code(&share_id(&id)?).await?))
}

pub async fn document(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path((id, doc)): Path<(String, String)>,
) -> Result<Response, Error> {
    let token = header_str(&headers, header::AUTHORIZATION.as_str());
    Ok(json_response(StatusCode::OK, svc.document_url(&share_id(&id)?, &doc, token).await?))
}

pub async fn archive(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let token = header_str(&headers, header::AUTHORIZATION.as_str());
    Ok(json_response(StatusCode::OK, svc.archive_url(&share_id(&id)?, token).await?))
}

/// `POST /v1/public/shares/{id}/replies`: the body is read once the share and token are known
/// to be worth it (up to [`REPLY_BODY_BYTES`]).
pub async fn start_reply(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, Error> {
    let token = header_str(&headers, header::AUTHORIZATION.as_str());
    let share = svc.reply_share(&share_id(&id)?, token).await?;
    let body = read_body(body, REPLY_BODY_BYTES).await?;
    Ok(json_response(StatusCode::CREATED, svc.start_reply(share, &body).await?))
}

pub async fn submit_reply(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path((id, reply)): Path<(String, String)>,
) -> Result<Response, Error> {
    let token = header_str(&headers, header::AUTHORIZATION.as_str());
    Ok(json_response(StatusCode::OK, svc.submit_reply(&share_id(&id)?, token, &reply).await?))
}
