//! The practice API: bearer API key, a practice sees only its own shares.

use super::{AppState, body_or_error, header_str, json_response};
use crate::error::Error;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;

pub async fn create(
    State(svc): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    let body = body_or_error(body)?;
    let (status, value) = svc.create_share(&practice, &body, header_str(&headers, "idempotency-key")).await?;
    Ok(json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED), value))
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
    Ok(json_response(StatusCode::OK, svc.get_share(&practice, &id).await?))
}

pub async fn resend(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    Ok(json_response(StatusCode::OK, svc.resend(&practice, &id).await?))
}

pub async fn send(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    Ok(json_response(StatusCode::OK, svc.send_share(&practice, &id).await?))
}

pub async fn revoke(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let practice = svc.authenticate(header_str(&headers, header::AUTHORIZATION.as_str())).await?;
    Ok(json_response(StatusCode::OK, svc.revoke(&practice, &id).await?))
}
