//! Webhook endpoints in SQLite, and the embedded backend's delivery queue: the `events` table
//! is read in order from a cursor (as DynamoDB's stream is on AWS), each event becomes one row
//! per endpoint in `webhook_queue`, and a row leaves the queue only once its delivery is done.

use super::sqlite::{SqliteStore, db_err, from_json, to_json, us};
use crate::domain::{Event, PracticeId, Webhook, WebhookId};
use crate::ports::{Attempt, FailedDelivery, PortResult, WebhookHealth, WebhookStore};
use crate::service::Delivery;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

/// Failed deliveries are listed this long.
pub const FAILURES_KEPT_DAYS: i64 = 30;

/// A queued delivery: its place in the queue and how many attempts it has had.
#[derive(Debug, Clone)]
pub struct Queued {
    pub seq: i64,
    pub attempts: u32,
    pub delivery: Delivery,
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn put_webhook(&self, webhook: &Webhook) -> PortResult<()> {
        let webhook = webhook.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO webhooks (id, practice_id, created_us, body) VALUES (?1, ?2, ?3, ?4)",
                params![webhook.id.as_str(), webhook.practice_id.as_str(), us(webhook.created_at), to_json(&webhook)?],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn replace_webhook(&self, webhook: &Webhook) -> PortResult<bool> {
        let webhook = webhook.clone();
        self.write(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE webhooks SET body = ?3 WHERE id = ?1 AND practice_id = ?2",
                    params![webhook.id.as_str(), webhook.practice_id.as_str(), to_json(&webhook)?],
                )
                .map_err(db_err)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn get_webhook(&self, practice: &PracticeId, id: &WebhookId) -> PortResult<Option<Webhook>> {
        let (practice, id) = (practice.clone(), id.clone());
        self.read(move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM webhooks WHERE id = ?1 AND practice_id = ?2")
                .and_then(|mut s| s.query_row([id.as_str(), practice.as_str()], |r| r.get(0)).optional())
                .map_err(db_err)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn list_webhooks(&self, practice: &PracticeId) -> PortResult<Vec<Webhook>> {
        let practice = practice.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body FROM webhooks WHERE practice_id = ?1 ORDER BY created_us, id")
                .map_err(db_err)?;
            let rows = stmt.query_map([practice.as_str()], |r| r.get::<_, String>(0)).map_err(db_err)?;
            rows.map(|r| from_json(&r.map_err(db_err)?)).collect()
        })
        .await
    }

    async fn delete_webhook(&self, practice: &PracticeId, id: &WebhookId) -> PortResult<bool> {
        let (practice, id) = (practice.clone(), id.clone());
        self.write(move |conn| {
            let n = conn
                .execute("DELETE FROM webhooks WHERE id = ?1 AND practice_id = ?2", [id.as_str(), practice.as_str()])
                .map_err(db_err)?;
            if n > 0 {
                conn.execute("DELETE FROM webhook_failures WHERE webhook_id = ?1", [id.as_str()]).map_err(db_err)?;
                conn.execute("DELETE FROM webhook_queue WHERE webhook_id = ?1", [id.as_str()]).map_err(db_err)?;
                conn.execute("DELETE FROM webhook_tests WHERE webhook_id = ?1", [id.as_str()]).map_err(db_err)?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn record_attempt(&self, practice: &PracticeId, id: &WebhookId, attempt: &Attempt) -> PortResult<()> {
        let (practice, id, attempt) = (practice.clone(), id.clone(), attempt.clone());
        self.write(move |conn| {
            let health: Option<Option<String>> = conn
                .query_row(
                    "SELECT health FROM webhooks WHERE id = ?1 AND practice_id = ?2",
                    [id.as_str(), practice.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            let Some(health) = health else { return Ok(()) };
            let mut health: WebhookHealth = health.map(|h| from_json(&h)).transpose()?.unwrap_or_default();
            if attempt.ok {
                health.last_success_at = Some(attempt.at);
            }
            health.last_attempt = Some(attempt);
            conn.execute("UPDATE webhooks SET health = ?1 WHERE id = ?2", params![to_json(&health)?, id.as_str()])
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn take_webhook_test(&self, _: &PracticeId, id: &WebhookId, minute: i64, limit: u32) -> PortResult<bool> {
        let id = id.clone();
        self.write(move |conn| {
            // One statement: the first test of a minute starts its count, later ones count up
            // only while under the limit.
            let changed = conn
                .execute(
                    "INSERT INTO webhook_tests (webhook_id, minute, count) SELECT ?1, ?2, 1 WHERE ?3 > 0
                     ON CONFLICT (webhook_id) DO UPDATE SET count = CASE WHEN minute = ?2 THEN count + 1 ELSE 1 END, minute = ?2
                     WHERE minute <> ?2 OR count < ?3",
                    params![id.as_str(), minute, limit],
                )
                .map_err(db_err)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn webhook_health(&self, practice: &PracticeId, id: &WebhookId) -> PortResult<WebhookHealth> {
        let (practice, id) = (practice.clone(), id.clone());
        self.read(move |conn| {
            let health: Option<Option<String>> = conn
                .prepare_cached("SELECT health FROM webhooks WHERE id = ?1 AND practice_id = ?2")
                .and_then(|mut s| s.query_row([id.as_str(), practice.as_str()], |r| r.get(0)).optional())
                .map_err(db_err)?;
            Ok(health.flatten().map(|h| from_json(&h)).transpose()?.unwrap_or_default())
        })
        .await
    }

    async fn record_failed_delivery(&self, _: &PracticeId, id: &WebhookId, failed: &FailedDelivery) -> PortResult<()> {
        let (id, failed) = (id.clone(), failed.clone());
        self.write(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO webhook_failures (webhook_id, event_id, failed_us, body) VALUES (?1, ?2, ?3, ?4)",
                params![id.as_str(), failed.event_id, us(failed.failed_at), to_json(&failed)?],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn list_failed_deliveries(
        &self,
        practice: &PracticeId,
        id: &WebhookId,
        limit: usize,
    ) -> PortResult<Vec<FailedDelivery>> {
        if self.get_webhook(practice, id).await?.is_none() {
            return Ok(vec![]);
        }
        let id = id.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body FROM webhook_failures WHERE webhook_id = ?1 ORDER BY failed_us DESC, event_id LIMIT ?2",
                )
                .map_err(db_err)?;
            let rows = stmt.query_map(params![id.as_str(), limit as i64], |r| r.get::<_, String>(0)).map_err(db_err)?;
            rows.map(|r| from_json(&r.map_err(db_err)?)).collect()
        })
        .await
    }
}

impl SqliteStore {
    /// Events not yet fanned out, oldest first, with the position to resume after them;
    /// `None` when there are none.
    pub async fn events_to_fan_out(&self, limit: usize) -> PortResult<Option<(Vec<Event>, i64)>> {
        self.read(move |conn| {
            let cursor: i64 = conn
                .query_row("SELECT seq FROM webhook_cursor WHERE id = 1", [], |r| r.get(0))
                .optional()
                .map_err(db_err)?
                .unwrap_or(0);
            let mut stmt =
                conn.prepare_cached("SELECT seq, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2").map_err(db_err)?;
            let rows = stmt
                .query_map(params![cursor, limit as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(db_err)?;
            let mut events = Vec::new();
            let mut last = cursor;
            for row in rows {
                let (seq, body) = row.map_err(db_err)?;
                match from_json::<Event>(&body) {
                    Ok(event) => events.push(event),
                    // One unreadable row (written by a newer version?) must not stop every
                    // practice's webhooks: it is skipped, and said so.
                    Err(e) => tracing::error!(seq, error = %e, "an event row could not be read; not sent as a webhook"),
                }
                last = seq;
            }
            Ok((last > cursor).then_some((events, last)))
        })
        .await
    }

    /// Queues deliveries and moves the cursor past the events they came from, in one
    /// transaction: an event is fanned out once, or again after a crash, never lost.
    pub async fn enqueue_deliveries(&self, deliveries: Vec<Delivery>, cursor: i64, now: DateTime<Utc>) -> PortResult<()> {
        self.write(move |conn| {
            {
                let mut insert = conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO webhook_queue (webhook_id, share_id, event_id, attempts, next_us, body)
                         VALUES (?1, ?2, ?3, 0, ?4, ?5)",
                    )
                    .map_err(db_err)?;
                for d in &deliveries {
                    insert
                        .execute(params![d.webhook_id.as_str(), d.share_id, d.event_id, us(now), to_json(d)?])
                        .map_err(db_err)?;
                }
            }
            conn.execute(
                "INSERT INTO webhook_cursor (id, seq) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                [cursor],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    /// Deliveries due now that are first in line for their endpoint and share: a share's next
    /// event waits until the one before it is delivered or given up, so order holds per share.
    pub async fn due_deliveries(&self, now: DateTime<Utc>, limit: usize) -> PortResult<Vec<Queued>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT q.seq, q.attempts, q.body FROM webhook_queue q
                     WHERE q.next_us <= ?1 AND q.seq = (
                         SELECT MIN(h.seq) FROM webhook_queue h WHERE h.webhook_id = q.webhook_id AND h.share_id = q.share_id)
                     ORDER BY q.next_us, q.seq LIMIT ?2",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![us(now), limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(db_err)?;
            rows.map(|row| {
                let (seq, attempts, body) = row.map_err(db_err)?;
                Ok(Queued { seq, attempts, delivery: from_json(&body)? })
            })
            .collect()
        })
        .await
    }

    /// A delivery is done (delivered, failed for good, or its endpoint gone).
    pub async fn finish_delivery(&self, seq: i64) -> PortResult<()> {
        self.write(move |conn| {
            conn.execute("DELETE FROM webhook_queue WHERE seq = ?1", [seq]).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    pub async fn reschedule_delivery(&self, seq: i64, attempts: u32, at: DateTime<Utc>) -> PortResult<()> {
        self.write(move |conn| {
            conn.execute("UPDATE webhook_queue SET attempts = ?1, next_us = ?2 WHERE seq = ?3", params![attempts, us(at), seq])
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    /// How many deliveries are waiting (for tests and the CLI).
    pub async fn queued_deliveries(&self) -> PortResult<usize> {
        self.read(|conn| {
            let n: i64 = conn.query_row("SELECT COUNT(*) FROM webhook_queue", [], |r| r.get(0)).map_err(db_err)?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
        .await
    }
}
