//! Zoom webhooks: every call is verified before anything in it is believed, then turned into
//! [`ChangeEvent`]s.
//!
//! Verification (Zoom's `v0` scheme):
//! - `x-zm-request-timestamp` (seconds since the epoch) must be within five minutes of the
//!   gateway's clock, either way;
//! - `x-zm-signature` must be `v0=` followed by the hex HMAC-SHA256 of `v0:{timestamp}:{body}`
//!   keyed with the app's secret token, compared in constant time;
//! - a signature already accepted within the window is a replay and refused.
//!
//! `endpoint.url_validation` is verified the same way (Zoom signs it), and is answered with
//! `{"plainToken", "encryptedToken": hex(HMAC-SHA256(secret, plainToken))}`; a plain token that
//! is not a short run of letters, digits, `-` and `_` is refused, so the answer can never be a
//! signature of some other message. Errors and logs never carry the payload.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use adapter::{ChangeEvent, ChangeKind, ResourceType, WebhookError, WebhookReceiver, WebhookRequest, WebhookResponse};
use chrono::{DateTime, Utc};
use data_encoding::{HEXLOWER, HEXLOWER_PERMISSIVE};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::config::Secret;
use crate::map::ids;

/// How far a request's timestamp may be from the gateway's clock.
pub const WINDOW_SECONDS: i64 = 5 * 60;

/// Signatures remembered for replay detection (the oldest is forgotten first).
const MAX_REMEMBERED: usize = 10_000;

/// The longest body accepted (Zoom events are a few kilobytes; a note's content is not sent).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The longest `plainToken` answered.
const MAX_PLAIN_TOKEN: usize = 128;

const SIGNATURE_HEADER: &str = "x-zm-signature";
const TIMESTAMP_HEADER: &str = "x-zm-request-timestamp";

type HmacSha256 = Hmac<Sha256>;

/// The verifier of one Zoom app's webhooks ([`WebhookReceiver`]).
pub struct ZoomWebhooks {
    secret: Secret,
    account: String,
    account_id: String,
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for ZoomWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoomWebhooks")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// Accepted signatures with the time after which their timestamp is stale anyway.
#[derive(Default)]
struct Seen {
    set: HashSet<[u8; 32]>,
    order: VecDeque<([u8; 32], i64)>,
}

impl Seen {
    /// Forgets what can no longer be replayed, then records `signature`; `false` when it was
    /// already there.
    fn insert(&mut self, signature: [u8; 32], stale_after: i64, now: i64) -> bool {
        while let Some((old, stale)) = self.order.front().copied() {
            if stale < now || self.order.len() >= MAX_REMEMBERED {
                self.order.pop_front();
                self.set.remove(&old);
            } else {
                break;
            }
        }
        if !self.set.insert(signature) {
            return false;
        }
        self.order.push_back((signature, stale_after));
        true
    }
}

impl ZoomWebhooks {
    /// A verifier keyed with the app's secret token. `account` names the events' account
    /// ([`adapter::Adapter::account`]); events whose `payload.account_id` names another Zoom
    /// account than `account_id` are acknowledged and ignored.
    pub fn new(secret: Secret, account: impl Into<String>, account_id: impl Into<String>) -> Self {
        Self {
            secret,
            account: account.into(),
            account_id: account_id.into(),
            seen: Mutex::new(Seen::default()),
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(self.secret.expose().as_bytes()).expect("HMAC takes keys of any length")
    }

    /// Checks timestamp, signature and replay.
    fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), WebhookError> {
        let timestamp = request
            .header(TIMESTAMP_HEADER)
            .ok_or(WebhookError::Unauthorized("no timestamp"))?;
        let signature = request
            .header(SIGNATURE_HEADER)
            .ok_or(WebhookError::Unauthorized("no signature"))?;
        let ts = parse_timestamp(timestamp).ok_or(WebhookError::Unauthorized("the timestamp is not a number"))?;
        let now = request.now.timestamp();
        if (now - ts).abs() > WINDOW_SECONDS {
            return Err(WebhookError::Unauthorized(
                "the timestamp is outside the five-minute window",
            ));
        }
        let hex = signature
            .strip_prefix("v0=")
            .ok_or(WebhookError::Unauthorized("the signature is not a v0 signature"))?;
        let given: [u8; 32] = HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(WebhookError::Unauthorized("the signature is malformed"))?;
        let mut mac = self.mac();
        mac.update(b"v0:");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(request.body);
        mac.verify_slice(&given)
            .map_err(|_| WebhookError::Unauthorized("the signature does not match"))?;
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !seen.insert(given, ts + WINDOW_SECONDS, now) {
            return Err(WebhookError::Unauthorized("the request is a replay"));
        }
        Ok(())
    }

    fn url_validation(&self, payload: Option<&Value>) -> Result<WebhookResponse, WebhookError> {
        let plain = payload
            .and_then(|p| p.get("plainToken"))
            .and_then(Value::as_str)
            .ok_or(WebhookError::Malformed("the URL validation has no plainToken"))?;
        let plain_ok = !plain.is_empty()
            && plain.len() <= MAX_PLAIN_TOKEN
            && plain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plain_ok {
            return Err(WebhookError::Malformed("the plainToken is not a plain token"));
        }
        let mut mac = self.mac();
        mac.update(plain.as_bytes());
        let encrypted = HEXLOWER.encode(&mac.finalize().into_bytes());
        Ok(WebhookResponse {
            status: 200,
            body: Some(json!({"plainToken": plain, "encryptedToken": encrypted})),
            events: Vec::new(),
        })
    }

    /// The change events of a verified event call.
    fn events(&self, event: &str, payload: Option<&Value>) -> Result<Vec<ChangeEvent>, WebhookError> {
        let Some(kind) = EventKind::parse(event) else {
            tracing::debug!(event, "ignored a Zoom webhook event of a kind the gateway does not use");
            return Ok(Vec::new());
        };
        if let Some(account) = payload.and_then(|p| p.get("account_id")).and_then(Value::as_str)
            && account != self.account_id
        {
            tracing::warn!(event, "ignored a signed Zoom webhook event of another Zoom account");
            return Ok(Vec::new());
        }
        let object = payload
            .and_then(|p| p.get("object"))
            .ok_or(WebhookError::Malformed("the event has no payload object"))?;
        let text = |key: &str| object.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
        let change_event = |resource_type, native_id: String, kind| ChangeEvent {
            source: ids::SOURCE,
            account: self.account.clone(),
            resource_type,
            native_id,
            kind,
        };
        Ok(match kind {
            EventKind::Note(change) => {
                let note = text("note_id").ok_or(WebhookError::Malformed("the note event names no note"))?;
                vec![change_event(ResourceType::DocumentReference, ids::note(note), change)]
            }
            EventKind::Visit { appointment, encounter } => {
                let visit = text("id")
                    .or_else(|| text("visit_id"))
                    .ok_or(WebhookError::Malformed("the visit event names no visit"))?;
                let mut out = vec![change_event(
                    ResourceType::Appointment,
                    ids::appointment(visit),
                    appointment,
                )];
                if let Some(change) = encounter {
                    // A visit that starts without the patient having waited gets its Encounter now.
                    let change = if event == "healthcare.visit.started" && text("patient_joined_at").is_none() {
                        ChangeKind::Created
                    } else {
                        change
                    };
                    out.push(change_event(ResourceType::Encounter, ids::encounter(visit), change));
                }
                out
            }
            EventKind::Waiting { encounter } => {
                let visit = text("visit_id")
                    .or_else(|| text("id"))
                    .ok_or(WebhookError::Malformed("the waiting-room event names no visit"))?;
                vec![
                    change_event(ResourceType::Encounter, ids::encounter(visit), encounter),
                    change_event(ResourceType::Appointment, ids::appointment(visit), ChangeKind::Updated),
                ]
            }
        })
    }
}

impl WebhookReceiver for ZoomWebhooks {
    fn receive(&self, request: &WebhookRequest<'_>) -> Result<WebhookResponse, WebhookError> {
        if !request.method.eq_ignore_ascii_case("POST") {
            return Err(WebhookError::Malformed("Zoom webhooks are POSTed"));
        }
        if request.body.len() > MAX_BODY_BYTES {
            return Err(WebhookError::Malformed("the body is too large"));
        }
        self.verify(request)?;
        let body: Value =
            serde_json::from_slice(request.body).map_err(|_| WebhookError::Malformed("the body is not JSON"))?;
        let event = body
            .get("event")
            .and_then(Value::as_str)
            .ok_or(WebhookError::Malformed("the body names no event"))?;
        let payload = body.get("payload");
        if event == "endpoint.url_validation" {
            return self.url_validation(payload);
        }
        let events = self.events(event, payload)?;
        Ok(WebhookResponse {
            status: 200,
            body: None,
            events,
        })
    }
}

/// The events the gateway acts on, and what each means for its resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    /// A clinical note changed.
    Note(ChangeKind),
    /// A visit changed; started and ended visits also change their Encounter.
    Visit {
        appointment: ChangeKind,
        encounter: Option<ChangeKind>,
    },
    /// The patient entered the waiting room or was admitted: the visit's Encounter and Appointment.
    Waiting { encounter: ChangeKind },
}

impl EventKind {
    fn parse(event: &str) -> Option<Self> {
        use ChangeKind::{Created, Updated};
        Some(match event {
            "clinical_notes.note_created" => Self::Note(Created),
            "clinical_notes.note_updated" | "clinical_notes.note_completed" => Self::Note(Updated),
            "healthcare.visit.scheduled" => Self::Visit {
                appointment: Created,
                encounter: None,
            },
            "healthcare.visit.cancelled" => Self::Visit {
                appointment: Updated,
                encounter: None,
            },
            // A visit without a waiting room starts without an Encounter existing before.
            "healthcare.visit.started" | "healthcare.visit.ended" => Self::Visit {
                appointment: Updated,
                encounter: Some(Updated),
            },
            "healthcare.patient.waiting" => Self::Waiting { encounter: Created },
            "healthcare.patient.admitted" => Self::Waiting { encounter: Updated },
            _ => return None,
        })
    }
}

/// Seconds since the epoch, as Zoom sends them.
fn parse_timestamp(value: &str) -> Option<i64> {
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ts: i64 = value.parse().ok()?;
    DateTime::<Utc>::from_timestamp(ts, 0).map(|_| ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen_after(seen: &mut Seen, n: usize) {
        for i in 0..n {
            let mut sig = [0u8; 32];
            sig[..8].copy_from_slice(&(i as u64).to_be_bytes());
            assert!(seen.insert(sig, 1_000, 0));
        }
    }

    #[test]
    fn the_replay_memory_is_bounded_and_forgets_stale_signatures() {
        let mut seen = Seen::default();
        seen_after(&mut seen, MAX_REMEMBERED + 5);
        assert!(seen.order.len() <= MAX_REMEMBERED);
        assert_eq!(seen.set.len(), seen.order.len());
        // Still remembered: refused.
        let mut recent = [0u8; 32];
        recent[..8].copy_from_slice(&((MAX_REMEMBERED + 4) as u64).to_be_bytes());
        assert!(!seen.insert(recent, 1_000, 0));
        // After its window, a signature is forgotten (its timestamp alone refuses it then).
        assert!(seen.insert([9u8; 32], 1_000, 2_000));
        assert_eq!(seen.order.len(), 1);
    }

    #[test]
    fn timestamps_are_plain_seconds() {
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000));
        for bad in ["", "-1", "1.5", "17e8", " 1", "9999999999999"] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_event_kind_has_its_meaning() {
        use ChangeKind::{Created, Updated};
        assert_eq!(
            EventKind::parse("clinical_notes.note_created"),
            Some(EventKind::Note(Created))
        );
        assert_eq!(
            EventKind::parse("clinical_notes.note_completed"),
            Some(EventKind::Note(Updated))
        );
        assert_eq!(
            EventKind::parse("healthcare.visit.started"),
            Some(EventKind::Visit {
                appointment: Updated,
                encounter: Some(Updated)
            })
        );
        assert_eq!(
            EventKind::parse("healthcare.patient.waiting"),
            Some(EventKind::Waiting { encounter: Created })
        );
        assert_eq!(EventKind::parse("meeting.started"), None);
    }
}
