//! DrChrono v4 objects in the JSON shape of the vendor doc (`drchrono-api-v4.md`).
//!
//! Field names are the doc's keys. Timestamps are zone-less strings (`2014-02-24T15:32:19`),
//! dates are `YYYY-MM-DD`, times `HH:MM:SS`. Absent optional values are `""` or `null`, as the doc
//! says. Keys that the API only sends with `verbose=true` carry `#[serde(default)]`, so a
//! non-verbose response still deserializes into these types.

use serde::{Deserialize, Serialize};

/// `/api/doctors` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Doctor {
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
    pub suffix: String,
    pub specialty: String,
    pub job_title: String,
    pub npi_number: String,
    pub group_npi_number: String,
    pub cell_phone: String,
    pub home_phone: String,
    pub office_phone: String,
    pub email: String,
    pub website: String,
    pub profile_picture: String,
    pub practice_group: Option<i64>,
    pub practice_group_name: String,
    pub timezone: String,
    pub country: String,
    pub is_account_suspended: bool,
}

/// One entry of an office's `exam_rooms`. `index` is the 1-based number that appointments carry
/// in their `exam_room` key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExamRoom {
    pub index: i64,
    pub name: String,
    pub online_scheduling: bool,
}

/// One entry of an office's `online_timeslots` (verbose only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnlineTimeslot {
    /// 0 (Monday) .. 6 (Sunday).
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
}

/// `/api/offices` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Office {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub city: String,
    pub state: String,
    pub zip_code: String,
    pub country: String,
    pub phone_number: String,
    pub fax_number: String,
    pub doctor: i64,
    pub start_time: String,
    pub end_time: String,
    pub archived: bool,
    pub online_scheduling: bool,
    pub exam_rooms: Vec<ExamRoom>,
    #[serde(default)]
    pub online_timeslots: Vec<OnlineTimeslot>,
}

/// Insurance object of a patient (`primary_insurance`, `secondary_insurance`,
/// `tertiary_insurance`). A patient without that insurance has every string empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Insurance {
    pub insurance_company: String,
    pub insurance_payer_id: String,
    pub insurance_plan_name: String,
    pub insurance_plan_type: String,
    pub insurance_id_number: String,
    pub insurance_group_number: String,
    pub insurance_group_name: String,
    pub insurance_claim_office_number: String,
    pub is_subscriber_the_patient: bool,
    pub patient_relationship_to_subscriber: String,
    pub subscriber_first_name: String,
    pub subscriber_middle_name: String,
    pub subscriber_last_name: String,
    pub subscriber_suffix: String,
    pub subscriber_date_of_birth: Option<String>,
    pub subscriber_gender: String,
    pub subscriber_address: String,
    pub subscriber_city: String,
    pub subscriber_state: String,
    pub subscriber_zip_code: String,
    pub subscriber_country: String,
    pub subscriber_social_security: String,
    pub photo_front: Option<String>,
    pub photo_back: Option<String>,
}

/// `auto_accident_insurance` of a patient (a subset of the OpenAPI's keys).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoAccidentInsurance {
    pub auto_accident_company: String,
    pub auto_accident_payer_id: String,
    pub auto_accident_case_number: String,
    pub auto_accident_policy_number: String,
    pub auto_accident_date_of_accident: Option<String>,
    pub auto_accident_state_of_occurrence: String,
    pub auto_accident_notes: String,
}

/// `workers_comp_insurance` of a patient (a subset of the OpenAPI's keys).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkersCompInsurance {
    pub workers_comp_company: String,
    pub workers_comp_payer_id: String,
    pub workers_comp_case_number: String,
    pub workers_comp_date_of_accident: Option<String>,
    pub workers_comp_state_of_occurrence: String,
    pub workers_comp_notes: String,
}

/// Entry of a patient's `custom_demographics` (verbose only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomDemographicValue {
    pub field_type: i64,
    pub value: String,
    pub updated_at: String,
}

/// Entry of a patient's `patient_flags` (flag types, verbose only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatientFlagType {
    pub id: i64,
    pub name: String,
    pub color: String,
    pub priority: i64,
    pub doctor: i64,
    pub archived: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// Entry of a patient's `patient_flags_attached` (verbose only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatientFlag {
    pub id: i64,
    pub flag_type: i64,
    pub flag_text: String,
    pub archived: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// A patient's `referring_doctor` (verbose only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferringDoctor {
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
    pub suffix: String,
    pub specialty: String,
    pub npi: String,
    pub provider_number: String,
    pub provider_qualifier: String,
    pub phone: String,
    pub fax: String,
    pub email: String,
    pub address: String,
}

/// `/api/patients` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    pub id: i64,
    pub chart_id: String,
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
    pub nick_name: String,
    pub date_of_birth: Option<String>,
    /// "Male", "Female" or "Other".
    pub gender: String,
    pub address: String,
    pub city: String,
    pub state: String,
    pub zip_code: String,
    pub email: String,
    pub cell_phone: String,
    pub home_phone: String,
    pub office_phone: String,
    /// ID of the patient's primary provider.
    pub doctor: i64,
    /// IDs of every office this patient has been to.
    pub offices: Vec<i64>,
    /// "A" (active), "I" (inactive) or "D" (inactive-deceased).
    pub patient_status: String,
    /// "blank", "indian", "asian", "black", "hawaiian", "white" or "declined".
    pub race: String,
    /// "blank", "hispanic", "not_hispanic" or "declined".
    pub ethnicity: String,
    /// ISO 639-2 alpha-3 code (or "blank" / "").
    pub preferred_language: String,
    pub emergency_contact_name: String,
    pub emergency_contact_phone: String,
    pub emergency_contact_relation: String,
    pub employer: String,
    pub employer_address: String,
    pub employer_city: String,
    pub employer_state: String,
    pub employer_zip_code: String,
    pub primary_care_physician: String,
    pub referring_source: String,
    pub responsible_party_name: String,
    pub responsible_party_relation: String,
    pub responsible_party_phone: String,
    pub responsible_party_email: String,
    pub social_security_number: String,
    pub default_pharmacy: String,
    pub disable_sms_messages: bool,
    pub patient_payment_profile: String,
    pub patient_photo: Option<String>,
    pub patient_photo_date: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub primary_insurance: Insurance,
    #[serde(default)]
    pub secondary_insurance: Insurance,
    #[serde(default)]
    pub tertiary_insurance: Insurance,
    #[serde(default)]
    pub auto_accident_insurance: AutoAccidentInsurance,
    #[serde(default)]
    pub workers_comp_insurance: WorkersCompInsurance,
    #[serde(default)]
    pub custom_demographics: Vec<CustomDemographicValue>,
    #[serde(default)]
    pub patient_flags: Vec<PatientFlagType>,
    #[serde(default)]
    pub patient_flags_attached: Vec<PatientFlag>,
    #[serde(default)]
    pub referring_doctor: ReferringDoctor,
}

/// Appointment `vitals` (verbose only). Unmeasured values are null.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Vitals {
    pub height: Option<f64>,
    pub height_units: String,
    pub weight: Option<f64>,
    pub weight_units: String,
    pub bmi: String,
    pub temperature: Option<f64>,
    pub temperature_units: String,
    pub pulse: Option<i64>,
    pub respiratory_rate: Option<i64>,
    pub oxygen_saturation: Option<f64>,
    pub blood_pressure_1: Option<i64>,
    pub blood_pressure_2: Option<i64>,
    pub pain: String,
    pub smoking_status: String,
    pub head_circumference: Option<f64>,
    pub head_circumference_units: String,
}

/// Entry of an appointment's `custom_vitals` (verbose only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomVitalValue {
    pub vital_type: i64,
    pub value: String,
}

/// Entry of an appointment's `reminders` (verbose only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reminder {
    pub id: i64,
    pub scheduled_time: String,
    /// "email", "sms", "phone" or "auto_call".
    #[serde(rename = "type")]
    pub kind: String,
}

/// Entry of an appointment's `status_transitions` (verbose only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusTransition {
    pub appointment: String,
    pub from_status: String,
    pub to_status: String,
    pub datetime: String,
}

/// An appointment's `clinical_note` (verbose only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppointmentClinicalNote {
    pub locked: bool,
    pub pdf: String,
    pub updated_at: String,
}

/// Entry of an appointment's `custom_fields`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomAppointmentFieldValue {
    pub field_type: i64,
    pub field_value: String,
    pub created_at: String,
    pub updated_at: String,
}

/// `/api/appointments` object (appointments and breaks).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Appointment {
    /// "Usually numeric, but not always": a string.
    pub id: String,
    pub doctor: i64,
    pub office: i64,
    /// 1-based index of the office's exam room.
    pub exam_room: i64,
    /// Null for breaks.
    pub patient: Option<i64>,
    pub scheduled_time: String,
    pub duration: i64,
    pub status: String,
    pub reason: String,
    pub notes: String,
    pub color: String,
    pub profile: Option<i64>,
    pub appt_is_break: bool,
    pub deleted_flag: bool,
    pub allow_overlapping: bool,
    pub is_walk_in: bool,
    pub is_virtual_base: bool,
    pub recurring_appointment: bool,
    pub base_recurring_appointment: Option<i64>,
    pub cloned_from: Option<i64>,
    pub supervising_provider: Option<i64>,
    pub billing_status: String,
    pub billing_provider: Option<i64>,
    pub billing_notes: Vec<serde_json::Value>,
    pub icd10_codes: String,
    pub icd9_codes: String,
    pub first_billed_date: Option<String>,
    pub last_billed_date: Option<String>,
    pub primary_insurer_payer_id: String,
    pub primary_insurer_name: String,
    pub primary_insurance_id_number: String,
    pub secondary_insurer_payer_id: String,
    pub secondary_insurer_name: String,
    pub secondary_insurance_id_number: String,
    pub custom_fields: Vec<CustomAppointmentFieldValue>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub clinical_note: Option<AppointmentClinicalNote>,
    #[serde(default)]
    pub custom_vitals: Vec<CustomVitalValue>,
    #[serde(default)]
    pub extended_updated_at: String,
    #[serde(default)]
    pub reminders: Vec<Reminder>,
    #[serde(default)]
    pub status_transitions: Vec<StatusTransition>,
    #[serde(default)]
    pub vitals: Vitals,
}

/// One value of a clinical note section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicalNoteValue {
    pub id: i64,
    pub clinical_note_field: i64,
    pub value: String,
}

/// One entry of a clinical note's `clinical_note_sections`. `values` is only sent with
/// `verbose=true`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicalNoteSection {
    pub clinical_note_template: i64,
    pub name: String,
    #[serde(default)]
    pub values: Vec<ClinicalNoteValue>,
}

/// A clinical note's `signee` (from the OpenAPI document).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClinicalNoteSignee {
    pub locked_by: String,
    pub supervisor_locked_by: String,
}

/// `/api/clinical_notes` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicalNote {
    pub id: i64,
    pub appointment: i64,
    pub patient: i64,
    /// True when the note's appointment has been deleted.
    pub archived: bool,
    pub clinical_note_sections: Vec<ClinicalNoteSection>,
    #[serde(default)]
    pub signee: ClinicalNoteSignee,
    /// Not a key of the vendor's object (the doc lists none); the time the `since` filter
    /// compares against. It equals the appointment's verbose `clinical_note.updated_at`.
    #[serde(skip)]
    pub updated_at: String,
}

/// `/api/documents` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: i64,
    pub doctor: i64,
    pub patient: i64,
    pub date: String,
    pub description: String,
    /// Absolute URL of the file.
    pub document: String,
    pub metatags: Vec<String>,
    pub archived: bool,
    pub updated_at: String,
}

/// Keys of [`Patient`] that the API only sends with `verbose=true`.
pub const PATIENT_VERBOSE_KEYS: &[&str] = &[
    "auto_accident_insurance",
    "primary_insurance",
    "secondary_insurance",
    "tertiary_insurance",
    "custom_demographics",
    "patient_flags",
    "patient_flags_attached",
    "referring_doctor",
    "workers_comp_insurance",
];

/// Keys of [`Appointment`] that the API only sends with `verbose=true`.
pub const APPOINTMENT_VERBOSE_KEYS: &[&str] = &[
    "clinical_note",
    "custom_vitals",
    "extended_updated_at",
    "reminders",
    "status_transitions",
    "vitals",
];

/// Keys of [`Office`] that the API only sends with `verbose=true`.
pub const OFFICE_VERBOSE_KEYS: &[&str] = &["online_timeslots"];
