//! Lambda function `feedback`: SES bounces and complaints (via SNS) and SNS SMS delivery
//! failures (via a CloudWatch Logs subscription) become share events.

#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_feedback().await
}
