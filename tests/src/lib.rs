//! The harness of the contract suite: one isolated Sealpost per test, on an ephemeral port.
//!
//! The suite in `tests/api/` speaks only HTTP to [`TestApp::base_url`], and reads what was sent
//! through [`TestApp::sent_sms`] / [`TestApp::sent_emails`]; which backend answers is the
//! harness's business (`SEALPOST_TEST_BACKEND`, default `embedded`), so the same tests run
//! against every backend.

use chrono::{DateTime, Duration, Utc};
use sealpost::domain::Policy;
use sealpost::ports::ManualClock;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

/// An SMS as the backend's provider (outbox, or moto's SNS record) saw it.
#[derive(Debug, Clone)]
pub struct SentSms {
    pub to: String,
    pub body: String,
}

/// An email as the backend's provider saw it (`body` is the plain-text part).
#[derive(Debug, Clone)]
pub struct SentEmail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    /// The default practice's API key.
    pub api_key: String,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    pub data_dir: PathBuf,
    service: Arc<sealpost::service::Service>,
    _tmp: Arc<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// A fixed start so that tests read the same on any day.
pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").expect("valid time").with_timezone(&Utc)
}

impl TestApp {
    /// A fresh app with the default policy.
    pub async fn spawn() -> Self {
        Self::spawn_with(Policy::default()).await
    }

    /// A fresh app whose default practice has `policy`.
    pub async fn spawn_with(policy: Policy) -> Self {
        let tmp = Arc::new(tempfile::tempdir().expect("temp dir"));
        let clock = ManualClock::new(start_time());
        let api_key = format!("sp_live_{}", hex::encode(sealpost::domain::random_bytes::<32>()));
        let app = Self::start(tmp, clock, api_key.clone()).await;
        let practice = sealpost::embedded::default_practice_id(&app.data_dir)
            .await
            .expect("default practice");
        sealpost::embedded::set_policy(&app.data_dir, &practice, policy).await.expect("policy");
        app
    }

    async fn start(tmp: Arc<tempfile::TempDir>, clock: ManualClock, api_key: String) -> Self {
        let data_dir = tmp.path().to_path_buf();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let options = sealpost::embedded::Options {
            data_dir: data_dir.clone(),
            public_url: base_url.clone(),
            api_key: Some(api_key.clone()),
            quiet: true,
        };
        let app = sealpost::embedded::build(options, Arc::new(clock.clone())).await.expect("embedded app");
        let service = app.service.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            sealpost::server::serve(listener, app.router, async {
                let _ = rx.await;
            })
            .await
            .expect("server");
        });
        Self {
            base_url,
            api_key,
            clock,
            http: reqwest::Client::new(),
            data_dir,
            service,
            _tmp: tmp,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server and starts a new one on the same data (a new port): nothing may be lost.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        Self::start(self._tmp.clone(), self.clock.clone(), self.api_key.clone()).await
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Moves the app's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Runs the expiry sweep once, as the server's periodic task does (after moving the clock).
    pub async fn sweep(&self) -> usize {
        self.service.sweep_expired().await.expect("sweep")
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Creates another practice with `policy`; returns its API key.
    pub async fn add_practice(&self, name: &str, policy: Policy) -> String {
        sealpost::embedded::add_practice(&self.data_dir, name, policy).await.expect("practice")
    }

    /// Revokes the API key (by its secret) so that later calls with it must fail.
    pub async fn revoke_key(&self, api_key: &str) {
        sealpost::embedded::revoke_key_by_secret(&self.data_dir, api_key).await.expect("revoke");
    }

    /// Every SMS sent so far, oldest first.
    pub async fn sent_sms(&self) -> Vec<SentSms> {
        self.outbox("sms").await.into_iter().map(|m| SentSms { to: m.to, body: m.body }).collect()
    }

    /// Every email sent so far, oldest first.
    pub async fn sent_emails(&self) -> Vec<SentEmail> {
        self.outbox("email")
            .await
            .into_iter()
            .map(|m| SentEmail { to: m.to, subject: m.subject.unwrap_or_default(), body: m.body })
            .collect()
    }

    async fn outbox(&self, channel: &str) -> Vec<OutboxLine> {
        let v: serde_json::Value = self
            .http
            .get(self.url("/_outbox"))
            .send()
            .await
            .expect("outbox")
            .json()
            .await
            .expect("outbox json");
        serde_json::from_value::<Vec<OutboxLine>>(v["messages"].clone())
            .expect("outbox lines")
            .into_iter()
            .filter(|m| m.channel == channel)
            .collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(serde::Deserialize)]
struct OutboxLine {
    channel: String,
    to: String,
    subject: Option<String>,
    body: String,
}

/// The first run of exactly six digits in an SMS: the code.
pub fn code_in(sms_body: &str) -> Option<String> {
    let bytes = sms_body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 6 {
                return Some(sms_body[start..i].to_owned());
            }
        } else {
            i += 1;
        }
    }
    None
}
