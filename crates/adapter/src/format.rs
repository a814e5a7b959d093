//! What fhirbolt does not check: the lexical forms of FHIR primitives (`code`, `date`,
//! `instant`). Used by the adapters' golden tests on everything they produce.

/// `[^\s]+(\s[^\s]+)*`
pub fn is_code(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(char::is_whitespace)
        && !s.ends_with(char::is_whitespace)
        && !s.contains("  ")
        && !s.contains(['\t', '\n', '\r'])
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// FHIR `date`: `YYYY(-MM(-DD)?)?`, year 0001..9999.
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let year_ok = b.len() >= 4 && digits(&b[..4]).is_some_and(|y| y >= 1);
    match b.len() {
        4 => year_ok,
        7 => year_ok && b[4] == b'-' && digits(&b[5..7]).is_some_and(|m| (1..=12).contains(&m)),
        10 => {
            year_ok
                && b[4] == b'-'
                && digits(&b[5..7]).is_some_and(|m| (1..=12).contains(&m))
                && b[7] == b'-'
                && digits(&b[8..10]).is_some_and(|d| (1..=31).contains(&d))
        }
        _ => false,
    }
}

/// FHIR `instant`: `YYYY-MM-DDThh:mm:ss(.s+)?(Z|(+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))`.
pub fn is_instant(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || !s.is_char_boundary(10) || !is_date(&s[..10]) || b[10] != b'T' {
        return false;
    }
    let time_ok = digits(&b[11..13]).is_some_and(|h| h <= 23)
        && b[13] == b':'
        && digits(&b[14..16]).is_some_and(|m| m <= 59)
        && b[16] == b':'
        && digits(&b[17..19]).is_some_and(|s| s <= 60);
    let Some(mut rest) = s.get(19..) else {
        return false;
    };
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    let zone_ok = rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':'
            && match (digits(&rest.as_bytes()[1..3]), digits(&rest.as_bytes()[4..6])) {
                (Some(14), Some(0)) => true,
                (Some(h), Some(m)) => h <= 13 && m <= 59,
                _ => false,
            });
    time_ok && zone_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_checks_themselves_work() {
        for good in [
            "2024-03-10T03:30:00-04:00",
            "2024-01-01T00:00:00Z",
            "2025-05-14T23:01:08.608-04:00",
            "0001-01-01T23:59:60.123+14:00",
        ] {
            assert!(is_instant(good), "{good}");
        }
        for bad in [
            "2024-03-10T03:30:00",
            "2024-03-10",
            "2024-13-10T03:30:00Z",
            "0000-01-01T00:00:00Z",
            "2024-03-10T24:00:00Z",
            "2024-03-10T03:30:00+14:30",
            "2024-03-10T03:30:00.Z",
            "2024-03-10 03:30:00Z",
        ] {
            assert!(!is_instant(bad), "{bad}");
        }
        for good in ["1984", "1984-02", "1984-02-29"] {
            assert!(is_date(good), "{good}");
        }
        for bad in ["84-02-29", "1984-2-29", "1984-02-32", "0000", ""] {
            assert!(!is_date(bad), "{bad}");
        }
        assert!(is_code("in-progress") && is_code("insurance card") && !is_code("a  b") && !is_code(" a"));
    }
}
