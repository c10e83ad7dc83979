//! Lambda function `webhooks`: a practice's webhook endpoints (`/v1/webhooks…`, every method).
//! Rare calls, so one function serves them all (see `sealpost::http::Route::function_name`).

#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_route(sealpost::http::Route::ListWebhooks).await
}
