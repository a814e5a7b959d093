//! Noa webhooks: status changes of sessions, posted to the callback URL the adapter hands Noa.
//!
//! Noa does not sign its callbacks. The callback URL carries an unguessable per-deployment secret
//! (`{public base}/webhooks/noa/{secret}`): a call is believed only when it is a `POST` to exactly
//! that path, compared in constant time; anything else is [`WebhookError::UnknownEndpoint`] (the
//! gateway answers 404, as if nothing were there) and nothing in it is read.
//!
//! A believed call names a session and its new status; it is answered 204 with the session's
//! Encounter and DocumentReference as updated. When the summary has just been verified
//! (`Verified`, `EmptySummaryVerified`) it is fetched once, in the background, into the adapter's
//! memo of verified summaries; when a recovery or regeneration starts (`Analyzing`) the kept
//! summary is dropped. Errors and logs never carry the payload.

use std::sync::Arc;

use adapter::{ChangeEvent, ChangeKind, ResourceType, WebhookError, WebhookReceiver, WebhookRequest, WebhookResponse};

use crate::adapter::memo::SummaryMemo;
use crate::client::NoaClient;
use crate::config::{Endpoint, Secret};
use crate::map::codes::SessionStatus;
use crate::map::ids;
use crate::wire;

/// The longest body accepted (an event is a few hundred bytes).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The receiver of one Noa consumer's callbacks ([`WebhookReceiver`]).
pub struct NoaWebhooks {
    /// `/` followed by the webhook secret: the only path believed.
    path: Secret,
    account: String,
    client: Arc<NoaClient>,
    summaries: Arc<SummaryMemo>,
}

impl std::fmt::Debug for NoaWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoaWebhooks")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl NoaWebhooks {
    pub(crate) fn new(secret: &Secret, account: String, client: Arc<NoaClient>, summaries: Arc<SummaryMemo>) -> Self {
        Self {
            path: Secret::new(format!("/{}", secret.expose())),
            account,
            client,
            summaries,
        }
    }

    /// Fetches a verified session's summary into the memo, in the background, once.
    fn prefetch(&self, session_id: &str) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(epoch) = self.summaries.begin_fetch(session_id) else {
            return;
        };
        let (client, summaries, session_id) = (self.client.clone(), self.summaries.clone(), session_id.to_owned());
        runtime.spawn(async move {
            match client.get(Endpoint::SessionSummary(&session_id), &[]).await {
                Ok(Some(value)) => match serde_json::from_value::<wire::Summary>(value) {
                    Ok(summary) => {
                        summaries.store(&session_id, &summary, epoch);
                    }
                    Err(_) => tracing::warn!("a Noa summary does not have the documented shape"),
                },
                Ok(None) => {}
                Err(error) => tracing::debug!(%error, "a verified Noa summary could not be fetched ahead"),
            }
            summaries.end_fetch(&session_id);
        });
    }
}

impl WebhookReceiver for NoaWebhooks {
    fn receive(&self, request: &WebhookRequest<'_>) -> Result<WebhookResponse, WebhookError> {
        let path_ok = constant_time_eq(request.path.as_bytes(), self.path.expose().as_bytes());
        if !path_ok || !request.method.eq_ignore_ascii_case("POST") {
            return Err(WebhookError::UnknownEndpoint);
        }
        if request.body.len() > MAX_BODY_BYTES {
            return Err(WebhookError::Malformed("the body is too large"));
        }
        let event: wire::WebhookEvent = serde_json::from_slice(request.body)
            .map_err(|_| WebhookError::Malformed("the body is not a Noa session event"))?;
        let session_id = event.session_id.trim();
        if !ids::is_session_id(session_id) {
            return Err(WebhookError::Malformed("the event names no session"));
        }
        match SessionStatus::from_wire(&event.status) {
            Some(status) if status.is_verified() => self.prefetch(session_id),
            Some(SessionStatus::Analyzing) => {
                self.summaries.forget(session_id);
            }
            Some(_) => {}
            None if event.status.trim().is_empty() => {
                return Err(WebhookError::Malformed("the event names no status"));
            }
            // A status this adapter does not know: the session changed all the same.
            None => tracing::debug!("a Noa event carries a status this adapter does not know"),
        }
        let change = |resource_type| ChangeEvent {
            source: ids::SOURCE,
            account: self.account.clone(),
            resource_type,
            native_id: session_id.to_owned(),
            kind: ChangeKind::Updated,
        };
        Ok(WebhookResponse {
            status: 204,
            body: None,
            events: vec![change(ResourceType::Encounter), change(ResourceType::DocumentReference)],
        })
    }

    /// Noa calls `/webhooks/noa/{secret}`.
    fn path_template(&self) -> Option<&'static str> {
        Some("{secret}")
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison_is_equality() {
        assert!(constant_time_eq(b"/abc", b"/abc"));
        assert!(!constant_time_eq(b"/abc", b"/abd"));
        assert!(!constant_time_eq(b"/abc", b"/abcd"));
        assert!(!constant_time_eq(b"", b"/"));
        assert!(constant_time_eq(b"", b""));
    }
}
