//! `[fhir]`: page sizes, the time zone of zoneless search dates, and how much one search may gather.

use chrono_tz::Tz;
use serde::Deserialize;

use super::{ConfigError, invalid, parse_tz};

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

/// `[fhir]`, validated.
#[derive(Debug)]
pub(super) struct Fhir {
    pub(super) default_count: u32,
    pub(super) max_count: u32,
    pub(super) timezone: Tz,
    pub(super) vendor_calls_per_page: usize,
    pub(super) max_materialized: usize,
}

impl FhirSection {
    /// Validates `[fhir]`.
    pub(super) fn validate(&self) -> Result<Fhir, ConfigError> {
        if self.default_count == 0 || self.max_count == 0 || self.default_count > self.max_count {
            return Err(invalid("fhir.default_count", "must be between 1 and fhir.max_count"));
        }
        if self.vendor_calls_per_page == 0 {
            return Err(invalid("fhir.vendor_calls_per_page", "must be at least 1"));
        }
        Ok(Fhir {
            default_count: self.default_count,
            max_count: self.max_count,
            timezone: parse_tz("fhir.timezone", &self.timezone)?,
            vendor_calls_per_page: self.vendor_calls_per_page,
            max_materialized: self.max_materialized,
        })
    }
}
