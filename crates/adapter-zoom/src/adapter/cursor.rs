//! The continuation this adapter hands the gateway: which Zoom list a search walks and Zoom's own
//! `next_page_token` for its next page.
//!
//! Encoded as compact JSON, e.g. `{"s":"visits","t":"ff9d4fb9-8b64-4d6d-93ff-8bc86b18f5c4"}`. Zoom
//! binds the token to the query it was issued for and lets it expire after 15 minutes; an expired
//! token is [`AdapterError::ContinuationExpired`] (the gateway answers 410), never a wrong page.

use serde::{Deserialize, Serialize};

use adapter::{AdapterError, Continuation};

use crate::client::VENDOR;

/// One Zoom list endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Stream {
    Notes,
    Visits,
    Providers,
}

impl Stream {
    /// The list path (segments under the API base).
    pub(crate) fn path(self) -> &'static [&'static str] {
        match self {
            Self::Notes => &["clinical_notes", "notes"],
            Self::Visits => &["healthcare", "visits"],
            Self::Providers => &["healthcare", "providers"],
        }
    }
}

/// Where a search stands: the list and Zoom's token for its next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) stream: Stream,
    pub(crate) token: String,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    s: Stream,
    t: String,
}

/// Zoom's tokens are short opaque strings; anything much longer is not one.
const MAX_TOKEN_LEN: usize = 512;

impl Cursor {
    pub(crate) fn encode(&self) -> Continuation {
        let wire = Wire {
            s: self.stream,
            t: self.token.clone(),
        };
        // Serializing a struct of strings cannot fail; an empty continuation is refused on the way
        // back rather than panicking here.
        Continuation(serde_json::to_string(&wire).unwrap_or_default())
    }

    /// Reads a continuation made by [`Cursor::encode`] for `stream`; anything else has expired.
    pub(crate) fn decode(continuation: &Continuation, stream: Stream) -> Result<Self, AdapterError> {
        let expired = || AdapterError::ContinuationExpired { vendor: VENDOR };
        let wire: Wire = serde_json::from_str(&continuation.0).map_err(|_| expired())?;
        let token_ok =
            !wire.t.is_empty() && wire.t.len() <= MAX_TOKEN_LEN && wire.t.bytes().all(|b| b.is_ascii_graphic());
        if wire.s != stream || !token_ok {
            return Err(expired());
        }
        Ok(Self {
            stream: wire.s,
            token: wire.t,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            stream: Stream::Visits,
            token: "ff9d4fb9-8b64-4d6d-93ff-8bc86b18f5c4".into(),
        };
        let encoded = c.encode();
        assert_eq!(
            encoded.0,
            r#"{"s":"visits","t":"ff9d4fb9-8b64-4d6d-93ff-8bc86b18f5c4"}"#
        );
        assert_eq!(Cursor::decode(&encoded, Stream::Visits).unwrap(), c);
    }

    #[test]
    fn foreign_continuations_have_expired() {
        let expired = Err(AdapterError::ContinuationExpired { vendor: VENDOR });
        for bad in [
            "",
            "{}",
            r#"{"s":"meetings","t":"x"}"#,
            r#"{"s":"visits","t":""}"#,
            r#"{"s":"visits","t":"a b"}"#,
            r#"{"s":"notes","t":"abc"}"#,
        ] {
            assert_eq!(
                Cursor::decode(&Continuation(bad.into()), Stream::Visits),
                expired,
                "{bad}"
            );
        }
        let long = format!(r#"{{"s":"visits","t":"{}"}}"#, "a".repeat(600));
        assert_eq!(Cursor::decode(&Continuation(long), Stream::Visits), expired);
    }
}
