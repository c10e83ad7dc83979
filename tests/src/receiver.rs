//! A real webhook receiver on loopback: it records every POST (headers and exact body) and
//! answers as told, one planned reply per request, then 200.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Answers 200 only after this long (past the sender's 10 s timeout: a timeout).
    Hang(Duration),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub signature: String,
    pub event_id_header: String,
    pub content_type: String,
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    plan: Mutex<VecDeque<Reply>>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn spawn() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hooks/sealpost", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared::default());
        let router = axum::Router::new().route("/hooks/sealpost", axum::routing::post(receive)).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url, shared, server }
    }

    /// The next requests get these replies, in order; after them, 200.
    pub fn plan(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.plan.lock().expect("plan").extend(replies);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("received").clone()
    }

    /// The requests the receiver acknowledged (2xx), in order.
    pub fn acknowledged(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| (200..300).contains(&r.answered)).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let reply = shared.plan.lock().expect("plan").pop_front().unwrap_or(Reply::Status(200));
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let answered = match reply {
        Reply::Status(s) => s,
        Reply::Hang(_) => 200,
    };
    shared.received.lock().expect("received").push(Received {
        signature: header("sealpost-signature"),
        event_id_header: header("sealpost-event-id"),
        content_type: header("content-type"),
        body: body.to_vec(),
        // A hung request is recorded as answered 200, but the sender gave up before the answer.
        answered: if matches!(reply, Reply::Hang(_)) { 0 } else { answered },
    });
    if let Reply::Hang(d) = reply {
        tokio::time::sleep(d).await;
    }
    StatusCode::from_u16(answered).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
