//! Lambda function `verify-code`: one route of the Sealpost API (see `sealpost::http::Route`).

use sealpost::http::{Route, route_router};

/// Written out, not looked up at run time: the build links only these routes' handlers, and
/// only the adapters they use (`Route::uses_of`).
const ROUTES: &[Route] = &[Route::VerifyCode];

#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_routes::<{ Route::uses_of(ROUTES).bits() }>(|service| route_router(ROUTES, service)).await
}
