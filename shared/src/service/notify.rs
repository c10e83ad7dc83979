//! Telling the patient: the email with the link, and the SMS with the code. A failed channel is
//! recorded as `notification_failed` and reported in the answer; it never loses the share.

use super::Service;
use crate::domain::{AuthMethod, Code, Email, Event, EventKind, Phone, Practice, Share};
use crate::messages::{CodeSms, ShareNotice, render_email, render_sms};
use crate::ports::{Mail, Sent, Sms};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone, Serialize)]
pub struct ChannelResult {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

impl ChannelResult {
    fn sent() -> Self {
        Self { status: "sent", error: None }
    }

    fn failed(error: &'static str) -> Self {
        Self { status: "failed", error: Some(error) }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Notifications {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<ChannelResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<ChannelResult>,
}

/// Why an SMS was not sent (shown to the practice).
pub const SMS_CAP_REACHED: &str = "sms_cap_reached";
pub const PROVIDER_ERROR: &str = "provider_error";

impl Service {
    /// Sends the email, and the SMS when the share's code goes by SMS; records the outcome.
    pub(super) async fn notify(&self, practice: &Practice, share: &Share, code: Option<&Code>) -> Notifications {
        let email = self.send_share_email(practice, share).await;
        let sms = match (share.auth, code) {
            (AuthMethod::Sms, Some(code)) => Some(self.send_code_sms(practice, share, code, false).await),
            _ => None,
        };
        Notifications { email: Some(email), sms }
    }

    pub(super) async fn send_share_email(&self, practice: &Practice, share: &Share) -> ChannelResult {
        let result = self.mail.send_mail(&self.share_mail(practice, share)).await;
        self.record_delivery(share, "email", EventKind::EmailSent, result).await
    }

    /// The email about `share`: what [`Self::send_share_email`] sends and a preview shows.
    pub(super) fn share_mail(&self, practice: &Practice, share: &Share) -> Mail {
        let link = self.link(&share.id);
        let text = render_email(&ShareNotice {
            language: share.recipient.language,
            practice: &practice.name,
            reference: share.reference.as_str(),
            link: &link,
            expires_at: share.effective_expires_at(),
            auth: share.auth,
            message: share.message.as_deref(),
        });
        Mail {
            from_name: practice.name.clone(),
            from_address: practice.sender_email.deliverable(),
            reply_to: practice.reply_to.as_ref().map(Email::deliverable),
            to: share.recipient.email.deliverable(),
            subject: text.subject,
            text: text.text,
            html: text.html,
            share_id: share.id.clone(),
        }
    }

    /// The SMS that carries `code` (its digits, or a preview's placeholder) to `phone`: what
    /// [`Self::send_code_sms`] sends and a preview shows.
    pub(super) fn code_sms(&self, practice: &Practice, share: &Share, phone: &Phone, code: &str) -> Sms {
        let body = render_sms(&CodeSms {
            language: share.recipient.language,
            practice: &practice.name,
            reference: share.reference.as_str(),
            code,
            host: self.settings.page_host(),
        });
        Sms { to: phone.as_str().to_owned(), sender: practice.sms_sender.clone(), body, share_id: share.id.clone() }
    }

    /// Sends a code by SMS to the number the practice gave, within the practice's daily cap.
    /// `self_service` SMS are refused by the caller before a code is made when the cap is
    /// reached; here the cap is checked again because it is the one place that counts.
    pub(super) async fn send_code_sms(
        &self,
        practice: &Practice,
        share: &Share,
        code: &Code,
        already_counted: bool,
    ) -> ChannelResult {
        let Some(phone) = &share.recipient.phone else {
            return ChannelResult::failed(PROVIDER_ERROR);
        };
        if !already_counted {
            match self.take_sms_budget(practice).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::warn!(share_id = %share.id, reference = %share.reference, "daily SMS cap reached");
                    return self.record_failure(share, "sms", SMS_CAP_REACHED).await;
                }
                Err(e) => {
                    tracing::error!(share_id = %share.id, error = %e, "SMS counter failed");
                    return self.record_failure(share, "sms", PROVIDER_ERROR).await;
                }
            }
        }
        let result = self.sms.send_sms(&self.code_sms(practice, share, phone, code.digits())).await;
        self.record_delivery(share, "sms", EventKind::SmsSent, result).await
    }

    /// Counts one SMS against today's cap (UTC day): the day counted, `None` at the cap.
    pub(super) async fn take_sms_budget(&self, practice: &Practice) -> crate::Result<Option<String>> {
        let day = self.now().format("%Y-%m-%d").to_string();
        let taken = self.store.take_sms(&practice.id, &day, practice.policy.daily_sms_cap).await?;
        Ok(taken.then_some(day))
    }

    /// Gives back an SMS counted on `day` that will not be sent.
    pub(super) async fn give_back_sms(&self, practice: &Practice, day: &str) {
        if let Err(e) = self.store.give_back_sms(&practice.id, day).await {
            tracing::error!(practice_id = %practice.id, error = %e, "could not give back an unsent SMS");
        }
    }

    async fn record_delivery(
        &self,
        share: &Share,
        channel: &'static str,
        kind: EventKind,
        result: crate::ports::PortResult<Sent>,
    ) -> ChannelResult {
        match result {
            Ok(sent) => {
                tracing::info!(share_id = %share.id, reference = %share.reference, channel, "notification sent");
                if let Some(message_id) = sent.message_id {
                    // Kept as long as the share's record, for the provider's later reports.
                    if let Err(e) = self.store.record_provider_message(&message_id, &share.id, share.purge_at).await {
                        tracing::error!(share_id = %share.id, error = %e, "could not record the provider's message id");
                    }
                }
                let event = Event::new(&share.id, kind, self.now()).with_data(json!({ "channel": channel }));
                self.append_quietly(share, event).await;
                ChannelResult::sent()
            }
            Err(e) => {
                // The provider's message can hold the address; log only that it failed.
                tracing::error!(share_id = %share.id, reference = %share.reference, channel, error_kind = %error_kind(&e), "notification failed");
                self.record_failure(share, channel, PROVIDER_ERROR).await
            }
        }
    }

    async fn record_failure(&self, share: &Share, channel: &'static str, error: &'static str) -> ChannelResult {
        let event = Event::new(&share.id, EventKind::NotificationFailed, self.now())
            .with_data(json!({ "channel": channel, "error": error }));
        self.append_quietly(share, event).await;
        ChannelResult::failed(error)
    }

    /// A provider's later report on a message it took (an SES bounce or complaint, an SNS SMS
    /// delivery failure): recorded on the message's share as `email_bounced` or
    /// `sms_delivery_failed`. `false` when the message is not one of ours (or long gone).
    pub async fn record_provider_report(&self, message_id: &str, report: ProviderReport) -> crate::Result<bool> {
        let Some(share_id) = self.store.find_provider_message(message_id).await? else {
            tracing::info!(kind = ?report.kind, "provider report for an unknown message");
            return Ok(false);
        };
        let mut event = Event::new(&share_id, report.kind, self.now()).with_data(report.data);
        // Providers report at least once: the same report makes the same event, recorded once.
        event.id = crate::domain::EventId::derived(&format!("{message_id}/{}", report.report_id));
        if self.store.list_events(&share_id).await?.iter().any(|e| e.id == event.id) {
            return Ok(true);
        }
        self.store.append_events(&[event]).await?;
        tracing::info!(share_id = %share_id, kind = ?report.kind, "provider report recorded");
        Ok(true)
    }

    /// Records an event whose loss must not fail the request that caused it.
    pub(super) async fn append_quietly(&self, share: &Share, event: Event) {
        if let Err(e) = self.store.append_events(&[event]).await {
            tracing::error!(share_id = %share.id, error = %e, "could not record event");
        }
    }
}

/// What a provider reported, and the details to keep (never an address or a number).
#[derive(Debug, Clone)]
pub struct ProviderReport {
    pub kind: EventKind,
    pub data: serde_json::Value,
    /// The provider's id of this report (SES `feedbackId`, a log event's id): the same on a
    /// redelivery.
    pub report_id: String,
}

fn error_kind(e: &crate::ports::PortError) -> &'static str {
    match e {
        crate::ports::PortError::Conflict => "conflict",
        crate::ports::PortError::Other(_) => "provider",
    }
}
