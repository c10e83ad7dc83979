//! Webhooks: a practice's endpoint, the JSON each event is posted as, its signature, and when
//! a failed delivery is tried again.

use super::{Event, Invalid, PracticeId, Reference, WebhookId};
use chrono::{DateTime, Duration, Utc};
use ring::hmac;
use serde::{Deserialize, Serialize};

/// A practice may register this many endpoints.
pub const MAX_WEBHOOKS_PER_PRACTICE: usize = 5;
/// `POST /v1/webhooks/{id}/test` posts at most this many times a minute to one endpoint: it
/// answers with what the endpoint said, so it must not become a scanner or a request pump.
pub const WEBHOOK_TESTS_PER_MINUTE: u32 = 5;
/// A delivery attempt gives up after this long (SPEC: 10 s).
pub const DELIVERY_TIMEOUT_SECS: u64 = 10;
/// A delivery is retried for this long after its event happened (SPEC: 24 hours).
pub const RETRY_WINDOW_HOURS: i64 = 24;
/// The first retry waits about this long; each next one twice as long …
const FIRST_RETRY_SECS: i64 = 30;
/// … up to this.
const MAX_RETRY_SECS: i64 = 3600;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Webhook {
    pub id: WebhookId,
    pub practice_id: PracticeId,
    pub url: String,
    pub description: Option<String>,
    pub enabled: bool,
    /// The signing secret is derived from the pepper and this salt (never stored itself);
    /// rotating the secret draws a new salt.
    pub secret_salt: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which endpoint URLs a backend accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlRule {
    /// HTTPS to a public host only (AWS: a Lambda must not be pointed at its own runtime API
    /// or at private addresses).
    HttpsOnly,
    /// The same, and plain HTTP to a loopback address (the embedded backend, for a receiver on
    /// the developer's machine). Nothing else: a practice's key must not reach the host's
    /// network (its router, its cloud's metadata service) through `serve`.
    AllowLoopbackHttp,
}

/// Which addresses an accepted endpoint may be reached at, checked again on every address its
/// host name resolves to when posting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Public,
    /// Plain HTTP to this machine, where [`UrlRule::AllowLoopbackHttp`] allows it.
    Loopback,
}

impl Webhook {
    /// Checks an endpoint URL: absolute, `https` to a public host (or `http` to loopback where
    /// allowed), no credentials in it, at most 2048 characters. Returns it normalised.
    pub fn validate_url(raw: &str, rule: UrlRule) -> Result<String, Invalid> {
        Self::check_url(raw, rule).map(|(url, _)| url)
    }

    /// [`Self::validate_url`], and where the URL may lead.
    pub fn check_url(raw: &str, rule: UrlRule) -> Result<(String, Reach), Invalid> {
        let bad = |why: &str| Invalid::new(format!("url {why}"));
        if raw.len() > 2048 {
            return Err(bad("must be at most 2048 characters"));
        }
        let url = url::Url::parse(raw.trim()).map_err(|_| bad("must be an absolute http(s) URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not contain credentials"));
        }
        if url.fragment().is_some() {
            return Err(bad("must not have a fragment"));
        }
        let loopback = match url.host() {
            Some(host) => is_loopback_host(&host),
            None => return Err(bad("must name a host")),
        };
        let private = match url.host() {
            Some(url::Host::Ipv4(ip)) => !is_public(ip.into()),
            Some(url::Host::Ipv6(ip)) => !is_public(ip.into()),
            _ => false,
        };
        match (url.scheme(), rule) {
            ("https", UrlRule::HttpsOnly) if loopback || private => Err(bad("must name a public host")),
            ("https", UrlRule::AllowLoopbackHttp) if loopback || private => {
                Err(bad("must name a public host (or use http to a loopback address)"))
            }
            ("https", _) => Ok((url.into(), Reach::Public)),
            ("http", UrlRule::AllowLoopbackHttp) if loopback => Ok((url.into(), Reach::Loopback)),
            ("http", UrlRule::AllowLoopbackHttp) => Err(bad("must use https (http only to a loopback address)")),
            _ => Err(bad("must use https")),
        }
    }

    /// A description is for the practice's own records: at most 200 characters, one line.
    pub fn validate_description(raw: &str) -> Result<Option<String>, Invalid> {
        let d = raw.trim();
        if d.chars().count() > 200 || d.chars().any(char::is_control) {
            return Err(Invalid::new("description must be at most 200 characters on one line"));
        }
        Ok((!d.is_empty()).then(|| d.to_owned()))
    }
}

/// Whether a host is this machine: `localhost` and the names under it (which resolvers and
/// browsers keep on the machine, RFC 6761), or a loopback address.
pub fn is_loopback_host<S: AsRef<str>>(host: &url::Host<S>) -> bool {
    match host {
        url::Host::Domain(d) => {
            let d = d.as_ref().trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// Whether an address is on the public internet: not loopback, private, link-local (cloud
/// metadata), carrier-grade NAT, multicast, unspecified or documentation space, also when
/// written as an IPv4-mapped IPv6 address; nor an IPv6 address that carries an IPv4 one for a
/// gateway to reach (IPv4-compatible, NAT64, 6to4, Teredo). On AWS a webhook may only go to such an address:
/// checked on the URL and again on every address its host name resolves to.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            let first = seg[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated, still routed by some)
                || first == 0x2001 && seg[1] == 0x0db8 // documentation
                // Addresses that carry an IPv4 address a gateway may reach for us: IPv4-
                // compatible (::a.b.c.d), NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48),
                // 6to4 (2002::/16) and Teredo (2001::/32). A webhook has no business there.
                || seg[..6] == [0; 6]
                || first == 0x0064 && seg[1] == 0xff9b
                || first == 0x2002
                || first == 0x2001 && seg[1] == 0x0000
                || first == 0x0100 && seg[1..4] == [0; 3]) // discard-only
        }
    }
}

/// The body posted for one event (SPEC: `id`, `type`, `share_id`, `reference`, `created_at`,
/// `data`). `data` never holds personal data or codes (see [`Event`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Payload {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub share_id: Option<String>,
    pub reference: Option<String>,
    pub created_at: DateTime<Utc>,
    pub data: serde_json::Value,
}

impl Payload {
    pub fn for_event(event: &Event, reference: &Reference) -> Self {
        Self {
            id: event.id.to_string(),
            kind: event.kind.as_str().to_owned(),
            share_id: Some(event.share_id.to_string()),
            reference: Some(reference.to_string()),
            created_at: event.created_at,
            data: if event.data.is_null() { serde_json::json!({}) } else { event.data.clone() },
        }
    }

    /// What `POST /v1/webhooks/{id}/test` sends: type `test`, no share.
    pub fn test(id: String, at: DateTime<Utc>) -> Self {
        Self { id, kind: "test".into(), share_id: None, reference: None, created_at: at, data: serde_json::json!({}) }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings, a time and a JSON value always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `Sealpost-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256(secret, "<t>.<body>")>`.
pub fn signature_header(secret: &str, at: DateTime<Utc>, body: &[u8]) -> String {
    let t = at.timestamp();
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={t},v1={}", hex::encode(ctx.sign()))
}

/// When to try a failed delivery again: exponential backoff from 30 s doubling to at most an
/// hour, with "equal jitter" (half fixed, half random, so retries of many deliveries spread
/// out), until 24 hours after the event; `None` when the window is over and the delivery fails.
/// `attempts` counts the attempts made so far (≥ 1); `jitter` is uniform in `[0, 1)`.
pub fn next_attempt(attempts: u32, event_at: DateTime<Utc>, now: DateTime<Utc>, jitter: f64) -> Option<DateTime<Utc>> {
    let deadline = event_at + Duration::hours(RETRY_WINDOW_HOURS);
    if now >= deadline {
        return None;
    }
    let exp = attempts.saturating_sub(1).min(20);
    let cap = FIRST_RETRY_SECS.saturating_mul(1 << exp).min(MAX_RETRY_SECS);
    let jitter = jitter.clamp(0.0, 1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let wait_ms = (cap as f64 * 1000.0 * (0.5 + 0.5 * jitter)) as i64;
    // The last attempt happens at the deadline at the latest, so the window is used in full.
    Some((now + Duration::milliseconds(wait_ms)).min(deadline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http_where_allowed() {
        use UrlRule::*;
        assert!(Webhook::validate_url("https://practice.example.ch/hooks", HttpsOnly).is_ok());
        assert!(Webhook::validate_url("http://practice.example.ch/hooks", HttpsOnly).is_err());
        assert!(Webhook::validate_url("http://127.0.0.1:9001/x", HttpsOnly).is_err());
        assert!(Webhook::validate_url("https://127.0.0.1:9001/x", HttpsOnly).is_err());
        assert!(Webhook::validate_url("https://10.0.0.4/x", HttpsOnly).is_err());
        assert!(Webhook::validate_url("https://169.254.169.254/latest", HttpsOnly).is_err());
        for private in [
            "[::ffff:169.254.169.254]",
            "[::ffff:127.0.0.1]",
            "[fe80::1]",
            "100.64.0.1",
            "0.0.0.0",
            "localhost.",
            "a.localhost",
            "224.0.0.1",
            "[fd00::1]",
            "[::7f00:1]",
            "[::a9fe:a9fe]",
            "[64:ff9b::a9fe:a9fe]",
            "[64:ff9b:1::a00:1]",
            "[2002:a9fe:a9fe::1]",
            "[2001:0:4136:e378::1]",
            "[fec0::1]",
            "[100::1]",
        ] {
            assert!(Webhook::validate_url(&format!("https://{private}/x"), HttpsOnly).is_err(), "{private}");
        }
        assert!(is_public("8.8.8.8".parse().unwrap()));
        assert!(is_public("2a00:1450:4001::1".parse().unwrap()));
        assert!(Webhook::validate_url("http://127.0.0.1:9001/x", AllowLoopbackHttp).is_ok());
        assert!(Webhook::validate_url("http://localhost:9001/x", AllowLoopbackHttp).is_ok());
        assert!(Webhook::validate_url("http://[::1]:9001/x", AllowLoopbackHttp).is_ok());
        assert!(Webhook::validate_url("http://example.ch/x", AllowLoopbackHttp).is_err());
        // On the embedded backend too, https is to public hosts only: plain http to loopback is
        // the one exception (issue 17: the metadata service, the LAN, loopback over https).
        for private in [
            "169.254.169.254",
            "10.0.0.4",
            "192.168.1.1",
            "[fd00::1]",
            "[::ffff:169.254.169.254]",
            "127.0.0.1",
            "localhost",
            "0.0.0.0",
        ] {
            assert!(Webhook::validate_url(&format!("https://{private}/x"), AllowLoopbackHttp).is_err(), "{private}");
            assert!(Webhook::validate_url(&format!("http://{private}/x"), HttpsOnly).is_err(), "{private}");
        }
        for private in ["169.254.169.254", "10.0.0.4", "[fd00::1]", "0.0.0.0"] {
            assert!(Webhook::validate_url(&format!("http://{private}/x"), AllowLoopbackHttp).is_err(), "{private}");
        }
        assert_eq!(Webhook::check_url("https://practice.example.ch/h", AllowLoopbackHttp).map(|(_, r)| r), Ok(Reach::Public));
        assert_eq!(Webhook::check_url("http://localhost:9001/h", AllowLoopbackHttp).map(|(_, r)| r), Ok(Reach::Loopback));
        assert!(Webhook::validate_url("https://user:pw@example.ch/x", AllowLoopbackHttp).is_err());
        assert!(Webhook::validate_url("ftp://example.ch/x", AllowLoopbackHttp).is_err());
        assert!(Webhook::validate_url("/relative", AllowLoopbackHttp).is_err());
        assert!(Webhook::validate_url(&format!("https://e.ch/{}", "a".repeat(2048)), HttpsOnly).is_err());
    }

    #[test]
    fn signature_is_hmac_of_time_dot_body() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let header = signature_header("whsec_test", at, b"{\"a\":1}");
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"whsec_test");
        let expected = hex::encode(hmac::sign(&key, b"1700000000.{\"a\":1}"));
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
    }

    #[test]
    fn retries_back_off_exponentially_within_the_window() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let wait = |attempts, jitter| (next_attempt(attempts, t0, t0, jitter).unwrap() - t0).num_seconds();
        assert_eq!(wait(1, 1.0), 30);
        assert_eq!(wait(1, 0.0), 15);
        assert_eq!(wait(2, 1.0), 60);
        assert_eq!(wait(5, 1.0), 480);
        assert_eq!(wait(9, 1.0), 3600);
        assert_eq!(wait(40, 1.0), 3600);
        let late = t0 + Duration::hours(23) + Duration::minutes(59);
        assert_eq!(next_attempt(30, t0, late, 1.0), Some(t0 + Duration::hours(24)));
        assert_eq!(next_attempt(30, t0, t0 + Duration::hours(24), 0.5), None);
    }
}
