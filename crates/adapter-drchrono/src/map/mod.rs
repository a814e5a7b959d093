//! Pure mappings from DrChrono wire objects ([`crate::wire`]) to FHIR R4 resources.
//!
//! No function here does I/O or reads the clock: the moment of mapping, the default time zone and
//! the doctors' time zones come in through [`DrCtx`]. Every resource gets
//!
//! - an `id` from the [`ids`] scheme (`drchrono-{native}`),
//! - `meta.source` naming DrChrono, `meta.lastUpdated` from the vendor's `updated_at` (a zone-less
//!   timestamp read in the practice time zone and emitted with its offset; [`DrCtx::base`]`.now`
//!   when the vendor sends none) and the US Core profile it conforms to,
//! - an `identifier` holding its native id under
//!   `adapter::systems::native_id_system("drchrono", kind)` (kinds in [`ids::kind`]).
//!
//! Code tables live in [`codes`], one enum per table, every row tested. Errors name the field that
//! could not be mapped and never carry its value (it may be patient data).

use std::collections::HashMap;

use adapter::fhir::types::{Identifier, Meta, Reference};
use adapter::{IdError, MapCtx, fhir_build};
use chrono::{DateTime, FixedOffset};
use chrono_tz::Tz;

mod appointment;
mod clinical_note;
pub mod codes;
mod contact;
mod document;
pub mod ids;
mod location;
mod patient;
mod practitioner;
pub mod time;

pub use appointment::{appointment, appointment_location};
pub use clinical_note::{clinical_note, render_markdown};
pub use document::document;
pub use location::{exam_room_location, office_location, office_locations};
pub use patient::patient;
pub use practitioner::{doctor_timezone, practitioner};

/// Everything the DrChrono mappings need from outside.
#[derive(Debug, Clone)]
pub struct DrCtx {
    /// The moment of mapping and the configured practice time zone.
    pub base: MapCtx,
    /// The time zone of each doctor (`/api/doctors` `timezone`), by doctor id.
    pub doctor_tz: HashMap<i64, Tz>,
}

impl DrCtx {
    /// A context that knows no doctor's time zone yet.
    pub fn new(base: MapCtx) -> Self {
        Self {
            base,
            doctor_tz: HashMap::new(),
        }
    }

    /// The practice time zone of a record owned by `doctor`: that doctor's zone when known, else
    /// the configured default (DESIGN.md: "doctor/office timezone, else config").
    pub fn tz_for(&self, doctor: Option<i64>) -> Tz {
        doctor
            .and_then(|d| self.doctor_tz.get(&d).copied())
            .unwrap_or(self.base.default_tz)
    }
}

/// Why a DrChrono object could not be mapped. Messages name fields, never their values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    /// A field the FHIR resource cannot do without is absent, `null` or `""`.
    #[error("DrChrono field `{field}` is missing or empty")]
    Missing { field: &'static str },
    /// A field does not have the documented format.
    #[error("DrChrono field `{field}` is not a valid {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
    /// A coded field holds a value the adapter's code table does not know.
    #[error("DrChrono field `{field}` holds a code this adapter does not know")]
    UnknownCode { field: &'static str },
    /// A native id cannot be turned into a FHIR id (too long, say).
    #[error("DrChrono field `{field}` cannot be made into a FHIR id: {source}")]
    Id {
        field: &'static str,
        #[source]
        source: IdError,
    },
}

pub use adapter::systems::DATA_ABSENT_REASON;

// ---- small builders shared by the resource mappings ----

pub(crate) use adapter::fhir_build::{concept, data_absent_unknown, fhir_text, present, text_concept};

/// The FHIR id of a native id.
pub(crate) fn fhir_id(field: &'static str, native: &str) -> Result<String, MapError> {
    ids::fhir_id(native).map_err(|source| MapError::Id { field, source })
}

/// A literal reference `{Type}/drchrono-{native}`.
pub(crate) fn reference(field: &'static str, resource_type: &str, native: &str) -> Result<Reference, MapError> {
    fhir_build::reference(resource_type, ids::SOURCE, native).map_err(|source| MapError::Id { field, source })
}

/// The identifier carrying a resource's native id.
pub(crate) fn native_identifier(kind: &str, native: &str) -> Identifier {
    fhir_build::native_identifier(ids::SOURCE, kind, native)
}

/// `meta` with the source, `lastUpdated` (the vendor's time, else the mapping's `now`, to the
/// second) and a profile.
pub(crate) fn meta(ctx: &DrCtx, tz: Tz, last_updated: Option<DateTime<FixedOffset>>, profile: Option<&str>) -> Meta {
    let last_updated = last_updated.unwrap_or_else(|| ctx.base.now.with_timezone(&tz).fixed_offset());
    fhir_build::meta(ids::SOURCE, time::fhir_instant(&last_updated), profile)
}

/// The context the unit tests map with.
#[cfg(test)]
pub(crate) fn test_ctx() -> DrCtx {
    use chrono::TimeZone;
    DrCtx::new(MapCtx::new(
        chrono::Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap(),
        chrono_tz::America::New_York,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> DrCtx {
        test_ctx()
    }

    #[test]
    fn practice_tz_is_the_doctors_else_the_default() {
        let mut ctx = ctx();
        ctx.doctor_tz.insert(45, chrono_tz::America::Denver);
        assert_eq!(ctx.tz_for(Some(45)), chrono_tz::America::Denver);
        assert_eq!(ctx.tz_for(Some(46)), chrono_tz::America::New_York);
        assert_eq!(ctx.tz_for(None), chrono_tz::America::New_York);
    }

    #[test]
    fn meta_falls_back_to_now_in_the_practice_zone() {
        let m = meta(&ctx(), chrono_tz::America::New_York, None, None);
        assert_eq!(m.last_updated.unwrap().value.unwrap(), "2024-01-01T22:04:05-05:00");
        assert_eq!(m.source.unwrap().value.unwrap(), "urn:fhir-gateway:source:drchrono");
    }

    #[test]
    fn errors_name_fields_not_values() {
        let e = MapError::Invalid {
            field: "date_of_birth",
            expected: "date",
        };
        assert_eq!(e.to_string(), "DrChrono field `date_of_birth` is not a valid date");
    }
}
