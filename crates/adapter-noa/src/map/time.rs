//! Noa times ↔ FHIR times.
//!
//! Noa writes RFC 3339 times in UTC (`2025-03-14T09:30:00Z`, fractions allowed). They are emitted
//! as the same instant in the practice zone (`2025-03-14T10:30:00+01:00`), keeping Noa's fractions
//! of a second. A time without a zone is read as UTC (the zone Noa documents), not as a wall-clock
//! time of the practice as [`adapter::time::parse_timestamp`] reads it. Query parameters take
//! [`adapter::time::utc_seconds`].

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use chrono_tz::Tz;

pub use adapter::time::fhir_instant;

use super::MapError;

/// Parses a Noa time and expresses it in `tz`. `None` when the text is not a time.
pub fn parse_timestamp(s: &str, tz: Tz) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    let utc = match DateTime::parse_from_rfc3339(s) {
        Ok(dt) => dt.with_timezone(&Utc),
        Err(_) => ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?
            .and_utc(),
    };
    let dt = utc.with_timezone(&tz).fixed_offset();
    (1..=9999).contains(&chrono::Datelike::year(&dt)).then_some(dt)
}

/// A vendor time field: `Ok(None)` when blank, an error naming `field` when malformed.
pub fn timestamp_field(field: &'static str, s: &str, tz: Tz) -> Result<Option<DateTime<FixedOffset>>, MapError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    parse_timestamp(s, tz).map(Some).ok_or(MapError::Invalid {
        field,
        expected: "timestamp",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Warsaw;

    fn at(s: &str) -> String {
        fhir_instant(&parse_timestamp(s, Warsaw).unwrap())
    }

    #[test]
    fn utc_times_keep_their_instant_and_fraction() {
        assert_eq!(at("2025-03-14T09:30:00Z"), "2025-03-14T10:30:00+01:00");
        assert_eq!(at("2025-07-14T09:30:00.125Z"), "2025-07-14T11:30:00.125+02:00");
        assert_eq!(at("2025-07-14T11:30:00+02:00"), "2025-07-14T11:30:00+02:00");
        assert_eq!(at("2025-03-14T09:30:00"), "2025-03-14T10:30:00+01:00");
    }

    #[test]
    fn malformed_times_are_refused() {
        for bad in ["soon", "2025-13-01T00:00:00Z", "2025-03-14"] {
            assert_eq!(parse_timestamp(bad, Warsaw), None, "{bad:?}");
        }
        assert_eq!(timestamp_field("createdAt", " ", Warsaw), Ok(None));
        assert!(timestamp_field("createdAt", "x", Warsaw).is_err());
    }
}
