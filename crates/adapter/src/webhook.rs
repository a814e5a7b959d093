//! Inbound vendor webhooks: each adapter verifies its vendor's callbacks and turns them into
//! [`ChangeEvent`]s. The gateway only routes `/webhooks/{source}` to the adapter's receiver.

use chrono::{DateTime, Utc};

use crate::{ChangeEvent, ResourceType};

/// One inbound webhook call.
#[derive(Debug, Clone)]
pub struct WebhookRequest<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The path after `/webhooks/{source}` (`""`, or `"/{secret}"` for vendors whose callback URL
    /// carries a secret, like Noa's).
    pub path: &'a str,
    /// Header names in lower case, values as sent.
    pub headers: &'a [(String, String)],
    /// The query string pairs (DrChrono verifies with `?msg=`).
    pub query: &'a [(String, String)],
    /// The raw body, byte for byte as received (signatures cover it).
    pub body: &'a [u8],
    /// The gateway's clock.
    pub now: DateTime<Utc>,
}

impl WebhookRequest<'_> {
    /// The first header named `name` (compared case-insensitively), its value trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

/// What to answer the vendor, and what changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookResponse {
    /// HTTP status for the vendor (usually 200 or 204).
    pub status: u16,
    /// A JSON body, when the vendor expects one (Zoom's `endpoint.url_validation` answer).
    pub body: Option<serde_json::Value>,
    /// The resources the call says changed.
    pub events: Vec<ChangeEvent>,
}

/// Why a webhook call was refused. Nothing in it may echo the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Signature missing or wrong, timestamp outside the window, or a replay (401).
    #[error("webhook refused: {0}")]
    Unauthorized(&'static str),
    /// The callback URL itself is wrong (Noa's path secret): answered 404, as if nothing were there.
    #[error("no such webhook endpoint")]
    UnknownEndpoint,
    /// Verified but not understood (400).
    #[error("webhook not understood: {0}")]
    Malformed(&'static str),
}

/// Verifies and interprets one vendor's webhook calls.
pub trait WebhookReceiver: Send + Sync {
    fn receive(&self, request: &WebhookRequest<'_>) -> Result<WebhookResponse, WebhookError>;

    /// The path after `/webhooks/{source}/` the vendor calls, as documented (`{secret}` for Noa);
    /// `None` when the vendor calls `/webhooks/{source}` itself.
    fn path_template(&self) -> Option<&'static str> {
        None
    }

    /// The types every change of which the vendor announces with a webhook this receiver turns into
    /// change events (the vendor's documented events, not the ones it may send): a cache can keep
    /// these longer, since a change evicts them. Empty (the default) when some change of every
    /// type may go unannounced.
    fn announces(&self) -> &'static [ResourceType] {
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_by_name_in_any_case() {
        let headers = [
            ("x-signature".to_owned(), " abc ".to_owned()),
            ("X-Signature".to_owned(), "second".to_owned()),
        ];
        let request = WebhookRequest {
            method: "POST",
            path: "",
            headers: &headers,
            query: &[],
            body: b"",
            now: DateTime::<Utc>::UNIX_EPOCH,
        };
        assert_eq!(request.header("X-SIGNATURE"), Some("abc"));
        assert_eq!(request.header("x-timestamp"), None);
    }
}
