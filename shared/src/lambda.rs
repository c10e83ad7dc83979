//! Entry points of the Lambda functions in `functions/`: each `main` is one call to
//! [`serve_route`] (or [`serve_cleanup`]). Adapters are built once per cold start, from the
//! environment (`crate::aws`), then every invocation reuses them.

use crate::aws::{AwsConfig, Clients, S3Blobs};
use crate::http::{Route, route_router};
use crate::ports::{BlobStore, SystemClock};
use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;

pub type Error = lambda_runtime::Error;

/// Serves one API route behind API Gateway's HTTP API (payload format 2.0).
pub async fn serve_route(route: Route) -> Result<(), Error> {
    crate::telemetry::init();
    let config = AwsConfig::from_env()?;
    let clients = Clients::from_env().await;
    let service = crate::aws::build_service(&config, &clients, Arc::new(SystemClock)).await?;
    lambda_http::run(route_router(route, service)).await
}

/// Deletes the documents of shares that DynamoDB's TTL removed (stream `REMOVE` records by
/// `dynamodb.amazonaws.com`). Reports failed records so only they are retried.
pub async fn serve_cleanup() -> Result<(), Error> {
    crate::telemetry::init();
    let bucket = std::env::var("BUCKET_NAME").map_err(|_| "BUCKET_NAME is not set")?;
    let clients = Clients::from_env().await;
    let blobs = S3Blobs::new(clients.s3, bucket);
    let blobs = &blobs;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<StreamEvent>| async move {
        Ok::<_, Error>(cleanup_removed_shares(blobs, &event.payload.records).await)
    }))
    .await
}

/// Runs the expiry sweep on each (scheduled) invocation: documents deleted when a link runs
/// out, `expired` and `expired_unread` recorded. TTL removes the records later; this is what
/// makes expiry prompt, since TTL may lag by days.
pub async fn serve_sweep() -> Result<(), Error> {
    crate::telemetry::init();
    let config = AwsConfig::from_env()?;
    let clients = Clients::from_env().await;
    let service = crate::aws::build_service(&config, &clients, Arc::new(SystemClock)).await?;
    let service = &service;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let processed = service.sweep_expired().await.map_err(|e| Error::from(e.to_string()))?;
        Ok::<_, Error>(serde_json::json!({ "expired": processed }))
    }))
    .await
}

/// The share a TTL deletion removed, if this record is one (any other change is ignored: a
/// revoke already deleted its documents, and the service deletes them at expiry).
pub fn removed_share_id(record: &EventRecord) -> Option<String> {
    let by_ttl = record.user_identity.as_ref().is_some_and(|u| u.principal_id == "dynamodb.amazonaws.com");
    if record.event_name != "REMOVE" || !by_ttl {
        return None;
    }
    let key = |name: &str| match record.change.keys.get(name) {
        Some(serde_dynamo::AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    };
    if key("sk")? != "SHARE" {
        return None; // an event, an idempotency record, a counter: no objects of its own
    }
    let id = key("pk")?.strip_prefix("SHARE#")?.to_owned();
    crate::domain::ShareId::parse(&id).map(|_| id)
}

/// Deletes each removed share's objects; answers the records that failed, for a retry.
pub async fn cleanup_removed_shares(blobs: &dyn BlobStore, records: &[EventRecord]) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in records {
        let Some(id) = removed_share_id(record) else { continue };
        if let Err(e) = blobs.delete_prefix(&format!("shares/{id}/")).await {
            tracing::error!(share_id = %id, error = %e, "could not delete a removed share's documents");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.change.sequence_number.clone();
            response.batch_item_failures.push(failure);
        } else {
            tracing::info!(share_id = %id, "documents of a TTL-removed share deleted");
        }
    }
    response
}
