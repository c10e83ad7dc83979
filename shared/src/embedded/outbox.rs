//! The outbox: the embedded backend's SMS and email provider. Every message is printed to the
//! console (this is a developer's machine; that is the point) and appended as one JSON line to
//! `<data-dir>/outbox.jsonl`, which `GET /_outbox` lists. It is never a log: logs stay free of
//! codes and addresses.

use crate::ports::{Clock, Mail, MailSender, PortError, PortResult, Sent, Sms, SmsSender};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub channel: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
    pub share_id: String,
    pub sent_at: chrono::DateTime<chrono::Utc>,
    /// The id a provider would give the message (for bounce reports), `out_…`.
    #[serde(default)]
    pub message_id: String,
}

pub struct Outbox {
    path: PathBuf,
    print: bool,
    clock: Arc<dyn Clock>,
    lock: Mutex<()>,
}

impl Outbox {
    pub fn new(path: PathBuf, print: bool, clock: Arc<dyn Clock>) -> Self {
        Self { path, print, clock, lock: Mutex::new(()) }
    }

    async fn append(&self, message: OutboxMessage) -> PortResult<Sent> {
        let mut line = serde_json::to_string(&message).map_err(PortError::other)?;
        line.push('\n');
        let _guard = self.lock.lock().await;
        let mut options = tokio::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        options.mode(0o600); // codes and addresses: the owner's only, whatever the umask
        let mut file = options.open(&self.path).await.map_err(PortError::other)?;
        file.write_all(line.as_bytes()).await.map_err(PortError::other)?;
        file.flush().await.map_err(PortError::other)?;
        if self.print {
            let subject = message.subject.as_deref().map(|s| format!("\nSubject: {s}")).unwrap_or_default();
            println!(
                "\n──── outbox: {} to {} (share {}) ────{subject}\n{}\n────",
                message.channel, message.to, message.share_id, message.body
            );
        }
        Ok(Sent { message_id: Some(message.message_id) })
    }

    /// Every message so far, oldest first.
    pub async fn messages(&self) -> PortResult<Vec<OutboxMessage>> {
        let _guard = self.lock.lock().await;
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(PortError::other(e)),
        };
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).map_err(PortError::other)).collect()
    }
}

#[async_trait]
impl SmsSender for Outbox {
    async fn send_sms(&self, sms: &Sms) -> PortResult<Sent> {
        self.append(OutboxMessage {
            channel: "sms".into(),
            to: sms.to.clone(),
            subject: None,
            body: sms.body.clone(),
            share_id: sms.share_id.to_string(),
            sent_at: self.clock.now(),
            message_id: format!("out_{}", crate::domain::random_token::<12>()),
        })
        .await
    }
}

#[async_trait]
impl MailSender for Outbox {
    async fn send_mail(&self, mail: &Mail) -> PortResult<Sent> {
        self.append(OutboxMessage {
            channel: "email".into(),
            to: mail.to.clone(),
            subject: Some(mail.subject.clone()),
            body: mail.text.clone(),
            share_id: mail.share_id.to_string(),
            sent_at: self.clock.now(),
            message_id: format!("out_{}", crate::domain::random_token::<12>()),
        })
        .await
    }
}
