//! `POST /v1/shares/preview`: the email and SMS a create would send, rendered by the code that
//! sends them ([`Service::share_mail`], [`Service::code_sms`]), for a share that is never made.
//! Nothing is stored, sent, counted or recorded.

use super::Service;
use super::input::parse_preview_body;
use crate::domain::{AuthMethod, NewShareParts, Practice, Reference, Share, ShareId};
use crate::error::Result;
use crate::messages::{SmsEncoding, sms_segments};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where the code will be: six characters of GSM-7, as the six digits are.
pub const CODE_PLACEHOLDER: &str = "XXXXXX";

#[derive(Debug, Serialize)]
pub struct PreviewView {
    pub auth_method: AuthMethod,
    /// When the link would expire, were the share created now.
    pub expires_at: DateTime<Utc>,
    pub email: EmailPreview,
    /// `null` when the share's code does not go by SMS.
    pub sms: Option<SmsPreview>,
    /// The stand-ins for what only a created share has, each as long as what it stands for.
    pub placeholders: Placeholders,
}

#[derive(Debug, Serialize)]
pub struct EmailPreview {
    pub to: String,
    pub from_name: String,
    pub from_address: String,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, Serialize)]
pub struct SmsPreview {
    pub to: String,
    pub sender: Option<String>,
    pub text: String,
    pub encoding: SmsEncoding,
    /// How many SMS the text is billed as.
    pub segments: usize,
}

#[derive(Debug, Serialize)]
pub struct Placeholders {
    pub link: String,
    pub reference: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

impl Service {
    /// What `POST /v1/shares` with this body would send the patient, or the error it would
    /// answer (documents may be left out).
    pub fn preview_share(&self, practice: &Practice, body: &[u8]) -> Result<PreviewView> {
        let new = parse_preview_body(body, practice.default_language, &practice.policy, self.settings.max_inline_bytes)?;
        self.check_share_size(&new)?;
        let mut share = Share::new(
            NewShareParts {
                id: ShareId::placeholder(),
                practice_id: practice.id.clone(),
                recipient: new.recipient,
                auth: new.auth,
                policy: practice.policy.for_share(new.self_service, new.allow_reply),
                message: new.message,
                documents: Vec::new(),
                link_days: new.expires_in_days,
            },
            self.now(),
        );
        share.reference = Reference::placeholder();
        let mail = self.share_mail(practice, &share);
        let sms = match (share.auth, &share.recipient.phone) {
            (AuthMethod::Sms, Some(phone)) => {
                let sms = self.code_sms(practice, &share, phone, CODE_PLACEHOLDER);
                let (encoding, segments) = sms_segments(&sms.body);
                Some(SmsPreview { to: sms.to, sender: sms.sender, text: sms.body, encoding, segments })
            }
            _ => None,
        };
        Ok(PreviewView {
            auth_method: share.auth,
            expires_at: share.effective_expires_at(),
            email: EmailPreview {
                to: mail.to,
                from_name: mail.from_name,
                from_address: mail.from_address,
                reply_to: mail.reply_to,
                subject: mail.subject,
                text: mail.text,
                html: mail.html,
            },
            placeholders: Placeholders {
                link: self.link(&share.id),
                reference: Reference::PLACEHOLDER,
                code: sms.as_ref().map(|_| CODE_PLACEHOLDER),
            },
            sms,
        })
    }
}
