//! `/api/clinical_notes` → US Core clinical-note DocumentReference, content as markdown.

use adapter::fhir::resources::{DocumentReference, DocumentReferenceContent, DocumentReferenceContext};
use adapter::fhir::types::{Attachment, Period};
use adapter::systems;
use data_encoding::BASE64;

use super::appointment::period;
use super::codes::{self, DocumentStatus};
use super::ids::DocumentId;
use super::{DrCtx, MapError, concept, fhir_id, ids, meta, native_identifier, present, reference, time};
use crate::wire;

/// The content type of the rendered note.
pub const MARKDOWN: &str = "text/markdown";

/// Maps a clinical note (and, when the caller has it, its appointment) to a US Core clinical-note
/// DocumentReference.
///
/// - id: `note-{id}` with the note's own `id` when the vendor sends one, else its `appointment`
///   id ([`DocumentId::ClinicalNote`]).
/// - `type` LOINC 11506-3 "Progress note" ([`codes::PROGRESS_NOTE`]), `category` `clinical-note`.
/// - `status`: `current`, or `entered-in-error` when `archived` (its appointment was deleted);
///   never `superseded` (DrChrono keeps one note per appointment).
/// - `docStatus`: `final` when the note is locked, `preliminary` otherwise. Locked means any of:
///   the note's `locked` is true, its `signee.locked_by` or `signee.supervisor_locked_by` is set
///   (OpenAPI), or the appointment's verbose `clinical_note.locked` is true. A note read without
///   any of these is preliminary.
/// - `subject`: the note's `patient` (else the appointment's); `author`: the appointment's doctor.
/// - `date` and `meta.lastUpdated`: the note's `updated_at`, else the appointment's verbose
///   `clinical_note.updated_at`; without either there is no `date` (the mapping does not invent
///   one).
/// - `context.period`: the appointment's start and end; `context.related`: the Appointment.
/// - `content[0]`: `text/markdown`, base64 of [`render_markdown`] — every section in order, every
///   field and value, empty ones marked. `content[1]`: the vendor's PDF, when the appointment
///   carries its URL.
pub fn clinical_note(
    n: &wire::ClinicalNote,
    appointment: Option<&wire::Appointment>,
    ctx: &DrCtx,
) -> Result<DocumentReference, MapError> {
    let appointment_id = present(&n.appointment).or(appointment.and_then(|a| present(&a.id)));
    if let (Some(note_appt), Some(a)) = (present(&n.appointment), appointment)
        && present(&a.id).is_some_and(|id| id != note_appt)
    {
        return Err(MapError::Invalid {
            field: "appointment",
            expected: "id of the appointment given with the note",
        });
    }
    let note_key =
        n.id.as_deref()
            .and_then(present)
            .or(appointment_id)
            .ok_or(MapError::Missing { field: "appointment" })?;
    let native = ids::document(&DocumentId::ClinicalNote(note_key.to_owned()));

    let patient = n
        .patient
        .or(appointment.and_then(|a| a.patient))
        .ok_or(MapError::Missing { field: "patient" })?;
    let doctor = appointment.and_then(|a| a.doctor);
    let tz = ctx.tz_for(doctor);
    let verbose = appointment.and_then(|a| a.clinical_note.as_ref());

    let updated = match time::timestamp_field("updated_at", &n.updated_at, tz)? {
        Some(t) => Some(t),
        None => time::timestamp_field(
            "clinical_note.updated_at",
            verbose.map_or("", |v| v.updated_at.as_str()),
            tz,
        )?,
    };
    let signed = n
        .signee
        .as_ref()
        .is_some_and(|s| present(&s.locked_by).is_some() || present(&s.supervisor_locked_by).is_some());
    let locked = n.locked == Some(true) || signed || verbose.is_some_and(|v| v.locked);

    let markdown = render_markdown(n);
    let mut content = vec![DocumentReferenceContent {
        attachment: Box::new(Attachment {
            content_type: Some(MARKDOWN.into()),
            data: Some(BASE64.encode(markdown.as_bytes()).into()),
            size: u32::try_from(markdown.len()).ok().map(Into::into),
            title: Some("Clinical note".into()),
            ..Default::default()
        }),
        ..Default::default()
    }];
    if let Some(pdf) = verbose.and_then(|v| present(&v.pdf)) {
        content.push(DocumentReferenceContent {
            attachment: Box::new(Attachment {
                content_type: Some("application/pdf".into()),
                url: Some(pdf.into()),
                title: Some("Clinical note (PDF)".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }

    let period = match appointment {
        Some(a) if present(&a.scheduled_time).is_some() => {
            let (start, end) = period(a, ctx)?;
            Some(Box::new(Period {
                start: Some(time::fhir_instant(&start).into()),
                end: Some(time::fhir_instant(&end).into()),
                ..Default::default()
            }))
        }
        _ => None,
    };
    let related = match appointment_id {
        Some(id) => vec![reference("appointment", "Appointment", &ids::appointment(id))?],
        None => Vec::new(),
    };

    Ok(DocumentReference {
        id: Some(fhir_id("id", &native)?.into()),
        meta: Some(Box::new(meta(
            ctx,
            tz,
            updated,
            Some(systems::PROFILE_US_CORE_DOCUMENTREFERENCE),
        ))),
        identifier: vec![native_identifier(ids::kind::DOCUMENT_REFERENCE, &native)],
        status: DocumentStatus::from_archived(n.archived).code().into(),
        doc_status: Some(codes::note_doc_status(locked).code().into()),
        r#type: Some(Box::new(concept(vec![codes::PROGRESS_NOTE.coding()], None))),
        category: vec![concept(vec![codes::CLINICAL_NOTE_CATEGORY.coding()], None)],
        subject: Some(Box::new(reference("patient", "Patient", &ids::patient(patient))?)),
        date: updated.map(|t| time::fhir_instant(&t).into()),
        author: match doctor {
            Some(d) => vec![reference("doctor", "Practitioner", &ids::practitioner(d))?],
            None => Vec::new(),
        },
        content,
        context: (period.is_some() || !related.is_empty()).then(|| DocumentReferenceContext {
            period,
            related,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Marks a field with no value.
pub const EMPTY_VALUE: &str = "*(empty)*";
/// Marks a section with no fields (e.g. a non-verbose response).
pub const NO_FIELDS: &str = "*(no fields)*";

/// Renders a note's sections as markdown, losing nothing:
///
/// ~~~text
/// # Clinical note
///
/// ## {section name}            (or "Untitled section")
///
/// **{field name}:** {value}    (one line each; "Field {id}" when the name is unknown)
///
/// **{field name}:** *(empty)*
///
/// **{field name}:**            (a value with line breaks: verbatim, in a fenced block)
///
/// ```text
/// ...
/// ```
/// ~~~
///
/// Sections and fields keep the vendor's order. Single-line text is backslash-escaped so that
/// markdown characters in a value show as written; multi-line values sit in a fence longer than
/// any backtick run they contain, so they are reproduced byte for byte. A section without values
/// says so.
pub fn render_markdown(n: &wire::ClinicalNote) -> String {
    let mut md = String::from("# Clinical note\n");
    for section in &n.clinical_note_sections {
        let name = present(&section.name).map_or("Untitled section".to_owned(), escape_line);
        md.push_str(&format!("\n## {name}\n"));
        if section.values.is_empty() {
            md.push_str(&format!("\n{NO_FIELDS}\n"));
        }
        for value in &section.values {
            let label = match (present(&value.name), value.clinical_note_field) {
                (Some(name), _) => escape_line(name),
                (None, Some(field)) => format!("Field {field}"),
                (None, None) => "Unnamed field".to_owned(),
            };
            let text = value.value.as_str();
            if text.trim().is_empty() {
                md.push_str(&format!("\n**{label}:** {EMPTY_VALUE}\n"));
            } else if text.contains(['\n', '\r']) {
                let body = text.replace("\r\n", "\n").replace('\r', "\n");
                let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
                let newline = if body.ends_with('\n') { "" } else { "\n" };
                md.push_str(&format!("\n**{label}:**\n\n{fence}text\n{body}{newline}{fence}\n"));
            } else {
                md.push_str(&format!("\n**{label}:** {}\n", escape_line(text)));
            }
        }
    }
    md
}

/// One line of inline markdown showing `s` as written.
fn escape_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '~' | '&' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(sections: serde_json::Value) -> wire::ClinicalNote {
        serde_json::from_value(serde_json::json!({
            "appointment": "1", "patient": 2, "clinical_note_sections": sections
        }))
        .unwrap()
    }

    #[test]
    fn markdown_characters_are_shown_as_written() {
        let n = note(serde_json::json!([
            {"name": "A *bold* # section", "values": [
                {"clinical_note_field": 7, "value": "<b>2 * 3</b> & [x](y) _z_ `c` | ~"}
            ]}
        ]));
        let md = render_markdown(&n);
        assert!(md.contains("## A \\*bold\\* \\# section\n"), "{md}");
        assert!(
            md.contains("**Field 7:** \\<b\\>2 \\* 3\\</b\\> \\& \\[x\\](y) \\_z\\_ \\`c\\` \\| \\~\n"),
            "{md}"
        );
    }

    #[test]
    fn multi_line_values_are_fenced_verbatim() {
        let n = note(serde_json::json!([
            {"name": "Plan", "values": [
                {"clinical_note_field": 1, "name": "Steps", "value": "1. rest\r\n```\n# not a heading"}
            ]}
        ]));
        let md = render_markdown(&n);
        assert!(
            md.contains("**Steps:**\n\n````text\n1. rest\n```\n# not a heading\n````\n"),
            "{md}"
        );
    }

    #[test]
    fn empty_values_and_sections_are_marked() {
        let n = note(serde_json::json!([
            {"name": "", "values": [{"value": ""}, {"clinical_note_field": 3, "value": "  "}]},
            {"name": "Vitals"}
        ]));
        assert_eq!(
            render_markdown(&n),
            "# Clinical note\n\n## Untitled section\n\n**Unnamed field:** *(empty)*\n\n\
             **Field 3:** *(empty)*\n\n## Vitals\n\n*(no fields)*\n"
        );
    }
}

#[cfg(test)]
mod mapping_tests {
    use super::*;
    use crate::map::test_ctx;

    fn note(v: serde_json::Value) -> wire::ClinicalNote {
        serde_json::from_value(v).unwrap()
    }

    fn appt(v: serde_json::Value) -> wire::Appointment {
        serde_json::from_value(v).unwrap()
    }

    fn doc_status(n: &wire::ClinicalNote, a: Option<&wire::Appointment>) -> String {
        clinical_note(n, a, &test_ctx())
            .unwrap()
            .doc_status
            .unwrap()
            .value
            .unwrap()
    }

    #[test]
    fn doc_status_follows_every_lock_signal() {
        let open = note(serde_json::json!({"appointment": "1", "patient": 2}));
        assert_eq!(doc_status(&open, None), "preliminary");
        let locked = note(serde_json::json!({"appointment": "1", "patient": 2, "locked": true}));
        assert_eq!(doc_status(&locked, None), "final");
        let signed = note(serde_json::json!({
            "appointment": "1", "patient": 2, "signee": {"supervisor_locked_by": "chief"}
        }));
        assert_eq!(doc_status(&signed, None), "final");
        let verbose = appt(serde_json::json!({"id": "1", "clinical_note": {"locked": true}}));
        assert_eq!(doc_status(&open, Some(&verbose)), "final");
        let unlocked = appt(serde_json::json!({"id": "1", "clinical_note": {"locked": false}}));
        assert_eq!(doc_status(&open, Some(&unlocked)), "preliminary");
    }

    #[test]
    fn the_id_is_the_notes_own_else_the_appointments() {
        let id = |n: &wire::ClinicalNote| clinical_note(n, None, &test_ctx()).unwrap().id.unwrap().value.unwrap();
        assert_eq!(
            id(&note(serde_json::json!({"id": 77, "appointment": "1", "patient": 2}))),
            "drchrono-note-77"
        );
        assert_eq!(
            id(&note(serde_json::json!({"appointment": 1, "patient": 2}))),
            "drchrono-note-1"
        );
    }

    #[test]
    fn a_note_with_the_wrong_appointment_or_no_patient_is_refused() {
        let n = note(serde_json::json!({"appointment": "1", "patient": 2}));
        let other = appt(serde_json::json!({"id": "9"}));
        assert!(matches!(
            clinical_note(&n, Some(&other), &test_ctx()),
            Err(MapError::Invalid {
                field: "appointment",
                ..
            })
        ));
        let orphan = note(serde_json::json!({"appointment": "1"}));
        assert_eq!(
            clinical_note(&orphan, None, &test_ctx()),
            Err(MapError::Missing { field: "patient" })
        );
        let nothing = note(serde_json::json!({"patient": 2}));
        assert_eq!(
            clinical_note(&nothing, None, &test_ctx()),
            Err(MapError::Missing { field: "appointment" })
        );
    }

    #[test]
    fn the_patient_may_come_from_the_appointment() {
        let n = note(serde_json::json!({"appointment": "1"}));
        let a = appt(serde_json::json!({"id": "1", "patient": 5, "doctor": 6}));
        let d = clinical_note(&n, Some(&a), &test_ctx()).unwrap();
        assert_eq!(
            d.subject.unwrap().reference.unwrap().value.as_deref(),
            Some("Patient/drchrono-5")
        );
        assert_eq!(
            d.author[0].reference.as_ref().unwrap().value.as_deref(),
            Some("Practitioner/drchrono-6")
        );
    }
}
