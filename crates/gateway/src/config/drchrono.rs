//! `[drchrono]`: the DrChrono account, its OAuth credentials and its webhook secret.

use std::time::Duration;

use adapter::resilience::ResilienceSettings;
use adapter_drchrono::DrChronoConfig;
use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

use super::{ConfigError, invalid, parse_tz};

/// `[drchrono]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrChronoSection {
    #[serde(default = "default_drchrono_url")]
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub redirect_uri: String,
    /// The secret token of the DrChrono webhook (verifies `/webhooks/drchrono`); no webhooks without it.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub page_size: Option<u32>,
    #[serde(default)]
    pub request_timeout_secs: Option<u64>,
    #[serde(default)]
    pub account: Option<String>,
    /// API calls per wall-clock hour the gateway allows itself (DrChrono's default limit: 500);
    /// 0 = no client-side budget.
    #[serde(default)]
    pub hourly_limit: Option<u32>,
}

fn default_drchrono_url() -> String {
    adapter_drchrono::config::DEFAULT_BASE_URL.to_owned()
}

impl DrChronoSection {
    /// The adapter's config; `timezone` (`fhir.timezone`) applies unless `drchrono.timezone` is set.
    pub(super) fn validate(self, timezone: Tz, resilience: &ResilienceSettings) -> Result<DrChronoConfig, ConfigError> {
        let base = Url::parse(&self.base_url).map_err(|_| invalid("drchrono.base_url", "must be an absolute URL"))?;
        for (name, value) in [
            ("drchrono.client_id", &self.client_id),
            ("drchrono.client_secret", &self.client_secret),
            ("drchrono.refresh_token", &self.refresh_token),
            ("drchrono.redirect_uri", &self.redirect_uri),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(name, "must not be empty"));
            }
        }
        let mut c = DrChronoConfig::new(
            self.client_id,
            self.client_secret.as_str(),
            self.refresh_token.as_str(),
            self.redirect_uri,
        )
        .with_base_url(base);
        if let Some(secret) = &self.webhook_secret {
            c = c.with_webhook_secret(secret.as_str());
        }
        if let Some(tz) = &self.timezone {
            c.default_timezone = parse_tz("drchrono.timezone", tz)?;
        } else {
            c.default_timezone = timezone;
        }
        if let Some(p) = self.page_size {
            c.page_size = p;
        }
        if let Some(t) = self.request_timeout_secs {
            c.request_timeout = Duration::from_secs(t);
        }
        if let Some(a) = self.account {
            c.account = a;
        }
        if let Some(limit) = self.hourly_limit {
            c.hourly_limit = limit;
        }
        c.resilience = resilience.clone();
        c.validate().map_err(|e| match e {
            adapter_drchrono::ConfigError::Invalid { setting, reason } => {
                invalid(&format!("drchrono.{setting}"), reason)
            }
            other => invalid("drchrono", other.to_string()),
        })?;
        Ok(c)
    }
}
