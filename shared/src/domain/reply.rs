//! What a patient sends back to the practice, when the share allows it: a message and a few
//! files (a signed consent, a photo, an insurance card). Replies are health data like the
//! documents: each is kept as blobs beside the share's documents (`shares/{id}/replies/…`),
//! so it dies with them (revoke, expiry, TTL cleanup, the bucket's lifecycle rule). The share
//! record holds only each reply's id and times ([`ReplyMark`]), which limit how many come.

use super::Filename;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub const MAX_REPLY_MESSAGE_CHARS: usize = 4000;
pub const MAX_REPLY_FILES: usize = 5;
pub const MAX_REPLY_FILE_BYTES: u64 = 20 * 1024 * 1024;
pub const MAX_REPLY_BYTES: u64 = 50 * 1024 * 1024;
/// Replies a share takes in any 24 hours, counted when started (a reply never submitted
/// counts too: its uploads were offered).
pub const MAX_REPLIES_PER_DAY: usize = 5;
/// Replies a share takes in its life: the record holds a mark for each.
pub const MAX_REPLIES: usize = 30;

/// A reply on the share's record: no content, only what limits and lists replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyMark {
    pub id: ReplyId,
    pub started_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
}

/// Why a share takes no reply now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyDenied {
    /// [`MAX_REPLIES_PER_DAY`] started in the last 24 hours: the first of them ages out then.
    TooMany { retry_after_secs: u64 },
    /// [`MAX_REPLIES`] in the share's life.
    Exhausted,
}

/// Whether `marks` leave room for one more reply at `now`.
pub fn check_reply_room(marks: &[ReplyMark], now: DateTime<Utc>) -> Result<(), ReplyDenied> {
    if marks.len() >= MAX_REPLIES {
        return Err(ReplyDenied::Exhausted);
    }
    let day_ago = now - Duration::hours(24);
    let recent: Vec<_> = marks.iter().filter(|m| m.started_at > day_ago).map(|m| m.started_at).collect();
    if recent.len() >= MAX_REPLIES_PER_DAY {
        let oldest = recent.iter().min().copied().unwrap_or(now);
        let retry_after_secs = (oldest + Duration::hours(24) - now).num_seconds().max(1) as u64;
        return Err(ReplyDenied::TooMany { retry_after_secs });
    }
    Ok(())
}

/// A reply's id (96 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplyId(String);

impl ReplyId {
    pub fn generate() -> Self {
        Self(format!("rpl_{}", super::random_token::<12>()))
    }

    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 20 && s.starts_with("rpl_") && s[4..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ReplyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of file a patient may send: what a practice opens safely, checked by content
/// (never HTML, SVG or anything else a browser would run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyFileType {
    #[serde(rename = "application/pdf")]
    Pdf,
    #[serde(rename = "image/jpeg")]
    Jpeg,
    #[serde(rename = "image/png")]
    Png,
}

impl ReplyFileType {
    pub fn parse(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase().as_str() {
            "application/pdf" => Some(Self::Pdf),
            "image/jpeg" | "image/jpg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }

    /// How many of a file's first bytes [`Self::matches`] reads.
    pub const HEAD_BYTES: usize = 8;

    /// Whether a file starting with `head` is of this type (its magic bytes).
    pub fn matches(self, head: &[u8]) -> bool {
        match self {
            Self::Pdf => head.starts_with(b"%PDF-"),
            Self::Jpeg => head.starts_with(&[0xFF, 0xD8, 0xFF]),
            Self::Png => head.starts_with(b"\x89PNG\r\n\x1a\n"),
        }
    }
}

/// What became of a file once the reply was submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileStatus {
    /// Offered an upload URL; not yet checked.
    Pending,
    Accepted,
    /// Deleted; `reason` is for the patient and the practice (`not_uploaded`, `wrong_type`).
    Refused {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyFile {
    pub filename: Filename,
    pub content_type: ReplyFileType,
    pub size: u64,
    /// Lower-case hex, as declared (the upload URL signs it).
    pub sha256: String,
    #[serde(flatten)]
    pub status: FileStatus,
}

/// A reply as kept (`shares/{id}/replies/{reply}/reply.json`), its files beside it by index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub id: ReplyId,
    pub started_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
    pub files: Vec<ReplyFile>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(ages_in_hours: &[i64], now: DateTime<Utc>) -> Vec<ReplyMark> {
        ages_in_hours
            .iter()
            .map(|h| ReplyMark { id: ReplyId::generate(), started_at: now - Duration::hours(*h), submitted_at: None })
            .collect()
    }

    #[test]
    fn five_a_day_thirty_in_all() {
        let now = Utc::now();
        assert_eq!(check_reply_room(&marks(&[1, 2, 3, 4], now), now), Ok(()));
        assert_eq!(
            check_reply_room(&marks(&[1, 2, 3, 4, 20], now), now),
            Err(ReplyDenied::TooMany { retry_after_secs: 4 * 3600 })
        );
        assert_eq!(check_reply_room(&marks(&[1, 2, 3, 4, 25], now), now), Ok(()), "a day old no longer counts");
        assert_eq!(check_reply_room(&marks(&[30; 30], now), now), Err(ReplyDenied::Exhausted));
    }

    #[test]
    fn types_are_known_by_their_first_bytes() {
        assert!(ReplyFileType::Pdf.matches(b"%PDF-1.7\n"));
        assert!(!ReplyFileType::Pdf.matches(b"<html><script>"));
        assert!(ReplyFileType::Jpeg.matches(&[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(ReplyFileType::Png.matches(b"\x89PNG\r\n\x1a\n\0"));
        assert!(!ReplyFileType::Png.matches(b"<svg xmlns"));
        assert_eq!(ReplyFileType::parse("image/JPEG; q=1"), Some(ReplyFileType::Jpeg));
        assert_eq!(ReplyFileType::parse("image/svg+xml"), None);
        assert_eq!(ReplyFileType::parse("text/html"), None);
    }

    #[test]
    fn a_kept_reply_reads_back() {
        let reply = Reply {
            id: ReplyId::generate(),
            started_at: Utc::now(),
            submitted_at: None,
            message: Some("Anbei die Einwilligung".into()),
            files: vec![ReplyFile {
                filename: Filename::parse("Einwilligung.pdf").unwrap(),
                content_type: ReplyFileType::Pdf,
                size: 10,
                sha256: "ab".repeat(32),
                status: FileStatus::Refused { reason: "wrong_type".into() },
            }],
        };
        let json = serde_json::to_value(&reply).unwrap();
        assert_eq!(json["files"][0]["status"], "refused");
        assert_eq!(json["files"][0]["content_type"], "application/pdf");
        assert_eq!(serde_json::from_value::<Reply>(json).unwrap(), reply);
        assert!(ReplyId::parse(reply.id.as_str()).is_some());
        assert!(ReplyId::parse("rpl_../../etc").is_none());
    }
}
