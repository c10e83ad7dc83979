//! `POST /v1/shares`'s body, whatever the bytes: `parse_create_body` is the exact code
//! `Service::create_share` runs before it touches a store or a blob.
//!
//! It must never panic, must refuse only with `invalid_request` (never `internal`), and what
//! it accepts (with the embedded backend's 25 MiB inline limit) must hold the promises the
//! domain types and `validate` make.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealpost::domain::{AuthMethod, ContentType, Filename, Language, Policy, message_contains_code};
use sealpost::error::Error;
use sealpost::service::{
    Content, KnownSecret, MAX_DOCUMENTS, MAX_INLINE_BYTES, MAX_MESSAGE_CHARS, MAX_UPLOAD_BYTES, NewShare, parse_create_body,
};

fuzz_target!(|body: &[u8]| {
    let policy = Policy::default();
    match parse_create_body(body, Language::De, &policy, MAX_INLINE_BYTES) {
        Ok(new) => check(&new, &policy),
        Err(Error::InvalidRequest { .. }) => {}
        Err(other) => panic!("a create body was refused with a server error: {other:?}"),
    }
});

fn check(new: &NewShare, policy: &Policy) {
    assert!((1..=MAX_DOCUMENTS).contains(&new.documents.len()));
    assert!((1..=policy.max_link_days).contains(&new.expires_in_days));

    if let Some(m) = &new.message {
        assert!(!m.is_empty() && m.trim() == m);
        assert!(m.chars().count() <= MAX_MESSAGE_CHARS);
        assert!(!m.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')));
        assert!(!message_contains_code(m), "a message with a code shape got through");
    }

    let r = &new.recipient;
    assert!(r.email.as_str().len() <= 254 && r.email.as_str().contains('@'));
    if let Some(p) = &r.phone {
        let p = p.as_str();
        assert!(p.starts_with('+') && p.len() > 1 && p[1..].bytes().all(|b| b.is_ascii_digit()), "{p:?}");
    }
    if let Some(n) = &r.name {
        let n = n.as_str();
        assert!(!n.is_empty() && n.trim() == n && n.chars().count() <= 200 && !n.chars().any(char::is_control));
    }
    match (new.auth, &new.known_secret) {
        (AuthMethod::Sms, None) => assert!(r.phone.is_some(), "an SMS share without a phone"),
        (AuthMethod::Manual, None) => {}
        (AuthMethod::DateOfBirth, Some(KnownSecret::DateOfBirth(d))) => {
            let c = d.canonical();
            assert!(c.len() == 10 && c.as_bytes()[4] == b'-' && c.as_bytes()[7] == b'-', "{c:?}");
        }
        (AuthMethod::InsuranceNumber, Some(KnownSecret::InsuranceNumber(n))) => {
            let c = n.canonical();
            assert!((4..=32).contains(&c.len()));
            assert!(c.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()), "{c:?}");
        }
        (auth, secret) => panic!("{auth:?} with {secret:?}"),
    }

    let mut inline_total = 0u64;
    for doc in &new.documents {
        let name = doc.filename.as_str();
        assert!(!name.is_empty() && name.chars().count() <= 150, "{name:?}");
        assert!(!name.contains(['/', '\\']) && !name.chars().any(char::is_control), "{name:?}");
        assert!(!name.starts_with(|c: char| c == '.' || c.is_whitespace()), "{name:?}");
        assert!(!name.ends_with(char::is_whitespace), "{name:?}");
        // A name that was made safe stays as it is when read again.
        assert_eq!(Filename::parse(name).as_ref().map(Filename::as_str), Ok(name));

        // `*ext/plain` is a legal token pair; only a bare `*` (a wildcard) is refused.
        let ct = doc.content_type.as_str();
        let (ty, sub) = ct.split_once('/').unwrap_or_else(|| panic!("{ct:?}"));
        assert!(!ty.is_empty() && !sub.is_empty() && ty != "*" && sub != "*", "{ct:?}");
        assert!(!ct.contains([';', ' ']) && !ct.bytes().any(|b| b.is_ascii_uppercase()), "{ct:?}");
        assert_eq!(ContentType::parse(ct).as_ref().map(ContentType::as_str), Ok(ct));

        match &doc.content {
            Content::Inline(bytes) => {
                assert!(!bytes.is_empty());
                inline_total += bytes.len() as u64;
            }
            Content::Upload { size, sha256 } => {
                assert!((1..=MAX_UPLOAD_BYTES).contains(size));
                assert!(sha256.len() == 64 && sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            }
        }
    }
    assert!(inline_total <= MAX_INLINE_BYTES);
}
