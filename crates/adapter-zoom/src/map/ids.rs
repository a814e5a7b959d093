//! The native-id scheme inside the `zoom` source.
//!
//! A FHIR id is `zoom-{native}` ([`fhir_id`]); a native id that is not made of FHIR id characters
//! (Zoom ids are base64url and often hold `_`; meeting UUIDs hold `/`, `+`, `=`) is encoded
//! reversibly by [`adapter::id`] as `zoom-x.{base32}`. The native part is:
//!
//! | resource | Zoom object | native id | example FHIR id |
//! |---|---|---|---|
//! | Patient | healthcare patient | its `id`, verbatim | `zoom-p123`, `zoom-x.OBQXIXZRGIZQ` (`pat_123`) |
//! | Practitioner | provider | its `id`, verbatim | `zoom-prov456` |
//! | Appointment | visit | its `id`, verbatim | `zoom-v42` |
//! | Encounter | a visit that started | `enc-{visit id}` | `zoom-enc-v42` |
//! | DocumentReference | clinical note | `note-{note_id}` | `zoom-note-ArfRXokSTiGTCSYFVtxNa` |
//! | Schedule | a provider's availability | `sched-{provider id}` | `zoom-sched-prov456` |
//! | Slot | one slot of it | `slot-{provider id}-{start}`, the start in Unix seconds written in base 36 | `zoom-slot-prov456-s86k80` |
//!
//! Resources that stand for one Zoom object of their own kind use its id verbatim; resources
//! derived from another object (an Encounter from a visit, a Schedule from a provider) or of a
//! type Zoom may later fill from other objects (recordings and transcripts would be
//! DocumentReferences too) carry a prefix. Meeting UUIDs never become ids: they are published as
//! identifiers ([`kind::MEETING`]).
//!
//! A FHIR id holds at most 64 characters, so an encoded native id at most 35 bytes: the slot's
//! start is written in base 36 (`0-9a-z`, six digits until 2038) so that a slot of a provider
//! whose id is a 22-character Zoom user id with a `_` still fits.
//!
//! Every resource also carries its native id as an identifier under
//! `adapter::systems::native_id_system("zoom", kind)` with the kinds of [`kind`].

use adapter::{FhirId, IdError, ResourceType};

/// The source name of this adapter, the prefix of every FHIR id it mints.
pub const SOURCE: &str = "zoom";

/// The `kind` part of the identifier systems (`adapter::systems::native_id_system(SOURCE, kind)`).
pub mod kind {
    /// Native id of a Patient (the Zoom patient id).
    pub const PATIENT: &str = "patient";
    /// Native id of a Practitioner (the Zoom provider id).
    pub const PRACTITIONER: &str = "practitioner";
    /// Native id of an Appointment (the visit id).
    pub const APPOINTMENT: &str = "appointment";
    /// Native id of an Encounter (`enc-{visit id}`).
    pub const ENCOUNTER: &str = "encounter";
    /// Native id of a DocumentReference (`note-{note_id}`).
    pub const DOCUMENT_REFERENCE: &str = "documentreference";
    /// Native id of a Schedule (`sched-{provider id}`).
    pub const SCHEDULE: &str = "schedule";
    /// Native id of a Slot.
    pub const SLOT: &str = "slot";
    /// A Zoom meeting instance UUID (`I3pHE/RnRbmm+ex2g07sxw==`), on notes, visits and encounters.
    pub const MEETING: &str = "meeting";
    /// A Zoom meeting number (`97763643885`).
    pub const MEETING_NUMBER: &str = "meeting-number";
    /// A Zoom user id (a provider's `user_id`, a note's `note_owner_user_id`).
    pub const USER: &str = "user";
}

const ENCOUNTER_PREFIX: &str = "enc-";
const NOTE_PREFIX: &str = "note-";
const SCHEDULE_PREFIX: &str = "sched-";
const SLOT_PREFIX: &str = "slot-";

/// The FHIR id of a native id: `zoom-{native}` (encoded when needed).
pub fn fhir_id(native: &str) -> Result<String, IdError> {
    adapter::id::fhir_id(SOURCE, native)
}

/// Which Zoom object a gateway resource stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ZoomId {
    /// A healthcare patient, by its id.
    Patient(String),
    /// A provider, by its id.
    Practitioner(String),
    /// A visit's Appointment, by the visit id.
    Appointment(String),
    /// A visit's Encounter, by the visit id.
    Encounter(String),
    /// A clinical note's DocumentReference, by `note_id`.
    Note(String),
    /// A provider's Schedule, by the provider id.
    Schedule(String),
    /// One slot of a provider's availability, by the provider id and the slot's start (Unix
    /// seconds; written in base 36 in the native id).
    Slot { provider: String, start: i64 },
}

impl ZoomId {
    /// The FHIR resource type.
    pub fn resource_type(&self) -> ResourceType {
        match self {
            Self::Patient(_) => ResourceType::Patient,
            Self::Practitioner(_) => ResourceType::Practitioner,
            Self::Appointment(_) => ResourceType::Appointment,
            Self::Encounter(_) => ResourceType::Encounter,
            Self::Note(_) => ResourceType::DocumentReference,
            Self::Schedule(_) => ResourceType::Schedule,
            Self::Slot { .. } => ResourceType::Slot,
        }
    }

    /// The native part of the FHIR id.
    pub fn native(&self) -> String {
        match self {
            Self::Patient(id) | Self::Practitioner(id) | Self::Appointment(id) => id.clone(),
            Self::Encounter(visit) => format!("{ENCOUNTER_PREFIX}{visit}"),
            Self::Note(note) => format!("{NOTE_PREFIX}{note}"),
            Self::Schedule(provider) => format!("{SCHEDULE_PREFIX}{provider}"),
            Self::Slot { provider, start } => format!("{SLOT_PREFIX}{provider}-{}", base36(*start)),
        }
    }

    /// The FHIR id (`zoom-…`).
    pub fn fhir_id(&self) -> Result<String, IdError> {
        fhir_id(&self.native())
    }

    /// Reads the native part of a FHIR id of `resource_type`; `None` when it is not one this
    /// scheme makes (or the type is not served by Zoom).
    pub fn parse(resource_type: ResourceType, native: &str) -> Option<Self> {
        if native.is_empty() {
            return None;
        }
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        match resource_type {
            ResourceType::Patient => Some(Self::Patient(native.to_owned())),
            ResourceType::Practitioner => Some(Self::Practitioner(native.to_owned())),
            ResourceType::Appointment => Some(Self::Appointment(native.to_owned())),
            ResourceType::Encounter => nonempty(native.strip_prefix(ENCOUNTER_PREFIX)?).map(Self::Encounter),
            ResourceType::DocumentReference => nonempty(native.strip_prefix(NOTE_PREFIX)?).map(Self::Note),
            ResourceType::Schedule => nonempty(native.strip_prefix(SCHEDULE_PREFIX)?).map(Self::Schedule),
            ResourceType::Slot => {
                let (provider, start) = native.strip_prefix(SLOT_PREFIX)?.rsplit_once('-')?;
                Some(Self::Slot {
                    provider: nonempty(provider)?,
                    start: from_base36(start)?,
                })
            }
            ResourceType::Location => None,
        }
    }

    /// Reads a whole FHIR id (`zoom-…`) of `resource_type`; `None` for another source's ids.
    pub fn parse_fhir_id(resource_type: ResourceType, id: &str) -> Option<Self> {
        let id = FhirId::parse(id).ok()?;
        (id.source() == SOURCE).then(|| Self::parse(resource_type, id.native()))?
    }

    /// Reads a literal reference (`Patient/zoom-…`) to one of this source's resources.
    pub fn parse_reference(reference: &str) -> Option<Self> {
        let (resource_type, id) = reference.split_once('/')?;
        Self::parse_fhir_id(resource_type.parse().ok()?, id)
    }
}

/// Native id of a Patient.
pub fn patient(id: &str) -> String {
    ZoomId::Patient(id.to_owned()).native()
}

/// Native id of a Practitioner.
pub fn practitioner(provider_id: &str) -> String {
    ZoomId::Practitioner(provider_id.to_owned()).native()
}

/// Native id of a visit's Appointment.
pub fn appointment(visit_id: &str) -> String {
    ZoomId::Appointment(visit_id.to_owned()).native()
}

/// Native id of a visit's Encounter.
pub fn encounter(visit_id: &str) -> String {
    ZoomId::Encounter(visit_id.to_owned()).native()
}

/// Native id of a clinical note's DocumentReference.
pub fn note(note_id: &str) -> String {
    ZoomId::Note(note_id.to_owned()).native()
}

/// Native id of a provider's Schedule.
pub fn schedule(provider_id: &str) -> String {
    ZoomId::Schedule(provider_id.to_owned()).native()
}

/// Native id of a Slot starting at `start` (Unix seconds).
pub fn slot(provider_id: &str, start: i64) -> String {
    ZoomId::Slot {
        provider: provider_id.to_owned(),
        start,
    }
    .native()
}

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A non-negative integer in base 36, lowercase (negative numbers are written as `0`: slots
/// before 1970 are refused by the mapping).
fn base36(n: i64) -> String {
    let mut n = n.max(0);
    let mut digits = Vec::new();
    loop {
        digits.push(BASE36[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().map(|&b| char::from(b)).collect()
}

/// Reads [`base36`] back: lowercase digits, no leading zeros, no overflow.
fn from_base36(s: &str) -> Option<i64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.bytes().try_fold(0_i64, |n, b| {
        let digit = BASE36.iter().position(|&d| d == b)?;
        n.checked_mul(36)?.checked_add(digit as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(id: ZoomId, native: &str, fhir: &str) {
        assert_eq!(id.native(), native);
        assert_eq!(ZoomId::parse(id.resource_type(), native), Some(id.clone()), "{native}");
        assert_eq!(id.fhir_id().unwrap(), fhir);
        assert!(adapter::id::is_valid_fhir_id(fhir), "{fhir}");
        assert_eq!(ZoomId::parse_fhir_id(id.resource_type(), fhir), Some(id.clone()));
        let reference = format!("{}/{fhir}", id.resource_type());
        assert_eq!(ZoomId::parse_reference(&reference), Some(id));
    }

    #[test]
    fn every_kind_round_trips() {
        round_trip(ZoomId::Patient("p123".into()), "p123", "zoom-p123");
        round_trip(ZoomId::Practitioner("prov456".into()), "prov456", "zoom-prov456");
        round_trip(ZoomId::Appointment("v42".into()), "v42", "zoom-v42");
        round_trip(ZoomId::Encounter("v42".into()), "enc-v42", "zoom-enc-v42");
        round_trip(
            ZoomId::Note("ArfRXokSTiGTCSYFVtxNa".into()),
            "note-ArfRXokSTiGTCSYFVtxNa",
            "zoom-note-ArfRXokSTiGTCSYFVtxNa",
        );
        round_trip(
            ZoomId::Schedule("prov456".into()),
            "sched-prov456",
            "zoom-sched-prov456",
        );
        round_trip(
            ZoomId::Slot {
                provider: "prov456".into(),
                start: 1706796000,
            },
            "slot-prov456-s86k80",
            "zoom-slot-prov456-s86k80",
        );
    }

    #[test]
    fn ids_that_are_not_id_safe_are_encoded_and_round_trip() {
        for id in [
            ZoomId::Patient("pat_123".into()),
            ZoomId::Practitioner("dqV7XEpn_5G3rGsvqylmjQ".into()),
            ZoomId::Appointment("visit_abc123".into()),
            ZoomId::Encounter("visit_abc123".into()),
            ZoomId::Note("a/b+c==".into()),
            ZoomId::Schedule("prov_456".into()),
            ZoomId::Slot {
                provider: "prov-4_5-6".into(),
                start: 0,
            },
            // Natives that look like this scheme's own encoding are encoded too.
            ZoomId::Patient("x.ABC".into()),
        ] {
            let fhir = id.fhir_id().unwrap();
            assert!(fhir.starts_with("zoom-x."), "{fhir}");
            assert!(adapter::id::is_valid_fhir_id(&fhir), "{fhir}");
            assert_eq!(ZoomId::parse_fhir_id(id.resource_type(), &fhir), Some(id));
        }
        assert_eq!(fhir_id("pat_123").unwrap(), "zoom-x.OBQXIXZRGIZQ");
    }

    #[test]
    fn a_slot_of_a_provider_with_a_zoom_user_id_fits_in_a_fhir_id() {
        let id = ZoomId::Slot {
            provider: "dqV7XEpnS5G3rGsvq_lmjQ".into(),
            start: 2_000_000_000,
        };
        let fhir = id.fhir_id().unwrap();
        assert!(fhir.len() <= 64, "{fhir}");
        assert_eq!(ZoomId::parse_fhir_id(ResourceType::Slot, &fhir), Some(id));
    }

    #[test]
    fn base36_round_trips_and_is_canonical() {
        for n in [0, 1, 35, 36, 1706796000, i64::MAX] {
            assert_eq!(from_base36(&base36(n)), Some(n), "{n}");
        }
        assert_eq!(base36(1706796000), "s86k80");
        for bad in ["", "00", "01", "A", "-1", "+1", "zzzzzzzzzzzzzz"] {
            assert_eq!(from_base36(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_type_decides_how_a_native_id_reads() {
        // The same text is a patient id, but no Encounter, Schedule or note.
        assert_eq!(
            ZoomId::parse(ResourceType::Patient, "v42"),
            Some(ZoomId::Patient("v42".into()))
        );
        assert_eq!(ZoomId::parse(ResourceType::Encounter, "v42"), None);
        assert_eq!(ZoomId::parse(ResourceType::Schedule, "v42"), None);
        assert_eq!(ZoomId::parse(ResourceType::DocumentReference, "v42"), None);
        assert_eq!(ZoomId::parse(ResourceType::Location, "v42"), None);
        // A visit id that starts like an Encounter id is still a visit.
        assert_eq!(
            ZoomId::parse(ResourceType::Appointment, "enc-1"),
            Some(ZoomId::Appointment("enc-1".into()))
        );
    }

    #[test]
    fn malformed_natives_are_refused() {
        for (t, bad) in [
            (ResourceType::Patient, ""),
            (ResourceType::Encounter, "enc-"),
            (ResourceType::DocumentReference, "note-"),
            (ResourceType::DocumentReference, "doc-1"),
            (ResourceType::Schedule, "sched-"),
            (ResourceType::Slot, "slot-"),
            (ResourceType::Slot, "slot-p"),
            (ResourceType::Slot, "slot--s86k80"),
            (ResourceType::Slot, "slot-p-0s86k80"),
            (ResourceType::Slot, "slot-p-+1"),
            (ResourceType::Slot, "slot-p-S86K80"),
            (ResourceType::Slot, "slot-p-"),
            (ResourceType::Slot, "p-s86k80"),
        ] {
            assert_eq!(ZoomId::parse(t, bad), None, "{t} {bad:?}");
        }
        // A provider id with dashes is fine: the start is after the last one.
        assert_eq!(
            ZoomId::parse(ResourceType::Slot, "slot-a-b-5"),
            Some(ZoomId::Slot {
                provider: "a-b".into(),
                start: 5
            })
        );
    }

    #[test]
    fn other_sources_and_bad_references_are_not_zoom_ids() {
        assert_eq!(ZoomId::parse_fhir_id(ResourceType::Patient, "drchrono-12"), None);
        assert_eq!(ZoomId::parse_fhir_id(ResourceType::Patient, "zoom"), None);
        assert_eq!(ZoomId::parse_reference("Patient/drchrono-12"), None);
        assert_eq!(ZoomId::parse_reference("Observation/zoom-1"), None);
        assert_eq!(ZoomId::parse_reference("zoom-1"), None);
        assert_eq!(
            ZoomId::parse_reference("Practitioner/zoom-prov456"),
            Some(ZoomId::Practitioner("prov456".into()))
        );
    }

    #[test]
    fn the_helpers_build_the_natives() {
        assert_eq!(patient("p1"), "p1");
        assert_eq!(practitioner("d1"), "d1");
        assert_eq!(appointment("v1"), "v1");
        assert_eq!(encounter("v1"), "enc-v1");
        assert_eq!(note("n1"), "note-n1");
        assert_eq!(schedule("d1"), "sched-d1");
        assert_eq!(slot("d1", 72), "slot-d1-20");
    }
}
