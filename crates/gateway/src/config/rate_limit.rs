//! `[rate_limit]`: requests per client, enforced by [`crate::ratelimit`].

use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[rate_limit]`: requests per client (a token's `client_id`, else the caller's address).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSection {
    pub enabled: bool,
    /// Sustained requests per minute per client.
    pub per_client_per_minute: u32,
    /// Requests a client may send at once.
    pub burst: u32,
}

impl Default for RateLimitSection {
    fn default() -> Self {
        let d = crate::ratelimit::RateLimitSettings::default();
        Self {
            enabled: true,
            per_client_per_minute: d.per_minute.get(),
            burst: d.burst.get(),
        }
    }
}

impl RateLimitSection {
    /// Validates `[rate_limit]`; `None` when `rate_limit.enabled = false`.
    pub(super) fn validate(&self) -> Result<Option<crate::ratelimit::RateLimitSettings>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        if self.per_client_per_minute == 0 {
            return Err(invalid(
                "rate_limit.per_client_per_minute",
                "must be at least 1 (or set rate_limit.enabled = false)",
            ));
        }
        if self.burst == 0 {
            return Err(invalid("rate_limit.burst", "must be at least 1"));
        }
        Ok(crate::ratelimit::RateLimitSettings::new(
            self.per_client_per_minute,
            self.burst,
        ))
    }
}
