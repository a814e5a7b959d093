//! References from one source into the EHR source's records (a Zoom note's patient, a Noa
//! session's appointment): literal (`Patient/drchrono-12`) when the record was checked to exist,
//! otherwise logical — `type`, an `identifier` under the EHR's native-id system (the identifier the
//! EHR adapter publishes its own resources under) and a `display` — never a broken link.

use crate::fhir::types::{Identifier, Reference};
use crate::systems;

/// What a mapping knows about the EHR it links into: the EHR's source name and which literal
/// references (`Patient/ehr-12`) the adapter found to exist, or could not check because the
/// EHR was failing.
pub trait EhrLinks {
    /// The gateway source name of the EHR.
    fn ehr_source(&self) -> &str;

    /// True when `literal` may be written as a link.
    fn is_resolved(&self, literal: &str) -> bool;
}

/// The kinds of EHR record another source's records name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EhrKind {
    Patient,
    Practitioner,
    Appointment,
    Location,
}

impl EhrKind {
    /// The FHIR resource type.
    pub fn resource_type(self) -> &'static str {
        match self {
            Self::Patient => "Patient",
            Self::Practitioner => "Practitioner",
            Self::Appointment => "Appointment",
            Self::Location => "Location",
        }
    }

    /// The `kind` of the EHR's native-id identifier system (as the EHR adapter names them).
    pub fn identifier_kind(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Practitioner => "practitioner",
            Self::Appointment => "appointment",
            Self::Location => "location",
        }
    }
}

/// One EHR record: its kind and the EHR's native id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EhrRef {
    pub kind: EhrKind,
    pub native: String,
}

impl EhrRef {
    /// The record of `kind` with the native id `native` (trimmed).
    pub fn new(kind: EhrKind, native: &str) -> Self {
        Self {
            kind,
            native: native.trim().to_owned(),
        }
    }

    /// The gateway's literal reference (`Patient/ehr-12`), when the id can be made.
    pub fn literal(&self, ehr_source: &str) -> Option<String> {
        literal(self.kind.resource_type(), ehr_source, &self.native)
    }

    /// The reference: literal when resolved, logical otherwise.
    pub fn reference(&self, links: &impl EhrLinks) -> Reference {
        match self.resolved_reference(links) {
            Some(reference) => reference,
            None => self.logical(links.ehr_source()),
        }
    }

    /// The literal reference, only when it resolved.
    pub fn resolved_reference(&self, links: &impl EhrLinks) -> Option<Reference> {
        let literal = self.literal(links.ehr_source()).filter(|l| links.is_resolved(l))?;
        Some(literal_reference(literal))
    }

    /// The logical reference: type, identifier under the EHR's native-id system, display.
    pub fn logical(&self, ehr_source: &str) -> Reference {
        logical(
            self.kind.resource_type(),
            self.kind.identifier_kind(),
            ehr_source,
            &self.native,
        )
    }
}

/// The gateway's literal reference to an EHR record (`Patient/drchrono-12`), when its id can be made.
pub fn literal(resource_type: &str, ehr_source: &str, native: &str) -> Option<String> {
    let id = crate::id::fhir_id(ehr_source, native).ok()?;
    Some(format!("{resource_type}/{id}"))
}

/// A reference holding only `literal`.
pub fn literal_reference(literal: String) -> Reference {
    Reference {
        reference: Some(literal.into()),
        ..Default::default()
    }
}

/// The logical reference: type, identifier under `urn:fhir-gateway:id:{ehr_source}:{kind}`, display.
pub fn logical(resource_type: &str, kind: &str, ehr_source: &str, native: &str) -> Reference {
    Reference {
        r#type: Some(resource_type.into()),
        identifier: Some(Box::new(Identifier {
            system: Some(systems::native_id_system(ehr_source, kind).into()),
            value: Some(native.into()),
            ..Default::default()
        })),
        display: Some(format!("{ehr_source} {kind} {native} (not resolved)").into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    struct Links {
        source: &'static str,
        resolved: HashSet<String>,
    }

    impl EhrLinks for Links {
        fn ehr_source(&self) -> &str {
            self.source
        }

        fn is_resolved(&self, literal: &str) -> bool {
            self.resolved.contains(literal)
        }
    }

    #[test]
    fn unresolved_references_are_logical_and_resolved_ones_literal() {
        let r = EhrRef::new(EhrKind::Location, " 5 ");
        let mut links = Links {
            source: "ehr",
            resolved: HashSet::new(),
        };
        let logical = r.reference(&links);
        assert_eq!(logical.reference, None);
        assert_eq!(logical.r#type.as_ref().unwrap().value.as_deref(), Some("Location"));
        let identifier = logical.identifier.unwrap();
        assert_eq!(
            identifier.system.unwrap().value.as_deref(),
            Some("urn:fhir-gateway:id:ehr:location")
        );
        assert_eq!(identifier.value.unwrap().value.as_deref(), Some("5"));
        assert_eq!(
            logical.display.unwrap().value.as_deref(),
            Some("ehr location 5 (not resolved)")
        );
        assert_eq!(r.resolved_reference(&links), None);
        links.resolved.insert("Location/ehr-5".into());
        assert_eq!(
            r.reference(&links).reference.unwrap().value.as_deref(),
            Some("Location/ehr-5")
        );
        assert_eq!(
            r.resolved_reference(&links),
            Some(literal_reference("Location/ehr-5".into()))
        );
        // Ids that are not id-safe get the gateway's encoding; a bad source makes no literal.
        assert_eq!(
            EhrRef::new(EhrKind::Appointment, "a_1").literal("ehr2").as_deref(),
            Some("Appointment/ehr2-x.MFPTC")
        );
        assert_eq!(EhrRef::new(EhrKind::Patient, "1").literal("Dr-Chrono"), None);
    }

    #[test]
    fn every_kind_names_its_type_and_identifier_kind() {
        for (kind, resource_type, identifier_kind) in [
            (EhrKind::Patient, "Patient", "patient"),
            (EhrKind::Practitioner, "Practitioner", "practitioner"),
            (EhrKind::Appointment, "Appointment", "appointment"),
            (EhrKind::Location, "Location", "location"),
        ] {
            assert_eq!(kind.resource_type(), resource_type);
            assert_eq!(kind.identifier_kind(), identifier_kind);
        }
    }

    #[test]
    fn literal_and_logical_forms() {
        assert_eq!(
            literal("Patient", "drchrono", "12").as_deref(),
            Some("Patient/drchrono-12")
        );
        let r = logical("Patient", "patient", "drchrono", "12");
        assert_eq!(r.reference, None);
        assert_eq!(
            r.identifier.unwrap().system.unwrap().value.as_deref(),
            Some("urn:fhir-gateway:id:drchrono:patient")
        );
        assert_eq!(
            r.display.unwrap().value.as_deref(),
            Some("drchrono patient 12 (not resolved)")
        );
    }
}
