//! What the API answers, as types (serialised by serde, described in `docs/api.md`).

use crate::domain::{AuthMethod, Document, Event, Share};
use crate::ports::UploadUrl;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct DocumentView {
    pub id: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_expires_in: Option<u64>,
    /// The headers the upload's PUT must carry besides Content-Length (the checksum the URL
    /// signs and the store checks the bytes against).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_headers: Option<std::collections::BTreeMap<&'static str, String>>,
    /// Only in a renewed upload URL's answer: whether a complete upload of the declared size
    /// is stored already (the store checked its checksum; another PUT replaces it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<bool>,
}

impl DocumentView {
    pub fn new(d: &Document) -> Self {
        Self {
            id: d.id.to_string(),
            filename: d.filename.as_str().to_owned(),
            content_type: d.content_type.as_str().to_owned(),
            size: d.size,
            sha256: Some(d.sha256.clone()),
            upload_url: None,
            upload_expires_in: None,
            upload_headers: None,
            uploaded: None,
        }
    }

    /// With the URL to upload it to, and the headers its PUT must carry.
    pub fn with_upload(mut self, url: UploadUrl, sha256: &[u8; 32]) -> Self {
        self.upload_url = Some(url.url);
        self.upload_expires_in = Some(url.expires_in);
        self.upload_headers = Some(upload_headers(sha256));
        self
    }
}

/// The headers an upload URL's PUT must carry: the checksum it signs.
pub fn upload_headers(sha256: &[u8; 32]) -> std::collections::BTreeMap<&'static str, String> {
    use base64::Engine;
    [(crate::ports::UPLOAD_CHECKSUM_HEADER, base64::engine::general_purpose::STANDARD.encode(sha256))].into()
}

/// A share as its practice sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ShareView {
    pub id: String,
    pub reference: String,
    pub link: String,
    pub status: &'static str,
    pub auth_method: AuthMethod,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub opened_at: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub downloaded_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub attempts_left: u32,
    pub self_service_requests: u32,
    /// Whether the patient may reply, and how many replies came (`GET …/replies`).
    pub allow_reply: bool,
    pub replies: usize,
    pub documents: Vec<DocumentView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<super::Notifications>,
    /// Only for `manual`, only in the answer that made the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl ShareView {
    pub fn new(share: &Share, link: String, now: DateTime<Utc>) -> Self {
        Self {
            id: share.id.to_string(),
            reference: share.reference.to_string(),
            link,
            status: share.status(now),
            auth_method: share.auth,
            created_at: share.created_at,
            expires_at: share.effective_expires_at(),
            opened_at: share.first_opened_at,
            verified_at: share.first_verified_at,
            downloaded_at: share.first_downloaded_at,
            revoked_at: share.revoked_at,
            attempts_left: share.attempts_left(),
            self_service_requests: share.self_service_requests,
            allow_reply: share.policy.allow_reply,
            replies: share.replies.iter().filter(|r| r.submitted_at.is_some()).count(),
            documents: share.documents.iter().map(DocumentView::new).collect(),
            events: None,
            notifications: None,
            code: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SelfServiceView {
    pub available: bool,
    /// Seconds until a new code may be requested, when it is too early.
    pub retry_after: Option<u64>,
}

/// What anyone holding the link may see: no document names, no personal data but a masked phone.
#[derive(Debug, Clone, Serialize)]
pub struct PublicShareView {
    pub id: String,
    pub practice_name: String,
    pub reference: String,
    pub auth_method: AuthMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked_phone: Option<String>,
    pub language: &'static str,
    pub state: &'static str,
    pub expires_at: DateTime<Utc>,
    pub attempts_left: u32,
    pub self_service: SelfServiceView,
    /// Whether the patient may reply to the practice after the code.
    pub allow_reply: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PatientDocumentView {
    pub id: String,
    pub filename: String,
    pub size: u64,
    pub content_type: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveView {
    pub size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyView {
    pub access_token: String,
    pub expires_in: i64,
    pub documents: Vec<PatientDocumentView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UrlView {
    pub url: String,
    pub expires_in: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CodeSentView {
    pub status: &'static str,
    pub masked_phone: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShareList {
    pub shares: Vec<ShareView>,
    pub next_cursor: Option<String>,
}
