//! The native-id scheme inside the `drchrono` source.
//!
//! A FHIR id is `drchrono-{native}` ([`fhir_id`]). The native part is:
//!
//! | resource | native id | example FHIR id |
//! |---|---|---|
//! | Patient | patient id | `drchrono-123` |
//! | Practitioner | doctor id | `drchrono-45` |
//! | Appointment | appointment id, verbatim (encoded by [`adapter::id`] if it is not id-safe) | `drchrono-9001` |
//! | Location (office) | office id | `drchrono-7` |
//! | Location (exam room) | `{office}-room-{index}` (index is 1-based, as in `exam_room`) | `drchrono-7-room-2` |
//! | DocumentReference (clinical note) | `note-{id}`: the note's own `id` when the vendor sends one, else its `appointment` id | `drchrono-note-9001` |
//! | DocumentReference (document) | `doc-{id}` | `drchrono-doc-31` |
//!
//! Integers are written in canonical decimal (no sign, no leading zeros); the parsers accept only
//! that form, so every native id has exactly one spelling.

use adapter::IdError;

/// The source name of this adapter, the prefix of every FHIR id it mints.
pub const SOURCE: &str = "drchrono";

/// The `kind` part of each resource's native-id identifier system
/// (`adapter::systems::native_id_system(SOURCE, kind)`); the identifier value is the native id.
pub mod kind {
    pub const PATIENT: &str = "patient";
    pub const PRACTITIONER: &str = "practitioner";
    pub const LOCATION: &str = "location";
    pub const APPOINTMENT: &str = "appointment";
    pub const DOCUMENT_REFERENCE: &str = "documentreference";
    /// A patient's chart id (`chart_id`), published with identifier type MR.
    pub const CHART: &str = "chart";
}

/// The FHIR id of a native id: `drchrono-{native}`.
pub fn fhir_id(native: &str) -> Result<String, IdError> {
    adapter::id::fhir_id(SOURCE, native)
}

/// Native id of a patient.
pub fn patient(id: i64) -> String {
    id.to_string()
}

/// Native id of a doctor's Practitioner.
pub fn practitioner(id: i64) -> String {
    id.to_string()
}

/// Native id of an appointment: the vendor id itself.
pub fn appointment(id: &str) -> String {
    id.to_owned()
}

/// Which vendor object a Location stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocationId {
    /// An `/api/offices` object.
    Office(i64),
    /// The exam room with 1-based `index` in office `office`'s `exam_rooms`.
    ExamRoom { office: i64, index: i64 },
}

const ROOM_SEPARATOR: &str = "-room-";

/// Parses a Location native id (`7`, `7-room-2`).
pub fn parse_location(native: &str) -> Option<LocationId> {
    match native.split_once(ROOM_SEPARATOR) {
        None => canonical_positive(native).map(LocationId::Office),
        Some((office, index)) => Some(LocationId::ExamRoom {
            office: canonical_positive(office)?,
            index: canonical_positive(index)?,
        }),
    }
}

/// The native id of a Location.
pub fn location(id: &LocationId) -> String {
    match id {
        LocationId::Office(office) => office.to_string(),
        LocationId::ExamRoom { office, index } => format!("{office}{ROOM_SEPARATOR}{index}"),
    }
}

/// Which vendor object a DocumentReference stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DocumentId {
    /// A clinical note, by the note's own id when the vendor sends one, else by its appointment id
    /// (the vendor documents list no note id; a note belongs to exactly one appointment).
    ClinicalNote(String),
    /// An `/api/documents` object.
    Document(i64),
}

const NOTE_PREFIX: &str = "note-";
const DOC_PREFIX: &str = "doc-";

/// Parses a DocumentReference native id (`note-9001`, `doc-31`).
pub fn parse_document(native: &str) -> Option<DocumentId> {
    if let Some(note) = native.strip_prefix(NOTE_PREFIX) {
        (!note.is_empty()).then(|| DocumentId::ClinicalNote(note.to_owned()))
    } else if let Some(doc) = native.strip_prefix(DOC_PREFIX) {
        canonical_positive(doc).map(DocumentId::Document)
    } else {
        None
    }
}

/// The native id of a DocumentReference.
pub fn document(id: &DocumentId) -> String {
    match id {
        DocumentId::ClinicalNote(note) => format!("{NOTE_PREFIX}{note}"),
        DocumentId::Document(doc) => format!("{DOC_PREFIX}{doc}"),
    }
}

/// A positive integer in canonical decimal form (`12`, not `012` or `+12`): the one spelling of an
/// integer native id.
pub(crate) fn canonical_positive(s: &str) -> Option<i64> {
    let n: i64 = s.parse().ok()?;
    (n > 0 && n.to_string() == s).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip() {
        for (id, native) in [
            (LocationId::Office(7), "7"),
            (LocationId::ExamRoom { office: 7, index: 2 }, "7-room-2"),
            (
                LocationId::ExamRoom {
                    office: 123456789,
                    index: 15,
                },
                "123456789-room-15",
            ),
        ] {
            assert_eq!(location(&id), native);
            assert_eq!(parse_location(native), Some(id));
            let fhir = fhir_id(native).unwrap();
            assert_eq!(fhir, format!("drchrono-{native}"));
            let back = adapter::FhirId::parse(&fhir).unwrap();
            assert_eq!(parse_location(back.native()), Some(id));
        }
    }

    #[test]
    fn non_canonical_locations_are_refused() {
        for bad in [
            "",
            "07",
            "+7",
            "-7",
            "0",
            "7-room-",
            "7-room-0",
            "7-room-02",
            "x-room-2",
            "7-room-2-room-3",
            "7-ROOM-2",
            " 7",
        ] {
            assert_eq!(parse_location(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn documents_round_trip() {
        for (id, native) in [
            (DocumentId::ClinicalNote("9001".into()), "note-9001"),
            (DocumentId::ClinicalNote("a_b".into()), "note-a_b"),
            (DocumentId::Document(31), "doc-31"),
        ] {
            assert_eq!(document(&id), native);
            assert_eq!(parse_document(native), Some(id.clone()));
            let fhir = fhir_id(native).unwrap();
            let back = adapter::FhirId::parse(&fhir).unwrap();
            assert_eq!(parse_document(back.native()), Some(id));
        }
        assert_eq!(fhir_id("note-9001").unwrap(), "drchrono-note-9001");
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in ["", "note-", "doc-", "doc-x", "doc-031", "doc-0", "31", "memo-3"] {
            assert_eq!(parse_document(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn plain_ids_are_the_vendor_ids() {
        assert_eq!(patient(123), "123");
        assert_eq!(practitioner(45), "45");
        assert_eq!(appointment("abc_1"), "abc_1");
        // A non-id-safe appointment id still makes a reversible FHIR id.
        let fhir = fhir_id(&appointment("abc_1")).unwrap();
        assert_eq!(adapter::FhirId::parse(&fhir).unwrap().native(), "abc_1");
    }
}
