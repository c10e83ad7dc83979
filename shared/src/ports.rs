//! The narrow traits the use cases run over. Each has an embedded adapter (`crate::embedded`)
//! and, in the AWS shape, one over DynamoDB, S3, SNS or SES.
//!
//! Writes that must hold under concurrency are conditional: a share is replaced only if its
//! `version` is still the one read (SQLite `UPDATE … WHERE version = ?`, DynamoDB
//! `ConditionExpression`), so 30 concurrent wrong guesses cannot count fewer than 30 or let a
//! sixth through.

use crate::domain::{ApiKey, Event, Practice, PracticeId, Share, ShareId, Webhook, WebhookId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// A storage or provider failure. Its text is for logs, never for clients.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// A conditional write lost against a concurrent one: read again and retry.
    #[error("conflict: the record changed since it was read")]
    Conflict,
    #[error("{0}")]
    Other(String),
}

impl PortError {
    pub fn other(e: impl std::fmt::Display) -> Self {
        Self::Other(e.to_string())
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// Where a practice's listing continues: the last share seen (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub created_at: DateTime<Utc>,
    pub id: ShareId,
}

#[async_trait]
pub trait ShareStore: Send + Sync {
    /// Stores a new share with its first events. `Conflict` if the id exists.
    async fn insert_share(&self, share: &Share, events: &[Event]) -> PortResult<()>;
    async fn get_share(&self, id: &ShareId) -> PortResult<Option<Share>>;
    /// Replaces `share` if the stored version is `share.version - 1`, atomically with `events`.
    async fn update_share(&self, share: &Share, events: &[Event]) -> PortResult<()>;
    /// Events that change nothing else (notification results, downloads).
    async fn append_events(&self, events: &[Event]) -> PortResult<()>;
    /// A share's events, oldest first.
    async fn list_events(&self, id: &ShareId) -> PortResult<Vec<Event>>;
    /// A practice's shares, newest first, strictly after `after`.
    async fn list_shares(&self, practice: &PracticeId, after: Option<&ListCursor>, limit: usize) -> PortResult<Vec<Share>>;
    /// Shares whose link ran out and whose expiry was not yet processed.
    async fn shares_due_for_expiry(&self, now: DateTime<Utc>, limit: usize) -> PortResult<Vec<Share>>;
    /// Deletes what is kept only for a while: shares past their `purge_at` with their events,
    /// and provider message ids, webhook failures and idempotency records past their time;
    /// returns how many shares. (DynamoDB's TTL does this on AWS.)
    async fn purge_expired_records(&self, now: DateTime<Utc>) -> PortResult<usize>;
    /// Remembers which share a provider's message id (SES, SNS) belongs to, until `until`, so
    /// that a bounce or delivery failure the provider reports later finds its share.
    async fn record_provider_message(&self, message_id: &str, share: &ShareId, until: DateTime<Utc>) -> PortResult<()>;
    async fn find_provider_message(&self, message_id: &str) -> PortResult<Option<ShareId>>;
}

#[async_trait]
pub trait PracticeStore: Send + Sync {
    async fn put_practice(&self, practice: &Practice) -> PortResult<()>;
    async fn get_practice(&self, id: &PracticeId) -> PortResult<Option<Practice>>;
    async fn list_practices(&self) -> PortResult<Vec<Practice>>;
    async fn put_api_key(&self, key: &ApiKey) -> PortResult<()>;
    /// The key with this hash, revoked or not.
    async fn find_api_key(&self, hash: &str) -> PortResult<Option<ApiKey>>;
    async fn list_api_keys(&self, practice: &PracticeId) -> PortResult<Vec<ApiKey>>;
    /// Marks a key revoked; `false` if there is no such key.
    async fn revoke_api_key(&self, key_id: &str, now: DateTime<Utc>) -> PortResult<bool>;
}

/// What an `Idempotency-Key` claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: go ahead, then `complete_idempotency`.
    Claimed,
    /// Done before: the stored response (status, JSON body) and the request's fingerprint.
    Completed { fingerprint: String, status: u16, body: String },
    /// Another request with this key is under way (or used another body: see fingerprint).
    InProgress { fingerprint: String },
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for `fingerprint` (a hash of the request body). A claim older than
    /// `stale_before` that was never completed (a crash) may be taken over.
    async fn claim_idempotency(
        &self,
        practice: &PracticeId,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> PortResult<Claim>;
    async fn complete_idempotency(&self, practice: &PracticeId, key: &str, status: u16, body: &str) -> PortResult<()>;
    /// Gives a claim up (the request failed without side effects), so a retry can run.
    async fn release_idempotency(&self, practice: &PracticeId, key: &str) -> PortResult<()>;
}

#[async_trait]
pub trait SmsCounter: Send + Sync {
    /// Counts one SMS against the practice's cap for `day` (UTC, `YYYY-MM-DD`); `false` (and
    /// nothing counted) when the cap is reached. Atomic: a cap is never exceeded by a race.
    async fn take_sms(&self, practice: &PracticeId, day: &str, cap: u32) -> PortResult<bool>;
    /// Gives back one SMS counted for `day` that was not sent after all (never below zero).
    async fn give_back_sms(&self, practice: &PracticeId, day: &str) -> PortResult<()>;
}

/// The outcome of one delivery attempt to a webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub event_id: String,
    /// The endpoint answered 2xx.
    pub ok: bool,
    /// The HTTP status, if the endpoint answered at all.
    pub status: Option<u16>,
    /// Why it failed (`timeout`, `connect`, `status 500`, …), never the response body.
    pub error: Option<String>,
}

/// What the practice sees of an endpoint's deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebhookHealth {
    pub last_attempt: Option<Attempt>,
    pub last_success_at: Option<DateTime<Utc>>,
}

/// A delivery that was retried for the whole window and given up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailedDelivery {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub share_id: Option<String>,
    pub attempts: u32,
    pub failed_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Creates an endpoint.
    async fn put_webhook(&self, webhook: &Webhook) -> PortResult<()>;
    /// Replaces an endpoint that still exists; `false` if it was deleted meanwhile (a change
    /// racing a delete must not bring the endpoint back).
    async fn replace_webhook(&self, webhook: &Webhook) -> PortResult<bool>;
    async fn get_webhook(&self, practice: &PracticeId, id: &WebhookId) -> PortResult<Option<Webhook>>;
    /// A practice's endpoints, oldest first.
    async fn list_webhooks(&self, practice: &PracticeId) -> PortResult<Vec<Webhook>>;
    /// Removes an endpoint with its health and failures; `false` if there was none.
    async fn delete_webhook(&self, practice: &PracticeId, id: &WebhookId) -> PortResult<bool>;
    /// Records an attempt as the endpoint's latest (and, if `ok`, its latest success).
    async fn record_attempt(&self, practice: &PracticeId, id: &WebhookId, attempt: &Attempt) -> PortResult<()>;
    async fn webhook_health(&self, practice: &PracticeId, id: &WebhookId) -> PortResult<WebhookHealth>;
    /// Counts one test post to the endpoint in `minute` (unix seconds / 60); `false` (and
    /// nothing counted) when `limit` were counted in that minute already. Atomic: a race never
    /// lets more through.
    async fn take_webhook_test(&self, practice: &PracticeId, id: &WebhookId, minute: i64, limit: u32) -> PortResult<bool>;
    async fn record_failed_delivery(&self, practice: &PracticeId, id: &WebhookId, failed: &FailedDelivery) -> PortResult<()>;
    /// Failed deliveries, newest first (kept 30 days), one per event: recorded twice (a
    /// delivery redelivered after it was given up), the latest record.
    async fn list_failed_deliveries(
        &self,
        practice: &PracticeId,
        id: &WebhookId,
        limit: usize,
    ) -> PortResult<Vec<FailedDelivery>>;
}

/// Everything the use cases keep in a database.
pub trait Store: ShareStore + PracticeStore + IdempotencyStore + SmsCounter + WebhookStore {}
impl<T: ShareStore + PracticeStore + IdempotencyStore + SmsCounter + WebhookStore> Store for T {}

pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// A blob being written. Nothing is visible under the key until `finish` succeeds.
#[async_trait]
pub trait BlobWriter: AsyncWrite + Send + Unpin {
    async fn finish(self: Box<Self>) -> PortResult<u64>;
}

/// What a signed download URL makes the browser do with the file.
#[derive(Debug, Clone)]
pub struct Disposition<'a> {
    pub filename: &'a str,
    pub content_type: &'a str,
}

/// The header an upload URL's PUT must carry: the base64 of the document's SHA-256, which the
/// URL signs and the store checks the bytes against (S3's own name for it).
pub const UPLOAD_CHECKSUM_HEADER: &str = "x-amz-checksum-sha256";

#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn put(&self, key: &str, bytes: &[u8]) -> PortResult<()>;
    /// `None` if there is no such blob.
    async fn open(&self, key: &str) -> PortResult<Option<BlobReader>>;
    async fn create(&self, key: &str) -> PortResult<Box<dyn BlobWriter>>;
    /// The blob's size, `None` if absent.
    async fn size(&self, key: &str) -> PortResult<Option<u64>>;
    /// Moves a blob to another key (replacing what is there); `false` if `from` is absent.
    async fn rename(&self, from: &str, to: &str) -> PortResult<bool>;
    /// Deletes every blob whose key starts with `prefix`.
    async fn delete_prefix(&self, prefix: &str) -> PortResult<()>;
    /// A URL anyone holding it may GET for `ttl_secs`, served as an attachment.
    async fn download_url(&self, key: &str, disposition: Disposition<'_>, ttl_secs: u64) -> PortResult<String>;
    /// A URL that takes one PUT of exactly `size` bytes whose SHA-256 is `sha256`, sent with
    /// the header [`UPLOAD_CHECKSUM_HEADER`] (base64 of `sha256`), for `ttl_secs` at most:
    /// other bytes are refused by the store itself (S3 checks them), never stored. It may live
    /// shorter, when the credentials that sign it end sooner: [`UploadUrl::expires_in`] says.
    async fn upload_url(&self, key: &str, size: u64, sha256: &[u8; 32], ttl_secs: u64) -> PortResult<UploadUrl>;
}

/// A signed upload URL and how many seconds it works.
#[derive(Debug, Clone)]
pub struct UploadUrl {
    pub url: String,
    pub expires_in: u64,
}

/// An SMS to send. `share_id` is for the outbox and logs; never log `to` or `body`.
#[derive(Debug, Clone)]
pub struct Sms {
    pub to: String,
    pub sender: Option<String>,
    pub body: String,
    pub share_id: ShareId,
}

#[derive(Debug, Clone)]
pub struct Mail {
    pub from_name: String,
    pub from_address: String,
    pub reply_to: Option<String>,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub share_id: ShareId,
}

/// A message the provider took: its id, when the provider gives one (for bounce reports).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    pub message_id: Option<String>,
}

#[async_trait]
pub trait SmsSender: Send + Sync {
    async fn send_sms(&self, sms: &Sms) -> PortResult<Sent>;
}

#[async_trait]
pub trait MailSender: Send + Sync {
    async fn send_mail(&self, mail: &Mail) -> PortResult<Sent>;
}

/// Where `send` leaves the work of a share sent after upload (`Service::finish_send`): the
/// embedded backend's background task, SQS and its worker function on AWS. At least once: the
/// work is done once however often a share is queued (it acts only on a `sending` share).
#[async_trait]
pub trait SendQueue: Send + Sync {
    /// Queues the work of `share`, `sending` since its write of `version`: the same send
    /// queued twice may be kept once.
    async fn enqueue(&self, share: &ShareId, version: u64) -> PortResult<()>;
}

/// A webhook POST as it goes out: the exact body and the headers (signature included).
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// What the endpoint did with a POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    /// It answered, with this status.
    Status(u16),
    /// No answer within the timeout.
    Timeout,
    /// No connection, TLS failure, or a broken answer; the text is for the practice to read
    /// (it names the kind of failure, never a response body).
    Failed(String),
}

/// Posts webhook deliveries (an HTTP client with a 10 s timeout).
#[async_trait]
pub trait WebhookPoster: Send + Sync {
    async fn post(&self, request: &WebhookRequest) -> PostOutcome;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told: rules are tested by moving it, never by sleeping.
#[derive(Debug, Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(start)))
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The ports a service uses besides its store and clock. Each Lambda function is built with what
/// its routes use (`crate::http::Route::uses`), which is what its role grants (template.yaml,
/// held to this by `tests/api/pepper.rs`); the others are [`NotGranted`]. `sealpost serve` uses
/// everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uses(u16);

impl Uses {
    pub const NOTHING: Uses = Uses(0);
    /// The documents stored, read and moved ([`BlobStore`]: S3; the calls not under the
    /// other `DOCUMENT_*` and `UPLOAD_LINKS`).
    pub const DOCUMENTS: Uses = Uses(1);
    /// [`SmsSender`] (SNS).
    pub const SMS: Uses = Uses(1 << 1);
    /// [`MailSender`] (SES).
    pub const EMAIL: Uses = Uses(1 << 2);
    /// The keys derived from the pepper (`crate::secrets`; on AWS, SSM): codes and answers
    /// hashed, access tokens, webhook secrets.
    pub const KEYS: Uses = Uses(1 << 3);
    /// [`WebhookPoster`] (an HTTPS client).
    pub const WEBHOOK_POSTS: Uses = Uses(1 << 4);
    /// Download links signed ([`BlobStore::download_url`]).
    pub const DOCUMENT_LINKS: Uses = Uses(1 << 5);
    /// A share's documents deleted ([`BlobStore::delete_prefix`]).
    pub const DOCUMENT_DELETION: Uses = Uses(1 << 6);
    /// [`SendQueue`] (SQS): the work of a `send` left to the worker.
    pub const SENDS: Uses = Uses(1 << 7);
    /// The size of a stored or uploaded document, nothing else ([`BlobStore::size`]: a HEAD).
    pub const DOCUMENT_SIZES: Uses = Uses(1 << 8);
    /// Upload links signed ([`BlobStore::upload_url`]; on S3, signed with the function's own
    /// `s3:PutObject`).
    pub const UPLOAD_LINKS: Uses = Uses(1 << 9);
    /// Blobs read, nothing else ([`BlobStore::open`]): a patient's reply, for the practice.
    pub const BLOB_READS: Uses = Uses(1 << 10);
    pub const EVERYTHING: Uses = Uses((1 << 11) - 1);

    /// Both sets.
    pub const fn and(self, other: Uses) -> Uses {
        Uses(self.0 | other.0)
    }

    /// Whether all of `other` is in this set.
    pub const fn has(self, other: Uses) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any of `other` is in this set.
    pub const fn has_any(self, other: Uses) -> bool {
        self.0 & other.0 != 0
    }
}

/// A [`BlobStore`] that makes only the calls its set allows ([`Uses::DOCUMENTS`],
/// [`Uses::DOCUMENT_LINKS`], [`Uses::DOCUMENT_DELETION`], [`Uses::DOCUMENT_SIZES`], [`Uses::UPLOAD_LINKS`],
/// [`Uses::BLOB_READS`]); the others fail as [`NotGranted`]'s,
/// as they would on AWS for a function whose role does not grant them.
pub struct OnlyBlobs<B: ?Sized> {
    pub inner: std::sync::Arc<B>,
    pub uses: Uses,
}

impl<B: ?Sized> OnlyBlobs<B> {
    fn allows(&self, need: Uses) -> bool {
        self.uses.has(need)
    }
}

#[async_trait]
impl<B: BlobStore + ?Sized> BlobStore for OnlyBlobs<B> {
    async fn put(&self, key: &str, bytes: &[u8]) -> PortResult<()> {
        if !self.allows(Uses::DOCUMENTS) {
            return Err(NotGranted::DOCUMENTS.error());
        }
        self.inner.put(key, bytes).await
    }
    async fn open(&self, key: &str) -> PortResult<Option<BlobReader>> {
        if !self.allows(Uses::DOCUMENTS) && !self.allows(Uses::BLOB_READS) {
            return Err(NotGranted::DOCUMENTS.error());
        }
        self.inner.open(key).await
    }
    async fn create(&self, key: &str) -> PortResult<Box<dyn BlobWriter>> {
        if !self.allows(Uses::DOCUMENTS) {
            return Err(NotGranted::DOCUMENTS.error());
        }
        self.inner.create(key).await
    }
    async fn size(&self, key: &str) -> PortResult<Option<u64>> {
        if !self.allows(Uses::DOCUMENTS) && !self.allows(Uses::DOCUMENT_SIZES) {
            return Err(NotGranted::DOCUMENTS.error());
        }
        self.inner.size(key).await
    }
    async fn rename(&self, from: &str, to: &str) -> PortResult<bool> {
        if !self.allows(Uses::DOCUMENTS) {
            return Err(NotGranted::DOCUMENTS.error());
        }
        self.inner.rename(from, to).await
    }
    async fn delete_prefix(&self, prefix: &str) -> PortResult<()> {
        if !self.allows(Uses::DOCUMENT_DELETION) {
            return Err(NotGranted::DOCUMENT_DELETION.error());
        }
        self.inner.delete_prefix(prefix).await
    }
    async fn download_url(&self, key: &str, disposition: Disposition<'_>, ttl_secs: u64) -> PortResult<String> {
        if !self.allows(Uses::DOCUMENT_LINKS) {
            return Err(NotGranted::DOCUMENT_LINKS.error());
        }
        self.inner.download_url(key, disposition, ttl_secs).await
    }
    async fn upload_url(&self, key: &str, size: u64, sha256: &[u8; 32], ttl_secs: u64) -> PortResult<UploadUrl> {
        if !self.allows(Uses::UPLOAD_LINKS) {
            return Err(NotGranted::UPLOAD_LINKS.error());
        }
        self.inner.upload_url(key, size, sha256, ttl_secs).await
    }
}

/// What stands in, in a Lambda function, for a port its routes do not use (see [`Uses`]). Every
/// call fails, as a call to a service the function's role may not use would: a route that
/// starts to need the port fails the contract suite, which runs each route as its function
/// builds it.
#[derive(Debug, Clone, Copy)]
pub struct NotGranted(pub &'static str);

impl NotGranted {
    pub const DOCUMENTS: NotGranted = NotGranted("the documents' store");
    pub const DOCUMENT_LINKS: NotGranted = NotGranted("document download links");
    pub const DOCUMENT_DELETION: NotGranted = NotGranted("document deletion");
    pub const UPLOAD_LINKS: NotGranted = NotGranted("upload links");
    pub const SMS: NotGranted = NotGranted("an SMS sender");
    pub const EMAIL: NotGranted = NotGranted("an email sender");
    pub const WEBHOOK_POSTS: NotGranted = NotGranted("a webhook client");
    pub const SENDS: NotGranted = NotGranted("the send queue");

    pub fn error(self) -> PortError {
        PortError::Other(format!("this function is not granted {}", self.0))
    }
}

#[async_trait]
impl BlobStore for NotGranted {
    async fn put(&self, _: &str, _: &[u8]) -> PortResult<()> {
        Err(self.error())
    }
    async fn open(&self, _: &str) -> PortResult<Option<BlobReader>> {
        Err(self.error())
    }
    async fn create(&self, _: &str) -> PortResult<Box<dyn BlobWriter>> {
        Err(self.error())
    }
    async fn size(&self, _: &str) -> PortResult<Option<u64>> {
        Err(self.error())
    }
    async fn rename(&self, _: &str, _: &str) -> PortResult<bool> {
        Err(self.error())
    }
    async fn delete_prefix(&self, _: &str) -> PortResult<()> {
        Err(self.error())
    }
    async fn download_url(&self, _: &str, _: Disposition<'_>, _: u64) -> PortResult<String> {
        Err(self.error())
    }
    async fn upload_url(&self, _: &str, _: u64, _: &[u8; 32], _: u64) -> PortResult<UploadUrl> {
        Err(self.error())
    }
}

#[async_trait]
impl SmsSender for NotGranted {
    async fn send_sms(&self, _: &Sms) -> PortResult<Sent> {
        Err(self.error())
    }
}

#[async_trait]
impl MailSender for NotGranted {
    async fn send_mail(&self, _: &Mail) -> PortResult<Sent> {
        Err(self.error())
    }
}

#[async_trait]
impl SendQueue for NotGranted {
    async fn enqueue(&self, _: &ShareId, _: u64) -> PortResult<()> {
        Err(self.error())
    }
}

#[async_trait]
impl WebhookPoster for NotGranted {
    async fn post(&self, _: &WebhookRequest) -> PostOutcome {
        PostOutcome::Failed(self.error().to_string())
    }
}
