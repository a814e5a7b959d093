//! Zoom objects in the JSON shape of the vendor docs (`zoom-clinical-notes-api.md`,
//! `zoom-healthcare-api.md`).
//!
//! Clinical notes carry exactly the keys the clinical notes doc lists; absent optional values
//! (`note_completed_time` of a draft, `ehr_context` of a note made outside an EHR workflow) are
//! left out rather than sent as `null`. Timestamps are UTC with a `Z`: notes with milliseconds
//! (`2025-05-15T03:01:08.608Z`, as the doc's example), healthcare objects to the second
//! (`2024-02-01T14:00:00Z`).
//!
//! The Healthcare doc shows only a few keys of each object; the others here (marked "not in the
//! doc") are the simulator's choices and are named in the module docs of [`super`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Zoom's error body: `{"code": 30009, "message": "Clinical note does not exist."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoomError {
    pub code: i64,
    pub message: String,
}

/// `ehr_context` of a clinical note: the EHR's appointment id and FHIR-style references to the
/// EHR patient and provider (`"Patient/75909597"`, `"Practitioner/34373111"`), as in the doc's
/// example. Healthcare objects reuse the shape (not in the doc) to say which EHR object they
/// mirror; keys without a value are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EhrContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
}

/// A clinical note (`GET /clinical_notes/notes/{noteId}` and the items of the list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicalNote {
    /// Meeting instance UUID (base64: may contain `/`, `+` and `=`).
    pub meeting_id: String,
    pub meeting_number: i64,
    pub note_id: String,
    /// Zoom user id of the note's owner.
    pub note_owner_user_id: String,
    pub note_start_time: String,
    pub note_end_time: String,
    pub note_created_time: String,
    pub note_last_modified_time: String,
    pub note_last_modified_user_id: String,
    pub note_title: String,
    /// Markdown.
    pub note_content: String,
    pub is_note_completed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note_completed_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ehr_context: Option<EhrContext>,
}

/// `GET /clinical_notes/notes`. `from`/`to` are echoed when the request gave them.
/// `next_page_token` is `""` on the last page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicalNoteList {
    pub page_size: u32,
    pub next_page_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub clinical_notes: Vec<ClinicalNote>,
}

/// Visit statuses of the doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitStatus {
    Scheduled,
    Waiting,
    InProgress,
    Completed,
    Cancelled,
    NoShow,
}

impl VisitStatus {
    pub const ALL: [VisitStatus; 6] = [
        VisitStatus::Scheduled,
        VisitStatus::Waiting,
        VisitStatus::InProgress,
        VisitStatus::Completed,
        VisitStatus::Cancelled,
        VisitStatus::NoShow,
    ];

    /// The doc's spelling (`in_progress`, `no_show`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            VisitStatus::Scheduled => "scheduled",
            VisitStatus::Waiting => "waiting",
            VisitStatus::InProgress => "in_progress",
            VisitStatus::Completed => "completed",
            VisitStatus::Cancelled => "cancelled",
            VisitStatus::NoShow => "no_show",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Completed, cancelled and no-show visits never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            VisitStatus::Completed | VisitStatus::Cancelled | VisitStatus::NoShow
        )
    }
}

/// Visit types of the doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitType {
    InitialConsultation,
    FollowUp,
    UrgentCare,
    MentalHealth,
    GroupTherapy,
    SpecialistConsult,
}

impl VisitType {
    pub const ALL: [VisitType; 6] = [
        VisitType::InitialConsultation,
        VisitType::FollowUp,
        VisitType::UrgentCare,
        VisitType::MentalHealth,
        VisitType::GroupTherapy,
        VisitType::SpecialistConsult,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VisitType::InitialConsultation => "initial_consultation",
            VisitType::FollowUp => "follow_up",
            VisitType::UrgentCare => "urgent_care",
            VisitType::MentalHealth => "mental_health",
            VisitType::GroupTherapy => "group_therapy",
            VisitType::SpecialistConsult => "specialist_consult",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// A visit's `settings` as the doc's request example has them. Keys the client sent beyond
/// these three are kept in `extra` and served back as sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VisitSettings {
    pub waiting_room: bool,
    pub recording: bool,
    pub require_encryption: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for VisitSettings {
    /// HIPAA-safe: waiting room on, recording off, encryption required.
    fn default() -> Self {
        Self {
            waiting_room: true,
            recording: false,
            require_encryption: true,
            extra: Map::new(),
        }
    }
}

/// The doc's "HIPAA-Compliant Settings" `meeting_settings` (not in the doc's visit example; a
/// visit accepts and serves it, defaulting to the doc's values).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeetingSettings {
    pub waiting_room: bool,
    pub password_required: bool,
    /// `"e2ee"` or `"enhanced_encryption"`.
    pub encryption_type: String,
    pub allow_recording: bool,
    pub authenticated_users_only: bool,
    pub watermark: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for MeetingSettings {
    fn default() -> Self {
        Self {
            waiting_room: true,
            password_required: true,
            encryption_type: "e2ee".into(),
            allow_recording: false,
            authenticated_users_only: true,
            watermark: true,
            extra: Map::new(),
        }
    }
}

/// The doc's "HIPAA-Compliant Settings" `data_retention`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataRetention {
    pub auto_delete_days: i64,
    pub exclude_from_analytics: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for DataRetention {
    fn default() -> Self {
        Self {
            auto_delete_days: 30,
            exclude_from_analytics: true,
            extra: Map::new(),
        }
    }
}

/// A visit's `notifications`, as in the doc's request example.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VisitNotifications {
    pub patient_email: bool,
    pub patient_sms: bool,
    pub reminder_minutes: Vec<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for VisitNotifications {
    fn default() -> Self {
        Self {
            patient_email: true,
            patient_sms: false,
            reminder_minutes: vec![1440, 60],
            extra: Map::new(),
        }
    }
}

/// A virtual visit (`/healthcare/visits`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub id: String,
    pub patient_id: String,
    pub provider_id: String,
    pub scheduled_time: String,
    pub duration_minutes: i64,
    pub status: VisitStatus,
    pub visit_type: VisitType,
    pub reason: String,
    pub join_url_patient: String,
    pub join_url_provider: String,
    /// Not in the doc: the meeting behind the join URLs (the number is the one in the URLs; the
    /// UUID is the one a clinical note of this visit carries as `meeting_id`).
    pub meeting_number: i64,
    pub meeting_id: String,
    pub settings: VisitSettings,
    pub meeting_settings: MeetingSettings,
    pub data_retention: DataRetention,
    pub notifications: VisitNotifications,
    /// Not in the doc: the EHR appointment (and its patient and provider) this visit was
    /// scheduled for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ehr_context: Option<EhrContext>,
    pub created_at: String,
    /// Not in the doc, like the four lifecycle times below.
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_joined_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
}

/// `GET /healthcare/visits`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VisitList {
    pub page_size: u32,
    pub next_page_token: String,
    pub total_records: u64,
    pub visits: Vec<Visit>,
}

/// A healthcare patient (`/healthcare/patients`). The doc names no keys; these are the
/// simulator's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    /// `""` when unknown.
    pub email: String,
    /// E.164 when it could be normalised, else as given; `""` when unknown.
    pub phone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
    /// BCP-47.
    pub language: String,
    /// The EHR patient this one mirrors (`{"patient_id": "Patient/75909597"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ehr_context: Option<EhrContext>,
    pub created_at: String,
    pub updated_at: String,
}

/// A provider (`/healthcare/providers`): a Zoom user of the account. The doc names no keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    pub id: String,
    /// The Zoom user id: what clinical notes carry as `note_owner_user_id`.
    pub user_id: String,
    pub first_name: String,
    pub last_name: String,
    pub display_name: String,
    pub email: String,
    pub timezone: String,
    /// `"active"` or `"inactive"`.
    pub status: String,
    /// Whether the Clinical Notes feature is on for this user (off ⇒ error 30001).
    pub clinical_notes_enabled: bool,
    /// The EHR doctor this provider mirrors (`{"provider_id": "Practitioner/34373111"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ehr_context: Option<EhrContext>,
    pub created_at: String,
}

/// `GET /healthcare/providers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderList {
    pub page_size: u32,
    pub next_page_token: String,
    pub total_records: u64,
    pub providers: Vec<Provider>,
}

/// One weekly opening of a provider: `day` is `monday` … `sunday`, times `HH:MM` in the
/// availability's `timezone`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyHours {
    pub day: String,
    pub start_time: String,
    pub end_time: String,
}

/// A dated exception: a day off (`available: false`) or different hours on that date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateOverride {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub available: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A bookable slot (UTC).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub start_time: String,
    pub end_time: String,
}

/// `GET|PATCH /healthcare/providers/{providerId}/availability`. The doc names no keys.
/// `available_slots` is only computed when the request gives `from` (and optionally `to`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    pub provider_id: String,
    /// IANA zone of `weekly_hours` and `date_overrides`.
    pub timezone: String,
    pub slot_duration_minutes: i64,
    pub accepting_new_patients: bool,
    pub visit_types: Vec<VisitType>,
    pub weekly_hours: Vec<WeeklyHours>,
    pub date_overrides: Vec<DateOverride>,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_slots: Option<Vec<Slot>>,
}

/// An invitation sent by `POST /healthcare/patients/{patientId}/invite`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: String,
    pub patient_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit_id: Option<String>,
    /// `email` and/or `sms`.
    pub channels: Vec<String>,
    pub message: String,
    /// `"sent"`.
    pub status: String,
    /// The visit's patient join URL, when the invitation is for a visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_url: Option<String>,
    pub sent_at: String,
}

/// One patient in `GET /healthcare/waiting_room`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingPatient {
    pub patient_id: String,
    pub visit_id: String,
    pub provider_id: String,
    pub first_name: String,
    pub last_name: String,
    pub scheduled_time: String,
    pub joined_at: String,
    pub waiting_minutes: i64,
}

/// `GET /healthcare/waiting_room`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRoom {
    pub page_size: u32,
    pub next_page_token: String,
    pub total_records: u64,
    pub patients: Vec<WaitingPatient>,
}

/// A message sent by `POST /healthcare/waiting_room/{patientId}/notify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRoomNotification {
    pub id: String,
    pub patient_id: String,
    pub visit_id: String,
    pub message: String,
    pub sent_at: String,
}

/// `POST /oauth/token` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub scope: String,
    #[serde(default)]
    pub api_url: String,
}

/// A webhook request body: `{"event", "event_ts" (ms), "payload": {"account_id", "object"}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    pub event: String,
    pub event_ts: i64,
    pub payload: Value,
}

/// Event names the simulator sends.
pub mod events {
    pub const URL_VALIDATION: &str = "endpoint.url_validation";
    pub const NOTE_CREATED: &str = "clinical_notes.note_created";
    pub const NOTE_UPDATED: &str = "clinical_notes.note_updated";
    pub const NOTE_COMPLETED: &str = "clinical_notes.note_completed";
    pub const VISIT_SCHEDULED: &str = "healthcare.visit.scheduled";
    pub const VISIT_STARTED: &str = "healthcare.visit.started";
    pub const VISIT_ENDED: &str = "healthcare.visit.ended";
    pub const VISIT_CANCELLED: &str = "healthcare.visit.cancelled";
    pub const PATIENT_WAITING: &str = "healthcare.patient.waiting";
    pub const PATIENT_ADMITTED: &str = "healthcare.patient.admitted";
}
