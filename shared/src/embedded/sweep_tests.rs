//! The expiry sweep over the embedded store, with a blob store that fails for one share.

use super::{Outbox, SqliteStore};
use crate::domain::{Policy, Share, UrlRule};
use crate::error::Error;
use crate::ports::{
    BlobReader, BlobStore, BlobWriter, Disposition, ManualClock, NotGranted, PortError, PortResult, ShareStore, UploadUrl,
};
use crate::secrets::LazyKeys;
use crate::service::Service;
use crate::service::Settings;
use crate::service::archive::share_prefix;
use async_trait::async_trait;
use chrono::{Duration, Utc};
use std::sync::Arc;

/// Documents that cannot be deleted for one share (a full disk, a throttled bucket); writing an
/// archive panics (a bug in a send worker's run).
struct Undeletable(String);

#[async_trait]
impl BlobStore for Undeletable {
    async fn put(&self, _: &str, _: &[u8]) -> PortResult<()> {
        Err(NotGranted::DOCUMENTS.error())
    }
    async fn open(&self, _: &str) -> PortResult<Option<BlobReader>> {
        Err(NotGranted::DOCUMENTS.error())
    }
    async fn create(&self, _: &str) -> PortResult<Box<dyn BlobWriter>> {
        panic!("a bug in the run");
    }
    async fn size(&self, _: &str) -> PortResult<Option<u64>> {
        Err(NotGranted::DOCUMENTS.error())
    }
    async fn rename(&self, _: &str, _: &str) -> PortResult<bool> {
        Err(NotGranted::DOCUMENTS.error())
    }
    async fn delete_prefix(&self, prefix: &str) -> PortResult<()> {
        if prefix == self.0 { Err(PortError::Other("cannot delete".into())) } else { Ok(()) }
    }
    async fn download_url(&self, _: &str, _: Disposition<'_>, _: u64) -> PortResult<String> {
        Err(NotGranted::DOCUMENT_LINKS.error())
    }
    async fn upload_url(&self, _: &str, _: u64, _: &[u8; 32], _: u64) -> PortResult<UploadUrl> {
        Err(NotGranted::UPLOAD_LINKS.error())
    }
}

#[tokio::test]
async fn a_share_that_cannot_be_expired_does_not_hold_up_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
    let now = Utc::now();
    let mut stuck = Share::fixture(&Policy::default(), now);
    stuck.expires_at = now + Duration::days(1);
    let mut next = Share::fixture(&Policy::default(), now);
    next.expires_at = now + Duration::days(2);
    for share in [&stuck, &next] {
        store.insert_share(share, &[]).await.unwrap();
    }
    let service = service(&store, dir.path(), share_prefix(&stuck), now + Duration::days(3));

    let run = service.sweep_expired().await;

    assert!(matches!(run, Err(Error::Internal(_))), "the run says a share failed: {run:?}");
    let after = |id| {
        let store = store.clone();
        async move { store.get_share(&id).await.unwrap().unwrap() }
    };
    assert!(after(next.id.clone()).await.expiry_processed, "the share after the stuck one was expired");
    assert!(!after(stuck.id.clone()).await.expiry_processed, "the stuck one waits for the next run");
}

/// A service over `store` whose documents under `undeletable` cannot be deleted, at `now`.
fn service(store: &Arc<SqliteStore>, dir: &std::path::Path, undeletable: String, now: chrono::DateTime<Utc>) -> Service {
    let clock = ManualClock::new(now);
    let outbox = Arc::new(Outbox::new(dir.join("outbox.jsonl"), false, Arc::new(clock.clone())));
    Service {
        store: store.clone(),
        blobs: Arc::new(Undeletable(undeletable)),
        sms: outbox.clone(),
        mail: outbox,
        poster: Arc::new(NotGranted::WEBHOOK_POSTS),
        sends: Arc::new(NotGranted::SENDS),
        clock: Arc::new(clock),
        keys: LazyKeys::none(),
        settings: Settings {
            public_url: "http://127.0.0.1".into(),
            webhook_urls: UrlRule::AllowLoopbackHttp,
            max_inline_bytes: 0,
            max_share_bytes: None,
        },
    }
}

#[tokio::test]
async fn a_due_list_that_lags_behind_a_share_never_expires_it() {
    // DynamoDB's index may still list a share as due after a write moved its due time (or
    // before the share's record says so): the sweep goes by the share itself, never deleting
    // a live share's documents.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
    let now = Utc::now();
    let live = Share::fixture(&Policy::default(), now);
    store.insert_share(&live, &[]).await.unwrap();
    let stale = (now - Duration::days(1)).timestamp_micros();
    store.write(move |conn| Ok(conn.execute("UPDATE shares SET sweep_due_us = ?1", [stale]).unwrap())).await.unwrap();

    // Its documents cannot be deleted: an attempt would fail the run.
    let service = service(&store, dir.path(), share_prefix(&live), now);
    assert_eq!(service.sweep_expired().await.expect("nothing to do"), 0);
    let after = store.get_share(&live.id).await.unwrap().unwrap();
    assert!(!after.expiry_processed && after.access(now) == crate::domain::Access::Open);

    // Nor a revoked share before its uploads can have landed: its second cleanup comes then.
    let mut revoked = Share::fixture(&Policy::default(), now);
    revoked.lifecycle = crate::domain::Lifecycle::Revoked;
    revoked.revoked_at = Some(now);
    revoked.upload_urls_until = Some(now + Duration::minutes(5));
    store.insert_share(&revoked, &[]).await.unwrap();
    store.write(move |conn| Ok(conn.execute("UPDATE shares SET sweep_due_us = ?1", [stale]).unwrap())).await.unwrap();
    assert_eq!(service.sweep_expired().await.expect("nothing to do"), 0);
    assert!(!store.get_share(&revoked.id).await.unwrap().unwrap().expiry_processed, "still to be swept once more");
}

#[tokio::test]
async fn a_send_run_that_panics_fails_its_share_not_the_worker() {
    // The embedded server's one send task must outlive a run that panics: the share is tried
    // again later, and the others are still sent.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
    let now = Utc::now();
    let (practice, _) =
        crate::admin::create_practice(store.as_ref(), crate::admin::NewPractice::named("Praxis").unwrap(), now).await.unwrap();
    let mut share = Share::fixture(&Policy::default(), now);
    share.practice_id = practice.id;
    share.lifecycle = crate::domain::Lifecycle::Sending;
    store.insert_share(&share, &[]).await.unwrap();
    let wake = Arc::new(tokio::sync::Notify::new());
    let queue = super::sends::EmbeddedSends::new(store.clone(), wake.clone(), Arc::new(ManualClock::new(now)));
    crate::ports::SendQueue::enqueue(&queue, &share.id, share.version).await.unwrap();

    let service = Arc::new(service(&store, dir.path(), String::new(), now));
    let worker = super::sends::SendWorker::new(store.clone(), service, wake);
    assert_eq!(worker.run_once().await.expect("the worker goes on"), 0, "the share's run failed");
    let queued = store.read(|conn| Ok(conn.query_row("SELECT count(*) FROM send_queue", [], |r| r.get::<_, i64>(0)).unwrap()));
    assert_eq!(queued.await.unwrap(), 1, "the share stays queued, to be tried again");
}
