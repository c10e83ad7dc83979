//! Expiry, done by the service rather than left to storage: when a link runs out, its documents
//! are deleted, `expired` is recorded (and `expired_unread` when nothing was downloaded, so the
//! practice may post a paper copy), and records past their retention are purged.

use super::archive::share_prefix;
use super::{Load, Service, Step};
use crate::domain::{Access, Event, EventKind, Lifecycle, Share, ShareId};
use crate::error::{Error, Result};

const BATCH: usize = 100;

impl Service {
    /// Processes every share whose link ran out; returns how many. Run periodically. A share
    /// that cannot be processed now is logged and left for the next run, and the others go on:
    /// the run then fails, after all of them, so that the failure is seen.
    pub async fn sweep_expired(&self) -> Result<usize> {
        let mut done = 0;
        let mut failed: Vec<ShareId> = Vec::new();
        // Each share once a run: a due list that lags behind the shares (DynamoDB's index is
        // eventually consistent) must not bring one back again and again.
        let mut seen: std::collections::HashSet<ShareId> = std::collections::HashSet::new();
        loop {
            let due = self.store.shares_due_for_expiry(self.now(), BATCH).await?;
            let due: Vec<_> = due.into_iter().filter(|share| seen.insert(share.id.clone())).collect();
            if due.is_empty() {
                break;
            }
            for share in due {
                // Due as a share still sending (or activated, its patient not yet notified), not
                // yet as an expired one.
                if share.send_requeue_due() && share.send_unfinished(self.now()) {
                    if let Err(e) = self.requeue_send(&share.id).await {
                        tracing::error!(share_id = %share.id, error = %e, "could not queue a share's send again");
                        failed.push(share.id);
                    }
                    continue;
                }
                match self.expire(&share).await {
                    Ok(true) => {
                        tracing::info!(share_id = %share.id, reference = %share.reference, "share expired");
                        done += 1;
                    }
                    Ok(false) | Err(Error::NotFound) => {}
                    Err(e) => {
                        tracing::error!(share_id = %share.id, error = %e, "could not process an expired share");
                        failed.push(share.id);
                    }
                }
            }
        }
        let purged = self.store.purge_expired_records(self.now()).await?;
        if purged > 0 {
            tracing::info!(purged, "expired share records purged");
        }
        if !failed.is_empty() {
            return Err(Error::Internal(format!(
                "{} expired shares could not be processed; the next run tries again",
                failed.len()
            )));
        }
        Ok(done)
    }

    /// Deletes an expired (or revoked) share's documents and records its expiry; `false` if
    /// it was done, or if the share is not expired or revoked, or not due yet (a revoked one
    /// waits for its uploads to land): the due list may lag behind it.
    async fn expire(&self, share: &Share) -> Result<bool> {
        let gone =
            |share: &Share, now| matches!(share.access(now), Access::Expired | Access::Revoked) && share.sweep_due_at() <= now;
        match self.store.get_share(&share.id).await? {
            Some(current) if gone(&current, self.now()) => {}
            _ => return Ok(false),
        }
        // Documents first: deleting is idempotent, so if anything below fails the next
        // sweep finds the share again and finishes; the other order could lose a delete.
        self.blobs.delete_prefix(&share_prefix(share)).await?;
        self.mutate(Load::AnyState(&share.id), |share, now| {
            if share.expiry_processed || !gone(share, now) {
                return Step::unchanged(vec![], Ok(false));
            }
            share.expiry_processed = true;
            let mut events = Vec::new();
            if share.lifecycle != Lifecycle::Revoked {
                events.push(Event::new(&share.id, EventKind::Expired, now));
                if share.first_downloaded_at.is_none() {
                    events.push(Event::new(&share.id, EventKind::ExpiredUnread, now));
                }
            }
            Step::changed(events, Ok(true))
        })
        .await
    }
}
