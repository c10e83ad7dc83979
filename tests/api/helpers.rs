//! Request helpers shared by every topic of the contract suite.
//!
//! Every helper answers a [`Reply`]: the status, the headers, the raw bytes and (when the body
//! is JSON) the parsed body, so that a test can assert on each of them and a failure shows what
//! the server really said.

#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
pub use chrono::{DateTime, Duration, Utc};
pub use sealpost::domain::Policy;
pub use sealpost_tests::{TestApp, code_in, start_time};
pub use serde_json::{Value, json};

/// A tiny but real PDF.
pub const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";
pub const FILENAME: &str = "Rechnung-2024-001.pdf";
pub const PHONE: &str = "+41791234567";
pub const EMAIL: &str = "anna@example.ch";
pub const MESSAGE: &str = "Freundliche Gruesse aus der Praxis, bis bald.";

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// An inline document entry for a create body.
pub fn doc(filename: &str, content_type: &str, bytes: &[u8]) -> Value {
    json!({"filename": filename, "content_type": content_type, "content_base64": b64(bytes)})
}

/// A large (upload-later) document entry for a create body.
pub fn large_doc(filename: &str, content_type: &str, bytes: &[u8]) -> Value {
    json!({"filename": filename, "content_type": content_type, "size": bytes.len(), "sha256": sha256_hex(bytes)})
}

/// A valid create body: SMS method, one small inline PDF, a message.
pub fn share_body() -> Value {
    json!({
        "recipient": {"email": EMAIL, "phone": PHONE, "name": "Anna Muster", "language": "de"},
        "auth": {"method": "sms", "self_service": true},
        "expires_in_days": 30,
        "message": MESSAGE,
        "documents": [doc(FILENAME, "application/pdf", PDF)]
    })
}

/// A valid create body with another auth method (no phone for the non-SMS ones).
pub fn share_body_with_method(method: &str) -> Value {
    let mut body = share_body();
    body["auth"]["method"] = json!(method);
    match method {
        "sms" => {}
        "manual" => {
            body["recipient"].as_object_mut().expect("a recipient").remove("phone");
        }
        "date_of_birth" => {
            body["recipient"].as_object_mut().expect("a recipient").remove("phone");
            body["recipient"]["date_of_birth"] = json!("1980-02-29");
        }
        "insurance_number" => {
            body["recipient"].as_object_mut().expect("a recipient").remove("phone");
            body["recipient"]["insurance_number"] = json!("7561234567897");
        }
        other => panic!("unknown method {other}"),
    }
    body
}

/// Whether the suite runs against the embedded backend (`SEALPOST_TEST_BACKEND` not `aws`):
/// only there do the data dir, `/_outbox` and `/_blobs` exist.
pub fn embedded() -> bool {
    !sealpost_tests::aws_backend()
}

/// On AWS a signed URL is an S3 presigned URL, and moto serves those without checking their
/// signature or expiry (shared/AWS-LOCAL.md): no test against moto may claim a URL is
/// unforgeable or dies on time. There the test checks what Sealpost controls — a SigV4 URL
/// whose `X-Amz-Expires` is at most `max_secs` — and returns true, so the caller skips the
/// behaviour that only SigV4 on AWS (and, on the embedded backend, our own HMAC) enforces.
#[track_caller]
pub fn presigned_by_s3(url: &str, max_secs: i64) -> bool {
    if embedded() {
        return false;
    }
    assert!(url.contains("X-Amz-Signature="), "a SigV4 presigned URL: {url}");
    let expires: i64 = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("X-Amz-Expires="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("X-Amz-Expires in {url}"));
    assert!((1..=max_secs).contains(&expires), "X-Amz-Expires={expires} in {url}");
    true
}

/// A signed (download or upload) URL refused with one of `statuses`; on the embedded backend
/// `/_blobs` also answers the JSON error (`403 forbidden` for a wrong or expired signature).
#[track_caller]
pub fn assert_url_refused(reply: &Reply, statuses: &[u16]) {
    assert!(statuses.contains(&reply.status), "expected one of {statuses:?}, got {}: {}", reply.status, reply.text());
    if embedded() {
        reply.client_error();
        if reply.status == 403 {
            reply.err(403, "forbidden");
        }
    }
}

/// What the server answered.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
    /// The body parsed as JSON, or `Value::Null` when it is not JSON.
    pub json: Value,
}

impl Reply {
    pub async fn from(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("response body").to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Self { status, headers, bytes, json }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().expect("ascii header").to_owned())
    }

    /// Asserts the status and answers the JSON body.
    #[track_caller]
    pub fn ok(self, status: u16) -> Value {
        assert_eq!(self.status, status, "expected {status}, got {}: {}", self.status, self.text());
        self.json
    }

    /// Asserts an error reply: the status, `{"error": {"code", "message"}}`; answers the body.
    #[track_caller]
    pub fn err(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            (self.status, self.json["error"]["code"].as_str()),
            (status, Some(code)),
            "expected {status} {code}, got {}: {}",
            self.status,
            self.text()
        );
        assert!(self.json["error"]["message"].is_string(), "error without a message: {}", self.text());
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "error content-type {ct:?}: {}", self.text());
        &self.json
    }

    /// Asserts `400 invalid_request` naming `field`.
    #[track_caller]
    pub fn invalid(&self, field: &str) -> &Value {
        self.err(400, "invalid_request");
        assert_eq!(self.json["error"]["field"].as_str(), Some(field), "wrong field: {}", self.text());
        &self.json
    }

    /// Asserts a `4xx` answer with a JSON error body (any code).
    #[track_caller]
    pub fn client_error(&self) -> &Value {
        assert!((400..500).contains(&self.status), "expected a 4xx, got {}: {}", self.status, self.text());
        assert!(self.json["error"]["code"].is_string(), "4xx without a JSON error: {}", self.text());
        assert!(self.json["error"]["message"].is_string(), "4xx without a message: {}", self.text());
        &self.json
    }

    /// Asserts the error body carries nothing but `error` (no practice, no reference).
    #[track_caller]
    pub fn only_error(&self) {
        let obj = self.json.as_object().expect("a JSON object");
        assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["error"], "more than the error: {}", self.text());
    }

    /// `Retry-After` in seconds (asserts it is there and numeric).
    #[track_caller]
    pub fn retry_after(&self) -> u64 {
        let v = self.header("retry-after").unwrap_or_else(|| panic!("no Retry-After header: {:?}", self.headers));
        v.trim().parse().unwrap_or_else(|_| panic!("Retry-After is not seconds: {v:?}"))
    }
}

/// Any request; `key` is sent as a bearer token; `body` as JSON.
pub async fn call(app: &TestApp, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = app.http.request(method, app.url(path));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    Reply::from(req.send().await.expect("request sent")).await
}

/// A request with a raw body and content type.
pub async fn call_raw(
    app: &TestApp,
    method: &str,
    path: &str,
    key: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = app.http.request(method, app.url(path)).body(body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    Reply::from(req.send().await.expect("request sent")).await
}

// ----- practice API -----

pub async fn post_share(app: &TestApp, body: &Value) -> Reply {
    call(app, "POST", "/v1/shares", Some(&app.api_key), Some(body)).await
}

pub async fn post_share_with_key(app: &TestApp, key: &str, body: &Value) -> Reply {
    call(app, "POST", "/v1/shares", Some(key), Some(body)).await
}

pub async fn post_share_idem(app: &TestApp, idem_key: &str, body: &Value) -> Reply {
    let req = app.http.post(app.url("/v1/shares")).bearer_auth(&app.api_key).header("Idempotency-Key", idem_key).json(body);
    Reply::from(req.send().await.expect("request sent")).await
}

/// Creates a share (asserts `201`) and answers the response body.
pub async fn create_share(app: &TestApp, body: &Value) -> Value {
    post_share(app, body).await.ok(201)
}

/// Creates the default SMS share; answers the response and the code from the SMS it caused.
pub async fn create_default(app: &TestApp) -> (Value, String) {
    let before = app.sent_sms().await.len();
    let share = create_share(app, &share_body()).await;
    let sms = app.sent_sms().await;
    assert_eq!(sms.len(), before + 1, "one SMS per create: {sms:?}");
    let code = code_in(&sms.last().expect("an SMS sent").body).expect("a code in the SMS");
    (share, code)
}

pub fn id_of(share: &Value) -> String {
    share["id"].as_str().expect("share id").to_owned()
}

pub async fn get_share_reply(app: &TestApp, id: &str) -> Reply {
    call(app, "GET", &format!("/v1/shares/{id}"), Some(&app.api_key), None).await
}

/// `GET /v1/shares/{id}` (asserts `200`).
pub async fn get_share(app: &TestApp, id: &str) -> Value {
    get_share_reply(app, id).await.ok(200)
}

pub async fn list_shares(app: &TestApp, query: &str) -> Reply {
    call(app, "GET", &format!("/v1/shares{query}"), Some(&app.api_key), None).await
}

pub async fn resend(app: &TestApp, id: &str) -> Reply {
    call(app, "POST", &format!("/v1/shares/{id}/resend"), Some(&app.api_key), None).await
}

pub async fn send(app: &TestApp, id: &str) -> Reply {
    call(app, "POST", &format!("/v1/shares/{id}/send"), Some(&app.api_key), None).await
}

/// `POST /v1/shares/{id}/documents/{doc}/upload-url`: a fresh upload URL.
pub async fn renew_upload_url(app: &TestApp, id: &str, doc: &str) -> Reply {
    call(app, "POST", &format!("/v1/shares/{id}/documents/{doc}/upload-url"), Some(&app.api_key), None).await
}

pub async fn revoke(app: &TestApp, id: &str) -> Reply {
    call(app, "DELETE", &format!("/v1/shares/{id}"), Some(&app.api_key), None).await
}

/// The event types of a share view, oldest first.
pub fn event_types(view: &Value) -> Vec<String> {
    view["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {view}"))
        .iter()
        .map(|e| e["type"].as_str().expect("event type").to_owned())
        .collect()
}

pub fn count_events(view: &Value, kind: &str) -> usize {
    event_types(view).iter().filter(|t| *t == kind).count()
}

/// The events' types of `id`, fetched.
pub async fn events_of(app: &TestApp, id: &str) -> Vec<String> {
    event_types(&get_share(app, id).await)
}

// ----- patient API -----

pub async fn public_get(app: &TestApp, id: &str) -> Reply {
    call(app, "GET", &format!("/v1/public/shares/{id}"), None, None).await
}

pub async fn verify_body(app: &TestApp, id: &str, body: &Value) -> Reply {
    call(app, "POST", &format!("/v1/public/shares/{id}/verify"), None, Some(body)).await
}

pub async fn verify(app: &TestApp, id: &str, code: &str) -> Reply {
    verify_body(app, id, &json!({"code": code})).await
}

/// Verifies (asserts `200`); answers the body with `access_token`.
pub async fn verify_ok(app: &TestApp, id: &str, code: &str) -> Value {
    verify(app, id, code).await.ok(200)
}

pub fn token_of(verified: &Value) -> String {
    verified["access_token"].as_str().expect("access_token").to_owned()
}

pub async fn request_code(app: &TestApp, id: &str) -> Reply {
    call(app, "POST", &format!("/v1/public/shares/{id}/code"), None, None).await
}

pub async fn document_link(app: &TestApp, id: &str, doc: &str, token: Option<&str>) -> Reply {
    call(app, "GET", &format!("/v1/public/shares/{id}/documents/{doc}"), token, None).await
}

pub async fn archive_link(app: &TestApp, id: &str, token: Option<&str>) -> Reply {
    call(app, "GET", &format!("/v1/public/shares/{id}/archive"), token, None).await
}

/// The share's ZIP as the patient downloads it (link, then the URL): its entries, in order.
pub async fn downloaded_archive(app: &TestApp, id: &str, token: &str) -> Vec<(String, Vec<u8>)> {
    let archive = archive_link(app, id, Some(token)).await.ok(200);
    unzip(&fetch_url(app, archive["url"].as_str().expect("an archive URL")).await.bytes)
}

/// An absolute URL as given by the server, or a path on the app.
pub fn absolute(app: &TestApp, url: &str) -> String {
    if url.starts_with("http://") || url.starts_with("https://") { url.to_owned() } else { app.url(url) }
}

/// GETs a (signed) download URL.
pub async fn fetch_url(app: &TestApp, url: &str) -> Reply {
    Reply::from(app.http.get(absolute(app, url)).send().await.expect("download")).await
}

/// PUTs `bytes` to an upload URL as an uploader does, with the checksum of what it sends
/// (`x-amz-checksum-sha256`, which the URL signs for the declared bytes: other bytes are refused
/// by the store, except by moto, which checks neither signatures nor checksums).
pub async fn put_url(app: &TestApp, url: &str, bytes: &[u8]) -> Reply {
    use base64::Engine;
    let checksum = base64::engine::general_purpose::STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, bytes));
    let request = app.http.put(absolute(app, url)).header("x-amz-checksum-sha256", checksum).body(bytes.to_vec());
    Reply::from(request.send().await.expect("upload")).await
}

/// Writes `bytes` where a document's upload lands, past its URL's checks: bytes that reached
/// the store otherwise than as declared, which the send worker must still refuse.
pub async fn store_upload(app: &TestApp, id: &str, doc_id: &str, bytes: &[u8]) {
    app.service.blobs.put(&format!("shares/{id}/uploads/{doc_id}"), bytes).await.expect("stored");
}

/// The code in the last SMS sent.
pub async fn last_code(app: &TestApp) -> String {
    let sms = app.sent_sms().await;
    code_in(&sms.last().expect("an SMS was sent").body).expect("a code in the SMS")
}

/// A six-digit code that is not `code` (any written form of it).
pub fn other_code(code: &str) -> String {
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    let n: u32 = digits.parse().expect("digits");
    format!("{:06}", (n + 1) % 1_000_000)
}

/// `123456` → `123-456`.
pub fn dashed(code: &str) -> String {
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    format!("{}-{}", &digits[..3], &digits[3..])
}

pub fn time(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("not RFC 3339: {s}: {e}")).with_timezone(&Utc)
}

/// Reads a ZIP into (name, bytes) pairs, in archive order.
pub fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("a ZIP");
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).expect("entry");
        let name = file.name().expect("entry name").to_string();
        let mut content = Vec::new();
        file.read_to_end(&mut content).expect("entry bytes");
        out.push((name, content));
    }
    out
}

/// Creates, verifies and answers (share, verify body, token).
pub async fn create_and_verify(app: &TestApp) -> (Value, Value, String) {
    let (share, code) = create_default(app).await;
    let verified = verify_ok(app, &id_of(&share), &code).await;
    let token = token_of(&verified);
    (share, verified, token)
}

/// Files under `dir` (recursively) whose bytes contain `needle`: what a delete left behind.
pub fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
                found.push(path);
            }
        }
    }
    found
}

/// `s` with its last character changed to another of the same kind (digit, lower- or uppercase
/// letter), so the change means a different value in hex and base64 alike.
pub fn tamper_last(s: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    let last = b.last_mut().expect("a non-empty string");
    *last = match *last {
        b'0' => b'1',
        c if c.is_ascii_digit() => b'0',
        b'a' => b'b',
        c if c.is_ascii_lowercase() => b'a',
        b'A' => b'B',
        c if c.is_ascii_uppercase() => b'A',
        _ => b'A',
    };
    String::from_utf8(b).expect("ASCII in, ASCII out")
}
