//! The store on SQLite (one file in the data dir). Records are kept as JSON next to the columns
//! that queries need; every share write is conditional on its version, inside a transaction
//! with its events, so a write is all or nothing and concurrent writers cannot both win.

use crate::domain::{ApiKey, Event, Practice, PracticeId, Share, ShareId};
use crate::ports::{Claim, IdempotencyStore, ListCursor, PortError, PortResult, PracticeStore, ShareStore, SmsCounter};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// `Idempotency-Key` records are kept this long (as Stripe does).
const IDEMPOTENCY_HOURS: i64 = 24;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS practices (
    id TEXT PRIMARY KEY, created_us INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, practice_id TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY, practice_id TEXT NOT NULL, created_us INTEGER NOT NULL,
    sweep_due_us INTEGER NOT NULL, purge_us INTEGER NOT NULL, expiry_processed INTEGER NOT NULL,
    version INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS shares_by_practice ON shares (practice_id, created_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS shares_by_expiry ON shares (expiry_processed, sweep_due_us);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, share_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_share ON events (share_id, seq);
CREATE TABLE IF NOT EXISTS idempotency (
    practice_id TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, status INTEGER,
    response TEXT, created_us INTEGER NOT NULL, PRIMARY KEY (practice_id, key));
CREATE TABLE IF NOT EXISTS sms_counters (
    practice_id TEXT NOT NULL, day TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (practice_id, day));
CREATE TABLE IF NOT EXISTS provider_messages (
    message_id TEXT PRIMARY KEY, share_id TEXT NOT NULL, until_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY, practice_id TEXT NOT NULL, created_us INTEGER NOT NULL, body TEXT NOT NULL, health TEXT);
CREATE INDEX IF NOT EXISTS webhooks_by_practice ON webhooks (practice_id, created_us, id);
CREATE TABLE IF NOT EXISTS webhook_failures (
    webhook_id TEXT NOT NULL, event_id TEXT NOT NULL, failed_us INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (webhook_id, event_id));
CREATE TABLE IF NOT EXISTS webhook_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, webhook_id TEXT NOT NULL, share_id TEXT NOT NULL,
    event_id TEXT NOT NULL, attempts INTEGER NOT NULL, next_us INTEGER NOT NULL, body TEXT NOT NULL,
    UNIQUE (webhook_id, event_id));
CREATE INDEX IF NOT EXISTS webhook_queue_groups ON webhook_queue (webhook_id, share_id, seq);
CREATE TABLE IF NOT EXISTS webhook_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_tests (
    webhook_id TEXT PRIMARY KEY, minute INTEGER NOT NULL, count INTEGER NOT NULL);
";

/// Brings a database from an earlier release to the schema above (which then adds what is new).
fn migrate(conn: &Connection) -> PortResult<()> {
    // `expires_us` held when the sweep is due (`Share::sweep_due_at`), which is not always when
    // the link expires.
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('shares')")
        .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
        .map_err(db_err)?;
    if columns.iter().any(|c| c == "expires_us") {
        conn.execute_batch("ALTER TABLE shares RENAME COLUMN expires_us TO sweep_due_us").map_err(db_err)?;
    }
    Ok(())
}

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

pub(super) fn db_err(e: impl std::fmt::Display) -> PortError {
    PortError::Other(format!("sqlite: {e}"))
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> PortResult<String> {
    serde_json::to_string(v).map_err(db_err)
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> PortResult<T> {
    serde_json::from_str(s).map_err(db_err)
}

pub(super) fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

impl SqliteStore {
    pub fn open(path: &Path) -> PortResult<Self> {
        // SQLite would create the database with the umask's mode (0644 mostly), and makes its
        // -wal and -shm files with the database's: created 0600 here, all three are private.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path).map_err(db_err)?;
        }
        let conn = Connection::open(path).map_err(db_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_err)?;
        migrate(&conn)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `f` on the connection on a blocking thread: SQLite calls block, the runtime must not.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> PortResult<T> + Send + 'static,
    ) -> PortResult<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(db_err)?
    }
}

fn insert_events(tx: &rusqlite::Transaction<'_>, events: &[Event]) -> PortResult<()> {
    let mut stmt = tx.prepare_cached("INSERT INTO events (share_id, body) VALUES (?1, ?2)").map_err(db_err)?;
    for e in events {
        stmt.execute(params![e.share_id.as_str(), to_json(e)?]).map_err(db_err)?;
    }
    Ok(())
}

/// `sweep_due_us` is when the sweep is due ([`Share::sweep_due_at`]): the link's expiry, or
/// sooner for a share revoked while its uploads could still land.
fn share_columns(share: &Share) -> PortResult<(i64, i64, bool, i64, String)> {
    Ok((us(share.sweep_due_at()), us(share.purge_at), share.expiry_processed, share.version as i64, to_json(share)?))
}

fn read_shares(stmt: &mut rusqlite::Statement<'_>, params: impl rusqlite::Params) -> PortResult<Vec<Share>> {
    let rows = stmt.query_map(params, |r| r.get::<_, String>(0)).map_err(db_err)?;
    rows.map(|r| from_json(&r.map_err(db_err)?)).collect()
}

#[async_trait]
impl ShareStore for SqliteStore {
    async fn insert_share(&self, share: &Share, events: &[Event]) -> PortResult<()> {
        let (share, events) = (share.clone(), events.to_vec());
        self.run(move |conn| {
            let (expires, purge, processed, version, body) = share_columns(&share)?;
            let tx = conn.transaction().map_err(db_err)?;
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO shares (id, practice_id, created_us, sweep_due_us, purge_us, expiry_processed, version, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![share.id.as_str(), share.practice_id.as_str(), us(share.created_at), expires, purge, processed, version, body],
                )
                .map_err(db_err)?;
            if inserted == 0 {
                return Err(PortError::Conflict);
            }
            insert_events(&tx, &events)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn get_share(&self, id: &ShareId) -> PortResult<Option<Share>> {
        let id = id.clone();
        self.run(move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM shares WHERE id = ?1")
                .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)).optional())
                .map_err(db_err)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn update_share(&self, share: &Share, events: &[Event]) -> PortResult<()> {
        let (share, events) = (share.clone(), events.to_vec());
        self.run(move |conn| {
            let (expires, purge, processed, version, body) = share_columns(&share)?;
            let tx = conn.transaction().map_err(db_err)?;
            let updated = tx
                .execute(
                    "UPDATE shares SET sweep_due_us = ?2, purge_us = ?3, expiry_processed = ?4, version = ?5, body = ?6
                     WHERE id = ?1 AND version = ?7",
                    params![share.id.as_str(), expires, purge, processed, version, body, version - 1],
                )
                .map_err(db_err)?;
            if updated == 0 {
                return Err(PortError::Conflict);
            }
            insert_events(&tx, &events)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn append_events(&self, events: &[Event]) -> PortResult<()> {
        let events = events.to_vec();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            insert_events(&tx, &events)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn list_events(&self, id: &ShareId) -> PortResult<Vec<Event>> {
        let id = id.clone();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT body FROM events WHERE share_id = ?1 ORDER BY seq").map_err(db_err)?;
            let rows = stmt.query_map([id.as_str()], |r| r.get::<_, String>(0)).map_err(db_err)?;
            rows.map(|r| from_json(&r.map_err(db_err)?)).collect()
        })
        .await
    }

    async fn list_shares(&self, practice: &PracticeId, after: Option<&ListCursor>, limit: usize) -> PortResult<Vec<Share>> {
        let (practice, after) = (practice.clone(), after.cloned());
        self.run(move |conn| match after {
            None => {
                let mut stmt = conn
                    .prepare_cached("SELECT body FROM shares WHERE practice_id = ?1 ORDER BY created_us DESC, id DESC LIMIT ?2")
                    .map_err(db_err)?;
                read_shares(&mut stmt, params![practice.as_str(), limit as i64])
            }
            Some(c) => {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT body FROM shares WHERE practice_id = ?1
                           AND (created_us < ?2 OR (created_us = ?2 AND id < ?3))
                         ORDER BY created_us DESC, id DESC LIMIT ?4",
                    )
                    .map_err(db_err)?;
                read_shares(&mut stmt, params![practice.as_str(), us(c.created_at), c.id.as_str(), limit as i64])
            }
        })
        .await
    }

    async fn shares_due_for_expiry(&self, now: DateTime<Utc>, limit: usize) -> PortResult<Vec<Share>> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body FROM shares WHERE expiry_processed = 0 AND sweep_due_us <= ?1 ORDER BY sweep_due_us LIMIT ?2",
                )
                .map_err(db_err)?;
            read_shares(&mut stmt, params![us(now), limit as i64])
        })
        .await
    }

    async fn purge_expired_records(&self, now: DateTime<Utc>) -> PortResult<usize> {
        self.run(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            tx.execute("DELETE FROM events WHERE share_id IN (SELECT id FROM shares WHERE purge_us <= ?1)", [us(now)])
                .map_err(db_err)?;
            let purged = tx.execute("DELETE FROM shares WHERE purge_us <= ?1", [us(now)]).map_err(db_err)?;
            tx.execute("DELETE FROM provider_messages WHERE until_us <= ?1", [us(now)]).map_err(db_err)?;
            tx.execute(
                "DELETE FROM webhook_failures WHERE failed_us <= ?1",
                [us(now - Duration::days(super::sqlite_webhooks::FAILURES_KEPT_DAYS))],
            )
            .map_err(db_err)?;
            tx.execute("DELETE FROM idempotency WHERE created_us <= ?1", [us(now - Duration::hours(IDEMPOTENCY_HOURS))])
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(purged)
        })
        .await
    }

    async fn record_provider_message(&self, message_id: &str, share: &ShareId, until: DateTime<Utc>) -> PortResult<()> {
        let (message_id, share) = (message_id.to_owned(), share.clone());
        self.run(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO provider_messages (message_id, share_id, until_us) VALUES (?1, ?2, ?3)",
                params![message_id, share.as_str(), us(until)],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn find_provider_message(&self, message_id: &str) -> PortResult<Option<ShareId>> {
        let message_id = message_id.to_owned();
        self.run(move |conn| {
            let id: Option<String> = conn
                .prepare_cached("SELECT share_id FROM provider_messages WHERE message_id = ?1")
                .and_then(|mut s| s.query_row([message_id], |r| r.get(0)).optional())
                .map_err(db_err)?;
            Ok(id.and_then(|id| ShareId::parse(&id)))
        })
        .await
    }
}

#[async_trait]
impl PracticeStore for SqliteStore {
    async fn put_practice(&self, practice: &Practice) -> PortResult<()> {
        let practice = practice.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO practices (id, created_us, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                params![practice.id.as_str(), us(practice.created_at), to_json(&practice)?],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get_practice(&self, id: &PracticeId) -> PortResult<Option<Practice>> {
        let id = id.clone();
        self.run(move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM practices WHERE id = ?1")
                .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)).optional())
                .map_err(db_err)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn list_practices(&self) -> PortResult<Vec<Practice>> {
        self.run(|conn| {
            let mut stmt = conn.prepare_cached("SELECT body FROM practices ORDER BY created_us, id").map_err(db_err)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(db_err)?;
            rows.map(|r| from_json(&r.map_err(db_err)?)).collect()
        })
        .await
    }

    async fn put_api_key(&self, key: &ApiKey) -> PortResult<()> {
        let key = key.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO api_keys (id, practice_id, hash, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                params![key.id, key.practice_id.as_str(), key.hash, to_json(&key)?],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn find_api_key(&self, hash: &str) -> PortResult<Option<ApiKey>> {
        let hash = hash.to_owned();
        self.run(move |conn| {
            let body: Option<String> = conn
                .prepare_cached("SELECT body FROM api_keys WHERE hash = ?1")
                .and_then(|mut s| s.query_row([hash], |r| r.get(0)).optional())
                .map_err(db_err)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn list_api_keys(&self, practice: &PracticeId) -> PortResult<Vec<ApiKey>> {
        let practice = practice.clone();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT body FROM api_keys WHERE practice_id = ?1 ORDER BY id").map_err(db_err)?;
            let rows = stmt.query_map([practice.as_str()], |r| r.get::<_, String>(0)).map_err(db_err)?;
            let mut keys: Vec<ApiKey> = rows.map(|r| from_json(&r.map_err(db_err)?)).collect::<PortResult<_>>()?;
            keys.sort_by_key(|k| k.created_at);
            Ok(keys)
        })
        .await
    }

    async fn revoke_api_key(&self, key_id: &str, now: DateTime<Utc>) -> PortResult<bool> {
        let key_id = key_id.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let body: Option<String> =
                tx.query_row("SELECT body FROM api_keys WHERE id = ?1", [&key_id], |r| r.get(0)).optional().map_err(db_err)?;
            let Some(body) = body else { return Ok(false) };
            let mut key: ApiKey = from_json(&body)?;
            key.revoked_at.get_or_insert(now);
            tx.execute("UPDATE api_keys SET body = ?2 WHERE id = ?1", params![key_id, to_json(&key)?]).map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency(
        &self,
        practice: &PracticeId,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> PortResult<Claim> {
        let (practice, key, fingerprint) = (practice.clone(), key.to_owned(), fingerprint.to_owned());
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err)?;
            let existing: Option<(String, Option<i64>, Option<String>, i64)> = tx
                .query_row(
                    "SELECT fingerprint, status, response, created_us FROM idempotency WHERE practice_id = ?1 AND key = ?2",
                    params![practice.as_str(), key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(db_err)?;
            let claim = match existing {
                Some((fp, Some(status), Some(body), _)) => Claim::Completed { fingerprint: fp, status: status as u16, body },
                Some((fp, _, _, created)) if created > us(stale_before) => Claim::InProgress { fingerprint: fp },
                _ => {
                    tx.execute(
                        "INSERT OR REPLACE INTO idempotency (practice_id, key, fingerprint, status, response, created_us)
                         VALUES (?1, ?2, ?3, NULL, NULL, ?4)",
                        params![practice.as_str(), key, fingerprint, us(now)],
                    )
                    .map_err(db_err)?;
                    Claim::Claimed
                }
            };
            tx.commit().map_err(db_err)?;
            Ok(claim)
        })
        .await
    }

    async fn complete_idempotency(&self, practice: &PracticeId, key: &str, status: u16, body: &str) -> PortResult<()> {
        let (practice, key, body) = (practice.clone(), key.to_owned(), body.to_owned());
        self.run(move |conn| {
            conn.execute(
                "UPDATE idempotency SET status = ?3, response = ?4 WHERE practice_id = ?1 AND key = ?2",
                params![practice.as_str(), key, status, body],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn release_idempotency(&self, practice: &PracticeId, key: &str) -> PortResult<()> {
        let (practice, key) = (practice.clone(), key.to_owned());
        self.run(move |conn| {
            conn.execute(
                "DELETE FROM idempotency WHERE practice_id = ?1 AND key = ?2 AND status IS NULL",
                params![practice.as_str(), key],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl SmsCounter for SqliteStore {
    async fn take_sms(&self, practice: &PracticeId, day: &str, cap: u32) -> PortResult<bool> {
        let (practice, day) = (practice.clone(), day.to_owned());
        self.run(move |conn| {
            // One statement: insert the first, or count up only while under the cap.
            let changed = conn
                .execute(
                    "INSERT INTO sms_counters (practice_id, day, count) SELECT ?1, ?2, 1 WHERE ?3 > 0
                     ON CONFLICT (practice_id, day) DO UPDATE SET count = count + 1 WHERE count < ?3",
                    params![practice.as_str(), day, cap],
                )
                .map_err(db_err)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn give_back_sms(&self, practice: &PracticeId, day: &str) -> PortResult<()> {
        let (practice, day) = (practice.clone(), day.to_owned());
        self.run(move |conn| {
            conn.execute(
                "UPDATE sms_counters SET count = count - 1 WHERE practice_id = ?1 AND day = ?2 AND count > 0",
                params![practice.as_str(), day],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, PracticeId};

    #[tokio::test]
    async fn a_database_of_an_earlier_release_opens_and_its_shares_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let share = crate::service::tests_support::share_fixture();
        {
            // The shares table as it was, with a share in it.
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE shares (id TEXT PRIMARY KEY, practice_id TEXT NOT NULL, created_us INTEGER NOT NULL,
                    expires_us INTEGER NOT NULL, purge_us INTEGER NOT NULL, expiry_processed INTEGER NOT NULL,
                    version INTEGER NOT NULL, body TEXT NOT NULL);
                 CREATE INDEX shares_by_expiry ON shares (expiry_processed, expires_us);",
            )
            .unwrap();
            let (due, purge, processed, version, body) = share_columns(&share).unwrap();
            old.execute(
                "INSERT INTO shares VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    share.id.as_str(),
                    share.practice_id.as_str(),
                    us(share.created_at),
                    due,
                    purge,
                    processed,
                    version,
                    body
                ],
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let due = s.shares_due_for_expiry(share.sweep_due_at(), 10).await.unwrap();
        assert_eq!(due.iter().map(|d| &d.id).collect::<Vec<_>>(), [&share.id]);
        drop(s);
        SqliteStore::open(&path).expect("opens again, already migrated");
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn the_sms_cap_is_never_exceeded() {
        let (_d, s) = store();
        let p = PracticeId::generate();
        let mut sent = 0;
        for _ in 0..5 {
            if s.take_sms(&p, "2026-01-01", 3).await.unwrap() {
                sent += 1;
            }
        }
        assert_eq!(sent, 3);
        assert!(s.take_sms(&p, "2026-01-02", 3).await.unwrap(), "a new day, a new count");
        assert!(!s.take_sms(&p, "2026-01-03", 0).await.unwrap(), "a cap of 0 sends nothing");
        s.give_back_sms(&p, "2026-01-01").await.unwrap();
        assert!(s.take_sms(&p, "2026-01-01", 3).await.unwrap(), "a unit given back is there again");
        assert!(!s.take_sms(&p, "2026-01-01", 3).await.unwrap());
        s.give_back_sms(&p, "2026-01-04").await.unwrap();
        assert!(!s.take_sms(&p, "2026-01-04", 0).await.unwrap(), "never below zero");
    }

    #[tokio::test]
    async fn idempotency_claims_complete_release_and_go_stale() {
        let (_d, s) = store();
        let p = PracticeId::generate();
        let now = Utc::now();
        let stale = now - Duration::seconds(120);
        assert_eq!(s.claim_idempotency(&p, "k", "f1", now, stale).await.unwrap(), Claim::Claimed);
        assert_eq!(s.claim_idempotency(&p, "k", "f1", now, stale).await.unwrap(), Claim::InProgress { fingerprint: "f1".into() });
        s.release_idempotency(&p, "k").await.unwrap();
        assert_eq!(s.claim_idempotency(&p, "k", "f1", now, stale).await.unwrap(), Claim::Claimed);
        s.complete_idempotency(&p, "k", 201, "{}").await.unwrap();
        assert_eq!(
            s.claim_idempotency(&p, "k", "f2", now, stale).await.unwrap(),
            Claim::Completed { fingerprint: "f1".into(), status: 201, body: "{}".into() }
        );
        // A claim never completed (a crash) is taken over once stale.
        assert_eq!(s.claim_idempotency(&p, "k2", "f", now, stale).await.unwrap(), Claim::Claimed);
        let later = now + Duration::seconds(300);
        assert_eq!(s.claim_idempotency(&p, "k2", "f", later, later - Duration::seconds(120)).await.unwrap(), Claim::Claimed);
        // Keys are per practice.
        assert_eq!(s.claim_idempotency(&PracticeId::generate(), "k", "f1", now, stale).await.unwrap(), Claim::Claimed);
    }

    #[tokio::test]
    async fn conditional_updates_refuse_a_stale_version_and_keep_events_atomic() {
        let (_d, s) = store();
        let share = crate::service::tests_support::share_fixture();
        s.insert_share(&share, &[Event::new(&share.id, EventKind::Created, Utc::now())]).await.unwrap();
        assert!(matches!(s.insert_share(&share, &[]).await, Err(PortError::Conflict)));

        let mut next = share.clone();
        next.version += 1;
        s.update_share(&next, &[Event::new(&share.id, EventKind::Opened, Utc::now())]).await.unwrap();
        // A second writer that read version 1 too must lose, and its event must not appear.
        let mut stale = share.clone();
        stale.version += 1;
        let lost = s.update_share(&stale, &[Event::new(&share.id, EventKind::Verified, Utc::now())]).await;
        assert!(matches!(lost, Err(PortError::Conflict)));
        let kinds: Vec<EventKind> = s.list_events(&share.id).await.unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Created, EventKind::Opened]);
        assert_eq!(s.get_share(&share.id).await.unwrap().unwrap().version, 2);
    }

    #[tokio::test]
    async fn expiry_and_purge_follow_the_stored_times() {
        let (_d, s) = store();
        let share = crate::service::tests_support::share_fixture();
        s.insert_share(&share, &[]).await.unwrap();
        assert!(s.shares_due_for_expiry(share.expires_at - Duration::seconds(1), 10).await.unwrap().is_empty());
        assert_eq!(s.shares_due_for_expiry(share.expires_at, 10).await.unwrap().len(), 1);
        assert_eq!(s.purge_expired_records(share.purge_at - Duration::seconds(1)).await.unwrap(), 0);
        assert_eq!(s.purge_expired_records(share.purge_at).await.unwrap(), 1);
        assert!(s.get_share(&share.id).await.unwrap().is_none());
    }
}
