//! Code tables: Zoom values ↔ FHIR codes, one enum per table, every row tested below.
//!
//! Vendor values are matched after trimming, ignoring ASCII case and treating `-` and spaces like
//! `_` (`In Progress`, `in-progress` and `in_progress` are one status). Each table documents what
//! an unknown vendor value does.

use adapter::systems;

pub use adapter::codes::{
    ATTENDER, CLINICAL_NOTE_CATEGORY, Code, FhirAppointmentStatus, FhirDocStatus, FhirEncounterStatus,
};

/// The normal form vendor codes are compared in: trimmed, lowercase, `-` and spaces as `_`.
fn normal(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The code system of Zoom's own visit types (`appointmentType` codings that v2-0276 lacks).
pub const ZOOM_VISIT_TYPE: &str = "urn:fhir-gateway:code:zoom:visit-type";
/// HL7 v2 table 0276, appointment reason codes.
pub const V2_0276: &str = "http://terminology.hl7.org/CodeSystem/v2-0276";
/// The R5 `VirtualServiceType` code system.
pub const VIRTUAL_SERVICE_TYPE: &str = "http://hl7.org/fhir/virtual-service-type";

// ---------------------------------------------------------------------------------------------
// Visit status
// ---------------------------------------------------------------------------------------------

/// Zoom visit `status` (the doc's "Visit Status" table). An unknown status is refused by the
/// mapping: `Appointment.status` is a modifier, and guessing whether a visit happened would be
/// worse than an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitStatus {
    /// Appointment scheduled.
    Scheduled,
    /// Patient in the waiting room.
    Waiting,
    /// Visit ongoing.
    InProgress,
    /// Visit finished.
    Completed,
    /// Visit cancelled.
    Cancelled,
    /// Patient didn't attend.
    NoShow,
}

impl VisitStatus {
    pub const ALL: [Self; 6] = [
        Self::Scheduled,
        Self::Waiting,
        Self::InProgress,
        Self::Completed,
        Self::Cancelled,
        Self::NoShow,
    ];

    /// The doc's spelling.
    pub fn wire(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Waiting => "waiting",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::NoShow => "no_show",
        }
    }

    pub fn from_wire(s: &str) -> Option<Self> {
        let s = normal(s);
        Self::ALL.into_iter().find(|v| v.wire() == s)
    }

    /// The Appointment status, with the meanings FHIR gives them: a patient in the waiting room
    /// has `arrived` ("arrived and is waiting to be seen"); a visit in progress is `checked-in`
    /// (past check-in, the encounter under way — as DrChrono's "In Session" maps); `fulfilled`
    /// only once the visit is completed.
    pub fn appointment(self) -> FhirAppointmentStatus {
        match self {
            Self::Scheduled => FhirAppointmentStatus::Booked,
            Self::Waiting => FhirAppointmentStatus::Arrived,
            Self::InProgress => FhirAppointmentStatus::CheckedIn,
            Self::Completed => FhirAppointmentStatus::Fulfilled,
            Self::Cancelled => FhirAppointmentStatus::Cancelled,
            Self::NoShow => FhirAppointmentStatus::Noshow,
        }
    }

    /// The Encounter status of a visit, given whether it ever started (the patient joined or the
    /// meeting began). `None`: the visit has no Encounter (it never started).
    pub fn encounter(self, started: bool) -> Option<FhirEncounterStatus> {
        match self {
            Self::Scheduled => None,
            Self::Waiting => Some(FhirEncounterStatus::Arrived),
            Self::InProgress => Some(FhirEncounterStatus::InProgress),
            Self::Completed => Some(FhirEncounterStatus::Finished),
            Self::Cancelled | Self::NoShow => started.then_some(FhirEncounterStatus::Cancelled),
        }
    }

    /// Completed, cancelled and no-show visits never change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::NoShow)
    }
}

// ---------------------------------------------------------------------------------------------
// Visit type
// ---------------------------------------------------------------------------------------------

/// Zoom `visit_type` (the doc's "Visit Types" table) → `Appointment.appointmentType`. Every type
/// carries its Zoom coding (system [`ZOOM_VISIT_TYPE`], so a write maps back exactly); where an
/// HL7 v2-0276 code means the same, that coding comes too. A type this table does not know is
/// kept as `appointmentType.text` (the element is not a modifier, so it is not an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitType {
    /// First visit with provider.
    InitialConsultation,
    /// Follow-up appointment.
    FollowUp,
    /// Urgent/same-day visit.
    UrgentCare,
    /// Behavioral health session.
    MentalHealth,
    /// Group session.
    GroupTherapy,
    /// Specialist referral.
    SpecialistConsult,
}

impl VisitType {
    pub const ALL: [Self; 6] = [
        Self::InitialConsultation,
        Self::FollowUp,
        Self::UrgentCare,
        Self::MentalHealth,
        Self::GroupTherapy,
        Self::SpecialistConsult,
    ];

    /// The doc's spelling.
    pub fn wire(self) -> &'static str {
        match self {
            Self::InitialConsultation => "initial_consultation",
            Self::FollowUp => "follow_up",
            Self::UrgentCare => "urgent_care",
            Self::MentalHealth => "mental_health",
            Self::GroupTherapy => "group_therapy",
            Self::SpecialistConsult => "specialist_consult",
        }
    }

    pub fn from_wire(s: &str) -> Option<Self> {
        let s = normal(s);
        Self::ALL.into_iter().find(|v| v.wire() == s)
    }

    /// The Zoom coding (the code is the doc's spelling, the display its description).
    pub fn zoom(self) -> Code {
        let display = match self {
            Self::InitialConsultation => "First visit with provider",
            Self::FollowUp => "Follow-up appointment",
            Self::UrgentCare => "Urgent/same-day visit",
            Self::MentalHealth => "Behavioral health session",
            Self::GroupTherapy => "Group session",
            Self::SpecialistConsult => "Specialist referral",
        };
        Code {
            system: ZOOM_VISIT_TYPE,
            code: self.wire(),
            display,
        }
    }

    /// The v2-0276 code with the same meaning, where there is one: a follow-up is `FOLLOWUP`;
    /// an urgent same-day visit is booked without prior scheduling, a `WALKIN`. (v2's
    /// `EMERGENCY` is not urgent care; `ROUTINE` and `CHECKUP` say nothing a first visit, a
    /// behavioral health or group session or a specialist referral is.)
    pub fn v2(self) -> Option<Code> {
        let (code, display) = match self {
            Self::FollowUp => ("FOLLOWUP", "A follow up visit from a previous appointment"),
            Self::UrgentCare => ("WALKIN", "A previously unscheduled walk-in visit"),
            _ => return None,
        };
        Some(Code {
            system: V2_0276,
            code,
            display,
        })
    }

    /// The codings of `appointmentType`: Zoom's, then v2-0276's when there is one.
    pub fn codings(self) -> Vec<adapter::fhir::types::Coding> {
        std::iter::once(self.zoom())
            .chain(self.v2())
            .map(|c| c.coding())
            .collect()
    }

    /// Reads a coding back (for writes): the Zoom code system, or a v2-0276 code this table
    /// emits.
    pub fn from_coding(system: &str, code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| {
            (system == ZOOM_VISIT_TYPE && t.wire() == code)
                || t.v2().is_some_and(|c| c.system == system && c.code == code)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Note type (LOINC)
// ---------------------------------------------------------------------------------------------

/// The LOINC document type of a clinical note: the five US Core clinical-note types. A Zoom
/// note is a Progress note unless it says otherwise: its `note_type`/template (not in the doc,
/// read if sent) names a kind by keyword, or its title names a document kind by a full phrase
/// ("Discharge summary", "Consult note", "H&P", ...). A meeting title that merely mentions a
/// consult ("Specialist consult – Mar 14") does not make the note a consult note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    Progress,
    Consult,
    DischargeSummary,
    HistoryAndPhysical,
    Procedure,
}

impl NoteKind {
    pub const ALL: [Self; 5] = [
        Self::Progress,
        Self::Consult,
        Self::DischargeSummary,
        Self::HistoryAndPhysical,
        Self::Procedure,
    ];

    pub fn loinc(self) -> Code {
        let (code, display) = match self {
            Self::Progress => ("11506-3", "Progress note"),
            Self::Consult => ("11488-4", "Consult note"),
            Self::DischargeSummary => ("18842-5", "Discharge summary"),
            Self::HistoryAndPhysical => ("34117-2", "History and physical note"),
            Self::Procedure => ("28570-0", "Procedure note"),
        };
        Code {
            system: systems::LOINC,
            code,
            display,
        }
    }

    /// A note type or template name, by keyword (`discharge`, `consult`, `h&p`/`history and
    /// physical`, `procedure`, `progress`/`soap`). `None` when it names none of them.
    pub fn from_note_type(s: &str) -> Option<Self> {
        let s = words(s);
        let has = |w: &str| s.split(' ').any(|x| x == w);
        if has("discharge") {
            Some(Self::DischargeSummary)
        } else if has("consult") || has("consultation") {
            Some(Self::Consult)
        } else if has("h&p") || has("hp") || s.contains("history and physical") || s.contains("history & physical") {
            Some(Self::HistoryAndPhysical)
        } else if has("procedure") || has("procedural") {
            Some(Self::Procedure)
        } else if has("progress") || has("soap") {
            Some(Self::Progress)
        } else {
            None
        }
    }

    /// A note title that names a document kind by a full phrase.
    pub fn from_title(s: &str) -> Option<Self> {
        let s = format!(" {} ", words(s));
        let phrases: [(&str, Self); 10] = [
            ("discharge summary", Self::DischargeSummary),
            ("discharge note", Self::DischargeSummary),
            ("consult note", Self::Consult),
            ("consultation note", Self::Consult),
            ("h&p", Self::HistoryAndPhysical),
            ("history and physical", Self::HistoryAndPhysical),
            ("history & physical", Self::HistoryAndPhysical),
            ("procedure note", Self::Procedure),
            ("operative note", Self::Procedure),
            ("progress note", Self::Progress),
        ];
        phrases
            .into_iter()
            .find(|(p, _)| s.contains(&format!(" {p} ")))
            .map(|(_, kind)| kind)
    }

    /// The kind of a note: its type field, else its title, else Progress note.
    pub fn of_note(note_type: &str, title: &str) -> Self {
        Self::from_note_type(note_type)
            .or_else(|| Self::from_title(title))
            .unwrap_or(Self::Progress)
    }
}

/// Lowercase words separated by single spaces; `_`, `-`, `/`, `:` and punctuation other than `&`
/// separate words.
fn words(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '&' {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// Document statuses
// ---------------------------------------------------------------------------------------------

/// A note's `docStatus` from `is_note_completed`: a completed note is final, a draft preliminary.
pub fn note_doc_status(completed: bool) -> FhirDocStatus {
    if completed {
        FhirDocStatus::Final
    } else {
        FhirDocStatus::Preliminary
    }
}

/// `DocumentReference.status` of every Zoom note (Zoom keeps one version of a note and has no
/// deletion the API shows).
pub const DOCUMENT_CURRENT: &str = "current";

// ---------------------------------------------------------------------------------------------
// Gender
// ---------------------------------------------------------------------------------------------

/// A Zoom patient's `gender` (not in the doc; read if sent). US Core requires
/// `Patient.gender`, so blank **and any unrecognised value** map to `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

impl Gender {
    pub const ALL: [Self; 4] = [Self::Male, Self::Female, Self::Other, Self::Unknown];

    pub fn from_wire(s: &str) -> Self {
        match normal(s).as_str() {
            "male" | "m" => Self::Male,
            "female" | "f" => Self::Female,
            "other" | "non_binary" | "nonbinary" => Self::Other,
            _ => Self::Unknown,
        }
    }

    /// FHIR `AdministrativeGender`.
    pub fn fhir(self) -> &'static str {
        match self {
            Self::Male => "male",
            Self::Female => "female",
            Self::Other => "other",
            Self::Unknown => "unknown",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Provider status
// ---------------------------------------------------------------------------------------------

/// A provider's `status` → `Practitioner.active` and `Schedule.active`. Blank or unknown leaves
/// `active` out (it is not a modifier on Practitioner; on Schedule absence means active).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderStatus {
    Active,
    Inactive,
}

impl ProviderStatus {
    pub const ALL: [Self; 2] = [Self::Active, Self::Inactive];

    pub fn from_wire(s: &str) -> Option<Self> {
        match normal(s).as_str() {
            "active" => Some(Self::Active),
            "inactive" | "deactivated" | "disabled" | "suspended" => Some(Self::Inactive),
            _ => None,
        }
    }

    pub fn active(self) -> bool {
        self == Self::Active
    }
}

// ---------------------------------------------------------------------------------------------
// Slot status
// ---------------------------------------------------------------------------------------------

/// `Slot.status` (required binding `slotstatus`) of an availability slot: its own `status` or
/// `available` flag when it has one, else its list (`available_slots` free, `booked_slots`
/// busy). A `status` this table does not know is an error: a slot shown free that is not would
/// be double-booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotStatus {
    Free,
    Busy,
    BusyUnavailable,
    BusyTentative,
}

impl SlotStatus {
    pub const ALL: [Self; 4] = [Self::Free, Self::Busy, Self::BusyUnavailable, Self::BusyTentative];

    pub fn code(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Busy => "busy",
            Self::BusyUnavailable => "busy-unavailable",
            Self::BusyTentative => "busy-tentative",
        }
    }

    /// A slot's own (non-blank) `status` text; `None` when this table does not know it.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match normal(s).as_str() {
            "free" | "available" | "open" => Self::Free,
            "busy" | "booked" | "taken" | "reserved" | "scheduled" => Self::Busy,
            "unavailable" | "blocked" | "busy_unavailable" => Self::BusyUnavailable,
            "tentative" | "held" | "on_hold" | "busy_tentative" => Self::BusyTentative,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Weekdays
// ---------------------------------------------------------------------------------------------

/// A `weekly_hours` `day` (`monday` … `sunday`, or `mon` … `sun`), for the Schedule's comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Self; 7] = [
        Self::Mon,
        Self::Tue,
        Self::Wed,
        Self::Thu,
        Self::Fri,
        Self::Sat,
        Self::Sun,
    ];

    pub fn from_wire(s: &str) -> Option<Self> {
        let s = normal(s);
        Self::ALL
            .into_iter()
            .find(|d| s == d.name().to_ascii_lowercase() || s == d.abbreviation().to_ascii_lowercase())
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Mon => "Monday",
            Self::Tue => "Tuesday",
            Self::Wed => "Wednesday",
            Self::Thu => "Thursday",
            Self::Fri => "Friday",
            Self::Sat => "Saturday",
            Self::Sun => "Sunday",
        }
    }

    pub fn abbreviation(self) -> &'static str {
        &self.name()[..3]
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed codes
// ---------------------------------------------------------------------------------------------

/// `Encounter.class` of a Zoom visit: v3-ActCode `VR`.
pub const VIRTUAL: Code = Code {
    system: systems::V3_ACT_CODE,
    code: "VR",
    display: "virtual",
};

/// `virtualService.channelType` of a Zoom visit.
pub const ZOOM_CHANNEL: Code = Code {
    system: VIRTUAL_SERVICE_TYPE,
    code: "zoom",
    display: "Zoom web conferencing",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visit_status_row() {
        let table = [
            ("scheduled", "booked", None, None),
            ("waiting", "arrived", Some("arrived"), Some("arrived")),
            ("in_progress", "checked-in", Some("in-progress"), Some("in-progress")),
            ("completed", "fulfilled", Some("finished"), Some("finished")),
            ("cancelled", "cancelled", None, Some("cancelled")),
            ("no_show", "noshow", None, Some("cancelled")),
        ];
        assert_eq!(table.len(), VisitStatus::ALL.len());
        for (wire, appointment, not_started, started) in table {
            let s = VisitStatus::from_wire(wire).unwrap();
            assert_eq!(s.wire(), wire);
            assert_eq!(s.appointment().code(), appointment, "{wire}");
            assert_eq!(s.encounter(false).map(FhirEncounterStatus::code), not_started, "{wire}");
            assert_eq!(s.encounter(true).map(FhirEncounterStatus::code), started, "{wire}");
        }
        assert_eq!(VisitStatus::from_wire(" In Progress "), Some(VisitStatus::InProgress));
        assert_eq!(VisitStatus::from_wire("no-show"), Some(VisitStatus::NoShow));
        assert_eq!(VisitStatus::from_wire("postponed"), None);
        assert_eq!(VisitStatus::from_wire(""), None);
        let finals: Vec<_> = VisitStatus::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(
            finals,
            [VisitStatus::Completed, VisitStatus::Cancelled, VisitStatus::NoShow]
        );
    }

    #[test]
    fn every_visit_type_row() {
        type Row = (&'static str, &'static str, Option<(&'static str, &'static str)>);
        let v2 = "http://terminology.hl7.org/CodeSystem/v2-0276";
        let table: [Row; 6] = [
            ("initial_consultation", "First visit with provider", None),
            ("follow_up", "Follow-up appointment", Some((v2, "FOLLOWUP"))),
            ("urgent_care", "Urgent/same-day visit", Some((v2, "WALKIN"))),
            ("mental_health", "Behavioral health session", None),
            ("group_therapy", "Group session", None),
            ("specialist_consult", "Specialist referral", None),
        ];
        assert_eq!(table.len(), VisitType::ALL.len());
        for (wire, display, v2code) in table {
            let t = VisitType::from_wire(wire).unwrap();
            assert_eq!(t.wire(), wire);
            let zoom = t.zoom();
            assert_eq!((zoom.system, zoom.code, zoom.display), (ZOOM_VISIT_TYPE, wire, display));
            assert_eq!(t.v2().map(|c| (c.system, c.code)), v2code, "{wire}");
            assert_eq!(t.codings().len(), 1 + usize::from(v2code.is_some()));
            assert_eq!(VisitType::from_coding(ZOOM_VISIT_TYPE, wire), Some(t));
            if let Some((system, code)) = v2code {
                assert_eq!(VisitType::from_coding(system, code), Some(t));
            }
        }
        assert_eq!(VisitType::from_wire("Follow-Up"), Some(VisitType::FollowUp));
        assert_eq!(VisitType::from_wire("annual_physical"), None);
        assert_eq!(VisitType::from_coding(v2, "ROUTINE"), None);
        assert_eq!(VisitType::from_coding(v2, "follow_up"), None);
    }

    #[test]
    fn every_note_kind_row() {
        let table = [
            (NoteKind::Progress, "11506-3", "Progress note"),
            (NoteKind::Consult, "11488-4", "Consult note"),
            (NoteKind::DischargeSummary, "18842-5", "Discharge summary"),
            (NoteKind::HistoryAndPhysical, "34117-2", "History and physical note"),
            (NoteKind::Procedure, "28570-0", "Procedure note"),
        ];
        assert_eq!(table.len(), NoteKind::ALL.len());
        for (kind, code, display) in table {
            let c = kind.loinc();
            assert_eq!((c.system, c.code, c.display), ("http://loinc.org", code, display));
        }
    }

    #[test]
    fn note_types_name_kinds_by_keyword() {
        let table = [
            ("discharge_summary", Some(NoteKind::DischargeSummary)),
            ("Discharge", Some(NoteKind::DischargeSummary)),
            ("consult", Some(NoteKind::Consult)),
            ("Consultation Note", Some(NoteKind::Consult)),
            ("H&P", Some(NoteKind::HistoryAndPhysical)),
            ("history_and_physical", Some(NoteKind::HistoryAndPhysical)),
            ("History & Physical", Some(NoteKind::HistoryAndPhysical)),
            ("procedure", Some(NoteKind::Procedure)),
            ("progress_note", Some(NoteKind::Progress)),
            ("SOAP", Some(NoteKind::Progress)),
            ("", None),
            ("custom template 7", None),
            ("consultant-free", None),
        ];
        for (note_type, kind) in table {
            assert_eq!(NoteKind::from_note_type(note_type), kind, "{note_type:?}");
        }
    }

    #[test]
    fn titles_name_kinds_only_by_full_phrases() {
        let table = [
            ("Discharge summary – Jane", Some(NoteKind::DischargeSummary)),
            ("Discharge note", Some(NoteKind::DischargeSummary)),
            ("Cardiology consult note", Some(NoteKind::Consult)),
            ("Consultation Note (tele)", Some(NoteKind::Consult)),
            ("New patient H&P", Some(NoteKind::HistoryAndPhysical)),
            ("History and physical", Some(NoteKind::HistoryAndPhysical)),
            ("history & physical", Some(NoteKind::HistoryAndPhysical)),
            ("Procedure note: mole removal", Some(NoteKind::Procedure)),
            ("Operative note", Some(NoteKind::Procedure)),
            ("Progress note", Some(NoteKind::Progress)),
            ("Telehealth – Specialist consult – Mar 14", None),
            ("lingbo test.cn's Zoom Meeting - Version A", None),
            ("Video visit: Hypertension follow-up", None),
            ("Pre-discharge planning call", None),
        ];
        for (title, kind) in table {
            assert_eq!(NoteKind::from_title(title), kind, "{title:?}");
        }
        assert_eq!(NoteKind::of_note("", "Zoom Meeting"), NoteKind::Progress);
        assert_eq!(
            NoteKind::of_note("discharge", "Progress note"),
            NoteKind::DischargeSummary
        );
        assert_eq!(NoteKind::of_note("my template", "H&P"), NoteKind::HistoryAndPhysical);
    }

    #[test]
    fn a_completed_note_is_final_and_a_draft_preliminary() {
        assert_eq!(note_doc_status(true).code(), "final");
        assert_eq!(note_doc_status(false).code(), "preliminary");
    }

    #[test]
    fn every_gender_row() {
        let table = [
            ("male", "male"),
            ("M", "male"),
            ("Female", "female"),
            ("f", "female"),
            ("other", "other"),
            ("non-binary", "other"),
            ("unknown", "unknown"),
            ("", "unknown"),
            ("x", "unknown"),
        ];
        for (wire, fhir) in table {
            assert_eq!(Gender::from_wire(wire).fhir(), fhir, "{wire:?}");
        }
        let all: Vec<_> = Gender::ALL.iter().map(|g| g.fhir()).collect();
        assert_eq!(all, ["male", "female", "other", "unknown"]);
    }

    #[test]
    fn every_provider_status_row() {
        let table = [
            ("active", Some(true)),
            ("Active", Some(true)),
            ("inactive", Some(false)),
            ("deactivated", Some(false)),
            ("disabled", Some(false)),
            ("suspended", Some(false)),
            ("", None),
            ("pending", None),
        ];
        for (wire, active) in table {
            assert_eq!(
                ProviderStatus::from_wire(wire).map(ProviderStatus::active),
                active,
                "{wire:?}"
            );
        }
        assert_eq!(ProviderStatus::ALL.len(), 2);
    }

    #[test]
    fn every_slot_status_row() {
        let table = [
            ("free", SlotStatus::Free),
            ("available", SlotStatus::Free),
            ("open", SlotStatus::Free),
            ("busy", SlotStatus::Busy),
            ("booked", SlotStatus::Busy),
            ("taken", SlotStatus::Busy),
            ("reserved", SlotStatus::Busy),
            ("scheduled", SlotStatus::Busy),
            ("unavailable", SlotStatus::BusyUnavailable),
            ("blocked", SlotStatus::BusyUnavailable),
            ("busy-unavailable", SlotStatus::BusyUnavailable),
            ("tentative", SlotStatus::BusyTentative),
            ("held", SlotStatus::BusyTentative),
            ("on hold", SlotStatus::BusyTentative),
            ("busy-tentative", SlotStatus::BusyTentative),
        ];
        for (wire, status) in table {
            assert_eq!(SlotStatus::from_wire(wire), Some(status), "{wire:?}");
        }
        assert_eq!(SlotStatus::from_wire(" "), None);
        assert_eq!(SlotStatus::from_wire("maybe"), None);
        let codes: Vec<_> = SlotStatus::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, ["free", "busy", "busy-unavailable", "busy-tentative"]);
    }

    #[test]
    fn every_weekday_row() {
        let table = [
            ("monday", Weekday::Mon),
            ("Tuesday", Weekday::Tue),
            ("WED", Weekday::Wed),
            ("thursday", Weekday::Thu),
            ("fri", Weekday::Fri),
            ("saturday", Weekday::Sat),
            ("sun", Weekday::Sun),
        ];
        assert_eq!(table.len(), Weekday::ALL.len());
        for (wire, day) in table {
            assert_eq!(Weekday::from_wire(wire), Some(day), "{wire}");
        }
        assert_eq!(Weekday::from_wire("someday"), None);
        assert_eq!(Weekday::Thu.abbreviation(), "Thu");
    }

    #[test]
    fn fixed_codes() {
        assert_eq!(
            (CLINICAL_NOTE_CATEGORY.system, CLINICAL_NOTE_CATEGORY.code),
            (
                "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                "clinical-note"
            )
        );
        assert_eq!((ATTENDER.code, VIRTUAL.code), ("ATND", "VR"));
        assert_eq!(VIRTUAL.system, "http://terminology.hl7.org/CodeSystem/v3-ActCode");
        assert_eq!(
            (ZOOM_CHANNEL.system, ZOOM_CHANNEL.code),
            ("http://hl7.org/fhir/virtual-service-type", "zoom")
        );
        assert_eq!(DOCUMENT_CURRENT, "current");
    }
}
