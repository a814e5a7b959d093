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
pub use self::client::{
    check_base_url, read_body, retry_after_header, same_origin, transport_error, unmappable, with_trailing_slash,
};

#[cfg(feature = "client")]
mod client {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use reqwest::header::{HeaderMap, RETRY_AFTER};
    use reqwest::{Response, Url};

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

    /// Checks a configured vendor base URL: http or https, with a host, without credentials, query
    /// or fragment. The error says what is wrong, for the setting's error message.
    pub fn check_base_url(base: &Url) -> Result<(), &'static str> {
        if !matches!(base.scheme(), "http" | "https") {
            return Err("must be an http or https URL");
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err("must name a host");
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err("must not carry credentials");
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err("must not have a query or fragment");
        }
        Ok(())
    }

    /// The URL with a path ending in `/`, so relative paths join below it rather than replacing
    /// its last segment.
    pub fn with_trailing_slash(mut url: Url) -> Url {
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        url
    }

    /// True when `url` is on `origin`'s scheme, host and port, without credentials: the only URLs a
    /// vendor client follows (a `next` link, a redirect).
    pub fn same_origin(url: &Url, origin: &Url) -> bool {
        url.origin() == origin.origin() && url.username().is_empty() && url.password().is_none()
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

    #[cfg(feature = "client")]
    mod client_helpers {
        use reqwest::Url;
        use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

        use super::*;

        #[test]
        fn retry_after_header_reads_seconds_and_dates() {
            let now = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc);
            let mut h = HeaderMap::new();
            assert_eq!(retry_after_header(&h, now), None);
            h.insert(RETRY_AFTER, HeaderValue::from_static("120"));
            assert_eq!(retry_after_header(&h, now), Some(Duration::from_secs(120)));
            h.insert(RETRY_AFTER, HeaderValue::from_static("Mon, 01 Jan 2024 00:00:30 GMT"));
            assert_eq!(retry_after_header(&h, now), Some(Duration::from_secs(30)));
            h.insert(RETRY_AFTER, HeaderValue::from_static("Sun, 31 Dec 2023 23:00:00 GMT"));
            assert_eq!(retry_after_header(&h, now), Some(Duration::ZERO));
            h.insert(RETRY_AFTER, HeaderValue::from_static("2024-01-01T01:00:00Z"));
            assert_eq!(retry_after_header(&h, now), Some(Duration::from_secs(3600)));
            h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
            assert_eq!(retry_after_header(&h, now), None);
        }

        #[test]
        fn base_urls_are_plain_http_origins() {
            let url = |s: &str| Url::parse(s).unwrap();
            assert_eq!(check_base_url(&url("https://api.example.com/v2")), Ok(()));
            assert_eq!(check_base_url(&url("http://127.0.0.1:8080")), Ok(()));
            assert_eq!(
                check_base_url(&url("ftp://example.com")),
                Err("must be an http or https URL")
            );
            assert_eq!(
                check_base_url(&url("https://u:p@example.com")),
                Err("must not carry credentials")
            );
            assert_eq!(
                check_base_url(&url("https://example.com/?a=1")),
                Err("must not have a query or fragment")
            );
            assert_eq!(
                check_base_url(&url("https://example.com/#f")),
                Err("must not have a query or fragment")
            );
        }

        #[test]
        fn trailing_slashes_and_origins() {
            let url = |s: &str| Url::parse(s).unwrap();
            assert_eq!(
                with_trailing_slash(url("https://example.com/v2")).as_str(),
                "https://example.com/v2/"
            );
            assert_eq!(
                with_trailing_slash(url("https://example.com/v2/")).as_str(),
                "https://example.com/v2/"
            );
            let origin = url("https://example.com/api/");
            assert!(same_origin(&url("https://example.com/other?page=2"), &origin));
            assert!(!same_origin(&url("http://example.com/api/"), &origin));
            assert!(!same_origin(&url("https://example.com:8443/api/"), &origin));
            assert!(!same_origin(&url("https://evil.example/api/"), &origin));
            assert!(!same_origin(&url("https://u:p@example.com/api/"), &origin));
        }
    }
}
