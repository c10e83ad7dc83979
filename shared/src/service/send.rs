//! Sending a share whose large documents were uploaded. `POST …/send` checks what is cheap to
//! check (each upload is there, of its declared size), marks the share `sending` and leaves the
//! rest to the send queue: an upload of 2 GiB cannot be read, hashed and archived within API
//! Gateway's 30 s. The worker ([`Service::finish_send`]) moves each upload into place, hashes it
//! on its way into the archive, then activates the share and notifies the patient; a document
//! that is not what its share declares sends the share back to `awaiting_upload`.

use super::archive::{ArchiveError, build_checked_archive, document_key, share_prefix, upload_key};
use super::create::{declared_sha256, manual_code, new_code};
use super::views::{DocumentView, ShareView};
use super::{Load, Service, Step};
use crate::domain::{
    Access, AuthMethod, Code, Document, Event, EventKind, Lifecycle, Practice, SEND_REQUEUE_SECS, Share, ShareId,
};
use crate::error::{Error, Result};
use serde_json::json;

/// What `send_share` did.
#[derive(Debug)]
pub enum Sent {
    /// The share is being sent (`202`): the archive is built in the background.
    Accepted(Box<ShareView>),
    /// The share was sent already (`200`): nothing happens again.
    Done(Box<ShareView>),
}

/// Why the worker sends a share back to `awaiting_upload` (`upload_rejected`'s `reason`).
#[derive(Debug, Clone, Copy)]
enum Rejected {
    /// Nothing was uploaded (or it is gone).
    Missing,
    /// Not the declared number of bytes.
    SizeMismatch,
    /// The declared number of bytes, not the declared SHA-256.
    Sha256Mismatch,
}

impl Rejected {
    fn as_str(self) -> &'static str {
        match self {
            Rejected::Missing => "missing",
            Rejected::SizeMismatch => "size_mismatch",
            Rejected::Sha256Mismatch => "sha256_mismatch",
        }
    }
}

impl Service {
    /// `POST /v1/shares/{id}/send`: each upload there and of its declared size, the share
    /// `sending`, its work queued. Sent again while sending, it queues the work again (a queue
    /// message lost with a crash is made good) and the work is still done once.
    pub async fn send_share(&self, practice: &Practice, id: &ShareId) -> Result<Sent> {
        let share = self.practice_share(practice, id).await?;
        match share.access(self.now()) {
            Access::AwaitingUpload => {}
            Access::Expired => return Err(Error::Expired),
            Access::Revoked => return Err(Error::Revoked),
            Access::Open => return Ok(Sent::Done(Box::new(ShareView::new(&share, self.link(&share.id), self.now())))),
        }
        if share.lifecycle == Lifecycle::AwaitingUpload {
            for (i, doc) in share.documents.iter().enumerate() {
                self.check_upload(&share, doc).await.map_err(|e| match e {
                    Error::InvalidRequest { message, .. } => Error::invalid(format!("documents[{i}]"), message),
                    other => other,
                })?;
            }
        }
        // A `manual` share's code goes back in this answer, so it is made now (once: a send
        // after a rejected upload keeps the code the practice may have passed on already); an
        // `sms` share's is made when the archive is ready, and goes out by SMS then.
        let keys = match share.auth {
            AuthMethod::Manual if share.secret.is_none() => Some(self.keys().await?),
            _ => None,
        };
        let (code, share) = self
            .mutate_from_kept(Some(share), Load::Practice(practice, id), |share, now| {
                if share.lifecycle != Lifecycle::AwaitingUpload || share.access(now) != Access::AwaitingUpload {
                    return Step::unchanged(vec![], Ok(None)); // sending already, or expired or revoked
                }
                share.lifecycle = Lifecycle::Sending;
                share.send_queued_at = Some(now);
                share.send_requeues = 0;
                let code = keys.filter(|_| share.secret.is_none()).map(|keys| new_code(keys, share, now));
                Step::changed(vec![], Ok(code))
            })
            .await?;
        if share.lifecycle != Lifecycle::Sending {
            // Sent, revoked or expired meanwhile: answered as a send of that share would be.
            return Box::pin(self.send_share(practice, id)).await;
        }
        self.sends.enqueue(&share.id, share.version).await?;
        tracing::info!(share_id = %share.id, reference = %share.reference, "share queued for sending");
        let mut view = ShareView::new(&share, self.link(&share.id), self.now());
        view.code = manual_code(&share, code.as_ref());
        Ok(Sent::Accepted(Box::new(view)))
    }

    /// The work a `send` queued: every upload moved into place and hashed into the archive,
    /// then the share active and the patient notified; or, for the first document that is not
    /// what its share declares, that document deleted, `upload_rejected` recorded and the share
    /// back to `awaiting_upload`. Safe to run any number of times, also at once: it builds
    /// only for a `sending` share, and only the run that activates it notifies (a later run
    /// only makes good what an ended run left untold, [`Self::notify_left_pending`], which
    /// two runs of one share must not do at once: the queues never run them so). An error
    /// (storage, the network) leaves the share for the queue to try again.
    /// [`Self::run_isolated`] is how a worker calls it.
    pub async fn finish_send(&self, id: &ShareId) -> Result<()> {
        let Some(share) = self.store.get_share(id).await? else { return Ok(()) };
        if share.lifecycle == Lifecycle::Active && share.notify_pending_since.is_some() {
            return self.notify_left_pending(share).await;
        }
        if share.lifecycle != Lifecycle::Sending || share.access(self.now()) != Access::AwaitingUpload {
            return Ok(()); // sent by an earlier run, rejected, revoked or expired
        }
        let result = self.work_send(share).await;
        // Revoked or expired while this run worked (a copy landing after the revoke's delete,
        // say): nothing of the share may stay, whatever the run did or failed to do.
        self.leave_nothing_if_gone(id).await?;
        result
    }

    /// [`Self::finish_send`] in a task of its own, so that a panic in it fails this share's
    /// run (retried as an error is) rather than the worker that called it.
    pub async fn run_isolated(self: &std::sync::Arc<Self>, id: &ShareId) -> Result<()> {
        let (service, id) = (self.clone(), id.clone());
        match tokio::spawn(async move { service.finish_send(&id).await }).await {
            Ok(result) => result,
            Err(e) => Err(Error::Internal(format!("the send worker's run ended: {e}"))),
        }
    }

    async fn work_send(&self, share: Share) -> Result<()> {
        let id = &share.id;
        // Read before the share is activated: a run that fails after it leaves the notice to
        // a later run.
        let practice = self.practice_of(&share).await?;
        for (i, doc) in share.documents.iter().enumerate() {
            if let Some(why) = self.place_upload(&share, doc).await? {
                return self.reject_upload(&share, i, why).await;
            }
        }
        // The bytes are hashed on their way into the archive: one read of each document. A
        // mismatch ends the archive unwritten (its multipart upload aborted).
        let archive_size = match build_checked_archive(self.blobs.clone(), &share).await {
            Ok(size) => size,
            Err(ArchiveError::Port(e)) => return Err(e.into()),
            Err(ArchiveError::Mismatch { index, size }) => {
                let why = if size == share.documents[index].size { Rejected::Sha256Mismatch } else { Rejected::SizeMismatch };
                return self.reject_upload(&share, index, why).await;
            }
        };
        let keys = match share.auth {
            AuthMethod::Sms => Some(self.keys().await?),
            _ => None,
        };
        let activated = self
            .mutate(Load::AnyState(id), |share, now| {
                if share.lifecycle != Lifecycle::Sending || share.access(now) != Access::AwaitingUpload {
                    return Step::unchanged(vec![], Ok(None)); // sent by another run, revoked or expired
                }
                share.lifecycle = Lifecycle::Active;
                share.archive_size = Some(archive_size);
                // Cleared once the patient was notified; until then the sweep may queue the
                // share again, 30 minutes from now, as it would a share still sending.
                share.notify_pending_since = Some(now);
                share.send_queued_at = Some(now);
                share.send_requeues = 0;
                let code = match keys {
                    Some(keys) => Some(new_code(keys, share, now)),
                    None => {
                        // A manual code made at send lives from now, when it can first be used.
                        if let Some(secret) = share.secret.as_mut().filter(|_| share.auth == AuthMethod::Manual) {
                            secret.issued_at = now;
                        }
                        None
                    }
                };
                Step::changed(vec![Event::new(&share.id, EventKind::ArchiveReady, now)], Ok(Some((share.clone(), code))))
            })
            .await?;
        let Some((share, code)) = activated else { return Ok(()) };
        tracing::info!(share_id = %share.id, reference = %share.reference, "share sent after upload");
        self.notify_activated(&practice, &share, code.as_ref(), true).await
    }

    /// Notifies the patient of a share this run activated, on the channels still to tell: the
    /// email (`email`) and, for `sms`, the code given; then clears the mark. Nothing is sent if
    /// the share changed meanwhile: revoked, or resent by the practice (a new code, already
    /// told to the patient; this run's would be dead on arrival).
    async fn notify_activated(&self, practice: &Practice, share: &Share, code: Option<&Code>, email: bool) -> Result<()> {
        let generation = |s: &Share| s.secret.as_ref().map(|secret| secret.generation);
        let current = self.store.get_share(&share.id).await?;
        if current.is_some_and(|s| {
            s.access(self.now()) == Access::Open && s.notify_pending_since.is_some() && generation(&s) == generation(share)
        }) {
            if email {
                self.send_share_email(practice, share).await;
            }
            // Checked again: a resend while the email went out makes this code dead on arrival.
            let still = self.store.get_share(&share.id).await?;
            if let (AuthMethod::Sms, Some(code), Some(still)) = (share.auth, code, still)
                && still.notify_pending_since.is_some()
                && generation(&still) == generation(share)
            {
                self.send_code_sms(practice, share, code, false).await;
            }
        }
        self.mutate(Load::AnyState(&share.id), |share, _| match share.notify_pending_since.take() {
            Some(_) => Step::changed(vec![], Ok(())),
            None => Step::unchanged(vec![], Ok(())),
        })
        .await
    }

    /// A share activated by a run that ended before it cleared its mark (a crash, a timeout,
    /// an error): each channel the share's events show no result for since `archive_ready` is
    /// told now; the SMS with a fresh code, since the one made at activation never left that
    /// run. Runs of one share never overlap (one message group per share on SQS, one task
    /// beside a server), so nothing else is notifying it meanwhile.
    async fn notify_left_pending(&self, share: Share) -> Result<()> {
        let events = self.store.list_events(&share.id).await?;
        let activated = events.iter().rposition(|e| e.kind == EventKind::ArchiveReady).unwrap_or(0);
        let told = |channel: &str, sent: EventKind| {
            events[activated..]
                .iter()
                .any(|e| e.kind == sent || (e.kind == EventKind::NotificationFailed && e.data["channel"] == channel))
        };
        let email = !told("email", EventKind::EmailSent);
        let sms = share.auth == AuthMethod::Sms && !told("sms", EventKind::SmsSent);
        let practice = self.practice_of(&share).await?;
        let keys = if sms { Some(self.keys().await?) } else { None };
        let id = share.id.clone();
        let taken = self
            .mutate_from(Some(share), Load::AnyState(&id), |share, now| {
                if share.notify_pending_since.is_none() || share.access(now) != Access::Open {
                    return Step::unchanged(vec![], Ok(None)); // cleared, revoked or expired meanwhile
                }
                if !email && !sms {
                    share.notify_pending_since = None; // told already: the run ended after it
                    return Step::changed(vec![], Ok(None));
                }
                let code = keys.map(|keys| new_code(keys, share, now));
                // A manual code lives from when the patient can first use it, as at activation.
                if let Some(secret) = share.secret.as_mut().filter(|_| email && share.auth == AuthMethod::Manual) {
                    secret.issued_at = now;
                }
                Step::changed(vec![], Ok(Some((share.clone(), code))))
            })
            .await?;
        let Some((share, code)) = taken else { return Ok(()) };
        tracing::warn!(share_id = %share.id, reference = %share.reference, email, sms,
            "a share activated by a run that ended before notifying: notified now");
        self.notify_activated(&practice, &share, code.as_ref(), email).await
    }

    /// The sweep's part for a share still `sending` long after its send was queued (a message
    /// lost, a worker that ran out of retries, a server restarted with its queue in memory):
    /// its send is queued again, at most [`crate::domain::MAX_SEND_REQUEUES`] times. `true` if it was.
    pub(super) async fn requeue_send(&self, id: &ShareId) -> Result<bool> {
        let (again, share) = self
            .mutate_from_kept(None, Load::AnyState(id), |share, now| {
                let waited = share.send_queued_at.is_some_and(|at| now >= at + chrono::Duration::seconds(SEND_REQUEUE_SECS));
                if !share.send_requeue_due() || !share.send_unfinished(now) || !waited {
                    return Step::unchanged(vec![], Ok(false));
                }
                share.send_queued_at = Some(now);
                share.send_requeues += 1;
                Step::changed(vec![], Ok(true))
            })
            .await?;
        if again {
            self.sends.enqueue(&share.id, share.version).await?;
            tracing::warn!(share_id = %share.id, reference = %share.reference, requeues = share.send_requeues,
                "a share still sending, or not yet notified, long after it was queued: queued again");
        }
        Ok(again)
    }

    /// Deletes everything of a share that is revoked or expired (idempotent). A share whose
    /// record is gone was purged: the TTL cleanup deletes its documents.
    async fn leave_nothing_if_gone(&self, id: &ShareId) -> Result<()> {
        if let Some(share) = self.store.get_share(id).await?
            && matches!(share.access(self.now()), Access::Revoked | Access::Expired)
        {
            self.blobs.delete_prefix(&share_prefix(&share)).await?;
        }
        Ok(())
    }

    /// `POST /v1/shares/{id}/documents/{doc}/upload-url`: a fresh upload URL for a document
    /// of a share still awaiting its uploads (the first ones expired, their credentials ended,
    /// or the worker rejected the upload), and whether a complete upload is there already, so
    /// that an interrupted run resumes where it stopped. Recorded on the share: a revoke's
    /// second cleanup waits until this URL cannot land anything more.
    pub async fn renew_upload_url(&self, practice: &Practice, id: &ShareId, doc_id: &str) -> Result<DocumentView> {
        let share = self.practice_share(practice, id).await?;
        let doc = share.documents.iter().find(|d| d.id.as_str() == doc_id).ok_or(Error::NotFound)?.clone();
        // The share's state is the practice's to know: told as SPEC's other state errors are.
        let upload_allowed = |share: &Share, now| match share.access(now) {
            Access::Expired => Err(Error::Expired),
            Access::Revoked => Err(Error::Revoked),
            Access::Open => Err(Error::invalid("status", "the share was sent: its documents cannot change any more")),
            Access::AwaitingUpload if share.lifecycle == Lifecycle::Sending => {
                Err(Error::invalid("status", "the share is being sent: wait for archive_ready or upload_rejected"))
            }
            Access::AwaitingUpload => share.upload_url_secs(now).ok_or_else(|| {
                Error::invalid("status", "the link expires within the hour: too late to upload, create a new share")
            }),
        };
        let secs = upload_allowed(&share, self.now())?;
        // The URL's end is recorded before the URL exists, so a revoke after this sees it.
        let (share, until) = self
            .mutate_from(Some(share), Load::Practice(practice, id), |share, now| {
                let secs = match upload_allowed(share, now) {
                    Ok(allowed) => allowed.min(secs),
                    Err(e) => return Step::unchanged(vec![], Err(e)),
                };
                let until = now + chrono::Duration::seconds(secs as i64);
                if share.upload_urls_end() >= until {
                    return Step::unchanged(vec![], Ok((share.clone(), until)));
                }
                share.upload_urls_given_until(until);
                Step::changed(vec![], Ok((share.clone(), until)))
            })
            .await?;
        let uploaded = self.uploaded_size(&share, &doc).await? == Some(doc.size);
        let sha256 = declared_sha256(&doc)?;
        // Signed to end when recorded, however long the HEADs took.
        let secs = (until - self.now()).num_seconds().max(1) as u64;
        let url = self.blobs.upload_url(&upload_key(&share, &doc), doc.size, &sha256, secs).await?;
        tracing::info!(share_id = %share.id, document_id = %doc.id, uploaded, "upload URL renewed");
        let mut view = DocumentView::new(&doc).with_upload(url, &sha256);
        view.uploaded = Some(uploaded);
        Ok(view)
    }

    /// The practice a share belongs to, which a worker needs to notify its patient.
    async fn practice_of(&self, share: &Share) -> Result<Practice> {
        self.store
            .get_practice(&share.practice_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("share {} has no practice", share.id)))
    }

    /// The size of a document's upload, or of the document moved into place by an earlier
    /// attempt; `None` if neither is stored. HEAD requests, no reading.
    async fn uploaded_size(&self, share: &Share, doc: &Document) -> Result<Option<u64>> {
        Ok(match self.blobs.size(&upload_key(share, doc)).await? {
            Some(size) => Some(size),
            None => self.blobs.size(&document_key(share, doc)).await?,
        })
    }

    /// What `send` checks before it answers: the document is uploaded (or was moved into place
    /// by an earlier attempt), with the declared number of bytes. HEAD requests, no reading.
    async fn check_upload(&self, share: &Share, doc: &Document) -> Result<()> {
        match self.uploaded_size(share, doc).await? {
            None => Err(Error::invalid("", format!("{} has not been uploaded", doc.id))),
            Some(size) if size != doc.size => {
                Err(Error::invalid("", format!("{}: uploaded {size} bytes, declared {}", doc.id, doc.size)))
            }
            Some(_) => Ok(()),
        }
    }

    /// Moves an uploaded document into place, where no upload URL points (a late PUT cannot
    /// change checked bytes), and checks its size; why not, if it cannot be sent.
    async fn place_upload(&self, share: &Share, doc: &Document) -> Result<Option<Rejected>> {
        let key = document_key(share, doc);
        // Absent at the upload key: moved by an earlier attempt.
        self.blobs.rename(&upload_key(share, doc), &key).await?;
        Ok(match self.blobs.size(&key).await? {
            None => Some(Rejected::Missing),
            Some(size) if size != doc.size => Some(Rejected::SizeMismatch),
            Some(_) => None,
        })
    }

    /// Deletes what failed (the practice uploads it again) and sends the share back to
    /// `awaiting_upload` with `upload_rejected`.
    async fn reject_upload(&self, share: &Share, index: usize, why: Rejected) -> Result<()> {
        let doc = &share.documents[index];
        let current = self.store.get_share(&share.id).await?;
        if current.is_none_or(|s| s.lifecycle != Lifecycle::Sending || s.access(self.now()) != Access::AwaitingUpload) {
            return Ok(()); // sent by another run, revoked or expired: nothing to reject
        }
        self.blobs.delete_prefix(&document_key(share, doc)).await?;
        let doc_id = doc.id.clone();
        self.mutate(Load::AnyState(&share.id), |share, now| {
            if share.lifecycle != Lifecycle::Sending || share.access(now) != Access::AwaitingUpload {
                return Step::unchanged(vec![], Ok(()));
            }
            share.lifecycle = Lifecycle::AwaitingUpload;
            let event = Event::new(&share.id, EventKind::UploadRejected, now)
                .with_data(json!({ "document_id": doc_id.as_str(), "reason": why.as_str() }));
            Step::changed(vec![event], Ok(()))
        })
        .await?;
        tracing::info!(share_id = %share.id, reference = %share.reference, document_id = %doc.id, reason = why.as_str(),
            "upload rejected; the share waits for it again");
        Ok(())
    }
}
