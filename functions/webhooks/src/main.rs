//! Lambda function `webhooks`: a practice's webhook endpoints (`/v1/webhooks…`, every method).
//! Rare calls, so one function serves them all (see `sealpost::http::Route::function_name`).

use sealpost::http::Route;

/// The routes are written out, not looked up at run time: the build links only their handlers
/// and the ports they use (`sealpost::serve_routes!`).
#[tokio::main]
async fn main() -> Result<(), sealpost::lambda::Error> {
    sealpost::serve_routes!(
        Route::CreateWebhook,
        Route::ListWebhooks,
        Route::GetWebhook,
        Route::UpdateWebhook,
        Route::DeleteWebhook,
        Route::TestWebhook,
        Route::WebhookFailures,
    )
}
