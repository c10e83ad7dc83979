//! A share and its rules: who may see it, when, and how often they may guess.

use super::{
    Document, Email, Event, EventKind, Language, MAX_ATTEMPTS, PersonName, Phone, PracticeId, Reference, ShareId, SharePolicy,
};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Validity of an upload URL for a large document: SPEC's five minutes for every presigned
/// URL. S3 checks a URL when a request starts, so it only has to start an upload in time; a
/// later one gets a fresh URL (`POST …/upload-url`).
pub const UPLOAD_URL_SECS: u64 = 300;
/// Records from before `upload_urls_until` was kept had hour-long URLs from their creation.
const LEGACY_UPLOAD_URL_SECS: i64 = 3600;
/// The shortest upload URL worth giving out.
const MIN_UPLOAD_URL_SECS: i64 = 60;

/// How long after its URL ended an upload may still land: S3 checks a presigned URL's expiry
/// when a request starts, so a PUT begun in the URL's last second still has time to finish (an
/// hour here, for 2 GiB on a slow line).
const UPLOAD_LANDING_SECS: i64 = 3600;
/// A share still `sending` this long after its send was queued (or active this long after its
/// activation, its patient not yet told) is queued again by the sweep: longer than a worker's
/// run (Lambda's 15 minutes) with its retries' first backoffs.
pub const SEND_REQUEUE_SECS: i64 = 30 * 60;
/// How often the sweep queues a share's send again before it leaves it to the operator (the
/// send queue's dead-letter alarm, the worker's log).
pub const MAX_SEND_REQUEUES: u32 = 3;

/// How the patient proves they are the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A code sent by SMS to the number the practice gave.
    #[default]
    Sms,
    /// A code returned once to the practice, who passes it on by phone or paper.
    Manual,
    DateOfBirth,
    InsuranceNumber,
}

impl AuthMethod {
    /// The name in the API (serde's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Manual => "manual",
            Self::DateOfBirth => "date_of_birth",
            Self::InsuranceNumber => "insurance_number",
        }
    }

    /// Whether the secret is a generated one-time code (as opposed to a fact the patient knows).
    pub fn uses_code(self) -> bool {
        matches!(self, Self::Sms | Self::Manual)
    }
}

/// Where a share is in its life, as stored. Expiry is not stored: it is a fact of `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Created with large documents; waits for their upload and `POST …/send`.
    AwaitingUpload,
    /// `send` was asked: the uploads are checked and the archive built in the background
    /// (`Service::finish_send`), then the patient is notified and the share is `Active`, or a
    /// document is rejected and the share waits for its upload again.
    Sending,
    /// Sent to the patient.
    Active,
    /// Revoked by the practice; documents deleted, record kept for audit until purge.
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub email: Email,
    pub phone: Option<Phone>,
    pub name: Option<PersonName>,
    pub language: Language,
}

/// The current secret: a peppered HMAC, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretState {
    /// Lower-case hex HMAC-SHA-256 of the secret (see `crate::secrets`).
    pub hash: String,
    /// Bumped by every new code; access tokens carry it, so a resend ends older sessions too.
    pub generation: u32,
    pub issued_at: DateTime<Utc>,
    pub failed_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub id: ShareId,
    pub practice_id: PracticeId,
    pub reference: Reference,
    /// Optimistic-concurrency version: every write is conditional on it.
    pub version: u64,
    pub lifecycle: Lifecycle,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When the record itself may be deleted (DynamoDB TTL; the embedded sweep).
    pub purge_at: DateTime<Utc>,
    pub recipient: Recipient,
    pub auth: AuthMethod,
    pub policy: SharePolicy,
    pub message: Option<String>,
    pub documents: Vec<Document>,
    /// Size of the ZIP of all documents, built once when the share is sent.
    pub archive_size: Option<u64>,
    pub secret: Option<SecretState>,
    pub self_service_requests: u32,
    pub first_opened_at: Option<DateTime<Utc>>,
    pub first_verified_at: Option<DateTime<Utc>>,
    pub first_downloaded_at: Option<DateTime<Utc>>,
    /// How many events of the patient's own doing (right answers, downloads) were recorded.
    #[serde(default)]
    pub patient_events: u32,
    /// When the share's send was last queued (while `sending`; then its activation, until the
    /// patient is told), and how often the sweep queued it again since.
    #[serde(default)]
    pub send_queued_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub send_requeues: u32,
    /// When the last upload URL given out for this share ends.
    #[serde(default)]
    pub upload_urls_until: Option<DateTime<Utc>>,
    /// Set with the activation by the send worker, cleared once the patient was notified: a
    /// run that ended in between (a crash, Lambda's timeout, an error) leaves it, and the next
    /// run of the share notifies.
    #[serde(default)]
    pub notify_pending_since: Option<DateTime<Utc>>,
    /// The patient's replies, oldest first: ids and times only (the content is blobs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replies: Vec<super::ReplyMark>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Set once the expiry sweep has recorded `expired` and deleted the documents.
    pub expiry_processed: bool,
}

/// What `now` allows on a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    AwaitingUpload,
    Revoked,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    Verified,
    WrongCode {
        attempts_left: u32,
    },
    /// Wrong, and the last answer allowed.
    Locked,
    ExpiredCode,
}

/// An attempt taken by [`Share::take_attempt`]: the secret it is for, and the count of
/// attempts with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    generation: u32,
    counted: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfServiceDenied {
    NotAllowed,
    Locked,
    Exhausted { retry_after_secs: u64 },
    TooSoon { retry_after_secs: u64 },
}

/// How long a record stays after its link ran out, so a polling practice still sees `expired`
/// and `expired_unread`; documents are deleted at expiry all the same.
pub const RECORD_RETENTION_DAYS: i64 = 7;

/// What a new share is made of; everything else starts empty.
#[derive(Debug, Clone)]
pub struct NewShareParts {
    pub id: ShareId,
    pub practice_id: PracticeId,
    pub recipient: Recipient,
    pub auth: AuthMethod,
    pub policy: SharePolicy,
    pub message: Option<String>,
    pub documents: Vec<Document>,
    pub link_days: u32,
}

impl Share {
    /// A share awaiting its documents, created `now`: its link lives `link_days`, its record
    /// `RECORD_RETENTION_DAYS` longer.
    pub fn new(parts: NewShareParts, now: DateTime<Utc>) -> Self {
        let expires_at = now + Duration::days(i64::from(parts.link_days));
        Self {
            id: parts.id,
            practice_id: parts.practice_id,
            reference: Reference::generate(),
            version: 1,
            lifecycle: Lifecycle::AwaitingUpload,
            created_at: now,
            expires_at,
            purge_at: expires_at + Duration::days(RECORD_RETENTION_DAYS),
            recipient: parts.recipient,
            auth: parts.auth,
            policy: parts.policy,
            message: parts.message,
            documents: parts.documents,
            archive_size: None,
            secret: None,
            self_service_requests: 0,
            first_opened_at: None,
            first_verified_at: None,
            first_downloaded_at: None,
            patient_events: 0,
            send_queued_at: None,
            send_requeues: 0,
            upload_urls_until: None,
            notify_pending_since: None,
            replies: Vec::new(),
            revoked_at: None,
            expiry_processed: false,
        }
    }

    /// An active SMS share for Anna, sent `now`, for tests of rules and adapters.
    #[cfg(test)]
    pub fn fixture(policy: &super::Policy, now: DateTime<Utc>) -> Self {
        let mut share = Self::new(
            NewShareParts {
                id: ShareId::generate(),
                practice_id: PracticeId::generate(),
                recipient: Recipient {
                    email: Email::parse("anna@example.ch").expect("email"),
                    phone: Some(Phone::parse("+41791234567").expect("phone")),
                    name: None,
                    language: Language::De,
                },
                auth: AuthMethod::Sms,
                policy: policy.for_share(true, None),
                message: None,
                documents: vec![],
                link_days: 30,
            },
            now,
        );
        share.lifecycle = Lifecycle::Active;
        share
    }

    /// When the link stops working: its expiry, or the end of the window after first use.
    pub fn effective_expires_at(&self) -> DateTime<Utc> {
        match (self.policy.window_after_first_verify_hours, self.first_verified_at) {
            (Some(hours), Some(first)) => self.expires_at.min(first + Duration::hours(i64::from(hours))),
            _ => self.expires_at,
        }
    }

    /// When the expiry sweep is next due for this share: when its link runs out; for a share
    /// whose send (or notice, after activation) is unfinished, when it is to be queued again;
    /// for a share revoked while its upload URLs could still be used, as soon as no upload can
    /// land any more. Revoking deletes the documents at once, but a PUT begun before the revoke can
    /// land after it; the sweep deletes the share's blobs once more, so nothing it brings is
    /// kept until the link would have run out.
    pub fn sweep_due_at(&self) -> DateTime<Utc> {
        let expires = self.effective_expires_at();
        if let Some(queued) = self.send_queued_at.filter(|_| self.send_requeue_due()) {
            return expires.min(queued + Duration::seconds(SEND_REQUEUE_SECS));
        }
        let landed = self.upload_urls_end() + Duration::seconds(UPLOAD_LANDING_SECS);
        match self.revoked_at {
            Some(revoked) if revoked < landed => expires.min(landed),
            _ => expires,
        }
    }

    /// When the last upload URL given out for this share ends.
    pub fn upload_urls_end(&self) -> DateTime<Utc> {
        self.upload_urls_until.unwrap_or(self.created_at + Duration::seconds(LEGACY_UPLOAD_URL_SECS))
    }

    /// How long an upload URL made `now` is to live: [`UPLOAD_URL_SECS`], ending an upload's
    /// landing time before the link does, so that whatever comes through it has landed when
    /// the expiry sweep deletes the share's documents. `None` when that leaves less than a
    /// minute: too late to upload.
    pub fn upload_url_secs(&self, now: DateTime<Utc>) -> Option<u64> {
        let left = (self.effective_expires_at() - now).num_seconds() - UPLOAD_LANDING_SECS;
        (left >= MIN_UPLOAD_URL_SECS).then(|| UPLOAD_URL_SECS.min(left as u64))
    }

    /// Records that upload URLs were given out until `until`.
    pub fn upload_urls_given_until(&mut self, until: DateTime<Utc>) {
        self.upload_urls_until = Some(self.upload_urls_end().max(until));
    }

    /// Whether the sweep is to queue this share's send again when it has waited long enough.
    pub fn send_requeue_due(&self) -> bool {
        self.send_requeues < MAX_SEND_REQUEUES
            && (self.lifecycle == Lifecycle::Sending
                || (self.lifecycle == Lifecycle::Active && self.notify_pending_since.is_some()))
    }

    /// Whether a send worker's run has work here `now`: the archive of a share being sent, or
    /// the notification of one it activated.
    pub fn send_unfinished(&self, now: DateTime<Utc>) -> bool {
        match self.access(now) {
            Access::AwaitingUpload => self.lifecycle == Lifecycle::Sending,
            Access::Open => self.notify_pending_since.is_some(),
            Access::Revoked | Access::Expired => false,
        }
    }

    /// Checked on every read: storage TTLs are lazy and never decide access.
    pub fn access(&self, now: DateTime<Utc>) -> Access {
        match self.lifecycle {
            Lifecycle::Revoked => Access::Revoked,
            _ if now >= self.effective_expires_at() => Access::Expired,
            Lifecycle::AwaitingUpload | Lifecycle::Sending => Access::AwaitingUpload,
            Lifecycle::Active => Access::Open,
        }
    }

    pub fn is_locked(&self) -> bool {
        self.secret.as_ref().is_some_and(|s| s.failed_attempts >= MAX_ATTEMPTS)
    }

    pub fn attempts_left(&self) -> u32 {
        MAX_ATTEMPTS.saturating_sub(self.secret.as_ref().map_or(0, |s| s.failed_attempts))
    }

    /// The status a practice sees.
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        match self.access(now) {
            Access::Revoked => "revoked",
            Access::Expired => "expired",
            Access::AwaitingUpload if self.lifecycle == Lifecycle::Sending => "sending",
            Access::AwaitingUpload => "awaiting_upload",
            Access::Open if self.is_locked() => "locked",
            Access::Open => "active",
        }
    }

    /// Strict mode: a code older than the practice's code lifetime is refused.
    fn code_expired(&self, now: DateTime<Utc>) -> bool {
        match (self.auth.uses_code(), self.policy.code_lifetime_minutes, &self.secret) {
            (true, Some(minutes), Some(secret)) => now >= secret.issued_at + Duration::minutes(i64::from(minutes)),
            _ => false,
        }
    }

    /// Takes one of the attempts left before an answer is compared with the secret, so that
    /// however many answers arrive at once, no more are compared than there are attempts left
    /// (the caller writes this conditionally, then compares). `None` when none is left: a
    /// locked code never verifies, even when right.
    pub fn take_attempt(&mut self) -> Option<Attempt> {
        let secret = self.secret.as_mut().filter(|s| s.failed_attempts < MAX_ATTEMPTS)?;
        secret.failed_attempts += 1;
        Some(Attempt { generation: secret.generation, counted: secret.failed_attempts })
    }

    /// Applies the answer an attempt was taken for. `correct` comes from a constant-time HMAC
    /// comparison with the secret as the attempt found it. A wrong answer keeps its attempt; a
    /// right one gives it back (right answers cost nothing) unless the secret was replaced
    /// since, which counted or reset the attempts anew.
    pub fn settle_attempt(&mut self, attempt: Attempt, now: DateTime<Utc>, correct: bool) -> VerifyOutcome {
        let code_expired = self.code_expired(now);
        let Some(secret) = self.secret.as_mut().filter(|s| s.generation == attempt.generation) else {
            // An answer to a code that is gone (a resend, a self-service code): nothing to say
            // of the new one, whose count the replacement reset or carried over.
            return VerifyOutcome::ExpiredCode;
        };
        if !correct {
            return if attempt.counted >= MAX_ATTEMPTS {
                VerifyOutcome::Locked
            } else {
                VerifyOutcome::WrongCode { attempts_left: MAX_ATTEMPTS - attempt.counted }
            };
        }
        secret.failed_attempts = secret.failed_attempts.saturating_sub(1);
        if code_expired {
            return VerifyOutcome::ExpiredCode;
        }
        self.first_verified_at.get_or_insert(now);
        VerifyOutcome::Verified
    }

    /// May the patient ask for a fresh code now? Only by SMS, only where the practice allows
    /// it, a limited number of times, and not too often.
    pub fn check_self_service(&self, now: DateTime<Utc>) -> Result<(), SelfServiceDenied> {
        if !self.policy.self_service || self.auth != AuthMethod::Sms || self.recipient.phone.is_none() {
            return Err(SelfServiceDenied::NotAllowed);
        }
        if self.is_locked() {
            return Err(SelfServiceDenied::Locked);
        }
        if self.self_service_requests >= self.policy.self_service_max_requests {
            let secs = (self.effective_expires_at() - now).num_seconds().max(1);
            return Err(SelfServiceDenied::Exhausted { retry_after_secs: secs as u64 });
        }
        if let Some(secret) = &self.secret {
            // Codes are spaced by the practice's interval, but a code that strict mode has
            // already expired holds nothing back: with 10-minute codes and 30-minute spacing the
            // page would offer a fresh code and then refuse it for 20 minutes. (Still at most
            // `self_service_max_requests` per share, and the daily SMS cap.)
            let mut spacing = self.policy.self_service_min_interval_minutes;
            if let (true, Some(lifetime)) = (self.auth.uses_code(), self.policy.code_lifetime_minutes) {
                spacing = spacing.min(lifetime);
            }
            let next = secret.issued_at + Duration::minutes(i64::from(spacing));
            if now < next {
                let secs = (next - now).num_seconds().max(1);
                return Err(SelfServiceDenied::TooSoon { retry_after_secs: secs as u64 });
            }
        }
        Ok(())
    }

    /// Installs a new secret; the old one dies at once. Only the practice's resend starts a new
    /// count of wrong answers: a self-service code keeps it (NIST SP 800-63B rev 4), otherwise
    /// asking for codes would be a way around the lockout.
    pub fn replace_secret(&mut self, hash: String, now: DateTime<Utc>, reset_attempts: bool) {
        let (generation, failed) = match &self.secret {
            Some(s) => (s.generation + 1, if reset_attempts { 0 } else { s.failed_attempts }),
            None => (1, 0),
        };
        self.secret = Some(SecretState { hash, generation, issued_at: now, failed_attempts: failed });
    }

    /// The most events of the patient's own doing a share keeps: a link holder with the code can
    /// repeat right answers and downloads at will, and each event goes to the practice's
    /// listing and to every webhook endpoint. Ample for 50 documents fetched on many visits.
    pub const MAX_PATIENT_EVENTS: u32 = 200;

    /// What to record of an event of the patient's own doing: `event` while the share keeps
    /// such events, with `events_capped` beside the last one it keeps, nothing after that.
    pub fn patient_event(&mut self, event: Event) -> Vec<Event> {
        if self.patient_events >= Self::MAX_PATIENT_EVENTS {
            return Vec::new();
        }
        self.patient_events += 1;
        if self.patient_events < Self::MAX_PATIENT_EVENTS {
            return vec![event];
        }
        let capped = Event::new(&self.id, EventKind::EventsCapped, event.created_at);
        vec![event, capped]
    }

    /// Seconds a self-service request must wait, for the page: `None` when it may ask now or
    /// may not ask at all.
    pub fn self_service_wait(&self, now: DateTime<Utc>) -> Option<u64> {
        match self.check_self_service(now) {
            Err(SelfServiceDenied::TooSoon { retry_after_secs }) => Some(retry_after_secs),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_methods_are_named_as_serde_names_them() {
        for method in [AuthMethod::Sms, AuthMethod::Manual, AuthMethod::DateOfBirth, AuthMethod::InsuranceNumber] {
            assert_eq!(serde_json::to_value(method).unwrap(), method.as_str());
        }
    }
    use crate::domain::Policy;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z").unwrap().with_timezone(&Utc)
    }

    /// One answer as the service gives it: an attempt taken, then settled; `None` when no
    /// attempt was left.
    fn answer(s: &mut Share, now: DateTime<Utc>, correct: bool) -> Option<VerifyOutcome> {
        let attempt = s.take_attempt()?;
        Some(s.settle_attempt(attempt, now, correct))
    }

    fn share(policy: Policy) -> Share {
        let mut s = Share::fixture(&policy, t0());
        s.replace_secret("h1".into(), t0(), true);
        s
    }

    #[test]
    fn a_share_revoked_while_uploads_may_land_is_swept_once_they_cannot() {
        let mut s = share(Policy::default());
        let expires = t0() + Duration::days(30);
        assert_eq!(s.sweep_due_at(), expires);
        s.lifecycle = Lifecycle::Revoked;
        s.revoked_at = Some(t0() + Duration::minutes(5));
        assert_eq!(s.sweep_due_at(), t0() + Duration::hours(2), "a legacy record: its URLs' hour + an hour to land");
        // Revoked after that: nothing can land any more, the sweep comes at expiry as for others.
        s.revoked_at = Some(t0() + Duration::hours(3));
        assert_eq!(s.sweep_due_at(), expires);
        // A URL given out later keeps the window open until it ends, and an hour more.
        s.upload_urls_given_until(t0() + Duration::hours(5));
        s.upload_urls_given_until(t0() + Duration::hours(4));
        assert_eq!(s.sweep_due_at(), t0() + Duration::hours(6));
        s.upload_urls_until = None;
        // A link shorter than the upload window is swept when it runs out.
        s.revoked_at = Some(t0());
        s.expires_at = t0() + Duration::hours(1);
        assert_eq!(s.sweep_due_at(), t0() + Duration::hours(1));
    }

    #[test]
    fn an_upload_url_ends_an_uploads_landing_time_before_the_link() {
        let mut s = share(Policy::default());
        assert_eq!(s.upload_url_secs(t0()), Some(UPLOAD_URL_SECS));
        s.expires_at = t0() + Duration::minutes(63);
        assert_eq!(s.upload_url_secs(t0()), Some(180));
        assert_eq!(s.upload_url_secs(t0() + Duration::minutes(2)), Some(60));
        assert_eq!(s.upload_url_secs(t0() + Duration::seconds(121)), None, "too late to upload");
        assert_eq!(s.upload_url_secs(t0() + Duration::hours(2)), None, "expired");
    }

    #[test]
    fn expiry_is_decided_by_now_not_by_storage() {
        let s = share(Policy::default());
        assert_eq!(s.access(t0() + Duration::days(30) - Duration::seconds(1)), Access::Open);
        assert_eq!(s.access(t0() + Duration::days(30)), Access::Expired);
        assert_eq!(s.status(t0() + Duration::days(31)), "expired");
    }

    #[test]
    fn window_after_first_verification_shortens_the_link() {
        let mut s = share(Policy { window_after_first_verify_hours: Some(72), ..Policy::default() });
        let first = t0() + Duration::days(1);
        assert_eq!(answer(&mut s, first, true), Some(VerifyOutcome::Verified));
        assert_eq!(answer(&mut s, first + Duration::hours(1), true), Some(VerifyOutcome::Verified));
        assert_eq!(s.access(first + Duration::hours(71)), Access::Open);
        assert_eq!(s.access(first + Duration::hours(72)), Access::Expired);
        // The window never extends a link beyond its own expiry.
        let mut late = share(Policy { window_after_first_verify_hours: Some(72), ..Policy::default() });
        answer(&mut late, t0() + Duration::days(29), true);
        assert_eq!(late.effective_expires_at(), late.expires_at);
    }

    #[test]
    fn five_wrong_answers_lock_and_a_locked_code_never_verifies() {
        let mut s = share(Policy::default());
        for left in (1..=4).rev() {
            assert_eq!(answer(&mut s, t0(), false), Some(VerifyOutcome::WrongCode { attempts_left: left }));
        }
        assert_eq!(answer(&mut s, t0(), false), Some(VerifyOutcome::Locked));
        assert_eq!(answer(&mut s, t0(), true), None);
        assert_eq!(s.status(t0()), "locked");
        assert_eq!(answer(&mut s, t0(), false), None);
        assert_eq!(s.secret.as_ref().unwrap().failed_attempts, MAX_ATTEMPTS, "no count past the limit");
    }

    #[test]
    fn an_attempt_is_taken_before_the_answer_is_compared() {
        let mut s = share(Policy::default());
        for _ in 0..4 {
            answer(&mut s, t0(), false);
        }
        // One attempt left: the first of two answers in flight takes it, the second finds none.
        let first = s.take_attempt().expect("one attempt is left");
        assert_eq!(s.take_attempt(), None, "no second answer is compared");
        assert!(s.is_locked(), "while the answer is compared, nothing else may be");
        // It was right: the attempt comes back, and the share verifies.
        assert_eq!(s.settle_attempt(first, t0(), true), VerifyOutcome::Verified);
        assert_eq!(s.attempts_left(), 1);
    }

    #[test]
    fn each_wrong_answer_is_told_its_own_count_whatever_settles_first() {
        let mut s = share(Policy::default());
        answer(&mut s, t0(), false);
        answer(&mut s, t0(), false);
        let wrong = s.take_attempt().unwrap();
        let right = s.take_attempt().unwrap();
        assert_eq!(s.settle_attempt(right, t0(), true), VerifyOutcome::Verified);
        assert_eq!(s.settle_attempt(wrong, t0(), false), VerifyOutcome::WrongCode { attempts_left: 2 });
        assert_eq!(s.attempts_left(), 2, "three wrong answers counted, the right one given back");
    }

    #[test]
    fn a_wrong_answer_to_a_code_replaced_meanwhile_says_nothing_of_the_new_one() {
        let mut s = share(Policy::default());
        for _ in 0..4 {
            answer(&mut s, t0(), false);
        }
        let attempt = s.take_attempt().unwrap(); // the last one
        s.replace_secret("h2".into(), t0(), true);
        assert_eq!(s.settle_attempt(attempt, t0(), false), VerifyOutcome::ExpiredCode, "not `locked`: the new code is not");
        assert_eq!(s.attempts_left(), MAX_ATTEMPTS);
    }

    #[test]
    fn a_right_answer_for_a_code_replaced_meanwhile_does_not_verify() {
        let mut s = share(Policy::default());
        answer(&mut s, t0(), false);
        let attempt = s.take_attempt().unwrap();
        s.replace_secret("h2".into(), t0(), true); // the practice resends: a new count
        assert_eq!(s.settle_attempt(attempt, t0(), true), VerifyOutcome::ExpiredCode);
        assert_eq!(s.attempts_left(), MAX_ATTEMPTS, "nothing given back to the new code's count");
        assert_eq!(s.first_verified_at, None);
    }

    #[test]
    fn a_share_keeps_a_bounded_number_of_the_patient_s_events_and_says_so() {
        let mut s = share(Policy::default());
        let event = |s: &Share| Event::new(&s.id, EventKind::DocumentDownloaded, t0());
        for _ in 1..Share::MAX_PATIENT_EVENTS {
            let e = event(&s);
            assert_eq!(s.patient_event(e.clone()), [e]);
        }
        let last = s.patient_event(event(&s));
        let kinds: Vec<_> = last.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::DocumentDownloaded, EventKind::EventsCapped]);
        assert_eq!(s.patient_event(event(&s)), [], "nothing past the cap");
        assert_eq!(s.patient_events, Share::MAX_PATIENT_EVENTS);
    }

    #[test]
    fn resend_starts_a_new_count_but_self_service_does_not() {
        let mut s = share(Policy::default());
        answer(&mut s, t0(), false);
        answer(&mut s, t0(), false);
        s.replace_secret("h2".into(), t0(), false);
        assert_eq!(s.attempts_left(), 3);
        assert_eq!(s.secret.as_ref().unwrap().generation, 2);
        s.replace_secret("h3".into(), t0(), true);
        assert_eq!(s.attempts_left(), MAX_ATTEMPTS);
    }

    #[test]
    fn strict_code_lifetime_refuses_old_codes() {
        let mut s = share(Policy { code_lifetime_minutes: Some(10), ..Policy::default() });
        assert_eq!(answer(&mut s, t0() + Duration::minutes(10), true), Some(VerifyOutcome::ExpiredCode));
        assert_eq!(answer(&mut s, t0() + Duration::minutes(9), true), Some(VerifyOutcome::Verified));
        // By default a code lives as long as its link.
        let mut relaxed = share(Policy::default());
        assert_eq!(answer(&mut relaxed, t0() + Duration::days(29), true), Some(VerifyOutcome::Verified));
    }

    #[test]
    fn self_service_is_limited_in_count_and_interval() {
        let mut s = share(Policy::default());
        assert_eq!(
            s.check_self_service(t0() + Duration::minutes(5)),
            Err(SelfServiceDenied::TooSoon { retry_after_secs: 25 * 60 })
        );
        let mut now = t0();
        for _ in 0..3 {
            now += Duration::minutes(30);
            assert_eq!(s.check_self_service(now), Ok(()));
            s.self_service_requests += 1;
            s.replace_secret("x".into(), now, false);
        }
        now += Duration::minutes(30);
        assert!(matches!(s.check_self_service(now), Err(SelfServiceDenied::Exhausted { .. })));
    }

    #[test]
    fn in_strict_mode_an_expired_code_can_be_replaced_at_once() {
        // 10-minute codes, 30-minute spacing: the patient who comes at minute 12 has an expired
        // code and gets a fresh one now, not at minute 30.
        let mut s = share(Policy { code_lifetime_minutes: Some(10), ..Policy::default() });
        assert_eq!(s.check_self_service(t0() + Duration::minutes(9)), Err(SelfServiceDenied::TooSoon { retry_after_secs: 60 }));
        assert_eq!(s.check_self_service(t0() + Duration::minutes(10)), Ok(()));
        let mut now = t0() + Duration::minutes(12);
        s.self_service_requests += 1;
        s.replace_secret("x".into(), now, false);
        assert!(matches!(s.check_self_service(now + Duration::minutes(5)), Err(SelfServiceDenied::TooSoon { .. })));
        now += Duration::minutes(10);
        assert_eq!(s.check_self_service(now), Ok(()));
        // Spacing longer than the code's life is not shortened for plain codes.
        let plain = share(Policy::default());
        assert!(matches!(plain.check_self_service(t0() + Duration::minutes(12)), Err(SelfServiceDenied::TooSoon { .. })));
    }

    #[test]
    fn self_service_needs_sms_permission_and_an_unlocked_code() {
        let mut off = share(Policy { self_service: false, ..Policy::default() });
        assert_eq!(off.check_self_service(t0() + Duration::hours(1)), Err(SelfServiceDenied::NotAllowed));
        off.policy.self_service = true;
        off.auth = AuthMethod::Manual;
        assert_eq!(off.check_self_service(t0() + Duration::hours(1)), Err(SelfServiceDenied::NotAllowed));
        let mut locked = share(Policy::default());
        for _ in 0..5 {
            answer(&mut locked, t0(), false);
        }
        assert_eq!(locked.check_self_service(t0() + Duration::hours(1)), Err(SelfServiceDenied::Locked));
    }

    #[test]
    fn revoked_and_awaiting_upload_are_not_open() {
        let mut s = share(Policy::default());
        s.lifecycle = Lifecycle::AwaitingUpload;
        assert_eq!(s.access(t0()), Access::AwaitingUpload);
        s.lifecycle = Lifecycle::Revoked;
        assert_eq!(s.access(t0()), Access::Revoked);
        assert_eq!(s.status(t0()), "revoked");
    }

    #[test]
    fn a_share_being_sent_is_hidden_from_patients_and_shown_as_sending() {
        let now = Utc::now();
        let mut share = Share::fixture(&Policy::default(), now);
        share.lifecycle = Lifecycle::Sending;
        assert_eq!(share.access(now), Access::AwaitingUpload);
        assert_eq!(share.status(now), "sending");
        assert_eq!(share.status(share.expires_at), "expired");
        assert_eq!(serde_json::to_value(Lifecycle::Sending).unwrap(), "sending");
    }
}
