//! Lambda function `webhook-sender`: fed by the SQS FIFO queue, posts each delivery, signed,
//! to its endpoint; retries wait in the queue.

#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_webhook_sender().await
}
