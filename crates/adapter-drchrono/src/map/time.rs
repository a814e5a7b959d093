//! DrChrono times → FHIR times.
//!
//! DrChrono timestamps carry no zone (`2014-02-24T15:32:19`); they are wall-clock times of the
//! practice. [`localize`] places them in the practice zone, with [`adapter::time`]'s rules at DST
//! changes (the first of a repeated wall time; a wall time in a spring-forward gap moved forward by
//! the gap).
//!
//! Output is always seconds precision with a numeric offset (`2024-03-10T03:30:00-04:00`), valid
//! for both FHIR `instant` and `dateTime`: unlike [`adapter::time::fhir_instant`], fractions of a
//! second are never written (nor read, [`parse_timestamp`]), so `meta.lastUpdated` falling back to
//! the mapping's `now` stays to the second.

use chrono::{DateTime, FixedOffset, NaiveDate, Timelike};
use chrono_tz::Tz;

pub use adapter::time::{fhir_date, localize, parse_date};

use super::MapError;

/// Parses a vendor timestamp ([`adapter::time::parse_timestamp`]): zone-less (`2014-02-24T15:32:19`,
/// optionally with fractional seconds or a space for `T`), read in `tz`; or one with an offset (`Z`,
/// `+01:00`), converted to `tz`. Fractions of a second are dropped. `None` when the text is none of
/// these.
pub fn parse_timestamp(s: &str, tz: Tz) -> Option<DateTime<FixedOffset>> {
    adapter::time::parse_timestamp(s, tz)?.with_nanosecond(0)
}

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

/// The start of a calendar day in `tz`.
pub fn start_of_day(date: NaiveDate, tz: Tz) -> DateTime<FixedOffset> {
    localize(date.and_time(chrono::NaiveTime::MIN), tz)
}

/// A FHIR `instant` (and `dateTime`): `YYYY-MM-DDThh:mm:ss+zz:zz`.
pub fn fhir_instant(dt: &DateTime<FixedOffset>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::{Los_Angeles, New_York};

    fn at(s: &str, tz: Tz) -> String {
        fhir_instant(&parse_timestamp(s, tz).unwrap())
    }

    #[test]
    fn zone_less_timestamps_get_the_practice_offset() {
        assert_eq!(at("2024-01-15T09:30:00", New_York), "2024-01-15T09:30:00-05:00");
        assert_eq!(at("2024-07-15T09:30:00", New_York), "2024-07-15T09:30:00-04:00");
        assert_eq!(at("2024-07-15T09:30:00", Los_Angeles), "2024-07-15T09:30:00-07:00");
        assert_eq!(at("2024-07-15 09:30:00.123456", New_York), "2024-07-15T09:30:00-04:00");
        assert_eq!(at("2024-07-15T09:30", New_York), "2024-07-15T09:30:00-04:00");
    }

    #[test]
    fn timestamps_with_an_offset_keep_their_instant() {
        assert_eq!(at("2024-07-15T13:30:00Z", New_York), "2024-07-15T09:30:00-04:00");
        assert_eq!(at("2024-07-15T15:30:00+02:00", New_York), "2024-07-15T09:30:00-04:00");
        assert_eq!(at("2024-07-15T15:30:00+0200", New_York), "2024-07-15T09:30:00-04:00");
    }

    #[test]
    fn malformed_fields_are_named_and_blank_ones_absent() {
        assert_eq!(parse_timestamp("yesterday", New_York), None);
        assert_eq!(timestamp_field("updated_at", " ", New_York), Ok(None));
        assert_eq!(
            timestamp_field("updated_at", "soon", New_York),
            Err(MapError::Invalid {
                field: "updated_at",
                expected: "timestamp"
            })
        );
        assert_eq!(date_field("date", ""), Ok(None));
        assert_eq!(
            date_field("date", "1.1.2000"),
            Err(MapError::Invalid {
                field: "date",
                expected: "date"
            })
        );
        assert_eq!(
            fhir_date(&date_field("date", "1980-02-29").unwrap().unwrap()),
            "1980-02-29"
        );
    }

    #[test]
    fn a_day_starts_at_local_midnight() {
        let d = parse_date("2024-07-04").unwrap();
        assert_eq!(fhir_instant(&start_of_day(d, New_York)), "2024-07-04T00:00:00-04:00");
        // Midnight did not exist in Sao Paulo on 2018-11-04 (DST began at 00:00).
        let d = parse_date("2018-11-04").unwrap();
        assert_eq!(
            fhir_instant(&start_of_day(d, chrono_tz::America::Sao_Paulo)),
            "2018-11-04T01:00:00-02:00"
        );
    }
}
