//! Identifiers. Every id that a stranger could guess at is drawn from the OS CSPRNG.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::fmt;

/// `N` bytes from the operating system's CSPRNG (`ring::rand::SystemRandom`).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // SystemRandom only fails when the OS has no entropy source at all; nothing can go on then.
    SystemRandom::new().fill(&mut buf).expect("the OS CSPRNG is available");
    buf
}

/// `N` random bytes as URL-safe base64 without padding.
pub fn random_token<const N: usize>() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<N>())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn is_url_safe(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

string_id!(
    /// A share's id: 128 random bits, URL-safe base64 (22 characters). It is the link's secret half.
    ShareId
);

impl ShareId {
    pub fn generate() -> Self {
        Self(random_token::<16>())
    }

    /// What a preview shows where a share's id will be (in its link): as long as one, and
    /// holding no other placeholder, so each can be replaced on its own.
    pub const PLACEHOLDER: &str = "SHARE-ID-PLACEHOLDER--";

    pub fn placeholder() -> Self {
        Self(Self::PLACEHOLDER.to_owned())
    }

    /// `None` for anything that cannot be a share id; callers answer that like an unknown id.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 22 && is_url_safe(s)).then(|| Self(s.to_owned()))
    }
}

string_id!(
    /// A document's id within its share (72 random bits, so ids do not reveal a count).
    DocumentId
);

impl DocumentId {
    pub fn generate() -> Self {
        Self(format!("doc_{}", random_token::<9>()))
    }

    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 16 && s.starts_with("doc_") && is_url_safe(&s[4..])).then(|| Self(s.to_owned()))
    }
}

string_id!(
    /// A practice (tenant).
    PracticeId
);

impl PracticeId {
    pub fn generate() -> Self {
        Self(format!("prc_{}", random_token::<12>()))
    }

    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 20 && s.starts_with("prc_") && is_url_safe(&s[4..])).then(|| Self(s.to_owned()))
    }
}

string_id!(
    /// An event's id, for receivers of webhooks to drop duplicates.
    EventId
);

impl EventId {
    pub fn generate() -> Self {
        Self(format!("evt_{}", random_token::<16>()))
    }

    /// The same id for the same `seed` (e.g. a provider's report id), so a report delivered
    /// twice is recognised as one event.
    pub fn derived(seed: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
        Self(format!("evt_{}", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])))
    }
}

string_id!(
    /// A practice's webhook endpoint (`wh_…`).
    WebhookId
);

impl WebhookId {
    pub fn generate() -> Self {
        Self(format!("wh_{}", random_token::<12>()))
    }

    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 19 && s.starts_with("wh_") && is_url_safe(&s[3..])).then(|| Self(s.to_owned()))
    }
}

string_id!(
    /// The short reference shown in email, SMS and on the page, e.g. `SP-7K4Q-9XMD`.
    ///
    /// It is for humans to match the three together and to quote on the phone, not a secret:
    /// Crockford's base32 alphabet (no I, L, O, U) so it survives being read aloud.
    Reference
);

impl Reference {
    /// What a preview shows where a share's reference will be: as long as one, so a preview's
    /// SMS takes the segments the real one will.
    pub const PLACEHOLDER: &str = "SP-XXXX-XXXX";

    pub fn placeholder() -> Self {
        Self(Self::PLACEHOLDER.to_owned())
    }

    pub fn generate() -> Self {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let bytes = random_bytes::<8>();
        let chars: String = bytes.iter().map(|b| ALPHABET[(b & 31) as usize] as char).collect();
        Self(format!("SP-{}-{}", &chars[..4], &chars[4..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_ids_are_128_bits_url_safe_and_distinct() {
        let a = ShareId::generate();
        let b = ShareId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22);
        assert!(ShareId::parse(a.as_str()).is_some());
        assert!(ShareId::parse("../../etc/passwd").is_none());
        assert!(ShareId::parse("").is_none());
    }

    #[test]
    fn ids_round_trip_through_parse() {
        let d = DocumentId::generate();
        assert_eq!(DocumentId::parse(d.as_str()), Some(d));
        let p = PracticeId::generate();
        assert_eq!(PracticeId::parse(p.as_str()), Some(p));
        let w = WebhookId::generate();
        assert_eq!(WebhookId::parse(w.as_str()), Some(w));
    }

    #[test]
    fn references_are_readable() {
        let r = Reference::generate();
        assert_eq!(r.as_str().len(), 12);
        assert!(r.as_str().starts_with("SP-"));
        assert!(!r.as_str()[3..].contains(['I', 'L', 'O', 'U']));
    }
}
