//! Noa Notes objects in the vendor's JSON shape, as `docs/noa-api.md` states them (camelCase keys,
//! RFC 3339 times in UTC).
//!
//! The types Noa sends are **lenient** on input: every field is optional (a missing key gives the
//! field's default), text fields take a string, `null` (→ `""`) or a number (→ its decimal text),
//! booleans take `null` as `false`, lists take `null` as empty, and keys not listed here are
//! ignored. Text is kept byte for byte (a summary's markdown is served exactly as Noa wrote it).
//!
//! A session's template is a JSON object whose keys are section titles **in order**; serde_json's
//! map (without `preserve_order`) sorts its keys, so [`Template`] reads and writes the object
//! itself, keeping the order, and request bodies are written straight from these types (never
//! through a `serde_json::Value`).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A session's details (`GET consumers/sessions/{id}/status`, and the items of the list).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Session {
    #[serde(deserialize_with = "de::text")]
    pub session_id: String,
    #[serde(deserialize_with = "de::text")]
    pub consumer_id: String,
    /// The EHR's appointment id (an external id at Noa).
    #[serde(deserialize_with = "de::text")]
    pub episode_id: String,
    /// The EHR's doctor id.
    #[serde(deserialize_with = "de::text")]
    pub doctor_id: String,
    /// The EHR's facility (office) id; `""` when the session names none.
    #[serde(deserialize_with = "de::text")]
    pub facility_id: String,
    /// One of the twelve statuses (see [`crate::map::codes::SessionStatus`]).
    #[serde(deserialize_with = "de::text")]
    pub status: String,
    /// `FirstVisit`, `FollowUpVisit` or `""`.
    #[serde(deserialize_with = "de::text")]
    pub visit_type: String,
    /// A BCP-47 tag from Noa's list (`en-US`).
    #[serde(deserialize_with = "de::text")]
    pub language: String,
    #[serde(deserialize_with = "de::text")]
    pub speciality: String,
    /// What the client sent as metadata (the EHR patient under `patientId`).
    #[serde(deserialize_with = "de::opt_object", skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, Value>>,
    #[serde(deserialize_with = "de::text")]
    pub webhook_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    #[serde(deserialize_with = "de::text")]
    pub created_at: String,
    #[serde(deserialize_with = "de::text")]
    pub updated_at: String,
    #[serde(deserialize_with = "de::text")]
    pub recording_started_at: String,
    #[serde(deserialize_with = "de::text")]
    pub recording_ended_at: String,
    #[serde(deserialize_with = "de::text")]
    pub expires_at: String,
}

impl Session {
    /// A metadata value as text (a string as is, a number as its decimal text); `None` when absent
    /// or blank.
    pub fn metadata_text(&self, key: &str) -> Option<String> {
        let value = self.metadata.as_ref()?.get(key)?;
        let text = match value {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        (!text.is_empty()).then_some(text)
    }
}

/// `GET consumers/sessions`: one page of sessions, ordered by `createdAt` then `sessionId`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionList {
    #[serde(deserialize_with = "de::list")]
    pub items: Vec<Session>,
    /// `""` on the last page.
    #[serde(deserialize_with = "de::text")]
    pub next_page_token: String,
}

/// A session's summary (`GET consumers/sessions/{id}/summary`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Summary {
    #[serde(deserialize_with = "de::text")]
    pub session_id: String,
    /// The session's status when the summary was read.
    #[serde(deserialize_with = "de::text")]
    pub status: String,
    /// The doctor approved the content on the Edit/Confirm Summary page.
    #[serde(deserialize_with = "de::flag")]
    pub doctor_approved: bool,
    #[serde(deserialize_with = "de::text")]
    pub language: String,
    /// The sections in the template's order.
    #[serde(deserialize_with = "de::list")]
    pub sections: Vec<Section>,
    /// 1 for the first summary, + 1 with every recovery or regeneration.
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(deserialize_with = "de::text")]
    pub generated_at: String,
    #[serde(deserialize_with = "de::text")]
    pub approved_at: String,
}

/// One section of a summary: a template title and its markdown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Section {
    #[serde(deserialize_with = "de::text")]
    pub title: String,
    #[serde(deserialize_with = "de::text")]
    pub content: String,
}

/// A summary template: `{"value": {"Section title": "instruction", …}}`, sections in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    pub sections: Vec<TemplateSection>,
}

/// One section of a [`Template`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateSection {
    pub title: String,
    pub instruction: String,
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Ordered<'a>(&'a [TemplateSection]);
        impl Serialize for Ordered<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for section in self.0 {
                    map.serialize_entry(&section.title, &section.instruction)?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("value", &Ordered(&self.sections))?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The sections of `value`, in the order they come.
        struct Sections(Vec<TemplateSection>);
        impl<'de> Deserialize<'de> for Sections {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Sections;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("an object of section titles and instructions")
                    }
                    fn visit_unit<E>(self) -> Result<Sections, E> {
                        Ok(Sections(Vec::new()))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sections, A::Error> {
                        let mut out = Vec::new();
                        while let Some((title, instruction)) = map.next_entry::<String, Value>()? {
                            out.push(TemplateSection {
                                title,
                                instruction: de::value_text(instruction),
                            });
                        }
                        Ok(Sections(out))
                    }
                }
                deserializer.deserialize_any(V)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Template;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a template object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Template, A::Error> {
                let mut sections = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "value" {
                        sections = map.next_value::<Sections>()?.0;
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(Template { sections })
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// `POST consumers/sessions`: the documented body. Absent options are left out (Noa applies the
/// consumer's defaults).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSession {
    pub episode_id: String,
    pub doctor_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facility_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visit_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speciality: Option<String>,
}

/// The answer to `POST consumers/sessions` (`201` created, `200` an existing live session).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionCreated {
    #[serde(deserialize_with = "de::text")]
    pub session_id: String,
    /// Authorises the widget's `/sessions/{id}/…` calls; a credential, never logged.
    #[serde(deserialize_with = "de::text")]
    pub session_token: String,
    #[serde(deserialize_with = "de::text")]
    pub consumer_id: String,
    /// Seconds the session token lives.
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    #[serde(deserialize_with = "de::text")]
    pub recorder_url: String,
    #[serde(deserialize_with = "de::text")]
    pub summary_url: String,
    #[serde(deserialize_with = "de::text")]
    pub status: String,
}

/// The answer to `POST …/recover` and `…/regenerate` (`202`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionOperation {
    #[serde(deserialize_with = "de::text")]
    pub session_id: String,
    #[serde(deserialize_with = "de::text")]
    pub status: String,
    /// `Recover` or `Regenerate`.
    #[serde(deserialize_with = "de::text")]
    pub operation: String,
}

/// `PUT consumers/facilities/{id}` and `PUT …/doctors/{id}`: the new name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Named {
    pub name: String,
}

/// `POST consumers/facilities/{id}/doctors`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewDoctor {
    pub name: String,
    pub external_doctor_id: String,
}

/// `POST clients/authenticate`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Authenticate<'a> {
    pub client_id: &'a str,
    pub secret: &'a str,
}

/// The sign-in answer: the consumer token.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[derive(Default)]
pub(crate) struct TokenGrant {
    pub access_token: Option<String>,
    pub expires_in: Option<f64>,
}

/// A status-change callback Noa posts to the session's `webhookUrl`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WebhookEvent {
    #[serde(deserialize_with = "de::text")]
    pub event_id: String,
    #[serde(deserialize_with = "de::text")]
    pub session_id: String,
    #[serde(deserialize_with = "de::text")]
    pub episode_id: String,
    #[serde(deserialize_with = "de::text")]
    pub doctor_id: String,
    #[serde(deserialize_with = "de::text")]
    pub facility_id: String,
    #[serde(deserialize_with = "de::text")]
    pub status: String,
    #[serde(deserialize_with = "de::text")]
    pub previous_status: String,
    #[serde(deserialize_with = "de::text")]
    pub occurred_at: String,
}

/// The lenient readers of the Noa types. Text is read as [`adapter::lenient`] reads it; booleans,
/// integers, lists and the metadata object are Noa's own readers, stricter than
/// [`adapter::lenient`]'s (no `0`/`1` booleans, no integral floats), as `docs/noa-api.md` states
/// the types.
mod de {
    use std::collections::BTreeMap;

    pub(super) use adapter::lenient::{text, value_text};
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    pub(super) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(b),
            Value::Null => Ok(false),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") || s.is_empty() => Ok(false),
            _ => Err(serde::de::Error::custom("expected a boolean")),
        }
    }

    pub(super) fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("expected an integer")),
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom("expected an integer")),
            _ => Err(serde::de::Error::custom("expected an integer")),
        }
    }

    pub(super) fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }

    pub(super) fn opt_object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, Value>>, D::Error> {
        Option::<BTreeMap<String, Value>>::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_template_keeps_its_order_both_ways() {
        let text = r#"{"value": {"Reason for the Visit": "why", "Allergies": "list", "Plan": "next"}, "x": 1}"#;
        let template: Template = serde_json::from_str(text).unwrap();
        let titles: Vec<&str> = template.sections.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, ["Reason for the Visit", "Allergies", "Plan"]);
        assert_eq!(
            serde_json::to_string(&template).unwrap(),
            r#"{"value":{"Reason for the Visit":"why","Allergies":"list","Plan":"next"}}"#
        );
        let body = CreateSession {
            episode_id: "e".into(),
            doctor_id: "d".into(),
            template: Some(template),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"episodeId":"e","doctorId":"d","template":{"value":{"Reason for the Visit":"why","Allergies":"list","Plan":"next"}}}"#
        );
        let empty: Option<Template> = serde_json::from_str("null").unwrap();
        assert_eq!(empty, None);
    }

    #[test]
    fn sessions_are_read_leniently() {
        let s: Session = serde_json::from_value(json!({
            "sessionId": "s1", "episodeId": 123, "doctorId": "d1", "facilityId": null,
            "status": "Recording", "visitType": null, "metadata": {"patientId": 42, "appointment": "drchrono-123"},
            "template": null, "unknown": [1, 2]
        }))
        .unwrap();
        assert_eq!((s.episode_id.as_str(), s.facility_id.as_str()), ("123", ""));
        assert_eq!(s.metadata_text("patientId").as_deref(), Some("42"));
        assert_eq!(s.metadata_text("missing"), None);
        assert_eq!(s.template, None);
        let sum: Summary = serde_json::from_value(json!({
            "sessionId": "s1", "status": "Summarized", "doctorApproved": null, "sections": null, "revision": "2"
        }))
        .unwrap();
        assert!(!sum.doctor_approved && sum.sections.is_empty());
        assert_eq!(sum.revision, Some(2));
        assert!(serde_json::from_value::<Summary>(json!({"doctorApproved": "maybe"})).is_err());
    }
}
