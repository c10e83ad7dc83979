//! Lambda function `archive-url`: one route of the Sealpost API (see `sealpost::http::Route`).

use sealpost::http::{Route, route_router};

/// The routes are written out, not looked up at run time: the build links only their handlers.
#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_routes(|service| route_router(&[Route::ArchiveUrl], service)).await
}
