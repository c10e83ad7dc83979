//! Documents in a folder, with signed, expiring local URLs standing in for S3's presigned ones.
//!
//! A URL carries its expiry and an HMAC (a key derived from the pepper) over the method, the
//! blob key, the expiry and what the response will say (file name, type) or accept (size).
//! The server checks it in constant time (`crate::secrets::Keys::url_signature_matches`).

use crate::ports::{BlobReader, BlobStore, BlobWriter, Clock, Disposition, PortError, PortResult, UploadUrl};
use crate::secrets::Keys;
use async_trait::async_trait;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

pub struct FolderBlobs {
    root: PathBuf,
    public_url: String,
    keys: Keys,
    clock: Arc<dyn Clock>,
}

/// `mkdir -p`, each folder made 0700.
async fn create_private_dir(dir: &Path) -> PortResult<()> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await.map_err(io_err)
}

fn io_err(e: io::Error) -> PortError {
    PortError::Other(format!("blob folder: {e}"))
}

/// What a signed download URL covers.
pub fn download_canonical(key: &str, exp: i64, filename: &str, content_type: &str) -> String {
    format!("GET\n{key}\n{exp}\n{filename}\n{content_type}")
}

/// What a signed upload URL covers: the key, its expiry, the size and the SHA-256 (hex) of the
/// bytes it takes.
pub fn upload_canonical(key: &str, exp: i64, size: u64, sha256: &str) -> String {
    format!("PUT\n{key}\n{exp}\n{size}\n{sha256}")
}

fn enc(s: &str) -> percent_encoding::PercentEncode<'_> {
    utf8_percent_encode(s, NON_ALPHANUMERIC)
}

impl FolderBlobs {
    pub fn new(root: PathBuf, public_url: String, keys: Keys, clock: Arc<dyn Clock>) -> Self {
        Self { root, public_url, keys, clock }
    }

    /// The file for a key. Keys are made by the service (`shares/<id>/<doc>`); anything that
    /// would step outside the folder is refused all the same.
    pub fn path(&self, key: &str) -> PortResult<PathBuf> {
        let segment_ok = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('\\') && !s.contains('\0');
        if !key.split('/').all(segment_ok) || !Path::new(key).components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(PortError::Other("invalid blob key".into()));
        }
        Ok(self.root.join(key))
    }

    fn temp_path(&self, dest: &Path) -> PathBuf {
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("blob");
        dest.with_file_name(format!(".{name}.{}.part", crate::domain::random_token::<6>()))
    }
}

#[async_trait]
impl BlobStore for FolderBlobs {
    async fn put(&self, key: &str, bytes: &[u8]) -> PortResult<()> {
        let mut writer = self.create(key).await?;
        tokio::io::AsyncWriteExt::write_all(&mut writer, bytes).await.map_err(io_err)?;
        writer.finish().await.map(|_| ())
    }

    async fn open(&self, key: &str) -> PortResult<Option<BlobReader>> {
        match tokio::fs::File::open(self.path(key)?).await {
            Ok(file) => Ok(Some(Box::pin(file))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn create(&self, key: &str) -> PortResult<Box<dyn BlobWriter>> {
        let dest = self.path(key)?;
        if let Some(dir) = dest.parent() {
            create_private_dir(dir).await?;
        }
        let temp = self.temp_path(&dest);
        // Documents are the owner's only (0600, whatever the umask); the rename keeps the mode.
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let file = options.open(&temp).await.map_err(io_err)?;
        Ok(Box::new(FileWriter { file, temp, dest, written: 0 }))
    }

    async fn size(&self, key: &str) -> PortResult<Option<u64>> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn rename(&self, from: &str, to: &str) -> PortResult<bool> {
        let (from, to) = (self.path(from)?, self.path(to)?);
        if let Some(dir) = to.parent() {
            create_private_dir(dir).await?;
        }
        match tokio::fs::rename(&from, &to).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> PortResult<()> {
        let path = self.path(prefix.trim_end_matches('/'))?;
        // Prefixes here are folders (`shares/<id>/`) or whole keys (one document).
        let removed = match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => tokio::fs::remove_file(&path).await,
            _ => tokio::fs::remove_dir_all(&path).await,
        };
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn download_url(&self, key: &str, d: Disposition<'_>, ttl_secs: u64) -> PortResult<String> {
        self.path(key)?;
        let exp = self.clock.now().timestamp() + ttl_secs as i64;
        let sig = self.keys.sign_url(&download_canonical(key, exp, d.filename, d.content_type));
        Ok(format!("{}/_blobs/{key}?exp={exp}&fn={}&ct={}&sig={sig}", self.public_url, enc(d.filename), enc(d.content_type)))
    }

    async fn upload_url(&self, key: &str, size: u64, sha256: &[u8; 32], ttl_secs: u64) -> PortResult<UploadUrl> {
        self.path(key)?;
        let exp = self.clock.now().timestamp() + ttl_secs as i64;
        let sha256 = hex::encode(sha256);
        let sig = self.keys.sign_url(&upload_canonical(key, exp, size, &sha256));
        let url = format!("{}/_blobs/{key}?exp={exp}&size={size}&sha256={sha256}&sig={sig}", self.public_url);
        Ok(UploadUrl { url, expires_in: ttl_secs })
    }
}

/// Writes to a hidden temporary file; `finish` renames it into place, so a reader never sees
/// half a blob and a failed write leaves nothing under the key.
struct FileWriter {
    file: tokio::fs::File,
    temp: PathBuf,
    dest: PathBuf,
    written: u64,
}

impl AsyncWrite for FileWriter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.file).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.written += n as u64;
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

#[async_trait]
impl BlobWriter for FileWriter {
    async fn finish(mut self: Box<Self>) -> PortResult<u64> {
        use tokio::io::AsyncWriteExt;
        self.file.flush().await.map_err(io_err)?;
        self.file.sync_data().await.map_err(io_err)?;
        tokio::fs::rename(&self.temp, &self.dest).await.map_err(io_err)?;
        Ok(self.written)
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // After a successful finish the temp file is gone and this is a no-op.
        let _ = std::fs::remove_file(&self.temp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SystemClock;

    fn blobs(dir: &Path) -> FolderBlobs {
        FolderBlobs::new(dir.to_path_buf(), "http://x".into(), Keys::from_pepper(&[1; 32]), Arc::new(SystemClock))
    }

    #[test]
    fn keys_cannot_leave_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let b = blobs(dir.path());
        assert!(b.path("shares/abc/doc_1").is_ok());
        for bad in ["../x", "shares/../../etc/passwd", "/etc/passwd", "", "a/./b"] {
            assert!(b.path(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_blob_appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let b = blobs(dir.path());
        let mut w = b.create("shares/s/doc").await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut w, b"half").await.unwrap();
        assert_eq!(b.size("shares/s/doc").await.unwrap(), None);
        drop(w); // abandoned: nothing under the key, no temp file left behind
        assert_eq!(b.size("shares/s/doc").await.unwrap(), None);
        assert_eq!(std::fs::read_dir(dir.path().join("shares/s")).unwrap().count(), 0);
        b.put("shares/s/doc", b"whole").await.unwrap();
        assert_eq!(b.size("shares/s/doc").await.unwrap(), Some(5));
        b.delete_prefix("shares/s/").await.unwrap();
        assert!(b.open("shares/s/doc").await.unwrap().is_none());
    }
}
