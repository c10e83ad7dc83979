//! The embedded backend's send queue: the shares whose `send` left work to do, kept in SQLite
//! (`send_queue`), so that work queued before a restart is done after it; and the background
//! task that does it (`Service::finish_send`), woken by each `send` and by a timer for retries.

use super::sqlite::{SqliteStore, db_err, us};
use crate::domain::ShareId;
use crate::ports::{PortResult, SendQueue};
use crate::service::Service;
use async_trait::async_trait;
use rusqlite::params;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How many queued shares one round takes (each is worked on in turn).
const ROUND: usize = 16;

/// [`SendQueue`] over the data dir's database.
pub struct EmbeddedSends {
    store: Arc<SqliteStore>,
    wake: Arc<Notify>,
    clock: Arc<dyn crate::ports::Clock>,
}

impl EmbeddedSends {
    pub fn new(store: Arc<SqliteStore>, wake: Arc<Notify>, clock: Arc<dyn crate::ports::Clock>) -> Self {
        Self { store, wake, clock }
    }
}

#[async_trait]
impl SendQueue for EmbeddedSends {
    async fn enqueue(&self, share: &ShareId, _version: u64) -> PortResult<()> {
        let (id, now) = (share.to_string(), us(self.clock.now()));
        self.store
            .write(move |conn| {
                // A send queued again moves its entry's time: a round that took the older entry
                // then leaves this one in place (it deletes only what it read).
                conn.execute(
                    "INSERT INTO send_queue (share_id, queued_us) VALUES (?1, ?2)
                     ON CONFLICT (share_id) DO UPDATE SET queued_us = max(queued_us + 1, excluded.queued_us)",
                    params![id, now],
                )
                .map(|_| ())
                .map_err(db_err)
            })
            .await?;
        self.wake.notify_one();
        Ok(())
    }
}

/// The background task's work; `serve` spawns it, tests call [`SendWorker::run_once`].
#[derive(Clone)]
pub struct SendWorker {
    store: Arc<SqliteStore>,
    service: Arc<Service>,
    wake: Arc<Notify>,
}

impl SendWorker {
    pub fn new(store: Arc<SqliteStore>, service: Arc<Service>, wake: Arc<Notify>) -> Self {
        Self { store, service, wake }
    }

    /// Works every queued share once; returns how many were done (and left the queue). One
    /// that fails stays queued for the next round.
    pub async fn run_once(&self) -> crate::Result<usize> {
        let mut done = 0;
        let mut failed: Vec<String> = Vec::new();
        loop {
            let skip = failed.clone();
            let queued: Vec<(String, i64)> = self
                .store
                .read(move |conn| {
                    let mut stmt = conn
                        .prepare_cached("SELECT share_id, queued_us FROM send_queue ORDER BY queued_us, share_id")
                        .map_err(db_err)?;
                    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(db_err)?;
                    let mut out = Vec::new();
                    for row in rows {
                        let row = row.map_err(db_err)?;
                        if !skip.contains(&row.0) {
                            out.push(row);
                        }
                        if out.len() == ROUND {
                            break;
                        }
                    }
                    Ok(out)
                })
                .await?;
            if queued.is_empty() {
                return Ok(done);
            }
            for (id, queued_us) in queued {
                let result = match ShareId::parse(&id) {
                    Some(share) => self.service.run_isolated(&share).await,
                    None => Ok(()), // not a share id: nothing to do, drop it
                };
                match result {
                    Ok(()) => {
                        let gone = id.clone();
                        self.store
                            .write(move |conn| {
                                conn.execute(
                                    "DELETE FROM send_queue WHERE share_id = ?1 AND queued_us = ?2",
                                    params![gone, queued_us],
                                )
                                .map(|_| ())
                                .map_err(db_err)
                            })
                            .await?;
                        done += 1;
                    }
                    Err(e) => {
                        tracing::error!(share_id = %id, error = %e, "sending a share failed; retrying later");
                        failed.push(id);
                    }
                }
            }
        }
    }

    /// Runs [`Self::run_once`] at once (work queued before a restart), on every `send`, and
    /// every `retry` for what failed, until the task is aborted.
    pub fn spawn(self, retry: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.run_once().await {
                    tracing::error!(error = %e, "the send queue could not be read; retrying later");
                }
                let _ = tokio::time::timeout(retry, self.wake.notified()).await;
            }
        })
    }
}
