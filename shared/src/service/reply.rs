//! The patient's reply to the practice, when the share allows it (`domain::Reply`): started
//! with the files it will upload (each gets an upload URL that takes exactly its bytes), then
//! submitted, when each upload is checked by its content. The practice lists them and fetches
//! each accepted file through a short-lived URL.

use super::archive::share_prefix;
use super::input::parse_json;
use super::views::UrlView;
use super::{Load, Service, Step};
use crate::domain::{
    Access, Event, EventKind, FileStatus, Filename, MAX_REPLY_BYTES, MAX_REPLY_FILE_BYTES, MAX_REPLY_FILES,
    MAX_REPLY_MESSAGE_CHARS, Practice, Reply, ReplyDenied, ReplyFile, ReplyFileType, ReplyId, ReplyMark, Share, ShareId,
    check_reply_room,
};
use crate::error::{Error, Result};
use crate::ports::{Disposition, UploadUrl};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncReadExt;

/// Why a file was refused, as the patient's page and the practice read it.
pub const NOT_UPLOADED: &str = "not_uploaded";
pub const WRONG_TYPE: &str = "wrong_type";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartIn {
    message: Option<String>,
    #[serde(default)]
    files: Vec<FileIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    filename: String,
    content_type: String,
    size: u64,
    sha256: String,
}

/// `POST /v1/public/shares/{id}/replies`: where each file goes.
#[derive(Debug, Serialize)]
pub struct ReplyStarted {
    pub id: String,
    pub files: Vec<ReplyUpload>,
}

#[derive(Debug, Serialize)]
pub struct ReplyUpload {
    pub filename: String,
    pub upload_url: String,
    pub upload_expires_in: u64,
    pub upload_headers: std::collections::BTreeMap<&'static str, String>,
}

/// A reply as the patient's receipt and the practice's list show it.
#[derive(Debug, Serialize)]
pub struct ReplyView {
    pub id: String,
    pub submitted_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
    pub files: Vec<ReplyFileView>,
}

#[derive(Debug, Serialize)]
pub struct ReplyFileView {
    /// The file's place in the reply, as in `…/files/{index}`.
    pub index: usize,
    pub filename: String,
    pub content_type: &'static str,
    pub size: u64,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ReplyList {
    pub replies: Vec<ReplyView>,
}

impl ReplyView {
    fn new(reply: &Reply) -> Self {
        let files = reply
            .files
            .iter()
            .enumerate()
            .map(|(index, f)| {
                let (status, reason) = match &f.status {
                    FileStatus::Pending => ("pending", None),
                    FileStatus::Accepted => ("accepted", None),
                    FileStatus::Refused { reason } => ("refused", Some(reason.clone())),
                };
                ReplyFileView {
                    index,
                    filename: f.filename.as_str().to_owned(),
                    content_type: f.content_type.as_str(),
                    size: f.size,
                    status,
                    reason,
                }
            })
            .collect();
        Self { id: reply.id.to_string(), submitted_at: reply.submitted_at, message: reply.message.clone(), files }
    }
}

fn reply_prefix(share: &Share, id: &ReplyId) -> String {
    format!("{}replies/{id}/", share_prefix(share))
}

fn reply_record_key(share: &Share, id: &ReplyId) -> String {
    format!("{}reply.json", reply_prefix(share, id))
}

/// Where an accepted file is kept: no upload URL points here, so a checked file cannot change.
fn reply_file_key(share: &Share, id: &ReplyId, index: usize) -> String {
    format!("{}{index}", reply_prefix(share, id))
}

/// Where a file's upload URL puts it, until the submit checks it.
fn reply_upload_key(share: &Share, id: &ReplyId, index: usize) -> String {
    format!("{}uploads/{index}", reply_prefix(share, id))
}

/// An error unless patients may still use `share` at `now`: checked again inside each
/// conditional write, as a revoke or the expiry may have come since the share was read.
fn still_open(share: &Share, now: DateTime<Utc>) -> Result<()> {
    match share.access(now) {
        Access::Open => Ok(()),
        Access::Revoked => Err(Error::Revoked),
        Access::Expired => Err(Error::Expired),
        Access::AwaitingUpload => Err(Error::NotFound),
    }
}

impl Service {
    /// The share a patient's token opens, when it takes replies: what `POST …/replies` checks
    /// before it reads the body.
    pub async fn reply_share(&self, id: &ShareId, token: Option<&str>) -> Result<Share> {
        let share = self.authorized_share(id, token).await?;
        if !share.policy.allow_reply {
            return Err(Error::Forbidden("this share does not take replies"));
        }
        Ok(share)
    }

    /// `POST /v1/public/shares/{id}/replies` (after [`Self::reply_share`]): checks the message
    /// and the files the patient will send, counts the reply against the share's limits, and
    /// answers an upload URL per file.
    pub async fn start_reply(&self, share: Share, body: &[u8]) -> Result<ReplyStarted> {
        let (message, files) = parse_reply(body)?;
        let now = self.now();
        // An upload lands before the link ends, so the expiry sweep finds it (as for documents).
        let url_secs = share.upload_url_secs(now).ok_or(Error::Forbidden("the link ends within the hour: replies are closed"))?;
        check_reply_room(&share.replies, now).map_err(reply_denied)?;
        let reply = Reply { id: ReplyId::generate(), started_at: now, submitted_at: None, message, files };
        // Kept before it is counted: a revoke or the expiry that comes between makes the count
        // fail, and then the reply is deleted here (their own delete may have come before it).
        self.save_reply(&share, &reply).await?;
        let (id, prefix) = (share.id.clone(), reply_prefix(&share, &reply.id));
        let counted = self
            .mutate_from(Some(share), Load::Patient(&id), |share, now| {
                if let Err(e) = still_open(share, now) {
                    return Step::unchanged(vec![], Err(e));
                }
                if let Err(denied) = check_reply_room(&share.replies, now) {
                    return Step::unchanged(vec![], Err(reply_denied(denied)));
                }
                share.replies.push(ReplyMark { id: reply.id.clone(), started_at: reply.started_at, submitted_at: None });
                share.upload_urls_given_until(now + Duration::seconds(url_secs as i64));
                Step::changed(vec![], Ok(share.clone()))
            })
            .await;
        let share = match counted {
            Ok(share) => share,
            Err(e) => {
                // Never counted, so nothing can submit it: it goes, whatever the reason.
                if let Err(e) = self.blobs.delete_prefix(&prefix).await {
                    tracing::error!(share_id = %id, reply_id = %reply.id, error = %e, "could not delete an uncounted reply");
                }
                return Err(e);
            }
        };
        let mut uploads = Vec::with_capacity(reply.files.len());
        for (index, f) in reply.files.iter().enumerate() {
            let sha256 = decode_sha256(&f.sha256)?;
            let UploadUrl { url, expires_in } =
                self.blobs.upload_url(&reply_upload_key(&share, &reply.id, index), f.size, &sha256, url_secs).await?;
            uploads.push(ReplyUpload {
                filename: f.filename.as_str().to_owned(),
                upload_url: url,
                upload_expires_in: expires_in,
                upload_headers: super::views::upload_headers(&sha256),
            });
        }
        tracing::info!(share_id = %share.id, reference = %share.reference, reply_id = %reply.id, files = uploads.len(), "reply started");
        Ok(ReplyStarted { id: reply.id.to_string(), files: uploads })
    }

    /// `POST /v1/public/shares/{id}/replies/{reply}/submit`: each upload checked (there, and
    /// of the type it was declared as by its first bytes) and moved where no upload URL points;
    /// what fails is deleted and named, the rest goes to the practice (event `reply_received`).
    /// Submitting again answers the same receipt.
    pub async fn submit_reply(&self, id: &ShareId, token: Option<&str>, reply_id: &str) -> Result<ReplyView> {
        let share = self.authorized_share(id, token).await?;
        let reply_id = ReplyId::parse(reply_id).ok_or(Error::NotFound)?;
        let mark = share.replies.iter().find(|m| m.id == reply_id).ok_or(Error::NotFound)?.clone();
        let mut reply = self.load_reply(&share, &reply_id).await?;
        if mark.submitted_at.is_some() {
            return Ok(ReplyView::new(&reply));
        }
        for (index, file) in reply.files.iter_mut().enumerate() {
            if file.status == FileStatus::Pending {
                file.status = self.check_reply_file(&share, &reply_id, index, file).await?;
            }
        }
        let accepted = reply.files.iter().filter(|f| f.status == FileStatus::Accepted).count();
        let refused = reply.files.len() - accepted;
        if accepted == 0 && reply.message.is_none() {
            self.save_reply(&share, &reply).await?; // a retry answers the same reasons
            self.forget_reply(id, &reply_id).await; // … unless the share closed meanwhile
            let names: Vec<&str> = reply.files.iter().map(|f| f.filename.as_str()).collect();
            return Err(Error::invalid(
                "files",
                format!("none of the files could be taken ({}): send PDF, JPEG or PNG files, uploaded whole", names.join(", ")),
            ));
        }
        reply.submitted_at = Some(self.now());
        self.save_reply(&share, &reply).await?;
        let submitted = self
            .mutate_from(Some(share), Load::Patient(id), |share, now| {
                if let Err(e) = still_open(share, now) {
                    return Step::unchanged(vec![], Err(e));
                }
                let Some(mark) = share.replies.iter_mut().find(|m| m.id == reply_id) else {
                    return Step::unchanged(vec![], Err(Error::NotFound));
                };
                if mark.submitted_at.is_some() {
                    return Step::unchanged(vec![], Ok(false)); // a submit alongside won
                }
                mark.submitted_at = Some(now);
                let event = Event::new(&share.id, EventKind::ReplyReceived, now)
                    .with_data(json!({ "reply_id": reply_id, "files": accepted, "refused": refused }));
                Step::changed(vec![event], Ok(true))
            })
            .await;
        match submitted {
            Ok(true) => {
                tracing::info!(share_id = %id, reply_id = %reply_id, files = accepted, refused, "reply received");
                Ok(ReplyView::new(&reply))
            }
            Ok(false) => {
                let share = self.open_share(id).await?;
                Ok(ReplyView::new(&self.load_reply(&share, &reply_id).await?))
            }
            Err(e) => {
                self.forget_reply(id, &reply_id).await;
                Err(e)
            }
        }
    }

    /// `GET /v1/shares/{id}/replies`: the submitted replies, oldest first. They die with the
    /// share's documents: `410` once it was revoked or expired.
    pub async fn list_replies(&self, practice: &Practice, id: &ShareId) -> Result<ReplyList> {
        let share = self.replies_share(practice, id).await?;
        let mut replies = Vec::new();
        for mark in share.replies.iter().filter(|m| m.submitted_at.is_some()) {
            replies.push(ReplyView::new(&self.load_reply(&share, &mark.id).await?));
        }
        Ok(ReplyList { replies })
    }

    /// `GET /v1/shares/{id}/replies/{reply}/files/{index}`: a short-lived URL for an accepted
    /// file, never past the link itself.
    pub async fn reply_file_url(&self, practice: &Practice, id: &ShareId, reply_id: &str, index: &str) -> Result<UrlView> {
        let share = self.replies_share(practice, id).await?;
        let reply_id = ReplyId::parse(reply_id).ok_or(Error::NotFound)?;
        let mark = share.replies.iter().find(|m| m.id == reply_id && m.submitted_at.is_some()).ok_or(Error::NotFound)?;
        let reply = self.load_reply(&share, &mark.id).await?;
        let index: usize = index.parse().map_err(|_| Error::NotFound)?;
        let file = reply.files.get(index).filter(|f| f.status == FileStatus::Accepted).ok_or(Error::NotFound)?;
        let url = self
            .blobs
            .download_url(
                &reply_file_key(&share, &reply_id, index),
                Disposition { filename: file.filename.as_str(), content_type: file.content_type.as_str() },
                self.url_lifetime(&share),
            )
            .await?;
        Ok(UrlView { url, expires_in: self.url_lifetime(&share) })
    }

    /// The practice's share while its replies are kept.
    async fn replies_share(&self, practice: &Practice, id: &ShareId) -> Result<Share> {
        let share = self.practice_share(practice, id).await?;
        match share.access(self.now()) {
            crate::domain::Access::Revoked => Err(Error::Revoked),
            crate::domain::Access::Expired => Err(Error::Expired),
            _ => Ok(share),
        }
    }

    /// A file's fate: accepted when its upload is whole and of its type (then moved to where
    /// no upload URL points), else refused and deleted. A file a submit alongside accepted
    /// already is accepted.
    async fn check_reply_file(&self, share: &Share, reply: &ReplyId, index: usize, file: &ReplyFile) -> Result<FileStatus> {
        let (upload, kept) = (reply_upload_key(share, reply, index), reply_file_key(share, reply, index));
        if self.blobs.size(&kept).await? == Some(file.size) {
            return Ok(FileStatus::Accepted);
        }
        // The upload URL took exactly the declared bytes or nothing: a size is a whole upload.
        let mut head = Vec::with_capacity(ReplyFileType::HEAD_BYTES);
        if self.blobs.size(&upload).await? == Some(file.size)
            && let Some(reader) = self.blobs.open(&upload).await?
        {
            reader
                .take(ReplyFileType::HEAD_BYTES as u64)
                .read_to_end(&mut head)
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
        }
        let reason = match head.is_empty() {
            true => NOT_UPLOADED,
            false if file.content_type.matches(&head) => {
                if self.blobs.rename(&upload, &kept).await? || self.blobs.size(&kept).await? == Some(file.size) {
                    return Ok(FileStatus::Accepted);
                }
                NOT_UPLOADED
            }
            false => WRONG_TYPE,
        };
        self.blobs.delete_prefix(&upload).await?;
        Ok(FileStatus::Refused { reason: reason.into() })
    }

    /// Deletes a reply whose count or submit failed, if its share is closed now (revoked,
    /// expired, gone): what was written for it may have come after the share's own cleanup.
    /// An open share keeps it, for the patient to submit again.
    async fn forget_reply(&self, id: &ShareId, reply: &ReplyId) {
        let share = match self.store.get_share(id).await {
            Ok(Some(share)) if share.access(self.now()) == Access::Open => return,
            Ok(Some(share)) => share,
            Ok(None) => return, // purged: its blobs went with it (the TTL cleanup, the lifecycle rule)
            Err(e) => {
                tracing::error!(share_id = %id, error = %e, "could not read a share to clean up a reply");
                return;
            }
        };
        if let Err(e) = self.blobs.delete_prefix(&reply_prefix(&share, reply)).await {
            tracing::error!(share_id = %id, reply_id = %reply, error = %e, "could not delete a reply of a closed share");
        }
    }

    async fn save_reply(&self, share: &Share, reply: &Reply) -> Result<()> {
        let json = serde_json::to_vec(reply).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(self.blobs.put(&reply_record_key(share, &reply.id), &json).await?)
    }

    async fn load_reply(&self, share: &Share, id: &ReplyId) -> Result<Reply> {
        let mut reader = self.blobs.open(&reply_record_key(share, id)).await?.ok_or(Error::NotFound)?;
        let mut json = Vec::new();
        reader.read_to_end(&mut json).await.map_err(|e| Error::Internal(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| Error::Internal(format!("reply {id}: {e}")))
    }
}

/// The start body, checked: the message (up to [`MAX_REPLY_MESSAGE_CHARS`]) and the files
/// (PDF, JPEG, PNG; [`MAX_REPLY_FILES`], each up to [`MAX_REPLY_FILE_BYTES`], together up to
/// [`MAX_REPLY_BYTES`]). A reply has a message or a file at least.
fn parse_reply(body: &[u8]) -> Result<(Option<String>, Vec<ReplyFile>)> {
    let input: StartIn = parse_json(body)?;
    let message = input.message.map(|m| m.trim().to_owned()).filter(|m| !m.is_empty());
    if let Some(m) = &message {
        if m.chars().count() > MAX_REPLY_MESSAGE_CHARS {
            return Err(Error::invalid("message", format!("message is longer than {MAX_REPLY_MESSAGE_CHARS} characters")));
        }
        // Direction overrides could make the practice read the text otherwise than it is.
        let hidden = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if m.chars().any(|c| (c.is_control() && c != '\n' && c != '\r' && c != '\t') || hidden(c)) {
            return Err(Error::invalid("message", "message must not contain control characters or text-direction overrides"));
        }
    }
    if input.files.len() > MAX_REPLY_FILES {
        return Err(Error::invalid("files", format!("a reply holds at most {MAX_REPLY_FILES} files")));
    }
    if message.is_none() && input.files.is_empty() {
        return Err(Error::invalid("message", "a reply needs a message or a file"));
    }
    let mut total = 0;
    let mut files = Vec::with_capacity(input.files.len());
    for (i, f) in input.files.into_iter().enumerate() {
        let at = |field: &str| format!("files[{i}].{field}");
        let filename = Filename::parse(&f.filename).map_err(|e| Error::invalid(at("filename"), e.0))?;
        let content_type = ReplyFileType::parse(&f.content_type)
            .ok_or_else(|| Error::invalid(at("content_type"), "a reply takes PDF, JPEG or PNG files"))?;
        if f.size == 0 || f.size > MAX_REPLY_FILE_BYTES {
            return Err(Error::invalid(at("size"), format!("a file has 1 to {MAX_REPLY_FILE_BYTES} bytes (20 MiB)")));
        }
        total += f.size;
        if total > MAX_REPLY_BYTES {
            return Err(Error::invalid("files", format!("a reply's files total at most {MAX_REPLY_BYTES} bytes (50 MiB)")));
        }
        let sha256 = f.sha256.trim().to_ascii_lowercase();
        decode_sha256(&sha256).map_err(|_| Error::invalid(at("sha256"), "sha256 must be 64 hex digits"))?;
        files.push(ReplyFile { filename, content_type, size: f.size, sha256, status: FileStatus::Pending });
    }
    Ok((message, files))
}

fn decode_sha256(hex_digits: &str) -> Result<[u8; 32]> {
    hex::decode(hex_digits)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Internal("a SHA-256 that is not one".into()))
}

fn reply_denied(denied: ReplyDenied) -> Error {
    match denied {
        ReplyDenied::TooMany { retry_after_secs } => {
            Error::RateLimited { retry_after_secs, message: "this share has taken as many replies as it takes in a day" }
        }
        ReplyDenied::Exhausted => Error::Forbidden("this share takes no more replies; contact the practice"),
    }
}
