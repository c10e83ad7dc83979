//! SMS through SNS, email through SES v2. Errors name the provider's error code, never the
//! recipient.

use crate::ports::{Mail, MailSender, PortError, PortResult, Sent, Sms, SmsSender};
use async_trait::async_trait;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_sdk_sns::types::MessageAttributeValue;
use base64::Engine;

pub struct SnsSms {
    clients: super::Clients,
    /// For a practice without a sender ID of its own (the template's `SmsSenderId`); with
    /// neither, the account's default sender ID, if any, is what patients see.
    default_sender: Option<String>,
}

impl SnsSms {
    pub fn new(clients: super::Clients, default_sender: Option<String>) -> Self {
        Self { clients, default_sender }
    }

    /// The sender ID an SMS goes out with: the practice's, else the deployment's default.
    fn sender_of<'a>(&'a self, sms: &'a Sms) -> Option<&'a str> {
        sms.sender.as_deref().or(self.default_sender.as_deref())
    }
}

fn string_attribute(value: &str) -> PortResult<MessageAttributeValue> {
    MessageAttributeValue::builder().data_type("String").string_value(value).build().map_err(PortError::other)
}

/// The provider's error code and message kind, without the request (which holds the number).
fn provider_error<E>(service: &str, e: &aws_sdk_sns::error::SdkError<E>) -> PortError
where
    E: aws_sdk_sns::error::ProvideErrorMetadata,
{
    let code = e.as_service_error().and_then(|se| se.code()).unwrap_or("transport");
    PortError::Other(format!("{service}: {code}"))
}

#[async_trait]
impl SmsSender for SnsSms {
    async fn send_sms(&self, sms: &Sms) -> PortResult<Sent> {
        let mut request = self
            .clients
            .sns()
            .publish()
            .phone_number(&sms.to)
            .message(&sms.body)
            // Transactional: delivered for reliability rather than cost, as codes must be.
            .message_attributes("AWS.SNS.SMS.SMSType", string_attribute("Transactional")?);
        if let Some(sender) = self.sender_of(sms) {
            request = request.message_attributes("AWS.SNS.SMS.SenderID", string_attribute(sender)?);
        }
        let out = request.send().await.map_err(|e| provider_error("sns", &e))?;
        Ok(Sent { message_id: out.message_id })
    }
}

pub struct SesMail {
    clients: super::Clients,
    /// Its event destination reports bounces and complaints (to SNS, then `feedback`).
    configuration_set: Option<String>,
}

impl SesMail {
    pub fn new(clients: super::Clients, configuration_set: Option<String>) -> Self {
        Self { clients, configuration_set }
    }
}

/// `"Praxis Müller" <praxis@example.ch>`, with the name as an RFC 2047 encoded word when it
/// is not plain ASCII (SES refuses raw UTF-8 in a display name).
pub fn mailbox(name: &str, address: &str) -> String {
    let plain = name.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !name.contains(['"', '\\']);
    if plain {
        format!("\"{name}\" <{address}>")
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(name.as_bytes());
        format!("=?UTF-8?B?{encoded}?= <{address}>")
    }
}

fn utf8(text: &str) -> PortResult<Content> {
    Content::builder().data(text).charset("UTF-8").build().map_err(PortError::other)
}

#[async_trait]
impl MailSender for SesMail {
    async fn send_mail(&self, mail: &Mail) -> PortResult<Sent> {
        let message = Message::builder()
            .subject(utf8(&mail.subject)?)
            .body(Body::builder().text(utf8(&mail.text)?).html(utf8(&mail.html)?).build())
            .build();
        let out = self
            .clients
            .ses()
            .send_email()
            .from_email_address(mailbox(&mail.from_name, &mail.from_address))
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .set_reply_to_addresses(mail.reply_to.clone().map(|r| vec![r]))
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| provider_error("ses", &e))?;
        Ok(Sent { message_id: out.message_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_quoted_or_encoded() {
        assert_eq!(mailbox("Praxis Muster", "p@example.ch"), "\"Praxis Muster\" <p@example.ch>");
        assert_eq!(mailbox("Praxis Müller", "p@example.ch"), "=?UTF-8?B?UHJheGlzIE3DvGxsZXI=?= <p@example.ch>");
    }
}
