//! Small helpers: clock, random tokens, hashing, form bodies.

use std::collections::HashMap;

use data_encoding::BASE64URL_NOPAD;
use sha2::{Digest, Sha256};

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// 256 random bits, base64url (43 characters): codes, refresh tokens, transaction ids, jtis.
pub(crate) fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    BASE64URL_NOPAD.encode(&bytes)
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub(crate) fn b64url(data: &[u8]) -> String {
    BASE64URL_NOPAD.encode(data)
}

/// Compares without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A parsed `application/x-www-form-urlencoded` body.
#[derive(Debug, Default)]
pub(crate) struct Form(HashMap<String, String>);

impl Form {
    /// Parses a body; a parameter given twice is an error (RFC 6749 §3.1) that names it.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(format!("parameter '{}' is repeated", truncate(&k, 40)));
            }
        }
        Ok(Self(map))
    }

    /// The value, `None` when absent or empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub(crate) fn from_map(map: HashMap<String, String>) -> Self {
        Self(map)
    }
}

/// At most `max` characters of `s` (for error messages echoing client input).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// PEM-encodes DER.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The label and DER of the first PEM block.
pub(crate) fn pem_decode(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let body = &rest[label_end + 5..];
    let end = body.find(&format!("-----END {label}-----"))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = data_encoding::BASE64.decode(b64.as_bytes()).ok()?;
    Some((label, der))
}

/// The issuer-style form of a URL: its serialization without a trailing `/`.
pub(crate) fn trim_slash(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_refuse_repeated_parameters() {
        let f = Form::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.get("b"), None);
        assert_eq!(f.get("c"), Some("x y"));
        assert!(Form::parse(b"a=1&a=2").is_err());
    }

    #[test]
    fn pem_round_trips() {
        let der = vec![1u8, 2, 3, 250, 251, 252];
        let pem = pem_encode("PRIVATE KEY", &der);
        assert_eq!(pem_decode(&pem), Some(("PRIVATE KEY".to_owned(), der)));
        assert_eq!(pem_decode("garbage"), None);
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b"ab")
        );
    }
}
