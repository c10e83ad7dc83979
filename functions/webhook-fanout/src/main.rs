//! Lambda function `webhook-fanout`: fed by the table's DynamoDB stream, queues one webhook
//! delivery per new event and endpoint on the SQS FIFO queue.

#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_webhook_fanout().await
}
