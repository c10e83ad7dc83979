//! Every Sealpost Lambda function. template.yaml deploys this one binary as each function and
//! names the function in its `Handler`, which Lambda hands the process as `_HANDLER`
//! (`sealpost::lambda::serve_handler`).

#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_handler().await
}
