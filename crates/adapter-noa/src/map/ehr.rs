//! References into the EHR a session belongs to.
//!
//! Noa's `episodeId`, `doctorId` and `facilityId` are the EHR's own ids (the adapter creates
//! sessions from EHR appointments), and the metadata names the EHR patient. Each becomes the
//! gateway id of the configured EHR source (`Appointment/drchrono-9001`). That literal reference is
//! used only when the adapter checked it exists, or could not check it because the EHR was failing
//! ([`NoaCtx::resolved`]); otherwise the reference is logical: `type`, an `identifier` under the
//! EHR's native-id system
//! (`urn:fhir-gateway:id:drchrono:appointment`, the identifier the EHR adapter publishes its own
//! resources under) and a `display`.

use adapter::fhir::types::Reference;

use super::NoaCtx;

/// The kinds of EHR record a session names.
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

    /// The `kind` of the EHR's native-id identifier system (as the DrChrono adapter names them).
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
    pub fn new(kind: EhrKind, native: &str) -> Self {
        Self {
            kind,
            native: native.trim().to_owned(),
        }
    }

    /// The gateway's literal reference (`Patient/drchrono-12`), when the id can be made.
    pub fn literal(&self, ehr_source: &str) -> Option<String> {
        adapter::ehr::literal(self.kind.resource_type(), ehr_source, &self.native)
    }

    /// The reference: literal when resolved, logical otherwise.
    pub fn reference(&self, ctx: &NoaCtx) -> Reference {
        match self.literal(&ctx.ehr_source).filter(|l| ctx.is_resolved(l)) {
            Some(literal) => adapter::ehr::literal_reference(literal),
            None => self.logical(&ctx.ehr_source),
        }
    }

    /// The logical reference: type, identifier under the EHR's native-id system, display.
    pub fn logical(&self, ehr_source: &str) -> Reference {
        adapter::ehr::logical(
            self.kind.resource_type(),
            self.kind.identifier_kind(),
            ehr_source,
            &self.native,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;

    #[test]
    fn unresolved_references_are_logical_and_resolved_ones_literal() {
        let r = EhrRef::new(EhrKind::Location, " 5 ");
        let mut ctx = test_ctx();
        let logical = r.reference(&ctx);
        assert_eq!(logical.reference, None);
        assert_eq!(logical.r#type.as_ref().unwrap().value.as_deref(), Some("Location"));
        let identifier = logical.identifier.unwrap();
        assert_eq!(
            identifier.system.unwrap().value.as_deref(),
            Some("urn:fhir-gateway:id:drchrono:location")
        );
        assert_eq!(identifier.value.unwrap().value.as_deref(), Some("5"));
        assert_eq!(
            logical.display.unwrap().value.as_deref(),
            Some("drchrono location 5 (not resolved)")
        );
        ctx.resolved.insert("Location/drchrono-5".into());
        assert_eq!(
            r.reference(&ctx).reference.unwrap().value.as_deref(),
            Some("Location/drchrono-5")
        );
        // Ids that are not id-safe get the gateway's encoding; a bad source makes no literal.
        assert_eq!(
            EhrRef::new(EhrKind::Appointment, "a_1").literal("ehr2").as_deref(),
            Some("Appointment/ehr2-x.MFPTC")
        );
        assert_eq!(EhrRef::new(EhrKind::Patient, "1").literal("Dr-Chrono"), None);
    }
}
