//! The use cases, over the ports. One `Service` serves every runtime shape; it is built once
//! (per process or per Lambda cold start) and shared.

pub mod archive;
mod create;
mod input;
mod manage;
mod notify;
mod patient;
mod preview;
mod reply;
mod send;
mod sweep;
mod views;
mod webhooks;

pub use create::Created;
pub use input::VerifyIn;
pub use input::{
    AWS_MAX_INLINE_BYTES, AWS_MAX_SHARE_BYTES, Content, CreateShareRequest, KnownSecret, MAX_DOCUMENTS, MAX_INLINE_BYTES,
    MAX_MESSAGE_CHARS, MAX_UPLOAD_BYTES, NewDocument, NewShare, parse_create_body, parse_json, parse_preview_body,
};
pub use notify::{ChannelResult, Notifications, ProviderReport};
pub use preview::{CODE_PLACEHOLDER, PreviewView};
pub use reply::{ReplyList, ReplyStarted, ReplyView};
pub use send::Sent;
pub use views::{PublicShareView, ShareView, UrlView, VerifyView};
pub use webhooks::{Delivered, Delivery, FailedDeliveries, TestDelivery, WebhookList, WebhookView};

use crate::domain::UrlRule;
use crate::domain::{Access, ApiKey, Event, Practice, Share, ShareId};
use crate::error::{Error, Result};
use crate::ports::{BlobStore, Clock, MailSender, PortError, SendQueue, SmsSender, Store, WebhookPoster};
use crate::secrets::{Keys, LazyKeys};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Validity of a patient's access token (SPEC: 15 minutes).
pub const ACCESS_TOKEN_SECS: i64 = 15 * 60;
/// Validity of a download URL (SPEC: 5 minutes at most).
pub const DOWNLOAD_URL_SECS: u64 = 300;
pub use crate::domain::UPLOAD_URL_SECS;
/// How often a conditional write is retried against concurrent writers before giving up.
const MAX_WRITE_RETRIES: usize = 64;

/// Settings that are not ports.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of the download page and API, e.g. `https://docs.example.ch` (no trailing `/`).
    pub public_url: String,
    /// Which webhook endpoint URLs are accepted (HTTPS only on AWS).
    pub webhook_urls: UrlRule,
    /// What a create's inline documents may total (`input::MAX_INLINE_BYTES`, less on AWS).
    pub max_inline_bytes: u64,
    /// What a share's documents may total, where one worker run must archive them in limited
    /// time (`input::AWS_MAX_SHARE_BYTES`); `None`: only the per-document limits.
    pub max_share_bytes: Option<u64>,
}

impl Settings {
    /// The page host for the SMS WebOTP line.
    pub fn page_host(&self) -> &str {
        let rest = self.public_url.split("://").nth(1).unwrap_or(&self.public_url);
        let host_port = rest.split('/').next().unwrap_or(rest);
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    }
}

/// The ports and settings; a clone shares them (a test swaps one port with `..clone()`).
#[derive(Clone)]
pub struct Service {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub sms: Arc<dyn SmsSender>,
    pub mail: Arc<dyn MailSender>,
    pub poster: Arc<dyn WebhookPoster>,
    /// Where `send` leaves a share's archive and notification ([`Service::finish_send`]).
    pub sends: Arc<dyn SendQueue>,
    pub clock: Arc<dyn Clock>,
    pub keys: LazyKeys,
    pub settings: Settings,
}

/// How `mutate` reads the share, and so which checks apply.
#[derive(Clone, Copy)]
enum Load<'a> {
    /// A practice's own share, in any state.
    Practice(&'a Practice, &'a ShareId),
    /// A share open to patients (not expired, revoked or awaiting upload).
    Patient(&'a ShareId),
    /// Any share (the expiry sweep).
    AnyState(&'a ShareId),
}

/// What a change to a share did: whether the share itself changed (a conditional write), which
/// events to record, and what to answer.
struct Step<T> {
    changed: bool,
    events: Vec<Event>,
    outcome: Result<T>,
}

impl<T> Step<T> {
    fn changed(events: Vec<Event>, outcome: Result<T>) -> Self {
        Self { changed: true, events, outcome }
    }

    fn unchanged(events: Vec<Event>, outcome: Result<T>) -> Self {
        Self { changed: false, events, outcome }
    }
}

impl Service {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The keys for hashing secrets, tokens and webhook signatures (the pepper read on first use).
    async fn keys(&self) -> Result<&Keys> {
        self.keys.get().await.map_err(|e| Error::Internal(format!("the pepper: {e:#}")))
    }

    pub fn link(&self, id: &ShareId) -> String {
        format!("{}/s/{}", self.settings.public_url, id)
    }

    /// The practice a bearer API key belongs to.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Practice> {
        let key = authorization.and_then(bearer).filter(|k| k.starts_with(ApiKey::PREFIX)).ok_or(Error::Unauthorized)?;
        let record = self.store.find_api_key(&ApiKey::hash(key)).await?.ok_or(Error::Unauthorized)?;
        if record.revoked_at.is_some() {
            return Err(Error::Unauthorized);
        }
        self.store.get_practice(&record.practice_id).await?.ok_or(Error::Unauthorized)
    }

    /// A practice's own share, whatever its state; another practice's share does not exist.
    async fn practice_share(&self, practice: &Practice, id: &ShareId) -> Result<Share> {
        match self.store.get_share(id).await? {
            Some(share) if share.practice_id == practice.id => Ok(share),
            _ => Err(Error::NotFound),
        }
    }

    /// Loads a share for a patient, applying expiry and revocation (checked on every read).
    async fn open_share(&self, id: &ShareId) -> Result<Share> {
        self.patient_access(self.store.get_share(id).await?.ok_or(Error::NotFound)?)
    }

    /// `share` if patients may use it now, else why not.
    fn patient_access(&self, share: Share) -> Result<Share> {
        match share.access(self.now()) {
            Access::Open => Ok(share),
            Access::AwaitingUpload => Err(Error::NotFound),
            Access::Revoked => Err(Error::Revoked),
            Access::Expired => Err(Error::Expired),
        }
    }

    /// Reads a share, lets `f` decide, and writes the result conditionally on the version read,
    /// retrying from a fresh read when a concurrent writer won. This is what keeps attempt
    /// counts and self-service limits exact under concurrency.
    async fn mutate<T>(&self, load: Load<'_>, f: impl Fn(&mut Share, DateTime<Utc>) -> Step<T>) -> Result<T> {
        self.mutate_from(None, load, f).await
    }

    /// [`Self::mutate`] starting from a share the caller has just read, so the common case
    /// (no concurrent writer) costs one read, not two; a conflict reads afresh through `load`.
    async fn mutate_from<T>(
        &self,
        read: Option<Share>,
        load: Load<'_>,
        f: impl Fn(&mut Share, DateTime<Utc>) -> Step<T>,
    ) -> Result<T> {
        self.mutate_from_kept(read, load, f).await.map(|(outcome, _)| outcome)
    }

    /// [`Self::mutate_from`], with the share as the step left it (and stored it, if it wrote).
    async fn mutate_from_kept<T>(
        &self,
        mut read: Option<Share>,
        load: Load<'_>,
        f: impl Fn(&mut Share, DateTime<Utc>) -> Step<T>,
    ) -> Result<(T, Share)> {
        for _ in 0..MAX_WRITE_RETRIES {
            let mut share = match read.take() {
                Some(share) => share,
                None => match load {
                    Load::Practice(practice, id) => self.practice_share(practice, id).await?,
                    Load::Patient(id) => self.open_share(id).await?,
                    Load::AnyState(id) => self.store.get_share(id).await?.ok_or(Error::NotFound)?,
                },
            };
            let step = f(&mut share, self.now());
            if step.changed {
                share.version += 1;
                match self.store.update_share(&share, &step.events).await {
                    Ok(()) => {}
                    Err(PortError::Conflict) => {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            } else if !step.events.is_empty() {
                self.store.append_events(&step.events).await?;
            }
            return step.outcome.map(|outcome| (outcome, share));
        }
        tracing::warn!("gave up after {MAX_WRITE_RETRIES} conflicting writes");
        Err(Error::RateLimited { retry_after_secs: 1, message: "too many concurrent requests; try again" })
    }
}

/// Fixtures for adapter tests in this crate.
#[cfg(test)]
pub(crate) mod tests_support {
    pub fn share_fixture() -> crate::domain::Share {
        crate::domain::Share::fixture(&crate::domain::Policy::default(), chrono::Utc::now())
    }
}

/// The credentials of an `Authorization: Bearer …` header. The scheme is case-insensitive
/// (RFC 9110, 11.1): `bearer` and `BEARER` are the same scheme.
pub(crate) fn bearer(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}

#[cfg(test)]
mod bearer_tests {
    #[test]
    fn the_scheme_is_case_insensitive_and_the_credentials_trimmed() {
        for header in ["Bearer abc", "bearer abc", "BEARER  abc ", " Bearer abc"] {
            assert_eq!(super::bearer(header), Some("abc"), "{header:?}");
        }
        for header in ["Basic abc", "Bearerabc", "Bearer", "", "Bear abc"] {
            assert_eq!(super::bearer(header).filter(|c| !c.is_empty()), None, "{header:?}");
        }
    }
}
