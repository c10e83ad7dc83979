//! The ZIP of all documents, built once when a share is sent, streamed from the blob store back
//! into it: memory stays flat whatever the documents weigh (a 1 GB share needs a few buffers,
//! not 1 GB). Formats that are already compressed are stored as they are; the rest deflated.

use crate::domain::{Filename, Share, is_precompressed};
use crate::ports::{BlobStore, PortError};
use chrono::{Datelike, Timelike};
use ring::digest;
use std::collections::HashSet;
use std::io::{BufReader, Read, Write};
use std::sync::Arc;
use tokio_util::io::SyncIoBridge;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

pub fn document_key(share: &Share, doc: &crate::domain::Document) -> String {
    format!("{}{}", share_prefix(share), doc.id)
}

/// Where a large document is uploaded (the signed PUT URL's key). `send` moves it to
/// [`document_key`], which no upload URL points at, so a late PUT cannot change checked bytes.
pub fn upload_key(share: &Share, doc: &crate::domain::Document) -> String {
    format!("{}uploads/{}", share_prefix(share), doc.id)
}

pub fn archive_key(share: &Share) -> String {
    format!("{}archive.zip", share_prefix(share))
}

/// Every blob of a share lives under this prefix, so revoking deletes one prefix.
pub fn share_prefix(share: &Share) -> String {
    format!("shares/{}/", share.id)
}

/// Names in the archive, in document order, made unique: `Befund.pdf`, `Befund (2).pdf`.
pub fn unique_names(names: &[Filename]) -> Vec<String> {
    let mut taken: HashSet<String> = HashSet::new();
    names
        .iter()
        .map(|name| {
            let mut candidate = name.clone();
            let mut n = 2;
            while taken.contains(&candidate.as_str().to_lowercase()) {
                candidate = name.numbered(n);
                n += 1;
            }
            taken.insert(candidate.as_str().to_lowercase());
            candidate.as_str().to_owned()
        })
        .collect()
}

/// Writes the archive of `share`'s documents to the blob store; returns its size. The documents
/// are taken as they are (their bytes were hashed when they came in).
pub async fn build_archive(blobs: Arc<dyn BlobStore>, share: &Share) -> Result<u64, PortError> {
    write_archive(blobs, share, false).await.map_err(|e| match e {
        ArchiveError::Port(e) => e,
        mismatch @ ArchiveError::Mismatch { .. } => PortError::other(mismatch),
    })
}

/// [`build_archive`] for documents nobody has checked yet (uploads): each is counted and hashed
/// as it goes into the archive, and the first whose bytes are not the size and SHA-256 its
/// share declares ends the archive unwritten. One read of every document instead of two (a
/// check, then the archive), which is most of a large share's `send`.
pub async fn build_checked_archive(blobs: Arc<dyn BlobStore>, share: &Share) -> Result<u64, ArchiveError> {
    write_archive(blobs, share, true).await
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Port(#[from] PortError),
    /// `share.documents[index]` is not what was declared: `size` bytes were read.
    #[error("document {index} is not what its share declares ({size} bytes read)")]
    Mismatch { index: usize, size: u64 },
}

async fn write_archive(blobs: Arc<dyn BlobStore>, share: &Share, check: bool) -> Result<u64, ArchiveError> {
    let handle = tokio::runtime::Handle::current();
    let writer = blobs.create(&archive_key(share)).await?;
    let names = unique_names(&share.documents.iter().map(|d| d.filename.clone()).collect::<Vec<_>>());
    let entries: Vec<Entry> = share
        .documents
        .iter()
        .zip(names)
        .map(|(d, name)| Entry {
            key: document_key(share, d),
            name,
            stored: is_precompressed(&d.content_type, &d.filename),
            size: d.size,
            sha256: check.then(|| d.sha256.clone()),
        })
        .collect();
    let modified = zip_time(share.created_at);
    // The zip crate is synchronous: run it on a blocking thread, bridging the async blob
    // reader and writer to std::io. On an error the writer is dropped unfinished, which
    // leaves no archive behind.
    let bridge_handle = handle.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<_, ArchiveError> {
        let sink = SyncIoBridge::new_with_handle(writer, bridge_handle.clone());
        let mut zip = ZipWriter::new_stream(std::io::BufWriter::with_capacity(256 * 1024, sink));
        for (index, entry) in entries.into_iter().enumerate() {
            let method = if entry.stored { CompressionMethod::Stored } else { CompressionMethod::Deflated };
            let options = SimpleFileOptions::default()
                .compression_method(method)
                .compression_level(if entry.stored { None } else { Some(6) })
                .last_modified_time(modified)
                .large_file(entry.size >= u64::from(u32::MAX))
                .unix_permissions(0o644);
            let reader = bridge_handle
                .block_on(blobs.open(&entry.key))?
                .ok_or_else(|| PortError::Other(format!("document blob missing: {}", entry.key)))?;
            let reader = BufReader::with_capacity(256 * 1024, SyncIoBridge::new_with_handle(reader, bridge_handle.clone()));
            let mut reader =
                Counted { inner: reader, size: 0, hash: entry.sha256.is_some().then(|| digest::Context::new(&digest::SHA256)) };
            zip.start_file(entry.name, options).map_err(PortError::other)?;
            std::io::copy(&mut reader, &mut zip).map_err(PortError::other)?;
            if let Some(declared) = &entry.sha256 {
                let hash = reader.hash.take().map(|h| hex::encode(h.finish()));
                if reader.size != entry.size || hash.as_deref() != Some(declared.as_str()) {
                    return Err(ArchiveError::Mismatch { index, size: reader.size });
                }
            }
        }
        let mut buffered = zip.finish().map_err(PortError::other)?.into_inner();
        buffered.flush().map_err(PortError::other)?;
        let sink = buffered.into_inner().map_err(|e| PortError::other(e.error()))?;
        Ok(sink.into_inner())
    })
    .await
    .map_err(PortError::other)??;
    Ok(writer.finish().await?)
}

struct Entry {
    key: String,
    name: String,
    stored: bool,
    size: u64,
    /// The declared SHA-256 (hex) to check the bytes against; `None`: not checked.
    sha256: Option<String>,
}

/// Counts what is read through it, and hashes it when asked to.
struct Counted<R> {
    inner: R,
    size: u64,
    hash: Option<digest::Context>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.size += n as u64;
        if let Some(hash) = &mut self.hash {
            hash.update(&buf[..n]);
        }
        Ok(n)
    }
}

fn zip_time(at: chrono::DateTime<chrono::Utc>) -> zip::DateTime {
    zip::DateTime::from_date_and_time(
        at.year().clamp(1980, 2107) as u16,
        at.month() as u8,
        at.day() as u8,
        at.hour() as u8,
        at.minute() as u8,
        at.second() as u8,
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_are_numbered_case_insensitively() {
        let names: Vec<Filename> = ["Befund.pdf", "befund.pdf", "Befund.pdf", "Befund (2).pdf", "x"]
            .iter()
            .map(|n| Filename::parse(n).unwrap())
            .collect();
        assert_eq!(unique_names(&names), ["Befund.pdf", "befund (2).pdf", "Befund (3).pdf", "Befund (2) (2).pdf", "x"]);
    }
}
