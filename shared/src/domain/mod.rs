//! Pure types and rules: what a share is and what may happen to it.
//!
//! Nothing here knows about HTTP, SQL or AWS (a test in `tests/` checks the imports).
//! Every rule takes `now` as an argument: time is a port, so tests move a clock instead of sleeping.

mod code;
mod document;
mod event;
mod ids;
mod policy;
mod practice;
mod recipient;
mod reply;
pub mod share;
mod webhook;

pub use code::{Code, CodeParseError, is_decimal_digit, message_contains_code};
pub use document::{ContentType, Document, Filename, is_precompressed};
pub use event::{Event, EventKind};
pub use ids::{DocumentId, EventId, PracticeId, Reference, ShareId, WebhookId, random_bytes, random_token};
pub use policy::{MAX_ATTEMPTS, Policy, SharePolicy};
pub use practice::{ApiKey, Practice};
pub use recipient::{DateOfBirth, Email, InsuranceNumber, Language, PersonName, Phone};
pub use reply::{
    FileStatus, MAX_REPLIES, MAX_REPLIES_PER_DAY, MAX_REPLY_BYTES, MAX_REPLY_FILE_BYTES, MAX_REPLY_FILES,
    MAX_REPLY_MESSAGE_CHARS, Reply, ReplyDenied, ReplyFile, ReplyFileType, ReplyId, ReplyMark, check_reply_room,
};
pub use share::{
    Access, Attempt, AuthMethod, Lifecycle, MAX_SEND_REQUEUES, NewShareParts, Recipient, SEND_REQUEUE_SECS, SecretState,
    SelfServiceDenied, Share, UPLOAD_URL_SECS, VerifyOutcome,
};

pub use webhook::{
    DELIVERY_TIMEOUT_SECS, MAX_WEBHOOKS_PER_PRACTICE, Payload, RETRY_WINDOW_HOURS, Reach, UrlRule, WEBHOOK_TESTS_PER_MINUTE,
    Webhook, is_loopback_host, is_public, next_attempt, signature_header,
};

/// A value that failed to parse, with a human-readable reason (the field is named by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
