//! The practice API over HTTP, as `sealpost send` and `status` call it: one base URL, one key,
//! JSON answers, the API's errors as one readable line.

use anyhow::{Context, anyhow, bail};
use serde_json::Value;
use std::time::Duration;

/// Time for one JSON call, a create with 4 MiB inline included.
const CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a call answered `429` is sent again, and the longest wait before one.
pub(crate) const RATE_LIMITED_RETRIES: u32 = 8;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// Where the practice API is, and the practice's key.
#[derive(clap::Args)]
pub struct ApiArgs {
    /// Base URL of the Sealpost API.
    #[arg(long = "api", env = "SEALPOST_API_URL", default_value = "http://127.0.0.1:8080")]
    pub(crate) api: String,
    /// The practice's API key (sp_live_…).
    #[arg(long = "key", env = "SEALPOST_API_KEY", hide_env_values = true)]
    pub(crate) key: String,
}

/// The practice API at one base URL, with one key.
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) key: String,
    pub(crate) http: reqwest::Client,
}

impl Api {
    pub(crate) fn new(args: &ApiArgs) -> anyhow::Result<Self> {
        let base = args.api.trim_end_matches('/').to_owned();
        match url::Url::parse(&base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => bail!("--api: {base:?} is not an http:// or https:// URL"),
        }
        if args.key.trim().is_empty() {
            bail!("--key: the API key is empty (or set SEALPOST_API_KEY)");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!("sealpost-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("could not start the HTTP client")?;
        Ok(Self { base, key: args.key.trim().to_owned(), http })
    }

    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.key).timeout(CALL_TIMEOUT)
    }

    pub(crate) fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.key).timeout(CALL_TIMEOUT)
    }

    /// `GET /v1/shares/{id}`: the share's view with its events.
    pub(crate) async fn share(&self, id: &str) -> Result<Value, CallError> {
        self.call(self.get(&format!("/v1/shares/{id}"))).await
    }

    /// Sends a JSON call; a 2xx answer's body, or the API's error as a readable line. A `429`
    /// (the API or its gateway asking to slow down; nothing was done) is sent again after the
    /// answer's `Retry-After`, or 1, 2, 4… seconds, up to [`RATE_LIMITED_RETRIES`] times.
    pub(crate) async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, CallError> {
        let (mut request, mut retries) = (request, 0);
        let response = loop {
            let again = request.try_clone();
            let response = request.send().await.map_err(|e| self.transport(&e))?;
            match again {
                Some(again) if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS && retries < RATE_LIMITED_RETRIES => {
                    let asked =
                        response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.trim().parse().ok());
                    let wait = Duration::from_secs(asked.unwrap_or(1 << retries)).min(MAX_RETRY_WAIT);
                    tokio::time::sleep(wait).await;
                    (request, retries) = (again, retries + 1);
                }
                _ => break response,
            }
        };
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        // A 5xx or 429 may or may not have done the work: only those are worth a retry.
        let may_have_happened = status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        let message = match api_error(&body) {
            _ if status.is_success() && body.is_object() => return Ok(body),
            _ if status.is_success() => {
                format!("{} answered HTTP {status} without a JSON body: is it a Sealpost API?", self.base)
            }
            Some(reason) => reason,
            None => format!("{} answered HTTP {status}: is it a Sealpost API?", self.base),
        };
        Err(CallError { message, may_have_happened, status: Some(status) })
    }

    fn transport(&self, e: &reqwest::Error) -> CallError {
        if e.is_connect() {
            // Nothing reached the API: a plain retry is as safe as the first try.
            let message = format!("could not reach the Sealpost API at {}: {}", self.base, root_cause(e));
            return CallError { message, may_have_happened: false, status: None };
        }
        let message = if e.is_timeout() {
            format!("no answer from {} in time", self.base)
        } else {
            format!("the call to {} failed: {}", self.base, root_cause(e))
        };
        CallError { message, may_have_happened: true, status: None }
    }
}

/// A failed call, and whether the API may have done the work anyway (a timeout, a 5xx).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CallError {
    pub(crate) message: String,
    pub(crate) may_have_happened: bool,
    /// The API's answer, when it answered.
    pub(crate) status: Option<reqwest::StatusCode>,
}

impl CallError {
    /// After a create or send that may have happened, the way to retry it safely (`again`:
    /// "the same command with --idempotency-key …").
    pub(crate) fn with_retry_hint(self, again: &str) -> anyhow::Error {
        if self.may_have_happened {
            anyhow!("{}\n(to retry without sending twice: {again})", self.message)
        } else {
            anyhow!(self)
        }
    }
}

/// `field: message` from `{"error": {"code", "message", "field"?}}`.
pub(crate) fn api_error(body: &Value) -> Option<String> {
    let error = &body["error"];
    let message = error["message"].as_str()?;
    let mut line = match error["field"].as_str() {
        Some(field) => format!("{field}: {message}"),
        None => message.to_owned(),
    };
    if let Some(code) = error["code"].as_str() {
        line += &format!(" ({code})");
    }
    Some(line)
}

/// The innermost error's words ("Connection refused (os error 111)"), not reqwest's wrapping.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A server that answers `429` (with `Retry-After: {retry_after}`) to the first `busy`
    /// calls, then `200`.
    async fn busy_server(busy: u32, retry_after: &'static str) -> (Api, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let app = axum::Router::new().route(
            "/v1/shares",
            axum::routing::post(move || async move {
                use axum::response::IntoResponse;
                if counted.fetch_add(1, Ordering::SeqCst) < busy {
                    let error = serde_json::json!({"error": {"code": "rate_limited", "message": "slow down"}});
                    (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry_after)], axum::Json(error)).into_response()
                } else {
                    axum::Json(serde_json::json!({"id": "made"})).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (Api::new(&ApiArgs { api: base, key: "sp_live_k".into() }).unwrap(), calls)
    }

    #[tokio::test]
    async fn a_429_is_sent_again_after_its_retry_after() {
        let (api, calls) = busy_server(3, "0").await;
        let answer = api.call(api.post("/v1/shares").json(&serde_json::json!({"a": 1}))).await.expect("answered");
        assert_eq!(answer["id"], "made");
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // The wait is the one the API asked for (a lower bound only: the machine may be slow).
        let (api, _) = busy_server(1, "1").await;
        let started = std::time::Instant::now();
        api.call(api.post("/v1/shares").json(&serde_json::json!({"a": 1}))).await.expect("answered");
        assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_429_that_lasts_ends_as_the_apis_error() {
        let (api, calls) = busy_server(u32::MAX, "0").await;
        let err = api.call(api.post("/v1/shares").json(&serde_json::json!({"a": 1}))).await.unwrap_err();
        assert_eq!(err.message, "slow down (rate_limited)");
        assert!(err.may_have_happened);
        assert_eq!(calls.load(Ordering::SeqCst), RATE_LIMITED_RETRIES + 1);
    }
}
