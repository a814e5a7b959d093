//! `[audit]`: the audit trail (kept in the store).

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};
use crate::audit::AuditSettings;

/// `[audit]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Record the audit trail (default true).
    pub enabled: Option<bool>,
    /// Days an event is kept (default 2190: six years); 1–36500.
    pub retention_days: Option<u64>,
    /// Events waiting for the writer at most (default 100000); past it new events are counted lost.
    pub queue_capacity: Option<usize>,
}

impl AuditSection {
    pub(super) fn validate(&self) -> Result<AuditSettings, ConfigError> {
        let mut s = AuditSettings::default();
        if let Some(enabled) = self.enabled {
            s.enabled = enabled;
        }
        if let Some(days) = self.retention_days {
            if !(1..=36_500).contains(&days) {
                return Err(invalid("audit.retention_days", "must be between 1 and 36500"));
            }
            s.retention = Duration::from_secs(days * 86_400);
        }
        if let Some(n) = self.queue_capacity {
            if !(100..=10_000_000).contains(&n) {
                return Err(invalid("audit.queue_capacity", "must be between 100 and 10000000"));
            }
            s.queue_capacity = n;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_settings_are_checked() {
        let s: AuditSection = toml::from_str("retention_days = 30\nqueue_capacity = 500").unwrap();
        let s = s.validate().unwrap();
        assert!(s.enabled);
        assert_eq!(s.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(s.queue_capacity, 500);
        for (toml, setting) in [
            ("retention_days = 0", "audit.retention_days"),
            ("queue_capacity = 1", "audit.queue_capacity"),
        ] {
            let section: AuditSection = toml::from_str(toml).unwrap();
            let e = section.validate().unwrap_err().to_string();
            assert!(e.contains(setting), "{e}");
        }
        let off: AuditSection = toml::from_str("enabled = false").unwrap();
        assert!(!off.validate().unwrap().enabled);
    }
}
