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
    let practice = put_new_practice(store, new, now).await?;
    let (secret, _) = create_key(store, &practice.id, now).await?;
    Ok((practice, secret))
}

async fn put_new_practice(store: &dyn Store, new: NewPractice, now: DateTime<Utc>) -> anyhow::Result<Practice> {
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
    Ok(practice)
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

/// Makes sure `api_key` opens a practice: an unknown key gets a new "Sealpost Demo" practice of
/// its own (SPEC: `serve --api-key K` makes a default practice for K). Never an existing one: a
/// key on the command line, or the one `serve` generates and prints, must not open the shares
/// of a practice made with `tenant create`.
pub async fn ensure_default_practice(store: &dyn Store, api_key: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    let body = api_key.strip_prefix(ApiKey::PREFIX).unwrap_or("");
    if body.len() < 32 || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        bail!("an API key is sp_live_ followed by at least 32 letters, digits, - or _");
    }
    if store.find_api_key(&ApiKey::hash(api_key)).await?.is_some() {
        return Ok(());
    }
    let practice = put_new_practice(store, NewPractice::named("Sealpost Demo")?, now).await?;
    store.put_api_key(&ApiKey::for_secret(api_key, practice.id.clone(), now)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PracticeStore as _;

    #[tokio::test]
    async fn a_default_key_gets_a_practice_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::embedded::open_store(dir.path()).unwrap();
        let now = chrono::Utc::now();
        let (tenant, _) = create_practice(&store, NewPractice::named("Praxis Muster").unwrap(), now).await.unwrap();
        let key = format!("{}{}", ApiKey::PREFIX, "k".repeat(40));
        for _ in 0..2 {
            ensure_default_practice(&store, &key, now).await.unwrap();
        }
        let practices = store.list_practices().await.unwrap();
        assert_eq!(practices.len(), 2, "one default practice, made once");
        let opened = store.find_api_key(&ApiKey::hash(&key)).await.unwrap().unwrap().practice_id;
        assert_ne!(opened, tenant.id, "the key must not open the tenant's shares");
        assert_eq!(practices.iter().find(|p| p.id == opened).unwrap().name, "Sealpost Demo");
    }
}
