//! Lambda function `request-code`: one route of the Sealpost API (see `sealpost::http::Route`).

/// Its routes are those `sealpost::http::Route` gives this binary's name.
#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_function(env!("CARGO_BIN_NAME")).await
}
