//! The Lambda functions. One binary (`lambda/`) is every function: template.yaml deploys it
//! once per function and names the function in its `Handler`, which Lambda passes to the
//! process as `_HANDLER` ([`serve_handler`]). Adapters are built once per cold start, from the
//! environment (`crate::aws`), then every invocation reuses them.

use crate::aws::stream::{new_event, removed_share_id};
use crate::aws::{AwsConfig, Clients, QueuedMessage, S3Blobs, WebhookQueue, send_queued};
use crate::domain::Event;
use crate::http::{HttpRouter, Route, route_router};
use crate::ports::{BlobStore, Clock, OnlyBlobs, SystemClock, Uses};
use crate::service::Service;
use aws_lambda_events::event::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use axum::http::header::SET_COOKIE;
use lambda_http::request::LambdaRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;

pub type Error = lambda_runtime::Error;

/// What the functions that serve no API route use: the expiry sweep deletes documents, and
/// queues again the send of a share still sending long after it was queued.
pub const SWEEP_USES: Uses = Uses::DOCUMENT_DELETION.and(Uses::SENDS);
/// Bounce and SMS failure reports only record events.
pub const FEEDBACK_USES: Uses = Uses::NOTHING;
/// The fan-out only reads endpoints and queues deliveries (SQS, not a service port).
pub const WEBHOOK_FANOUT_USES: Uses = Uses::NOTHING;
/// The sender signs and posts.
pub const WEBHOOK_SENDER_USES: Uses = Uses::KEYS.and(Uses::WEBHOOK_POSTS);
/// The TTL cleanup deletes documents (and builds no service).
pub const CLEANUP_USES: Uses = Uses::DOCUMENT_DELETION;
/// The send worker moves uploads into place and archives them (deleting what fails), makes
/// an `sms` share's code and notifies the patient.
pub const SEND_WORKER_USES: Uses = Uses::DOCUMENTS.and(Uses::DOCUMENT_DELETION).and(Uses::KEYS).and(Uses::SMS).and(Uses::EMAIL);

/// The functions that serve no API route, by handler name (the route functions are
/// [`Route::function_name`]'s).
pub const EVENT_FUNCTIONS: [&str; 6] = ["sweep", "cleanup", "webhook-fanout", "webhook-sender", "feedback", "send-worker"];

/// Every function's handler name, as template.yaml must name them: the route functions, then
/// [`EVENT_FUNCTIONS`].
pub fn function_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = Route::ALL.iter().map(|r| r.function_name()).collect();
    names.sort_unstable();
    names.dedup();
    names.extend(EVENT_FUNCTIONS);
    names
}

/// The binary's `main`: serves the function Lambda's `_HANDLER` names (its `Handler` in
/// template.yaml). One binary for every function means one link per `sam build`, not one per
/// function (BENCHMARKS.md, section 3); a name that is no function fails the cold start, so a
/// deploy with a wrong `Handler` fails at its first invocation, loudly.
pub async fn serve_handler() -> Result<(), Error> {
    let name = std::env::var("_HANDLER").map_err(|_| "_HANDLER is not set (Lambda sets it to the function's Handler)")?;
    serve_named(&name).await
}

/// [`serve_handler`] for the function `name`. Each entry point's future is boxed: inline, the
/// six of them would make one state machine deeper than the compiler lays out.
async fn serve_named(name: &str) -> Result<(), Error> {
    type Serving<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + 'a>>;
    let serving: Serving = match name {
        "sweep" => Box::pin(serve_sweep()),
        "cleanup" => Box::pin(serve_cleanup()),
        "webhook-fanout" => Box::pin(serve_webhook_fanout()),
        "webhook-sender" => Box::pin(serve_webhook_sender()),
        "feedback" => Box::pin(serve_feedback()),
        "send-worker" => Box::pin(serve_send_worker()),
        route if !Route::of_function(route).is_empty() => Box::pin(serve_function(route)),
        other => {
            return Err(
                format!("no Sealpost function is named {other:?}; the handlers are: {}", function_names().join(", ")).into()
            );
        }
    };
    serving.await
}

/// What the function `name` uses: a route function, what its routes use
/// ([`Route::uses`]); the others, what their entry points below give their service. `None` for
/// a name that is no function.
pub fn function_uses(name: &str) -> Option<Uses> {
    match name {
        "sweep" => Some(SWEEP_USES),
        "feedback" => Some(FEEDBACK_USES),
        "webhook-fanout" => Some(WEBHOOK_FANOUT_USES),
        "webhook-sender" => Some(WEBHOOK_SENDER_USES),
        "cleanup" => Some(CLEANUP_USES),
        "send-worker" => Some(SEND_WORKER_USES),
        _ => {
            let routes = Route::of_function(name);
            (!routes.is_empty()).then(|| Route::uses_of(&routes))
        }
    }
}

/// A route function's router: its routes ([`Route::function_name`]) over the AWS adapters of
/// what they use ([`Route::uses_of`]), and no more. What its `main` serves ([`serve_function`]),
/// and what the contract suite sends each API call through on AWS. `None` for a name that
/// serves no route.
pub fn function_router(name: &str, config: &AwsConfig, clients: &Clients, clock: Arc<dyn Clock>) -> Option<HttpRouter> {
    let routes = Route::of_function(name);
    if routes.is_empty() {
        return None;
    }
    let service = crate::aws::build_service(config, clients, clock, Route::uses_of(&routes));
    Some(route_router(&routes, service))
}

/// A route function, `name` (its `Handler` in template.yaml): serves its
/// routes behind API Gateway's HTTP API (payload format 2.0), with the adapters built once per
/// cold start from Lambda's environment.
pub async fn serve_function(name: &str) -> Result<(), Error> {
    crate::telemetry::init();
    let config = AwsConfig::from_env()?;
    if Route::uses_of(&Route::of_function(name)).has(Uses::SENDS) && config.send_queue_url.is_none() {
        return Err("SEND_QUEUE_URL is not set".into());
    }
    let clients = Clients::from_lambda_env()?;
    let router =
        function_router(name, &config, &clients, Arc::new(SystemClock)).ok_or_else(|| format!("no route is served by {name}"))?;
    lambda_runtime::run(service_fn(move |event| answer(router.clone(), event))).await
}

/// One API Gateway invocation (HTTP API, payload format 2.0) through `router`: lambda_http turns
/// the event into a request, and the answer becomes the event API Gateway reads. lambda_http's
/// own `run` converts answers too, decoding each body by the character set its type names, with
/// every character set's tables linked in and a panic should a body fail; Sealpost's answers
/// are UTF-8 JSON or empty, so the body goes as it is (base64 only if it were not UTF-8).
/// Set-Cookie headers go to `cookies`, as payload 2.0 wants them. The Lambda context and X-Ray
/// header lambda_http would add to the request are left out: no handler reads them.
async fn answer(mut router: HttpRouter, event: LambdaEvent<LambdaRequest>) -> Result<ApiGatewayV2httpResponse, Error> {
    use http_body_util::BodyExt;
    use tower::Service as _;
    let Ok(response) = router.call(lambda_http::Request::from(event.payload)).await;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let mut headers = parts.headers;
    let cookies = headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok().map(str::to_owned)).collect();
    headers.remove(SET_COOKIE);
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = headers;
    out.cookies = cookies;
    if !bytes.is_empty() {
        out.body = Some(match String::from_utf8(bytes.to_vec()) {
            Ok(text) => lambda_http::Body::Text(text),
            Err(binary) => {
                out.is_base64_encoded = true;
                lambda_http::Body::Binary(binary.into_bytes())
            }
        });
    }
    Ok(out)
}

/// One invocation of a route function's router, as its `main` makes it ([`answer`]): the API
/// Gateway event (payload 2.0) turned into a request by lambda_http, the router, the answer
/// turned into the event API Gateway reads. For the contract suite, which runs every API call
/// on the AWS backend through here (tests/src/gateway.rs).
pub async fn invoke_route(router: HttpRouter, event: serde_json::Value) -> Result<serde_json::Value, Error> {
    let request: LambdaRequest = serde_json::from_value(event)?;
    let response = answer(router, LambdaEvent::new(request, lambda_runtime::Context::default())).await?;
    Ok(serde_json::to_value(response)?)
}

/// The start of a function that serves no route: telemetry, and the service over the AWS
/// adapters of `uses`, built once per cold start from Lambda's environment (with its clients).
fn function_service(uses: Uses) -> Result<(Arc<Service>, Clients), Error> {
    crate::telemetry::init();
    let config = AwsConfig::from_env()?;
    let clients = Clients::from_lambda_env()?;
    Ok((crate::aws::build_service(&config, &clients, Arc::new(SystemClock), uses), clients))
}

/// Deletes the documents of shares that DynamoDB's TTL removed (stream `REMOVE` records by
/// `dynamodb.amazonaws.com`). Reports failed records so only they are retried.
pub async fn serve_cleanup() -> Result<(), Error> {
    crate::telemetry::init();
    let bucket = std::env::var("BUCKET_NAME").map_err(|_| "BUCKET_NAME is not set")?;
    let clients = Clients::from_lambda_env()?;
    let blobs = OnlyBlobs { inner: Arc::new(S3Blobs::new(clients, bucket)), uses: CLEANUP_USES };
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
    if std::env::var("SEND_QUEUE_URL").is_err() {
        return Err("SEND_QUEUE_URL is not set".into());
    }
    let (service, _) = function_service(SWEEP_USES)?;
    let service = &service;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let processed = service.sweep_expired().await.map_err(|e| Error::from(e.to_string()))?;
        Ok::<_, Error>(serde_json::json!({ "expired": processed }))
    }))
    .await
}

/// The service and the webhook queue, for the webhook functions.
fn webhook_context(uses: Uses) -> Result<(std::sync::Arc<Service>, WebhookQueue), Error> {
    let (service, clients) = function_service(uses)?;
    let queue_url = std::env::var("WEBHOOK_QUEUE_URL").map_err(|_| "WEBHOOK_QUEUE_URL is not set")?;
    Ok((service, WebhookQueue::new(clients, queue_url)))
}

/// Fed by the table's stream: each new event becomes one queued delivery per endpoint of its
/// practice. A failed record is reported, so the stream resumes from it (SQS drops duplicates
/// of what was queued already, by deduplication id).
pub async fn serve_webhook_fanout() -> Result<(), Error> {
    let (service, queue) = webhook_context(WEBHOOK_FANOUT_USES)?;
    let (service, queue) = (&service, &queue);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<StreamEvent>| async move {
        Ok::<_, Error>(fan_out_records(service, queue, &event.payload.records).await)
    }))
    .await
}

/// Queues the deliveries of each record's event, in order; stops at the first failure and
/// reports it (and so everything after it) for a retry.
pub async fn fan_out_records(service: &Service, queue: &WebhookQueue, records: &[EventRecord]) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in records {
        let Some(event) = new_event(record) else { continue };
        if let Err(e) = fan_out_event(service, queue, &event).await {
            tracing::error!(event_id = %event.id, error = %e, "could not queue webhook deliveries");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.change.sequence_number.clone();
            response.batch_item_failures.push(failure);
            break;
        }
    }
    response
}

pub async fn fan_out_event(service: &Service, queue: &WebhookQueue, event: &Event) -> anyhow::Result<()> {
    let deliveries = service.fan_out(event).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    queue.enqueue(&deliveries).await
}

/// Fed by the FIFO queue (with `ReportBatchItemFailures`): one attempt per message; messages
/// to retry stay in the queue, hidden until their time.
pub async fn serve_webhook_sender() -> Result<(), Error> {
    let (service, queue) = webhook_context(WEBHOOK_SENDER_USES)?;
    let (service, queue) = (&service, &queue);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let outcome = send_queued(service, queue, &queued_messages(event.payload)).await;
        let failures = outcome.retry.into_iter().map(|item_identifier| ItemFailure { item_identifier }).collect();
        Ok::<_, Error>(SqsBatchResponse { batch_item_failures: failures })
    }))
    .await
}

/// An SQS event as Lambda delivers it: only what the sender reads (a small struct of our own
/// spares the functions the much larger event crate feature).
#[derive(Debug, serde::Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records")]
    records: Vec<SqsRecord>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SqsRecord {
    message_id: String,
    receipt_handle: String,
    body: String,
    #[serde(default)]
    attributes: std::collections::HashMap<String, String>,
}

/// The answer that tells Lambda which messages to leave in the queue.
#[derive(Debug, serde::Serialize)]
pub struct SqsBatchResponse {
    #[serde(rename = "batchItemFailures")]
    batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, serde::Serialize)]
struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    item_identifier: String,
}

/// The messages of an SQS event, with their receive count and group.
pub fn queued_messages(event: SqsEvent) -> Vec<QueuedMessage> {
    event
        .records
        .into_iter()
        .map(|m| QueuedMessage {
            receive_count: m.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
            group_id: m.attributes.get("MessageGroupId").cloned().unwrap_or_default(),
            message_id: m.message_id,
            receipt_handle: m.receipt_handle,
            body: m.body,
        })
        .collect()
}

/// Fed by the send queue (FIFO, one message at a time, `ReportBatchItemFailures`): the work
/// each `send` queued ([`Service::finish_send`]).
pub async fn serve_send_worker() -> Result<(), Error> {
    let (service, clients) = function_service(SEND_WORKER_USES)?;
    let queue_url = std::env::var("SEND_QUEUE_URL").map_err(|_| "SEND_QUEUE_URL is not set")?;
    let (service, clients, queue_url) = (&service, &clients, &queue_url);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let messages = queued_messages(event.payload);
        let failed = work_sends(service, &messages).await;
        // A failed attempt comes back after a backoff (1, 2, 4 ... 15 minutes), not after the
        // queue's visibility timeout (90 minutes, for a run that timed out).
        for m in messages.iter().filter(|m| failed.contains(&m.message_id)) {
            let secs = (60i64 << m.receive_count.saturating_sub(1).min(4)).min(900);
            if let Err(e) = crate::aws::postpone(clients, queue_url, &m.receipt_handle, secs).await {
                tracing::warn!(message_id = %m.message_id, error = %e, "could not postpone a retry");
            }
        }
        let failures = failed.into_iter().map(|item_identifier| ItemFailure { item_identifier }).collect();
        Ok::<_, Error>(SqsBatchResponse { batch_item_failures: failures })
    }))
    .await
}

/// Works the share each message names (its body is the share's id); answers the ids of the
/// messages that failed, which SQS offers again (and, after five, leaves in the dead-letter
/// queue). A message that names no share is done.
pub async fn work_sends(service: &Service, messages: &[QueuedMessage]) -> Vec<String> {
    let mut failed = Vec::new();
    for m in messages {
        let Some(id) = crate::domain::ShareId::parse(m.body.trim()) else {
            tracing::warn!(message_id = %m.message_id, "a send message that names no share: dropped");
            continue;
        };
        if let Err(e) = service.finish_send(&id).await {
            tracing::error!(share_id = %id, error = %e, attempt = m.receive_count, "sending a share failed; SQS retries it");
            failed.push(m.message_id.clone());
        }
    }
    failed
}

/// SES bounce and complaint notifications (SNS) and SNS SMS delivery failures (CloudWatch
/// Logs) become `email_bounced` and `sms_delivery_failed` events (see `crate::feedback`).
pub async fn serve_feedback() -> Result<(), Error> {
    let (service, _) = function_service(FEEDBACK_USES)?;
    let service = &service;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let recorded = crate::feedback::handle(service, &event.payload).await.map_err(|e| Error::from(e.to_string()))?;
        Ok::<_, Error>(serde_json::json!({ "recorded": recorded }))
    }))
    .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_name_is_served_with_what_it_uses() {
        let names = function_names();
        assert_eq!(names.len(), 22, "{names:?}");
        for name in names {
            assert!(function_uses(name).is_some(), "{name}");
            assert!(EVENT_FUNCTIONS.contains(&name) == Route::of_function(name).is_empty(), "{name}: routes or events, not both");
        }
    }

    #[tokio::test]
    async fn a_handler_that_is_no_function_fails_the_cold_start() {
        let error = serve_named("verify").await.expect_err("no such function").to_string();
        assert!(error.contains("no Sealpost function is named \"verify\"") && error.contains("verify-code"), "{error}");
    }
}
