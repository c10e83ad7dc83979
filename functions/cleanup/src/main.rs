//! Lambda function `cleanup`: fed by the table's DynamoDB stream, deletes the documents of
//! shares that TTL removed.

#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_cleanup().await
}
