//! The store on SQLite (one file in the data dir). Records are kept as JSON next to the columns
//! that queries need; every share write is conditional on its version, atomic with its events
//! (a savepoint of its own in the transaction it is committed with), so a write is all or
//! nothing and concurrent writers cannot both win.

use crate::domain::{Event, PracticeId, Share, ShareId};
use crate::ports::{ListCursor, PortError, PortResult, ShareStore};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

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

/// At most this many jobs go into one transaction: enough to take every request in flight at
/// once, few enough that a batch never holds the first one's answer long.
const MAX_BATCH: usize = 64;

/// How often at most the WAL is checkpointed, and so about how long a commit may stay only in
/// the operating system's cache (ARCHITECTURE.md, "What a power cut takes").
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// What to tell a job's caller once the transaction that holds it has ended.
type Deliver = Box<dyn FnOnce(PortResult<()>) + Send>;

/// Runs a job; whether its changes are to be kept, and its answer.
type RunJob = Box<dyn FnOnce(&Connection) -> (bool, Deliver) + Send>;

struct Job {
    /// A write runs in a savepoint of its own; a read needs none.
    writes: bool,
    run: RunJob,
}

/// The database, owned by one thread with one connection. Whatever reads and writes arrived
/// while it was busy run as one transaction (group commit), each write inside its own
/// savepoint so it succeeds or fails alone, and each caller hears its answer once the commit
/// is done. One connection because its page cache stays valid: a second one would find its
/// cache stale after every commit and read the pages again (BENCHMARKS.md, 2). A second thread
/// checkpoints the WAL. Dropping the last clone waits for both threads to end and closes the
/// connections, the last close checkpointing everything (what a CLI command wrote is on disk
/// when it exits).
#[derive(Clone)]
pub struct SqliteStore {
    threads: Arc<Threads>,
}

struct Threads {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Threads {
    fn drop(&mut self) {
        drop(self.jobs.take()); // the thread finishes what was sent, then ends
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
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

fn connect(path: &Path) -> PortResult<Connection> {
    let conn = Connection::open(path).map_err(db_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db_err)?;
    Ok(conn)
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
        let conn = connect(path)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_err)?;
        // A commit reaches the WAL file without an fsync; the checkpointer syncs it.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_err)?;
        // Checkpoints (and their fsyncs) are the checkpointer's, off the commits' path; this
        // connection takes one when the WAL grew past this many pages all the same, and so
        // starts it again from its beginning.
        conn.pragma_update(None, "wal_autocheckpoint", 16_384).map_err(db_err)?;
        conn.pragma_update(None, "journal_size_limit", 64i64 << 20).map_err(db_err)?;
        migrate(&conn)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        let (checkpoint, wake) = mpsc::sync_channel::<()>(1);
        let checkpointer = connect(path)?;
        let checkpointer = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &wake))
            .map_err(db_err)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("sqlite".into())
            .spawn(move || {
                run_jobs(&conn, &queue, &checkpoint);
                drop(checkpoint);
                let _ = checkpointer.join(); // so that this connection closes last
            })
            .map_err(db_err)?;
        Ok(Self { threads: Arc::new(Threads { jobs: Some(jobs), thread: Some(thread) }) })
    }

    /// Runs `f` atomically: its changes are kept if it returns `Ok` and the commit succeeds,
    /// and none are if either fails. `f` must not begin or end transactions.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> PortResult<T> + Send + 'static,
    ) -> PortResult<T> {
        self.submit(true, f).await
    }

    /// Runs `f`, which only reads; it sees every write answered before it was sent.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> PortResult<T> + Send + 'static,
    ) -> PortResult<T> {
        self.submit(false, f).await
    }

    async fn submit<T: Send + 'static>(
        &self,
        writes: bool,
        f: impl FnOnce(&Connection) -> PortResult<T> + Send + 'static,
    ) -> PortResult<T> {
        let (answer, answered) = oneshot::channel();
        let run = Box::new(move |conn: &Connection| {
            let out = f(conn);
            let keep = out.is_ok();
            // Told only after the commit, and the commit's failure whatever the job's outcome:
            // what a job saw (a conflict too) may have been written by one before it in the
            // same transaction.
            let deliver: Deliver = Box::new(move |committed| {
                let _ = answer.send(committed.and(out));
            });
            (keep, deliver)
        });
        let jobs = self.threads.jobs.as_ref().ok_or_else(|| db_err("the store is closed"))?;
        jobs.send(Job { writes, run }).map_err(|_| db_err("the database thread has stopped"))?;
        answered.await.map_err(|_| db_err("a database call failed unexpectedly"))?
    }
}

/// Copies committed pages from the WAL into the database at most every [`CHECKPOINT_EVERY`]
/// while commits come in. It syncs the WAL first, so a commit is on disk within about that
/// time; frequent small checkpoints also hold commits up least (a commit that appends to the
/// WAL while a large checkpoint syncs it can wait for the disk). The WAL starts again from its
/// beginning only when a transaction begins with every page copied, which back-to-back commits
/// seldom allow; then the connection's own automatic checkpoint does it (BENCHMARKS.md, 2).
fn checkpoint_loop(conn: &Connection, wake: &mpsc::Receiver<()>) {
    while wake.recv().is_ok() {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "sqlite: a checkpoint failed; the next one retries");
        }
        std::thread::sleep(CHECKPOINT_EVERY);
    }
}

/// A transaction open on the connection, and whether it may write.
#[derive(PartialEq)]
enum Open {
    None,
    Reads,
    Writes,
}

fn run_jobs(conn: &Connection, queue: &mpsc::Receiver<Job>, checkpoint: &mpsc::SyncSender<()>) {
    while let Ok(first) = queue.recv() {
        let mut pending: Vec<Deliver> = Vec::new();
        let mut open = Open::None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            // Reads alone take no write lock, so the CLI's writes and reads in another process
            // never wait for them; a write after them ends their transaction and begins one
            // that may write.
            if open == Open::Reads && job.writes {
                commit(conn, &mut pending, None);
                open = Open::None;
            }
            if open == Open::None {
                let begin = if job.writes { "BEGIN IMMEDIATE" } else { "BEGIN" };
                if let Err(e) = statement(conn, begin) {
                    // Another process holds the database past the busy timeout: what is queued
                    // now fails at once rather than each job waiting as long again.
                    tracing::error!(error = %e, "sqlite: a transaction could not begin");
                    while queue.try_recv().is_ok() {}
                    continue; // the jobs are dropped: their callers get an error
                }
                open = if job.writes { Open::Writes } else { Open::Reads };
            }
            if let Some(deliver) = run_job(conn, job) {
                pending.push(deliver);
            }
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back (I/O error, disk full), or a failed
                // write could not be undone alone: what the batch wrote so far is gone, and its
                // callers are told.
                for deliver in pending.drain(..) {
                    deliver(Err(db_err("the transaction was rolled back")));
                }
                open = Open::None;
            }
            if pending.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        match open {
            Open::Writes => commit(conn, &mut pending, Some(checkpoint)),
            Open::Reads => commit(conn, &mut pending, None),
            Open::None => {}
        }
    }
}

/// Ends the open transaction and answers its jobs; after writes, wakes the checkpointer.
fn commit(conn: &Connection, pending: &mut Vec<Deliver>, checkpoint: Option<&mpsc::SyncSender<()>>) {
    let committed = statement(conn, "COMMIT").map_err(|e| e.to_string());
    if committed.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for deliver in pending.drain(..) {
        deliver(committed.clone().map_err(db_err));
    }
    if let Some(checkpoint) = checkpoint {
        let _ = checkpoint.try_send(()); // one already asked for is enough
    }
}

/// A statement without parameters or rows, parsed once per connection (`BEGIN`, `SAVEPOINT`…).
fn statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ())
}

/// Runs one job in the open transaction, a write in a savepoint: kept if it succeeded, undone
/// if it failed or panicked. Its answer, or `None` if it panicked (its caller hears of it
/// through the dropped answer).
fn run_job(conn: &Connection, job: Job) -> Option<Deliver> {
    let sql = |text: &str| statement(conn, text);
    if job.writes
        && let Err(e) = sql("SAVEPOINT job")
    {
        tracing::error!(error = %e, "sqlite: a savepoint could not begin");
        return None;
    }
    let changes = conn.total_changes();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| (job.run)(conn)));
    debug_assert!(job.writes || conn.total_changes() == changes, "a read changed the database");
    if job.writes && !conn.is_autocommit() {
        let keep = matches!(outcome, Ok((true, _)));
        let ended = if keep { sql("RELEASE job") } else { sql("ROLLBACK TO job").and_then(|()| sql("RELEASE job")) };
        if let Err(e) = ended {
            // Its changes cannot be told from the others': none are kept.
            tracing::error!(error = %e, "sqlite: a savepoint could not end; the transaction is rolled back");
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    outcome.ok().map(|(_, deliver)| deliver)
}

fn insert_events(conn: &Connection, events: &[Event]) -> PortResult<()> {
    let mut stmt = conn.prepare_cached("INSERT INTO events (share_id, body) VALUES (?1, ?2)").map_err(db_err)?;
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
        self.write(move |conn| {
            let (expires, purge, processed, version, body) = share_columns(&share)?;
            let inserted = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO shares (id, practice_id, created_us, sweep_due_us, purge_us, expiry_processed, version, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .and_then(|mut s| {
                    s.execute(params![share.id.as_str(), share.practice_id.as_str(), us(share.created_at), expires, purge, processed, version, body])
                })
                .map_err(db_err)?;
            if inserted == 0 {
                return Err(PortError::Conflict);
            }
            insert_events(conn, &events)?;
            Ok(())
        })
        .await
    }

    async fn get_share(&self, id: &ShareId) -> PortResult<Option<Share>> {
        let id = id.clone();
        self.read(move |conn| {
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
        self.write(move |conn| {
            let (expires, purge, processed, version, body) = share_columns(&share)?;
            let updated = conn
                .prepare_cached(
                    "UPDATE shares SET sweep_due_us = ?2, purge_us = ?3, expiry_processed = ?4, version = ?5, body = ?6
                     WHERE id = ?1 AND version = ?7",
                )
                .and_then(|mut s| s.execute(params![share.id.as_str(), expires, purge, processed, version, body, version - 1]))
                .map_err(db_err)?;
            if updated == 0 {
                return Err(PortError::Conflict);
            }
            insert_events(conn, &events)?;
            Ok(())
        })
        .await
    }

    async fn append_events(&self, events: &[Event]) -> PortResult<()> {
        let events = events.to_vec();
        self.write(move |conn| {
            insert_events(conn, &events)?;
            Ok(())
        })
        .await
    }

    async fn list_events(&self, id: &ShareId) -> PortResult<Vec<Event>> {
        let id = id.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT body FROM events WHERE share_id = ?1 ORDER BY seq").map_err(db_err)?;
            let rows = stmt.query_map([id.as_str()], |r| r.get::<_, String>(0)).map_err(db_err)?;
            rows.map(|r| from_json(&r.map_err(db_err)?)).collect()
        })
        .await
    }

    async fn list_shares(&self, practice: &PracticeId, after: Option<&ListCursor>, limit: usize) -> PortResult<Vec<Share>> {
        let (practice, after) = (practice.clone(), after.cloned());
        self.read(move |conn| match after {
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
        self.read(move |conn| {
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
        self.write(move |conn| {
            conn.execute("DELETE FROM events WHERE share_id IN (SELECT id FROM shares WHERE purge_us <= ?1)", [us(now)])
                .map_err(db_err)?;
            let purged = conn.execute("DELETE FROM shares WHERE purge_us <= ?1", [us(now)]).map_err(db_err)?;
            conn.execute("DELETE FROM provider_messages WHERE until_us <= ?1", [us(now)]).map_err(db_err)?;
            conn.execute(
                "DELETE FROM webhook_failures WHERE failed_us <= ?1",
                [us(now - Duration::days(super::sqlite_webhooks::FAILURES_KEPT_DAYS))],
            )
            .map_err(db_err)?;
            conn.execute("DELETE FROM idempotency WHERE created_us <= ?1", [us(now - Duration::hours(IDEMPOTENCY_HOURS))])
                .map_err(db_err)?;
            Ok(purged)
        })
        .await
    }

    async fn record_provider_message(&self, message_id: &str, share: &ShareId, until: DateTime<Utc>) -> PortResult<()> {
        let (message_id, share) = (message_id.to_owned(), share.clone());
        self.write(move |conn| {
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
        self.read(move |conn| {
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

    /// Holds the database thread for a moment, so the jobs sent meanwhile run as one batch.
    fn hold_the_thread(s: &SqliteStore) -> tokio::task::JoinHandle<PortResult<()>> {
        let s = s.clone();
        tokio::spawn(async move {
            s.write(|_| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                Ok(())
            })
            .await
        })
    }

    async fn messages(s: &SqliteStore) -> Vec<String> {
        s.read(|conn| {
            let mut stmt = conn.prepare("SELECT message_id FROM provider_messages ORDER BY message_id").unwrap();
            Ok(stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect())
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn writes_committed_together_keep_or_lose_only_their_own_changes() {
        let (_d, s) = store();
        let held = hold_the_thread(&s);
        let writes = (0..40).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.write(move |conn| {
                    conn.execute(
                        "INSERT INTO provider_messages (message_id, share_id, until_us) VALUES (?1, 'x', 0)",
                        [format!("m{i:02}")],
                    )
                    .map_err(db_err)?;
                    match i % 4 {
                        1 => Err(PortError::Other("refused after writing".into())),
                        3 => panic!("a write that panics after writing"),
                        _ => Ok(i),
                    }
                })
                .await
            })
        });
        let outcomes = futures_util::future::join_all(writes).await;
        held.await.unwrap().unwrap();
        for (i, outcome) in outcomes.into_iter().enumerate() {
            assert_eq!(outcome.unwrap().is_ok(), i % 2 == 0, "write {i}");
        }
        let kept: Vec<String> = (0..40).filter(|i| i % 2 == 0).map(|i| format!("m{i:02}")).collect();
        assert_eq!(messages(&s).await, kept);
        // The thread goes on after the panics.
        s.record_provider_message("after", &crate::service::tests_support::share_fixture().id, Utc::now()).await.unwrap();
        assert!(messages(&s).await.contains(&"after".to_owned()));
    }

    #[tokio::test]
    async fn of_conditional_writes_in_one_batch_one_wins_with_its_events() {
        let (_d, s) = store();
        let share = crate::service::tests_support::share_fixture();
        s.insert_share(&share, &[]).await.unwrap();
        let held = hold_the_thread(&s);
        let writes = (0..20).map(|_| {
            let (s, mut next) = (s.clone(), share.clone());
            next.version += 1;
            tokio::spawn(async move { s.update_share(&next, &[Event::new(&next.id, EventKind::Opened, Utc::now())]).await })
        });
        let outcomes = futures_util::future::join_all(writes).await;
        held.await.unwrap().unwrap();
        let won = outcomes.iter().filter(|o| matches!(o, Ok(Ok(())))).count();
        let lost = outcomes.iter().filter(|o| matches!(o, Ok(Err(PortError::Conflict)))).count();
        assert_eq!((won, lost), (1, 19));
        assert_eq!(s.list_events(&share.id).await.unwrap().len(), 1);
        assert_eq!(s.get_share(&share.id).await.unwrap().unwrap().version, share.version + 1);
    }

    #[tokio::test]
    async fn reads_go_on_while_another_process_writes() {
        let (dir, s) = store();
        let share = crate::service::tests_support::share_fixture();
        s.insert_share(&share, &[]).await.unwrap();
        // The CLI (`sealpost key revoke`) in a transaction of its own, on the same file.
        let other = Connection::open(dir.path().join("t.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE; DELETE FROM idempotency;").unwrap();
        assert_eq!(s.get_share(&share.id).await.unwrap().unwrap().id, share.id);
        other.execute_batch("COMMIT").unwrap();
        s.record_provider_message("m", &share.id, Utc::now()).await.unwrap();
    }

    #[tokio::test]
    async fn a_dropped_store_leaves_everything_in_the_database_file() {
        let (dir, s) = store();
        let share = crate::service::tests_support::share_fixture();
        s.insert_share(&share, &[]).await.unwrap();
        let copy = s.clone();
        drop(s);
        assert!(copy.get_share(&share.id).await.unwrap().is_some(), "a clone keeps it open");
        drop(copy);
        // The last connection closed has checkpointed the WAL into the file and removed it:
        // a CLI command's write is on disk when the command exits.
        assert!(!dir.path().join("t.db-wal").exists());
        let again = Connection::open(dir.path().join("t.db")).unwrap();
        let n: i64 = again.query_row("SELECT count(*) FROM shares", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
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
