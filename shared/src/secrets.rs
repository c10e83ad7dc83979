//! The server secret (pepper) and the keys derived from it.
//!
//! Codes, dates of birth and insurance numbers are stored only as HMAC-SHA-256 under a key that
//! is not in the database: a stolen database alone cannot be brute-forced (a million codes are
//! nothing for a plain hash). Each purpose gets its own key, derived from the pepper, so a
//! signature made for one purpose is worthless for another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::hmac;

/// The keys derived from one pepper.
#[derive(Clone)]
pub struct Keys {
    secret: hmac::Key,
    token: hmac::Key,
    url: hmac::Key,
    webhook: hmac::Key,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

/// Reads the pepper where it is kept (SSM on AWS).
pub type PepperLoader = Box<dyn Fn() -> futures_util::future::BoxFuture<'static, anyhow::Result<Vec<u8>>> + Send + Sync>;

/// The keys, derived when a request first needs them. On AWS the pepper is then read from SSM
/// by the first request that hashes a secret, checks a token or signs a webhook, and by no
/// other: a function that never does (get, list and revoke a share, the page's public info, the
/// sweep, the webhook fan-out, feedback) makes no SSM round trip at a cold start. A failed read
/// fails that request and the next one tries again. Clones share the keys.
#[derive(Clone)]
pub struct LazyKeys(std::sync::Arc<KeysCell>);

struct KeysCell {
    keys: tokio::sync::OnceCell<Keys>,
    load: Option<PepperLoader>,
}

impl LazyKeys {
    /// Keys known at start (the embedded data dir's pepper, a pepper given inline).
    pub fn ready(keys: Keys) -> Self {
        Self::new(tokio::sync::OnceCell::new_with(Some(keys)), None)
    }

    /// Keys from a pepper `load` reads when first needed.
    pub fn load_with(load: PepperLoader) -> Self {
        Self::new(tokio::sync::OnceCell::new(), Some(load))
    }

    /// No keys: for a Lambda function whose routes need none (`crate::ports::Uses::KEYS`),
    /// whose role may not read the pepper. Every use fails.
    pub fn none() -> Self {
        Self::new(tokio::sync::OnceCell::new(), None)
    }

    fn new(keys: tokio::sync::OnceCell<Keys>, load: Option<PepperLoader>) -> Self {
        Self(std::sync::Arc::new(KeysCell { keys, load }))
    }

    pub async fn get(&self) -> anyhow::Result<&Keys> {
        self.0
            .keys
            .get_or_try_init(|| async {
                let load = self.0.load.as_ref().ok_or_else(|| anyhow::anyhow!("this function has no pepper"))?;
                let pepper = load().await?;
                anyhow::ensure!(pepper.len() >= MIN_PEPPER_BYTES, "the pepper must hold at least {MIN_PEPPER_BYTES} bytes");
                Ok(Keys::from_pepper(&pepper))
            })
            .await
    }
}

/// A pepper must hold at least this many bytes.
pub const MIN_PEPPER_BYTES: usize = 32;

impl Keys {
    /// Derives the purpose keys from the pepper. Panics if the pepper is shorter than 32 bytes:
    /// that is a start-up error, not a request error.
    pub fn from_pepper(pepper: &[u8]) -> Self {
        assert!(pepper.len() >= MIN_PEPPER_BYTES, "the pepper must hold at least 32 bytes");
        let root = hmac::Key::new(hmac::HMAC_SHA256, pepper);
        let derive = |label: &[u8]| hmac::Key::new(hmac::HMAC_SHA256, hmac::sign(&root, label).as_ref());
        Self {
            secret: derive(b"sealpost/v1/secret-hash"),
            token: derive(b"sealpost/v1/access-token"),
            url: derive(b"sealpost/v1/signed-url"),
            webhook: derive(b"sealpost/v1/webhook-secret"),
        }
    }

    fn secret_message(share_id: &str, canonical: &str) -> Vec<u8> {
        // Binding the share id means a hash copied to another share is useless.
        format!("{share_id}\n{canonical}").into_bytes()
    }

    /// The stored form of a secret (code, date of birth, insurance number), lower-case hex.
    pub fn hash_secret(&self, share_id: &str, canonical: &str) -> String {
        hex::encode(hmac::sign(&self.secret, &Self::secret_message(share_id, canonical)))
    }

    /// Constant-time check of an answer against a stored hash (`ring::hmac::verify`).
    pub fn secret_matches(&self, share_id: &str, canonical: &str, stored_hex: &str) -> bool {
        let Ok(tag) = hex::decode(stored_hex) else { return false };
        hmac::verify(&self.secret, &Self::secret_message(share_id, canonical), &tag).is_ok()
    }

    /// A patient's access token after a right answer: `<payload>.<mac>`, both base64url, where
    /// the payload is `share_id.generation.expires_unix`. Stateless, so verifying it costs no
    /// read; the share is read anyway, which is where revocation and expiry are checked.
    pub fn issue_token(&self, share_id: &str, generation: u32, expires_at: DateTime<Utc>) -> String {
        let payload = format!("{share_id}.{generation}.{}", expires_at.timestamp());
        let mac = hmac::sign(&self.token, payload.as_bytes());
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(mac))
    }

    /// `Some(generation)` if the token is ours, for this share, and unexpired.
    pub fn check_token(&self, token: &str, share_id: &str, now: DateTime<Utc>) -> Option<u32> {
        let (payload_b64, mac_b64) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac_b64).ok()?;
        hmac::verify(&self.token, &payload, &mac).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let mut parts = payload.split('.');
        let (id, generation, exp) = (parts.next()?, parts.next()?, parts.next()?);
        let exp: i64 = exp.parse().ok()?;
        (id == share_id && now.timestamp() < exp && parts.next().is_none()).then_some(())?;
        generation.parse().ok()
    }

    /// A webhook endpoint's signing secret (`whsec_…`), derived from the endpoint's id and salt
    /// rather than stored: the database alone cannot forge deliveries.
    pub fn webhook_secret(&self, webhook_id: &str, salt: &str) -> String {
        let mac = hmac::sign(&self.webhook, format!("{webhook_id}\n{salt}").as_bytes());
        format!("whsec_{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// Signs a local URL's canonical string (embedded blob URLs), hex.
    pub fn sign_url(&self, canonical: &str) -> String {
        hex::encode(hmac::sign(&self.url, canonical.as_bytes()))
    }

    /// Constant-time check of a local URL's signature. Only the lowercase hex that
    /// [`Keys::sign_url`] writes is accepted, so a URL has exactly one valid spelling.
    pub fn url_signature_matches(&self, canonical: &str, signature_hex: &str) -> bool {
        if signature_hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return false;
        }
        let Ok(tag) = hex::decode(signature_hex) else { return false };
        hmac::verify(&self.url, canonical.as_bytes(), &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn keys() -> Keys {
        Keys::from_pepper(&[7u8; 32])
    }

    /// A loader that fails its first `failures` calls, then gives `pepper`; counts its calls.
    fn loader(failures: usize, pepper: Vec<u8>) -> (LazyKeys, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let lazy = LazyKeys::load_with(Box::new(move || {
            let call = counted.fetch_add(1, Ordering::SeqCst);
            let pepper = pepper.clone();
            Box::pin(async move {
                tokio::task::yield_now().await;
                if call < failures { anyhow::bail!("unreachable") } else { Ok(pepper) }
            })
        }));
        (lazy, calls)
    }

    #[tokio::test]
    async fn lazy_keys_read_the_pepper_once_when_first_needed() {
        use std::sync::atomic::Ordering;
        let (lazy, calls) = loader(0, vec![7u8; 32]);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing read before a key is needed");
        let (a, b) = tokio::join!(lazy.get(), lazy.get());
        let sig = keys().sign_url("x");
        assert_eq!((a.unwrap().sign_url("x"), b.unwrap().sign_url("x")), (sig.clone(), sig));
        lazy.get().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "read once, however many ask");
    }

    #[tokio::test]
    async fn a_failed_read_is_tried_again_and_a_short_pepper_refused() {
        use std::sync::atomic::Ordering;
        let (lazy, calls) = loader(1, vec![7u8; 32]);
        assert!(lazy.get().await.is_err());
        assert!(lazy.get().await.is_ok(), "the next request reads again");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let (short, _) = loader(0, vec![7u8; 31]);
        assert!(short.get().await.unwrap_err().to_string().contains("at least 32 bytes"));
        assert_eq!(LazyKeys::ready(keys()).get().await.unwrap().sign_url("y"), keys().sign_url("y"));
    }

    #[test]
    fn secret_hashes_depend_on_pepper_and_share() {
        let k = keys();
        let h = k.hash_secret("share-a", "123456");
        assert!(k.secret_matches("share-a", "123456", &h));
        assert!(!k.secret_matches("share-b", "123456", &h));
        assert!(!k.secret_matches("share-a", "123457", &h));
        assert!(!Keys::from_pepper(&[8u8; 32]).secret_matches("share-a", "123456", &h));
        assert!(!k.secret_matches("share-a", "123456", "not hex"));
    }

    #[test]
    fn tokens_are_bound_to_share_and_time() {
        let k = keys();
        let now = Utc::now();
        let t = k.issue_token("share-a", 3, now + Duration::minutes(15));
        assert_eq!(k.check_token(&t, "share-a", now), Some(3));
        assert_eq!(k.check_token(&t, "share-b", now), None);
        assert_eq!(k.check_token(&t, "share-a", now + Duration::minutes(15)), None);
        let mut forged = t.clone();
        forged.replace_range(0..1, if t.starts_with('A') { "B" } else { "A" });
        assert_eq!(k.check_token(&forged, "share-a", now), None);
        assert_eq!(Keys::from_pepper(&[9u8; 32]).check_token(&t, "share-a", now), None);
    }

    #[test]
    fn a_url_signature_has_one_spelling() {
        let k = keys();
        let sig = k.sign_url("GET /_blobs/x 1700000000");
        assert!(k.url_signature_matches("GET /_blobs/x 1700000000", &sig));
        assert!(!k.url_signature_matches("GET /_blobs/y 1700000000", &sig));
        // Hex decoding alone would take the uppercase spelling of the same bytes.
        let upper = sig.to_ascii_uppercase();
        assert_ne!(upper, sig, "a signature with a letter in it, for this key");
        assert!(!k.url_signature_matches("GET /_blobs/x 1700000000", &upper));
        let mut last_upper = sig.clone();
        let i = sig.rfind(|c: char| c.is_ascii_alphabetic()).unwrap();
        last_upper.replace_range(i..=i, &sig[i..=i].to_ascii_uppercase());
        assert!(!k.url_signature_matches("GET /_blobs/x 1700000000", &last_upper));
    }
}
