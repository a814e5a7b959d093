//! Zoom times ↔ FHIR times.
//!
//! Zoom timestamps carry a zone: `2025-05-15T03:01:08.608Z` (notes, with milliseconds),
//! `2024-02-01T14:00:00Z` (healthcare objects), or an offset. They are emitted as the same instant
//! in the practice zone (`2025-05-14T23:01:08.608-04:00`), keeping the vendor's fractions of a
//! second, which is valid for FHIR `instant` and `dateTime` alike. A timestamp without a zone (not
//! what Zoom documents, but read rather than refused) is a wall-clock time of the practice zone;
//! a wall time that occurs twice is the first occurrence, one that does not exist moves forward by
//! the length of the gap.
//!
//! Writes to Zoom use its documented form: UTC to the second, `yyyy-MM-dd'T'HH:mm:ss'Z'`.

use chrono::{DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use super::MapError;

/// Parses a Zoom timestamp and expresses it in `tz`. `None` when the text is not a timestamp.
pub fn parse_timestamp(s: &str, tz: Tz) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    let with_offset = DateTime::parse_from_rfc3339(s)
        .ok()
        .or_else(|| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").ok());
    let dt = match with_offset {
        Some(dt) => dt.with_timezone(&tz).fixed_offset(),
        None => {
            let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
            localize(naive, tz)
        }
    };
    (1..=9999).contains(&chrono::Datelike::year(&dt)).then_some(dt)
}

/// Places a zone-less wall-clock time in `tz` (see the module docs for DST rules).
pub fn localize(naive: NaiveDateTime, tz: Tz) -> DateTime<FixedOffset> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(dt) => dt.fixed_offset(),
        LocalResult::Ambiguous(earliest, _) => earliest.fixed_offset(),
        LocalResult::None => {
            let before = tz
                .offset_from_local_datetime(&(naive - Duration::days(1)))
                .earliest()
                .map(|o| o.fix())
                .unwrap_or_else(|| tz.offset_from_utc_datetime(&naive).fix());
            let utc = naive - Duration::seconds(i64::from(before.local_minus_utc()));
            tz.from_utc_datetime(&utc).fixed_offset()
        }
    }
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

/// Parses a date (`YYYY-MM-DD`, years 1..=9999).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if s.len() != 10 {
        return None;
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    (1..=9999).contains(&chrono::Datelike::year(&d)).then_some(d)
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

/// A FHIR `instant` (and `dateTime`): `YYYY-MM-DDThh:mm:ss[.fff]+zz:zz`.
pub fn fhir_instant(dt: &DateTime<FixedOffset>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.f%:z").to_string()
}

/// A FHIR `date`: `YYYY-MM-DD`.
pub fn fhir_date(d: &NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Reads a FHIR `instant`/`dateTime` with a time and a zone (what a write must carry).
pub fn parse_fhir_instant(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s.trim()).ok()
}

/// The form Zoom takes in writes: UTC to the second (`2024-02-01T14:00:00Z`).
pub fn zoom_utc(dt: &DateTime<FixedOffset>) -> String {
    dt.with_timezone(&Utc).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    fn at(s: &str) -> String {
        fhir_instant(&parse_timestamp(s, New_York).unwrap())
    }

    #[test]
    fn zoned_timestamps_keep_their_instant_and_fraction() {
        assert_eq!(at("2025-05-15T03:01:08.608Z"), "2025-05-14T23:01:08.608-04:00");
        assert_eq!(at("2024-02-01T14:00:00Z"), "2024-02-01T09:00:00-05:00");
        assert_eq!(at("2024-02-01T15:00:00+01:00"), "2024-02-01T09:00:00-05:00");
        assert_eq!(at("2024-02-01T15:00:00+0100"), "2024-02-01T09:00:00-05:00");
        assert_eq!(at("2024-02-01T14:00:00.123456Z"), "2024-02-01T09:00:00.123456-05:00");
    }

    #[test]
    fn zone_less_timestamps_are_practice_wall_clock() {
        assert_eq!(at("2024-07-15T09:30:00"), "2024-07-15T09:30:00-04:00");
        assert_eq!(at("2024-03-10T02:30:00"), "2024-03-10T03:30:00-04:00");
        assert_eq!(at("2024-11-03T01:30:00"), "2024-11-03T01:30:00-04:00");
    }

    #[test]
    fn malformed_timestamps_and_dates_are_refused() {
        for bad in ["", "soon", "2024-13-01T00:00:00Z", "2024-02-30T10:00:00Z", "2024-01-01"] {
            assert_eq!(parse_timestamp(bad, New_York), None, "{bad:?}");
        }
        assert_eq!(timestamp_field("created_at", " ", New_York), Ok(None));
        assert!(timestamp_field("created_at", "x", New_York).is_err());
        assert_eq!(fhir_date(&parse_date("1980-02-29").unwrap()), "1980-02-29");
        for bad in ["1981-02-29", "1980-2-9", "0000-01-01", "1980-02-01T00:00:00"] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
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
