//! FHIR code tables every adapter maps into (the vendor side of each table stays in its adapter).

use crate::fhir::types::Coding;

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
