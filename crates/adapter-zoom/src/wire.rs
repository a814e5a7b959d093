//! Zoom objects in the vendor's JSON shape: the clinical notes API (`zoom-clinical-notes-api.md`,
//! exact field lists) and the Healthcare API (`zoom-healthcare-api.md`, which shows only a few keys
//! of each object).
//!
//! Every type here is **lenient** on input, because the Healthcare doc is vague and real payloads
//! drift:
//!
//! - every field is optional (`#[serde(default)]` on each struct): a missing key gives the field's
//!   default (`""`, `false`, `None`, an empty list);
//! - text fields take a string, `null` (→ `""`), a number or a boolean (→ its JSON text), or an
//!   array/object (→ its compact JSON text), so nothing Zoom sent is silently dropped. Strings are
//!   kept **byte for byte** (the note's markdown is served exactly as Zoom wrote it);
//! - ids take a string or a number (kept as its decimal text);
//! - integers (`meeting_number`, `duration_minutes`) take a number or a string of digits;
//! - booleans take `true`/`false`, `null` (→ `false` or `None`), `0`/`1` and the strings
//!   `"true"`/`"false"` (any case), `"1"`/`"0"` and `""` (→ `false`);
//! - lists take `null` as empty; keys not listed here are ignored;
//! - where the Healthcare doc and the shape other Zoom APIs use could differ, both spellings are
//!   read (`scheduled_time` or `start_time`, `duration_minutes` or `duration`, ...). Sending both
//!   spellings of one field in one object is an error.
//!
//! Timestamps stay Zoom's strings (`2025-05-15T03:01:08.608Z`); the mapping parses them (see
//! [`crate::map::time`]).
//!
//! Serializing a type writes the field names the Healthcare doc uses (the first spelling above).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// -------------------------------------------------------------------------------------------------
// Clinical notes
// -------------------------------------------------------------------------------------------------

/// `ehr_context`: links a note (and, beyond the docs, a visit, patient or provider) to the EHR.
///
/// The doc's example holds FHIR-style references (`"Patient/75909597"`,
/// `"Practitioner/34373111"`) and a bare appointment id (`"6600001"`); the mapping accepts both
/// forms for each key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EhrContext {
    /// The EHR appointment during which the note was created.
    #[serde(deserialize_with = "de::text")]
    pub appointment_id: String,
    /// The EHR patient.
    #[serde(deserialize_with = "de::text")]
    pub patient_id: String,
    /// The main EHR provider responsible for the patient's care during the visit.
    #[serde(deserialize_with = "de::text")]
    pub provider_id: String,
}

impl EhrContext {
    /// True when no key holds a value.
    pub fn is_empty(&self) -> bool {
        [&self.appointment_id, &self.patient_id, &self.provider_id]
            .iter()
            .all(|s| s.trim().is_empty())
    }
}

/// A clinical note (`GET /clinical_notes/notes/{noteId}` and the items of the list), with every
/// key the doc lists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClinicalNote {
    /// The note's unique identifier.
    #[serde(deserialize_with = "de::text")]
    pub note_id: String,
    /// The meeting instance UUID (base64: may contain `/`, `+` and `=`).
    #[serde(deserialize_with = "de::text")]
    pub meeting_id: String,
    /// The meeting number (int64 in the doc; a string of digits is read too).
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub meeting_number: Option<i64>,
    /// The Zoom user who started the clinical notes session and owns the note.
    #[serde(deserialize_with = "de::text")]
    pub note_owner_user_id: String,
    #[serde(deserialize_with = "de::text")]
    pub note_start_time: String,
    #[serde(deserialize_with = "de::text")]
    pub note_end_time: String,
    #[serde(deserialize_with = "de::text")]
    pub note_created_time: String,
    #[serde(deserialize_with = "de::text")]
    pub note_last_modified_time: String,
    #[serde(deserialize_with = "de::text")]
    pub note_last_modified_user_id: String,
    #[serde(deserialize_with = "de::text")]
    pub note_title: String,
    /// The note in markdown, exactly as Zoom wrote it.
    #[serde(deserialize_with = "de::text")]
    pub note_content: String,
    #[serde(deserialize_with = "de::flag")]
    pub is_note_completed: bool,
    #[serde(deserialize_with = "de::text")]
    pub note_completed_time: String,
    #[serde(deserialize_with = "de::opt_object", skip_serializing_if = "Option::is_none")]
    pub ehr_context: Option<EhrContext>,
    /// Not in the doc: the note's type or template name, read if a deployment sends it (also
    /// under `note_template` or `template_name`). It picks the LOINC document type.
    #[serde(
        alias = "note_template",
        alias = "template_name",
        deserialize_with = "de::text",
        skip_serializing_if = "String::is_empty"
    )]
    pub note_type: String,
}

/// `GET /clinical_notes/notes`. The doc names the list `clinical_notes` (`notes` is read too).
/// `next_page_token` is empty on the last page; it expires after 15 minutes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NoteList {
    #[serde(rename = "clinical_notes", alias = "notes", deserialize_with = "de::list")]
    pub notes: Vec<ClinicalNote>,
    #[serde(deserialize_with = "de::text")]
    pub next_page_token: String,
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
    /// Not in the doc.
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub total_records: Option<i64>,
    /// The creation date range asked for, echoed (`yyyy-MM-dd'T'HH:mm:ss'Z'`).
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub to: String,
}

/// `PATCH /clinical_notes/notes/{noteId}` body. `None` means there is nothing to send.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotePatch {
    #[serde(deserialize_with = "de::opt_flag", skip_serializing_if = "Option::is_none")]
    pub is_note_completed: Option<bool>,
}

impl NotePatch {
    /// True when the patch changes nothing (no vendor call is needed).
    pub fn is_empty(&self) -> bool {
        self.is_note_completed.is_none()
    }
}

// -------------------------------------------------------------------------------------------------
// Virtual visits
// -------------------------------------------------------------------------------------------------

/// A visit's `settings` (the doc's request example). Other keys are kept in `extra`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VisitSettings {
    #[serde(deserialize_with = "de::opt_flag", skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<bool>,
    #[serde(deserialize_with = "de::opt_flag", skip_serializing_if = "Option::is_none")]
    pub recording: Option<bool>,
    #[serde(deserialize_with = "de::opt_flag", skip_serializing_if = "Option::is_none")]
    pub require_encryption: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl VisitSettings {
    /// HIPAA-safe: waiting room on, recording off, encryption required (the doc's "Best
    /// Practices").
    pub fn hipaa() -> Self {
        Self {
            waiting_room: Some(true),
            recording: Some(false),
            require_encryption: Some(true),
            extra: Map::new(),
        }
    }
}

/// The doc's "HIPAA-Compliant Settings" `meeting_settings`. Other keys are kept in `extra`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MeetingSettings {
    #[serde(deserialize_with = "de::opt_flag", skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<bool>,
    #[serde(deserialize_with = "de::opt_flag", skip_serializing_if = "Option::is_none")]
    pub password_required: Option<bool>,
    /// `e2ee` in the doc.
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub encryption_type: String,
    #[serde(deserialize_with = "de::opt_flag", skip_serializing_if = "Option::is_none")]
    pub allow_recording: Option<bool>,
    #[serde(deserialize_with = "de::opt_flag", skip_serializing_if = "Option::is_none")]
    pub authenticated_users_only: Option<bool>,
    #[serde(deserialize_with = "de::opt_flag", skip_serializing_if = "Option::is_none")]
    pub watermark: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MeetingSettings {
    /// Exactly the doc's "Required settings for HIPAA compliance".
    pub fn hipaa() -> Self {
        Self {
            waiting_room: Some(true),
            password_required: Some(true),
            encryption_type: "e2ee".into(),
            allow_recording: Some(false),
            authenticated_users_only: Some(true),
            watermark: Some(true),
            extra: Map::new(),
        }
    }
}

/// A virtual visit (`/healthcare/visits`).
///
/// The doc's response example has `id`, `patient_id`, `provider_id`, `scheduled_time`,
/// `duration_minutes`, `status`, `join_url_patient`, `join_url_provider` and `created_at`, its
/// request example `visit_type`, `reason`, `settings` and `notifications`. The rest is read when
/// sent: the meeting behind the join URLs, the HIPAA `meeting_settings`, an `ehr_context` naming
/// the EHR appointment (patient, provider) the visit was scheduled for, `updated_at` and the
/// lifecycle times.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Visit {
    #[serde(deserialize_with = "de::text")]
    pub id: String,
    /// One of the doc's "Visit Status" values (`scheduled`, `waiting`, `in_progress`,
    /// `completed`, `cancelled`, `no_show`).
    #[serde(deserialize_with = "de::text")]
    pub status: String,
    /// One of the doc's "Visit Types" (`initial_consultation`, `follow_up`, ...).
    #[serde(deserialize_with = "de::text")]
    pub visit_type: String,
    #[serde(deserialize_with = "de::text")]
    pub reason: String,
    /// The planned start (`2024-02-01T14:00:00Z`); `start_time` is read too.
    #[serde(alias = "start_time", deserialize_with = "de::text")]
    pub scheduled_time: String,
    /// Planned length in minutes; `duration` is read too.
    #[serde(
        alias = "duration",
        deserialize_with = "de::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration_minutes: Option<i64>,
    #[serde(deserialize_with = "de::text")]
    pub provider_id: String,
    #[serde(deserialize_with = "de::text")]
    pub patient_id: String,
    /// The patient's join URL.
    #[serde(deserialize_with = "de::text")]
    pub join_url_patient: String,
    /// The provider's (host's) join URL: never shown to a patient.
    #[serde(deserialize_with = "de::text")]
    pub join_url_provider: String,
    /// Not in the doc: the meeting number behind the join URLs.
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub meeting_number: Option<i64>,
    /// Not in the doc: the meeting UUID (what a clinical note of this visit carries as
    /// `meeting_id`).
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub meeting_id: String,
    #[serde(deserialize_with = "de::opt_object", skip_serializing_if = "Option::is_none")]
    pub settings: Option<VisitSettings>,
    #[serde(deserialize_with = "de::opt_object", skip_serializing_if = "Option::is_none")]
    pub meeting_settings: Option<MeetingSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_retention: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Value>,
    /// Not in the doc: the EHR appointment, patient and provider the visit was scheduled for.
    #[serde(deserialize_with = "de::opt_object", skip_serializing_if = "Option::is_none")]
    pub ehr_context: Option<EhrContext>,
    #[serde(deserialize_with = "de::text")]
    pub created_at: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub updated_at: String,
    /// Not in the doc: when the patient entered the waiting room.
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub patient_joined_at: String,
    /// Not in the doc: when the visit (meeting) actually started.
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub started_at: String,
    /// Not in the doc: when the visit actually ended.
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub ended_at: String,
    /// Not in the doc: when the visit was cancelled.
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub cancelled_at: String,
}

/// `GET /healthcare/visits`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VisitList {
    #[serde(deserialize_with = "de::list")]
    pub visits: Vec<Visit>,
    #[serde(deserialize_with = "de::text")]
    pub next_page_token: String,
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub total_records: Option<i64>,
}

/// `POST /healthcare/visits` body (the doc's request example).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateVisit {
    #[serde(deserialize_with = "de::text")]
    pub patient_id: String,
    #[serde(deserialize_with = "de::text")]
    pub provider_id: String,
    /// UTC, `2024-02-01T14:00:00Z`.
    #[serde(deserialize_with = "de::text")]
    pub scheduled_time: String,
    #[serde(deserialize_with = "de::int")]
    pub duration_minutes: i64,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub visit_type: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub settings: VisitSettings,
    #[serde(deserialize_with = "de::opt_object", skip_serializing_if = "Option::is_none")]
    pub meeting_settings: Option<MeetingSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Value>,
    /// Not in the doc: the EHR appointment (patient, provider) the visit is for.
    #[serde(deserialize_with = "de::opt_object", skip_serializing_if = "Option::is_none")]
    pub ehr_context: Option<EhrContext>,
}

/// `PATCH /healthcare/visits/{visitId}` body: only the fields to change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VisitPatch {
    /// UTC, `2024-02-01T14:00:00Z`.
    #[serde(deserialize_with = "de::opt_text", skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<String>,
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<i64>,
    /// `Some("")` clears the reason.
    #[serde(deserialize_with = "de::opt_text", skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl VisitPatch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.scheduled_time.is_none() && self.duration_minutes.is_none() && self.reason.is_none()
    }
}

// -------------------------------------------------------------------------------------------------
// Patients, invitations
// -------------------------------------------------------------------------------------------------

/// A healthcare patient (`/healthcare/patients`). The doc names no keys; these are the usual
/// Zoom spellings, with the alternatives read too.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Patient {
    #[serde(deserialize_with = "de::text")]
    pub id: String,
    #[serde(deserialize_with = "de::text")]
    pub first_name: String,
    #[serde(deserialize_with = "de::text")]
    pub last_name: String,
    /// A full display name, when sent (`name` or `display_name`).
    #[serde(
        alias = "name",
        deserialize_with = "de::text",
        skip_serializing_if = "String::is_empty"
    )]
    pub display_name: String,
    /// `YYYY-MM-DD` (`dob` and `birth_date` are read too).
    #[serde(alias = "dob", alias = "birth_date", deserialize_with = "de::text")]
    pub date_of_birth: String,
    /// Not in the doc: `male`, `female`, `other`, `unknown` (any case, or `M`/`F`).
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub gender: String,
    #[serde(deserialize_with = "de::text")]
    pub email: String,
    /// E.164 when Zoom could normalise it (`phone_number` is read too).
    #[serde(alias = "phone_number", deserialize_with = "de::text")]
    pub phone: String,
    /// BCP-47 (`en-US`).
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub language: String,
    /// The EHR patient this one mirrors (`{"patient_id": "Patient/75909597"}`).
    #[serde(deserialize_with = "de::opt_object", skip_serializing_if = "Option::is_none")]
    pub ehr_context: Option<EhrContext>,
    /// The EHR's id of the patient as a flat key (`external_id`, or `ehr_patient_id`), when sent
    /// instead of `ehr_context`.
    #[serde(
        alias = "ehr_patient_id",
        deserialize_with = "de::text",
        skip_serializing_if = "String::is_empty"
    )]
    pub external_id: String,
    #[serde(deserialize_with = "de::text")]
    pub created_at: String,
    #[serde(deserialize_with = "de::text")]
    pub updated_at: String,
}

/// A list of patients.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PatientList {
    #[serde(deserialize_with = "de::list")]
    pub patients: Vec<Patient>,
    #[serde(deserialize_with = "de::text")]
    pub next_page_token: String,
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub total_records: Option<i64>,
}

/// `POST /healthcare/patients/{patientId}/invite` body (the doc's example).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Invite {
    #[serde(deserialize_with = "de::opt_text", skip_serializing_if = "Option::is_none")]
    pub visit_id: Option<String>,
    /// `email` and/or `sms`.
    #[serde(deserialize_with = "de::text_list")]
    pub channels: Vec<String>,
    #[serde(deserialize_with = "de::opt_text", skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

// -------------------------------------------------------------------------------------------------
// Providers and availability
// -------------------------------------------------------------------------------------------------

/// A provider (`GET /healthcare/providers`): a Zoom user of the account. The doc names no keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Provider {
    #[serde(deserialize_with = "de::text")]
    pub id: String,
    /// The Zoom user id: what clinical notes carry as `note_owner_user_id`.
    #[serde(deserialize_with = "de::text")]
    pub user_id: String,
    #[serde(deserialize_with = "de::text")]
    pub first_name: String,
    #[serde(deserialize_with = "de::text")]
    pub last_name: String,
    #[serde(deserialize_with = "de::text")]
    pub display_name: String,
    #[serde(deserialize_with = "de::text")]
    pub email: String,
    /// National Provider Identifier, when sent (`npi` or `npi_number`).
    #[serde(
        alias = "npi_number",
        deserialize_with = "de::text",
        skip_serializing_if = "String::is_empty"
    )]
    pub npi: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub specialty: String,
    /// IANA time zone.
    #[serde(deserialize_with = "de::text")]
    pub timezone: String,
    /// `active` or `inactive`.
    #[serde(deserialize_with = "de::text")]
    pub status: String,
    #[serde(deserialize_with = "de::opt_flag", skip_serializing_if = "Option::is_none")]
    pub clinical_notes_enabled: Option<bool>,
    /// The EHR doctor this provider mirrors (`{"provider_id": "Practitioner/34373111"}`).
    #[serde(deserialize_with = "de::opt_object", skip_serializing_if = "Option::is_none")]
    pub ehr_context: Option<EhrContext>,
    #[serde(deserialize_with = "de::text")]
    pub created_at: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub updated_at: String,
}

/// `GET /healthcare/providers`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderList {
    #[serde(deserialize_with = "de::list")]
    pub providers: Vec<Provider>,
    #[serde(deserialize_with = "de::text")]
    pub next_page_token: String,
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub total_records: Option<i64>,
}

/// One weekly opening: `day` `monday` … `sunday`, times `HH:MM` in the availability's zone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WeeklyHours {
    #[serde(deserialize_with = "de::text")]
    pub day: String,
    #[serde(deserialize_with = "de::text")]
    pub start_time: String,
    #[serde(deserialize_with = "de::text")]
    pub end_time: String,
}

/// A dated exception to the weekly hours: a day off (`available: false`) or other hours.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DateOverride {
    /// `YYYY-MM-DD`.
    #[serde(deserialize_with = "de::text")]
    pub date: String,
    #[serde(deserialize_with = "de::flag")]
    pub available: bool,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub start_time: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub end_time: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// One slot (block) of time. In `available_slots` a slot is free unless it says otherwise
/// (`status` `booked`/`busy`/`unavailable`, or `available: false`); in `booked_slots` it is busy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AvailabilitySlot {
    #[serde(alias = "start", deserialize_with = "de::text")]
    pub start_time: String,
    #[serde(alias = "end", deserialize_with = "de::text")]
    pub end_time: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(deserialize_with = "de::opt_flag", skip_serializing_if = "Option::is_none")]
    pub available: Option<bool>,
}

/// `GET|PATCH /healthcare/providers/{providerId}/availability`. The doc names no keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Availability {
    #[serde(deserialize_with = "de::text")]
    pub provider_id: String,
    /// IANA zone of `weekly_hours` and `date_overrides`.
    #[serde(deserialize_with = "de::text")]
    pub timezone: String,
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub slot_duration_minutes: Option<i64>,
    #[serde(deserialize_with = "de::opt_flag", skip_serializing_if = "Option::is_none")]
    pub accepting_new_patients: Option<bool>,
    /// Visit types the provider offers (`follow_up`, ...).
    #[serde(deserialize_with = "de::text_list")]
    pub visit_types: Vec<String>,
    #[serde(deserialize_with = "de::list")]
    pub weekly_hours: Vec<WeeklyHours>,
    #[serde(deserialize_with = "de::list")]
    pub date_overrides: Vec<DateOverride>,
    /// Bookable slots (UTC), for the window asked for.
    #[serde(alias = "slots", deserialize_with = "de::list")]
    pub available_slots: Vec<AvailabilitySlot>,
    /// Taken slots, when sent (`booked_slots` or `busy_slots`).
    #[serde(
        alias = "busy_slots",
        deserialize_with = "de::list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub booked_slots: Vec<AvailabilitySlot>,
    /// The window the slots cover, when echoed.
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub to: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub updated_at: String,
}

// -------------------------------------------------------------------------------------------------
// Waiting room
// -------------------------------------------------------------------------------------------------

/// One patient in `GET /healthcare/waiting_room`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WaitingRoomEntry {
    #[serde(deserialize_with = "de::text")]
    pub patient_id: String,
    #[serde(deserialize_with = "de::text")]
    pub visit_id: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub provider_id: String,
    /// When the patient entered the waiting room (`since` and `waiting_since` are read too).
    #[serde(alias = "since", alias = "waiting_since", deserialize_with = "de::text")]
    pub joined_at: String,
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub waiting_minutes: Option<i64>,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub first_name: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub last_name: String,
    #[serde(deserialize_with = "de::text", skip_serializing_if = "String::is_empty")]
    pub scheduled_time: String,
}

/// `GET /healthcare/waiting_room` (`patients`, or `entries`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WaitingRoom {
    #[serde(alias = "entries", deserialize_with = "de::list")]
    pub patients: Vec<WaitingRoomEntry>,
    #[serde(deserialize_with = "de::text")]
    pub next_page_token: String,
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub total_records: Option<i64>,
}

/// Zoom's error body: `{"code": 30009, "message": "Clinical note does not exist."}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZoomError {
    #[serde(deserialize_with = "de::opt_int", skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(deserialize_with = "de::text")]
    pub message: String,
}

/// The lenient field deserializers described in the module docs: [`adapter::lenient`]'s, and the
/// optional text and text lists only Zoom sends.
mod de {
    use adapter::lenient::value_text;
    pub use adapter::lenient::{flag, int, list, opt_flag, opt_int, opt_object, text};
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// Like [`text`], but `null` → `None`.
    pub fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => None,
            v => Some(value_text(v)),
        })
    }

    /// A list of texts; `null` → empty, one scalar → a list of one; blank items dropped.
    pub fn text_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let items = match Value::deserialize(d)? {
            Value::Null => Vec::new(),
            Value::Array(items) => items,
            other => vec![other],
        };
        Ok(items
            .into_iter()
            .map(value_text)
            .filter(|s| !s.trim().is_empty())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The doc's own example of a clinical note.
    fn doc_note() -> Value {
        json!({
            "meeting_id": "I3pHE/RnRbmm+ex2g07sxw==", "meeting_number": 97763643885_i64,
            "note_id": "ArfRXokSTiGTCSYFVtxNa", "note_owner_user_id": "dqV7XEpnS5G3rGsvqylmjQ",
            "note_start_time": "2025-05-15T03:01:08.608Z", "note_end_time": "2025-05-15T03:25:59.608Z",
            "note_created_time": "2025-05-15T03:26:08.608Z",
            "note_last_modified_time": "2025-05-15T03:26:08.608Z",
            "note_last_modified_user_id": "dqV7XEpnS5G3rGsvqylmjQ",
            "note_title": "lingbo test.cn's Zoom Meeting - Version A",
            "note_content": "Chief Complaint\nThe patient presents...\\nHistory",
            "is_note_completed": true, "note_completed_time": "2025-05-15T03:26:48.372Z",
            "ehr_context": {"appointment_id": "6600001", "patient_id": "Patient/75909597",
                            "provider_id": "Practitioner/34373111"}
        })
    }

    #[test]
    fn the_docs_note_reads_completely() {
        let n: ClinicalNote = serde_json::from_value(doc_note()).unwrap();
        assert_eq!(n.meeting_id, "I3pHE/RnRbmm+ex2g07sxw==");
        assert_eq!(n.meeting_number, Some(97763643885));
        assert_eq!(n.note_id, "ArfRXokSTiGTCSYFVtxNa");
        assert!(n.is_note_completed);
        assert_eq!(n.note_content, "Chief Complaint\nThe patient presents...\\nHistory");
        let ctx = n.ehr_context.as_ref().unwrap();
        assert_eq!(
            (
                ctx.appointment_id.as_str(),
                ctx.patient_id.as_str(),
                ctx.provider_id.as_str()
            ),
            ("6600001", "Patient/75909597", "Practitioner/34373111")
        );
        assert_eq!(n.note_type, "");
    }

    #[test]
    fn the_docs_note_list_reads_under_either_name() {
        for key in ["clinical_notes", "notes"] {
            let list: NoteList = serde_json::from_value(json!({
                "page_size": 30, "next_page_token": "ff9d4fb9", "from": "2025-01-01T00:00:00Z",
                "to": "2025-01-01T23:59:59Z", key: [doc_note()]
            }))
            .unwrap();
            assert_eq!(list.notes.len(), 1, "{key}");
            assert_eq!(list.page_size, Some(30));
            assert_eq!(list.next_page_token, "ff9d4fb9");
        }
        let written = serde_json::to_value(NoteList::default()).unwrap();
        assert!(written.get("clinical_notes").is_some());
    }

    #[test]
    fn nulls_blanks_and_missing_keys_give_defaults() {
        let n: ClinicalNote = serde_json::from_value(json!({
            "note_id": 12, "meeting_number": "97763643885", "is_note_completed": null,
            "ehr_context": null, "note_content": null
        }))
        .unwrap();
        assert_eq!(n.note_id, "12");
        assert_eq!(n.meeting_number, Some(97763643885));
        assert!(!n.is_note_completed);
        assert_eq!(n.ehr_context, None);
        assert_eq!(n.note_content, "");
        assert_eq!(
            serde_json::from_value::<ClinicalNote>(json!({})).unwrap(),
            ClinicalNote::default()
        );
        assert!(serde_json::from_value::<ClinicalNote>(json!({"meeting_number": "abc"})).is_err());
        assert!(serde_json::from_value::<ClinicalNote>(json!({"is_note_completed": "maybe"})).is_err());
    }

    #[test]
    fn the_docs_visit_reads_and_alternative_spellings_too() {
        let v: Visit = serde_json::from_value(json!({
            "id": "visit_abc123", "patient_id": "pat_123", "provider_id": "prov_456",
            "scheduled_time": "2024-02-01T14:00:00Z", "duration_minutes": 30, "status": "scheduled",
            "join_url_patient": "https://zoom.us/j/123?pwd=xxx",
            "join_url_provider": "https://zoom.us/j/123?pwd=yyy", "created_at": "2024-01-25T10:00:00Z",
            "settings": {"waiting_room": true, "recording": false, "require_encryption": true,
                         "max_participants": 8}
        }))
        .unwrap();
        assert_eq!(v.duration_minutes, Some(30));
        let settings = v.settings.as_ref().unwrap();
        assert_eq!(settings.waiting_room, Some(true));
        assert_eq!(settings.extra["max_participants"], json!(8));
        let other: Visit = serde_json::from_value(json!({
            "id": 77, "start_time": "2024-02-01T14:00:00Z", "duration": "45"
        }))
        .unwrap();
        assert_eq!(other.id, "77");
        assert_eq!(other.scheduled_time, "2024-02-01T14:00:00Z");
        assert_eq!(other.duration_minutes, Some(45));
    }

    #[test]
    fn serialised_wire_types_read_back_the_same() {
        let v: Visit = serde_json::from_value(json!({
            "id": "visit_1", "status": "completed", "duration_minutes": 20, "meeting_id": "a/b+c==",
            "ehr_context": {"appointment_id": "6600001"}, "started_at": "2024-02-01T14:01:00Z",
            "notifications": {"patient_email": true}
        }))
        .unwrap();
        let again: Visit = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(v, again);
        let n: ClinicalNote = serde_json::from_value(doc_note()).unwrap();
        let again: ClinicalNote = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(n, again);
        let a: Availability = serde_json::from_value(json!({
            "provider_id": "prov_1", "weekly_hours": [{"day": "monday", "start_time": "09:00", "end_time": "17:00"}],
            "available_slots": [{"start_time": "2024-02-05T14:00:00Z", "end_time": "2024-02-05T14:30:00Z"}],
            "busy_slots": [{"start": "2024-02-05T15:00:00Z", "end": "2024-02-05T15:30:00Z"}]
        }))
        .unwrap();
        assert_eq!(a.booked_slots[0].start_time, "2024-02-05T15:00:00Z");
        let again: Availability = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(a, again);
    }

    #[test]
    fn request_bodies_leave_out_what_they_do_not_change() {
        assert_eq!(serde_json::to_value(NotePatch::default()).unwrap(), json!({}));
        assert_eq!(
            serde_json::to_value(NotePatch {
                is_note_completed: Some(true)
            })
            .unwrap(),
            json!({"is_note_completed": true})
        );
        let patch = VisitPatch {
            duration_minutes: Some(45),
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&patch).unwrap(), json!({"duration_minutes": 45}));
        assert!(VisitPatch::default().is_empty() && !patch.is_empty());
        let invite = Invite {
            visit_id: Some("visit_1".into()),
            channels: vec!["email".into(), "sms".into()],
            message: None,
        };
        assert_eq!(
            serde_json::to_value(&invite).unwrap(),
            json!({"visit_id": "visit_1", "channels": ["email", "sms"]})
        );
    }

    #[test]
    fn waiting_room_entries_take_either_spelling() {
        let w: WaitingRoom = serde_json::from_value(json!({
            "entries": [{"patient_id": "pat_1", "visit_id": "visit_1", "since": "2024-02-01T13:58:00Z"}]
        }))
        .unwrap();
        assert_eq!(w.patients[0].joined_at, "2024-02-01T13:58:00Z");
        let e: ZoomError =
            serde_json::from_value(json!({"code": 30009, "message": "Clinical note does not exist."})).unwrap();
        assert_eq!(e.code, Some(30009));
    }
}
