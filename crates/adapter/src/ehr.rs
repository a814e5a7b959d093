//! References from one source into the EHR source's records (a Zoom note's patient, a Noa
//! session's appointment): literal (`Patient/drchrono-12`) when the record was checked to exist,
//! otherwise logical — `type`, an `identifier` under the EHR's native-id system (the identifier the
//! EHR adapter publishes its own resources under) and a `display` — never a broken link.

use crate::fhir::types::{Identifier, Reference};
use crate::systems;

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
    use super::*;

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
