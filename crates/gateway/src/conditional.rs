//! HTTP caching semantics of reads: a weak `ETag` from the content, `Last-Modified` from
//! `meta.lastUpdated`, `If-None-Match` / `If-Modified-Since` → 304, `Cache-Control: private`, and
//! the marks of an answer served stale because a vendor failed.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::cache::StaleNote;
use crate::error::{Issue, IssueCode, Severity};
use crate::format::FHIR_JSON;

/// Every `/fhir` response may carry patient data: never stored by a shared cache, and a client's
/// own cache revalidates before reuse.
pub const PRIVATE: &str = "private, no-cache";

/// A weak entity tag from the bytes the client would receive (`W/"…"`, 128 bits of SHA-256):
/// equal bytes, equal tag, whoever asks and whatever the vendor's version counters say.
pub fn weak_etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("W/\"{}\"", data_encoding::HEXLOWER.encode(&digest[..16]))
}

/// An HTTP-date (`Sat, 21 Nov 2026 10:00:00 GMT`).
pub fn http_date(when: DateTime<Utc>) -> String {
    when.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// A `Last-Modified` value: the time, and its header, formatted once.
#[derive(Debug, Clone)]
pub struct LastModified {
    pub at: DateTime<Utc>,
    header: Option<HeaderValue>,
}

impl LastModified {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            at,
            header: HeaderValue::from_str(&http_date(at)).ok(),
        }
    }
}

/// A weak tag as a header value.
pub fn etag_header(etag: &str) -> HeaderValue {
    HeaderValue::from_str(etag).unwrap_or_else(|_| HeaderValue::from_static("W/\"\""))
}

/// True when an `If-None-Match` header lists `etag` (weak comparison) or `*`.
fn none_match_hits(headers: &HeaderMap, etag: &str) -> Option<bool> {
    let mut seen = false;
    let ours = etag.trim_start_matches("W/");
    for value in headers.get_all(header::IF_NONE_MATCH) {
        seen = true;
        let Ok(text) = value.to_str() else { continue };
        for tag in text.split(',').map(str::trim) {
            if tag == "*" || tag.trim_start_matches("W/") == ours {
                return Some(true);
            }
        }
    }
    seen.then_some(false)
}

/// True when `If-Modified-Since` is at or after `last_modified` (to the second).
fn not_modified_since(headers: &HeaderMap, last_modified: Option<DateTime<Utc>>) -> bool {
    let (Some(last), Some(since)) = (
        last_modified,
        headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v.trim()).ok()),
    ) else {
        return false;
    };
    last.timestamp() <= since.timestamp()
}

/// The answer to a read: 200 with the body (whose weak tag `etag` is), or 304 when the client's copy is current
/// (`If-None-Match` decides when sent, else `If-Modified-Since`); both carry `ETag`,
/// `Last-Modified` (when known) and `Cache-Control`.
pub fn read_response(
    body: axum::body::Bytes,
    etag: &HeaderValue,
    headers: &HeaderMap,
    last_modified: Option<&LastModified>,
    stale: &[StaleNote],
) -> Response {
    let unchanged = match none_match_hits(headers, etag.to_str().unwrap_or_default()) {
        Some(hit) => hit,
        None => not_modified_since(headers, last_modified.map(|l| l.at)),
    };
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        r
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag.clone());
    if let Some(v) = last_modified.and_then(|l| l.header.clone()) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(PRIVATE));
    mark_stale(&mut response, stale);
    response
}

/// Marks a response that carries stale answers: `Warning: 110` and the oldest answer's `Age`.
pub fn mark_stale(response: &mut Response, stale: &[StaleNote]) {
    let Some(oldest) = stale.iter().map(|n| n.age).max() else {
        return;
    };
    let mut sources: Vec<&str> = stale.iter().map(|n| n.source).collect();
    sources.sort_unstable();
    sources.dedup();
    let warning = format!(
        "110 fhir-gateway \"Response is Stale: {} failed; served from the gateway's cache\"",
        sources.join(", ")
    );
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&warning) {
        h.insert(header::WARNING, v);
    }
    h.insert(header::AGE, HeaderValue::from(oldest.as_secs()));
}

/// The Bundle's OperationOutcome entry for a stale search page.
pub fn stale_issue(note: &StaleNote) -> Issue {
    Issue::new(
        Severity::Warning,
        IssueCode::Transient,
        format!(
            "{} failed ({}); its entries are the gateway's cached copy from {} s ago",
            note.source,
            note.failure,
            note.age.as_secs()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer to a read of `{}` with `headers`, last modified at `last`.
    fn answer(headers: &HeaderMap, last: Option<DateTime<Utc>>) -> Response {
        let etag = etag_header(&weak_etag(b"{}"));
        read_response(
            b"{}".to_vec().into(),
            &etag,
            headers,
            last.map(LastModified::new).as_ref(),
            &[],
        )
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn etags_are_weak_and_follow_the_content() {
        let a = weak_etag(b"{\"id\":\"1\"}");
        assert!(
            a.starts_with("W/\"") && a.ends_with('"') && a.len() == 2 + 1 + 32 + 1,
            "{a}"
        );
        assert_eq!(a, weak_etag(b"{\"id\":\"1\"}"));
        assert_ne!(a, weak_etag(b"{\"id\":\"2\"}"));
    }

    #[test]
    fn if_none_match_uses_weak_comparison_lists_and_star() {
        let etag = weak_etag(b"x");
        let strong = etag.trim_start_matches("W/").to_owned();
        assert_eq!(none_match_hits(&HeaderMap::new(), &etag), None);
        assert_eq!(
            none_match_hits(&headers(&[(header::IF_NONE_MATCH, &etag)]), &etag),
            Some(true)
        );
        assert_eq!(
            none_match_hits(&headers(&[(header::IF_NONE_MATCH, &strong)]), &etag),
            Some(true)
        );
        let list = format!("W/\"other\", {etag}");
        assert_eq!(
            none_match_hits(&headers(&[(header::IF_NONE_MATCH, &list)]), &etag),
            Some(true)
        );
        assert_eq!(
            none_match_hits(&headers(&[(header::IF_NONE_MATCH, "*")]), &etag),
            Some(true)
        );
        assert_eq!(
            none_match_hits(&headers(&[(header::IF_NONE_MATCH, "W/\"other\"")]), &etag),
            Some(false)
        );
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let last = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let later = http_date(last + chrono::Duration::seconds(10));
        let h = headers(&[
            (header::IF_NONE_MATCH, "W/\"other\""),
            (header::IF_MODIFIED_SINCE, &later),
        ]);
        let r = answer(&h, Some(last));
        assert_eq!(r.status(), StatusCode::OK);
        let h = headers(&[(header::IF_MODIFIED_SINCE, &later)]);
        let r = answer(&h, Some(last));
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::LAST_MODIFIED], "Fri, 02 Jan 2026 03:04:05 GMT");
        let earlier = http_date(last - chrono::Duration::seconds(1));
        let h = headers(&[(header::IF_MODIFIED_SINCE, &earlier)]);
        assert_eq!(answer(&h, Some(last)).status(), StatusCode::OK);
        let h = headers(&[(header::IF_MODIFIED_SINCE, "not a date")]);
        assert_eq!(answer(&h, Some(last)).status(), StatusCode::OK);
        let h = headers(&[(header::IF_MODIFIED_SINCE, &later)]);
        assert_eq!(
            answer(&h, None).status(),
            StatusCode::OK,
            "no Last-Modified, no 304 by date"
        );
    }

    #[test]
    fn stale_answers_are_marked() {
        let note = StaleNote {
            source: "drchrono",
            age: std::time::Duration::from_secs(75),
            failure: "drchrono is unavailable".into(),
        };
        let r = read_response(
            b"{}".to_vec().into(),
            &etag_header(&weak_etag(b"{}")),
            &HeaderMap::new(),
            None,
            std::slice::from_ref(&note),
        );
        assert_eq!(r.headers()[header::AGE], "75");
        let w = r.headers()[header::WARNING].to_str().unwrap();
        assert!(w.starts_with("110 fhir-gateway \"Response is Stale: drchrono"), "{w}");
        assert_eq!(r.headers()[header::CACHE_CONTROL], PRIVATE);
        let issue = stale_issue(&note);
        assert_eq!(issue.severity, Severity::Warning);
        assert!(issue.diagnostics.contains("75 s ago"), "{}", issue.diagnostics);
    }
}
