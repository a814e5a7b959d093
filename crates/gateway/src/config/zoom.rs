//! `[zoom]`: the Zoom account, its Server-to-Server OAuth app, its webhook secret and the request rates
//! the gateway allows itself.

use std::time::Duration;

use adapter::resilience::ResilienceSettings;
use adapter_zoom::ZoomConfig;
use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

use super::{ConfigError, invalid, parse_tz};

/// `[zoom]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoomSection {
    #[serde(default)]
    pub api_base: Option<String>,
    #[serde(default)]
    pub oauth_base: Option<String>,
    pub account_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// The app's webhook secret token (verifies `/webhooks/zoom`).
    pub webhook_secret: String,
    /// The gateway source Zoom notes' EHR context points into.
    #[serde(default)]
    pub ehr_source: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub page_size: Option<u32>,
    #[serde(default)]
    pub request_timeout_secs: Option<u64>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub rate_limits: ZoomRateLimitsSection,
}

/// `[zoom.rate_limits]`: requests per second the gateway allows itself per Zoom rate-limit label.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZoomRateLimitsSection {
    pub light: u32,
    pub medium: u32,
    pub heavy: u32,
}

impl Default for ZoomRateLimitsSection {
    /// Zoom's Pro plan: 30 / 20 / 10.
    fn default() -> Self {
        let d = adapter_zoom::ZoomRateLimits::default();
        Self {
            light: d.light,
            medium: d.medium,
            heavy: d.heavy,
        }
    }
}

impl ZoomSection {
    /// The adapter's config; `timezone` (`fhir.timezone`) applies unless `zoom.timezone` is set.
    pub(super) fn validate(self, timezone: Tz, resilience: &ResilienceSettings) -> Result<ZoomConfig, ConfigError> {
        for (name, value) in [
            ("zoom.account_id", &self.account_id),
            ("zoom.client_id", &self.client_id),
            ("zoom.client_secret", &self.client_secret),
            ("zoom.webhook_secret", &self.webhook_secret),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(name, "must not be empty"));
            }
        }
        let mut c = ZoomConfig::new(
            self.account_id,
            self.client_id,
            self.client_secret.as_str(),
            self.webhook_secret.as_str(),
        );
        if let Some(u) = &self.api_base {
            c = c.with_api_base(Url::parse(u).map_err(|_| invalid("zoom.api_base", "must be an absolute URL"))?);
        }
        if let Some(u) = &self.oauth_base {
            c = c.with_oauth_base(Url::parse(u).map_err(|_| invalid("zoom.oauth_base", "must be an absolute URL"))?);
        }
        if let Some(e) = self.ehr_source {
            c.ehr_source = e;
        }
        c.default_timezone = match &self.timezone {
            Some(tz) => parse_tz("zoom.timezone", tz)?,
            None => timezone,
        };
        if let Some(p) = self.page_size {
            c.page_size = p;
        }
        if let Some(t) = self.request_timeout_secs {
            c.request_timeout = Duration::from_secs(t);
        }
        if let Some(a) = self.account {
            c.account = a;
        }
        c.rate_limits = adapter_zoom::ZoomRateLimits {
            light: self.rate_limits.light,
            medium: self.rate_limits.medium,
            heavy: self.rate_limits.heavy,
        };
        c.resilience = resilience.clone();
        c.validate().map_err(|e| match e {
            adapter_zoom::ConfigError::Invalid { setting, reason } => invalid(&format!("zoom.{setting}"), reason),
            other => invalid("zoom", other.to_string()),
        })?;
        Ok(c)
    }
}
