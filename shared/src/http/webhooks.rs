//! The practice's webhook endpoints: register, list, read, change, remove, test, and the
//! deliveries that failed for good.

use super::{AppState, body_or_error, header_str, json_response, webhook_id};
use crate::domain::Practice;
use crate::error::Error;
use crate::service::Service;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

async fn practice(svc: &Service, headers: &HeaderMap) -> Result<Practice, Error> {
    svc.authenticate(header_str(headers, header::AUTHORIZATION.as_str())).await
}

pub async fn create(
    State(svc): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Error> {
    let practice = practice(&svc, &headers).await?;
    let body = body_or_error(body)?;
    Ok(json_response(StatusCode::CREATED, svc.create_webhook(&practice, &body).await?))
}

pub async fn list(State(svc): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    let practice = practice(&svc, &headers).await?;
    Ok(json_response(StatusCode::OK, svc.list_webhooks(&practice).await?))
}

pub async fn get(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let practice = practice(&svc, &headers).await?;
    Ok(json_response(StatusCode::OK, svc.get_webhook(&practice, &webhook_id(&id)?).await?))
}

pub async fn update(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Error> {
    let practice = practice(&svc, &headers).await?;
    let body = body_or_error(body)?;
    Ok(json_response(StatusCode::OK, svc.update_webhook(&practice, &webhook_id(&id)?, &body).await?))
}

pub async fn remove(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let practice = practice(&svc, &headers).await?;
    svc.delete_webhook(&practice, &webhook_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn test(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let practice = practice(&svc, &headers).await?;
    Ok(json_response(StatusCode::OK, svc.test_webhook(&practice, &webhook_id(&id)?).await?))
}

pub async fn failures(State(svc): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Error> {
    let practice = practice(&svc, &headers).await?;
    Ok(json_response(StatusCode::OK, svc.failed_deliveries(&practice, &webhook_id(&id)?).await?))
}
