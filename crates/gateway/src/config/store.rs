//! `[store]`: where the gateway keeps what it must remember across restarts and replicas.

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Where the embedded store lives when nothing is configured (under the working directory).
pub const DEFAULT_PATH: &str = "data/gateway.db";

/// `[store]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// The SQLite file (the embedded default, one gateway process); default `data/gateway.db`.
    pub path: Option<String>,
    /// A PostgreSQL URL instead (`postgres://user:password@host/db`): several replicas share it.
    /// Prefer `url_file` for the password.
    pub url: Option<String>,
    /// The key vendor tokens are sealed with (AES-256-GCM): 32 bytes as 64 hexadecimal digits or
    /// base64. Set it as `encryption_key_file` (`openssl rand -hex 32 > store.key`).
    pub encryption_key: Option<String>,
    /// PostgreSQL connections at most (default 8).
    pub max_connections: Option<u32>,
}

impl StoreSection {
    /// The store's settings. A missing key is not an error here: `serve` refuses to start without
    /// one ([`store_key_required`]), tests and tools may run without.
    pub(super) fn validate(&self) -> Result<store::StoreSettings, ConfigError> {
        let location = match (&self.path, &self.url) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "store.url",
                    "set either store.path (SQLite) or store.url (PostgreSQL), not both",
                ));
            }
            (_, Some(url)) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(invalid("store.url", "must be a postgres:// URL"));
                }
                store::Location::Postgres(url.clone())
            }
            (Some(path), None) if path.trim().is_empty() => {
                return Err(invalid("store.path", "must not be empty"));
            }
            (path, None) => store::Location::Sqlite(path.as_deref().unwrap_or(DEFAULT_PATH).into()),
        };
        let sealing_key = self
            .encryption_key
            .as_deref()
            .map(|k| store::SealingKey::parse(k.trim()).map_err(|e| invalid("store.encryption_key_file", e)))
            .transpose()?;
        let max_connections = match self.max_connections {
            Some(0) => return Err(invalid("store.max_connections", "must be at least 1")),
            Some(n) => n,
            None => 8,
        };
        Ok(store::StoreSettings {
            location,
            sealing_key,
            max_connections,
        })
    }
}

/// The start-up error of `serve` without a sealing key.
pub fn store_key_required() -> ConfigError {
    invalid(
        "store.encryption_key_file",
        "is required: vendor tokens are kept sealed with it (32 random bytes, e.g. `openssl rand -hex 32 > store.key`)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml: &str) -> StoreSection {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn the_default_is_sqlite_under_the_working_directory() {
        let s = section("").validate().unwrap();
        assert_eq!(s.location, store::Location::Sqlite(DEFAULT_PATH.into()));
        assert!(s.sealing_key.is_none());
        let s = section("url = \"postgres://g@db/gw\"\nmax_connections = 3")
            .validate()
            .unwrap();
        assert_eq!(s.location, store::Location::Postgres("postgres://g@db/gw".into()));
        assert_eq!(s.max_connections, 3);
        let key = "ab".repeat(32);
        assert!(
            section(&format!("encryption_key = \"{key}\""))
                .validate()
                .unwrap()
                .sealing_key
                .is_some()
        );
    }

    #[test]
    fn errors_name_the_setting() {
        for (toml, setting) in [
            ("path = \"a\"\nurl = \"postgres://x\"", "store.url"),
            ("url = \"mysql://x\"", "store.url"),
            ("path = \" \"", "store.path"),
            ("encryption_key = \"short\"", "store.encryption_key_file"),
            ("max_connections = 0", "store.max_connections"),
        ] {
            let err = section(toml).validate().unwrap_err().to_string();
            assert!(err.contains(&format!("`{setting}`")), "{toml}: {err}");
        }
        assert!(store_key_required().to_string().contains("`store.encryption_key_file`"));
    }
}
