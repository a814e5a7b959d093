//! `[metrics]`: who may read `/metrics`.

use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[metrics]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `/metrics` needs a bearer token the gateway accepts (needs `auth.mode = "smart"`).
    pub require_token: bool,
}

impl MetricsSection {
    /// Whether `/metrics` needs a token; `auth_configured` says whether anything can verify one.
    pub(super) fn validate(&self, auth_configured: bool) -> Result<bool, ConfigError> {
        if self.require_token && !auth_configured {
            return Err(invalid(
                "metrics.require_token",
                "needs auth.mode = \"smart\" (nothing else can verify a token)",
            ));
        }
        Ok(self.require_token)
    }
}
