//! Small builders every mapping uses to write FHIR elements from vendor values: text cleaned of
//! what FHIR forbids, codeable concepts, the identifier carrying a native id, literal references
//! to a source's own resources, `meta`, periods, appointment participants, and the
//! `data-absent-reason` extension.
//!
//! Each adapter binds them to its own source name and its own mapping error; nothing here knows
//! a vendor.

use chrono::{DateTime, FixedOffset};

use crate::IdError;
use crate::fhir::resources::AppointmentParticipant;
use crate::fhir::types::{CodeableConcept, Coding, Extension, ExtensionValue, Identifier, Meta, Period, Reference};
use crate::{systems, time};

/// `Some(trimmed)` when `s` has any non-whitespace content.
pub fn present(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

/// A FHIR `string` from vendor text: trimmed, with the control characters FHIR forbids removed.
/// `None` when nothing is left.
pub fn fhir_text(s: &str) -> Option<crate::fhir::types::String> {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\r' | '\n'))
        .collect();
    present(&cleaned).map(|t| t.into())
}

/// A `CodeableConcept` of `codings`, with `text` (cleaned by [`fhir_text`]) when there is any.
pub fn concept(codings: Vec<Coding>, text: Option<&str>) -> CodeableConcept {
    CodeableConcept {
        coding: codings,
        text: text.and_then(fhir_text),
        ..Default::default()
    }
}

/// A `CodeableConcept` holding only text; `None` when the text is blank.
pub fn text_concept(text: &str) -> Option<CodeableConcept> {
    fhir_text(text).map(|t| CodeableConcept {
        text: Some(t),
        ..Default::default()
    })
}

/// The identifier carrying a native id of `kind` under `source`'s system
/// ([`systems::native_id_system`]).
pub fn native_identifier(source: &str, kind: &str, native: &str) -> Identifier {
    Identifier {
        system: Some(systems::native_id_system(source, kind).into()),
        value: Some(native.into()),
        ..Default::default()
    }
}

/// A literal reference `{resource_type}/{source}-{native}` to one of `source`'s own resources.
pub fn reference(resource_type: &str, source: &str, native: &str) -> Result<Reference, IdError> {
    Ok(Reference {
        reference: Some(format!("{resource_type}/{}", crate::id::fhir_id(source, native)?).into()),
        ..Default::default()
    })
}

/// `meta` naming `source`, with `last_updated` (a FHIR `instant`, formatted by the adapter) and
/// the profile the resource conforms to, if any.
pub fn meta(source: &str, last_updated: String, profile: Option<&str>) -> Meta {
    Meta {
        last_updated: Some(last_updated.into()),
        source: Some(systems::meta_source(source).into()),
        profile: profile.into_iter().map(Into::into).collect(),
        ..Default::default()
    }
}

/// A `Period` of instants written by [`time::fhir_instant`] (fractions of a second kept).
pub fn period(start: Option<DateTime<FixedOffset>>, end: Option<DateTime<FixedOffset>>) -> Period {
    Period {
        start: start.map(|t| time::fhir_instant(&t).into()),
        end: end.map(|t| time::fhir_instant(&t).into()),
        ..Default::default()
    }
}

/// An Appointment participant who `accepted`: `actor`, with its participation `type` if any.
pub fn accepted_participant(actor: Reference, r#type: Option<CodeableConcept>) -> AppointmentParticipant {
    AppointmentParticipant {
        r#type: r#type.into_iter().collect(),
        actor: Some(Box::new(actor)),
        status: "accepted".into(),
        ..Default::default()
    }
}

/// A `data-absent-reason` extension with code `unknown`.
pub fn data_absent_unknown() -> Extension {
    Extension {
        url: systems::DATA_ABSENT_REASON.into(),
        value: Some(ExtensionValue::Code("unknown".into())),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fhir_text_trims_and_drops_control_characters() {
        assert_eq!(fhir_text("  a\u{1}b\tc \n").unwrap().value.unwrap(), "ab\tc");
        assert!(fhir_text(" \u{7} ").is_none());
    }

    #[test]
    fn present_is_the_trimmed_non_blank_text() {
        assert_eq!(present(" a b "), Some("a b"));
        assert_eq!(present(" \t\n"), None);
    }

    #[test]
    fn concepts_carry_clean_text_only_when_there_is_some() {
        let c = concept(Vec::new(), Some(" x\u{1} "));
        assert_eq!(c.text.unwrap().value.as_deref(), Some("x"));
        assert!(concept(Vec::new(), Some("  ")).text.is_none());
        assert!(text_concept(" ").is_none());
        assert_eq!(text_concept(" y ").unwrap().text.unwrap().value.as_deref(), Some("y"));
    }

    #[test]
    fn identifiers_references_and_meta_name_the_source() {
        let i = native_identifier("acme", "patient", "p_1");
        assert_eq!(
            i.system.unwrap().value.as_deref(),
            Some("urn:fhir-gateway:id:acme:patient")
        );
        assert_eq!(i.value.unwrap().value.as_deref(), Some("p_1"));
        assert_eq!(
            reference("Patient", "acme", "12")
                .unwrap()
                .reference
                .unwrap()
                .value
                .as_deref(),
            Some("Patient/acme-12")
        );
        assert_eq!(
            reference("Patient", "acme", "a_1")
                .unwrap()
                .reference
                .unwrap()
                .value
                .as_deref(),
            Some("Patient/acme-x.MFPTC")
        );
        assert_eq!(reference("Patient", "acme", ""), Err(IdError::EmptyNative));
        let m = meta(
            "acme",
            "2024-01-01T22:04:05-05:00".into(),
            Some("http://example.org/profile"),
        );
        assert_eq!(m.source.unwrap().value.as_deref(), Some("urn:fhir-gateway:source:acme"));
        assert_eq!(
            m.last_updated.unwrap().value.as_deref(),
            Some("2024-01-01T22:04:05-05:00")
        );
        assert_eq!(m.profile.len(), 1);
        assert!(meta("acme", "x".into(), None).profile.is_empty());
    }

    #[test]
    fn periods_keep_fractions_and_leave_out_what_is_unknown() {
        let t = DateTime::parse_from_rfc3339("2025-05-14T23:01:08.608-04:00").unwrap();
        let p = period(Some(t), None);
        assert_eq!(p.start.unwrap().value.as_deref(), Some("2025-05-14T23:01:08.608-04:00"));
        assert!(p.end.is_none());
        assert_eq!(period(None, None), Period::default());
    }

    #[test]
    fn participants_accept_with_an_optional_type() {
        let actor = Reference {
            reference: Some("Patient/acme-1".into()),
            ..Default::default()
        };
        let p = accepted_participant(actor.clone(), None);
        assert_eq!(p.status.value.as_deref(), Some("accepted"));
        assert_eq!(p.actor.as_deref(), Some(&actor));
        assert!(p.r#type.is_empty());
        let typed = accepted_participant(actor, text_concept("attender"));
        assert_eq!(typed.r#type.len(), 1);
    }

    #[test]
    fn data_absent_is_the_core_extension_with_unknown() {
        let e = data_absent_unknown();
        assert_eq!(e.url, systems::DATA_ABSENT_REASON);
        assert!(matches!(&e.value, Some(ExtensionValue::Code(c)) if c.value.as_deref() == Some("unknown")));
    }
}
