//! Code tables: Noa values ↔ FHIR codes, one enum per table, every row tested below.
//!
//! Noa's codes are PascalCase words (`EmptySummaryVerified`, `FollowUpVisit`); they are matched
//! after trimming, ignoring ASCII case. Each table documents what an unknown vendor value does.

use adapter::systems;

pub use adapter::codes::{CLINICAL_NOTE_CATEGORY, Code, FhirDocStatus, FhirEncounterStatus};

/// The extension holding the exact Noa session status (`valueCode`), on Encounters.
pub const EXT_SESSION_STATUS: &str = "urn:fhir-gateway:ext:noa-session-status";

/// The extension holding a session's language (`valueCode`, a BCP-47 tag), on Encounters.
pub const EXT_LANGUAGE: &str = "urn:fhir-gateway:ext:noa-language";

/// The gateway's code system of Noa's visit types (`FirstVisit`, `FollowUpVisit`).
pub const VISIT_TYPE_SYSTEM: &str = "urn:fhir-gateway:noa:visit-type";

/// FHIR's `Encounter.status` code system.
pub const ENCOUNTER_STATUS_SYSTEM: &str = "http://hl7.org/fhir/encounter-status";

// ---------------------------------------------------------------------------------------------
// Session status
// ---------------------------------------------------------------------------------------------

/// A Noa session's `status`: the twelve values of its lifecycle (`docs/noa-api.md`). An unknown
/// status is refused by the mapping: `Encounter.status` is a modifier, and guessing whether a
/// visit was recorded would be worse than an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    /// Created; the doctor has not started recording.
    New,
    Recording,
    Recorded,
    Transcribing,
    Transcribed,
    /// Summarising (also during a recovery or regeneration, which keep the earlier summary).
    Analyzing,
    /// A summary exists; the doctor has not verified it.
    Summarized,
    /// The doctor verified the summary (final).
    Verified,
    /// The doctor confirmed that nothing was worth recording (final).
    EmptySummaryVerified,
    /// The recording was interrupted (error end).
    Interrupted,
    /// Transcription or analysis failed (error end).
    Failed,
    /// Never recorded before the session expired (error end).
    Expired,
}

impl SessionStatus {
    pub const ALL: [Self; 12] = [
        Self::New,
        Self::Recording,
        Self::Recorded,
        Self::Transcribing,
        Self::Transcribed,
        Self::Analyzing,
        Self::Summarized,
        Self::Verified,
        Self::EmptySummaryVerified,
        Self::Interrupted,
        Self::Failed,
        Self::Expired,
    ];

    /// Noa's spelling.
    pub fn wire(self) -> &'static str {
        match self {
            Self::New => "New",
            Self::Recording => "Recording",
            Self::Recorded => "Recorded",
            Self::Transcribing => "Transcribing",
            Self::Transcribed => "Transcribed",
            Self::Analyzing => "Analyzing",
            Self::Summarized => "Summarized",
            Self::Verified => "Verified",
            Self::EmptySummaryVerified => "EmptySummaryVerified",
            Self::Interrupted => "Interrupted",
            Self::Failed => "Failed",
            Self::Expired => "Expired",
        }
    }

    pub fn from_wire(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL.into_iter().find(|v| v.wire().eq_ignore_ascii_case(s))
    }

    /// The Encounter's status: a new session is a planned visit; recording is the visit under way;
    /// from the end of the recording on (transcription, summary, verification) the visit is over;
    /// a session that ended in an error produced no usable visit record: cancelled.
    pub fn encounter(self) -> FhirEncounterStatus {
        match self {
            Self::New => FhirEncounterStatus::Planned,
            Self::Recording => FhirEncounterStatus::InProgress,
            Self::Recorded
            | Self::Transcribing
            | Self::Transcribed
            | Self::Analyzing
            | Self::Summarized
            | Self::Verified
            | Self::EmptySummaryVerified => FhirEncounterStatus::Finished,
            Self::Interrupted | Self::Failed | Self::Expired => FhirEncounterStatus::Cancelled,
        }
    }

    /// The statuses in which Noa may have a summary (a recovery or regeneration, Analyzing,
    /// keeps the earlier one): the sessions with a DocumentReference.
    pub fn may_have_summary(self) -> bool {
        matches!(
            self,
            Self::Analyzing | Self::Summarized | Self::Verified | Self::EmptySummaryVerified
        )
    }

    /// The doctor verified the summary: it no longer changes unless recovered or regenerated.
    pub fn is_verified(self) -> bool {
        matches!(self, Self::Verified | Self::EmptySummaryVerified)
    }

    /// The session ended in an error.
    pub fn is_error(self) -> bool {
        matches!(self, Self::Interrupted | Self::Failed | Self::Expired)
    }

    /// The recording is over (an Expired session was never recorded).
    pub fn recording_ended(self) -> bool {
        !matches!(self, Self::New | Self::Recording | Self::Expired)
    }

    /// The `DocumentReference.docStatus` of a summary read in this status: `final` once the doctor
    /// verified it (and Noa says they approved it), else `preliminary`.
    pub fn doc_status(self, doctor_approved: bool) -> FhirDocStatus {
        if self.is_verified() && doctor_approved {
            FhirDocStatus::Final
        } else {
            FhirDocStatus::Preliminary
        }
    }

    /// The statuses whose Encounter has `status` (the inverse of [`SessionStatus::encounter`]).
    pub fn with_encounter(status: FhirEncounterStatus) -> Vec<Self> {
        Self::ALL.into_iter().filter(|s| s.encounter() == status).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Visit type
// ---------------------------------------------------------------------------------------------

/// A session's `visitType`. Blank means none; an unknown value is kept as `Encounter.type.text`
/// (the element is no modifier) and gives the default document type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitType {
    FirstVisit,
    FollowUpVisit,
}

impl VisitType {
    pub const ALL: [Self; 2] = [Self::FirstVisit, Self::FollowUpVisit];

    pub fn wire(self) -> &'static str {
        match self {
            Self::FirstVisit => "FirstVisit",
            Self::FollowUpVisit => "FollowUpVisit",
        }
    }

    pub fn from_wire(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL.into_iter().find(|v| v.wire().eq_ignore_ascii_case(s))
    }

    /// The gateway coding (system [`VISIT_TYPE_SYSTEM`], code Noa's spelling).
    pub fn code(self) -> Code {
        Code {
            system: VISIT_TYPE_SYSTEM,
            code: self.wire(),
            display: match self {
                Self::FirstVisit => "First visit",
                Self::FollowUpVisit => "Follow-up visit",
            },
        }
    }

    /// The kind of note a summary of this visit is.
    pub fn note_kind(self) -> NoteKind {
        match self {
            Self::FirstVisit => NoteKind::HistoryAndPhysical,
            Self::FollowUpVisit => NoteKind::Progress,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Note kind (DocumentReference.type)
// ---------------------------------------------------------------------------------------------

/// The LOINC document type of a summary. Noa writes one summary per visit following the visit's
/// template; the visit type is the only thing that tells the kind of visit:
///
/// - `FirstVisit` → History and physical note (34117-2): a first visit documents the patient's
///   history and examination from the start;
/// - `FollowUpVisit`, or no visit type → Progress note (11506-3), the US Core clinical-note type
///   for an ordinary visit note.
///
/// The speciality is kept as `context.practiceSetting.text`, not folded into the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    Progress,
    HistoryAndPhysical,
}

impl NoteKind {
    pub const ALL: [Self; 2] = [Self::Progress, Self::HistoryAndPhysical];

    pub fn loinc(self) -> Code {
        let (code, display) = match self {
            Self::Progress => ("11506-3", "Progress note"),
            Self::HistoryAndPhysical => ("34117-2", "History and physical note"),
        };
        Code {
            system: systems::LOINC,
            code,
            display,
        }
    }

    /// The kind of a summary of a visit of `visit_type` (`""` or unknown: Progress note).
    pub fn of_visit(visit_type: &str) -> Self {
        VisitType::from_wire(visit_type).map_or(Self::Progress, VisitType::note_kind)
    }
}

// ---------------------------------------------------------------------------------------------
// Document statuses
// ---------------------------------------------------------------------------------------------

/// `DocumentReference.status` of every summary (Noa keeps one current summary per session).
pub const DOCUMENT_CURRENT: &str = "current";

// ---------------------------------------------------------------------------------------------
// Fixed codes
// ---------------------------------------------------------------------------------------------

/// The session's doctor: v3-ParticipationType `PPRF`.
pub const PRIMARY_PERFORMER: Code = Code {
    system: systems::V3_PARTICIPATION_TYPE,
    code: "PPRF",
    display: "primary performer",
};

/// `Encounter.class` of a scribed visit: v3-ActCode `AMB` (an office visit).
pub const AMBULATORY: Code = Code {
    system: systems::V3_ACT_CODE,
    code: "AMB",
    display: "ambulatory",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_session_status_row() {
        // (wire, Encounter.status, may have a summary, verified, error, recording ended)
        let table = [
            ("New", "planned", false, false, false, false),
            ("Recording", "in-progress", false, false, false, false),
            ("Recorded", "finished", false, false, false, true),
            ("Transcribing", "finished", false, false, false, true),
            ("Transcribed", "finished", false, false, false, true),
            ("Analyzing", "finished", true, false, false, true),
            ("Summarized", "finished", true, false, false, true),
            ("Verified", "finished", true, true, false, true),
            ("EmptySummaryVerified", "finished", true, true, false, true),
            ("Interrupted", "cancelled", false, false, true, true),
            ("Failed", "cancelled", false, false, true, true),
            ("Expired", "cancelled", false, false, true, false),
        ];
        assert_eq!(table.len(), SessionStatus::ALL.len());
        for (row, (wire, encounter, summary, verified, error, ended)) in table.into_iter().enumerate() {
            let s = SessionStatus::from_wire(wire).unwrap();
            assert_eq!(s, SessionStatus::ALL[row]);
            assert_eq!(s.wire(), wire);
            assert_eq!(s.encounter().code(), encounter, "{wire}");
            assert_eq!(s.may_have_summary(), summary, "{wire}");
            assert_eq!(s.is_verified(), verified, "{wire}");
            assert_eq!(s.is_error(), error, "{wire}");
            assert_eq!(s.recording_ended(), ended, "{wire}");
            let approved = if verified { "final" } else { "preliminary" };
            assert_eq!(s.doc_status(true).code(), approved, "{wire}");
            assert_eq!(s.doc_status(false).code(), "preliminary", "{wire}");
        }
        assert_eq!(
            SessionStatus::from_wire(" emptysummaryverified "),
            Some(SessionStatus::EmptySummaryVerified)
        );
        assert_eq!(SessionStatus::from_wire("Done"), None);
        assert_eq!(SessionStatus::from_wire(""), None);
    }

    #[test]
    fn encounter_statuses_invert_the_table() {
        use SessionStatus::*;
        assert_eq!(SessionStatus::with_encounter(FhirEncounterStatus::Planned), [New]);
        assert_eq!(
            SessionStatus::with_encounter(FhirEncounterStatus::InProgress),
            [Recording]
        );
        assert_eq!(
            SessionStatus::with_encounter(FhirEncounterStatus::Finished),
            [
                Recorded,
                Transcribing,
                Transcribed,
                Analyzing,
                Summarized,
                Verified,
                EmptySummaryVerified
            ]
        );
        assert_eq!(
            SessionStatus::with_encounter(FhirEncounterStatus::Cancelled),
            [Interrupted, Failed, Expired]
        );
        for unused in [
            FhirEncounterStatus::Arrived,
            FhirEncounterStatus::Triaged,
            FhirEncounterStatus::Onleave,
            FhirEncounterStatus::EnteredInError,
            FhirEncounterStatus::Unknown,
        ] {
            assert!(SessionStatus::with_encounter(unused).is_empty(), "{unused:?}");
        }
    }

    #[test]
    fn every_visit_type_and_note_kind_row() {
        let table = [
            ("FirstVisit", "First visit", "34117-2", "History and physical note"),
            ("FollowUpVisit", "Follow-up visit", "11506-3", "Progress note"),
        ];
        assert_eq!(table.len(), VisitType::ALL.len());
        for (wire, display, loinc, loinc_display) in table {
            let v = VisitType::from_wire(wire).unwrap();
            let c = v.code();
            assert_eq!((c.system, c.code, c.display), (VISIT_TYPE_SYSTEM, wire, display));
            let k = NoteKind::of_visit(wire).loinc();
            assert_eq!(
                (k.system, k.code, k.display),
                ("http://loinc.org", loinc, loinc_display)
            );
        }
        assert_eq!(NoteKind::of_visit(""), NoteKind::Progress);
        assert_eq!(NoteKind::of_visit("Consultation"), NoteKind::Progress);
        assert_eq!(NoteKind::ALL.len(), 2);
    }
}
