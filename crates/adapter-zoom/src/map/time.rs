//! Zoom times ↔ FHIR times.
//!
//! Zoom timestamps carry a zone: `2025-05-15T03:01:08.608Z` (notes, with milliseconds),
//! `2024-02-01T14:00:00Z` (healthcare objects), or an offset. They are emitted as the same instant
//! in the practice zone (`2025-05-14T23:01:08.608-04:00`), keeping the vendor's fractions of a
//! second, which is valid for FHIR `instant` and `dateTime` alike. A timestamp without a zone (not
//! what Zoom documents, but read rather than refused) is a wall-clock time of the practice zone;
//! a wall time that occurs twice is the first occurrence, one that does not exist moves forward by
//! the length of the gap. Reading and writing them is [`adapter::time`]'s; this module adds the
//! field errors and the forms of Zoom writes.
//!
//! Writes to Zoom use its documented form: UTC to the second, `yyyy-MM-dd'T'HH:mm:ss'Z'`.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use chrono_tz::Tz;

pub use adapter::time::{fhir_date, fhir_instant, localize, parse_date, parse_timestamp};

use super::MapError;

/// A vendor timestamp field: `Ok(None)` when blank, an error naming `field` when malformed.
pub fn timestamp_field(field: &'static str, s: &str, tz: Tz) -> Result<Option<DateTime<FixedOffset>>, MapError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    parse_timestamp(s, tz).map(Some).ok_or(MapError::Invalid {
        field,
        expected: "timestamp",
    })
}

/// A vendor date field: `Ok(None)` when blank, an error naming `field` when malformed.
pub fn date_field(field: &'static str, s: &str) -> Result<Option<NaiveDate>, MapError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    parse_date(s).map(Some).ok_or(MapError::Invalid {
        field,
        expected: "date",
    })
}

/// Reads a FHIR `instant`/`dateTime` with a time and a zone (what a write must carry).
pub fn parse_fhir_instant(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s.trim()).ok()
}

/// The form Zoom takes in writes: UTC to the second (`2024-02-01T14:00:00Z`).
pub fn zoom_utc(dt: &DateTime<FixedOffset>) -> String {
    adapter::time::utc_seconds(&dt.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    #[test]
    fn malformed_fields_are_refused_and_blank_ones_absent() {
        assert_eq!(timestamp_field("created_at", " ", New_York), Ok(None));
        assert!(timestamp_field("created_at", "x", New_York).is_err());
        assert_eq!(
            timestamp_field("created_at", "2024-02-01T14:00:00Z", New_York)
                .unwrap()
                .map(|t| fhir_instant(&t)),
            Some("2024-02-01T09:00:00-05:00".to_owned())
        );
        assert_eq!(date_field("date_of_birth", ""), Ok(None));
        assert!(date_field("date_of_birth", "1.1.2000").is_err());
    }

    #[test]
    fn writes_are_utc_to_the_second() {
        let t = parse_fhir_instant("2024-02-01T09:00:00.5-05:00").unwrap();
        assert_eq!(zoom_utc(&t), "2024-02-01T14:00:00Z");
        assert_eq!(parse_fhir_instant("2024-02-01"), None);
        assert_eq!(parse_fhir_instant("2024-02-01T09:00:00"), None);
    }
}
