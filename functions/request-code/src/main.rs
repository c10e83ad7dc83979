//! Lambda function `request-code`: one route of the Sealpost API (see `sealpost::http::Route`).

use sealpost::http::Route;

/// The routes are written out, not looked up at run time: the build links only their handlers
/// and the ports they use (`sealpost::serve_routes!`).
#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::serve_routes!(Route::RequestCode)
}
