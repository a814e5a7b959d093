//! References into the EHR named by an `ehr_context`.
//!
//! The clinical notes doc's example has `"patient_id": "Patient/75909597"`,
//! `"provider_id": "Practitioner/34373111"` and `"appointment_id": "6600001"`. Each key is read
//! as a FHIR-style reference of its type (`Patient/75909597`, or an absolute URL ending in
//! `/Patient/75909597`) or as a bare EHR id (`75909597`). A reference of another type
//! (`"patient_id": "Practitioner/1"`) is an error: linking a note to the wrong kind of record is
//! worse than not mapping it.
//!
//! The EHR's native id becomes the gateway id of the configured EHR source
//! (`Patient/drchrono-75909597`). That literal reference is used only when the adapter checked it
//! exists, or could not check it because the EHR was failing ([`ZoomCtx::resolved`]); otherwise
//! the reference is logical: `type`, an `identifier` under the EHR's native-id system
//! (`urn:fhir-gateway:id:drchrono:patient`, the identifier the EHR adapter publishes its own
//! resources under) and a `display` ([`adapter::ehr::EhrRef`]).
//!
//! [`ZoomCtx::resolved`]: super::ZoomCtx::resolved

pub use adapter::ehr::EhrKind;
pub(crate) use adapter::ehr::EhrRef;

use super::{MapError, present};
use crate::wire;

/// Reads one `ehr_context` key; `Ok(None)` when blank.
pub(crate) fn parse(field: &'static str, raw: &str, kind: EhrKind) -> Result<Option<EhrRef>, MapError> {
    let Some(raw) = present(raw) else {
        return Ok(None);
    };
    let invalid = MapError::Invalid {
        field,
        expected: match kind {
            EhrKind::Patient => "EHR patient reference",
            EhrKind::Practitioner => "EHR practitioner reference",
            EhrKind::Appointment => "EHR appointment reference",
            EhrKind::Location => "EHR location reference",
        },
    };
    let native = match raw.rsplit_once('/') {
        None => raw,
        Some((before, id)) => {
            let resource_type = before.rsplit('/').next().unwrap_or(before);
            if resource_type != kind.resource_type() {
                return Err(invalid);
            }
            id
        }
    };
    if native.trim().is_empty() || native.chars().any(char::is_whitespace) {
        return Err(invalid);
    }
    Ok(Some(EhrRef {
        kind,
        native: native.to_owned(),
    }))
}

/// The EHR records of one `ehr_context`, in the order patient, practitioner, appointment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EhrRefs {
    pub patient: Option<EhrRef>,
    pub practitioner: Option<EhrRef>,
    pub appointment: Option<EhrRef>,
}

impl EhrRefs {
    pub fn read(c: Option<&wire::EhrContext>) -> Result<Self, MapError> {
        let Some(c) = c else {
            return Ok(Self::default());
        };
        Ok(Self {
            patient: parse("ehr_context.patient_id", &c.patient_id, EhrKind::Patient)?,
            practitioner: parse("ehr_context.provider_id", &c.provider_id, EhrKind::Practitioner)?,
            appointment: parse("ehr_context.appointment_id", &c.appointment_id, EhrKind::Appointment)?,
        })
    }
}

/// The gateway references an `ehr_context` names (`Patient/drchrono-12`,
/// `Practitioner/drchrono-3`, `Appointment/drchrono-77`), for the adapter to check and put into
/// [`ZoomCtx::resolved`](super::ZoomCtx::resolved). Keys that cannot be read are left out (the
/// mapping reports them).
pub fn context_references(c: &wire::EhrContext, ehr_source: &str) -> Vec<String> {
    // Read each key on its own so one bad key does not hide the others.
    [
        parse("ehr_context.patient_id", &c.patient_id, EhrKind::Patient),
        parse("ehr_context.provider_id", &c.provider_id, EhrKind::Practitioner),
        parse("ehr_context.appointment_id", &c.appointment_id, EhrKind::Appointment),
    ]
    .into_iter()
    .filter_map(|r| r.ok().flatten())
    .filter_map(|r| r.literal(ehr_source))
    .collect()
}

/// The gateway reference of the EHR patient a note names (`Patient/drchrono-12`), whether or not
/// it exists; `None` when it names none that can be read.
pub fn note_patient(n: &wire::ClinicalNote, ehr_source: &str) -> Option<String> {
    let c = n.ehr_context.as_ref()?;
    parse("ehr_context.patient_id", &c.patient_id, EhrKind::Patient)
        .ok()
        .flatten()?
        .literal(ehr_source)
}

/// The patients a visit's Appointment can name (`Patient/zoom-…`, and the EHR patient of its
/// `ehr_context`, whether or not it exists).
pub fn visit_patients(v: &wire::Visit, ehr_source: &str) -> Vec<String> {
    let zoom = super::appointment::patient_native(v)
        .ok()
        .and_then(|native| adapter::ehr::literal("Patient", crate::map::ids::SOURCE, &native));
    let ehr = v.ehr_context.as_ref().and_then(|c| {
        parse("ehr_context.patient_id", &c.patient_id, EhrKind::Patient)
            .ok()
            .flatten()?
            .literal(ehr_source)
    });
    zoom.into_iter().chain(ehr).collect()
}

/// The gateway references a note's `ehr_context` names, to resolve before [`super::clinical_note`].
pub fn ehr_references(n: &wire::ClinicalNote, ehr_source: &str) -> Vec<String> {
    n.ehr_context
        .as_ref()
        .map(|c| context_references(c, ehr_source))
        .unwrap_or_default()
}

/// The gateway references a visit's `ehr_context` names, to resolve before
/// [`super::visit_appointment`] and [`super::visit_encounter`].
pub fn visit_ehr_references(v: &wire::Visit, ehr_source: &str) -> Vec<String> {
    v.ehr_context
        .as_ref()
        .map(|c| context_references(c, ehr_source))
        .unwrap_or_default()
}

/// The gateway reference of the EHR patient a Zoom patient mirrors (`ehr_context.patient_id`,
/// else `external_id`), to resolve before [`super::patient`].
pub fn patient_ehr_references(p: &wire::Patient, ehr_source: &str) -> Vec<String> {
    patient_ref(p)
        .ok()
        .flatten()
        .and_then(|r| r.literal(ehr_source))
        .into_iter()
        .collect()
}

/// The EHR patient of a Zoom patient.
pub(crate) fn patient_ref(p: &wire::Patient) -> Result<Option<EhrRef>, MapError> {
    match p.ehr_context.as_ref().filter(|c| present(&c.patient_id).is_some()) {
        Some(c) => parse("ehr_context.patient_id", &c.patient_id, EhrKind::Patient),
        None => parse("external_id", &p.external_id, EhrKind::Patient),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;

    fn read(raw: &str, kind: EhrKind) -> Result<Option<String>, MapError> {
        parse("f", raw, kind).map(|r| r.map(|r| r.native))
    }

    #[test]
    fn keys_read_as_references_urls_or_bare_ids() {
        assert_eq!(read("Patient/75909597", EhrKind::Patient), Ok(Some("75909597".into())));
        assert_eq!(read("75909597", EhrKind::Patient), Ok(Some("75909597".into())));
        assert_eq!(
            read("https://ehr.example/fhir/Practitioner/34373111", EhrKind::Practitioner),
            Ok(Some("34373111".into()))
        );
        assert_eq!(read("6600001", EhrKind::Appointment), Ok(Some("6600001".into())));
        assert_eq!(read(" ", EhrKind::Patient), Ok(None));
        for (bad, kind) in [
            ("Practitioner/1", EhrKind::Patient),
            ("Patient/", EhrKind::Patient),
            ("Patient/1 2", EhrKind::Patient),
            ("Patient/1/_history/2", EhrKind::Patient),
            ("Appointment/5", EhrKind::Practitioner),
        ] {
            assert!(matches!(read(bad, kind), Err(MapError::Invalid { .. })), "{bad}");
        }
    }

    #[test]
    fn unresolved_references_are_logical_and_resolved_ones_literal() {
        let r = parse("f", "Patient/12", EhrKind::Patient).unwrap().unwrap();
        let mut ctx = test_ctx();
        let logical = r.reference(&ctx);
        assert_eq!(logical.reference, None);
        assert_eq!(logical.r#type.as_ref().unwrap().value.as_deref(), Some("Patient"));
        let identifier = logical.identifier.unwrap();
        assert_eq!(
            identifier.system.unwrap().value.as_deref(),
            Some("urn:fhir-gateway:id:drchrono:patient")
        );
        assert_eq!(identifier.value.unwrap().value.as_deref(), Some("12"));
        assert_eq!(
            logical.display.unwrap().value.as_deref(),
            Some("drchrono patient 12 (not resolved)")
        );
        assert_eq!(r.resolved_reference(&ctx), None);
        ctx.resolved.insert("Patient/drchrono-12".into());
        assert_eq!(
            r.reference(&ctx).reference.unwrap().value.as_deref(),
            Some("Patient/drchrono-12")
        );
        assert!(r.resolved_reference(&ctx).is_some());
    }

    #[test]
    fn candidates_are_gateway_ids_of_the_configured_ehr() {
        let c = wire::EhrContext {
            appointment_id: "6600001".into(),
            patient_id: "Patient/75909597".into(),
            provider_id: "Practitioner/34373111".into(),
        };
        assert_eq!(
            context_references(&c, "drchrono"),
            [
                "Patient/drchrono-75909597",
                "Practitioner/drchrono-34373111",
                "Appointment/drchrono-6600001"
            ]
        );
        // Ids that are not id-safe get the gateway's encoding; a bad key does not hide the others.
        let c = wire::EhrContext {
            appointment_id: "a_1".into(),
            patient_id: "Practitioner/9".into(),
            provider_id: String::new(),
        };
        assert_eq!(context_references(&c, "ehr2"), ["Appointment/ehr2-x.MFPTC"]);
        // A source name that cannot make ids gives no candidates (the references stay logical).
        let c = wire::EhrContext {
            patient_id: "1".into(),
            ..Default::default()
        };
        assert!(context_references(&c, "Dr-Chrono").is_empty());
        let refs = EhrRefs::read(Some(&c)).unwrap();
        assert_eq!(
            refs.patient.unwrap().literal("drchrono").as_deref(),
            Some("Patient/drchrono-1")
        );
        assert_eq!((refs.practitioner, refs.appointment), (None, None));
    }

    #[test]
    fn a_patient_names_its_ehr_record_by_context_or_external_id() {
        let mut p = wire::Patient {
            external_id: "44".into(),
            ..Default::default()
        };
        assert_eq!(patient_ehr_references(&p, "drchrono"), ["Patient/drchrono-44"]);
        p.ehr_context = Some(wire::EhrContext {
            patient_id: "Patient/45".into(),
            ..Default::default()
        });
        assert_eq!(patient_ehr_references(&p, "drchrono"), ["Patient/drchrono-45"]);
        p.ehr_context = Some(wire::EhrContext::default());
        assert_eq!(patient_ehr_references(&p, "drchrono"), ["Patient/drchrono-44"]);
    }
}
