//! Creating a share (sending one whose large documents were uploaded: `send.rs`).

use super::archive::{build_archive, document_key, share_prefix, upload_key};
use super::input::{Content, KnownSecret, NewShare, parse_create_body};
use super::views::{DocumentView, ShareView};
use super::{Service, UPLOAD_URL_SECS};
use crate::domain::{Code, Document, DocumentId, Event, EventKind, Lifecycle, NewShareParts, Practice, Share, ShareId};
use crate::error::{Error, Result};
use crate::ports::Claim;
use crate::secrets::Keys;
use chrono::Duration;
use ring::digest;

const GIB: f64 = (1u64 << 30) as f64;

/// An `Idempotency-Key` claim that was never completed (a crash) is taken over after this.
const STALE_CLAIM_SECS: i64 = 120;

/// What `create_share` did.
#[derive(Debug)]
pub enum Created {
    /// A new share (`201`).
    New(Box<ShareView>),
    /// A retry of a request with the same `Idempotency-Key`: the status and body it got then.
    Replayed { status: u16, body: serde_json::Value },
}

impl Service {
    /// `POST /v1/shares`: a new share, or, for a retry with the same `Idempotency-Key`, the
    /// answer the first request got.
    pub async fn create_share(&self, practice: &Practice, body: &[u8], idempotency_key: Option<&str>) -> Result<Created> {
        let new = parse_create_body(body, practice.default_language, &practice.policy, self.settings.max_inline_bytes)?;
        let Some(key) = idempotency_key else {
            return Ok(Created::New(Box::new(self.create_validated(practice, new).await?)));
        };
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid("Idempotency-Key", "Idempotency-Key must be 1 to 255 visible ASCII characters"));
        }
        let fingerprint = hex::encode(digest::digest(&digest::SHA256, body));
        let now = self.now();
        let claim =
            self.store.claim_idempotency(&practice.id, key, &fingerprint, now, now - Duration::seconds(STALE_CLAIM_SECS)).await?;
        match claim {
            Claim::Completed { fingerprint: f, .. } | Claim::InProgress { fingerprint: f } if f != fingerprint => {
                Err(Error::invalid("Idempotency-Key", "this Idempotency-Key was used with a different request body"))
            }
            Claim::Completed { status, body, .. } => {
                let body = serde_json::from_str(&body).map_err(|e| Error::Internal(e.to_string()))?;
                Ok(Created::Replayed { status, body })
            }
            Claim::InProgress { .. } => Err(Error::RateLimited {
                retry_after_secs: 1,
                message: "a request with this Idempotency-Key is still being processed",
            }),
            Claim::Claimed => match self.create_validated(practice, new).await {
                Ok(view) => {
                    // A manual code is answered once and stored only as its HMAC: the replayed
                    // answer goes without it (the practice resends for a new one).
                    let mut stored = serde_json::to_value(&view).map_err(|e| Error::Internal(e.to_string()))?;
                    if let Some(fields) = stored.as_object_mut() {
                        fields.remove("code");
                    }
                    self.store.complete_idempotency(&practice.id, key, 201, &stored.to_string()).await?;
                    Ok(Created::New(Box::new(view)))
                }
                Err(e) => {
                    // Nothing was sent: let a retry run again.
                    self.store.release_idempotency(&practice.id, key).await?;
                    Err(e)
                }
            },
        }
    }

    async fn create_validated(&self, practice: &Practice, new: NewShare) -> Result<ShareView> {
        // Checked after the Idempotency-Key: a retry of a create answered before gets its answer.
        self.check_share_size(&new)?;
        let keys = self.keys().await?;
        let now = self.now();
        let id = ShareId::generate();
        let mut documents = Vec::with_capacity(new.documents.len());
        let mut inline = Vec::new();
        let mut uploads = Vec::new();
        for doc in new.documents {
            let doc_id = DocumentId::generate();
            let (size, sha256) = match doc.content {
                Content::Inline(bytes) => {
                    let sha = hex::encode(digest::digest(&digest::SHA256, &bytes));
                    let size = bytes.len() as u64;
                    inline.push((doc_id.clone(), bytes));
                    (size, sha)
                }
                Content::Upload { size, sha256 } => {
                    uploads.push((doc_id.clone(), size));
                    (size, sha256)
                }
            };
            documents.push(Document { id: doc_id, filename: doc.filename, content_type: doc.content_type, size, sha256 });
        }
        let mut share = Share::new(
            NewShareParts {
                id: id.clone(),
                practice_id: practice.id.clone(),
                recipient: new.recipient,
                auth: new.auth,
                policy: practice.policy.for_share(new.self_service, new.allow_reply),
                message: new.message,
                documents,
                link_days: new.expires_in_days,
            },
            now,
        );
        if let Some(known) = &new.known_secret {
            let canonical = match known {
                KnownSecret::DateOfBirth(d) => d.canonical(),
                KnownSecret::InsuranceNumber(n) => n.canonical().to_owned(),
            };
            share.replace_secret(keys.hash_secret(id.as_str(), &canonical), now, true);
        }

        let stored = async {
            for (doc_id, bytes) in &inline {
                let doc = share.documents.iter().find(|d| &d.id == doc_id).expect("document just added");
                self.blobs.put(&document_key(&share, doc), bytes).await?;
            }
            if uploads.is_empty() {
                share.archive_size = Some(build_archive(self.blobs.clone(), &share).await?);
            }
            Ok::<_, crate::ports::PortError>(())
        };
        if let Err(e) = stored.await {
            let _ = self.blobs.delete_prefix(&share_prefix(&share)).await;
            return Err(e.into());
        }
        drop(inline);

        let code = if uploads.is_empty() { activate(keys, &mut share, now) } else { None };
        // A new link lives a day at least: its first upload URLs always fit.
        let url_secs = share.upload_url_secs(now).unwrap_or(UPLOAD_URL_SECS);
        if !uploads.is_empty() {
            share.upload_urls_given_until(now + Duration::seconds(url_secs as i64));
        }
        let created = Event::new(&id, EventKind::Created, now);
        if let Err(e) = self.store.insert_share(&share, &[created]).await {
            let _ = self.blobs.delete_prefix(&share_prefix(&share)).await;
            return Err(e.into());
        }
        tracing::info!(share_id = %share.id, reference = %share.reference, documents = share.documents.len(),
            status = share.status(now), "share created");

        let mut view = ShareView::new(&share, self.link(&share.id), now);
        for (doc_id, size) in uploads {
            let doc = share.documents.iter().find(|d| d.id == doc_id).expect("document just added");
            let sha256 = declared_sha256(doc)?;
            let url = self.blobs.upload_url(&upload_key(&share, doc), size, &sha256, url_secs).await?;
            if let Some(v) = view.documents.iter_mut().find(|v: &&mut DocumentView| v.id == doc_id.as_str()) {
                *v = v.clone().with_upload(url, &sha256);
            }
        }
        view.notifications = Some(if share.lifecycle == Lifecycle::Active {
            self.notify(practice, &share, code.as_ref()).await
        } else {
            Default::default()
        });
        view.code = manual_code(&share, code.as_ref());
        Ok(view)
    }

    /// Refuses documents that total more than this backend's worker archives in one run
    /// ([`super::Settings::max_share_bytes`]).
    pub(super) fn check_share_size(&self, new: &NewShare) -> Result<()> {
        let Some(max) = self.settings.max_share_bytes else { return Ok(()) };
        let total: u64 = new.documents.iter().map(|d| d.content.size()).sum();
        if total <= max {
            return Ok(());
        }
        Err(Error::invalid(
            "documents",
            format!(
                "the documents total {total} bytes ({:.2} GiB); a share holds at most {max} bytes ({} GiB) \
                 here, what one send archives within its time limit: send them as several shares",
                total as f64 / GIB,
                max >> 30
            ),
        ))
    }
}

/// The SHA-256 a document was declared with, as bytes (checked when it was parsed: 64 hex
/// digits).
pub(super) fn declared_sha256(doc: &Document) -> Result<[u8; 32]> {
    hex::decode(&doc.sha256)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Internal(format!("{}: a stored SHA-256 that is not one", doc.id)))
}

/// The code goes back to the practice only for `manual`, only in the answer that made it.
pub(super) fn manual_code(share: &Share, code: Option<&Code>) -> Option<String> {
    (share.auth == crate::domain::AuthMethod::Manual).then(|| code.map(Code::grouped)).flatten()
}

/// Marks a share sent and makes its code (for code methods). Returns the code to deliver.
fn activate(keys: &Keys, share: &mut Share, now: chrono::DateTime<chrono::Utc>) -> Option<Code> {
    share.lifecycle = Lifecycle::Active;
    share.auth.uses_code().then(|| new_code(keys, share, now))
}

/// A new code for `share`, its hash stored (the code itself goes to the patient or the practice).
pub(super) fn new_code(keys: &Keys, share: &mut Share, now: chrono::DateTime<chrono::Utc>) -> Code {
    let code = Code::generate();
    share.replace_secret(keys.hash_secret(share.id.as_str(), code.digits()), now, true);
    code
}
