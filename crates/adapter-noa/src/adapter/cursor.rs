//! The continuation this adapter hands the gateway: Noa's own `nextPageToken` for the next page of
//! the session list.
//!
//! Encoded as compact JSON, `{"s":"sessions","t":"<token>"}`. The search is planned again from the
//! same request on every page, so the list is asked with the same filters; a token Noa no longer
//! accepts is [`AdapterError::ContinuationExpired`] (the gateway answers 410), never a wrong page.

use serde::{Deserialize, Serialize};

use adapter::{AdapterError, Continuation};

use crate::client::VENDOR;

/// The list a continuation walks.
const STREAM: &str = "sessions";

/// Noa's tokens are short opaque strings; anything much longer is not one.
const MAX_TOKEN_LEN: usize = 1024;

#[derive(Serialize, Deserialize)]
struct Wire {
    s: String,
    t: String,
}

/// Wraps Noa's `nextPageToken`.
pub(crate) fn encode(token: &str) -> Continuation {
    let wire = Wire {
        s: STREAM.into(),
        t: token.to_owned(),
    };
    // Serializing two strings cannot fail; an empty continuation is refused on the way back.
    Continuation(serde_json::to_string(&wire).unwrap_or_default())
}

/// Reads a continuation made by [`encode`]; anything else has expired.
pub(crate) fn decode(continuation: &Continuation) -> Result<String, AdapterError> {
    let expired = || AdapterError::ContinuationExpired { vendor: VENDOR };
    let wire: Wire = serde_json::from_str(&continuation.0).map_err(|_| expired())?;
    let token_ok = !wire.t.is_empty() && wire.t.len() <= MAX_TOKEN_LEN && wire.t.bytes().all(|b| b.is_ascii_graphic());
    if wire.s != STREAM || !token_ok {
        return Err(expired());
    }
    Ok(wire.t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_round_trip() {
        let c = encode("eyJvIjo1MH0=");
        assert_eq!(c.0, r#"{"s":"sessions","t":"eyJvIjo1MH0="}"#);
        assert_eq!(decode(&c).unwrap(), "eyJvIjo1MH0=");
    }

    #[test]
    fn foreign_continuations_have_expired() {
        let expired = Err(AdapterError::ContinuationExpired { vendor: VENDOR });
        for bad in [
            "",
            "{}",
            r#"{"s":"visits","t":"x"}"#,
            r#"{"s":"sessions","t":""}"#,
            r#"{"s":"sessions","t":"a b"}"#,
        ] {
            assert_eq!(decode(&Continuation(bad.into())), expired, "{bad}");
        }
        let long = format!(r#"{{"s":"sessions","t":"{}"}}"#, "a".repeat(1100));
        assert_eq!(decode(&Continuation(long)), expired);
    }
}
