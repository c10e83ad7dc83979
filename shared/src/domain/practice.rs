//! Practices (tenants) and their API keys.

use super::{Email, Language, Policy, PracticeId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Practice {
    pub id: PracticeId,
    /// Shown in email, SMS and on the page.
    pub name: String,
    /// The From address of emails (on AWS, an SES-verified identity).
    pub sender_email: Email,
    pub reply_to: Option<Email>,
    /// Alphanumeric SMS sender id (≤ 11 characters), where the country allows one.
    pub sms_sender: Option<String>,
    pub default_language: Language,
    pub policy: Policy,
    pub created_at: DateTime<Utc>,
}

impl Practice {
    /// A practice name is shown in a 160-character SMS: 1..=40 characters, no control characters.
    pub fn validate_name(name: &str) -> Result<String, super::Invalid> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 40 || name.chars().any(char::is_control) {
            return Err(super::Invalid::new("practice name must be 1 to 40 characters"));
        }
        Ok(name.to_owned())
    }

    /// An SMS sender id: 1..=11 ASCII letters, digits or spaces, at least one letter.
    pub fn validate_sms_sender(sender: &str) -> Result<String, super::Invalid> {
        let ok = !sender.is_empty()
            && sender.len() <= 11
            && sender.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
            && sender.chars().any(|c| c.is_ascii_alphabetic());
        if ok { Ok(sender.to_owned()) } else { Err(super::Invalid::new("sms sender must be 1 to 11 letters or digits")) }
    }
}

/// An API key as stored: only the SHA-256 of the key. The key itself (`sp_live_…`, 32 random
/// bytes) is shown once at creation. A fast hash is right here, unlike for passwords: the key
/// has 256 bits of entropy, so there is nothing to brute-force.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public handle for listing and revoking (`key_…`).
    pub id: String,
    pub practice_id: PracticeId,
    /// Lower-case hex SHA-256 of the full key.
    pub hash: String,
    /// The first characters of the key, to recognise it in a list (`sp_live_Ab3d…`).
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub const PREFIX: &'static str = "sp_live_";

    /// A fresh key: returns the secret to show once, and the record to store.
    pub fn generate(practice_id: PracticeId, now: DateTime<Utc>) -> (String, ApiKey) {
        let secret = format!("{}{}", Self::PREFIX, super::random_token::<32>());
        let record = Self::for_secret(&secret, practice_id, now);
        (secret, record)
    }

    /// The record for a key chosen by an operator (`sealpost serve --api-key K`).
    pub fn for_secret(secret: &str, practice_id: PracticeId, now: DateTime<Utc>) -> ApiKey {
        ApiKey {
            id: format!("key_{}", super::random_token::<9>()),
            practice_id,
            hash: Self::hash(secret),
            prefix: secret.chars().take(Self::PREFIX.len() + 4).collect(),
            created_at: now,
            revoked_at: None,
        }
    }

    pub fn hash(secret: &str) -> String {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()))
    }
}
