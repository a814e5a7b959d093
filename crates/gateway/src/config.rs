//! Configuration: a TOML file, overridden by environment variables, with secrets read from files.
//!
//! Every setting has a dotted name (`drchrono.client_id`). The environment variable
//! `FHIR_GATEWAY__DRCHRONO__CLIENT_ID` overrides it; a key ending in `_file` (`client_secret_file`)
//! reads the setting from that file instead (trailing newline trimmed), for container secrets.
//! Validation happens once, at start-up, and every error names the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use adapter::Secret;
use adapter::resilience::ResilienceSettings;
use adapter_drchrono::DrChronoConfig;
use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

/// The environment prefix of overrides.
pub const ENV_PREFIX: &str = "FHIR_GATEWAY__";

/// A configuration error; the message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the config file is not valid TOML: {0}")]
    Toml(String),
    #[error("setting `{setting}`: {reason}")]
    Invalid { setting: String, reason: String },
}

fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address to listen on.
    pub listen: String,
    /// The public base URL clients reach the gateway at (links are built from it); defaults to
    /// `http://{listen}`.
    pub public_url: Option<String>,
    /// The most one `/fhir` request may take before it is answered 504.
    pub request_timeout_secs: u64,
    /// A client must send a request's whole header within this (else the connection is closed); also
    /// how long an idle keep-alive connection stays open.
    pub header_read_timeout_secs: u64,
    /// Outside `/fhir`, the most a request body may take to arrive (then 408).
    pub body_read_timeout_secs: u64,
    /// Connections served at once; more wait until one closes.
    pub max_connections: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            request_timeout_secs: 60,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            max_connections: 1024,
        }
    }
}

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

/// `[metrics]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `/metrics` needs a bearer token the gateway accepts (needs `auth.mode = "smart"`).
    pub require_token: bool,
}

/// `[fhir]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FhirSection {
    pub default_count: u32,
    pub max_count: u32,
    /// Time zone for search dates without a zone.
    pub timezone: String,
    pub vendor_calls_per_page: usize,
    pub max_materialized: usize,
}

impl Default for FhirSection {
    fn default() -> Self {
        Self {
            default_count: 50,
            max_count: 500,
            timezone: "UTC".into(),
            vendor_calls_per_page: 20,
            max_materialized: 10_000,
        }
    }
}

/// `[paging]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagingSection {
    /// Key that signs paging links; every replica behind one URL must share it (≥ 32 characters).
    pub secret: Option<String>,
    /// How long a paging link stays valid, in seconds.
    pub link_ttl_secs: i64,
}

impl Default for PagingSection {
    fn default() -> Self {
        Self {
            secret: None,
            link_ttl_secs: 1800,
        }
    }
}

/// `[auth]`: SMART on FHIR.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// `smart` (the embedded authorization server, and/or an external IdP) or `none` (`serve`
    /// refuses it without `--insecure-no-auth`).
    pub mode: Option<String>,
    /// Where a generated signing key is kept across restarts.
    pub data_dir: Option<String>,
    /// The token signing key (PKCS#8 PEM, EC P-256 → ES256 or RSA → RS256); usually `signing_key_file`.
    pub signing_key: Option<String>,
    pub access_token_ttl_secs: Option<u64>,
    pub refresh_token_ttl_secs: Option<u64>,
    /// Argon2 checks (client secrets, passwords) run at once; default: the core count.
    pub max_concurrent_password_checks: Option<usize>,
    /// How long a check waits for a free slot before the answer is 503 (default 300 ms).
    pub password_check_wait_ms: Option<u64>,
    /// Failed sign-ins per username, then per client address, before the lock-out (5, 20).
    pub login_failures_per_user: Option<u32>,
    pub login_failures_per_ip: Option<u32>,
    /// The longest lock-out (it doubles from 1 s; default 900).
    pub login_lockout_max_secs: Option<u64>,
    /// Sign-ins not yet past the login page, per client address (default 20).
    pub max_pending_logins_per_ip: Option<usize>,
    pub clients: Vec<ClientSection>,
    pub users: Vec<UserSection>,
    pub external: Option<ExternalSection>,
}

/// `[cache]`: vendor answers kept in memory (reads and search pages).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    pub enabled: bool,
    /// The bound on what is held, in MiB of serialized FHIR JSON.
    pub max_mb: u64,
    pub search_ttl_secs: u64,
    /// Per resource type (`Patient = 600`); types not named keep their default.
    pub read_ttl_secs: BTreeMap<String, u64>,
    /// How long past its TTL an answer is still served when the vendor fails (0: never).
    pub stale_if_error_secs: u64,
    /// How long a vendor's "not found" / "gone" on a read is remembered (0: not at all).
    pub not_found_ttl_secs: u64,
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            enabled: true,
            max_mb: 64,
            search_ttl_secs: 60,
            read_ttl_secs: BTreeMap::new(),
            stale_if_error_secs: 300,
            not_found_ttl_secs: 30,
        }
    }
}

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

/// `[[auth.clients]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    pub client_id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `public`, `client_secret_basic` or `private_key_jwt`.
    pub auth: String,
    /// argon2 PHC string of the secret (`client_secret_basic`; `fhir-gateway hash-password` makes one).
    #[serde(default)]
    pub secret_hash: Option<String>,
    /// The client's public keys as a JWKS JSON document (`private_key_jwt`), or
    #[serde(default)]
    pub jwks: Option<String>,
    /// where to fetch them.
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub allow_loopback_any_port: bool,
    /// The most it may be granted.
    pub scopes: String,
    /// `authorization_code`, `refresh_token`, `client_credentials`.
    pub grant_types: Vec<String>,
}

/// `[[auth.users]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    pub username: String,
    pub password_hash: String,
    pub display_name: String,
    /// `Practitioner/drchrono-1` or `Patient/drchrono-9`.
    pub fhir_user: String,
}

/// `[auth.external]`: accept tokens of another authorization server too.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSection {
    pub issuer: String,
    pub jwks_url: String,
    /// Default: the gateway's FHIR base URL.
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub patient_claim: Option<String>,
    #[serde(default)]
    pub fhir_user_claim: Option<String>,
}

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

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: ServerSection,
    pub fhir: FhirSection,
    pub paging: PagingSection,
    pub auth: AuthSection,
    pub drchrono: Option<DrChronoSection>,
    pub zoom: Option<ZoomSection>,
    pub noa: Option<NoaSection>,
    pub cache: CacheSection,
    /// `[limits]`: how much one request may ask for (each at least 1).
    pub limits: crate::query::Limits,
    pub resilience: ResilienceSection,
    pub rate_limit: RateLimitSection,
    pub metrics: MetricsSection,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub public_url: Option<Url>,
    pub default_count: u32,
    pub max_count: u32,
    pub timezone: Tz,
    pub vendor_calls_per_page: usize,
    pub max_materialized: usize,
    pub paging_secret: Option<Secret>,
    pub link_ttl: Duration,
    pub request_deadline: Duration,
    pub auth_configured: bool,
    /// The SMART settings when `auth.mode = "smart"` (the base URL is set again when the listener is
    /// known).
    pub auth: Option<smart_auth::AuthSettings>,
    pub drchrono: Option<DrChronoConfig>,
    pub zoom: Option<adapter_zoom::ZoomConfig>,
    pub noa: Option<adapter_noa::NoaConfig>,
    /// `None` when `cache.enabled = false`.
    pub cache: Option<crate::cache::CacheSettings>,
    /// `[server]`'s connection handling.
    pub server_limits: crate::run::ServerLimits,
    /// `None` when `rate_limit.enabled = false`.
    pub rate_limit: Option<crate::ratelimit::RateLimitSettings>,
    /// `metrics.require_token`.
    pub metrics_require_token: bool,
    /// `[limits]`.
    pub limits: crate::query::Limits,
}

impl Settings {
    /// Loads a file, applies the environment and validates.
    pub fn load(path: &Path, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.kind().to_string(),
        })?;
        Self::from_toml(&text, env)
    }

    /// Parses TOML text, applies the environment and validates.
    pub fn from_toml(text: &str, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Toml(e.message().to_owned()))?;
        apply_env(&mut table, env)?;
        resolve_files(&mut table, "")?;
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            invalid(
                if path == "." { "(top level)" } else { &path },
                e.into_inner().message().to_owned(),
            )
        })?;
        raw.validate()
    }
}

/// Overlays `FHIR_GATEWAY__SECTION__KEY=value` variables.
fn apply_env(table: &mut toml::Table, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (key, value) in env {
        let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let parts: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if parts.iter().any(String::is_empty) {
            return Err(invalid(key, "malformed override variable name"));
        }
        let mut cur = &mut *table;
        for section in &parts[..parts.len() - 1] {
            let entry = cur
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cur = entry
                .as_table_mut()
                .ok_or_else(|| invalid(key, format!("`{section}` is not a section")))?;
        }
        let leaf = parts[parts.len() - 1].clone();
        // Numbers and booleans in the environment keep their type; everything else is a string.
        let parsed = match value.parse::<i64>() {
            Ok(n) => toml::Value::Integer(n),
            Err(_) => match value.as_str() {
                "true" => toml::Value::Boolean(true),
                "false" => toml::Value::Boolean(false),
                _ => toml::Value::String(value.clone()),
            },
        };
        cur.insert(leaf, parsed);
    }
    Ok(())
}

/// Replaces `x_file = "/path"` with `x = <contents>`.
fn resolve_files(table: &mut toml::Table, prefix: &str) -> Result<(), ConfigError> {
    let keys: Vec<String> = table.keys().cloned().collect();
    for key in keys {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let Some(toml::Value::Table(inner)) = table.get_mut(&key) {
            resolve_files(inner, &dotted)?;
            continue;
        }
        let Some(target) = key.strip_suffix("_file") else {
            continue;
        };
        let Some(toml::Value::String(path)) = table.get(&key).cloned() else {
            return Err(invalid(&dotted, "must be a file path"));
        };
        if table.contains_key(target) {
            return Err(invalid(&dotted, format!("give either `{target}` or `{key}`, not both")));
        }
        let contents = std::fs::read_to_string(&path)
            .map_err(|e| invalid(&dotted, format!("cannot read the file: {}", e.kind())))?;
        table.remove(&key);
        table.insert(
            target.to_owned(),
            toml::Value::String(contents.trim_end_matches(['\n', '\r']).to_owned()),
        );
    }
    Ok(())
}

/// Validates `[cache]`.
fn cache_settings(c: &CacheSection) -> Result<Option<crate::cache::CacheSettings>, ConfigError> {
    if !c.enabled {
        return Ok(None);
    }
    if !(1..=65_536).contains(&c.max_mb) {
        return Err(invalid("cache.max_mb", "must be between 1 and 65536"));
    }
    if c.search_ttl_secs == 0 {
        return Err(invalid("cache.search_ttl_secs", "must be at least 1"));
    }
    let mut settings = crate::cache::CacheSettings {
        max_bytes: c.max_mb * 1024 * 1024,
        search_ttl: Duration::from_secs(c.search_ttl_secs),
        stale_if_error: Duration::from_secs(c.stale_if_error_secs),
        ..Default::default()
    };
    if c.stale_if_error_secs > 86_400 {
        return Err(invalid("cache.stale_if_error_secs", "must be at most 86400 (one day)"));
    }
    if c.not_found_ttl_secs > 3600 {
        return Err(invalid("cache.not_found_ttl_secs", "must be at most 3600 (one hour)"));
    }
    settings.not_found_ttl = Duration::from_secs(c.not_found_ttl_secs);
    for (name, secs) in &c.read_ttl_secs {
        let t: adapter::ResourceType = name.parse().map_err(|_| {
            invalid(
                &format!("cache.read_ttl_secs.{name}"),
                "is not a resource type the gateway serves",
            )
        })?;
        if *secs == 0 {
            return Err(invalid(&format!("cache.read_ttl_secs.{name}"), "must be at least 1"));
        }
        settings.read_ttl.insert(t, Duration::from_secs(*secs));
    }
    Ok(Some(settings))
}

/// Validates `[limits]`: every bound is at least 1 (a bound of 0 would refuse every request).
fn limits_settings(l: &crate::query::Limits) -> Result<crate::query::Limits, ConfigError> {
    for (setting, value) in [
        ("limits.max_body_bytes", l.max_body_bytes),
        ("limits.max_search_body_bytes", l.max_search_body_bytes),
        ("limits.max_query_bytes", l.max_query_bytes),
        ("limits.max_header_bytes", l.max_header_bytes),
        ("limits.max_params", l.max_params),
        ("limits.max_value_len", l.max_value_len),
        ("limits.max_sort_keys", l.max_sort_keys),
        ("limits.max_includes", l.max_includes),
        ("limits.max_elements", l.max_elements),
    ] {
        if value == 0 {
            return Err(invalid(setting, "must be at least 1"));
        }
    }
    for (setting, value) in [
        ("limits.max_body_bytes", l.max_body_bytes),
        ("limits.max_search_body_bytes", l.max_search_body_bytes),
    ] {
        if value > 1024 * 1024 * 1024 {
            return Err(invalid(setting, "must be at most 1073741824 (1 GiB)"));
        }
    }
    Ok(*l)
}

/// Validates `[server]`'s connection handling.
fn server_limits(s: &ServerSection) -> Result<crate::run::ServerLimits, ConfigError> {
    if !(1..=300).contains(&s.header_read_timeout_secs) {
        return Err(invalid("server.header_read_timeout_secs", "must be between 1 and 300"));
    }
    if !(1..=3600).contains(&s.body_read_timeout_secs) {
        return Err(invalid("server.body_read_timeout_secs", "must be between 1 and 3600"));
    }
    if !(1..=1_000_000).contains(&s.max_connections) {
        return Err(invalid("server.max_connections", "must be between 1 and 1000000"));
    }
    Ok(crate::run::ServerLimits {
        header_read_timeout: Duration::from_secs(s.header_read_timeout_secs),
        body_read_timeout: Duration::from_secs(s.body_read_timeout_secs),
        max_connections: s.max_connections,
    })
}

/// Validates `[rate_limit]`.
fn rate_limit_settings(r: &RateLimitSection) -> Result<Option<crate::ratelimit::RateLimitSettings>, ConfigError> {
    if !r.enabled {
        return Ok(None);
    }
    if r.per_client_per_minute == 0 {
        return Err(invalid(
            "rate_limit.per_client_per_minute",
            "must be at least 1 (or set rate_limit.enabled = false)",
        ));
    }
    if r.burst == 0 {
        return Err(invalid("rate_limit.burst", "must be at least 1"));
    }
    Ok(crate::ratelimit::RateLimitSettings::new(
        r.per_client_per_minute,
        r.burst,
    ))
}

/// Validates `[resilience]`.
fn resilience_settings(r: &ResilienceSection) -> Result<ResilienceSettings, ConfigError> {
    if !(1..=3600).contains(&r.deadline_secs) {
        return Err(invalid("resilience.deadline_secs", "must be between 1 and 3600"));
    }
    if r.max_retries > 10 {
        return Err(invalid("resilience.max_retries", "must be at most 10"));
    }
    if !(1..=60_000).contains(&r.backoff_base_ms) {
        return Err(invalid("resilience.backoff_base_ms", "must be between 1 and 60000"));
    }
    if !(r.backoff_base_ms..=60_000).contains(&r.backoff_max_ms) {
        return Err(invalid(
            "resilience.backoff_max_ms",
            "must be between resilience.backoff_base_ms and 60000",
        ));
    }
    if r.max_retry_after_secs > 3600 {
        return Err(invalid("resilience.max_retry_after_secs", "must be at most 3600"));
    }
    if r.breaker_failures > 0 && !(1..=86_400).contains(&r.breaker_cooldown_secs) {
        return Err(invalid(
            "resilience.breaker_cooldown_secs",
            "must be between 1 and 86400 (or set resilience.breaker_failures = 0)",
        ));
    }
    let settings = ResilienceSettings {
        deadline: Duration::from_secs(r.deadline_secs),
        max_retries: r.max_retries,
        backoff_base: Duration::from_millis(r.backoff_base_ms),
        backoff_max: Duration::from_millis(r.backoff_max_ms),
        max_retry_after: Duration::from_secs(r.max_retry_after_secs),
        breaker_failures: r.breaker_failures,
        breaker_cooldown: Duration::from_secs(r.breaker_cooldown_secs),
        budgets: Vec::new(),
    };
    settings.validate().map_err(|reason| invalid("resilience", reason))?;
    Ok(settings)
}

/// Validates `[auth]` (mode `smart`) into the SMART settings.
fn auth_settings(a: AuthSection, base: Url) -> Result<smart_auth::AuthSettings, ConfigError> {
    use smart_auth::{ClientAuth, ClientRegistration, ExternalIdp, GrantType, UserAccount};
    let mut s = smart_auth::AuthSettings::new(base);
    s.data_dir = a.data_dir.map(std::path::PathBuf::from);
    s.signing_key_pem = a.signing_key;
    if let Some(t) = a.access_token_ttl_secs {
        if !(60..=86_400).contains(&t) {
            return Err(invalid("auth.access_token_ttl_secs", "must be between 60 and 86400"));
        }
        s.access_token_ttl = Duration::from_secs(t);
    }
    if let Some(t) = a.refresh_token_ttl_secs {
        if t < 60 {
            return Err(invalid("auth.refresh_token_ttl_secs", "must be at least 60"));
        }
        s.refresh_token_ttl = Duration::from_secs(t);
    }
    if let Some(n) = a.max_concurrent_password_checks {
        s.max_concurrent_password_checks = n;
    }
    if let Some(ms) = a.password_check_wait_ms {
        if ms > 10_000 {
            return Err(invalid("auth.password_check_wait_ms", "must be at most 10000"));
        }
        s.password_check_wait = Duration::from_millis(ms);
    }
    if let Some(n) = a.login_failures_per_user {
        if n == 0 {
            return Err(invalid("auth.login_failures_per_user", "must be at least 1"));
        }
        s.login_failures_per_user = n;
    }
    if let Some(n) = a.login_failures_per_ip {
        if n == 0 {
            return Err(invalid("auth.login_failures_per_ip", "must be at least 1"));
        }
        s.login_failures_per_ip = n;
    }
    if let Some(t) = a.login_lockout_max_secs {
        if !(1..=86_400).contains(&t) {
            return Err(invalid("auth.login_lockout_max_secs", "must be between 1 and 86400"));
        }
        s.login_lockout_max = Duration::from_secs(t);
    }
    if let Some(n) = a.max_pending_logins_per_ip {
        s.max_pending_logins_per_ip = n;
    }
    for (i, c) in a.clients.into_iter().enumerate() {
        let at = |key: &str| format!("auth.clients[{i}].{key}");
        if c.client_id.trim().is_empty() {
            return Err(invalid(&at("client_id"), "must not be empty"));
        }
        let auth = match c.auth.as_str() {
            "public" => ClientAuth::Public,
            "client_secret_basic" => ClientAuth::SecretBasic {
                secret_hash: c
                    .secret_hash
                    .filter(|h| h.starts_with("$argon2"))
                    .ok_or_else(|| invalid(&at("secret_hash"), "must be an argon2 PHC string"))?,
            },
            "private_key_jwt" => {
                let jwks = match &c.jwks {
                    None => None,
                    Some(text) => Some(
                        serde_json::from_str::<serde_json::Value>(text)
                            .map_err(|_| invalid(&at("jwks"), "must be a JWKS JSON document"))?,
                    ),
                };
                if jwks.is_none() && c.jwks_url.is_none() {
                    return Err(invalid(&at("jwks"), "a private_key_jwt client needs jwks or jwks_url"));
                }
                ClientAuth::PrivateKeyJwt {
                    jwks,
                    jwks_url: c.jwks_url,
                }
            }
            other => {
                return Err(invalid(
                    &at("auth"),
                    format!("'{other}' is not one of public, client_secret_basic, private_key_jwt"),
                ));
            }
        };
        if smart_auth::scopes::ScopeSet::parse(&c.scopes).is_err() {
            return Err(invalid(&at("scopes"), "holds a scope that is not valid SMART syntax"));
        }
        let mut grant_types = Vec::new();
        for g in &c.grant_types {
            grant_types.push(GrantType::parse(g).ok_or_else(|| {
                invalid(
                    &at("grant_types"),
                    format!("'{g}' is not one of authorization_code, refresh_token, client_credentials"),
                )
            })?);
        }
        s.clients.push(ClientRegistration {
            name: c.name.unwrap_or_else(|| c.client_id.clone()),
            client_id: c.client_id,
            auth,
            redirect_uris: c.redirect_uris,
            allow_loopback_any_port: c.allow_loopback_any_port,
            scopes: c.scopes,
            grant_types,
        });
    }
    for (i, u) in a.users.into_iter().enumerate() {
        if !u.password_hash.starts_with("$argon2") {
            return Err(invalid(
                &format!("auth.users[{i}].password_hash"),
                "must be an argon2 PHC string",
            ));
        }
        if !(u.fhir_user.starts_with("Practitioner/") || u.fhir_user.starts_with("Patient/")) {
            return Err(invalid(
                &format!("auth.users[{i}].fhir_user"),
                "must be Practitioner/{id} or Patient/{id}",
            ));
        }
        s.users.push(UserAccount {
            username: u.username,
            password_hash: u.password_hash,
            display_name: u.display_name,
            fhir_user: u.fhir_user,
        });
    }
    if let Some(e) = a.external {
        let audience = e
            .audience
            .unwrap_or_else(|| format!("{}/fhir", s.base_url.as_str().trim_end_matches('/')));
        let mut idp = ExternalIdp::new(e.issuer, e.jwks_url, audience);
        if let Some(c) = e.patient_claim {
            idp.patient_claim = c;
        }
        if e.fhir_user_claim.is_some() {
            idp.fhir_user_claim = e.fhir_user_claim;
        }
        s.external = Some(idp);
    }
    if s.clients.is_empty() && s.external.is_none() {
        return Err(invalid(
            "auth.clients",
            "mode 'smart' needs at least one [[auth.clients]] or an [auth.external] issuer",
        ));
    }
    Ok(s)
}

/// Validates `[noa]`: the callback URL is built from `server.public_url`, which Noa must reach.
fn noa_config(
    n: NoaSection,
    public_url: Option<&Url>,
    timezone: Tz,
    resilience: &ResilienceSettings,
) -> Result<adapter_noa::NoaConfig, ConfigError> {
    for (name, value) in [
        ("noa.client_id", &n.client_id),
        ("noa.client_secret", &n.client_secret),
        ("noa.webhook_secret", &n.webhook_secret),
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
    let mut c = adapter_noa::NoaConfig::new(n.client_id, n.client_secret.as_str(), n.webhook_secret.as_str());
    if let Some(u) = &n.api_base {
        c = c.with_api_base(Url::parse(u).map_err(|_| invalid("noa.api_base", "must be an absolute URL"))?);
    }
    let callback = format!(
        "{}/webhooks/noa/{}",
        public_url.as_str().trim_end_matches('/'),
        c.webhook_secret.expose()
    );
    c = c.with_webhook_url(callback);
    if let Some(v) = n.api_version {
        c.api_version = v;
    }
    if let Some(e) = n.ehr_source {
        c.ehr_source = e;
    }
    if let Some(k) = n.patient_metadata_key {
        c.patient_metadata_key = k;
    }
    c.default_language = n.default_language;
    c.default_timezone = match &n.timezone {
        Some(tz) => parse_tz("noa.timezone", tz)?,
        None => timezone,
    };
    if let Some(p) = n.page_size {
        c.page_size = p;
    }
    if let Some(t) = n.request_timeout_secs {
        c.request_timeout = Duration::from_secs(t);
    }
    c.resilience = resilience.clone();
    let p = n.paths;
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

fn parse_tz(setting: &str, value: &str) -> Result<Tz, ConfigError> {
    value
        .parse::<Tz>()
        .map_err(|_| invalid(setting, format!("'{value}' is not an IANA time zone name")))
}

impl RawConfig {
    /// Checks every setting.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let listen: SocketAddr = self
            .server
            .listen
            .parse()
            .map_err(|_| invalid("server.listen", "must be an address like 127.0.0.1:8080"))?;
        let public_url = match &self.server.public_url {
            None => None,
            Some(u) => {
                let url = Url::parse(u).map_err(|_| invalid("server.public_url", "must be an absolute http(s) URL"))?;
                if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
                    return Err(invalid(
                        "server.public_url",
                        "must be an absolute http(s) URL without a query",
                    ));
                }
                Some(url)
            }
        };
        if !(1..=3600).contains(&self.server.request_timeout_secs) {
            return Err(invalid("server.request_timeout_secs", "must be between 1 and 3600"));
        }
        if self.fhir.default_count == 0 || self.fhir.max_count == 0 || self.fhir.default_count > self.fhir.max_count {
            return Err(invalid("fhir.default_count", "must be between 1 and fhir.max_count"));
        }
        if self.fhir.vendor_calls_per_page == 0 {
            return Err(invalid("fhir.vendor_calls_per_page", "must be at least 1"));
        }
        let timezone = parse_tz("fhir.timezone", &self.fhir.timezone)?;
        let paging_secret = match self.paging.secret {
            Some(s) if s.len() < 32 => {
                return Err(invalid("paging.secret", "must be at least 32 characters"));
            }
            other => other.map(Secret::new),
        };
        if self.paging.link_ttl_secs <= 0 {
            return Err(invalid("paging.link_ttl_secs", "must be positive"));
        }
        let auth = match self.auth.mode.as_deref() {
            None | Some("none") => None,
            Some("smart") => {
                let base = public_url
                    .clone()
                    .or_else(|| Url::parse(&format!("http://{listen}")).ok())
                    .ok_or_else(|| invalid("server.public_url", "must be set"))?;
                Some(auth_settings(self.auth, base)?)
            }
            Some(other) => {
                return Err(invalid(
                    "auth.mode",
                    format!("'{other}' is not a mode: use 'smart' or 'none'"),
                ));
            }
        };
        let auth_configured = auth.is_some();
        let server_limits = server_limits(&self.server)?;
        let rate_limit = rate_limit_settings(&self.rate_limit)?;
        if self.metrics.require_token && !auth_configured {
            return Err(invalid(
                "metrics.require_token",
                "needs auth.mode = \"smart\" (nothing else can verify a token)",
            ));
        }
        let resilience = resilience_settings(&self.resilience)?;
        let drchrono = match self.drchrono {
            None => None,
            Some(d) => {
                let base =
                    Url::parse(&d.base_url).map_err(|_| invalid("drchrono.base_url", "must be an absolute URL"))?;
                for (name, value) in [
                    ("drchrono.client_id", &d.client_id),
                    ("drchrono.client_secret", &d.client_secret),
                    ("drchrono.refresh_token", &d.refresh_token),
                    ("drchrono.redirect_uri", &d.redirect_uri),
                ] {
                    if value.trim().is_empty() {
                        return Err(invalid(name, "must not be empty"));
                    }
                }
                let mut c = DrChronoConfig::new(
                    d.client_id,
                    d.client_secret.as_str(),
                    d.refresh_token.as_str(),
                    d.redirect_uri,
                )
                .with_base_url(base);
                if let Some(secret) = &d.webhook_secret {
                    c = c.with_webhook_secret(secret.as_str());
                }
                if let Some(tz) = &d.timezone {
                    c.default_timezone = parse_tz("drchrono.timezone", tz)?;
                } else {
                    c.default_timezone = timezone;
                }
                if let Some(p) = d.page_size {
                    c.page_size = p;
                }
                if let Some(t) = d.request_timeout_secs {
                    c.request_timeout = Duration::from_secs(t);
                }
                if let Some(a) = d.account {
                    c.account = a;
                }
                if let Some(limit) = d.hourly_limit {
                    c.hourly_limit = limit;
                }
                c.resilience = resilience.clone();
                c.validate().map_err(|e| match e {
                    adapter_drchrono::ConfigError::Invalid { setting, reason } => {
                        invalid(&format!("drchrono.{setting}"), reason)
                    }
                    other => invalid("drchrono", other.to_string()),
                })?;
                Some(c)
            }
        };
        let zoom = match self.zoom {
            None => None,
            Some(z) => {
                for (name, value) in [
                    ("zoom.account_id", &z.account_id),
                    ("zoom.client_id", &z.client_id),
                    ("zoom.client_secret", &z.client_secret),
                    ("zoom.webhook_secret", &z.webhook_secret),
                ] {
                    if value.trim().is_empty() {
                        return Err(invalid(name, "must not be empty"));
                    }
                }
                let mut c = adapter_zoom::ZoomConfig::new(
                    z.account_id,
                    z.client_id,
                    z.client_secret.as_str(),
                    z.webhook_secret.as_str(),
                );
                if let Some(u) = &z.api_base {
                    c = c
                        .with_api_base(Url::parse(u).map_err(|_| invalid("zoom.api_base", "must be an absolute URL"))?);
                }
                if let Some(u) = &z.oauth_base {
                    c = c.with_oauth_base(
                        Url::parse(u).map_err(|_| invalid("zoom.oauth_base", "must be an absolute URL"))?,
                    );
                }
                if let Some(e) = z.ehr_source {
                    c.ehr_source = e;
                }
                c.default_timezone = match &z.timezone {
                    Some(tz) => parse_tz("zoom.timezone", tz)?,
                    None => timezone,
                };
                if let Some(p) = z.page_size {
                    c.page_size = p;
                }
                if let Some(t) = z.request_timeout_secs {
                    c.request_timeout = Duration::from_secs(t);
                }
                if let Some(a) = z.account {
                    c.account = a;
                }
                c.rate_limits = adapter_zoom::ZoomRateLimits {
                    light: z.rate_limits.light,
                    medium: z.rate_limits.medium,
                    heavy: z.rate_limits.heavy,
                };
                c.resilience = resilience.clone();
                c.validate().map_err(|e| match e {
                    adapter_zoom::ConfigError::Invalid { setting, reason } => {
                        invalid(&format!("zoom.{setting}"), reason)
                    }
                    other => invalid("zoom", other.to_string()),
                })?;
                Some(c)
            }
        };
        let cache = cache_settings(&self.cache)?;
        let limits = limits_settings(&self.limits)?;
        let noa = match self.noa {
            None => None,
            Some(n) => Some(noa_config(n, public_url.as_ref(), timezone, &resilience)?),
        };
        Ok(Settings {
            zoom,
            noa,
            cache,
            limits,
            listen,
            public_url,
            default_count: self.fhir.default_count,
            max_count: self.fhir.max_count,
            timezone,
            vendor_calls_per_page: self.fhir.vendor_calls_per_page,
            max_materialized: self.fhir.max_materialized,
            paging_secret,
            link_ttl: Duration::from_secs(self.paging.link_ttl_secs as u64),
            request_deadline: Duration::from_secs(self.server.request_timeout_secs),
            server_limits,
            rate_limit,
            metrics_require_token: self.metrics.require_token,
            auth_configured,
            auth,
            drchrono,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const GOOD: &str = r#"
[server]
listen = "127.0.0.1:9090"
[paging]
secret = "0123456789abcdef0123456789abcdef"
[drchrono]
client_id = "cid"
client_secret = "s3cret"
refresh_token = "rt"
redirect_uri = "https://gw.example/cb"
timezone = "America/Chicago"
"#;

    pub(super) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    pub(super) fn err(text: &str, e: &[(&str, &str)]) -> String {
        Settings::from_toml(text, &env(e)).unwrap_err().to_string()
    }

    #[test]
    fn loads_a_good_file_and_applies_the_environment() {
        let s = Settings::from_toml(
            GOOD,
            &env(&[
                ("FHIR_GATEWAY__DRCHRONO__CLIENT_ID", "other"),
                ("FHIR_GATEWAY__FHIR__MAX_COUNT", "200"),
            ]),
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9090);
        let d = s.drchrono.unwrap();
        assert_eq!(d.client_id, "other");
        assert_eq!(d.default_timezone, chrono_tz::America::Chicago);
        assert_eq!(s.max_count, 200);
        assert!(!s.auth_configured);
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let dir = std::env::temp_dir().join(format!("fhir-gw-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("secret");
        std::fs::write(&f, "from-file\n").unwrap();
        let text = GOOD.replace(
            "client_secret = \"s3cret\"",
            &format!("client_secret_file = \"{}\"", f.display()),
        );
        let s = Settings::from_toml(&text, &BTreeMap::new()).unwrap();
        let d = s.drchrono.unwrap();
        assert_eq!(d.client_secret.expose(), "from-file");
        assert!(!format!("{d:?}").contains("from-file"));
        let both = GOOD.replace(
            "client_secret = \"s3cret\"",
            &format!("client_secret = \"x\"\nclient_secret_file = \"{}\"", f.display()),
        );
        assert!(err(&both, &[]).contains("drchrono.client_secret_file"));
        let missing = GOOD.replace("client_secret = \"s3cret\"", "client_secret_file = \"/nonexistent/x\"");
        assert!(err(&missing, &[]).contains("drchrono.client_secret_file"));
    }

    #[test]
    fn errors_name_the_setting() {
        assert!(err(&GOOD.replace("127.0.0.1:9090", "nowhere"), &[]).contains("server.listen"));
        assert!(
            err(
                &GOOD.replace(
                    "listen = \"127.0.0.1:9090\"",
                    "listen = \"127.0.0.1:9090\"\nrequest_timeout_secs = 0"
                ),
                &[]
            )
            .contains("server.request_timeout_secs")
        );
        assert!(err(&GOOD.replace("America/Chicago", "Mars/Olympus"), &[]).contains("drchrono.timezone"));
        assert!(err(&GOOD.replace("0123456789abcdef0123456789abcdef", "short"), &[]).contains("paging.secret"));
        assert!(err(&format!("{GOOD}\nshoe = 1"), &[]).contains("shoe"));
        assert!(
            err(
                &GOOD.replace("client_id = \"cid\"", "client_id = \"cid\"\nclient_idd = 2"),
                &[]
            )
            .contains("drchrono")
        );
        assert!(err(&GOOD.replace("client_id = \"cid\"\n", ""), &[]).contains("drchrono"));
        assert!(err(GOOD, &[("FHIR_GATEWAY__FHIR__DEFAULT_COUNT", "0")]).contains("fhir.default_count"));
        assert!(err(GOOD, &[("FHIR_GATEWAY__AUTH__MODE", "smart")]).contains("auth.clients"));
        assert!(err(GOOD, &[("FHIR_GATEWAY__AUTH__MODE", "kerberos")]).contains("auth.mode"));
        assert!(err(GOOD, &[("FHIR_GATEWAY__DRCHRONO__BASE_URL", "ftp://x")]).contains("drchrono.base_url"));
        assert!(err("[server", &[]).contains("TOML"));
    }

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

#[cfg(test)]
mod auth_tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$6Cg4CrTvFGyY5w0P3uT1Y0k0lZ5qf8Qw2QJt0s6X1fI";

    fn smart(body: &str) -> Result<Settings, ConfigError> {
        let text = format!(
            "[server]\npublic_url = \"https://gw.example\"\n[drchrono]\nclient_id = \"c\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\nredirect_uri = \"https://gw.example/cb\"\n[auth]\nmode = \"smart\"\n{body}"
        );
        Settings::from_toml(&text, &BTreeMap::new())
    }

    #[test]
    fn smart_clients_users_and_an_external_issuer() {
        let s = smart(&format!(
            r#"[[auth.clients]]
client_id = "ehr"
auth = "client_secret_basic"
secret_hash = "{HASH}"
scopes = "system/*.rs launch"
grant_types = ["client_credentials"]
[[auth.clients]]
client_id = "app"
auth = "public"
redirect_uris = ["https://app.example/cb"]
scopes = "openid fhirUser launch/patient patient/*.rs offline_access"
grant_types = ["authorization_code", "refresh_token"]
[[auth.users]]
username = "dr"
password_hash = "{HASH}"
display_name = "Dr"
fhir_user = "Practitioner/drchrono-1"
[auth.external]
issuer = "https://idp.example"
jwks_url = "https://idp.example/jwks"
"#
        ))
        .unwrap();
        assert!(s.auth_configured);
        let auth = s.auth.unwrap();
        assert_eq!(auth.clients.len(), 2);
        assert_eq!(auth.users[0].fhir_user, "Practitioner/drchrono-1");
        let external = auth.external.unwrap();
        assert_eq!(external.audience, "https://gw.example/fhir");
        assert_eq!(auth.base_url.as_str(), "https://gw.example/");
    }

    #[test]
    fn the_cache_is_on_by_default_and_configurable() {
        let on = smart("[[auth.clients]]\nclient_id = \"x\"\nauth = \"public\"\nscopes = \"patient/*.rs\"\ngrant_types = [\"authorization_code\"]\n")
            .unwrap();
        assert_eq!(on.cache.unwrap().max_bytes, 64 * 1024 * 1024);
        let base = "[server]\npublic_url = \"https://gw.example\"\n[drchrono]\nclient_id = \"c\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\nredirect_uri = \"https://gw.example/cb\"\n";
        let load = |extra: &str| Settings::from_toml(&format!("{base}{extra}"), &BTreeMap::new());
        assert!(load("[cache]\nenabled = false\n").unwrap().cache.is_none());
        let c = load("[cache]\nmax_mb = 8\nsearch_ttl_secs = 5\n[cache.read_ttl_secs]\nPatient = 30\n")
            .unwrap()
            .cache
            .unwrap();
        assert_eq!(c.max_bytes, 8 * 1024 * 1024);
        assert_eq!(c.search_ttl, Duration::from_secs(5));
        assert_eq!(c.read_ttl[&adapter::ResourceType::Patient], Duration::from_secs(30));
        let e = load("[cache.read_ttl_secs]\nObservation = 30\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cache.read_ttl_secs.Observation"), "{e}");
        let e = load("[cache]\nmax_mb = 0\n").unwrap_err().to_string();
        assert!(e.contains("cache.max_mb"), "{e}");
        let c = load("[cache]\nstale_if_error_secs = 0\n").unwrap().cache.unwrap();
        assert_eq!(c.stale_if_error, Duration::ZERO);
        let e = load("[cache]\nstale_if_error_secs = 100000\n").unwrap_err().to_string();
        assert!(e.contains("cache.stale_if_error_secs"), "{e}");
    }

    #[test]
    fn bad_auth_settings_are_named() {
        let client = |extra: &str| {
            format!(
                "[[auth.clients]]\nclient_id = \"x\"\nscopes = \"system/*.rs\"\ngrant_types = [\"client_credentials\"]\n{extra}"
            )
        };
        let e = smart(&client("auth = \"telepathy\"")).unwrap_err().to_string();
        assert!(e.contains("auth.clients[0].auth"), "{e}");
        let e = smart(&client("auth = \"client_secret_basic\"\nsecret_hash = \"plain\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.clients[0].secret_hash"), "{e}");
        let e = smart(&client("auth = \"private_key_jwt\"")).unwrap_err().to_string();
        assert!(e.contains("auth.clients[0].jwks"), "{e}");
        let e = smart(&client("auth = \"public\"").replace("system/*.rs", "patient/Appointment.sr"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.clients[0].scopes"), "{e}");
        let e = smart(&format!(
            "[[auth.users]]\nusername = \"u\"\npassword_hash = \"{HASH}\"\ndisplay_name = \"U\"\nfhir_user = \"Device/1\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("auth.users[0].fhir_user"), "{e}");
        let e = smart("access_token_ttl_secs = 5\n").unwrap_err().to_string();
        assert!(e.contains("auth.access_token_ttl_secs"), "{e}");
        for (body, setting) in [
            ("password_check_wait_ms = 60000\n", "auth.password_check_wait_ms"),
            ("login_failures_per_user = 0\n", "auth.login_failures_per_user"),
            ("login_failures_per_ip = 0\n", "auth.login_failures_per_ip"),
            ("login_lockout_max_secs = 0\n", "auth.login_lockout_max_secs"),
        ] {
            let e = smart(body).unwrap_err().to_string();
            assert!(e.contains(setting), "{body}: {e}");
        }
    }

    #[test]
    fn sign_in_bounds_are_settings() {
        let s = smart(
            "max_concurrent_password_checks = 3\npassword_check_wait_ms = 50\nlogin_failures_per_user = 4\nlogin_failures_per_ip = 9\nlogin_lockout_max_secs = 60\nmax_pending_logins_per_ip = 7\n[[auth.clients]]\nclient_id = \"x\"\nauth = \"public\"\nredirect_uris = [\"https://app.example/cb\"]\nscopes = \"patient/*.rs\"\ngrant_types = [\"authorization_code\"]\n",
        )
        .unwrap();
        let a = s.auth.unwrap();
        assert_eq!(a.max_concurrent_password_checks, 3);
        assert_eq!(a.password_check_wait, Duration::from_millis(50));
        assert_eq!((a.login_failures_per_user, a.login_failures_per_ip), (4, 9));
        assert_eq!(a.login_lockout_max, Duration::from_secs(60));
        assert_eq!(a.max_pending_logins_per_ip, 7);
    }
}

#[cfg(test)]
mod sample_tests {
    use super::tests::{GOOD, env, err};
    use super::*;

    /// `examples/gateway.toml` stays a valid configuration (its secret files are provided here).
    #[test]
    fn the_sample_configuration_loads() {
        let dir = std::env::temp_dir().join(format!("fhir-gw-sample-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/gateway.toml")).unwrap();
        for (name, value) in [
            ("fhir-gateway-paging", "0123456789abcdef0123456789abcdef"),
            ("drchrono-client-secret", "secret"),
            ("drchrono-refresh-token", "refresh"),
            ("drchrono-webhook-secret", "dhook"),
            ("zoom-client-secret", "zsecret"),
            ("zoom-webhook-secret", "zhook"),
            ("noa-client-secret", "nsecret"),
            ("noa-webhook-secret", "0123456789abcdefghijklmnopqrstuvwxyz"),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, format!("{value}\n")).unwrap();
            text = text.replace(&format!("/run/secrets/{name}"), &path.display().to_string());
        }
        let s = Settings::from_toml(&text, &BTreeMap::new()).unwrap();
        let drchrono = s.drchrono.unwrap();
        assert_eq!(drchrono.refresh_token.expose(), "refresh");
        assert_eq!(drchrono.webhook_secret.as_ref().map(|w| w.expose()), Some("dhook"));
        let zoom = s.zoom.unwrap();
        assert_eq!(
            (zoom.client_secret.expose(), zoom.webhook_secret.expose()),
            ("zsecret", "zhook")
        );
        assert_eq!(zoom.ehr_source, "drchrono");
        assert_eq!(zoom.rate_limits, adapter_zoom::ZoomRateLimits::default());
        assert_eq!(drchrono.hourly_limit, 500);
        assert_eq!(zoom.resilience, ResilienceSettings::default());
        assert_eq!(s.public_url.unwrap().as_str(), "https://fhir.clinic.example/");
        let noa = s.noa.unwrap();
        assert_eq!(noa.client_secret.expose(), "nsecret");
        assert_eq!(
            noa.webhook_url.as_deref(),
            Some("https://fhir.clinic.example/webhooks/noa/0123456789abcdefghijklmnopqrstuvwxyz")
        );
        assert_eq!(noa.paths.sessions, "consumers/sessions");
        assert_eq!(noa.resilience, ResilienceSettings::default());
        let debug = format!("{noa:?}");
        assert!(
            !debug.contains("nsecret") && !debug.contains("0123456789abcdefghijklmnopqrstuvwxyz"),
            "secrets stay out of Debug: {debug}"
        );
    }

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

    #[test]
    fn limits_have_defaults_overrides_and_named_errors() {
        let s = Settings::from_toml(GOOD, &BTreeMap::new()).unwrap();
        assert_eq!(s.limits, crate::query::Limits::default());
        assert_eq!(s.cache.as_ref().map(|c| c.not_found_ttl), Some(Duration::from_secs(30)));
        let s = Settings::from_toml(
            &format!("{GOOD}[limits]\nmax_params = 20\nmax_sort_keys = 3\n[cache]\nnot_found_ttl_secs = 0\n"),
            &env(&[("FHIR_GATEWAY__LIMITS__MAX_BODY_BYTES", "4096")]),
        )
        .unwrap();
        assert_eq!(
            s.limits,
            crate::query::Limits {
                max_params: 20,
                max_sort_keys: 3,
                max_body_bytes: 4096,
                ..crate::query::Limits::default()
            }
        );
        assert_eq!(s.cache.map(|c| c.not_found_ttl), Some(Duration::ZERO));
        assert_eq!(
            err(GOOD, &[("FHIR_GATEWAY__LIMITS__MAX_PARAMS", "0")]),
            "setting `limits.max_params`: must be at least 1"
        );
        for (key, value) in [
            ("LIMITS__MAX_BODY_BYTES", "0"),
            ("LIMITS__MAX_SEARCH_BODY_BYTES", "2000000000"),
            ("LIMITS__MAX_QUERY_BYTES", "0"),
            ("LIMITS__MAX_HEADER_BYTES", "0"),
            ("LIMITS__MAX_VALUE_LEN", "-1"),
            ("LIMITS__MAX_SORT_KEYS", "0"),
            ("LIMITS__MAX_INCLUDES", "0"),
            ("LIMITS__MAX_ELEMENTS", "many"),
            ("CACHE__NOT_FOUND_TTL_SECS", "7200"),
        ] {
            let setting = key.to_lowercase().replace("__", ".");
            let e = err(GOOD, &[(&format!("FHIR_GATEWAY__{key}"), value)]);
            assert!(e.contains(&setting), "{key}={value}: {e}");
        }
        let e = err(&format!("{GOOD}[limits]\nmax_parms = 3\n"), &[]);
        assert!(e.contains("limits"), "{e}");
    }
}

#[cfg(test)]
mod server_tests {
    use super::*;

    const BASE: &str = "[drchrono]\nclient_id = \"c\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\nredirect_uri = \"https://gw.example/cb\"\n";

    fn load(extra: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml(&format!("{extra}\n{BASE}"), &BTreeMap::new())
    }

    #[test]
    fn connection_limits_rate_limits_and_metrics_have_defaults() {
        let s = load("").unwrap();
        assert_eq!(s.server_limits, crate::run::ServerLimits::default());
        assert_eq!(s.server_limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.server_limits.body_read_timeout, Duration::from_secs(30));
        assert_eq!(s.server_limits.max_connections, 1024);
        assert_eq!(s.rate_limit, crate::ratelimit::RateLimitSettings::new(600, 100));
        assert!(!s.metrics_require_token);
        let s = load(
            "[server]\nheader_read_timeout_secs = 5\nbody_read_timeout_secs = 7\nmax_connections = 64\n\
             [rate_limit]\nper_client_per_minute = 120\nburst = 20\n",
        )
        .unwrap();
        assert_eq!(
            s.server_limits,
            crate::run::ServerLimits {
                header_read_timeout: Duration::from_secs(5),
                body_read_timeout: Duration::from_secs(7),
                max_connections: 64,
            }
        );
        assert_eq!(s.rate_limit, crate::ratelimit::RateLimitSettings::new(120, 20));
        assert!(load("[rate_limit]\nenabled = false\n").unwrap().rate_limit.is_none());
        let s = Settings::from_toml(
            BASE,
            &BTreeMap::from([("FHIR_GATEWAY__RATE_LIMIT__BURST".to_owned(), "7".to_owned())]),
        )
        .unwrap();
        assert_eq!(s.rate_limit, crate::ratelimit::RateLimitSettings::new(600, 7));
    }

    #[test]
    fn bad_server_rate_limit_and_metrics_settings_are_named() {
        for (extra, setting) in [
            (
                "[server]\nheader_read_timeout_secs = 0",
                "server.header_read_timeout_secs",
            ),
            (
                "[server]\nheader_read_timeout_secs = 301",
                "server.header_read_timeout_secs",
            ),
            ("[server]\nbody_read_timeout_secs = 0", "server.body_read_timeout_secs"),
            ("[server]\nmax_connections = 0", "server.max_connections"),
            (
                "[rate_limit]\nper_client_per_minute = 0",
                "rate_limit.per_client_per_minute",
            ),
            ("[rate_limit]\nburst = 0", "rate_limit.burst"),
            ("[rate_limit]\nburst = -1", "rate_limit.burst"),
            ("[rate_limit]\nper_minute = 5", "rate_limit"),
            ("[metrics]\nrequire_token = true", "metrics.require_token"),
        ] {
            let e = load(extra).unwrap_err().to_string();
            assert!(e.contains(setting), "{extra}: {e}");
        }
    }
}
