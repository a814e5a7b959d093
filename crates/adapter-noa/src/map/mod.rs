//! Pure mappings between Noa wire objects ([`crate::wire`]) and FHIR R4 resources.
//!
//! No function here does I/O or reads the clock: the moment of mapping, the practice time zone,
//! the EHR the sessions belong to, which EHR resources exist and the EHR patient of each episode
//! come in through [`NoaCtx`]. Every resource gets
//!
//! - the id `noa-{sessionId}` (a session is one Encounter and, once summarised, one
//!   DocumentReference; a session id that is not id-safe is encoded by [`adapter::id`]),
//! - `meta.source` naming Noa and `meta.lastUpdated` from the vendor's times,
//! - identifiers: the session id under `urn:fhir-gateway:id:noa:session` (and on the Encounter
//!   the episode id under `urn:fhir-gateway:id:noa:episode`).
//!
//! Noa's times are UTC; they are emitted as the same instant in the practice time zone.
//!
//! References into the EHR (the episode's Appointment, the doctor's Practitioner, the facility's
//! Location, the patient named by the metadata or by the episode's Appointment) become the
//! gateway's own ids of the configured EHR source (`Patient/drchrono-12`) when the adapter checked
//! that they exist, or could not check because the EHR was failing ([`NoaCtx::resolved`]), and
//! logical references (an `identifier` under the EHR's native-id system plus a `display`)
//! otherwise: never a link the EHR says is broken.
//!
//! Code tables live in [`codes`], one enum per table, every row tested. Errors name the field that
//! could not be mapped and never carry its value.

use std::collections::{HashMap, HashSet};

use adapter::ehr::EhrLinks;
use adapter::fhir::types::{Identifier, Meta};
use adapter::{AdapterError, IdError, MapCtx, fhir_build};
use chrono::{DateTime, FixedOffset};

pub mod codes;
mod ehr;
mod encounter;
pub mod ids;
pub mod scribe;
mod summary;
pub mod time;

pub use ehr::{EhrKind, EhrRef};
pub use encounter::session_encounter;
pub use summary::{EMPTY_SECTION, MARKDOWN, summary_document, summary_markdown};

/// The EHR source the sessions' external ids belong to unless configured otherwise.
pub const DEFAULT_EHR_SOURCE: &str = "drchrono";

/// Everything the Noa mappings need from outside.
#[derive(Debug, Clone)]
pub struct NoaCtx {
    /// The moment of mapping and the practice time zone.
    pub base: MapCtx,
    /// The gateway source whose Appointment, Practitioner and Location native ids are Noa's
    /// `episodeId`, `doctorId` and `facilityId` (default "drchrono").
    pub ehr_source: String,
    /// The session metadata key naming the EHR patient (default "patientId").
    pub patient_metadata_key: String,
    /// Gateway ids (`Patient/drchrono-12`) the adapter checked exist, or could not check because the
    /// EHR was failing; an EHR reference not in here stays logical.
    pub resolved: HashSet<String>,
    /// The EHR patient (native id) of each episode, read from the episode's Appointment, for
    /// sessions whose metadata names none.
    pub episode_patients: HashMap<String, String>,
}

impl NoaCtx {
    /// A context pointing into [`DEFAULT_EHR_SOURCE`] that has resolved nothing yet.
    pub fn new(base: MapCtx) -> Self {
        Self {
            base,
            ehr_source: DEFAULT_EHR_SOURCE.to_owned(),
            patient_metadata_key: crate::config::DEFAULT_PATIENT_METADATA_KEY.to_owned(),
            resolved: HashSet::new(),
            episode_patients: HashMap::new(),
        }
    }

    /// True when the adapter checked that `reference` (`Patient/drchrono-12`) exists.
    pub fn is_resolved(&self, reference: &str) -> bool {
        self.resolved.contains(reference)
    }

    /// The EHR patient of a session: its metadata's patient key, else its episode's patient.
    pub fn patient_of(&self, s: &crate::wire::Session) -> Option<String> {
        s.metadata_text(&self.patient_metadata_key).or_else(|| {
            present(&s.episode_id)
                .and_then(|e| self.episode_patients.get(e))
                .cloned()
        })
    }
}

impl EhrLinks for NoaCtx {
    fn ehr_source(&self) -> &str {
        &self.ehr_source
    }

    fn is_resolved(&self, literal: &str) -> bool {
        self.resolved.contains(literal)
    }
}

/// The EHR records a session names: patient (when known), doctor, episode, facility.
pub fn session_ehr_refs(s: &crate::wire::Session, ctx: &NoaCtx) -> Vec<EhrRef> {
    let mut out = Vec::new();
    if let Some(p) = ctx.patient_of(s) {
        out.push(EhrRef::new(EhrKind::Patient, &p));
    }
    for (kind, native) in [
        (EhrKind::Practitioner, &s.doctor_id),
        (EhrKind::Appointment, &s.episode_id),
        (EhrKind::Location, &s.facility_id),
    ] {
        if let Some(n) = present(native) {
            out.push(EhrRef::new(kind, n));
        }
    }
    out
}

/// The gateway references a session names (`Patient/drchrono-12`, `Practitioner/drchrono-3`,
/// `Appointment/drchrono-77`, `Location/drchrono-5`), for the adapter to check and put into
/// [`NoaCtx::resolved`].
pub fn session_references(s: &crate::wire::Session, ctx: &NoaCtx) -> Vec<String> {
    session_ehr_refs(s, ctx)
        .iter()
        .filter_map(|r| r.literal(&ctx.ehr_source))
        .collect()
}

/// Why a Noa object could not be mapped. Messages name fields, never their values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    /// A field the FHIR resource cannot do without is absent, `null` or `""`.
    #[error("Noa field `{field}` is missing or empty")]
    Missing { field: &'static str },
    /// A field does not have the documented format.
    #[error("Noa field `{field}` is not a valid {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
    /// A coded field holds a value the adapter's code table does not know.
    #[error("Noa field `{field}` holds a code this adapter does not know")]
    UnknownCode { field: &'static str },
    /// A native id cannot be turned into a FHIR id.
    #[error("Noa field `{field}` cannot be made into a FHIR id: {source}")]
    Id {
        field: &'static str,
        #[source]
        source: IdError,
    },
}

impl MapError {
    /// The [`AdapterError`] the gateway shows: anything Noa sent that cannot be mapped is
    /// [`AdapterError::Unmappable`] (502).
    pub fn to_adapter_error(&self) -> AdapterError {
        AdapterError::Unmappable {
            vendor: crate::client::VENDOR,
            detail: self.to_string(),
        }
    }
}

// ---- small builders shared by the resource mappings ----

pub(crate) use adapter::fhir_build::{concept, present, text_concept};

/// A FHIR `code` from vendor text, when it is one (no inner runs of whitespace).
pub(crate) fn fhir_code(s: &str) -> Option<String> {
    let s = present(s)?;
    adapter::format::is_code(s).then(|| s.to_owned())
}

/// The FHIR id of a session (`noa-{sessionId}`).
pub(crate) fn fhir_id(field: &'static str, native: &str) -> Result<String, MapError> {
    ids::fhir_id(native).map_err(|source| MapError::Id { field, source })
}

/// The identifier carrying a native id of `kind` under this source's system.
pub(crate) fn native_identifier(kind: &str, native: &str) -> Identifier {
    fhir_build::native_identifier(ids::SOURCE, kind, native)
}

/// `meta` with the source, `lastUpdated` (the vendor's time, else the mapping's `now` in the
/// practice zone), a version and a profile.
pub(crate) fn meta(
    ctx: &NoaCtx,
    last_updated: Option<DateTime<FixedOffset>>,
    version: Option<String>,
    profile: Option<&str>,
) -> Meta {
    let last_updated = last_updated.unwrap_or_else(|| ctx.base.now.with_timezone(&ctx.base.default_tz).fixed_offset());
    Meta {
        version_id: version.map(Into::into),
        ..fhir_build::meta(ids::SOURCE, time::fhir_instant(&last_updated), profile)
    }
}

/// The context the unit tests map with: the practice is in Warsaw, the EHR is DrChrono.
#[cfg(test)]
pub(crate) fn test_ctx() -> NoaCtx {
    use chrono::TimeZone;
    NoaCtx::new(MapCtx::new(
        chrono::Utc.with_ymd_and_hms(2025, 3, 14, 12, 0, 0).unwrap(),
        chrono_tz::Europe::Warsaw,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;
    use serde_json::json;

    #[test]
    fn the_patient_comes_from_metadata_else_from_the_episode() {
        let mut ctx = test_ctx();
        let mut s: wire::Session = serde_json::from_value(json!({
            "sessionId": "s1", "episodeId": "77", "doctorId": "3", "facilityId": "5",
            "metadata": {"patientId": "12"}
        }))
        .unwrap();
        assert_eq!(ctx.patient_of(&s).as_deref(), Some("12"));
        assert_eq!(
            session_references(&s, &ctx),
            [
                "Patient/drchrono-12",
                "Practitioner/drchrono-3",
                "Appointment/drchrono-77",
                "Location/drchrono-5"
            ]
        );
        s.metadata = None;
        assert_eq!(ctx.patient_of(&s), None);
        ctx.episode_patients.insert("77".into(), "13".into());
        assert_eq!(ctx.patient_of(&s).as_deref(), Some("13"));
        ctx.patient_metadata_key = "pid".into();
        s.metadata = Some([("pid".to_owned(), json!(" 14 "))].into_iter().collect());
        assert_eq!(ctx.patient_of(&s).as_deref(), Some("14"));
        s.facility_id = String::new();
        assert_eq!(session_references(&s, &ctx).len(), 3);
    }

    #[test]
    fn errors_name_fields_not_values() {
        let e = MapError::Invalid {
            field: "createdAt",
            expected: "timestamp",
        };
        assert_eq!(e.to_string(), "Noa field `createdAt` is not a valid timestamp");
        assert!(matches!(
            e.to_adapter_error(),
            AdapterError::Unmappable { vendor: "noa", .. }
        ));
    }

    #[test]
    fn meta_falls_back_to_now_in_the_practice_zone() {
        let m = meta(&test_ctx(), None, Some("2".into()), None);
        assert_eq!(m.last_updated.unwrap().value.unwrap(), "2025-03-14T13:00:00+01:00");
        assert_eq!(m.source.unwrap().value.unwrap(), "urn:fhir-gateway:source:noa");
        assert_eq!(m.version_id.unwrap().value.unwrap(), "2");
    }
}
