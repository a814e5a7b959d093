//! Vendor times → FHIR times, for vendors that write timestamps either with a zone (`Z`, `+01:00`)
//! or as wall-clock times of the practice.
//!
//! [`parse_timestamp`] reads both and expresses the instant in the practice zone, keeping the
//! vendor's fractions of a second. A wall-clock time is placed by [`localize`], with these rules at
//! DST changes:
//!
//! - a wall time that occurs twice (autumn fall-back) is the **first** occurrence (the daylight
//!   offset), the usual reading of a calendar entry;
//! - a wall time that does not exist (spring-forward gap) is moved **forward by the length of the
//!   gap** (02:30 on a US spring-forward day becomes 03:30 daylight time), as `java.time` does.
//!
//! [`fhir_instant`] writes an instant with its numeric offset and any fraction of a second, which
//! is valid for FHIR `instant` and `dateTime` alike; [`fhir_date`] writes a FHIR `date`.

use chrono::{DateTime, Datelike, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Places a zone-less wall-clock time in `tz` (see the module docs for the DST rules).
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

/// Parses a vendor timestamp and expresses it in `tz`: one with an offset (`Z`, `+01:00`,
/// `+0100`) keeps its instant; a zone-less one (`2014-02-24T15:32:19`, optionally with fractional
/// seconds, a space for `T`, or no seconds) is a wall-clock time in `tz`. Fractions of a second are
/// kept. `None` when the text is none of these or the year is outside 1..=9999.
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
    (1..=9999).contains(&dt.year()).then_some(dt)
}

/// Parses a vendor date: exactly `YYYY-MM-DD`, years 1..=9999.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    // chrono accepts one-digit months and days; FHIR wants exactly YYYY-MM-DD.
    if s.len() != 10 {
        return None;
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    (1..=9999).contains(&d.year()).then_some(d)
}

/// A FHIR `instant` (and `dateTime`): `YYYY-MM-DDThh:mm:ss[.fff]+zz:zz`, the fraction only when
/// there is one.
pub fn fhir_instant(dt: &DateTime<FixedOffset>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.f%:z").to_string()
}

/// A FHIR `date`: `YYYY-MM-DD`.
pub fn fhir_date(d: &NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// An instant as UTC to the second with `Z` (`2024-02-01T14:00:00Z`), the form vendors take in
/// query parameters and request bodies. A fraction of a second is dropped.
pub fn utc_seconds(dt: &DateTime<Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()
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
    fn zoned_timestamps_keep_their_instant_and_fraction() {
        assert_eq!(
            at("2025-05-15T03:01:08.608Z", New_York),
            "2025-05-14T23:01:08.608-04:00"
        );
        assert_eq!(at("2024-02-01T14:00:00Z", New_York), "2024-02-01T09:00:00-05:00");
        assert_eq!(at("2024-02-01T15:00:00+01:00", New_York), "2024-02-01T09:00:00-05:00");
        assert_eq!(at("2024-02-01T15:00:00+0100", New_York), "2024-02-01T09:00:00-05:00");
        assert_eq!(
            at("2024-02-01T14:00:00.123456Z", New_York),
            "2024-02-01T09:00:00.123456-05:00"
        );
    }

    #[test]
    fn zone_less_timestamps_get_the_practice_offset() {
        assert_eq!(at("2024-01-15T09:30:00", New_York), "2024-01-15T09:30:00-05:00");
        assert_eq!(at("2024-07-15T09:30:00", New_York), "2024-07-15T09:30:00-04:00");
        assert_eq!(at("2024-07-15T09:30:00", Los_Angeles), "2024-07-15T09:30:00-07:00");
        assert_eq!(at("2024-07-15 09:30:00.5", New_York), "2024-07-15T09:30:00.500-04:00");
        assert_eq!(at("2024-07-15T09:30", New_York), "2024-07-15T09:30:00-04:00");
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
            "2024-13-01T00:00:00Z",
            "2024-02-30T10:00:00Z",
            "2024-01-01",
        ] {
            assert_eq!(parse_timestamp(bad, New_York), None, "{bad:?}");
        }
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
    }

    #[test]
    fn utc_seconds_drop_the_fraction() {
        let t = DateTime::parse_from_rfc3339("2024-02-01T09:00:00.5-05:00").unwrap();
        assert_eq!(utc_seconds(&t.with_timezone(&Utc)), "2024-02-01T14:00:00Z");
    }
}
