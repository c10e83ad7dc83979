//! The embedded backend's webhook sender: a background task that fans new events out into the
//! SQLite queue and makes the attempts that are due, with the same retry policy as on AWS
//! ([`Service::deliver`]). Pending deliveries live in SQLite, so they survive a restart; a
//! delivery leaves the queue only after its endpoint acknowledged it (or it was given up).
//! API calls never wait for it.

use super::SqliteStore;
use crate::service::{Delivered, Service};
use futures_util::stream::{self, StreamExt};
use std::sync::Arc;
use std::time::Duration;

/// Events read per fan-out batch.
const FAN_OUT_BATCH: usize = 500;
/// Attempts in flight at once (each takes up to 10 s against a slow endpoint).
const CONCURRENT_ATTEMPTS: usize = 16;
/// Rounds per run: each round delivers the next event of every share that has one due.
const MAX_ROUNDS: usize = 64;

#[derive(Clone)]
pub struct WebhookWorker {
    store: Arc<SqliteStore>,
    service: Arc<Service>,
}

impl WebhookWorker {
    pub fn new(store: Arc<SqliteStore>, service: Arc<Service>) -> Self {
        Self { store, service }
    }

    /// Fans out new events, then makes every attempt that is due; returns how many it made.
    pub async fn run_once(&self) -> crate::Result<usize> {
        // A fan-out that fails (storage trouble) is tried again next run from the same place;
        // the deliveries already queued go out meanwhile.
        if let Err(e) = self.fan_out().await {
            tracing::error!(error = %e, "webhook fan-out failed; retrying next run");
        }
        self.deliver_due().await
    }

    async fn fan_out(&self) -> crate::Result<()> {
        while let Some((events, cursor)) = self.store.events_to_fan_out(FAN_OUT_BATCH).await? {
            let mut deliveries = Vec::new();
            for event in &events {
                deliveries.extend(self.service.fan_out(event).await?);
            }
            self.store.enqueue_deliveries(deliveries, cursor, self.service.now()).await?;
        }
        Ok(())
    }

    async fn deliver_due(&self) -> crate::Result<usize> {
        let mut made = 0;
        for _ in 0..MAX_ROUNDS {
            let due = self.store.due_deliveries(self.service.now(), CONCURRENT_ATTEMPTS * 4).await?;
            if due.is_empty() {
                break;
            }
            made += due.len();
            let results: Vec<_> = stream::iter(due)
                .map(|q| async move {
                    let outcome = self.service.deliver(&q.delivery, q.attempts).await;
                    (q, outcome)
                })
                .buffer_unordered(CONCURRENT_ATTEMPTS)
                .collect()
                .await;
            for (q, outcome) in results {
                match outcome {
                    Delivered::RetryAt(at) => self.store.reschedule_delivery(q.seq, q.attempts + 1, at).await?,
                    Delivered::Yes | Delivered::Failed | Delivered::Dropped => self.store.finish_delivery(q.seq).await?,
                }
            }
        }
        Ok(made)
    }

    /// Runs [`Self::run_once`] every `every` until the task is aborted.
    pub fn spawn(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.run_once().await {
                    tracing::error!(error = %e, "webhook delivery run failed");
                }
            }
        })
    }
}
