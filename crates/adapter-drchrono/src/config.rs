//! The settings of one DrChrono account: where the API is, the OAuth client, paging and time zone.

use std::time::Duration;

use chrono_tz::Tz;
use url::Url;

/// The public DrChrono origin (`Requests`: "All requests must be made using the base URL").
pub const DEFAULT_BASE_URL: &str = "https://drchrono.com";

/// DrChrono's largest page (`Responses`: "The page size defaults to 250").
pub const MAX_PAGE_SIZE: u32 = 250;

/// DrChrono's default hourly limit (`Rate Limits`: "By default, applications are limited to 500
/// calls per hour").
pub const DEFAULT_HOURLY_LIMIT: u32 = 500;

/// The label of the hourly rate budget.
pub const HOURLY_BUDGET: &str = "hourly";

pub use adapter::Secret;
pub use adapter::resilience::{RateBudget, ResilienceSettings};

/// How to reach one DrChrono account.
#[derive(Debug, Clone)]
pub struct DrChronoConfig {
    /// The DrChrono origin; every request, pagination link and redirect must stay on it.
    pub base_url: Url,
    /// The OAuth client id of the API application.
    pub client_id: String,
    pub client_secret: Secret,
    /// The refresh token the account was authorized with. DrChrono rotates it on every refresh; the
    /// adapter keeps the newest one in memory and, with a vault (`DrChronoAdapter::with_token_vault`),
    /// stores it before using it. A stored token supersedes this one; this one is tried again only
    /// when DrChrono refuses the stored one (an operator authorized the account anew).
    pub refresh_token: Secret,
    /// The redirect URI registered with the application (the token endpoint requires it).
    pub redirect_uri: String,
    /// The practice time zone for timestamps of records whose doctor names no valid zone.
    pub default_timezone: Tz,
    /// The largest page asked of DrChrono (1..=250; verbose lists cap it at 50, clinical notes at 20).
    pub page_size: u32,
    /// The limit for one HTTP exchange with DrChrono, body included.
    pub request_timeout: Duration,
    /// The name of the account in cache keys (`Adapter::account`); defaults to the client id.
    pub account: String,
    /// How long the doctors' time zones are kept before `/api/doctors` is read again.
    pub doctor_refresh_interval: Duration,
    /// The "secret token" of the application's webhook (`API Webhooks`): the HMAC key of the `msg`
    /// verification and the value of every hook's `X-drchrono-signature`. Without it the adapter
    /// receives no webhooks.
    pub webhook_secret: Option<Secret>,
    /// The API calls the gateway allows itself per wall-clock hour (the application's limit at
    /// DrChrono, which "reset[s] at the top of each hour"); 0 = no client-side budget.
    pub hourly_limit: u32,
    /// Deadline, retries, circuit breaker and any further rate budgets of the calls to DrChrono.
    pub resilience: ResilienceSettings,
}

/// A setting that cannot work; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("DrChrono setting `{setting}` is invalid: {reason}")]
    Invalid { setting: &'static str, reason: String },
    #[error("the HTTP client for DrChrono could not be built: {reason}")]
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

impl DrChronoConfig {
    /// A configuration for the public DrChrono API with the defaults: UTC as the fallback time zone,
    /// pages of 250, a 30 s request timeout, the client id as the account name, doctors re-read every
    /// 15 minutes, 500 calls per hour, the default [`ResilienceSettings`].
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        refresh_token: impl Into<Secret>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        let client_id = client_id.into();
        Self {
            base_url: Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid"),
            account: client_id.clone(),
            client_id,
            client_secret: client_secret.into(),
            refresh_token: refresh_token.into(),
            redirect_uri: redirect_uri.into(),
            default_timezone: Tz::UTC,
            page_size: MAX_PAGE_SIZE,
            request_timeout: Duration::from_secs(30),
            doctor_refresh_interval: Duration::from_secs(15 * 60),
            webhook_secret: None,
            hourly_limit: DEFAULT_HOURLY_LIMIT,
            resilience: ResilienceSettings::default(),
        }
    }

    /// The resilience settings of the client: [`Self::resilience`] with the hourly budget added.
    pub fn guard_settings(&self) -> ResilienceSettings {
        let mut settings = self.resilience.clone();
        if self.hourly_limit > 0 {
            settings.budgets.push(RateBudget::new(
                HOURLY_BUDGET,
                self.hourly_limit,
                Duration::from_secs(3600),
            ));
        }
        settings
    }

    /// The same configuration receiving the webhooks signed with `secret` (the webhook's secret token).
    pub fn with_webhook_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.webhook_secret = Some(secret.into());
        self
    }

    /// The same configuration against another origin (a simulator, a regional host).
    pub fn with_base_url(mut self, base_url: Url) -> Self {
        self.base_url = base_url;
        self
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        adapter::http::check_base_url(&self.base_url).map_err(|reason| ConfigError::invalid("base_url", reason))?;
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::invalid("client_id", "is empty"));
        }
        if self.client_secret.is_empty() {
            return Err(ConfigError::invalid("client_secret", "is empty"));
        }
        if self.refresh_token.is_empty() {
            return Err(ConfigError::invalid("refresh_token", "is empty"));
        }
        if self.redirect_uri.trim().is_empty() {
            return Err(ConfigError::invalid("redirect_uri", "is empty"));
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
        if self.doctor_refresh_interval.is_zero() {
            return Err(ConfigError::invalid("doctor_refresh_interval", "must be positive"));
        }
        if self.webhook_secret.as_ref().is_some_and(Secret::is_empty) {
            return Err(ConfigError::invalid("webhook_secret", "is empty"));
        }
        if self.resilience.budgets.iter().any(|b| b.label == HOURLY_BUDGET) {
            return Err(ConfigError::invalid(
                "resilience",
                format!("`budgets.{HOURLY_BUDGET}` is set by `hourly_limit`"),
            ));
        }
        self.guard_settings()
            .validate()
            .map_err(|reason| ConfigError::invalid("resilience", reason))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DrChronoConfig {
        DrChronoConfig::new("app", "s3cret-value", "refresh-value", "https://x.test/cb")
    }

    #[test]
    fn secrets_never_print() {
        let c = config().with_webhook_secret("hook-token-value");
        let printed = format!("{c:?} {} {}", c.client_secret, c.refresh_token);
        assert!(!printed.contains("s3cret-value"), "{printed}");
        assert!(!printed.contains("refresh-value"), "{printed}");
        assert!(!printed.contains("hook-token-value"), "{printed}");
        assert!(printed.contains("webhook_secret: Some(***)"), "{printed}");
        assert_eq!(c.validate(), Ok(()));
        assert!(printed.contains("***"));
        assert_eq!(c.client_secret.expose(), "s3cret-value");
    }

    #[test]
    fn defaults_are_valid_and_account_is_the_client_id() {
        let c = config();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.account, "app");
        assert!(c.webhook_secret.is_none());
        assert_eq!(c.base_url.as_str(), "https://drchrono.com/");
    }

    #[test]
    fn the_hourly_limit_becomes_a_budget_aligned_on_the_hour() {
        let mut c = config();
        assert_eq!(
            c.guard_settings().budgets,
            vec![RateBudget::new("hourly", 500, Duration::from_secs(3600))]
        );
        c.hourly_limit = 0;
        assert!(c.guard_settings().budgets.is_empty());
        assert_eq!(c.validate(), Ok(()));
    }

    type Breaker = Box<dyn Fn(&mut DrChronoConfig)>;

    #[test]
    fn each_bad_setting_is_named() {
        let cases: Vec<(&str, Breaker)> = vec![
            (
                "base_url",
                Box::new(|c| c.base_url = Url::parse("ftp://drchrono.com").unwrap()),
            ),
            (
                "base_url",
                Box::new(|c| c.base_url = Url::parse("https://u:p@drchrono.com").unwrap()),
            ),
            (
                "base_url",
                Box::new(|c| c.base_url = Url::parse("https://drchrono.com/?a=1").unwrap()),
            ),
            ("client_id", Box::new(|c| c.client_id = " ".into())),
            ("client_secret", Box::new(|c| c.client_secret = "".into())),
            ("refresh_token", Box::new(|c| c.refresh_token = "".into())),
            ("redirect_uri", Box::new(|c| c.redirect_uri = "".into())),
            ("page_size", Box::new(|c| c.page_size = 0)),
            ("page_size", Box::new(|c| c.page_size = 251)),
            ("request_timeout", Box::new(|c| c.request_timeout = Duration::ZERO)),
            ("account", Box::new(|c| c.account = "".into())),
            (
                "doctor_refresh_interval",
                Box::new(|c| c.doctor_refresh_interval = Duration::ZERO),
            ),
            ("webhook_secret", Box::new(|c| c.webhook_secret = Some(" ".into()))),
            ("resilience", Box::new(|c| c.resilience.deadline = Duration::ZERO)),
            (
                "resilience",
                Box::new(|c| c.resilience.backoff_base = Duration::from_secs(60)),
            ),
            (
                "resilience",
                Box::new(|c| c.resilience.budgets = vec![RateBudget::new("hourly", 1, Duration::from_secs(60))]),
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
