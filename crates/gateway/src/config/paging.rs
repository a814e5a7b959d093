//! `[paging]`: the key that signs paging links and how long a link stays valid.

use std::time::Duration;

use adapter::Secret;
use serde::Deserialize;

use super::{ConfigError, invalid};

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

/// `[paging]`, validated.
#[derive(Debug)]
pub(super) struct Paging {
    /// `None`: links are signed with a random key (they break across restarts and replicas).
    pub(super) secret: Option<Secret>,
    pub(super) link_ttl: Duration,
}

impl PagingSection {
    /// Validates `[paging]`.
    pub(super) fn validate(self) -> Result<Paging, ConfigError> {
        let secret = match self.secret {
            Some(s) if s.len() < 32 => {
                return Err(invalid("paging.secret", "must be at least 32 characters"));
            }
            other => other.map(Secret::new),
        };
        if self.link_ttl_secs <= 0 {
            return Err(invalid("paging.link_ttl_secs", "must be positive"));
        }
        Ok(Paging {
            secret,
            link_ttl: Duration::from_secs(self.link_ttl_secs as u64),
        })
    }
}
