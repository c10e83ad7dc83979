//! What a practice does with its shares after creating them: read, list, resend, revoke.

use super::archive::share_prefix;
use super::create::manual_code;
use super::views::{ShareList, ShareView};
use super::{Load, Service, Step};
use crate::domain::{Access, Code, Event, EventKind, Lifecycle, Practice, ShareId};
use crate::error::{Error, Result};
use crate::ports::ListCursor;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 100;

impl Service {
    /// `GET /v1/shares/{id}`: status and the event history.
    pub async fn get_share(&self, practice: &Practice, id: &ShareId) -> Result<ShareView> {
        let share = self.practice_share(practice, id).await?;
        let mut view = ShareView::new(&share, self.link(&share.id), self.now());
        view.events = Some(self.store.list_events(&share.id).await?);
        Ok(view)
    }

    /// `GET /v1/shares?cursor=&limit=`, newest first.
    pub async fn list_shares(&self, practice: &Practice, cursor: Option<&str>, limit: Option<&str>) -> Result<ShareList> {
        let limit = match limit {
            None => DEFAULT_PAGE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| Error::invalid("limit", format!("limit must be 1 to {MAX_PAGE}")))?,
        };
        let after = cursor.filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
        let mut shares = self.store.list_shares(&practice.id, after.as_ref(), limit + 1).await?;
        let more = shares.len() > limit;
        shares.truncate(limit);
        let now = self.now();
        let next_cursor = more.then(|| shares.last().map(|s| encode_cursor(s.created_at, &s.id))).flatten();
        Ok(ShareList { shares: shares.iter().map(|s| ShareView::new(s, self.link(&s.id), now)).collect(), next_cursor })
    }

    /// `POST /v1/shares/{id}/resend`: a new code (the old one dies at once), a new count of
    /// wrong answers, and the patient notified again.
    pub async fn resend(&self, practice: &Practice, id: &ShareId) -> Result<ShareView> {
        let keys = self.keys().await?;
        let (share, code) = self
            .mutate(Load::Practice(practice, id), |share, now| {
                match share.access(now) {
                    Access::Open => {}
                    Access::Expired => return Step::unchanged(vec![], Err(Error::Expired)),
                    Access::Revoked => return Step::unchanged(vec![], Err(Error::Revoked)),
                    Access::AwaitingUpload => {
                        return Step::unchanged(
                            vec![],
                            Err(Error::invalid("status", "the share is not sent yet (awaiting upload or sending)")),
                        );
                    }
                }
                let code = if share.auth.uses_code() {
                    let code = Code::generate();
                    share.replace_secret(keys.hash_secret(share.id.as_str(), code.digits()), now, true);
                    Some(code)
                } else {
                    // A date of birth or insurance number stays; the count starts again.
                    let hash = share.secret.as_ref().map(|s| s.hash.clone()).unwrap_or_default();
                    share.replace_secret(hash, now, true);
                    None
                };
                // The practice notifies the patient itself: a worker run that ended before it
                // could leaves nothing to make good (a second notice would kill this code).
                share.notify_pending_since = None;
                Step::changed(vec![Event::new(&share.id, EventKind::Resent, now)], Ok((share.clone(), code)))
            })
            .await?;
        tracing::info!(share_id = %share.id, reference = %share.reference, "share resent");
        let mut view = ShareView::new(&share, self.link(&share.id), self.now());
        view.notifications = Some(self.notify(practice, &share, code.as_ref()).await);
        view.code = manual_code(&share, code.as_ref());
        Ok(view)
    }

    /// `DELETE /v1/shares/{id}`: documents deleted now; the record stays for audit.
    pub async fn revoke(&self, practice: &Practice, id: &ShareId) -> Result<ShareView> {
        let share = self
            .mutate(Load::Practice(practice, id), |share, now| {
                if share.lifecycle == Lifecycle::Revoked {
                    return Step::unchanged(vec![], Ok(share.clone()));
                }
                share.lifecycle = Lifecycle::Revoked;
                share.revoked_at = Some(now);
                Step::changed(vec![Event::new(&share.id, EventKind::Revoked, now)], Ok(share.clone()))
            })
            .await?;
        // Deleting after the write: from the write on, nothing hands out a URL any more. If the
        // delete fails, the request fails and a retry deletes again.
        self.blobs.delete_prefix(&share_prefix(&share)).await?;
        tracing::info!(share_id = %share.id, reference = %share.reference, "share revoked");
        Ok(ShareView::new(&share, self.link(&share.id), self.now()))
    }
}

fn encode_cursor(created_at: DateTime<Utc>, id: &ShareId) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", created_at.timestamp_micros(), id))
}

fn decode_cursor(raw: &str) -> Result<ListCursor> {
    let bad = || Error::invalid("cursor", "cursor is not one this API returned");
    let text = URL_SAFE_NO_PAD.decode(raw).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(bad)?;
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    let created_at = micros.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(bad)?;
    let id = ShareId::parse(id).ok_or_else(bad)?;
    Ok(ListCursor { created_at, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = ShareId::generate();
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        assert_eq!(decode_cursor(&encode_cursor(at, &id)).unwrap(), ListCursor { created_at: at, id });
        for bad in ["", "!!", "bm9wZQ", "MTIzLmFiYw"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
            any::<i64>().prop_filter_map("outside chrono's range", DateTime::from_timestamp_micros)
        }

        fn any_share_id() -> impl Strategy<Value = ShareId> {
            any::<[u8; 16]>().prop_map(|b| ShareId::parse(&URL_SAFE_NO_PAD.encode(b)).expect("22 URL-safe chars"))
        }

        proptest! {
            /// Every cursor the API hands out reads back as the position it names.
            #[test]
            fn every_cursor_handed_out_reads_back(at in any_time(), id in any_share_id()) {
                let cursor = encode_cursor(at, &id);
                prop_assert!(cursor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "URL-safe");
                prop_assert_eq!(decode_cursor(&cursor).unwrap(), ListCursor { created_at: at, id });
            }

            /// Garbage never panics and is refused with `invalid_request` on `cursor`; what
            /// is accepted is a real position that survives another round trip.
            #[test]
            fn garbage_is_refused_never_a_panic(
                raw in "\\PC{0,60}",
                micros in "[+-]?[0-9]{0,22}",
                id in "[A-Za-z0-9_.-]{0,30}",
            ) {
                let wellformed_garbage = URL_SAFE_NO_PAD.encode(format!("{micros}.{id}"));
                for candidate in [raw, wellformed_garbage] {
                    match decode_cursor(&candidate) {
                        Ok(c) => prop_assert_eq!(decode_cursor(&encode_cursor(c.created_at, &c.id)).unwrap(), c),
                        Err(Error::InvalidRequest { field, .. }) => prop_assert_eq!(field, "cursor"),
                        Err(other) => prop_assert!(false, "{:?}", other),
                    }
                }
            }
        }
    }
}
