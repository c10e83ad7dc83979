//! The store on SQLite (one file in the data dir). Records are kept as JSON next to the columns
//! that queries need; every share write is conditional on its version, inside a transaction
//! with its events, so a write is all or nothing and concurrent writers cannot both win.

use crate::domain::{Event, PracticeId, Share, ShareId};
use crate::ports::{ListCursor, PortError, PortResult, ShareStore};
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
CREATE TABLE IF NOT EXISTS send_queue (
    share_id TEXT PRIMARY KEY, queued_us INTEGER NOT NULL);
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
/// sooner for a share to queue again or revoked while its uploads could still land.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventKind;

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
