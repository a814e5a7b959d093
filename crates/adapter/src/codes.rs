//! FHIR code tables every adapter maps into (the vendor side of each table stays in its adapter).

use crate::fhir::types::Coding;
use crate::systems;

/// A code with its system and display, as written into a `Coding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub system: &'static str,
    pub code: &'static str,
    pub display: &'static str,
}

impl Code {
    pub fn coding(&self) -> Coding {
        Coding {
            system: Some(self.system.into()),
            code: Some(self.code.into()),
            display: Some(self.display.into()),
            ..Default::default()
        }
    }
}

/// FHIR `Appointment.status` (required binding `appointmentstatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FhirAppointmentStatus {
    Proposed,
    Pending,
    Booked,
    Arrived,
    Fulfilled,
    Cancelled,
    Noshow,
    EnteredInError,
    CheckedIn,
    Waitlist,
}

impl FhirAppointmentStatus {
    pub const ALL: [Self; 10] = [
        Self::Proposed,
        Self::Pending,
        Self::Booked,
        Self::Arrived,
        Self::Fulfilled,
        Self::Cancelled,
        Self::Noshow,
        Self::EnteredInError,
        Self::CheckedIn,
        Self::Waitlist,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Pending => "pending",
            Self::Booked => "booked",
            Self::Arrived => "arrived",
            Self::Fulfilled => "fulfilled",
            Self::Cancelled => "cancelled",
            Self::Noshow => "noshow",
            Self::EnteredInError => "entered-in-error",
            Self::CheckedIn => "checked-in",
            Self::Waitlist => "waitlist",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// FHIR `Encounter.status` (required binding `encounter-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FhirEncounterStatus {
    Planned,
    Arrived,
    Triaged,
    InProgress,
    Onleave,
    Finished,
    Cancelled,
    EnteredInError,
    Unknown,
}

impl FhirEncounterStatus {
    pub const ALL: [Self; 9] = [
        Self::Planned,
        Self::Arrived,
        Self::Triaged,
        Self::InProgress,
        Self::Onleave,
        Self::Finished,
        Self::Cancelled,
        Self::EnteredInError,
        Self::Unknown,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Arrived => "arrived",
            Self::Triaged => "triaged",
            Self::InProgress => "in-progress",
            Self::Onleave => "onleave",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
            Self::EnteredInError => "entered-in-error",
            Self::Unknown => "unknown",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// FHIR `DocumentReference.docStatus` (required binding `composition-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FhirDocStatus {
    Preliminary,
    Final,
    Amended,
    EnteredInError,
}

impl FhirDocStatus {
    pub const ALL: [Self; 4] = [Self::Preliminary, Self::Final, Self::Amended, Self::EnteredInError];

    pub fn code(self) -> &'static str {
        match self {
            Self::Preliminary => "preliminary",
            Self::Final => "final",
            Self::Amended => "amended",
            Self::EnteredInError => "entered-in-error",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// US Core DocumentReference category of clinical notes.
pub const CLINICAL_NOTE_CATEGORY: Code = Code {
    system: systems::US_CORE_DOC_CATEGORY,
    code: "clinical-note",
    display: "Clinical Note",
};

/// v3-ParticipationType `ATND`: the practitioner attending a visit.
pub const ATTENDER: Code = Code {
    system: systems::V3_PARTICIPATION_TYPE,
    code: "ATND",
    display: "attender",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_appointment_status_row() {
        let codes: Vec<&str> = FhirAppointmentStatus::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(
            codes,
            [
                "proposed",
                "pending",
                "booked",
                "arrived",
                "fulfilled",
                "cancelled",
                "noshow",
                "entered-in-error",
                "checked-in",
                "waitlist"
            ]
        );
        for s in FhirAppointmentStatus::ALL {
            assert_eq!(FhirAppointmentStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(FhirAppointmentStatus::from_code("no-show"), None);
    }

    #[test]
    fn every_encounter_status_row() {
        let codes: Vec<&str> = FhirEncounterStatus::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(
            codes,
            [
                "planned",
                "arrived",
                "triaged",
                "in-progress",
                "onleave",
                "finished",
                "cancelled",
                "entered-in-error",
                "unknown"
            ]
        );
        for s in FhirEncounterStatus::ALL {
            assert_eq!(FhirEncounterStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(FhirEncounterStatus::from_code("in_progress"), None);
    }

    #[test]
    fn every_doc_status_row() {
        let codes: Vec<&str> = FhirDocStatus::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, ["preliminary", "final", "amended", "entered-in-error"]);
        for s in FhirDocStatus::ALL {
            assert_eq!(FhirDocStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(FhirDocStatus::from_code("draft"), None);
    }

    #[test]
    fn fixed_codes_become_codings() {
        let c = CLINICAL_NOTE_CATEGORY.coding();
        assert_eq!(
            (c.system.unwrap().value, c.code.unwrap().value, c.display.unwrap().value),
            (
                Some(systems::US_CORE_DOC_CATEGORY.to_owned()),
                Some("clinical-note".to_owned()),
                Some("Clinical Note".to_owned())
            )
        );
        assert_eq!(
            (ATTENDER.system, ATTENDER.code),
            (systems::V3_PARTICIPATION_TYPE, "ATND")
        );
    }
}
