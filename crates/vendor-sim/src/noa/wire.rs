//! Noa Notes Integration API objects in the JSON shape of `docs/noa-api.md`: camelCase keys,
//! RFC 3339 UTC times with a `Z` (to the second), RFC 7807 problem details for errors.
//!
//! Optional values are sent as `null` (ASP.NET's default), never left out, except the problem
//! details' `detail` and `errors`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The twelve session statuses, spelled as Noa spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SessionStatus {
    New,
    Recording,
    Recorded,
    Transcribing,
    Transcribed,
    Analyzing,
    Summarized,
    Verified,
    EmptySummaryVerified,
    Interrupted,
    Failed,
    Expired,
}

impl SessionStatus {
    /// Every status, in lifecycle order (happy path, then the errors).
    pub const ALL: [SessionStatus; 12] = [
        SessionStatus::New,
        SessionStatus::Recording,
        SessionStatus::Recorded,
        SessionStatus::Transcribing,
        SessionStatus::Transcribed,
        SessionStatus::Analyzing,
        SessionStatus::Summarized,
        SessionStatus::Verified,
        SessionStatus::EmptySummaryVerified,
        SessionStatus::Interrupted,
        SessionStatus::Failed,
        SessionStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::New => "New",
            SessionStatus::Recording => "Recording",
            SessionStatus::Recorded => "Recorded",
            SessionStatus::Transcribing => "Transcribing",
            SessionStatus::Transcribed => "Transcribed",
            SessionStatus::Analyzing => "Analyzing",
            SessionStatus::Summarized => "Summarized",
            SessionStatus::Verified => "Verified",
            SessionStatus::EmptySummaryVerified => "EmptySummaryVerified",
            SessionStatus::Interrupted => "Interrupted",
            SessionStatus::Failed => "Failed",
            SessionStatus::Expired => "Expired",
        }
    }

    /// Exact spelling (as the API takes it in `status` filters).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Verified and EmptySummaryVerified.
    pub fn is_final(self) -> bool {
        matches!(self, SessionStatus::Verified | SessionStatus::EmptySummaryVerified)
    }

    /// Interrupted, Failed and Expired.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            SessionStatus::Interrupted | SessionStatus::Failed | SessionStatus::Expired
        )
    }

    /// Final or error: the session never changes again (except by recover/regenerate of a
    /// verified summary).
    pub fn is_terminal(self) -> bool {
        self.is_final() || self.is_error()
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `language` enum of Noa's public doc.
pub const LANGUAGES: &[&str] = &[
    "en-US", "pl-PL", "pt-BR", "pt-PT", "es-MX", "es-ES", "es-AR", "es-CO", "es-CL", "es-PE", "it-IT", "de-DE",
    "cs-CZ", "tr-TR",
];

/// The `visitType` enum of Noa's public doc (`null` is allowed too).
pub const VISIT_TYPES: &[&str] = &["FirstVisit", "FollowUpVisit"];

/// The default template's section titles, in order.
pub const DEFAULT_SECTIONS: &[&str] = &["Chief Complaint", "History of Present Illness", "Assessment", "Plan"];

/// `{"value": {"Section title": "instruction", …}}`. The sections keep the order in which they
/// were sent (serde_json's `Map` would sort them), so `value` is a list of `(title,
/// instruction)` pairs that (de)serializes as a JSON object. A repeated title is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    #[serde(with = "ordered_sections", default)]
    pub value: Vec<(String, String)>,
}

impl Template {
    /// A template from `(title, instruction)` pairs, in order.
    pub fn new<T: Into<String>, I: Into<String>>(sections: impl IntoIterator<Item = (T, I)>) -> Self {
        Self {
            value: sections.into_iter().map(|(t, i)| (t.into(), i.into())).collect(),
        }
    }

    /// Section titles in order.
    pub fn titles(&self) -> impl Iterator<Item = &str> {
        self.value.iter().map(|(title, _)| title.as_str())
    }
}

/// (De)serializes `Vec<(String, String)>` as a JSON object, keeping the order of its keys. A
/// `null` instruction reads as `""`; `null` instead of the object reads as no sections.
mod ordered_sections {
    use std::fmt;

    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &[(String, String)], serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(value.len()))?;
        for (title, instruction) in value {
            map.serialize_entry(title, instruction)?;
        }
        map.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<(String, String)>, D::Error> {
        deserializer.deserialize_any(Ordered)
    }

    struct Ordered;

    impl<'de> Visitor<'de> for Ordered {
        type Value = Vec<(String, String)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of section titles to instructions")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut sections: Vec<(String, String)> = Vec::new();
            while let Some((title, instruction)) = map.next_entry::<String, Option<String>>()? {
                if sections.iter().any(|(t, _)| *t == title) {
                    return Err(serde::de::Error::custom(format_args!(
                        "the template section '{title}' is repeated"
                    )));
                }
                sections.push((title, instruction.unwrap_or_default()));
            }
            Ok(sections)
        }
    }
}

/// `POST /api/v1/clients/authenticate` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authenticate {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
}

/// The consumer token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds.
    pub expires_in: u64,
}

/// `POST /api/v1/consumers/sessions` body (the public doc's fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSession {
    #[serde(default)]
    pub episode_id: Option<String>,
    #[serde(default)]
    pub doctor_id: Option<String>,
    #[serde(default)]
    pub facility_id: Option<String>,
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub template: Option<Template>,
    /// `FirstVisit`, `FollowUpVisit` or `null` ([`VISIT_TYPES`]).
    #[serde(default)]
    pub visit_type: Option<String>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// One of [`LANGUAGES`]; `null` means the consumer's default (`en-US`).
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub speciality: Option<String>,
}

/// The answer to creating (201) or resuming (200) a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionCreated {
    pub session_id: String,
    /// Authorises `/api/v1/sessions/{sessionId}/…` for `expiresIn` seconds.
    pub session_token: String,
    pub consumer_id: String,
    pub expires_in: u64,
    pub recorder_url: String,
    pub summary_url: String,
    pub status: SessionStatus,
}

/// `GET …/sessions/{sessionId}/status` and the items of the session list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDetails {
    pub session_id: String,
    pub consumer_id: String,
    pub episode_id: String,
    pub doctor_id: String,
    pub facility_id: Option<String>,
    pub status: SessionStatus,
    pub visit_type: Option<String>,
    pub language: String,
    pub speciality: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub webhook_url: Option<String>,
    pub template: Option<Template>,
    pub created_at: String,
    pub updated_at: String,
    pub recording_started_at: Option<String>,
    pub recording_ended_at: Option<String>,
    pub expires_at: String,
}

/// `GET /api/v1/consumers/sessions` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionList {
    pub items: Vec<SessionDetails>,
    pub next_page_token: Option<String>,
}

/// One section of a summary (content is markdown).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub title: String,
    pub content: String,
}

/// `GET …/sessions/{sessionId}/summary`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub session_id: String,
    /// The session's current status.
    pub status: SessionStatus,
    pub doctor_approved: bool,
    pub language: String,
    pub sections: Vec<Section>,
    pub revision: u32,
    pub generated_at: String,
    pub approved_at: Option<String>,
}

/// Which asynchronous operation `recover`/`regenerate` started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    Recover,
    Regenerate,
}

/// `202` answer of `recover` and `regenerate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationAccepted {
    pub session_id: String,
    /// `Analyzing`.
    pub status: SessionStatus,
    pub operation: Operation,
}

/// A facility (`PUT`/`GET /api/v1/consumers/facilities/{externalFacilityId}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Facility {
    pub external_facility_id: String,
    pub name: String,
}

/// A doctor of a facility.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doctor {
    pub external_doctor_id: String,
    pub external_facility_id: String,
    pub name: String,
}

/// Body of `PUT …/facilities/{id}` and `PUT …/doctors/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameBody {
    #[serde(default)]
    pub name: Option<String>,
}

/// Body of `POST …/facilities/{id}/doctors`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDoctor {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub external_doctor_id: Option<String>,
}

/// What Noa posts to the webhook URL on every status change except to New.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    pub event_id: String,
    pub session_id: String,
    pub episode_id: String,
    pub doctor_id: String,
    pub facility_id: Option<String>,
    pub status: SessionStatus,
    pub previous_status: SessionStatus,
    pub occurred_at: String,
}

/// RFC 7807 problem details, ASP.NET style. Validation failures carry `errors` (field → messages).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub r#type: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
    pub trace_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_keeps_the_order_of_its_sections() {
        let raw = r#"{"value": {"Zeta": "last letter", "Alpha": "first", "Mid": null}}"#;
        let template: Template = serde_json::from_str(raw).expect("template");
        assert_eq!(template.titles().collect::<Vec<_>>(), vec!["Zeta", "Alpha", "Mid"]);
        assert_eq!(template.value[2].1, "");
        let back = serde_json::to_string(&template).expect("json");
        assert_eq!(back, r#"{"value":{"Zeta":"last letter","Alpha":"first","Mid":""}}"#);
        assert!(serde_json::from_str::<Template>(r#"{"value": {"A": "x", "A": "y"}}"#).is_err());
    }

    #[test]
    fn statuses_round_trip() {
        for status in SessionStatus::ALL {
            let json = serde_json::to_string(&status).expect("json");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(SessionStatus::parse(status.as_str()), Some(status));
        }
    }
}
