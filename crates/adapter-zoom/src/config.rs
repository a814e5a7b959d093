//! The settings of one Zoom account: where the API and the OAuth server are, the Server-to-Server
//! OAuth app, the webhook secret token, the EHR the notes belong to, paging and time zone.

use std::time::Duration;

use chrono_tz::Tz;
use url::Url;

/// Zoom's API base (`Servers - URL: https://api.zoom.us/v2`).
pub const DEFAULT_API_BASE: &str = "https://api.zoom.us/v2";

/// Zoom's OAuth origin; the token endpoint is `{oauth_base}/oauth/token`.
pub const DEFAULT_OAUTH_BASE: &str = "https://zoom.us";

/// The largest `page_size` Zoom list endpoints accept.
pub const MAX_PAGE_SIZE: u32 = 300;

/// The default EHR source the notes' `ehr_context` points into.
pub const DEFAULT_EHR_SOURCE: &str = "drchrono";

pub use adapter::Secret;
pub use adapter::resilience::{RateBudget, ResilienceSettings};

/// Zoom's rate-limit labels, as the client-side budget labels.
pub const RATE_LIMIT_LABELS: [&str; 3] = ["light", "medium", "heavy"];

/// Requests per second the gateway allows itself per Zoom rate-limit label (Zoom's `Rate Limit
/// Label`: LIGHT, MEDIUM, HEAVY). 0 = no client-side budget for that label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoomRateLimits {
    pub light: u32,
    pub medium: u32,
    pub heavy: u32,
}

impl Default for ZoomRateLimits {
    /// Zoom's per-second limits for Pro accounts: 30 / 20 / 10.
    fn default() -> Self {
        Self {
            light: 30,
            medium: 20,
            heavy: 10,
        }
    }
}

impl ZoomRateLimits {
    /// One per-second budget per label with a limit.
    pub fn budgets(&self) -> Vec<RateBudget> {
        RATE_LIMIT_LABELS
            .iter()
            .zip([self.light, self.medium, self.heavy])
            .filter(|(_, limit)| *limit > 0)
            .map(|(label, limit)| RateBudget::new(*label, limit, Duration::from_secs(1)))
            .collect()
    }
}

/// How to reach one Zoom account.
#[derive(Debug, Clone)]
pub struct ZoomConfig {
    /// The API base (`https://api.zoom.us/v2`); every API request and redirect stays on its origin.
    pub api_base: Url,
    /// The OAuth origin (`https://zoom.us`); the token is fetched from `{oauth_base}/oauth/token`.
    pub oauth_base: Url,
    /// The Zoom account id of the Server-to-Server OAuth app.
    pub account_id: String,
    /// The OAuth client id of the app.
    pub client_id: String,
    pub client_secret: Secret,
    /// The app's webhook "secret token": key of the `x-zm-signature` HMAC and of the
    /// `endpoint.url_validation` answer.
    pub webhook_secret: Secret,
    /// The gateway source of the EHR the notes' `ehr_context` refers to (`drchrono`).
    pub ehr_source: String,
    /// The practice time zone for times that carry none.
    pub default_timezone: Tz,
    /// The largest page asked of Zoom (1..=300).
    pub page_size: u32,
    /// The limit for one HTTP exchange with Zoom, body included.
    pub request_timeout: Duration,
    /// The name of the account in cache keys and change events (`Adapter::account`); defaults to
    /// the account id.
    pub account: String,
    /// The per-second budgets per rate-limit label.
    pub rate_limits: ZoomRateLimits,
    /// Deadline, retries, circuit breaker and any further rate budgets of the calls to Zoom.
    pub resilience: ResilienceSettings,
}

/// A setting that cannot work; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("Zoom setting `{setting}` is invalid: {reason}")]
    Invalid { setting: &'static str, reason: String },
    #[error("the HTTP client for Zoom could not be built: {reason}")]
    HttpClient { reason: String },
}

impl ConfigError {
    fn invalid(setting: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting,
            reason: reason.into(),
        }
    }
}

impl ZoomConfig {
    /// A configuration for the public Zoom API with the defaults: DrChrono as the EHR, UTC as the
    /// fallback time zone, pages of 300, a 30 s request timeout, the account id as the account name,
    /// the Pro plan's rate limits, the default [`ResilienceSettings`].
    pub fn new(
        account_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        webhook_secret: impl Into<Secret>,
    ) -> Self {
        let account_id = account_id.into();
        Self {
            api_base: Url::parse(DEFAULT_API_BASE).expect("the default API base is valid"),
            oauth_base: Url::parse(DEFAULT_OAUTH_BASE).expect("the default OAuth base is valid"),
            account: account_id.clone(),
            account_id,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            webhook_secret: webhook_secret.into(),
            ehr_source: DEFAULT_EHR_SOURCE.into(),
            default_timezone: Tz::UTC,
            page_size: MAX_PAGE_SIZE,
            request_timeout: Duration::from_secs(30),
            rate_limits: ZoomRateLimits::default(),
            resilience: ResilienceSettings::default(),
        }
    }

    /// The resilience settings of the client: [`Self::resilience`] with the per-label budgets added.
    pub fn guard_settings(&self) -> ResilienceSettings {
        let mut settings = self.resilience.clone();
        settings.budgets.extend(self.rate_limits.budgets());
        settings
    }

    /// The same configuration against another API base (a simulator's `…/v2`).
    pub fn with_api_base(mut self, api_base: Url) -> Self {
        self.api_base = api_base;
        self
    }

    /// The same configuration against another OAuth origin.
    pub fn with_oauth_base(mut self, oauth_base: Url) -> Self {
        self.oauth_base = oauth_base;
        self
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_base("api_base", &self.api_base)?;
        check_base("oauth_base", &self.oauth_base)?;
        if self.account_id.trim().is_empty() {
            return Err(ConfigError::invalid("account_id", "is empty"));
        }
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::invalid("client_id", "is empty"));
        }
        if self.client_id.contains(':') {
            return Err(ConfigError::invalid("client_id", "must not contain `:`"));
        }
        if self.client_secret.is_empty() {
            return Err(ConfigError::invalid("client_secret", "is empty"));
        }
        if self.webhook_secret.is_empty() {
            return Err(ConfigError::invalid("webhook_secret", "is empty"));
        }
        if !adapter::id::is_source_name(&self.ehr_source) {
            return Err(ConfigError::invalid(
                "ehr_source",
                "must be a source name of lowercase letters and digits",
            ));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(ConfigError::invalid(
                "page_size",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::invalid("request_timeout", "must be positive"));
        }
        if self.account.trim().is_empty() {
            return Err(ConfigError::invalid("account", "is empty"));
        }
        if let Some(b) = self
            .resilience
            .budgets
            .iter()
            .find(|b| RATE_LIMIT_LABELS.contains(&b.label.as_str()))
        {
            return Err(ConfigError::invalid(
                "resilience",
                format!("`budgets.{}` is set by `rate_limits`", b.label),
            ));
        }
        self.guard_settings()
            .validate()
            .map_err(|reason| ConfigError::invalid("resilience", reason))?;
        Ok(())
    }
}

fn check_base(setting: &'static str, base: &Url) -> Result<(), ConfigError> {
    adapter::http::check_base_url(base).map_err(|reason| ConfigError::invalid(setting, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ZoomConfig {
        ZoomConfig::new("acct", "app", "s3cret-value", "hook-value")
    }

    #[test]
    fn secrets_never_print() {
        let c = config();
        let printed = format!("{c:?} {} {}", c.client_secret, c.webhook_secret);
        assert!(!printed.contains("s3cret-value"), "{printed}");
        assert!(!printed.contains("hook-value"), "{printed}");
        assert!(printed.contains("***"));
        assert_eq!(c.client_secret.expose(), "s3cret-value");
    }

    #[test]
    fn defaults_are_valid_and_account_is_the_account_id() {
        let c = config();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.account, "acct");
        assert_eq!(c.api_base.as_str(), "https://api.zoom.us/v2");
        assert_eq!(c.oauth_base.as_str(), "https://zoom.us/");
        assert_eq!(c.ehr_source, "drchrono");
    }

    #[test]
    fn rate_limits_become_per_second_budgets() {
        let mut c = config();
        let second = Duration::from_secs(1);
        assert_eq!(
            c.guard_settings().budgets,
            vec![
                RateBudget::new("light", 30, second),
                RateBudget::new("medium", 20, second),
                RateBudget::new("heavy", 10, second),
            ]
        );
        c.rate_limits.medium = 0;
        let labels: Vec<String> = c.guard_settings().budgets.into_iter().map(|b| b.label).collect();
        assert_eq!(labels, ["light", "heavy"]);
    }

    type Breaker = Box<dyn Fn(&mut ZoomConfig)>;

    #[test]
    fn each_bad_setting_is_named() {
        let url = |s: &str| Url::parse(s).unwrap();
        let cases: Vec<(&str, Breaker)> = vec![
            ("api_base", Box::new(move |c| c.api_base = url("ftp://api.zoom.us/v2"))),
            (
                "api_base",
                Box::new(move |c| c.api_base = url("https://u:p@api.zoom.us/v2")),
            ),
            (
                "api_base",
                Box::new(move |c| c.api_base = url("https://api.zoom.us/v2?x=1")),
            ),
            (
                "oauth_base",
                Box::new(move |c| c.oauth_base = url("https://zoom.us/#f")),
            ),
            ("account_id", Box::new(|c| c.account_id = " ".into())),
            ("client_id", Box::new(|c| c.client_id = "".into())),
            ("client_id", Box::new(|c| c.client_id = "a:b".into())),
            ("client_secret", Box::new(|c| c.client_secret = "".into())),
            ("webhook_secret", Box::new(|c| c.webhook_secret = " ".into())),
            ("ehr_source", Box::new(|c| c.ehr_source = "Dr-Chrono".into())),
            ("ehr_source", Box::new(|c| c.ehr_source = "".into())),
            ("page_size", Box::new(|c| c.page_size = 0)),
            ("page_size", Box::new(|c| c.page_size = 301)),
            ("request_timeout", Box::new(|c| c.request_timeout = Duration::ZERO)),
            ("account", Box::new(|c| c.account = "".into())),
            ("resilience", Box::new(|c| c.resilience.max_retries = 99)),
            (
                "resilience",
                Box::new(|c| c.resilience.budgets = vec![RateBudget::new("light", 1, Duration::from_secs(1))]),
            ),
        ];
        for (setting, break_it) in cases {
            let mut c = config();
            break_it(&mut c);
            let err = c.validate().unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { setting: s, .. } if *s == setting),
                "{setting}: {err}"
            );
            assert!(err.to_string().contains(setting));
        }
    }
}
