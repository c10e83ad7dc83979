//! A practice's policy, and the part of it each share keeps from the day it was created.

use super::AuthMethod;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Wrong answers after which a code is locked (SPEC: 5). Not a setting: a practice cannot
/// weaken it.
pub const MAX_ATTEMPTS: u32 = 5;

/// What a practice decides. Defaults are SPEC's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Link validity when a share does not say (days).
    pub default_link_days: u32,
    /// … for shares of these auth methods instead (e.g. 14 days for date of birth, whose
    /// secret a stranger may know, 90 for SMS).
    pub link_days_by_method: BTreeMap<AuthMethod, u32>,
    /// The most a share may ask for (days, at most 90).
    pub max_link_days: u32,
    /// After the first successful verification the link lives this much longer at most.
    pub window_after_first_verify_hours: Option<u32>,
    /// Whether patients may ask for a fresh code themselves.
    pub self_service: bool,
    pub self_service_max_requests: u32,
    pub self_service_min_interval_minutes: u32,
    /// `None`: a code lives as long as its link. `Some(m)`: strict mode, a code older than `m`
    /// minutes is refused as `expired_code`.
    pub code_lifetime_minutes: Option<u32>,
    pub daily_sms_cap: u32,
    /// Whether a share lets the patient reply when it does not say (`allow_reply`).
    pub allow_reply: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            default_link_days: 30,
            link_days_by_method: BTreeMap::new(),
            max_link_days: 90,
            window_after_first_verify_hours: None,
            self_service: true,
            self_service_max_requests: 3,
            self_service_min_interval_minutes: 30,
            code_lifetime_minutes: None,
            daily_sms_cap: 500,
            allow_reply: false,
        }
    }
}

impl Policy {
    /// Checks a policy given by an operator: each bound is SPEC's.
    pub fn validate(&self) -> Result<(), super::Invalid> {
        use super::Invalid;
        if !(1..=90).contains(&self.max_link_days) {
            return Err(Invalid::new("max_link_days must be 1..=90"));
        }
        if !(1..=self.max_link_days).contains(&self.default_link_days) {
            return Err(Invalid::new("default_link_days must be 1..=max_link_days"));
        }
        if self.link_days_by_method.values().any(|days| !(1..=self.max_link_days).contains(days)) {
            return Err(Invalid::new("link days for an auth method must be 1..=max_link_days"));
        }
        if self.window_after_first_verify_hours.is_some_and(|h| !(1..=90 * 24).contains(&h)) {
            return Err(Invalid::new("window_after_first_verify_hours must be 1..=2160 (90 days)"));
        }
        if self.code_lifetime_minutes.is_some_and(|m| !(1..=90 * 24 * 60).contains(&m)) {
            return Err(Invalid::new("code_lifetime_minutes must be 1..=129600 (90 days)"));
        }
        if self.self_service_max_requests > 20 || self.self_service_min_interval_minutes > 7 * 24 * 60 {
            return Err(Invalid::new("self-service allows at most 20 requests, at most a week apart"));
        }
        if self.daily_sms_cap > 1_000_000 {
            return Err(Invalid::new("daily_sms_cap must be at most 1000000"));
        }
        Ok(())
    }

    /// Link validity for a share of `method` that does not say.
    pub fn default_link_days_for(&self, method: AuthMethod) -> u32 {
        self.link_days_by_method.get(&method).copied().unwrap_or(self.default_link_days)
    }

    /// The rules a new share keeps for its whole life, whatever the practice changes later.
    /// `allow_reply`: the share's own choice, else the practice's.
    pub fn for_share(&self, self_service_requested: bool, allow_reply: Option<bool>) -> SharePolicy {
        SharePolicy {
            allow_reply: allow_reply.unwrap_or(self.allow_reply),
            window_after_first_verify_hours: self.window_after_first_verify_hours,
            self_service: self.self_service && self_service_requested,
            self_service_max_requests: self.self_service_max_requests,
            self_service_min_interval_minutes: self.self_service_min_interval_minutes,
            code_lifetime_minutes: self.code_lifetime_minutes,
        }
    }
}

/// The policy a share was created under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharePolicy {
    /// The patient may send a message and files back (`domain::Reply`).
    #[serde(default)]
    pub allow_reply: bool,
    pub window_after_first_verify_hours: Option<u32>,
    pub self_service: bool,
    pub self_service_max_requests: u32,
    pub self_service_min_interval_minutes: u32,
    pub code_lifetime_minutes: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_of_its_own_has_its_own_link_days_within_the_maximum() {
        let mut policy =
            Policy { link_days_by_method: [(AuthMethod::DateOfBirth, 14), (AuthMethod::Sms, 90)].into(), ..Policy::default() };
        assert!(policy.validate().is_ok());
        assert_eq!(policy.default_link_days_for(AuthMethod::DateOfBirth), 14);
        assert_eq!(policy.default_link_days_for(AuthMethod::Sms), 90);
        assert_eq!(policy.default_link_days_for(AuthMethod::Manual), 30, "the practice's default");
        // Stored as JSON with the API's names for the methods.
        let json = serde_json::to_value(&policy).unwrap();
        assert_eq!(json["link_days_by_method"], serde_json::json!({"sms": 90, "date_of_birth": 14}));
        assert_eq!(serde_json::from_value::<Policy>(json).unwrap(), policy);

        policy.max_link_days = 60;
        assert!(policy.validate().is_err(), "90 days for SMS is over the practice's maximum");
        policy.link_days_by_method.insert(AuthMethod::Sms, 0);
        assert!(policy.validate().is_err());
    }
}
