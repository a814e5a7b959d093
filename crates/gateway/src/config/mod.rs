//! Configuration: a TOML file, overridden by environment variables, with secrets read from files.
//!
//! Every setting has a dotted name (`drchrono.client_id`). The environment variable
//! `FHIR_GATEWAY__DRCHRONO__CLIENT_ID` overrides it; a key ending in `_file` (`client_secret_file`)
//! reads the setting from that file instead (trailing newline trimmed), for container secrets.
//! Validation happens once, at start-up, and every error names the setting.
//!
//! Two steps, as in ripgrep: the layered TOML table is deserialized into [`RawConfig`] (a `…Section`
//! struct per table, unknown keys refused), then [`RawConfig::validate`] turns each section into the
//! validated settings its module owns (`server`, `fhir`, `paging`, `auth`, `rate_limit`, `metrics`,
//! `resilience`, `drchrono`, `zoom`, `cache`, `limits`, `noa`) and gathers them into [`Settings`].
//!
//! The layering is hand-written rather than figment's `Env` + `Toml`: the environment comes in as a
//! map (tests need not change the process environment, which is `unsafe` in edition 2024), the prefix
//! is matched case-sensitively, a value is typed only as an integer or `true`/`false` (figment would
//! read `1.0` as a float, refused by the string `noa.api_version`, and `[…]`, `{…}` or quoted secrets
//! as arrays, tables or unquoted strings), and a bad value is reported in serde's own words under the
//! setting's dotted name.

mod audit;
mod auth;
mod cache;
mod drchrono;
mod fhir;
mod limits;
mod metrics;
mod noa;
mod paging;
mod rate_limit;
mod resilience;
mod server;
mod store;
mod zoom;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use adapter::Secret;
use adapter_drchrono::DrChronoConfig;
use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

pub use audit::AuditSection;
pub use auth::{AuthSection, ClientSection, ExternalSection, UserSection};
pub use cache::CacheSection;
pub use drchrono::DrChronoSection;
pub use fhir::FhirSection;
pub use metrics::MetricsSection;
pub use noa::{NoaPathsSection, NoaSection};
pub use paging::PagingSection;
pub use rate_limit::RateLimitSection;
pub use resilience::ResilienceSection;
pub use server::ServerSection;
pub use store::{DEFAULT_PATH as DEFAULT_STORE_PATH, StoreSection, store_key_required};
pub use zoom::{ZoomRateLimitsSection, ZoomSection};

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
    pub store: StoreSection,
    pub audit: AuditSection,
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
    /// `[store]`: where the gateway's own state lives.
    pub store: ::store::StoreSettings,
    /// `[audit]`.
    pub audit: crate::audit::AuditSettings,
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

impl RawConfig {
    /// Checks every setting, section by section. The sections are checked in this order (a section
    /// may need another's result: the listener, the time zone, the resilience settings), and the first
    /// error found is the one reported.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let endpoint = self.server.endpoint()?;
        let fhir = self.fhir.validate()?;
        let paging = self.paging.validate()?;
        let auth = self.auth.validate(endpoint.listen, endpoint.public_url.as_ref())?;
        let auth_configured = auth.is_some();
        let server_limits = self.server.limits()?;
        let rate_limit = self.rate_limit.validate()?;
        let metrics_require_token = self.metrics.validate(auth_configured)?;
        let resilience = self.resilience.validate()?;
        let drchrono = self
            .drchrono
            .map(|d| d.validate(fhir.timezone, &resilience))
            .transpose()?;
        let zoom = self.zoom.map(|z| z.validate(fhir.timezone, &resilience)).transpose()?;
        let cache = self.cache.validate()?;
        let limits = limits::validate(&self.limits)?;
        let store = self.store.validate()?;
        let audit = self.audit.validate()?;
        let noa = self
            .noa
            .map(|n| n.validate(endpoint.public_url.as_ref(), fhir.timezone, &resilience))
            .transpose()?;
        Ok(Settings {
            store,
            audit,
            zoom,
            noa,
            cache,
            limits,
            listen: endpoint.listen,
            public_url: endpoint.public_url,
            default_count: fhir.default_count,
            max_count: fhir.max_count,
            timezone: fhir.timezone,
            vendor_calls_per_page: fhir.vendor_calls_per_page,
            max_materialized: fhir.max_materialized,
            paging_secret: paging.secret,
            link_ttl: paging.link_ttl,
            request_deadline: endpoint.request_deadline,
            server_limits,
            rate_limit,
            metrics_require_token,
            auth_configured,
            auth,
            drchrono,
        })
    }
}

fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

fn parse_tz(setting: &str, value: &str) -> Result<Tz, ConfigError> {
    value
        .parse::<Tz>()
        .map_err(|_| invalid(setting, format!("'{value}' is not an IANA time zone name")))
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

#[cfg(test)]
mod tests {
    use adapter::resilience::ResilienceSettings;

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

    /// `GOOD`-like settings with `auth.mode = "smart"` and `body` appended to `[auth]`.
    pub(super) fn smart(body: &str) -> Result<Settings, ConfigError> {
        let text = format!(
            "[server]\npublic_url = \"https://gw.example\"\n[drchrono]\nclient_id = \"c\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\nredirect_uri = \"https://gw.example/cb\"\n[auth]\nmode = \"smart\"\n{body}"
        );
        Settings::from_toml(&text, &BTreeMap::new())
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
            ("fhir-gateway-store-key", &"5a".repeat(32)),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, format!("{value}\n")).unwrap();
            text = text.replace(&format!("/run/secrets/{name}"), &path.display().to_string());
        }
        let s = Settings::from_toml(&text, &BTreeMap::new()).unwrap();
        assert_eq!(s.store.location, ::store::Location::Sqlite("data/gateway.db".into()));
        assert!(s.store.sealing_key.is_some());
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
}
