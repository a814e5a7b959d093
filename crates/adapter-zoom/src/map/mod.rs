//! Pure mappings between Zoom wire objects ([`crate::wire`]) and FHIR R4 resources.
//!
//! No function here does I/O or reads the clock: the moment of mapping, the practice time zone,
//! the EHR a note's `ehr_context` points into and which of those EHR resources exist come in
//! through [`ZoomCtx`]. Every resource gets
//!
//! - an `id` from the [`ids`] scheme (`zoom-{native}`, native ids that are not id-safe encoded by
//!   [`adapter::id`]),
//! - `meta.source` naming Zoom, `meta.lastUpdated` from the vendor's last-modified time
//!   ([`ZoomCtx::base`]`.now` when the vendor sends none) and the US Core profile it conforms to,
//! - an `identifier` holding its native id under
//!   `adapter::systems::native_id_system("zoom", kind)` (kinds in [`ids::kind`]), plus the Zoom
//!   meeting (UUID and number) where the object has one.
//!
//! Zoom timestamps carry a zone (`Z` or an offset); they are emitted as the same instant in the
//! practice time zone ([`adapter::MapCtx::default_tz`], or a provider's own zone for its
//! availability), with the vendor's fractions of a second kept.
//!
//! References into the EHR (`ehr_context`) become the gateway's own ids of the configured EHR
//! source (`Patient/drchrono-12`) when the adapter checked that they exist, or could not check
//! because the EHR was failing ([`ZoomCtx::resolved`]), and logical references (an `identifier`
//! under the EHR's native-id system, plus a `display`) otherwise: never a link the EHR says is
//! broken.
//!
//! The reverse mappings ([`note_patch`], [`create_visit`], [`visit_patch`]) turn a FHIR write
//! into the Zoom call that performs it, or refuse it whole with [`MapError::Unprocessable`] naming
//! the first FHIR element Zoom cannot store: nothing is ever half applied.
//!
//! Code tables live in [`codes`], one enum per table, every row tested. Errors name the field
//! that could not be mapped and never carry its value (it may be patient data).

use std::collections::HashSet;

use adapter::ehr::EhrLinks;
use adapter::fhir::types::{Coding, Identifier, Meta, Reference};
use adapter::{AdapterError, IdError, MapCtx, fhir_build};
use chrono::{DateTime, FixedOffset};

mod appointment;
mod appointment_write;
mod clinical_note;
pub mod codes;
mod diff;
mod ehr;
mod encounter;
pub mod ids;
mod patient;
mod practitioner;
mod schedule;
pub mod time;

pub use appointment::{EXT_DATATYPE, VIRTUAL_SERVICE_DATATYPE, virtual_service, visit_appointment};
pub use appointment_write::{VisitChange, create_visit, visit_patch};
pub use clinical_note::{MARKDOWN, clinical_note, clinical_note_with_owner, note_patch, owner_reference};
pub use ehr::{
    EhrKind, context_references, ehr_references, note_patient, patient_ehr_references, visit_ehr_references,
    visit_patients,
};
pub use encounter::visit_encounter;
pub use patient::patient;
pub use practitioner::provider;
pub use schedule::{schedule, slots};

/// The EHR source a note's `ehr_context` points into unless configured otherwise.
pub const DEFAULT_EHR_SOURCE: &str = "drchrono";

/// Everything the Zoom mappings need from outside.
#[derive(Debug, Clone)]
pub struct ZoomCtx {
    /// The moment of mapping and the configured practice time zone.
    pub base: MapCtx,
    /// The gateway source name of the EHR the notes' ehr_context points into (default "drchrono").
    pub ehr_source: String,
    /// Gateway ids ("Patient/drchrono-12") the adapter checked exist, or could not check because the EHR was
    /// failing; an ehr_context reference not in here stays a logical reference (Reference.identifier + display),
    /// never a link the EHR says is broken.
    pub resolved: HashSet<String>,
}

impl ZoomCtx {
    /// A context pointing into [`DEFAULT_EHR_SOURCE`] that has resolved nothing yet.
    pub fn new(base: MapCtx) -> Self {
        Self {
            base,
            ehr_source: DEFAULT_EHR_SOURCE.to_owned(),
            resolved: HashSet::new(),
        }
    }

    /// True when the adapter checked that `reference` (`Patient/drchrono-12`) exists.
    pub fn is_resolved(&self, reference: &str) -> bool {
        self.resolved.contains(reference)
    }
}

impl EhrLinks for ZoomCtx {
    fn ehr_source(&self) -> &str {
        &self.ehr_source
    }

    fn is_resolved(&self, literal: &str) -> bool {
        self.resolved.contains(literal)
    }
}

/// Why a Zoom object could not be mapped, or a FHIR write cannot be stored at Zoom. Messages name
/// fields and elements, never their values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    /// A field the FHIR resource cannot do without is absent, `null` or `""`.
    #[error("Zoom field `{field}` is missing or empty")]
    Missing { field: &'static str },
    /// A field does not have the documented format.
    #[error("Zoom field `{field}` is not a valid {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
    /// A coded field holds a value the adapter's code table does not know.
    #[error("Zoom field `{field}` holds a code this adapter does not know")]
    UnknownCode { field: &'static str },
    /// A native id cannot be turned into a FHIR id (too long, say).
    #[error("Zoom field `{field}` cannot be made into a FHIR id: {source}")]
    Id {
        field: &'static str,
        #[source]
        source: IdError,
    },
    /// A FHIR write asks for something Zoom cannot store; `element` names the FHIR element
    /// (`docStatus`, `participant[2].actor`, `virtualService`).
    #[error("{element} cannot be stored at Zoom: {reason}")]
    Unprocessable { element: String, reason: &'static str },
}

impl MapError {
    /// The [`AdapterError`] the gateway shows for this error: [`AdapterError::Unprocessable`]
    /// (422) for a write Zoom cannot store, [`AdapterError::Unmappable`] (502) for anything Zoom
    /// sent that cannot be mapped.
    pub fn to_adapter_error(&self) -> AdapterError {
        match self {
            Self::Unprocessable { element, reason } => AdapterError::Unprocessable {
                element: element.clone(),
                detail: (*reason).to_owned(),
            },
            other => AdapterError::Unmappable {
                vendor: "Zoom",
                detail: other.to_string(),
            },
        }
    }

    pub(crate) fn unprocessable(element: impl Into<String>, reason: &'static str) -> Self {
        Self::Unprocessable {
            element: element.into(),
            reason,
        }
    }
}

pub use adapter::systems::DATA_ABSENT_REASON;

// ---- small builders shared by the resource mappings ----

pub(crate) use adapter::fhir_build::{concept, data_absent_unknown, fhir_text, present, text_concept};

pub(crate) fn coding(system: &str, code: &str, display: &str) -> Coding {
    Coding {
        system: Some(system.into()),
        code: Some(code.into()),
        display: Some(display.into()),
        ..Default::default()
    }
}

/// The FHIR id of a native id.
pub(crate) fn fhir_id(field: &'static str, native: &str) -> Result<String, MapError> {
    ids::fhir_id(native).map_err(|source| MapError::Id { field, source })
}

/// A literal reference `{Type}/zoom-{native}`.
pub(crate) fn reference(field: &'static str, resource_type: &str, native: &str) -> Result<Reference, MapError> {
    fhir_build::reference(resource_type, ids::SOURCE, native).map_err(|source| MapError::Id { field, source })
}

/// The identifier carrying a native id of `kind` under this source's system.
pub(crate) fn native_identifier(kind: &str, native: &str) -> Identifier {
    fhir_build::native_identifier(ids::SOURCE, kind, native)
}

/// The identifiers of the Zoom meeting behind a note or visit: its UUID and its number.
pub(crate) fn meeting_identifiers(uuid: &str, number: Option<i64>) -> Vec<Identifier> {
    let mut out = Vec::new();
    if let Some(uuid) = present(uuid) {
        out.push(native_identifier(ids::kind::MEETING, uuid));
    }
    if let Some(number) = number.filter(|n| *n > 0) {
        out.push(native_identifier(ids::kind::MEETING_NUMBER, &number.to_string()));
    }
    out
}

/// `meta` with the source, `lastUpdated` (the vendor's time, else the mapping's `now` in the
/// practice zone) and a profile.
pub(crate) fn meta(ctx: &ZoomCtx, last_updated: Option<DateTime<FixedOffset>>, profile: Option<&str>) -> Meta {
    let last_updated = last_updated.unwrap_or_else(|| ctx.base.now.with_timezone(&ctx.base.default_tz).fixed_offset());
    fhir_build::meta(ids::SOURCE, time::fhir_instant(&last_updated), profile)
}

/// The context the unit tests map with: the practice is in New York, the EHR is DrChrono.
#[cfg(test)]
pub(crate) fn test_ctx() -> ZoomCtx {
    use chrono::TimeZone;
    ZoomCtx::new(MapCtx::new(
        chrono::Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap(),
        chrono_tz::America::New_York,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_context_points_into_drchrono_and_resolves_nothing() {
        let ctx = test_ctx();
        assert_eq!(ctx.ehr_source, "drchrono");
        assert!(!ctx.is_resolved("Patient/drchrono-1"));
    }

    #[test]
    fn meta_falls_back_to_now_in_the_practice_zone() {
        let m = meta(&test_ctx(), None, None);
        assert_eq!(m.last_updated.unwrap().value.unwrap(), "2024-01-01T22:04:05-05:00");
        assert_eq!(m.source.unwrap().value.unwrap(), "urn:fhir-gateway:source:zoom");
    }

    #[test]
    fn meeting_identifiers_skip_what_is_absent() {
        let ids = meeting_identifiers("a/b+c==", Some(97763643885));
        let got: Vec<_> = ids
            .iter()
            .map(|i| {
                (
                    i.system.as_ref().unwrap().value.clone().unwrap(),
                    i.value.as_ref().unwrap().value.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("urn:fhir-gateway:id:zoom:meeting".to_owned(), "a/b+c==".to_owned()),
                (
                    "urn:fhir-gateway:id:zoom:meeting-number".to_owned(),
                    "97763643885".to_owned()
                ),
            ]
        );
        assert!(meeting_identifiers(" ", None).is_empty());
        assert!(meeting_identifiers("", Some(0)).is_empty());
    }

    #[test]
    fn errors_name_fields_not_values_and_become_adapter_errors() {
        let e = MapError::Invalid {
            field: "note_start_time",
            expected: "timestamp",
        };
        assert_eq!(e.to_string(), "Zoom field `note_start_time` is not a valid timestamp");
        assert!(matches!(
            e.to_adapter_error(),
            AdapterError::Unmappable { vendor: "Zoom", .. }
        ));
        let e = MapError::unprocessable("docStatus", "only preliminary → final");
        assert_eq!(
            e.to_adapter_error(),
            AdapterError::Unprocessable {
                element: "docStatus".into(),
                detail: "only preliminary → final".into()
            }
        );
    }
}
