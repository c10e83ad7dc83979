//! Read receipts: what happened to a share, in order, visible to its practice.

use super::{EventId, ShareId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    EmailSent,
    SmsSent,
    NotificationFailed,
    Opened,
    Verified,
    VerifyFailed,
    Locked,
    CodeRequested,
    DocumentDownloaded,
    ArchiveDownloaded,
    Resent,
    Revoked,
    Expired,
    ExpiredUnread,
    /// The email provider reported a bounce or complaint (AWS: SES via SNS).
    EmailBounced,
    /// The SMS provider reported that the code did not reach the phone (AWS: SNS delivery logs).
    SmsDeliveryFailed,
    /// The share holds as many events of the patient's own doing as it keeps
    /// (`Share::MAX_PATIENT_EVENTS`): later right answers and downloads are not recorded.
    EventsCapped,
    /// The archive of a share sent after upload is built: the patient is notified next.
    ArchiveReady,
    /// A document of a share being sent was not what its share declares (or was gone): the
    /// share waits for its upload again. `{"document_id", "reason"}`.
    UploadRejected,
    /// The patient sent a reply: `{"reply_id", "files", "refused"}` (counts, never content).
    ReplyReceived,
}

impl EventKind {
    pub const ALL: [EventKind; 21] = [
        EventKind::Created,
        EventKind::EmailSent,
        EventKind::SmsSent,
        EventKind::NotificationFailed,
        EventKind::Opened,
        EventKind::Verified,
        EventKind::VerifyFailed,
        EventKind::Locked,
        EventKind::CodeRequested,
        EventKind::DocumentDownloaded,
        EventKind::ArchiveDownloaded,
        EventKind::Resent,
        EventKind::Revoked,
        EventKind::Expired,
        EventKind::ExpiredUnread,
        EventKind::EmailBounced,
        EventKind::SmsDeliveryFailed,
        EventKind::EventsCapped,
        EventKind::ArchiveReady,
        EventKind::UploadRejected,
        EventKind::ReplyReceived,
    ];

    /// The name in the API, in webhooks and in the store (serde's spelling, tested below).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::EmailSent => "email_sent",
            EventKind::SmsSent => "sms_sent",
            EventKind::NotificationFailed => "notification_failed",
            EventKind::Opened => "opened",
            EventKind::Verified => "verified",
            EventKind::VerifyFailed => "verify_failed",
            EventKind::Locked => "locked",
            EventKind::CodeRequested => "code_requested",
            EventKind::DocumentDownloaded => "document_downloaded",
            EventKind::ArchiveDownloaded => "archive_downloaded",
            EventKind::Resent => "resent",
            EventKind::Revoked => "revoked",
            EventKind::Expired => "expired",
            EventKind::ExpiredUnread => "expired_unread",
            EventKind::EmailBounced => "email_bounced",
            EventKind::SmsDeliveryFailed => "sms_delivery_failed",
            EventKind::EventsCapped => "events_capped",
            EventKind::ArchiveReady => "archive_ready",
            EventKind::UploadRejected => "upload_rejected",
            EventKind::ReplyReceived => "reply_received",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub share_id: ShareId,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub created_at: DateTime<Utc>,
    /// Details that never include personal data or codes, e.g. `{"document_id": "doc_…"}`.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Event {
    pub fn new(share_id: &ShareId, kind: EventKind, at: DateTime<Utc>) -> Self {
        Self { id: EventId::generate(), share_id: share_id.clone(), kind, created_at: at, data: serde_json::Value::Null }
    }

    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_is_the_serialised_name() {
        for kind in EventKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(kind.as_str()));
        }
    }
}
