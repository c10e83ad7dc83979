//! Documents in S3: private bucket, server-side encryption, presigned GET (≤ 300 s, with
//! `response-content-disposition`) and PUT URLs. Archives are written with a multipart upload
//! fed part by part (a few in flight), so a Lambda never holds a whole archive in memory.

use super::presign::{Presigned, presign};
use crate::ports::{BlobReader, BlobStore, BlobWriter, Disposition, PortError, PortResult, UploadUrl};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier, ServerSideEncryption};
use base64::Engine;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWrite, DuplexStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// Multipart part size of the first thousand parts: S3's minimum is 5 MiB; 8 MiB keeps a
/// Lambda's memory small for the archives most shares have.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts uploaded at once: with one, the archive's writer (and the reads of its documents)
/// waited for every part's round trip. At most this many parts, plus the one being filled, are
/// in memory: 40 MiB, up to 200 MiB for an archive of 100 GiB (`part_bytes`).
const PARTS_IN_FLIGHT: usize = 4;
/// S3's limit on the parts of one upload.
const MAX_PARTS: i32 = 10_000;

/// The size of part `number` (from 1): 8 MiB for the first thousand, 16 MiB for the next, and
/// so on, so that S3's 10,000 parts hold 440 GiB, well over the 100 GiB a share of 50 × 2 GiB
/// archives to, without knowing the archive's size up front (a stream has none).
fn part_bytes(number: i32) -> usize {
    PART_BYTES * (1 + (number.max(1) as usize - 1) / 1000)
}

#[derive(Clone)]
pub struct S3Blobs {
    clients: super::Clients,
    bucket: String,
}

fn sdk_err<E: std::error::Error + 'static>(e: aws_sdk_s3::error::SdkError<E>) -> PortError {
    PortError::Other(format!("s3: {}", aws_sdk_s3::error::DisplayErrorContext(e)))
}

fn err(e: impl std::fmt::Display) -> PortError {
    PortError::Other(format!("s3: {e}"))
}

impl S3Blobs {
    pub fn new(clients: super::Clients, bucket: String) -> Self {
        Self { clients, bucket }
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, key: &str, bytes: &[u8]) -> PortResult<()> {
        self.clients
            .s3()
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    async fn open(&self, key: &str) -> PortResult<Option<BlobReader>> {
        match self.clients.s3().get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(Box::pin(out.body.into_async_read()))),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => Ok(None),
            Err(e) => Err(sdk_err(e)),
        }
    }

    async fn create(&self, key: &str) -> PortResult<Box<dyn BlobWriter>> {
        let upload = self
            .clients
            .s3()
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .map_err(sdk_err)?;
        let upload_id = upload.upload_id().ok_or_else(|| err("no upload id"))?.to_owned();
        // The writer half is what callers write to; a task reads the other half in parts.
        let (writer, reader) = tokio::io::duplex(256 * 1024);
        let (finished, upload_ends) = oneshot::channel();
        let task = tokio::spawn(upload_parts(
            self.clients.s3().clone(),
            self.bucket.clone(),
            key.to_owned(),
            upload_id,
            reader,
            upload_ends,
        ));
        Ok(Box::new(MultipartWriter { pipe: Some(writer), finished: Some(finished), task: Some(task) }))
    }

    async fn size(&self, key: &str) -> PortResult<Option<u64>> {
        match self.clients.s3().head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(out.content_length().map(|l| l.max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(None),
            Err(e) => Err(sdk_err(e)),
        }
    }

    /// S3 has no rename: a server-side copy (up to 5 GB, above our 2 GiB limit), then a delete.
    async fn rename(&self, from: &str, to: &str) -> PortResult<bool> {
        let copied = self
            .clients
            .s3()
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(format!("{}/{}", self.bucket, from))
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await;
        match copied {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| aws_sdk_s3::error::ProvideErrorMetadata::code(se) == Some("NoSuchKey")) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(sdk_err(e)),
        }
        self.clients.s3().delete_object().bucket(&self.bucket).key(from).send().await.map_err(sdk_err)?;
        Ok(true)
    }

    async fn delete_prefix(&self, prefix: &str) -> PortResult<()> {
        let mut token = None;
        loop {
            let page = self
                .clients
                .s3()
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(sdk_err)?;
            let ids: Vec<ObjectIdentifier> = page
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .map(|k| ObjectIdentifier::builder().key(k).build().map_err(err))
                .collect::<PortResult<_>>()?;
            if !ids.is_empty() {
                let delete = Delete::builder().set_objects(Some(ids)).quiet(true).build().map_err(err)?;
                let out = self.clients.s3().delete_objects().bucket(&self.bucket).delete(delete).send().await.map_err(sdk_err)?;
                // DeleteObjects answers 200 when single keys fail (access denied, S3's own
                // errors): in quiet mode those are all it lists. Not deleted is an error, so a
                // revoke or the sweep fails and is tried again rather than counted done.
                if let Some(first) = out.errors().first() {
                    return Err(err(format!(
                        "{} of {} objects not deleted under {prefix}: {} {}",
                        out.errors().len(),
                        page.contents().len(),
                        first.code().unwrap_or("?"),
                        first.message().unwrap_or("")
                    )));
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(())
    }

    async fn download_url(&self, key: &str, d: Disposition<'_>, ttl_secs: u64) -> PortResult<String> {
        let disposition = crate::http::content_disposition(d.filename);
        let overrides = [("response-content-disposition", disposition.as_str()), ("response-content-type", d.content_type)];
        let what = Presigned::Get { overrides: &overrides };
        let (url, _) = presign(&self.clients, &self.bucket, key, what, Duration::from_secs(ttl_secs), SystemTime::now()).await?;
        Ok(url)
    }

    async fn upload_url(&self, key: &str, size: u64, sha256: &[u8; 32], ttl_secs: u64) -> PortResult<UploadUrl> {
        let checksum = base64::engine::general_purpose::STANDARD.encode(sha256);
        let what = Presigned::Put { size, checksum: &checksum };
        let (url, ttl) =
            presign(&self.clients, &self.bucket, key, what, Duration::from_secs(ttl_secs), SystemTime::now()).await?;
        Ok(UploadUrl { url, expires_in: ttl.as_secs() })
    }
}

/// Reads the pipe in `PART_BYTES` parts and uploads each, up to `PARTS_IN_FLIGHT` at once so
/// the archive goes on being written (and its documents read) while parts travel. At the end
/// of the pipe it completes the upload if the writer was finished (`finished` says so), and
/// aborts it otherwise, or on any error: a writer dropped half way also ends the pipe, and
/// must not leave half an archive behind.
async fn upload_parts(
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    mut pipe: DuplexStream,
    finished: oneshot::Receiver<()>,
) -> PortResult<u64> {
    let result = async {
        let mut parts = Vec::new();
        // Dropped on an error: the parts still in flight are cancelled.
        let mut in_flight = JoinSet::new();
        let mut total = 0u64;
        for number in 1.. {
            let size = part_bytes(number);
            let mut buf = Vec::with_capacity(size);
            while buf.len() < size {
                let read = (&mut pipe).take((size - buf.len()) as u64).read_to_end(&mut buf).await.map_err(err)?;
                if read == 0 {
                    break;
                }
            }
            // An empty archive still needs one (empty) part; otherwise stop at the end.
            if buf.is_empty() && number > 1 {
                break;
            }
            let last = buf.len() < size;
            if !last && number == MAX_PARTS {
                return Err(err("the archive is larger than S3's 10,000 parts hold"));
            }
            total += buf.len() as u64;
            while in_flight.len() >= PARTS_IN_FLIGHT {
                parts.push(next_part(&mut in_flight).await?);
            }
            let upload = client.upload_part().bucket(&bucket).key(&key).upload_id(&upload_id).part_number(number);
            in_flight.spawn(async move {
                let out = upload.body(ByteStream::from(buf)).send().await.map_err(sdk_err)?;
                Ok(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag().map(str::to_owned)).build())
            });
            if last {
                break;
            }
        }
        finished.await.map_err(|_| err("the archive was dropped before it was finished"))?;
        while !in_flight.is_empty() {
            parts.push(next_part(&mut in_flight).await?);
        }
        parts.sort_by_key(|p| p.part_number());
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key(&key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(total)
    }
    .await;
    if result.is_err() {
        let _ = client.abort_multipart_upload().bucket(&bucket).key(&key).upload_id(&upload_id).send().await;
    }
    result
}

/// The next part uploaded (whichever finishes first); `in_flight` must not be empty.
async fn next_part(in_flight: &mut JoinSet<PortResult<CompletedPart>>) -> PortResult<CompletedPart> {
    match in_flight.join_next().await {
        Some(done) => done.map_err(err)?,
        None => Err(err("no part in flight")),
    }
}

struct MultipartWriter {
    pipe: Option<DuplexStream>,
    /// Sent by `finish`: the end of the pipe is the end of the archive. Dropped unsent, the
    /// upload is aborted.
    finished: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<PortResult<u64>>>,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "upload already finished")
}

impl AsyncWrite for MultipartWriter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.pipe.as_mut() {
            Some(p) => Pin::new(p).poll_write(cx, buf),
            None => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.pipe.as_mut() {
            Some(p) => Pin::new(p).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.pipe.as_mut() {
            Some(p) => Pin::new(p).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

#[async_trait]
impl BlobWriter for MultipartWriter {
    async fn finish(mut self: Box<Self>) -> PortResult<u64> {
        drop(self.pipe.take()); // end of input for the part uploader
        if let Some(finished) = self.finished.take() {
            let _ = finished.send(()); // an error here is the task's own, returned below
        }
        let task = self.task.take().ok_or_else(|| err("finished twice"))?;
        task.await.map_err(err)?
    }
}

// No `Drop`: a writer dropped before `finish` ends the pipe with `finished` unsent, and the
// upload task aborts the upload itself (S3's lifecycle rule, AbortIncompleteMultipartUpload in
// the template, is the backstop should the process end first).

#[cfg(test)]
mod part_tests {
    use super::*;

    #[test]
    fn ten_thousand_parts_hold_the_largest_share() {
        let capacity: u64 = (1..=MAX_PARTS).map(|n| part_bytes(n) as u64).sum();
        let largest_share = 50 * 2 * 1024 * 1024 * 1024u64; // 50 documents of 2 GiB
        assert!(capacity > largest_share + largest_share / 100, "{capacity}");
        assert_eq!(part_bytes(1), 8 << 20);
        assert_eq!(part_bytes(1000), 8 << 20);
        assert_eq!(part_bytes(1001), 16 << 20);
        // S3: at most 5 GiB a part; and memory: the parts of a 100 GiB archive stay small.
        assert!(part_bytes(MAX_PARTS) <= 5 << 30);
        let parts_for_largest = (1..=MAX_PARTS)
            .scan(0u64, |sum, n| {
                *sum += part_bytes(n) as u64;
                Some((n, *sum))
            })
            .find(|(_, sum)| *sum >= largest_share)
            .map(|(n, _)| n)
            .unwrap_or(MAX_PARTS);
        assert!(part_bytes(parts_for_largest) <= 48 << 20, "{parts_for_largest}");
    }
}
