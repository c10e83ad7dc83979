//! What a patient does, with nothing but the link and a code.

use super::archive::{archive_key, document_key};
use super::input::VerifyIn;
use super::views::{ArchiveView, CodeSentView, PatientDocumentView, PublicShareView, SelfServiceView, UrlView, VerifyView};
use super::{ACCESS_TOKEN_SECS, DOWNLOAD_URL_SECS, Load, Service, Step};
use crate::domain::{Code, Event, EventKind, SelfServiceDenied, Share, ShareId, VerifyOutcome};
use crate::error::{Error, Result};
use crate::ports::Disposition;
use chrono::Duration;
use serde_json::json;

impl Service {
    /// `GET /v1/public/shares/{id}`: what the page shows before the code. No document names.
    pub async fn public_share(&self, id: &ShareId) -> Result<PublicShareView> {
        let mut share = self.open_share(id).await?;
        if share.first_opened_at.is_none() {
            share = self
                .mutate_from(Some(share), Load::Patient(id), |share, now| {
                    if share.first_opened_at.is_some() {
                        return Step::unchanged(vec![], Ok(share.clone()));
                    }
                    share.first_opened_at = Some(now);
                    Step::changed(vec![Event::new(&share.id, EventKind::Opened, now)], Ok(share.clone()))
                })
                .await?;
            tracing::info!(share_id = %share.id, reference = %share.reference, "share opened");
        }
        let practice = self.store.get_practice(&share.practice_id).await?.ok_or(Error::NotFound)?;
        let now = self.now();
        let self_service_available = match share.check_self_service(now) {
            Ok(()) | Err(SelfServiceDenied::TooSoon { .. }) => true,
            Err(_) => false,
        };
        Ok(PublicShareView {
            id: share.id.to_string(),
            practice_name: practice.name,
            reference: share.reference.to_string(),
            auth_method: share.auth,
            masked_phone: match share.auth {
                crate::domain::AuthMethod::Sms => share.recipient.phone.as_ref().map(|p| p.masked()),
                _ => None,
            },
            language: share.recipient.language.as_str(),
            state: if share.is_locked() { "locked" } else { "active" },
            expires_at: share.effective_expires_at(),
            attempts_left: share.attempts_left(),
            self_service: SelfServiceView { available: self_service_available, retry_after: share.self_service_wait(now) },
            allow_reply: share.policy.allow_reply,
        })
    }

    /// `POST /v1/public/shares/{id}/verify`. An attempt is counted before the answer is
    /// compared, with a conditional write, and given back if the answer was right: however
    /// many answers arrive at once, no more are compared than there are attempts left.
    pub async fn verify(&self, id: &ShareId, answer: &VerifyIn) -> Result<VerifyView> {
        let share = self.open_share(id).await?;
        let canonical = answer.canonical(share.auth)?;
        let keys = self.keys().await?;
        let (attempt, share) = self
            .mutate_from_kept(Some(share), Load::Patient(id), |share, _| match share.take_attempt() {
                Some(attempt) => Step::changed(vec![], Ok(attempt)),
                None => Step::unchanged(vec![], Err(Error::Locked)),
            })
            .await?;
        let correct = share.secret.as_ref().is_some_and(|s| keys.secret_matches(share.id.as_str(), &canonical, &s.hash));
        let share = self
            .mutate_from(Some(share), Load::Patient(id), |share, now| {
                let before = share.clone();
                let outcome = share.settle_attempt(attempt, now, correct);
                let share_id = share.id.clone();
                let event = |kind| Event::new(&share_id, kind, now);
                let failed = |reason: &str| event(EventKind::VerifyFailed).with_data(json!({ "reason": reason }));
                let (events, result) = match outcome {
                    VerifyOutcome::Verified => (share.patient_event(event(EventKind::Verified)), Ok(share.clone())),
                    VerifyOutcome::WrongCode { attempts_left } => {
                        (vec![failed("wrong_code")], Err(Error::WrongCode { attempts_left }))
                    }
                    VerifyOutcome::Locked => (vec![failed("wrong_code"), event(EventKind::Locked)], Err(Error::Locked)),
                    // The right code, too old (strict mode) or replaced meanwhile: the
                    // practice sees the patient tried, and why it failed, so it can resend.
                    VerifyOutcome::ExpiredCode => (vec![failed("expired_code")], Err(Error::ExpiredCode)),
                };
                // A right answer gives its attempt back: a write, conditional like the one
                // that took it. A wrong one was counted already and only adds its events.
                if *share == before { Step::unchanged(events, result) } else { Step::changed(events, result) }
            })
            .await;
        if let Err(Error::WrongCode { .. } | Error::Locked) = &share {
            tracing::info!(share_id = %id, "verification refused");
        }
        let share = share?;
        tracing::info!(share_id = %share.id, reference = %share.reference, "share verified");
        let generation = share.secret.as_ref().map_or(0, |s| s.generation);
        let expires_at = self.now() + Duration::seconds(ACCESS_TOKEN_SECS);
        Ok(VerifyView {
            access_token: keys.issue_token(share.id.as_str(), generation, expires_at),
            expires_in: ACCESS_TOKEN_SECS,
            documents: share
                .documents
                .iter()
                .map(|d| PatientDocumentView {
                    id: d.id.to_string(),
                    filename: d.filename.as_str().to_owned(),
                    size: d.size,
                    content_type: d.content_type.as_str().to_owned(),
                })
                .collect(),
            archive: share.archive_size.map(|size| ArchiveView { size }),
        })
    }

    /// `POST /v1/public/shares/{id}/code`: a fresh code by SMS to the number the practice gave.
    /// It keeps the count of wrong answers; only the practice's resend starts a new count.
    pub async fn request_code(&self, id: &ShareId) -> Result<CodeSentView> {
        let share = self.open_share(id).await?;
        check_self_service(&share, self.now())?;
        let keys = self.keys().await?;
        let practice = self.store.get_practice(&share.practice_id).await?.ok_or(Error::NotFound)?;
        // Count against the daily cap before the old code dies, so a capped request changes nothing.
        let Some(day) = self.take_sms_budget(&practice).await? else {
            tracing::warn!(share_id = %share.id, reference = %share.reference, "daily SMS cap reached");
            let secs = seconds_to_next_utc_day(self.now());
            return Err(Error::RateLimited { retry_after_secs: secs, message: "the practice's daily SMS limit is reached" });
        };
        let requested = self
            .mutate_from(Some(share), Load::Patient(id), |share, now| {
                if let Err(e) = check_self_service(share, now) {
                    return Step::unchanged(vec![], Err(e));
                }
                let code = Code::generate();
                share.replace_secret(keys.hash_secret(share.id.as_str(), code.digits()), now, false);
                share.self_service_requests += 1;
                Step::changed(vec![Event::new(&share.id, EventKind::CodeRequested, now)], Ok((share.clone(), code)))
            })
            .await;
        // A request that lost the race (or found the share changed) sends nothing: its unit of
        // the cap goes back, or a burst of requests would spend the practice's day.
        let (share, code) = match requested {
            Ok(requested) => requested,
            Err(e) => {
                self.give_back_sms(&practice, &day).await;
                return Err(e);
            }
        };
        tracing::info!(share_id = %share.id, reference = %share.reference, "code requested by patient");
        let sent = self.send_code_sms(&practice, &share, &code, true).await;
        if sent.status != "sent" {
            return Err(Error::Internal("the SMS provider refused a self-service code".into()));
        }
        Ok(CodeSentView { status: "sent", masked_phone: share.recipient.phone.as_ref().map(|p| p.masked()) })
    }

    /// `GET /v1/public/shares/{id}/documents/{doc}`: a short-lived URL for one document.
    pub async fn document_url(&self, id: &ShareId, doc_id: &str, token: Option<&str>) -> Result<UrlView> {
        let share = self.authorized_share(id, token).await?;
        let doc = share.documents.iter().find(|d| d.id.as_str() == doc_id).ok_or(Error::NotFound)?;
        let url = self
            .blobs
            .download_url(
                &document_key(&share, doc),
                Disposition { filename: doc.filename.as_str(), content_type: doc.content_type.as_str() },
                self.url_lifetime(&share),
            )
            .await?;
        let event = Event::new(&share.id, EventKind::DocumentDownloaded, self.now()).with_data(json!({ "document_id": doc.id }));
        let expires_in = self.url_lifetime(&share);
        self.record_download(share, event).await?;
        Ok(UrlView { url, expires_in })
    }

    /// `GET /v1/public/shares/{id}/archive`: a short-lived URL for the ZIP of all documents.
    pub async fn archive_url(&self, id: &ShareId, token: Option<&str>) -> Result<UrlView> {
        let share = self.authorized_share(id, token).await?;
        let filename = format!("{}.zip", share.reference);
        let url = self
            .blobs
            .download_url(
                &archive_key(&share),
                Disposition { filename: &filename, content_type: "application/zip" },
                self.url_lifetime(&share),
            )
            .await?;
        let (event, expires_in) = (Event::new(&share.id, EventKind::ArchiveDownloaded, self.now()), self.url_lifetime(&share));
        self.record_download(share, event).await?;
        Ok(UrlView { url, expires_in })
    }

    /// A download URL lives 5 minutes, but never past the link itself.
    pub(super) fn url_lifetime(&self, share: &Share) -> u64 {
        let left = (share.effective_expires_at() - self.now()).num_seconds().max(1) as u64;
        left.min(DOWNLOAD_URL_SECS)
    }

    /// The share, if `token` is a live access token from its current code.
    pub(super) async fn authorized_share(&self, id: &ShareId, token: Option<&str>) -> Result<Share> {
        let share = self.open_share(id).await?;
        let token = token.and_then(super::bearer).ok_or(Error::Unauthorized)?;
        let generation = self.keys().await?.check_token(token, share.id.as_str(), self.now()).ok_or(Error::Unauthorized)?;
        if share.secret.as_ref().map(|s| s.generation) != Some(generation) {
            return Err(Error::Unauthorized); // a resend since: the old session ends with the old code
        }
        Ok(share)
    }

    /// A URL handed out counts as a download (on AWS the bytes come from S3 directly, so this is
    /// the one moment the service sees). The first one is kept on the share for
    /// `expired_unread`; each counts toward what the share keeps (`Share::patient_event`).
    async fn record_download(&self, share: Share, event: Event) -> Result<()> {
        let id = share.id.clone();
        self.mutate_from(Some(share), Load::Patient(&id), |share, now| {
            let first = share.first_downloaded_at.is_none();
            share.first_downloaded_at.get_or_insert(now);
            let events = share.patient_event(event.clone());
            if first || !events.is_empty() { Step::changed(events, Ok(())) } else { Step::unchanged(events, Ok(())) }
        })
        .await
    }
}

fn check_self_service(share: &Share, now: chrono::DateTime<chrono::Utc>) -> Result<()> {
    share.check_self_service(now).map_err(|denied| match denied {
        SelfServiceDenied::NotAllowed => Error::Forbidden("this share does not allow requesting a new code"),
        SelfServiceDenied::Locked => Error::Locked,
        SelfServiceDenied::TooSoon { retry_after_secs } => {
            Error::RateLimited { retry_after_secs, message: "a new code can be requested later" }
        }
        SelfServiceDenied::Exhausted { retry_after_secs } => {
            Error::RateLimited { retry_after_secs, message: "no more codes can be requested for this share; ask the practice" }
        }
    })
}

fn seconds_to_next_utc_day(now: chrono::DateTime<chrono::Utc>) -> u64 {
    let tomorrow = (now.date_naive() + Duration::days(1)).and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    (tomorrow - now).num_seconds().max(1) as u64
}
