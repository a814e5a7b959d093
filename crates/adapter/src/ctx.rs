//! The context mapping functions get instead of doing I/O or reading the clock.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Everything a pure mapping function may need from the outside world.
#[derive(Debug, Clone)]
pub struct MapCtx {
    /// The moment of the mapping (used for ages, `meta.lastUpdated` fallbacks, ...).
    pub now: DateTime<Utc>,
    /// The practice time zone for vendor timestamps that carry none (when the record names no zone).
    pub default_tz: Tz,
}

impl MapCtx {
    pub fn new(now: DateTime<Utc>, default_tz: Tz) -> Self {
        Self { now, default_tz }
    }
}
