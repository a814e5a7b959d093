//! The settings of one Noa Notes consumer: where the API is, the client credentials, every path and
//! the `api-version` (Noa publishes few of them, so all are settings: see `docs/noa-api.md`), the
//! webhook path secret, the EHR the sessions' episodes belong to, paging and time zone.

use std::fmt;
use std::time::Duration;

use chrono_tz::Tz;
use url::Url;

pub use adapter::Secret;
pub use adapter::resilience::{RateBudget, ResilienceSettings};

/// The Polish production API base (`https://integration.notes.{country}.noa.ai/api/v1/`).
pub const DEFAULT_API_BASE: &str = "https://integration.notes.pl.noa.ai/api/v1/";

/// The `api-version` every request carries.
pub const DEFAULT_API_VERSION: &str = "1.0";

/// The largest `pageSize` the session list accepts.
pub const MAX_PAGE_SIZE: u32 = 100;

/// The session list's own default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// The EHR whose Appointment, Practitioner and Location native ids are Noa's episode, doctor and
/// facility ids.
pub const DEFAULT_EHR_SOURCE: &str = "drchrono";

/// The metadata key a session names its EHR patient under.
pub const DEFAULT_PATIENT_METADATA_KEY: &str = "patientId";

/// The shortest webhook path secret accepted: it is the only thing that authenticates Noa's
/// callbacks.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 32;

/// The languages Noa's session endpoint accepts (the public document's enum).
pub const NOA_LANGUAGES: &[&str] = &[
    "en-US", "pl-PL", "pt-BR", "pt-PT", "es-MX", "es-ES", "es-AR", "es-CO", "es-CL", "es-PE", "it-IT", "de-DE",
    "cs-CZ", "tr-TR",
];

/// Every Noa path the adapter calls, relative to the API base. A `{name}` segment is replaced by
/// one percent-encoded value (`{sessionId}`, `{externalFacilityId}`, `{externalDoctorId}`). The
/// defaults are `docs/noa-api.md`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoaPaths {
    /// Consumer sign-in: `clients/authenticate`.
    pub authenticate: String,
    /// Create (POST) and list (GET) sessions: `consumers/sessions`.
    pub sessions: String,
    /// A session's details: `consumers/sessions/{sessionId}/status`.
    pub session_status: String,
    /// A session's summary: `consumers/sessions/{sessionId}/summary`.
    pub session_summary: String,
    /// Recover the original summary: `consumers/sessions/{sessionId}/recover`.
    pub session_recover: String,
    /// Regenerate the summary: `consumers/sessions/{sessionId}/regenerate`.
    pub session_regenerate: String,
    /// Create or rename a facility (PUT): `consumers/facilities/{externalFacilityId}`.
    pub facility: String,
    /// Add a doctor to a facility (POST): `consumers/facilities/{externalFacilityId}/doctors`.
    pub facility_doctors: String,
    /// Rename a doctor (PUT): `consumers/facilities/{externalFacilityId}/doctors/{externalDoctorId}`.
    pub doctor: String,
}

impl Default for NoaPaths {
    fn default() -> Self {
        Self {
            authenticate: "clients/authenticate".into(),
            sessions: "consumers/sessions".into(),
            session_status: "consumers/sessions/{sessionId}/status".into(),
            session_summary: "consumers/sessions/{sessionId}/summary".into(),
            session_recover: "consumers/sessions/{sessionId}/recover".into(),
            session_regenerate: "consumers/sessions/{sessionId}/regenerate".into(),
            facility: "consumers/facilities/{externalFacilityId}".into(),
            facility_doctors: "consumers/facilities/{externalFacilityId}/doctors".into(),
            doctor: "consumers/facilities/{externalFacilityId}/doctors/{externalDoctorId}".into(),
        }
    }
}

/// One Noa endpoint with the values of its placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    Authenticate,
    Sessions,
    SessionStatus(&'a str),
    SessionSummary(&'a str),
    SessionRecover(&'a str),
    SessionRegenerate(&'a str),
    Facility(&'a str),
    FacilityDoctors(&'a str),
    Doctor { facility: &'a str, doctor: &'a str },
}

impl Endpoint<'_> {
    /// A name for log lines (never an id).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Authenticate => "authenticate",
            Self::Sessions => "sessions",
            Self::SessionStatus(_) => "session status",
            Self::SessionSummary(_) => "session summary",
            Self::SessionRecover(_) => "session recover",
            Self::SessionRegenerate(_) => "session regenerate",
            Self::Facility(_) => "facility",
            Self::FacilityDoctors(_) => "facility doctors",
            Self::Doctor { .. } => "doctor",
        }
    }
}

const SESSION_ID: &str = "sessionId";
const FACILITY_ID: &str = "externalFacilityId";
const DOCTOR_ID: &str = "externalDoctorId";

impl NoaPaths {
    /// The path segments of `endpoint` (placeholders filled, not yet percent-encoded).
    pub fn segments(&self, endpoint: Endpoint<'_>) -> Vec<String> {
        let (template, values): (&str, &[(&str, &str)]) = match endpoint {
            Endpoint::Authenticate => (&self.authenticate, &[]),
            Endpoint::Sessions => (&self.sessions, &[]),
            Endpoint::SessionStatus(id) => (&self.session_status, &[(SESSION_ID, id)]),
            Endpoint::SessionSummary(id) => (&self.session_summary, &[(SESSION_ID, id)]),
            Endpoint::SessionRecover(id) => (&self.session_recover, &[(SESSION_ID, id)]),
            Endpoint::SessionRegenerate(id) => (&self.session_regenerate, &[(SESSION_ID, id)]),
            Endpoint::Facility(f) => (&self.facility, &[(FACILITY_ID, f)]),
            Endpoint::FacilityDoctors(f) => (&self.facility_doctors, &[(FACILITY_ID, f)]),
            Endpoint::Doctor { facility, doctor } => (&self.doctor, &[(FACILITY_ID, facility), (DOCTOR_ID, doctor)]),
        };
        template
            .split('/')
            .map(|segment| match placeholder(segment) {
                Some(name) => values
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
                    .unwrap_or_default(),
                None => segment.to_owned(),
            })
            .collect()
    }

    /// Checks every template: relative, no empty or dot segments, no query or fragment, and
    /// exactly the placeholders its endpoint fills, each a whole segment.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let templates: [(&'static str, &str, &[&str]); 9] = [
            ("paths.authenticate", &self.authenticate, &[]),
            ("paths.sessions", &self.sessions, &[]),
            ("paths.session_status", &self.session_status, &[SESSION_ID]),
            ("paths.session_summary", &self.session_summary, &[SESSION_ID]),
            ("paths.session_recover", &self.session_recover, &[SESSION_ID]),
            ("paths.session_regenerate", &self.session_regenerate, &[SESSION_ID]),
            ("paths.facility", &self.facility, &[FACILITY_ID]),
            ("paths.facility_doctors", &self.facility_doctors, &[FACILITY_ID]),
            ("paths.doctor", &self.doctor, &[FACILITY_ID, DOCTOR_ID]),
        ];
        for (setting, template, wanted) in templates {
            check_template(setting, template, wanted)?;
        }
        Ok(())
    }
}

/// `{name}` → `name`.
fn placeholder(segment: &str) -> Option<&str> {
    segment.strip_prefix('{')?.strip_suffix('}')
}

fn check_template(setting: &'static str, template: &str, wanted: &[&str]) -> Result<(), ConfigError> {
    if template.starts_with('/') {
        return Err(ConfigError::invalid(
            setting,
            "must be relative to the API base (no leading `/`)",
        ));
    }
    if template.contains(['?', '#', '%', ' ', '\\']) {
        return Err(ConfigError::invalid(
            setting,
            "must be a plain path without query, fragment or escapes",
        ));
    }
    let mut found = Vec::new();
    for segment in template.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(ConfigError::invalid(setting, "has an empty or relative segment"));
        }
        match placeholder(segment) {
            Some(name) if wanted.contains(&name) && !found.contains(&name) => found.push(name),
            Some(_) => {
                return Err(ConfigError::invalid(
                    setting,
                    format!("may only hold the placeholders {}", placeholders(wanted)),
                ));
            }
            None if segment.contains(['{', '}']) => {
                return Err(ConfigError::invalid(setting, "a placeholder must be a whole segment"));
            }
            None => {}
        }
    }
    if found.len() != wanted.len() {
        return Err(ConfigError::invalid(
            setting,
            format!("must hold the placeholders {}", placeholders(wanted)),
        ));
    }
    Ok(())
}

fn placeholders(names: &[&str]) -> String {
    if names.is_empty() {
        return "(none)".into();
    }
    names.iter().map(|n| format!("{{{n}}}")).collect::<Vec<_>>().join(", ")
}

/// How to reach one Noa Notes consumer. `Debug` never prints the secrets, nor the webhook URL
/// (it carries the webhook secret).
#[derive(Clone)]
pub struct NoaConfig {
    /// The API base (`https://integration.notes.pl.noa.ai/api/v1/`); every path is relative to it.
    pub api_base: Url,
    /// The client id (a UUID) Docplanner issued; also the account name (`Adapter::account`).
    pub client_id: String,
    pub client_secret: Secret,
    /// The `api-version` query parameter of every request.
    pub api_version: String,
    /// Every path the adapter calls.
    pub paths: NoaPaths,
    /// The gateway source of the EHR whose Appointment, Practitioner and Location native ids are
    /// Noa's `episodeId`, `doctorId` and `facilityId` (`drchrono`).
    pub ehr_source: String,
    /// The callback URL handed to Noa when a session is created; the gateway sets it to
    /// `{public base}/webhooks/noa/{webhook_secret}`. `None`: Noa uses the consumer's default.
    pub webhook_url: Option<String>,
    /// The path secret of the webhook URL (at least 32 characters, URL-safe): Noa does not sign its
    /// callbacks, so a call to any other path is refused.
    pub webhook_secret: Secret,
    /// The session metadata key holding the EHR patient's native id.
    pub patient_metadata_key: String,
    /// The practice time zone FHIR times are written in.
    pub default_timezone: Tz,
    /// The largest page asked of Noa (1..=100).
    pub page_size: u32,
    /// The `language` of new sessions when `$start-scribe` names none (one of [`NOA_LANGUAGES`]);
    /// `None` leaves it to the consumer's configuration at Noa.
    pub default_language: Option<String>,
    /// The limit for one HTTP exchange with Noa, body included.
    pub request_timeout: Duration,
    /// Deadline, retries, circuit breaker and rate budgets of the calls to Noa (Noa documents no
    /// rate limit: no budget by default).
    pub resilience: ResilienceSettings,
}

impl fmt::Debug for NoaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoaConfig")
            .field("api_base", &self.api_base.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("api_version", &self.api_version)
            .field("paths", &self.paths)
            .field("ehr_source", &self.ehr_source)
            .field("webhook_url", &self.webhook_url.as_ref().map(|_| "***"))
            .field("webhook_secret", &self.webhook_secret)
            .field("patient_metadata_key", &self.patient_metadata_key)
            .field("default_timezone", &self.default_timezone)
            .field("page_size", &self.page_size)
            .field("default_language", &self.default_language)
            .field("request_timeout", &self.request_timeout)
            .field("resilience", &self.resilience)
            .finish()
    }
}

/// A setting that cannot work; the message names it (never its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("Noa setting `{setting}` is invalid: {reason}")]
    Invalid { setting: &'static str, reason: String },
    #[error("the HTTP client for Noa could not be built: {reason}")]
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

impl NoaConfig {
    /// A configuration for Noa's Polish API with the defaults: `api-version` 1.0, the documented
    /// paths, DrChrono as the EHR, no callback URL, metadata key `patientId`, UTC, pages of 50, a
    /// 30 s request timeout, the default [`ResilienceSettings`].
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        webhook_secret: impl Into<Secret>,
    ) -> Self {
        Self {
            api_base: Url::parse(DEFAULT_API_BASE).expect("the default API base is valid"),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            api_version: DEFAULT_API_VERSION.into(),
            paths: NoaPaths::default(),
            ehr_source: DEFAULT_EHR_SOURCE.into(),
            webhook_url: None,
            webhook_secret: webhook_secret.into(),
            patient_metadata_key: DEFAULT_PATIENT_METADATA_KEY.into(),
            default_timezone: Tz::UTC,
            page_size: DEFAULT_PAGE_SIZE,
            default_language: None,
            request_timeout: Duration::from_secs(30),
            resilience: ResilienceSettings::default(),
        }
    }

    /// The same configuration against another API base (another country, a simulator's
    /// `…/api/v1`).
    pub fn with_api_base(mut self, api_base: Url) -> Self {
        self.api_base = api_base;
        self
    }

    /// The same configuration with the callback URL handed to Noa for new sessions.
    pub fn with_webhook_url(mut self, webhook_url: impl Into<String>) -> Self {
        self.webhook_url = Some(webhook_url.into());
        self
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_base("api_base", &self.api_base)?;
        if self.client_id.trim().is_empty() || self.client_id.chars().any(char::is_whitespace) {
            return Err(ConfigError::invalid("client_id", "is empty or holds whitespace"));
        }
        if self.client_secret.is_empty() {
            return Err(ConfigError::invalid("client_secret", "is empty"));
        }
        let version = &self.api_version;
        if version.is_empty()
            || !version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        {
            return Err(ConfigError::invalid(
                "api_version",
                "must be letters, digits, `.` and `-` (like 1.0)",
            ));
        }
        self.paths.validate()?;
        if !adapter::id::is_source_name(&self.ehr_source) {
            return Err(ConfigError::invalid(
                "ehr_source",
                "must be a source name of lowercase letters and digits",
            ));
        }
        if let Some(url) = &self.webhook_url {
            let parsed = Url::parse(url).map_err(|_| ConfigError::invalid("webhook_url", "is not a URL"))?;
            check_base("webhook_url", &parsed)?;
        }
        let secret = self.webhook_secret.expose();
        if secret.len() < MIN_WEBHOOK_SECRET_LEN {
            return Err(ConfigError::invalid(
                "webhook_secret",
                format!("must be at least {MIN_WEBHOOK_SECRET_LEN} characters"),
            ));
        }
        if !secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        {
            return Err(ConfigError::invalid(
                "webhook_secret",
                "must be URL-safe (letters, digits, `-`, `_`, `.`, `~`): it is a path segment",
            ));
        }
        let key = &self.patient_metadata_key;
        if key.trim().is_empty() || key.trim() != key {
            return Err(ConfigError::invalid("patient_metadata_key", "is empty or padded"));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(ConfigError::invalid(
                "page_size",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        if let Some(language) = &self.default_language
            && !NOA_LANGUAGES.contains(&language.as_str())
        {
            return Err(ConfigError::invalid(
                "default_language",
                format!("must be one of Noa's languages: {}", NOA_LANGUAGES.join(", ")),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::invalid("request_timeout", "must be positive"));
        }
        self.resilience
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

    const HOOK: &str = "hook-secret-0123456789abcdefghijklmnop";

    fn config() -> NoaConfig {
        NoaConfig::new("5e505642-9024-474d-9434-e5a44f505cc5", "s3cret-value", HOOK)
    }

    #[test]
    fn secrets_and_the_callback_url_never_print() {
        let c = config().with_webhook_url(format!("https://fhir.example/webhooks/noa/{HOOK}"));
        let printed = format!("{c:?} {} {}", c.client_secret, c.webhook_secret);
        assert!(!printed.contains("s3cret-value"), "{printed}");
        assert!(!printed.contains(HOOK), "{printed}");
        assert!(!printed.contains("fhir.example"), "{printed}");
        assert!(printed.contains("***"));
        assert!(printed.contains("5e505642-9024-474d-9434-e5a44f505cc5"));
        assert_eq!(c.client_secret.expose(), "s3cret-value");
    }

    #[test]
    fn defaults_are_the_documented_ones_and_valid() {
        let c = config();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.api_base.as_str(), "https://integration.notes.pl.noa.ai/api/v1/");
        assert_eq!(c.api_version, "1.0");
        assert_eq!(c.ehr_source, "drchrono");
        assert_eq!(c.patient_metadata_key, "patientId");
        assert_eq!(c.webhook_url, None);
        let p = &c.paths;
        assert_eq!(p.segments(Endpoint::Authenticate), ["clients", "authenticate"]);
        assert_eq!(p.segments(Endpoint::Sessions), ["consumers", "sessions"]);
        assert_eq!(
            p.segments(Endpoint::SessionStatus("s1")),
            ["consumers", "sessions", "s1", "status"]
        );
        assert_eq!(
            p.segments(Endpoint::SessionSummary("s1")),
            ["consumers", "sessions", "s1", "summary"]
        );
        assert_eq!(
            p.segments(Endpoint::SessionRecover("s1")),
            ["consumers", "sessions", "s1", "recover"]
        );
        assert_eq!(
            p.segments(Endpoint::SessionRegenerate("s1")),
            ["consumers", "sessions", "s1", "regenerate"]
        );
        assert_eq!(
            p.segments(Endpoint::Facility("f/1")),
            ["consumers", "facilities", "f/1"]
        );
        assert_eq!(
            p.segments(Endpoint::FacilityDoctors("f1")),
            ["consumers", "facilities", "f1", "doctors"]
        );
        assert_eq!(
            p.segments(Endpoint::Doctor {
                facility: "f1",
                doctor: "d1"
            }),
            ["consumers", "facilities", "f1", "doctors", "d1"]
        );
    }

    #[test]
    fn paths_can_follow_another_deployment() {
        let mut c = config();
        c.paths.session_status = "v2/session/{sessionId}".into();
        c.paths.doctor = "doctors/{externalDoctorId}/at/{externalFacilityId}".into();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.paths.segments(Endpoint::SessionStatus("a")), ["v2", "session", "a"]);
        assert_eq!(
            c.paths.segments(Endpoint::Doctor {
                facility: "f",
                doctor: "d"
            }),
            ["doctors", "d", "at", "f"]
        );
    }

    type Breaker = Box<dyn Fn(&mut NoaConfig)>;

    #[test]
    fn each_bad_setting_is_named() {
        let url = |s: &str| Url::parse(s).unwrap();
        let cases: Vec<(&str, Breaker)> = vec![
            (
                "api_base",
                Box::new(move |c| c.api_base = url("ftp://noa.example/api/v1")),
            ),
            (
                "api_base",
                Box::new(move |c| c.api_base = url("https://u:p@noa.example/")),
            ),
            (
                "api_base",
                Box::new(move |c| c.api_base = url("https://noa.example/?x=1")),
            ),
            ("client_id", Box::new(|c| c.client_id = " ".into())),
            ("client_id", Box::new(|c| c.client_id = "a b".into())),
            ("client_secret", Box::new(|c| c.client_secret = "".into())),
            ("api_version", Box::new(|c| c.api_version = "".into())),
            ("api_version", Box::new(|c| c.api_version = "1.0&x=1".into())),
            (
                "paths.sessions",
                Box::new(|c| c.paths.sessions = "/consumers/sessions".into()),
            ),
            (
                "paths.sessions",
                Box::new(|c| c.paths.sessions = "consumers//sessions".into()),
            ),
            (
                "paths.sessions",
                Box::new(|c| c.paths.sessions = "consumers/../x".into()),
            ),
            (
                "paths.sessions",
                Box::new(|c| c.paths.sessions = "consumers/sessions?x".into()),
            ),
            (
                "paths.session_status",
                Box::new(|c| c.paths.session_status = "consumers/sessions/status".into()),
            ),
            (
                "paths.session_summary",
                Box::new(|c| c.paths.session_summary = "s/{id}/summary".into()),
            ),
            (
                "paths.session_recover",
                Box::new(|c| c.paths.session_recover = "s/x{sessionId}/recover".into()),
            ),
            (
                "paths.doctor",
                Box::new(|c| c.paths.doctor = "f/{externalFacilityId}/d".into()),
            ),
            (
                "paths.facility",
                Box::new(|c| c.paths.facility = "f/{externalFacilityId}/{externalFacilityId}".into()),
            ),
            ("ehr_source", Box::new(|c| c.ehr_source = "Dr-Chrono".into())),
            ("webhook_url", Box::new(|c| c.webhook_url = Some("not a url".into()))),
            (
                "webhook_url",
                Box::new(|c| c.webhook_url = Some("ftp://fhir.example/webhooks/noa".into())),
            ),
            ("webhook_secret", Box::new(|c| c.webhook_secret = "short".into())),
            (
                "webhook_secret",
                Box::new(|c| c.webhook_secret = format!("{HOOK}/x").into()),
            ),
            ("patient_metadata_key", Box::new(|c| c.patient_metadata_key = "".into())),
            ("page_size", Box::new(|c| c.page_size = 0)),
            ("page_size", Box::new(|c| c.page_size = 101)),
            ("default_language", Box::new(|c| c.default_language = Some("en".into()))),
            ("request_timeout", Box::new(|c| c.request_timeout = Duration::ZERO)),
            ("resilience", Box::new(|c| c.resilience.deadline = Duration::ZERO)),
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
            assert!(!err.to_string().contains(HOOK));
        }
        let mut c = config();
        c.default_language = Some("pl-PL".into());
        c.page_size = 100;
        assert_eq!(c.validate(), Ok(()));
    }
}
