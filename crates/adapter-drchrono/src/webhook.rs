//! DrChrono webhooks (`API Webhooks` in the vendor doc): every call is verified before anything in
//! it is believed, then turned into [`ChangeEvent`]s.
//!
//! - Verification ("Webhooks verification"): DrChrono sends a `GET` with a `msg` parameter and
//!   expects a 200 JSON answer `{"secret_token": hex(HMAC-SHA256(secret token, msg))}`.
//! - Deliveries ("Webhooks header and body"): a `POST` whose `X-drchrono-signature` header carries
//!   the webhook's secret token itself (compared in constant time), whose `X-drchrono-event` names
//!   the event (or `PING`), and whose body is `{"receiver": …, "object": …}`, the object in the
//!   API's own serialization.
//!
//! DrChrono redelivers whatever is not answered with a 2xx, so signed events the gateway does not
//! use are acknowledged with no change. Errors and logs never carry the payload or the secret.

use adapter::{ChangeEvent, ChangeKind, ResourceType, WebhookError, WebhookReceiver, WebhookRequest, WebhookResponse};
use data_encoding::HEXLOWER;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::config::Secret;
use crate::map::ids::{self, DocumentId};

/// The header carrying the webhook's secret token.
pub const SIGNATURE_HEADER: &str = "x-drchrono-signature";
/// The header naming the event that triggered the hook (or `PING`).
pub const EVENT_HEADER: &str = "x-drchrono-event";
/// The query parameter of the verification `GET`.
pub const VERIFY_PARAMETER: &str = "msg";

/// The longest body accepted (one API object; a clinical note with its sections stays far below).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The longest `msg` answered.
const MAX_MSG_BYTES: usize = 1024;

type HmacSha256 = Hmac<Sha256>;

/// The verifier of one DrChrono application's webhooks ([`WebhookReceiver`]).
pub struct DrChronoWebhooks {
    secret: Secret,
    /// HMAC-SHA256(secret, secret): what a presented token is compared with, so the comparison
    /// takes the same time whatever the presented token's length and content.
    expected_tag: Vec<u8>,
    account: String,
}

impl std::fmt::Debug for DrChronoWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrChronoWebhooks")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl DrChronoWebhooks {
    /// A verifier keyed with the webhook's secret token; `account` names the events' account
    /// ([`adapter::Adapter::account`]).
    pub fn new(secret: Secret, account: impl Into<String>) -> Self {
        let expected_tag = tag(&secret, secret.expose().as_bytes());
        Self {
            secret,
            expected_tag,
            account: account.into(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(self.secret.expose().as_bytes()).expect("HMAC takes keys of any length")
    }

    /// The `GET ?msg=` handshake.
    fn verification(&self, request: &WebhookRequest<'_>) -> Result<WebhookResponse, WebhookError> {
        let msg = request
            .query
            .iter()
            .find(|(name, _)| name == VERIFY_PARAMETER)
            .map(|(_, value)| value.as_str())
            .ok_or(WebhookError::Malformed("the verification has no msg"))?;
        if msg.is_empty() || msg.len() > MAX_MSG_BYTES {
            return Err(WebhookError::Malformed("the verification msg is empty or too long"));
        }
        let mut mac = self.mac();
        mac.update(msg.as_bytes());
        let secret_token = HEXLOWER.encode(&mac.finalize().into_bytes());
        Ok(WebhookResponse {
            status: 200,
            body: Some(json!({ "secret_token": secret_token })),
            events: Vec::new(),
        })
    }

    /// `X-drchrono-signature` must be the secret token, compared in constant time.
    fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), WebhookError> {
        let given = request
            .header(SIGNATURE_HEADER)
            .ok_or(WebhookError::Unauthorized("no signature"))?;
        let mut mac = self.mac();
        mac.update(given.as_bytes());
        mac.verify_slice(&self.expected_tag)
            .map_err(|_| WebhookError::Unauthorized("the signature does not match"))
    }

    /// The change events of a verified delivery.
    fn events(&self, event: &str, body: &Value) -> Result<Vec<ChangeEvent>, WebhookError> {
        let Some((resource_type, kind)) = event_meaning(event) else {
            tracing::debug!(
                event,
                "ignored a DrChrono webhook event of a kind the gateway does not use"
            );
            return Ok(Vec::new());
        };
        let object = body
            .get("object")
            .filter(|o| o.is_object())
            .ok_or(WebhookError::Malformed("the hook has no object"))?;
        let native_id = match resource_type {
            ResourceType::Patient => {
                let id = id_text(object.get("id"))
                    .and_then(|id| ids::canonical_positive(&id))
                    .ok_or(WebhookError::Malformed("the patient event names no patient"))?;
                ids::patient(id)
            }
            ResourceType::Appointment => {
                let id = id_text(object.get("id"))
                    .ok_or(WebhookError::Malformed("the appointment event names no appointment"))?;
                ids::appointment(&id)
            }
            // As the clinical-note mapping keys it: the note's own id, else its appointment's.
            _ => {
                let key = id_text(object.get("id"))
                    .or_else(|| id_text(object.get("appointment")))
                    .ok_or(WebhookError::Malformed("the clinical note event names no note"))?;
                ids::document(&DocumentId::ClinicalNote(key))
            }
        };
        Ok(vec![ChangeEvent {
            source: ids::SOURCE,
            account: self.account.clone(),
            resource_type,
            native_id,
            kind,
        }])
    }
}

impl WebhookReceiver for DrChronoWebhooks {
    fn receive(&self, request: &WebhookRequest<'_>) -> Result<WebhookResponse, WebhookError> {
        if request.method.eq_ignore_ascii_case("GET") {
            return self.verification(request);
        }
        if !request.method.eq_ignore_ascii_case("POST") {
            return Err(WebhookError::Malformed(
                "DrChrono webhooks are verified with GET and POSTed",
            ));
        }
        if request.body.len() > MAX_BODY_BYTES {
            return Err(WebhookError::Malformed("the body is too large"));
        }
        self.verify(request)?;
        let event = request
            .header(EVENT_HEADER)
            .filter(|e| !e.is_empty())
            .ok_or(WebhookError::Malformed("the hook names no event"))?;
        let body: Value =
            serde_json::from_slice(request.body).map_err(|_| WebhookError::Malformed("the body is not JSON"))?;
        let events = self.events(event, &body)?;
        Ok(WebhookResponse {
            status: 200,
            body: None,
            events,
        })
    }

    /// The doc's events announce every created and modified appointment and patient. Clinical notes
    /// are announced only when locked or unlocked (not edited), and documents not at all.
    fn announces(&self) -> &'static [ResourceType] {
        &[ResourceType::Appointment, ResourceType::Patient]
    }
}

/// What an event says changed; `None` for `PING` and the events the gateway does not use (patient
/// problems, allergies and medications are not served).
fn event_meaning(event: &str) -> Option<(ResourceType, ChangeKind)> {
    use ChangeKind::{Created, Deleted, Updated};
    Some(match event {
        "APPOINTMENT_CREATE" => (ResourceType::Appointment, Created),
        "APPOINTMENT_MODIFY" => (ResourceType::Appointment, Updated),
        // Not in the doc's event table; believed when DrChrono sends it.
        "APPOINTMENT_DELETE" => (ResourceType::Appointment, Deleted),
        "PATIENT_CREATE" => (ResourceType::Patient, Created),
        "PATIENT_MODIFY" => (ResourceType::Patient, Updated),
        "CLINICAL_NOTE_LOCK" | "CLINICAL_NOTE_UNLOCK" => (ResourceType::DocumentReference, Updated),
        _ => return None,
    })
}

/// HMAC-SHA256 of `message` keyed with `secret`.
fn tag(secret: &Secret, message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// An id as DrChrono serializes it: a non-negative integer, or a non-blank string.
fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_event_has_its_meaning() {
        use ChangeKind::{Created, Deleted, Updated};
        use ResourceType::{Appointment, DocumentReference, Patient};
        for (event, meaning) in [
            ("APPOINTMENT_CREATE", Some((Appointment, Created))),
            ("APPOINTMENT_MODIFY", Some((Appointment, Updated))),
            ("APPOINTMENT_DELETE", Some((Appointment, Deleted))),
            ("PATIENT_CREATE", Some((Patient, Created))),
            ("PATIENT_MODIFY", Some((Patient, Updated))),
            ("CLINICAL_NOTE_LOCK", Some((DocumentReference, Updated))),
            ("CLINICAL_NOTE_UNLOCK", Some((DocumentReference, Updated))),
            ("PATIENT_PROBLEM_CREATE", None),
            ("PATIENT_ALLERGY_MODIFY", None),
            ("PATIENT_MEDICATION_CREATE", None),
            ("PING", None),
            ("appointment_create", None),
        ] {
            assert_eq!(event_meaning(event), meaning, "{event}");
        }
    }

    #[test]
    fn ids_are_integers_or_strings() {
        assert_eq!(id_text(Some(&json!(12))), Some("12".into()));
        assert_eq!(id_text(Some(&json!(" 12 "))), Some("12".into()));
        for bad in [json!(null), json!(""), json!(-1), json!(1.5), json!([1]), json!({})] {
            assert_eq!(id_text(Some(&bad)), None, "{bad}");
        }
        assert_eq!(id_text(None), None);
    }
}
