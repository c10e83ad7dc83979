//! The webhook deliveries' SQS FIFO queue. One message per event and endpoint; the message
//! group is the endpoint and share, so SQS hands out a share's deliveries to one endpoint in
//! order and holds the next back while one is in flight or waiting for a retry; the
//! deduplication id is the endpoint and event, so a stream batch fanned out twice queues once.

use crate::service::{Delivered, Delivery, Service};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

/// SQS allows at most 12 hours of invisibility; our backoff stays far below.
const MAX_VISIBILITY_SECS: i64 = 12 * 3600;

#[derive(Clone)]
pub struct WebhookQueue {
    clients: super::Clients,
    url: String,
}

/// A queue message as the sender gets it (from a Lambda SQS event, or a ReceiveMessage).
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// `ApproximateReceiveCount`: 1 on the first attempt.
    pub receive_count: u32,
    pub group_id: String,
}

impl WebhookQueue {
    pub fn new(clients: super::Clients, url: String) -> Self {
        Self { clients, url }
    }

    /// Queues deliveries in order, ten per request (SQS's batch limit).
    pub async fn enqueue(&self, deliveries: &[Delivery]) -> anyhow::Result<()> {
        for chunk in deliveries.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, d) in chunk.iter().enumerate() {
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(d)?)
                        .message_group_id(format!("{}:{}", d.webhook_id, d.share_id))
                        .message_deduplication_id(format!("{}:{}", d.webhook_id, d.event_id))
                        .build()?,
                );
            }
            let out = self.clients.sqs().send_message_batch().queue_url(&self.url).set_entries(Some(entries)).send().await?;
            if let Some(failed) = out.failed().first() {
                anyhow::bail!("SQS refused a delivery: {} {}", failed.code(), failed.message().unwrap_or_default());
            }
        }
        Ok(())
    }

    /// Hides a message (and so its group) until its retry is due.
    async fn postpone(&self, receipt_handle: &str, secs: i64) -> anyhow::Result<()> {
        postpone(&self.clients, &self.url, receipt_handle, secs).await
    }
}

/// Hides a received message of the queue at `url` (and so, on a FIFO queue, its group) for
/// `secs`, at most SQS's 12 hours: when a retry is due.
pub async fn postpone(clients: &super::Clients, url: &str, receipt_handle: &str, secs: i64) -> anyhow::Result<()> {
    let secs = i32::try_from(secs.clamp(0, MAX_VISIBILITY_SECS)).unwrap_or(0);
    clients
        .sqs()
        .change_message_visibility()
        .queue_url(url)
        .receipt_handle(receipt_handle)
        .visibility_timeout(secs)
        .send()
        .await?;
    Ok(())
}

/// What the sender did with a batch.
#[derive(Debug, Default)]
pub struct SendOutcome {
    /// Messages to leave in the queue (reported as batch item failures): those waiting for a
    /// retry, and those behind them in their group.
    pub retry: Vec<String>,
    /// Attempts made.
    pub attempts: usize,
}

/// Makes one attempt per message. Groups (an endpoint and a share) go concurrently, so one
/// slow endpoint does not hold up the rest of the batch; within a group messages go in order,
/// and when one is to be retried (hidden until its time) the later ones go back untried, so a
/// share's order holds.
pub async fn send_queued(service: &Service, queue: &WebhookQueue, messages: &[QueuedMessage]) -> SendOutcome {
    let mut groups: Vec<(&str, Vec<&QueuedMessage>)> = Vec::new();
    for m in messages {
        match groups.iter_mut().find(|(g, _)| *g == m.group_id) {
            Some((_, list)) => list.push(m),
            None => groups.push((&m.group_id, vec![m])),
        }
    }
    let outcomes = futures_util::future::join_all(groups.into_iter().map(|(_, list)| send_group(service, queue, list))).await;
    let mut outcome = SendOutcome::default();
    for o in outcomes {
        outcome.retry.extend(o.retry);
        outcome.attempts += o.attempts;
    }
    outcome
}

async fn send_group(service: &Service, queue: &WebhookQueue, messages: Vec<&QueuedMessage>) -> SendOutcome {
    let mut outcome = SendOutcome::default();
    let mut held = false;
    for m in messages {
        if held {
            // Back in the queue at once: SQS still holds it behind the hidden one before it.
            if let Err(e) = queue.postpone(&m.receipt_handle, 0).await {
                tracing::warn!(message_id = %m.message_id, error = %e, "could not release a held webhook message");
            }
            outcome.retry.push(m.message_id.clone());
            continue;
        }
        let delivery: Delivery = match serde_json::from_str(&m.body) {
            Ok(d) => d,
            Err(e) => {
                // Not ours to retry: it would fail the same way until the dead-letter queue.
                tracing::error!(message_id = %m.message_id, error = %e, "unreadable webhook message dropped");
                continue;
            }
        };
        outcome.attempts += 1;
        match service.deliver(&delivery, m.receive_count.saturating_sub(1)).await {
            Delivered::Yes | Delivered::Failed | Delivered::Dropped => {}
            Delivered::RetryAt(at) => {
                let wait = (at - service.now()).num_seconds().max(1);
                if let Err(e) = queue.postpone(&m.receipt_handle, wait).await {
                    // It comes back after the queue's visibility timeout instead.
                    tracing::warn!(message_id = %m.message_id, error = %e, "could not postpone a webhook retry");
                }
                outcome.retry.push(m.message_id.clone());
                held = true;
            }
        }
    }
    outcome
}
