//! The webhook HTTP client: one POST per attempt, 10 s in all, no redirects followed (a 3xx is
//! not a delivery), no proxy, nothing of the answer kept but its status. Where only public
//! endpoints are allowed (AWS), every address a host name resolves to is checked too, so a
//! name pointing at a private or metadata address (or re-pointed there after registration)
//! gets no request.

use crate::domain::{DELIVERY_TIMEOUT_SECS, UrlRule, is_public};
use crate::ports::{PostOutcome, WebhookPoster, WebhookRequest};
use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::time::Duration;

/// Built on its first delivery, not with the service: of the functions, only the webhook
/// sender and the webhook test route post, and building a client reads and parses the
/// system's CA certificates (what a public endpoint's certificate is checked against).
#[derive(Clone)]
pub struct HttpPoster {
    rule: UrlRule,
    client: std::sync::Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
}

/// The system resolver, keeping public addresses only.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<_> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err("the host has no public address".into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

impl HttpPoster {
    pub fn new(rule: UrlRule) -> Self {
        Self { rule, client: std::sync::Arc::default() }
    }

    fn client(&self) -> Result<&reqwest::Client, &str> {
        let built = self.client.get_or_init(|| {
            let mut builder = reqwest::Client::builder()
                .timeout(Duration::from_secs(DELIVERY_TIMEOUT_SECS))
                .connect_timeout(Duration::from_secs(DELIVERY_TIMEOUT_SECS))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .user_agent(concat!("Sealpost-Webhooks/", env!("CARGO_PKG_VERSION")));
            if self.rule == UrlRule::HttpsOnly {
                builder = builder.dns_resolver(std::sync::Arc::new(PublicOnly));
            }
            builder.build().map_err(|e| format!("webhook HTTP client: {e}"))
        });
        built.as_ref().map_err(String::as_str)
    }
}

#[async_trait]
impl WebhookPoster for HttpPoster {
    async fn post(&self, request: &WebhookRequest) -> PostOutcome {
        let client = match self.client() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "no webhook HTTP client");
                return PostOutcome::Failed("client".into());
            }
        };
        let mut builder = client.post(&request.url).body(request.body.clone());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::WebhookRequest;

    #[tokio::test]
    async fn public_only_refuses_a_name_that_resolves_to_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let request = |host: &str| WebhookRequest {
            url: format!("http://{host}:{port}/x"),
            headers: vec![],
            body: b"{}".to_vec(),
        };
        let strict = HttpPoster::new(UrlRule::HttpsOnly);
        // `localhost` resolves to 127.0.0.1: no request may leave.
        assert_eq!(strict.post(&request("localhost")).await, PostOutcome::Failed("connect".into()));
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
            tokio::io::AsyncWriteExt::write_all(&mut socket, b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        });
        let local = HttpPoster::new(UrlRule::AllowLoopbackHttp);
        assert_eq!(local.post(&request("localhost")).await, PostOutcome::Status(204));
        server.await.unwrap();
    }
}
