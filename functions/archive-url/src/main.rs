//! Lambda function `archive-url`: one route of the Sealpost API (see `sealpost::http::Route`).

#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_route(sealpost::http::Route::ArchiveUrl).await
}
