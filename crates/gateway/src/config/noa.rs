//! `[noa]`: the Noa Notes consumer, its callback URL's path secret, and overrides of Noa's paths.

use std::time::Duration;

use adapter::resilience::ResilienceSettings;
use adapter_noa::NoaConfig;
use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

use super::{ConfigError, invalid, parse_tz};

/// `[noa]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoaSection {
    /// The country's API base (`https://integration.notes.pl.noa.ai/api/v1/`).
    #[serde(default)]
    pub api_base: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    /// The unguessable path secret of the callback URL handed to Noa
    /// (`{server.public_url}/webhooks/noa/{webhook_secret}`).
    pub webhook_secret: String,
    /// The gateway source whose Appointment, Practitioner and Location ids are Noa's episode, doctor
    /// and facility ids.
    #[serde(default)]
    pub ehr_source: Option<String>,
    #[serde(default)]
    pub patient_metadata_key: Option<String>,
    #[serde(default)]
    pub default_language: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub page_size: Option<u32>,
    #[serde(default)]
    pub request_timeout_secs: Option<u64>,
    /// Overrides of Noa's paths (relative to `api_base`; see docs/noa-api.md).
    #[serde(default)]
    pub paths: NoaPathsSection,
}

/// `[noa.paths]`: each key overrides one path.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoaPathsSection {
    pub authenticate: Option<String>,
    pub sessions: Option<String>,
    pub session_status: Option<String>,
    pub session_summary: Option<String>,
    pub session_recover: Option<String>,
    pub session_regenerate: Option<String>,
    pub facility: Option<String>,
    pub facility_doctors: Option<String>,
    pub doctor: Option<String>,
}

impl NoaSection {
    /// Validates `[noa]`: the callback URL is built from `server.public_url`, which Noa must reach.
    pub(super) fn validate(
        self,
        public_url: Option<&Url>,
        timezone: Tz,
        resilience: &ResilienceSettings,
    ) -> Result<NoaConfig, ConfigError> {
        for (name, value) in [
            ("noa.client_id", &self.client_id),
            ("noa.client_secret", &self.client_secret),
            ("noa.webhook_secret", &self.webhook_secret),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(name, "must not be empty"));
            }
        }
        let public_url = public_url.ok_or_else(|| {
            invalid(
                "server.public_url",
                "must be set when [noa] is configured: Noa calls back {public_url}/webhooks/noa/{webhook_secret}",
            )
        })?;
        let mut c = NoaConfig::new(
            self.client_id,
            self.client_secret.as_str(),
            self.webhook_secret.as_str(),
        );
        if let Some(u) = &self.api_base {
            c = c.with_api_base(Url::parse(u).map_err(|_| invalid("noa.api_base", "must be an absolute URL"))?);
        }
        let callback = format!(
            "{}/webhooks/noa/{}",
            public_url.as_str().trim_end_matches('/'),
            c.webhook_secret.expose()
        );
        c = c.with_webhook_url(callback);
        if let Some(v) = self.api_version {
            c.api_version = v;
        }
        if let Some(e) = self.ehr_source {
            c.ehr_source = e;
        }
        if let Some(k) = self.patient_metadata_key {
            c.patient_metadata_key = k;
        }
        c.default_language = self.default_language;
        c.default_timezone = match &self.timezone {
            Some(tz) => parse_tz("noa.timezone", tz)?,
            None => timezone,
        };
        if let Some(p) = self.page_size {
            c.page_size = p;
        }
        if let Some(t) = self.request_timeout_secs {
            c.request_timeout = Duration::from_secs(t);
        }
        c.resilience = resilience.clone();
        let p = self.paths;
        for (value, slot) in [
            (p.authenticate, &mut c.paths.authenticate),
            (p.sessions, &mut c.paths.sessions),
            (p.session_status, &mut c.paths.session_status),
            (p.session_summary, &mut c.paths.session_summary),
            (p.session_recover, &mut c.paths.session_recover),
            (p.session_regenerate, &mut c.paths.session_regenerate),
            (p.facility, &mut c.paths.facility),
            (p.facility_doctors, &mut c.paths.facility_doctors),
            (p.doctor, &mut c.paths.doctor),
        ] {
            if let Some(v) = value {
                *slot = v;
            }
        }
        c.validate().map_err(|e| match e {
            adapter_noa::ConfigError::Invalid { setting, reason } => invalid(&format!("noa.{setting}"), reason),
            other => invalid("noa", other.to_string()),
        })?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::config::Settings;

    #[test]
    fn noa_needs_a_public_url_and_names_bad_settings() {
        let base = "[noa]\nclient_id = \"c\"\nclient_secret = \"s\"\nwebhook_secret = \"0123456789abcdefghijklmnopqrstuvwxyz\"\n";
        let e = Settings::from_toml(base, &BTreeMap::new()).unwrap_err().to_string();
        assert!(e.contains("server.public_url"), "{e}");
        let with_url = format!("[server]\npublic_url = \"https://gw.example\"\n{base}");
        assert!(Settings::from_toml(&with_url, &BTreeMap::new()).is_ok());
        let short = with_url.replace("0123456789abcdefghijklmnopqrstuvwxyz", "short");
        let e = Settings::from_toml(&short, &BTreeMap::new()).unwrap_err().to_string();
        assert!(e.contains("noa.webhook_secret"), "{e}");
        let tz = format!("{with_url}timezone = \"Mars/Olympus\"\n");
        let e = Settings::from_toml(&tz, &BTreeMap::new()).unwrap_err().to_string();
        assert!(e.contains("noa.timezone"), "{e}");
    }
}
