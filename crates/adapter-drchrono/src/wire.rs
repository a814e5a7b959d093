//! DrChrono API v4 objects in the vendor's JSON shape (`drchrono-api-v4.md`, with the shapes of
//! `drchrono-openapi-v4.yml` accepted where the two documents differ).
//!
//! Every type here is **lenient** on input, because the vendor doc says absent values come as
//! `""` or `null` and the two vendor documents disagree on some types:
//!
//! - every field is optional (`#[serde(default)]` on each struct): a missing key gives the
//!   field's default (`""`, `0`, `false`, `None`, an empty list);
//! - text fields take a string, `null` (→ `""`), a number or a boolean (→ its JSON text), or an
//!   array/object (→ its compact JSON text), so nothing the vendor sent is silently dropped;
//! - ids and references to other objects take a JSON number **or** a string of digits (the OpenAPI
//!   document types several of them as strings); `null` and `""` mean "absent" (`None`, or `0` for
//!   an object's own `id`). A non-numeric string where an integer id belongs is an error: guessing
//!   would attach a record to the wrong patient;
//! - [`Appointment::id`] and [`ClinicalNote::appointment`] are strings ("Usually numeric, but not
//!   always"); a JSON number is kept as its decimal text;
//! - booleans take `true`/`false`, `null` (→ `false`), `0`/`1` and the strings `"true"`/`"false"`
//!   (any case), `"1"`/`"0"` and `""` (→ `false`);
//! - lists take `null` as empty;
//! - keys not listed here are ignored.
//!
//! Keys that DrChrono only sends with `verbose=true` and that the mapping does not read are kept as
//! raw [`serde_json::Value`]s, so a non-verbose response (key missing) still deserializes.
//!
//! Timestamps stay the vendor's zone-less strings (`2014-02-24T15:32:19`); the mapping puts them in
//! the practice time zone (see [`crate::map`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `/api/patients` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Patient {
    #[serde(deserialize_with = "de::id")]
    pub id: i64,
    #[serde(deserialize_with = "de::text")]
    pub chart_id: String,
    #[serde(deserialize_with = "de::text")]
    pub first_name: String,
    #[serde(deserialize_with = "de::text")]
    pub middle_name: String,
    #[serde(deserialize_with = "de::text")]
    pub last_name: String,
    #[serde(deserialize_with = "de::text")]
    pub nick_name: String,
    /// Not a key of the v4 documents; read if a deployment sends it.
    #[serde(deserialize_with = "de::text")]
    pub prefix: String,
    /// Not a key of the v4 documents; read if a deployment sends it.
    #[serde(deserialize_with = "de::text")]
    pub suffix: String,
    /// `YYYY-MM-DD`.
    #[serde(deserialize_with = "de::text")]
    pub date_of_birth: String,
    /// "Male", "Female" or "Other" (the OpenAPI document adds "", "UNK" and "ASKU").
    #[serde(deserialize_with = "de::text")]
    pub gender: String,
    #[serde(deserialize_with = "de::text")]
    pub address: String,
    #[serde(deserialize_with = "de::text")]
    pub city: String,
    /// Two-letter abbreviation.
    #[serde(deserialize_with = "de::text")]
    pub state: String,
    #[serde(deserialize_with = "de::text")]
    pub zip_code: String,
    #[serde(deserialize_with = "de::text")]
    pub email: String,
    #[serde(deserialize_with = "de::text")]
    pub cell_phone: String,
    #[serde(deserialize_with = "de::text")]
    pub home_phone: String,
    /// OpenAPI only.
    #[serde(deserialize_with = "de::text")]
    pub office_phone: String,
    /// ID of the patient's primary provider.
    #[serde(deserialize_with = "de::opt_id")]
    pub doctor: Option<i64>,
    /// IDs of every office this patient has been to.
    #[serde(deserialize_with = "de::id_list")]
    pub offices: Vec<i64>,
    /// "A" (active), "I" (inactive) or "D" (inactive-deceased).
    #[serde(deserialize_with = "de::text")]
    pub patient_status: String,
    /// OpenAPI only: "Available when show_inactive is passed".
    #[serde(deserialize_with = "de::text")]
    pub date_of_death: String,
    /// "blank", "indian", "asian", "black", "hawaiian", "white" or "declined" (OpenAPI adds
    /// "other").
    #[serde(deserialize_with = "de::text")]
    pub race: String,
    /// OpenAPI only: detailed race codes.
    #[serde(deserialize_with = "de::list")]
    pub race_subcategories: Vec<RaceSubcategory>,
    /// "blank", "hispanic", "not_hispanic" or "declined".
    #[serde(deserialize_with = "de::text")]
    pub ethnicity: String,
    /// ISO 639-2 alpha-3 code; the OpenAPI document adds "blank", "other", "unknown", "declined".
    #[serde(deserialize_with = "de::text")]
    pub preferred_language: String,
    /// OpenAPI only.
    #[serde(deserialize_with = "de::text")]
    pub preferred_language_code: String,
    /// OpenAPI only: the language's name.
    #[serde(deserialize_with = "de::text")]
    pub preferred_language_description: String,
    /// OpenAPI only: a LOINC answer code (`LA29518-0` ...).
    #[serde(deserialize_with = "de::text")]
    pub pronouns: String,
    /// OpenAPI only.
    #[serde(deserialize_with = "de::text")]
    pub gender_identity_code: String,
    /// OpenAPI only.
    #[serde(deserialize_with = "de::text")]
    pub gender_identity_description: String,
    #[serde(deserialize_with = "de::text")]
    pub emergency_contact_name: String,
    #[serde(deserialize_with = "de::text")]
    pub emergency_contact_phone: String,
    #[serde(deserialize_with = "de::text")]
    pub emergency_contact_relation: String,
    #[serde(deserialize_with = "de::text")]
    pub employer: String,
    #[serde(deserialize_with = "de::text")]
    pub employer_address: String,
    #[serde(deserialize_with = "de::text")]
    pub employer_city: String,
    #[serde(deserialize_with = "de::text")]
    pub employer_state: String,
    #[serde(deserialize_with = "de::text")]
    pub employer_zip_code: String,
    #[serde(deserialize_with = "de::text")]
    pub primary_care_physician: String,
    #[serde(deserialize_with = "de::text")]
    pub referring_source: String,
    #[serde(deserialize_with = "de::text")]
    pub responsible_party_name: String,
    #[serde(deserialize_with = "de::text")]
    pub responsible_party_relation: String,
    #[serde(deserialize_with = "de::text")]
    pub responsible_party_phone: String,
    #[serde(deserialize_with = "de::text")]
    pub responsible_party_email: String,
    /// Read so the type is complete; **never mapped** to FHIR.
    #[serde(deserialize_with = "de::text")]
    pub social_security_number: String,
    /// NCPDP id of the patient's default pharmacy.
    #[serde(deserialize_with = "de::text")]
    pub default_pharmacy: String,
    #[serde(deserialize_with = "de::flag")]
    pub disable_sms_messages: bool,
    /// "", "Cash", "Insurance", "Insurance Out of Network", "Auto Accident" or "Worker's Comp".
    #[serde(deserialize_with = "de::text")]
    pub patient_payment_profile: String,
    /// URL of the photo.
    #[serde(deserialize_with = "de::text")]
    pub patient_photo: String,
    #[serde(deserialize_with = "de::text")]
    pub patient_photo_date: String,
    /// OpenAPI only.
    #[serde(deserialize_with = "de::text")]
    pub date_of_first_appointment: String,
    /// OpenAPI only.
    #[serde(deserialize_with = "de::text")]
    pub date_of_last_appointment: String,
    /// OpenAPI only.
    #[serde(deserialize_with = "de::text")]
    pub copay: String,
    /// Zone-less timestamp.
    #[serde(deserialize_with = "de::text")]
    pub created_at: String,
    /// Zone-less timestamp.
    #[serde(deserialize_with = "de::text")]
    pub updated_at: String,
    /// OpenAPI only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub medication_history_consent: Option<Value>,
    /// OpenAPI only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_pharmacies: Option<Value>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_insurance: Option<Value>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secondary_insurance: Option<Value>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tertiary_insurance: Option<Value>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_accident_insurance: Option<Value>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers_comp_insurance: Option<Value>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_demographics: Option<Value>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_flags: Option<Value>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_flags_attached: Option<Value>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referring_doctor: Option<Value>,
}

/// One entry of a patient's `race_subcategories` (OpenAPI only): a CDC race code.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RaceSubcategory {
    #[serde(deserialize_with = "de::text")]
    pub code: String,
    #[serde(deserialize_with = "de::text")]
    pub description: String,
}

/// `/api/doctors` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Doctor {
    #[serde(deserialize_with = "de::id")]
    pub id: i64,
    #[serde(deserialize_with = "de::text")]
    pub first_name: String,
    #[serde(deserialize_with = "de::text")]
    pub last_name: String,
    #[serde(deserialize_with = "de::text")]
    pub suffix: String,
    /// Free text.
    #[serde(deserialize_with = "de::text")]
    pub specialty: String,
    #[serde(deserialize_with = "de::text")]
    pub job_title: String,
    /// "If both this field and group_npi_number are set, prefer this field."
    #[serde(deserialize_with = "de::text")]
    pub npi_number: String,
    #[serde(deserialize_with = "de::text")]
    pub group_npi_number: String,
    #[serde(deserialize_with = "de::text")]
    pub cell_phone: String,
    #[serde(deserialize_with = "de::text")]
    pub home_phone: String,
    #[serde(deserialize_with = "de::text")]
    pub office_phone: String,
    #[serde(deserialize_with = "de::text")]
    pub email: String,
    #[serde(deserialize_with = "de::text")]
    pub website: String,
    /// URL of the doctor's picture.
    #[serde(deserialize_with = "de::text")]
    pub profile_picture: String,
    #[serde(deserialize_with = "de::opt_id")]
    pub practice_group: Option<i64>,
    #[serde(deserialize_with = "de::text")]
    pub practice_group_name: String,
    /// IANA zone name of the doctor's practice (e.g. `America/New_York`).
    #[serde(deserialize_with = "de::text")]
    pub timezone: String,
    /// Two-letter country code. Default is "US".
    #[serde(deserialize_with = "de::text")]
    pub country: String,
    #[serde(deserialize_with = "de::flag")]
    pub is_account_suspended: bool,
    /// Not a key of the v4 documents; read if a deployment sends it.
    #[serde(deserialize_with = "de::text")]
    pub updated_at: String,
    /// OpenAPI only (beta).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doctor_work_schedule: Option<Value>,
}

/// One exam room of an office.
///
/// The primary doc gives no format; the OpenAPI document types `exam_rooms` as a string. Accepted:
/// an array whose entries are objects (`index`, `name`, `online_scheduling`) or bare names, or a
/// string holding such a JSON array. An entry without `index` gets its 1-based position, which is
/// the index appointments carry in `exam_room`. A string that is not a JSON array gives no rooms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExamRoom {
    /// 1-based index; appointments refer to a room by it.
    #[serde(deserialize_with = "de::id")]
    pub index: i64,
    #[serde(deserialize_with = "de::text")]
    pub name: String,
    #[serde(deserialize_with = "de::flag")]
    pub online_scheduling: bool,
}

/// `/api/offices` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Office {
    #[serde(deserialize_with = "de::id")]
    pub id: i64,
    #[serde(deserialize_with = "de::text")]
    pub name: String,
    #[serde(deserialize_with = "de::text")]
    pub address: String,
    #[serde(deserialize_with = "de::text")]
    pub city: String,
    /// Two-letter abbreviation.
    #[serde(deserialize_with = "de::text")]
    pub state: String,
    #[serde(deserialize_with = "de::text")]
    pub zip_code: String,
    /// Two-letter country code.
    #[serde(deserialize_with = "de::text")]
    pub country: String,
    #[serde(deserialize_with = "de::text")]
    pub phone_number: String,
    #[serde(deserialize_with = "de::text")]
    pub fax_number: String,
    /// ID of the doctor who owns the office.
    #[serde(deserialize_with = "de::opt_id")]
    pub doctor: Option<i64>,
    /// `HH:MM:SS`, truncated to the hour.
    #[serde(deserialize_with = "de::text")]
    pub start_time: String,
    /// `HH:MM:SS`, truncated to the hour (default `24:00`).
    #[serde(deserialize_with = "de::text")]
    pub end_time: String,
    /// Soft-deleted.
    #[serde(deserialize_with = "de::flag")]
    pub archived: bool,
    #[serde(deserialize_with = "de::flag")]
    pub online_scheduling: bool,
    #[serde(deserialize_with = "de::exam_rooms")]
    pub exam_rooms: Vec<ExamRoom>,
    /// OpenAPI only.
    #[serde(deserialize_with = "de::text")]
    pub tax_id_number_professional: String,
    /// Not a key of the v4 documents; read if a deployment sends it.
    #[serde(deserialize_with = "de::text")]
    pub updated_at: String,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online_timeslots: Option<Value>,
    /// OpenAPI only (beta).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub office_work_schedule: Option<Value>,
}

/// The verbose `clinical_note` object of an appointment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppointmentClinicalNote {
    /// True once the doctor has locked (signed) the note.
    #[serde(deserialize_with = "de::flag")]
    pub locked: bool,
    /// URL of the note's PDF.
    #[serde(deserialize_with = "de::text")]
    pub pdf: String,
    /// Zone-less timestamp.
    #[serde(deserialize_with = "de::text")]
    pub updated_at: String,
}

/// `/api/appointments` object: appointments and breaks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Appointment {
    /// "Unique identifier. Usually numeric, but not always." A JSON number is kept as its text.
    #[serde(deserialize_with = "de::id_text")]
    pub id: String,
    #[serde(deserialize_with = "de::opt_id")]
    pub doctor: Option<i64>,
    #[serde(deserialize_with = "de::opt_id")]
    pub office: Option<i64>,
    /// 1-based index of the office's exam room.
    #[serde(deserialize_with = "de::opt_id")]
    pub exam_room: Option<i64>,
    /// Breaks have a null patient.
    #[serde(deserialize_with = "de::opt_id")]
    pub patient: Option<i64>,
    /// Zone-less timestamp: the start.
    #[serde(deserialize_with = "de::text")]
    pub scheduled_time: String,
    /// Minutes.
    #[serde(deserialize_with = "de::opt_id")]
    pub duration: Option<i64>,
    /// One of "", "Arrived", "Checked In", "In Room", "Cancelled", "Complete", "Confirmed",
    /// "In Session", "No Show", "Not Confirmed" or "Rescheduled".
    #[serde(deserialize_with = "de::text")]
    pub status: String,
    /// OpenAPI only: the name of a custom status.
    #[serde(deserialize_with = "de::text")]
    pub custom_status: String,
    #[serde(deserialize_with = "de::text")]
    pub reason: String,
    #[serde(deserialize_with = "de::text")]
    pub notes: String,
    #[serde(deserialize_with = "de::text")]
    pub color: String,
    #[serde(deserialize_with = "de::opt_id")]
    pub profile: Option<i64>,
    #[serde(deserialize_with = "de::flag")]
    pub appt_is_break: bool,
    #[serde(deserialize_with = "de::flag")]
    pub deleted_flag: bool,
    #[serde(deserialize_with = "de::flag")]
    pub allow_overlapping: bool,
    #[serde(deserialize_with = "de::flag")]
    pub is_walk_in: bool,
    #[serde(deserialize_with = "de::flag")]
    pub is_virtual_base: bool,
    #[serde(deserialize_with = "de::flag")]
    pub recurring_appointment: bool,
    #[serde(deserialize_with = "de::opt_id")]
    pub base_recurring_appointment: Option<i64>,
    #[serde(deserialize_with = "de::opt_id")]
    pub cloned_from: Option<i64>,
    #[serde(deserialize_with = "de::opt_id")]
    pub supervising_provider: Option<i64>,
    #[serde(deserialize_with = "de::opt_id")]
    pub billing_provider: Option<i64>,
    #[serde(deserialize_with = "de::text")]
    pub billing_status: String,
    /// A string in the primary doc, an array of strings in the OpenAPI document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icd10_codes: Option<Value>,
    /// A string in the primary doc, an array of strings in the OpenAPI document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icd9_codes: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_notes: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Value>,
    #[serde(deserialize_with = "de::text")]
    pub first_billed_date: String,
    #[serde(deserialize_with = "de::text")]
    pub last_billed_date: String,
    #[serde(deserialize_with = "de::text")]
    pub primary_insurer_payer_id: String,
    #[serde(deserialize_with = "de::text")]
    pub primary_insurer_name: String,
    #[serde(deserialize_with = "de::text")]
    pub primary_insurance_id_number: String,
    #[serde(deserialize_with = "de::text")]
    pub secondary_insurer_payer_id: String,
    #[serde(deserialize_with = "de::text")]
    pub secondary_insurer_name: String,
    #[serde(deserialize_with = "de::text")]
    pub secondary_insurance_id_number: String,
    /// Zone-less timestamp.
    #[serde(deserialize_with = "de::text")]
    pub created_at: String,
    /// Zone-less timestamp.
    #[serde(deserialize_with = "de::text")]
    pub updated_at: String,
    /// Verbose only: the most recent update among the appointment, its vitals and custom vitals.
    #[serde(deserialize_with = "de::text")]
    pub extended_updated_at: String,
    /// Verbose only.
    #[serde(deserialize_with = "de::opt_object")]
    pub clinical_note: Option<AppointmentClinicalNote>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vitals: Option<Value>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_vitals: Option<Value>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reminders: Option<Value>,
    /// Verbose only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_transitions: Option<Value>,
}

/// `/api/clinical_notes` object: the structured note of one appointment.
///
/// The primary doc lists `archived`, `appointment`, `patient` and `clinical_note_sections`; the
/// OpenAPI document adds `signee`. `id`, `locked` and `updated_at` are read when present.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClinicalNote {
    /// The note's own id, when the vendor sends one (neither vendor document lists it).
    #[serde(deserialize_with = "de::opt_id_text")]
    pub id: Option<String>,
    /// The appointment's id (an integer in the doc, a string in the OpenAPI document).
    #[serde(deserialize_with = "de::id_text")]
    pub appointment: String,
    #[serde(deserialize_with = "de::opt_id")]
    pub patient: Option<i64>,
    /// "Indicates that the appointment which the note is for has been deleted."
    #[serde(deserialize_with = "de::flag")]
    pub archived: bool,
    /// Not a key of the vendor documents; read if sent.
    #[serde(deserialize_with = "de::opt_flag")]
    pub locked: Option<bool>,
    /// Not a key of the vendor documents; read if sent (zone-less timestamp).
    #[serde(deserialize_with = "de::text")]
    pub updated_at: String,
    #[serde(deserialize_with = "de::list")]
    pub clinical_note_sections: Vec<ClinicalNoteSection>,
    /// OpenAPI only: who locked the note.
    #[serde(deserialize_with = "de::opt_object")]
    pub signee: Option<ClinicalNoteSignee>,
}

/// One entry of a note's `clinical_note_sections` (format from the OpenAPI document).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClinicalNoteSection {
    #[serde(deserialize_with = "de::opt_id")]
    pub clinical_note_template: Option<i64>,
    #[serde(deserialize_with = "de::text")]
    pub name: String,
    /// Only sent with `verbose=true`.
    #[serde(deserialize_with = "de::list")]
    pub values: Vec<ClinicalNoteValue>,
}

/// One charted value of a clinical note section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClinicalNoteValue {
    #[serde(deserialize_with = "de::opt_id")]
    pub id: Option<i64>,
    /// ID of the `/api/clinical_note_field_types` object.
    #[serde(deserialize_with = "de::opt_id")]
    pub clinical_note_field: Option<i64>,
    /// The field's name. Not in the vendor documents (which give only the field's id); read when a
    /// response or the caller provides it.
    #[serde(alias = "field_name", alias = "clinical_note_field_name")]
    #[serde(deserialize_with = "de::text")]
    pub name: String,
    /// "Interpretation varies by field type": any JSON scalar is kept as its text.
    #[serde(deserialize_with = "de::text")]
    pub value: String,
}

/// A clinical note's `signee` (OpenAPI only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClinicalNoteSignee {
    #[serde(deserialize_with = "de::text")]
    pub locked_by: String,
    #[serde(deserialize_with = "de::text")]
    pub supervisor_locked_by: String,
}

/// `/api/documents` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Document {
    #[serde(deserialize_with = "de::id")]
    pub id: i64,
    /// ID of the doctor who owns the document.
    #[serde(deserialize_with = "de::opt_id")]
    pub doctor: Option<i64>,
    /// ID of the patient the document concerns.
    #[serde(deserialize_with = "de::opt_id")]
    pub patient: Option<i64>,
    /// `YYYY-MM-DD`.
    #[serde(deserialize_with = "de::text")]
    pub date: String,
    #[serde(deserialize_with = "de::text")]
    pub description: String,
    /// Absolute URL of the file (the OpenAPI document says it may be `null` right after upload).
    #[serde(deserialize_with = "de::text")]
    pub document: String,
    /// An array of strings in the doc; the OpenAPI document sends the array as a JSON string
    /// (`'["a", "b"]'`). Both are accepted; any other non-empty string is one tag.
    #[serde(deserialize_with = "de::tags")]
    pub metatags: Vec<String>,
    /// Set by DELETE.
    #[serde(deserialize_with = "de::flag")]
    pub archived: bool,
    /// Zone-less timestamp.
    #[serde(deserialize_with = "de::text")]
    pub updated_at: String,
}

/// The lenient field deserializers described in the module docs: [`adapter::lenient`]'s, ids read
/// as its integers, and the shapes only DrChrono sends.
mod de {
    pub use adapter::lenient::{flag, int as id, list, opt_flag, opt_int as opt_id, opt_object, text};
    use adapter::lenient::{value_int, value_text};
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    use super::ExamRoom;

    /// A list of integer ids; `null` → empty.
    pub fn id_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => {
                let mut ids = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(id) = value_int(item).map_err(D::Error::custom)? {
                        ids.push(id);
                    }
                }
                Ok(ids)
            }
            _ => Err(D::Error::custom("a list of ids is not an array")),
        }
    }

    /// A string id that may come as a number; `null` → `""`.
    pub fn id_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(opt_id_text(d)?.unwrap_or_default())
    }

    /// A string id that may come as a number; `null`/`""` → `None`.
    pub fn opt_id_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => Ok(Some(s)),
            Value::Number(n) => Ok(Some(n.to_string())),
            _ => Err(D::Error::custom("an id is neither a string nor a number")),
        }
    }

    /// `exam_rooms`: an array (of objects or names), or a string holding a JSON array.
    pub fn exam_rooms<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ExamRoom>, D::Error> {
        let items = match Value::deserialize(d)? {
            Value::Array(items) => items,
            Value::String(s) => match serde_json::from_str::<Value>(&s) {
                Ok(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let mut rooms = Vec::with_capacity(items.len());
        for (position, item) in (1_i64..).zip(items) {
            let mut room = match item {
                Value::String(name) => ExamRoom {
                    name,
                    ..ExamRoom::default()
                },
                v @ Value::Object(_) => serde_json::from_value::<ExamRoom>(v).map_err(D::Error::custom)?,
                _ => return Err(D::Error::custom("an exam room is not an object")),
            };
            if room.index <= 0 {
                room.index = position;
            }
            rooms.push(room);
        }
        Ok(rooms)
    }

    /// `metatags`: an array, a string holding a JSON array, or one tag; blank tags dropped.
    pub fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let items = match Value::deserialize(d)? {
            Value::Null => Vec::new(),
            Value::Array(items) => items,
            Value::String(s) => match serde_json::from_str::<Value>(&s) {
                Ok(Value::Array(items)) => items,
                _ => vec![Value::String(s)],
            },
            other => vec![other],
        };
        Ok(items
            .into_iter()
            .map(value_text)
            .filter(|t| !t.trim().is_empty())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nulls_blanks_and_missing_keys_give_defaults() {
        let p: Patient = serde_json::from_value(json!({
            "id": 5, "first_name": null, "doctor": "", "offices": null, "disable_sms_messages": null,
            "race_subcategories": null
        }))
        .unwrap();
        assert_eq!(p.id, 5);
        assert_eq!(p.first_name, "");
        assert_eq!(p.doctor, None);
        assert!(p.offices.is_empty());
        assert!(!p.disable_sms_messages);
        assert_eq!(p.primary_insurance, None);
        let empty: Patient = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty, Patient::default());
    }

    #[test]
    fn ids_are_numbers_or_strings() {
        let a: Appointment = serde_json::from_value(json!({
            "id": 1234, "doctor": "45", "office": 7, "patient": null, "exam_room": "2",
            "duration": "30"
        }))
        .unwrap();
        assert_eq!(a.id, "1234");
        assert_eq!(a.doctor, Some(45));
        assert_eq!(a.exam_room, Some(2));
        assert_eq!(a.patient, None);
        assert_eq!(a.duration, Some(30));
        let a: Appointment = serde_json::from_value(json!({"id": "abc_20240101"})).unwrap();
        assert_eq!(a.id, "abc_20240101");
        let bad = serde_json::from_value::<Appointment>(json!({"patient": "bob"}));
        assert!(bad.is_err());
        let bad = serde_json::from_value::<Appointment>(json!({"patient": 1.5}));
        assert!(bad.is_err());
    }

    #[test]
    fn text_fields_keep_scalars_as_text() {
        let p: Patient = serde_json::from_value(json!({"zip_code": 10001, "chart_id": true})).unwrap();
        assert_eq!(p.zip_code, "10001");
        assert_eq!(p.chart_id, "true");
        let v: ClinicalNoteValue = serde_json::from_value(json!({"value": ["a", 1], "field_name": "HPI"})).unwrap();
        assert_eq!(v.value, r#"["a",1]"#);
        assert_eq!(v.name, "HPI");
    }

    #[test]
    fn booleans_are_lenient_but_not_careless() {
        for (input, expected) in [
            (json!(true), true),
            (json!("True"), true),
            (json!("1"), true),
            (json!(1), true),
            (json!(false), false),
            (json!(""), false),
            (json!(0), false),
            (json!(null), false),
        ] {
            let d: Document = serde_json::from_value(json!({ "archived": input })).unwrap();
            assert_eq!(d.archived, expected, "{input}");
        }
        assert!(serde_json::from_value::<Document>(json!({"archived": "maybe"})).is_err());
        assert!(serde_json::from_value::<Document>(json!({"archived": 2})).is_err());
    }

    #[test]
    fn exam_rooms_take_both_documented_shapes() {
        let o: Office = serde_json::from_value(json!({
            "exam_rooms": [{"index": 5, "name": "Lab"}, {"name": "Room B"}, "Room C"]
        }))
        .unwrap();
        let got: Vec<(i64, &str)> = o.exam_rooms.iter().map(|r| (r.index, r.name.as_str())).collect();
        assert_eq!(got, vec![(5, "Lab"), (2, "Room B"), (3, "Room C")]);
        let o: Office = serde_json::from_value(json!({
            "exam_rooms": "[{\"index\": 1, \"name\": \"Exam 1\", \"online_scheduling\": true}]"
        }))
        .unwrap();
        assert_eq!(o.exam_rooms.len(), 1);
        assert!(o.exam_rooms[0].online_scheduling);
        for nothing in [json!(null), json!(""), json!("Exam 1")] {
            let o: Office = serde_json::from_value(json!({ "exam_rooms": nothing })).unwrap();
            assert!(o.exam_rooms.is_empty());
        }
    }

    #[test]
    fn metatags_take_both_documented_shapes() {
        for (input, expected) in [
            (json!(["a", "b c"]), vec!["a", "b c"]),
            (json!("[\"a\", \"b\"]"), vec!["a", "b"]),
            (json!("lab"), vec!["lab"]),
            (json!(""), vec![]),
            (json!(null), vec![]),
            (json!(["", " ", "x"]), vec!["x"]),
        ] {
            let d: Document = serde_json::from_value(json!({ "metatags": input })).unwrap();
            assert_eq!(d.metatags, expected, "{input}");
        }
    }

    #[test]
    fn nested_objects_accept_null_and_blank() {
        for nothing in [json!(null), json!("")] {
            let n: ClinicalNote = serde_json::from_value(json!({ "signee": nothing })).unwrap();
            assert_eq!(n.signee, None);
            let a: Appointment = serde_json::from_value(json!({ "clinical_note": nothing })).unwrap();
            assert_eq!(a.clinical_note, None);
        }
        let n: ClinicalNote = serde_json::from_value(json!({
            "id": 9, "appointment": 77, "signee": {"locked_by": "drsmith", "supervisor_locked_by": null},
            "clinical_note_sections": [{"name": "S", "clinical_note_template": "3", "values": null}]
        }))
        .unwrap();
        assert_eq!(n.id.as_deref(), Some("9"));
        assert_eq!(n.appointment, "77");
        assert_eq!(n.signee.unwrap().locked_by, "drsmith");
        assert_eq!(n.clinical_note_sections[0].clinical_note_template, Some(3));
        assert!(n.clinical_note_sections[0].values.is_empty());
    }

    #[test]
    fn serialised_wire_types_read_back_the_same() {
        let d: Doctor = serde_json::from_value(json!({
            "id": 45, "first_name": "Ann", "practice_group": "12", "is_account_suspended": "false"
        }))
        .unwrap();
        let again: Doctor = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(d, again);
    }
}
