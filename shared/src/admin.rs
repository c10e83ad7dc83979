//! Managing practices and API keys, over any store: `sealpost tenant …` / `key …`, and the
//! default practice that `sealpost serve` makes for its key.

use crate::domain::{ApiKey, Email, Language, Policy, Practice, PracticeId};
use crate::ports::Store;
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};

/// The From address when an operator gives none. `.invalid` can never be delivered to, which is
/// right for the embedded outbox; on AWS an SES-verified sender must be set.
pub const DEFAULT_SENDER: &str = "no-reply@sealpost.invalid";

#[derive(Debug, Clone)]
pub struct NewPractice {
    pub name: String,
    pub sender_email: Email,
    pub reply_to: Option<Email>,
    pub sms_sender: Option<String>,
    pub language: Language,
    pub policy: Policy,
}

impl NewPractice {
    pub fn named(name: &str) -> anyhow::Result<Self> {
        Ok(Self {
            name: Practice::validate_name(name)?,
            sender_email: Email::parse(DEFAULT_SENDER)?,
            reply_to: None,
            sms_sender: None,
            language: Language::De,
            policy: Policy::default(),
        })
    }
}

/// Creates a practice and its first API key; returns the key, to be shown once.
pub async fn create_practice(store: &dyn Store, new: NewPractice, now: DateTime<Utc>) -> anyhow::Result<(Practice, String)> {
    new.policy.validate()?;
    let practice = Practice {
        id: PracticeId::generate(),
        name: new.name,
        sender_email: new.sender_email,
        reply_to: new.reply_to,
        sms_sender: new.sms_sender,
        default_language: new.language,
        policy: new.policy,
        created_at: now,
    };
    store.put_practice(&practice).await?;
    let (secret, _) = create_key(store, &practice.id, now).await?;
    Ok((practice, secret))
}

/// A new key for an existing practice; returns the secret (shown once) and the record.
pub async fn create_key(store: &dyn Store, practice: &PracticeId, now: DateTime<Utc>) -> anyhow::Result<(String, ApiKey)> {
    store.get_practice(practice).await?.with_context(|| format!("no practice {practice}"))?;
    let (secret, record) = ApiKey::generate(practice.clone(), now);
    store.put_api_key(&record).await?;
    Ok((secret, record))
}

pub async fn set_policy(store: &dyn Store, practice: &PracticeId, policy: Policy) -> anyhow::Result<()> {
    policy.validate()?;
    let mut p = store.get_practice(practice).await?.with_context(|| format!("no practice {practice}"))?;
    p.policy = policy;
    store.put_practice(&p).await?;
    Ok(())
}

/// Makes sure `api_key` opens a practice: if the key is unknown, it is attached to the oldest
/// practice, or to a new "Sealpost Demo" practice on an empty store.
pub async fn ensure_default_practice(store: &dyn Store, api_key: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    let body = api_key.strip_prefix(ApiKey::PREFIX).unwrap_or("");
    if body.len() < 32 || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        bail!("an API key is sp_live_ followed by at least 32 letters, digits, - or _");
    }
    if store.find_api_key(&ApiKey::hash(api_key)).await?.is_some() {
        return Ok(());
    }
    let practice = match store.list_practices().await?.into_iter().next() {
        Some(p) => p,
        None => {
            let new = NewPractice::named("Sealpost Demo")?;
            new.policy.validate()?;
            let practice = Practice {
                id: PracticeId::generate(),
                name: new.name,
                sender_email: new.sender_email,
                reply_to: None,
                sms_sender: None,
                default_language: new.language,
                policy: new.policy,
                created_at: now,
            };
            store.put_practice(&practice).await?;
            practice
        }
    };
    store.put_api_key(&ApiKey::for_secret(api_key, practice.id.clone(), now)).await?;
    Ok(())
}
