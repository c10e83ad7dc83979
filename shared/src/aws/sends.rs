//! The send queue (SQS FIFO): one message per share being sent, for the `send-worker`
//! function. The message group is the share, so one worker at a time works on it; the
//! deduplication id is the share and the version it became `sending` at, so a `send` repeated
//! while sending queues nothing new within SQS's five minutes, and a later one (the message
//! lost, say) queues it again: the work is done once however often it runs.

use crate::domain::ShareId;
use crate::ports::{PortError, PortResult, SendQueue};
use async_trait::async_trait;

pub struct SqsSendQueue {
    clients: super::Clients,
    url: String,
}

impl SqsSendQueue {
    pub fn new(clients: super::Clients, url: String) -> Self {
        Self { clients, url }
    }
}

#[async_trait]
impl SendQueue for SqsSendQueue {
    async fn enqueue(&self, share: &ShareId, version: u64) -> PortResult<()> {
        self.clients
            .sqs()
            .send_message()
            .queue_url(&self.url)
            .message_body(share.as_str())
            .message_group_id(share.as_str())
            .message_deduplication_id(format!("{share}:{version}"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| PortError::Other(format!("sqs send: {}", aws_sdk_sqs::error::DisplayErrorContext(e))))
    }
}

/// The send queue of `sealpost serve --backend aws`: in the process, as its sweep is. The
/// work of a share queued before a restart is not kept: a `send` of it queues it again.
#[derive(Clone)]
pub struct InProcessSends(tokio::sync::mpsc::UnboundedSender<ShareId>);

impl InProcessSends {
    /// The queue, and the receiving end [`InProcessSends::work`] takes.
    pub fn new() -> (Self, tokio::sync::mpsc::UnboundedReceiver<ShareId>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    /// Works every queued share through `service` until the queue closes.
    pub async fn work(
        service: std::sync::Arc<crate::service::Service>,
        mut queued: tokio::sync::mpsc::UnboundedReceiver<ShareId>,
    ) {
        while let Some(id) = queued.recv().await {
            if let Err(e) = service.run_isolated(&id).await {
                tracing::error!(share_id = %id, error = %e, "sending a share failed; the sweep queues it again");
            }
        }
    }
}

#[async_trait]
impl SendQueue for InProcessSends {
    async fn enqueue(&self, share: &ShareId, _version: u64) -> PortResult<()> {
        self.0.send(share.clone()).map_err(|_| PortError::Other("the send worker has stopped".into()))
    }
}
