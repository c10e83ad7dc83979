//! Lambda function `webhooks`: a practice's webhook endpoints (`/v1/webhooks…`, every method).
//! Rare calls, so one function serves them all (see `sealpost::http::Route::function_name`).

use sealpost::http::{Route, route_router};

/// Written out, not looked up at run time: the build links only these routes' handlers, and
/// only the adapters they use (`Route::uses_of`).
const ROUTES: &[Route] = &[
    Route::CreateWebhook,
    Route::ListWebhooks,
    Route::GetWebhook,
    Route::UpdateWebhook,
    Route::DeleteWebhook,
    Route::TestWebhook,
    Route::WebhookFailures,
];

#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::lambda::serve_routes::<{ Route::uses_of(ROUTES).bits() }>(|service| route_router(ROUTES, service)).await
}
