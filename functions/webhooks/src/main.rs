//! Lambda function `webhooks`: a practice's webhook endpoints (`/v1/webhooks…`, every method).

/// Its routes are those `sealpost::http::Route` gives this binary's name.
#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_function(env!("CARGO_BIN_NAME")).await
}
