//! Lambda function `sweep`: on a schedule, processes shares whose link ran out (documents
//! deleted, `expired` and `expired_unread` recorded).

#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_sweep().await
}
