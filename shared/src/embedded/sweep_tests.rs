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

/// Documents that cannot be deleted for one share (a full disk, a throttled bucket).
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
        Err(NotGranted::DOCUMENTS.error())
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
    let clock = ManualClock::new(now + Duration::days(3));
    let outbox = Arc::new(Outbox::new(dir.path().join("outbox.jsonl"), false, Arc::new(clock.clone())));
    let service = Service {
        store: store.clone(),
        blobs: Arc::new(Undeletable(share_prefix(&stuck))),
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
    };

    let run = service.sweep_expired().await;

    assert!(matches!(run, Err(Error::Internal(_))), "the run says a share failed: {run:?}");
    let after = |id| {
        let store = store.clone();
        async move { store.get_share(&id).await.unwrap().unwrap() }
    };
    assert!(after(next.id.clone()).await.expiry_processed, "the share after the stuck one was expired");
    assert!(!after(stuck.id.clone()).await.expiry_processed, "the stuck one waits for the next run");
}
