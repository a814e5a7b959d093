//! Small pieces of HTTP semantics every vendor client needs.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The delay a `Retry-After` value asks for: delay seconds, an HTTP-date, or (as Zoom's daily
/// limits write it) an RFC 3339 time. A time in the past is no delay; anything else is `None`.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = DateTime::parse_from_rfc2822(value)
        .or_else(|_| DateTime::parse_from_rfc3339(value))
        .ok()?;
    Some((when.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_http_dates_and_rfc3339() {
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Mon, 01 Jan 2024 00:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(retry_after("2024-01-01T00:00:10Z", now), Some(Duration::from_secs(10)));
        assert_eq!(retry_after("2023-12-31T00:00:00Z", now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }
}
