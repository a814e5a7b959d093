//! Opaque, tamper-proof paging links.
//!
//! A link carries everything needed to serve the next page on any replica that shares the
//! signing key: the canonical query, the position in every source (the vendors' own
//! continuations), and when it was issued. It is `base64url(json) "." base64url(HMAC-SHA256)`.

use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::GatewayError;

type HmacSha256 = Hmac<Sha256>;

/// Where one source's stream of results stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePos {
    /// The source name.
    pub src: String,
    /// The vendor continuation of the vendor page being read (`None`: the first page).
    pub cont: Option<String>,
    /// How many resources of that vendor page were already consumed.
    pub skip: usize,
    /// The source has nothing more.
    pub done: bool,
    /// The source failed earlier in this (lenient) search: every later page says its results are
    /// missing. Absent from links minted before it existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

/// A position in a search's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Position {
    /// Streaming through the sources in order, in vendor order.
    Stream { sources: Vec<SourcePos> },
    /// An offset into the fully materialised, sorted result.
    Offset { offset: usize },
}

/// The signed content of a paging link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Resource type searched.
    pub t: String,
    /// The canonical query of the search.
    pub q: Vec<(String, String)>,
    /// Unix seconds when the link was issued.
    pub iat: i64,
    pub pos: Position,
}

/// Signs and verifies paging cursors.
#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
    ttl_secs: i64,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorCodec")
            .field("key", &"***")
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

impl CursorCodec {
    pub fn new(key: &[u8], ttl_secs: i64) -> Self {
        Self {
            key: key.to_vec(),
            ttl_secs,
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    /// Encodes and signs a cursor.
    pub fn encode(&self, cursor: &Cursor) -> String {
        let body = BASE64URL_NOPAD.encode(&serde_json::to_vec(cursor).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let sig = BASE64URL_NOPAD.encode(&mac.finalize().into_bytes());
        format!("{body}.{sig}")
    }

    /// Verifies and decodes a cursor: a forged or damaged link is a 400, an expired one a 410.
    pub fn decode(&self, token: &str, now_unix: i64) -> Result<Cursor, GatewayError> {
        let forged = || GatewayError::BadParameter {
            name: "_cursor".into(),
            message: "the paging link is not valid (it was altered or was not issued by this server)".into(),
        };
        let (body, sig) = token.split_once('.').ok_or_else(forged)?;
        let sig = BASE64URL_NOPAD.decode(sig.as_bytes()).map_err(|_| forged())?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&sig).map_err(|_| forged())?;
        let json = BASE64URL_NOPAD.decode(body.as_bytes()).map_err(|_| forged())?;
        let cursor: Cursor = serde_json::from_slice(&json).map_err(|_| forged())?;
        // Saturating: a signed link is ours, but its numbers must not be able to overflow.
        if cursor.iat > now_unix.saturating_add(60) {
            return Err(forged());
        }
        if now_unix.saturating_sub(cursor.iat) > self.ttl_secs {
            return Err(GatewayError::PageExpired(
                "the paging link has expired; run the search again to get fresh links".into(),
            ));
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(iat: i64) -> Cursor {
        Cursor {
            t: "Patient".into(),
            q: vec![("family".into(), "smith".into())],
            iat,
            pos: Position::Stream {
                sources: vec![SourcePos {
                    src: "drchrono".into(),
                    cont: Some("https://x/api?page=2".into()),
                    skip: 3,
                    done: false,
                    failed: false,
                }],
            },
        }
    }

    #[test]
    fn round_trips_and_refuses_tampering() {
        let codec = CursorCodec::new(b"k1", 600);
        let token = codec.encode(&cursor(1000));
        assert_eq!(codec.decode(&token, 1100).unwrap(), cursor(1000));
        let mut bytes = token.clone().into_bytes();
        bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(matches!(
            codec.decode(&tampered, 1100),
            Err(GatewayError::BadParameter { .. })
        ));
        assert!(matches!(
            CursorCodec::new(b"k2", 600).decode(&token, 1100),
            Err(GatewayError::BadParameter { .. })
        ));
        assert!(matches!(
            codec.decode("garbage", 1100),
            Err(GatewayError::BadParameter { .. })
        ));
        assert!(matches!(
            codec.decode(&token, 1000 + 601),
            Err(GatewayError::PageExpired(_))
        ));
        assert!(matches!(
            codec.decode(&token, 800),
            Err(GatewayError::BadParameter { .. })
        ));
    }
}
