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

#[cfg(feature = "client")]
pub use self::client::{read_body, retry_after_header, transport_error, unmappable};

#[cfg(feature = "client")]
mod client {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use reqwest::Response;
    use reqwest::header::{HeaderMap, RETRY_AFTER};

    use crate::AdapterError;

    /// A vendor sent something that cannot be read as it promised.
    pub fn unmappable(vendor: &'static str, detail: impl Into<String>) -> AdapterError {
        AdapterError::Unmappable {
            vendor,
            detail: detail.into(),
        }
    }

    /// The `Retry-After` header of a 429 or 503, as a delay.
    pub fn retry_after_header(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
        super::retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, now)
    }

    /// A failure below HTTP (timeout, refused connection, a body cut short) as an [`AdapterError`];
    /// never the vendor's text.
    pub fn transport_error(vendor: &'static str, error: &reqwest::Error) -> AdapterError {
        if error.is_timeout() {
            AdapterError::Timeout { vendor }
        } else if error.is_connect() {
            AdapterError::Unavailable {
                vendor,
                detail: "could not connect".into(),
            }
        } else if error.is_body() || error.is_decode() {
            unmappable(vendor, format!("a {vendor} response body was cut short"))
        } else {
            AdapterError::Unavailable {
                vendor,
                detail: "the request failed".into(),
            }
        }
    }

    /// Reads a response body of at most `max` bytes (a larger one is refused, not buffered).
    pub async fn read_body(vendor: &'static str, mut response: Response, max: usize) -> Result<Vec<u8>, AdapterError> {
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > max {
                        return Err(unmappable(vendor, format!("a {vendor} response is too large")));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) if e.is_timeout() => return Err(AdapterError::Timeout { vendor }),
                Err(_) => return Err(unmappable(vendor, format!("a {vendor} response body was cut short"))),
            }
        }
    }
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
