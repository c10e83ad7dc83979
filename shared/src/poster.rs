//! The webhook HTTP client: one POST per attempt, 10 s in all, no redirects followed (a 3xx is
//! not a delivery), nothing of the answer kept but its status.

use crate::domain::DELIVERY_TIMEOUT_SECS;
use crate::ports::{PostOutcome, WebhookPoster, WebhookRequest};
use async_trait::async_trait;
use std::time::Duration;

#[derive(Clone)]
pub struct HttpPoster {
    client: reqwest::Client,
}

impl HttpPoster {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(DELIVERY_TIMEOUT_SECS))
            .connect_timeout(Duration::from_secs(DELIVERY_TIMEOUT_SECS))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Sealpost-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook HTTP client: {e}"))?;
        Ok(Self { client })
    }
}

#[async_trait]
impl WebhookPoster for HttpPoster {
    async fn post(&self, request: &WebhookRequest) -> PostOutcome {
        let mut builder = self.client.post(&request.url).body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        match builder.send().await {
            Ok(response) => PostOutcome::Status(response.status().as_u16()),
            Err(e) if e.is_timeout() => PostOutcome::Timeout,
            Err(e) if e.is_connect() => PostOutcome::Failed("connect".into()),
            Err(e) if e.is_request() => PostOutcome::Failed("request".into()),
            Err(_) => PostOutcome::Failed("transport".into()),
        }
    }
}
