//! `[resilience]`: the deadline, retries and circuit breaker every vendor client shares.

use std::time::Duration;

use adapter::resilience::ResilienceSettings;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[resilience]`: how the calls to every vendor are bounded, retried and cut off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResilienceSection {
    /// The longest one vendor call may take, retries and rate-budget waits included.
    pub deadline_secs: u64,
    /// Retries of a transient failure (connection, timeout, 429, 502, 503, 504) of a read.
    pub max_retries: u32,
    /// The first backoff ceiling (doubling per retry, with full jitter).
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// The longest `Retry-After` waited for; a longer one is answered at once.
    pub max_retry_after_secs: u64,
    /// Consecutive failed calls that open a vendor's circuit breaker; 0 = no breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before it lets a probe through.
    pub breaker_cooldown_secs: u64,
}

impl Default for ResilienceSection {
    fn default() -> Self {
        let d = ResilienceSettings::default();
        Self {
            deadline_secs: d.deadline.as_secs(),
            max_retries: d.max_retries,
            backoff_base_ms: d.backoff_base.as_millis() as u64,
            backoff_max_ms: d.backoff_max.as_millis() as u64,
            max_retry_after_secs: d.max_retry_after.as_secs(),
            breaker_failures: d.breaker_failures,
            breaker_cooldown_secs: d.breaker_cooldown.as_secs(),
        }
    }
}

impl ResilienceSection {
    /// Validates `[resilience]`: the settings each vendor's client starts from (the vendor adds its own
    /// rate budgets).
    pub(super) fn validate(&self) -> Result<ResilienceSettings, ConfigError> {
        if !(1..=3600).contains(&self.deadline_secs) {
            return Err(invalid("resilience.deadline_secs", "must be between 1 and 3600"));
        }
        if self.max_retries > 10 {
            return Err(invalid("resilience.max_retries", "must be at most 10"));
        }
        if !(1..=60_000).contains(&self.backoff_base_ms) {
            return Err(invalid("resilience.backoff_base_ms", "must be between 1 and 60000"));
        }
        if !(self.backoff_base_ms..=60_000).contains(&self.backoff_max_ms) {
            return Err(invalid(
                "resilience.backoff_max_ms",
                "must be between resilience.backoff_base_ms and 60000",
            ));
        }
        if self.max_retry_after_secs > 3600 {
            return Err(invalid("resilience.max_retry_after_secs", "must be at most 3600"));
        }
        if self.breaker_failures > 0 && !(1..=86_400).contains(&self.breaker_cooldown_secs) {
            return Err(invalid(
                "resilience.breaker_cooldown_secs",
                "must be between 1 and 86400 (or set resilience.breaker_failures = 0)",
            ));
        }
        let settings = ResilienceSettings {
            deadline: Duration::from_secs(self.deadline_secs),
            max_retries: self.max_retries,
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            max_retry_after: Duration::from_secs(self.max_retry_after_secs),
            breaker_failures: self.breaker_failures,
            breaker_cooldown: Duration::from_secs(self.breaker_cooldown_secs),
            budgets: Vec::new(),
        };
        settings.validate().map_err(|reason| invalid("resilience", reason))?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use adapter::resilience::ResilienceSettings;

    use crate::config::Settings;
    use crate::config::tests::{GOOD, env, err};

    #[test]
    fn resilience_applies_to_every_vendor_with_the_vendors_budgets() {
        let s = Settings::from_toml(GOOD, &BTreeMap::new()).unwrap();
        let d = s.drchrono.unwrap();
        assert_eq!(d.resilience, ResilienceSettings::default());
        assert_eq!(d.hourly_limit, 500);
        let text = format!(
            "{GOOD}hourly_limit = 1000\n[zoom]\naccount_id = \"a\"\nclient_id = \"c\"\nclient_secret = \"s\"\nwebhook_secret = \"w\"\n[zoom.rate_limits]\nlight = 80\nheavy = 0\n[resilience]\ndeadline_secs = 8\nmax_retries = 1\nbackoff_base_ms = 50\nbackoff_max_ms = 400\nmax_retry_after_secs = 2\nbreaker_failures = 0\nbreaker_cooldown_secs = 0\n"
        );
        let s = Settings::from_toml(&text, &env(&[("FHIR_GATEWAY__RESILIENCE__MAX_RETRIES", "2")])).unwrap();
        let expected = ResilienceSettings {
            deadline: Duration::from_secs(8),
            max_retries: 2,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_millis(400),
            max_retry_after: Duration::from_secs(2),
            breaker_failures: 0,
            breaker_cooldown: Duration::ZERO,
            budgets: Vec::new(),
        };
        let d = s.drchrono.unwrap();
        assert_eq!((d.resilience.clone(), d.hourly_limit), (expected.clone(), 1000));
        let z = s.zoom.unwrap();
        assert_eq!(z.resilience, expected);
        assert_eq!(
            z.rate_limits,
            adapter_zoom::ZoomRateLimits {
                light: 80,
                medium: 20,
                heavy: 0
            }
        );
    }

    #[test]
    fn bad_resilience_settings_are_named() {
        for (key, value) in [
            ("RESILIENCE__DEADLINE_SECS", "0"),
            ("RESILIENCE__DEADLINE_SECS", "7200"),
            ("RESILIENCE__MAX_RETRIES", "11"),
            ("RESILIENCE__MAX_RETRIES", "-1"),
            ("RESILIENCE__BACKOFF_BASE_MS", "0"),
            ("RESILIENCE__BACKOFF_MAX_MS", "50"),
            ("RESILIENCE__MAX_RETRY_AFTER_SECS", "4000"),
            ("RESILIENCE__BREAKER_COOLDOWN_SECS", "0"),
            ("RESILIENCE__BREAKER_FAILURES", "many"),
            ("DRCHRONO__HOURLY_LIMIT", "-5"),
        ] {
            let setting = key.to_lowercase().replace("__", ".");
            let e = err(GOOD, &[(&format!("FHIR_GATEWAY__{key}"), value)]);
            assert!(e.contains(&setting), "{key}={value}: {e}");
        }
        let e = err(&format!("{GOOD}[resilience]\nretries = 2\n"), &[]);
        assert!(e.contains("retries"), "{e}");
        let zoom = "[zoom]\naccount_id = \"a\"\nclient_id = \"c\"\nclient_secret = \"s\"\nwebhook_secret = \"w\"\n[zoom.rate_limits]\n";
        let e = err(&format!("{GOOD}{zoom}light = -1\n"), &[]);
        assert!(e.contains("zoom.rate_limits.light"), "{e}");
        let e = err(&format!("{GOOD}{zoom}extra = 1\n"), &[]);
        assert!(e.contains("zoom.rate_limits"), "{e}");
    }
}
