//! `[server]`: where the gateway listens, the URL clients reach it at, and how it treats connections.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::{ConfigError, invalid};

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

/// `[server]`'s address, public URL and request deadline, validated.
#[derive(Debug)]
pub(super) struct Endpoint {
    pub(super) listen: SocketAddr,
    pub(super) public_url: Option<Url>,
    pub(super) request_deadline: Duration,
}

impl ServerSection {
    /// Validates where the gateway listens and is reached, and the request deadline. The connection
    /// settings are checked apart ([`ServerSection::limits`]), later, as they always were: the first
    /// error a file reports does not change.
    pub(super) fn endpoint(&self) -> Result<Endpoint, ConfigError> {
        let listen: SocketAddr = self
            .listen
            .parse()
            .map_err(|_| invalid("server.listen", "must be an address like 127.0.0.1:8080"))?;
        let public_url = match &self.public_url {
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
        if !(1..=3600).contains(&self.request_timeout_secs) {
            return Err(invalid("server.request_timeout_secs", "must be between 1 and 3600"));
        }
        Ok(Endpoint {
            listen,
            public_url,
            request_deadline: Duration::from_secs(self.request_timeout_secs),
        })
    }

    /// Validates `[server]`'s connection handling.
    pub(super) fn limits(&self) -> Result<crate::run::ServerLimits, ConfigError> {
        if !(1..=300).contains(&self.header_read_timeout_secs) {
            return Err(invalid("server.header_read_timeout_secs", "must be between 1 and 300"));
        }
        if !(1..=3600).contains(&self.body_read_timeout_secs) {
            return Err(invalid("server.body_read_timeout_secs", "must be between 1 and 3600"));
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(invalid("server.max_connections", "must be between 1 and 1000000"));
        }
        Ok(crate::run::ServerLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            body_read_timeout: Duration::from_secs(self.body_read_timeout_secs),
            max_connections: self.max_connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::config::{ConfigError, Settings};

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
