//! The embedded backend: everything on one machine, in one data dir.
//!
//! ```text
//! <data-dir>/sealpost.db     SQLite: practices, keys, shares, events, idempotency, SMS counters,
//!                            webhook endpoints and their delivery queue
//! <data-dir>/blobs/          documents and archives, served by signed local URLs
//! <data-dir>/outbox.jsonl    every SMS and email, one JSON object a line
//! <data-dir>/pepper          32 random bytes (mode 0600), never in the database
//! <data-dir>/api-key         the generated default API key (mode 0600), unless one is given
//! ```
//!
//! All of it is its owner's only (SPEC): the dir and every folder in it 0700, every file 0600,
//! whatever the umask, and an existing data dir is brought to that at every start.

#[cfg(test)]
mod archive_tests;
mod blobs;
mod outbox;
mod routes;
mod sends;
mod sqlite;
mod sqlite_practices;
mod sqlite_webhooks;
#[cfg(test)]
mod sweep_tests;
mod webhooks;

pub use blobs::FolderBlobs;
pub use outbox::{Outbox, OutboxMessage};
pub use sends::{EmbeddedSends, SendWorker};
pub use sqlite::SqliteStore;
pub use webhooks::WebhookWorker;

use crate::admin;
use crate::domain::{Policy, PracticeId, UrlRule, is_loopback_host};
use crate::ports::{Clock, PracticeStore, Store};
use crate::poster::HttpPoster;
use crate::secrets::{Keys, LazyKeys, MIN_PEPPER_BYTES};
use crate::service::{Service, Settings};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Options {
    pub data_dir: PathBuf,
    /// Base URL for links and signed URLs, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
    /// Use this key for the default practice; else one is generated once and kept.
    pub api_key: Option<String>,
    /// Don't print outbox messages to the console (tests).
    pub quiet: bool,
    /// Serve `GET /_outbox` (to requests for a loopback `Host` only). It lists every code
    /// sent, so `serve` turns it on only when [`outbox_route_allowed`].
    pub outbox_route: bool,
}

pub struct App {
    pub router: axum::Router,
    pub service: Arc<Service>,
    /// The default practice's key, when this start made or read it (to print).
    pub api_key: String,
    /// Delivers webhooks; `serve` spawns it.
    pub webhooks: WebhookWorker,
    /// Builds the archives of shares sent after upload; `serve` spawns it.
    pub sends: SendWorker,
}

/// Whether `serve` may offer `GET /_outbox`: only on a developer's machine, listening on a
/// loopback address and with a loopback public URL. A proxy in front (`--public-url
/// https://…`) reaches the listener from loopback too, and would hand the outbox to anyone.
pub fn outbox_route_allowed(listen: std::net::IpAddr, public_url: &str) -> bool {
    listen.is_loopback() && url::Url::parse(public_url).is_ok_and(|url| url.host().is_some_and(|h| is_loopback_host(&h)))
}

/// Opens (or creates) the data dir and builds the router over the embedded adapters.
pub async fn build(options: Options, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
    let public_url = options.public_url.trim_end_matches('/').to_owned();
    let Adapters { store, blobs, outbox, keys, service, wake } =
        open(&options.data_dir, public_url, !options.quiet, clock.clone())?;
    let api_key = match options.api_key {
        Some(key) => key,
        None => String::from_utf8(load_or_create_secret(&options.data_dir.join("api-key"), || {
            crate::domain::ApiKey::generate(PracticeId::generate(), clock.now()).0.into_bytes()
        })?)
        .context("api-key file is not UTF-8")?,
    };
    admin::ensure_default_practice(store.as_ref(), &api_key, clock.now()).await?;
    let router = crate::http::router(service.clone()).merge(
        routes::routes(routes::EmbeddedState { blobs, outbox, keys, clock }, options.outbox_route)
            .layer(axum::middleware::map_response(crate::http::security_headers)),
    );
    let webhooks = WebhookWorker::new(store.clone(), service.clone());
    let sends = SendWorker::new(store, service.clone(), wake);
    Ok(App { router, service, api_key, webhooks, sends })
}

/// The service over a data dir, for the operator's commands (`sealpost tenant webhook …`):
/// no router, no default practice, the outbox quiet.
pub async fn admin_service(data_dir: &Path, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Service>> {
    Ok(open(data_dir, "http://127.0.0.1:8080".to_owned(), false, clock)?.service)
}

/// The adapters over a data dir, and the service over them.
struct Adapters {
    store: Arc<SqliteStore>,
    blobs: Arc<FolderBlobs>,
    outbox: Arc<Outbox>,
    keys: Keys,
    service: Arc<Service>,
    /// Wakes the send worker when a share is queued.
    wake: Arc<tokio::sync::Notify>,
}

fn open(data_dir: &Path, public_url: String, print_outbox: bool, clock: Arc<dyn Clock>) -> anyhow::Result<Adapters> {
    private_data_dir(data_dir)?;
    let keys =
        Keys::from_pepper(&load_or_create_secret(&data_dir.join("pepper"), || crate::domain::random_bytes::<32>().to_vec())?);
    let store = Arc::new(SqliteStore::open(&data_dir.join("sealpost.db")).context("opening the SQLite database")?);
    let blobs = Arc::new(FolderBlobs::new(data_dir.join("blobs"), public_url.clone(), keys.clone(), clock.clone()));
    let outbox = Arc::new(Outbox::new(data_dir.join("outbox.jsonl"), print_outbox, clock.clone()));
    let wake = Arc::new(tokio::sync::Notify::new());
    let service = Arc::new(Service {
        store: store.clone(),
        blobs: blobs.clone(),
        sms: outbox.clone(),
        mail: outbox.clone(),
        poster: Arc::new(HttpPoster::new(UrlRule::AllowLoopbackHttp)),
        sends: Arc::new(EmbeddedSends::new(store.clone(), wake.clone(), clock.clone())),
        clock,
        keys: LazyKeys::ready(keys.clone()),
        settings: Settings {
            public_url,
            webhook_urls: UrlRule::AllowLoopbackHttp,
            max_inline_bytes: crate::service::MAX_INLINE_BYTES,
            max_share_bytes: None,
        },
    });
    Ok(Adapters { store, blobs, outbox, keys, service, wake })
}

pub fn open_store(data_dir: &Path) -> anyhow::Result<SqliteStore> {
    private_data_dir(data_dir)?;
    SqliteStore::open(&data_dir.join("sealpost.db")).context("opening the SQLite database")
}

/// What Sealpost keeps in a data dir.
#[cfg(unix)]
const DATA_FILES: [&str; 8] =
    ["sealpost.db", "sealpost.db-wal", "sealpost.db-shm", "sealpost.db-journal", "blobs", "outbox.jsonl", "pepper", "api-key"];

/// Creates the data dir (0700), or brings an existing one, made by an older version or under
/// another umask, to 0700 for folders and 0600 for files: it holds documents, codes' HMACs,
/// phone numbers and the pepper.
fn private_data_dir(dir: &Path) -> anyhow::Result<()> {
    create_private_dir(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making data dir {} its owner's only", dir.display()))?;
        // What Sealpost keeps there, not whatever else shares the folder (a `--data-dir .`
        // must not lose its scripts' execute bits).
        for name in DATA_FILES {
            match owner_only(&dir.join(name)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                done => done.with_context(|| format!("making {} its owner's only", dir.join(name).display()))?,
            }
        }
    }
    Ok(())
}

/// `mkdir -p` with mode 0700 for every folder it makes.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A folder 0700 with all it holds, a file 0600. Symbolic links are left alone (their target
/// is someone else's business, and following them could leave the data dir).
#[cfg(unix)]
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    let mode = if meta.is_dir() {
        0o700
    } else if meta.is_file() {
        0o600
    } else {
        return Ok(());
    };
    if meta.permissions().mode() & 0o777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            owner_only(&entry?.path())?;
        }
    }
    Ok(())
}

/// Reads a secret file, or creates it with `make()` and mode 0600 the first time.
fn load_or_create_secret(path: &Path, make: impl FnOnce() -> Vec<u8>) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            if path.file_name().is_some_and(|n| n == "pepper") && bytes.len() < MIN_PEPPER_BYTES {
                anyhow::bail!("{} holds fewer than {MIN_PEPPER_BYTES} bytes", path.display());
            }
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = make();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            Ok(bytes)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub async fn set_policy(data_dir: &Path, practice: &PracticeId, policy: Policy) -> anyhow::Result<()> {
    let store = open_store(data_dir)?;
    admin::set_policy(&store as &dyn Store, practice, policy).await
}

/// Creates a practice with `policy`; returns its first API key.
pub async fn add_practice(data_dir: &Path, name: &str, policy: Policy) -> anyhow::Result<String> {
    let store = open_store(data_dir)?;
    let mut new = admin::NewPractice::named(name)?;
    new.policy = policy;
    let (_, key) = admin::create_practice(&store as &dyn Store, new, chrono::Utc::now()).await?;
    Ok(key)
}

pub async fn revoke_key_by_secret(data_dir: &Path, secret: &str) -> anyhow::Result<()> {
    let store = open_store(data_dir)?;
    let key = store.find_api_key(&crate::domain::ApiKey::hash(secret)).await?.context("no such key")?;
    store.revoke_api_key(&key.id, chrono::Utc::now()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_route_needs_a_loopback_listener_and_public_url() {
        let loopback: std::net::IpAddr = [127, 0, 0, 1].into();
        for url in ["http://127.0.0.1:8080", "http://localhost:8080/", "http://[::1]:8080"] {
            assert!(outbox_route_allowed(loopback, url), "{url}");
            assert!(outbox_route_allowed(std::net::Ipv6Addr::LOCALHOST.into(), url), "{url}");
        }
        // Behind a proxy: the listener is loopback, the world is not.
        for url in ["https://sealpost.example.ch", "http://192.168.1.10:8080", "not a url"] {
            assert!(!outbox_route_allowed(loopback, url), "{url}");
        }
        assert!(!outbox_route_allowed([0, 0, 0, 0].into(), "http://127.0.0.1:8080"));
    }

    /// SPEC: embedded data is its owner's only (0700/0600): the database with its -wal and -shm
    /// files, documents (and their folders), the outbox, the secrets; also in a data dir an
    /// older version left readable to all.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_data_dir_is_its_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        use tower::ServiceExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mode = |path: &Path| std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777;
        // As an older version left it, under the common umask 022.
        std::fs::create_dir_all(dir.join("blobs/shares/old")).unwrap();
        for (path, m) in [
            (dir.clone(), 0o755),
            (dir.join("blobs"), 0o755),
            (dir.join("blobs/shares"), 0o755),
            (dir.join("blobs/shares/old"), 0o755),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
        }
        std::fs::write(dir.join("blobs/shares/old/doc"), "").unwrap();
        std::fs::set_permissions(dir.join("blobs/shares/old/doc"), std::fs::Permissions::from_mode(0o644)).unwrap();
        // Not Sealpost's: left as it is.
        std::fs::write(dir.join("notes.sh"), "").unwrap();
        std::fs::set_permissions(dir.join("notes.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(tmp.path().join("probe"), "").unwrap();
        let umask_lets_others_read = mode(&tmp.path().join("probe")) & 0o044 != 0;

        let options = Options {
            data_dir: dir.clone(),
            public_url: "http://127.0.0.1:8080".into(),
            api_key: Some("sp_live_owner_only_test_key_0123456789abcdef".into()),
            quiet: true,
            outbox_route: false,
        };
        let app = build(options, Arc::new(crate::ports::SystemClock)).await.unwrap();
        let body = serde_json::json!({
            "recipient": {"email": "anna@example.ch", "phone": "+41791234567"},
            "documents": [{"filename": "Befund.pdf", "content_type": "application/pdf", "content_base64": "JVBERi0xLjQ="}],
        });
        let request = axum::http::Request::post("/v1/shares")
            .header("authorization", "Bearer sp_live_owner_only_test_key_0123456789abcdef")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        let response = app.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), axum::http::StatusCode::CREATED);

        let mut seen = Vec::new();
        let mut todo = vec![dir.clone()];
        while let Some(path) = todo.pop() {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.ends_with("notes.sh") {
                assert_eq!(mode(&path), 0o755, "another file in the folder keeps its mode");
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
            }
            seen.push(path.strip_prefix(&dir).unwrap().to_string_lossy().into_owned());
        }
        for name in ["sealpost.db", "sealpost.db-wal", "sealpost.db-shm", "outbox.jsonl", "pepper", "blobs/shares/old/doc"] {
            assert!(seen.iter().any(|s| s == name), "{name} in {seen:?}");
        }
        assert!(
            seen.iter().filter(|s| s.starts_with("blobs/shares/") && !s.starts_with("blobs/shares/old")).count() >= 2,
            "the new share's folder and document: {seen:?}"
        );
        assert!(umask_lets_others_read, "this test proves nothing under a umask that hides files already");
    }
}
