//! DrChrono times → FHIR times.
//!
//! DrChrono timestamps carry no zone (`2014-02-24T15:32:19`); they are wall-clock times of the
//! practice. [`localize`] places them in the practice zone with these rules at DST changes:
//!
//! - a wall time that occurs twice (autumn fall-back) is the **first** occurrence (the daylight
//!   offset), the usual reading of a calendar entry;
//! - a wall time that does not exist (spring-forward gap) is moved **forward by the length of the
//!   gap** (02:30 on a US spring-forward day becomes 03:30 daylight time), as `java.time` does.
//!
//! Output is always seconds precision with a numeric offset (`2024-03-10T03:30:00-04:00`), valid
//! for both FHIR `instant` and `dateTime`.

use chrono::{DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike};
use chrono_tz::Tz;

use super::MapError;

/// Places a zone-less wall-clock time in `tz` (see the module docs for DST rules).
pub fn localize(naive: NaiveDateTime, tz: Tz) -> DateTime<FixedOffset> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(dt) => dt.fixed_offset(),
        LocalResult::Ambiguous(earliest, _) => earliest.fixed_offset(),
        LocalResult::None => {
            // In a gap: read the wall time with the offset in force before the gap.
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

/// Parses a vendor timestamp: zone-less (`2014-02-24T15:32:19`, optionally with fractional
/// seconds or a space for `T`), read in `tz`; or one with an offset (`Z`, `+01:00`), converted to
/// `tz`. Fractions of a second are dropped. `None` when the text is none of these.
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
    let dt = dt.with_nanosecond(0)?;
    (1..=9999).contains(&chrono::Datelike::year(&dt)).then_some(dt)
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

/// Parses a vendor date (`YYYY-MM-DD`, years 1..=9999).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    // chrono accepts one-digit months and days; FHIR wants exactly YYYY-MM-DD.
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

/// The start of a calendar day in `tz`.
pub fn start_of_day(date: NaiveDate, tz: Tz) -> DateTime<FixedOffset> {
    localize(date.and_time(chrono::NaiveTime::MIN), tz)
}

/// A FHIR `instant` (and `dateTime`): `YYYY-MM-DDThh:mm:ss+zz:zz`.
pub fn fhir_instant(dt: &DateTime<FixedOffset>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// A FHIR `date`: `YYYY-MM-DD`.
pub fn fhir_date(d: &NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::{Los_Angeles, New_York};
    use chrono_tz::Australia::Lord_Howe;

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
    fn spring_forward_gap_moves_forward_by_the_gap() {
        assert_eq!(at("2024-03-10T02:30:00", New_York), "2024-03-10T03:30:00-04:00");
        assert_eq!(at("2024-03-10T01:59:59", New_York), "2024-03-10T01:59:59-05:00");
        assert_eq!(at("2024-03-10T03:00:00", New_York), "2024-03-10T03:00:00-04:00");
        // Lord Howe Island has a 30-minute DST gap.
        assert_eq!(at("2024-10-06T02:10:00", Lord_Howe), "2024-10-06T02:40:00+11:00");
    }

    #[test]
    fn fall_back_overlap_takes_the_first_occurrence() {
        assert_eq!(at("2024-11-03T01:30:00", New_York), "2024-11-03T01:30:00-04:00");
        assert_eq!(at("2024-11-03T02:30:00", New_York), "2024-11-03T02:30:00-05:00");
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00",
            "2024-02-30T10:00:00",
            "2024-01-01",
        ] {
            assert_eq!(parse_timestamp(bad, New_York), None, "{bad:?}");
        }
        assert_eq!(timestamp_field("updated_at", " ", New_York), Ok(None));
        assert_eq!(
            timestamp_field("updated_at", "soon", New_York),
            Err(MapError::Invalid {
                field: "updated_at",
                expected: "timestamp"
            })
        );
    }

    #[test]
    fn dates_are_strict() {
        assert_eq!(fhir_date(&parse_date("1980-02-29").unwrap()), "1980-02-29");
        for bad in [
            "1981-02-29",
            "1980-2-9",
            "80-02-01",
            "0000-01-01",
            "1980-02-01T00:00:00",
            "x",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
        assert_eq!(date_field("date", ""), Ok(None));
        assert!(date_field("date", "1.1.2000").is_err());
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
