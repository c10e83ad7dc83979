//! The webhook HTTP client: one POST per attempt, 10 s in all, no redirects followed (a 3xx is
//! not a delivery), no proxy, nothing of the answer kept but its status. Every URL is checked
//! against the backend's rule again before it is posted to (an endpoint stored under an older
//! rule, an address literal), and every address a host name resolves to is checked too: public
//! ones only, or loopback ones only for the embedded backend's plain-HTTP exception. So a name
//! pointing at a private or metadata address (or re-pointed there after registration) gets no
//! request.

use crate::domain::{DELIVERY_TIMEOUT_SECS, Reach, UrlRule, Webhook, is_public};
use crate::ports::{PostOutcome, WebhookPoster, WebhookRequest};
use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

type LazyClient = Arc<OnceLock<Result<reqwest::Client, String>>>;

/// Built on its first delivery, not with the service: of the functions, only the webhook
/// sender and the webhook test route post, and building a client reads and parses the
/// system's CA certificates (what a public endpoint's certificate is checked against).
#[derive(Clone)]
pub struct HttpPoster {
    rule: UrlRule,
    /// For `https` to public hosts.
    public: LazyClient,
    /// For plain `http` to loopback, where the rule allows it.
    loopback: LazyClient,
}

/// The system resolver, keeping only the addresses an endpoint may be reached at.
struct Keeping(Reach);

impl Resolve for Keeping {
    fn resolve(&self, name: Name) -> Resolving {
        let reach = self.0;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let kept: Vec<_> = found
                .filter(|a| match reach {
                    Reach::Public => is_public(a.ip()),
                    Reach::Loopback => a.ip().to_canonical().is_loopback(),
                })
                .collect();
            if kept.is_empty() {
                return Err(match reach {
                    Reach::Public => "the host has no public address".into(),
                    Reach::Loopback => "the host has no loopback address".into(),
                });
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

impl HttpPoster {
    pub fn new(rule: UrlRule) -> Self {
        Self { rule, public: LazyClient::default(), loopback: LazyClient::default() }
    }

    fn client(&self, reach: Reach) -> Result<&reqwest::Client, &str> {
        let cell = match reach {
            Reach::Public => &self.public,
            Reach::Loopback => &self.loopback,
        };
        let built = cell.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(DELIVERY_TIMEOUT_SECS))
                .connect_timeout(Duration::from_secs(DELIVERY_TIMEOUT_SECS))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .user_agent(concat!("Sealpost-Webhooks/", env!("CARGO_PKG_VERSION")))
                .dns_resolver(Arc::new(Keeping(reach)))
                .build()
                .map_err(|e| format!("webhook HTTP client: {e}"))
        });
        built.as_ref().map_err(String::as_str)
    }
}

#[async_trait]
impl WebhookPoster for HttpPoster {
    async fn post(&self, request: &WebhookRequest) -> PostOutcome {
        let Ok((_, reach)) = Webhook::check_url(&request.url, self.rule) else {
            return PostOutcome::Failed("url not allowed".into());
        };
        let client = match self.client(reach) {
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

    fn request(url: String) -> WebhookRequest {
        WebhookRequest { url, headers: vec![], body: b"{}".to_vec() }
    }

    #[tokio::test]
    async fn names_resolve_only_to_the_addresses_an_endpoint_may_reach() {
        let localhost = || "localhost".parse::<Name>().unwrap();
        // `localhost` resolves to loopback: nothing for a public endpoint …
        assert!(Keeping(Reach::Public).resolve(localhost()).await.is_err());
        // … and only loopback addresses for the embedded backend's http exception.
        let addrs: Vec<_> = Keeping(Reach::Loopback).resolve(localhost()).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    /// An endpoint stored before the embedded rule was tightened (issue 17), or any address
    /// literal (which never meets the resolver), gets no request unless the rule allows it now.
    #[tokio::test]
    async fn urls_are_checked_again_before_posting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let local = HttpPoster::new(UrlRule::AllowLoopbackHttp);
        let strict = HttpPoster::new(UrlRule::HttpsOnly);
        for (poster, url) in [
            (&local, format!("https://127.0.0.1:{port}/x")),
            (&local, format!("https://localhost:{port}/x")),
            (&local, "https://169.254.169.254/latest/meta-data".to_owned()),
            (&local, "http://10.0.0.1/x".to_owned()),
            (&strict, format!("http://localhost:{port}/x")),
        ] {
            assert_eq!(poster.post(&request(url.clone())).await, PostOutcome::Failed("url not allowed".into()), "{url}");
        }
        let connected = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(connected.is_err(), "no connection may be made");

        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
            tokio::io::AsyncWriteExt::write_all(&mut socket, b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        assert_eq!(local.post(&request(format!("http://localhost:{port}/x"))).await, PostOutcome::Status(204));
        server.await.unwrap();
    }
}
