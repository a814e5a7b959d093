//! `[cache]`: the vendor answers [`crate::cache`] keeps in memory.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[cache]`: vendor answers kept in memory (reads and search pages).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    pub enabled: bool,
    /// The bound on what is held, in MiB of serialized FHIR JSON.
    pub max_mb: u64,
    pub search_ttl_secs: u64,
    /// Search pages' TTL per resource type (`DocumentReference = 300`); types not named keep their
    /// default (`search_ttl_secs` for those without one).
    pub search_ttl_secs_by_type: BTreeMap<String, u64>,
    /// Per resource type (`Patient = 600`); types not named keep their default.
    pub read_ttl_secs: BTreeMap<String, u64>,
    /// How long past its TTL an answer is still served when the vendor fails (0: never).
    pub stale_if_error_secs: u64,
    /// How long a vendor's "not found" / "gone" on a read is remembered (0: not at all).
    pub not_found_ttl_secs: u64,
    /// How long reads and search pages of types whose every change the source's webhooks announce
    /// stay fresh (0: like the other types).
    pub announced_ttl_secs: u64,
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            enabled: true,
            max_mb: 64,
            search_ttl_secs: 60,
            read_ttl_secs: BTreeMap::new(),
            search_ttl_secs_by_type: BTreeMap::new(),
            stale_if_error_secs: 300,
            not_found_ttl_secs: 30,
            announced_ttl_secs: 3600,
        }
    }
}

impl CacheSection {
    /// Validates `[cache]`; `None` when `cache.enabled = false`.
    pub(super) fn validate(&self) -> Result<Option<crate::cache::CacheSettings>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        if !(1..=65_536).contains(&self.max_mb) {
            return Err(invalid("cache.max_mb", "must be between 1 and 65536"));
        }
        if self.search_ttl_secs == 0 {
            return Err(invalid("cache.search_ttl_secs", "must be at least 1"));
        }
        let mut settings = crate::cache::CacheSettings {
            max_bytes: self.max_mb * 1024 * 1024,
            search_ttl: Duration::from_secs(self.search_ttl_secs),
            stale_if_error: Duration::from_secs(self.stale_if_error_secs),
            ..Default::default()
        };
        if self.stale_if_error_secs > 86_400 {
            return Err(invalid("cache.stale_if_error_secs", "must be at most 86400 (one day)"));
        }
        if self.not_found_ttl_secs > 3600 {
            return Err(invalid("cache.not_found_ttl_secs", "must be at most 3600 (one hour)"));
        }
        settings.not_found_ttl = Duration::from_secs(self.not_found_ttl_secs);
        if self.announced_ttl_secs > 86_400 {
            return Err(invalid("cache.announced_ttl_secs", "must be at most 86400 (one day)"));
        }
        settings.announced_ttl = Duration::from_secs(self.announced_ttl_secs);
        for (name, secs) in &self.read_ttl_secs {
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
        for (name, secs) in &self.search_ttl_secs_by_type {
            let setting = format!("cache.search_ttl_secs_by_type.{name}");
            let t: adapter::ResourceType = name
                .parse()
                .map_err(|_| invalid(&setting, "is not a resource type the gateway serves"))?;
            if *secs == 0 {
                return Err(invalid(&setting, "must be at least 1"));
            }
            settings.search_ttl_by_type.insert(t, Duration::from_secs(*secs));
        }
        Ok(Some(settings))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::config::Settings;
    use crate::config::tests::smart;

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
        let c = load("").unwrap().cache.unwrap();
        assert_eq!(c.announced_ttl, Duration::from_secs(3600));
        assert_eq!(
            c.search_ttl_of(adapter::ResourceType::DocumentReference),
            Duration::from_secs(300)
        );
        assert_eq!(
            c.search_ttl_of(adapter::ResourceType::Appointment),
            Duration::from_secs(60)
        );
        let c = load("[cache.search_ttl_secs_by_type]\nDocumentReference = 30\n")
            .unwrap()
            .cache
            .unwrap();
        assert_eq!(
            c.search_ttl_of(adapter::ResourceType::DocumentReference),
            Duration::from_secs(30)
        );
        let e = load("[cache.search_ttl_secs_by_type]\nDocumentReference = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cache.search_ttl_secs_by_type.DocumentReference"), "{e}");
        let c = load("[cache]\nannounced_ttl_secs = 0\n").unwrap().cache.unwrap();
        assert_eq!(c.announced_ttl, Duration::ZERO);
        let e = load("[cache]\nannounced_ttl_secs = 90000\n").unwrap_err().to_string();
        assert!(e.contains("cache.announced_ttl_secs"), "{e}");
    }
}
