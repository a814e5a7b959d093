//! Noa summary → US Core clinical-note DocumentReference.

use adapter::fhir::resources::{DocumentReference, DocumentReferenceContent, DocumentReferenceContext};
use adapter::fhir::types::{Attachment, Reference};
use adapter::systems;
use data_encoding::BASE64;

use super::codes::{self, NoteKind, SessionStatus};
use super::ehr::{EhrKind, EhrRef};
use super::encounter::{session_identifier, session_period};
use super::{MapError, NoaCtx, concept, fhir_code, fhir_id, meta, present, text_concept, time};
use crate::wire;

/// The content type of a summary's attachment: Noa writes its sections in markdown.
pub const MARKDOWN: &str = "text/markdown";

/// The line written under each heading of a summary the doctor verified as empty
/// (`EmptySummaryVerified`), where Noa sends `""`.
pub const EMPTY_SECTION: &str = "_Nothing to record (verified by the doctor)._";

/// The attachment's title.
const TITLE: &str = "Noa Notes visit summary";

/// The markdown document of a summary: its sections in Noa's order, each
/// `## {title}\n\n{content}\n`, separated by a blank line. Each section's content is kept byte for
/// byte as Noa wrote it (never reflowed, trimmed or escaped), so nothing Noa sent is lost.
///
/// - A section whose content is `""` is its heading alone (`## {title}\n`), except in a summary
///   the doctor verified as empty (`EmptySummaryVerified`), where [`EMPTY_SECTION`] stands under
///   each heading, so a reader sees that the emptiness was confirmed, not lost.
/// - An `EmptySummaryVerified` summary without sections is [`EMPTY_SECTION`] alone; any other
///   summary without sections is an empty document.
/// - A blank title is written `## (untitled)`; line breaks inside a title become spaces (a heading
///   is one line).
pub fn summary_markdown(summary: &wire::Summary) -> String {
    let verified_empty = SessionStatus::from_wire(&summary.status) == Some(SessionStatus::EmptySummaryVerified);
    if summary.sections.is_empty() {
        return if verified_empty {
            format!("{EMPTY_SECTION}\n")
        } else {
            String::new()
        };
    }
    summary
        .sections
        .iter()
        .map(|section| {
            let title: String = section
                .title
                .trim()
                .chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                .collect();
            let title = if title.is_empty() {
                "(untitled)".to_owned()
            } else {
                title
            };
            match section.content.as_str() {
                "" if verified_empty => format!("## {title}\n\n{EMPTY_SECTION}\n"),
                "" => format!("## {title}\n"),
                content => format!("## {title}\n\n{content}\n"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Maps a session's summary to a US Core clinical-note DocumentReference (`noa-{sessionId}`, the
/// same id as the session's Encounter).
///
/// - `status` `current`; `docStatus` `final` once the doctor verified the summary (`Verified` or
///   `EmptySummaryVerified`, and Noa says `doctorApproved`), else `preliminary` (also while a
///   recovery or regeneration runs: the doctor must verify again).
/// - `type`: LOINC by the visit type ([`NoteKind::of_visit`]: FirstVisit → History and physical
///   note, otherwise Progress note); `category` `clinical-note`; the speciality in
///   `context.practiceSetting.text`.
/// - `subject`: the Encounter's subject (the EHR patient); without one no US Core profile is
///   claimed (US Core requires a subject).
/// - `date`: `approvedAt`, else `generatedAt`; `author` the doctor; `authenticator` the doctor
///   once they approved.
/// - `content[0]`: `text/markdown`, the summary's `language`, `data` the base64 of
///   [`summary_markdown`], `size`, `creation` `generatedAt`.
/// - `context.encounter` the session's Encounter, `context.period` the Encounter's period,
///   `context.related` the episode's EHR Appointment.
/// - `meta.versionId` the summary's `revision`; `meta.lastUpdated` the `date`.
pub fn summary_document(
    s: &wire::Session,
    summary: &wire::Summary,
    ctx: &NoaCtx,
) -> Result<DocumentReference, MapError> {
    let session_id = present(&s.session_id).ok_or(MapError::Missing { field: "sessionId" })?;
    if present(&summary.session_id).is_some_and(|id| id != session_id) {
        return Err(MapError::Invalid {
            field: "sessionId",
            expected: "id of the session the summary is given with",
        });
    }
    let session_status = SessionStatus::from_wire(&s.status).ok_or(MapError::UnknownCode { field: "status" })?;
    let status = match present(&summary.status) {
        Some(text) => SessionStatus::from_wire(text).ok_or(MapError::UnknownCode {
            field: "summary.status",
        })?,
        None => session_status,
    };
    let tz = ctx.base.default_tz;
    let generated = time::timestamp_field("generatedAt", &summary.generated_at, tz)?;
    let approved = time::timestamp_field("approvedAt", &summary.approved_at, tz)?;
    let date = approved.or(generated);

    let subject = ctx
        .patient_of(s)
        .map(|p| Box::new(EhrRef::new(EhrKind::Patient, &p).reference(ctx)));
    let doctor = present(&s.doctor_id).map(|d| EhrRef::new(EhrKind::Practitioner, d).reference(ctx));
    let approved_by_doctor = summary.doctor_approved && status.is_verified();
    let related: Vec<Reference> = present(&s.episode_id)
        .map(|e| EhrRef::new(EhrKind::Appointment, e).reference(ctx))
        .into_iter()
        .collect();
    let encounter = Reference {
        reference: Some(format!("Encounter/{}", fhir_id("sessionId", session_id)?).into()),
        ..Default::default()
    };

    let markdown = summary_markdown(summary);
    let language = fhir_code(&summary.language).or_else(|| fhir_code(&s.language));
    let attachment = Attachment {
        content_type: Some(MARKDOWN.into()),
        language: language.map(Into::into),
        data: (!markdown.is_empty()).then(|| BASE64.encode(markdown.as_bytes()).into()),
        size: u32::try_from(markdown.len()).ok().map(Into::into),
        title: Some(TITLE.into()),
        creation: generated.map(|t| time::fhir_instant(&t).into()),
        ..Default::default()
    };

    let kind = NoteKind::of_visit(&s.visit_type);
    let profile = subject.is_some().then_some(systems::PROFILE_US_CORE_DOCUMENTREFERENCE);
    let version = summary.revision.filter(|r| *r > 0).map(|r| r.to_string());
    Ok(DocumentReference {
        id: Some(fhir_id("sessionId", session_id)?.into()),
        meta: Some(Box::new(meta(ctx, date, version, profile))),
        identifier: vec![session_identifier(session_id)],
        status: codes::DOCUMENT_CURRENT.into(),
        doc_status: Some(status.doc_status(summary.doctor_approved).code().into()),
        r#type: Some(Box::new(concept(vec![kind.loinc().coding()], None))),
        category: vec![concept(vec![codes::CLINICAL_NOTE_CATEGORY.coding()], None)],
        subject,
        date: date.map(|t| time::fhir_instant(&t).into()),
        author: doctor.clone().into_iter().collect(),
        authenticator: doctor.filter(|_| approved_by_doctor).map(Box::new),
        content: vec![DocumentReferenceContent {
            attachment: Box::new(attachment),
            ..Default::default()
        }],
        context: Some(DocumentReferenceContext {
            encounter: vec![encounter],
            period: session_period(s, session_status, ctx)?.map(Box::new),
            practice_setting: text_concept(&s.speciality).map(Box::new),
            related,
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;
    use serde_json::json;

    fn summary(status: &str, sections: serde_json::Value) -> wire::Summary {
        serde_json::from_value(json!({"sessionId": "s1", "status": status, "sections": sections})).unwrap()
    }

    #[test]
    fn sections_become_markdown_in_order_byte_for_byte() {
        let s = summary(
            "Summarized",
            json!([
                {"title": "Chief Complaint", "content": "Cough, 3 days.\r\n- dry"},
                {"title": "Plan", "content": "Rest.\n"},
                {"title": "Allergies", "content": ""},
                {"title": " ", "content": "x"},
                {"title": "Two\nlines", "content": "y"}
            ]),
        );
        assert_eq!(
            summary_markdown(&s),
            "## Chief Complaint\n\nCough, 3 days.\r\n- dry\n\n## Plan\n\nRest.\n\n\n## Allergies\n\n## (untitled)\n\nx\n\n## Two lines\n\ny\n"
        );
        assert_eq!(summary_markdown(&summary("Summarized", json!([]))), "");
    }

    #[test]
    fn an_empty_verified_summary_says_so() {
        let s = summary(
            "EmptySummaryVerified",
            json!([{"title": "Chief Complaint", "content": ""}, {"title": "Plan", "content": ""}]),
        );
        assert_eq!(
            summary_markdown(&s),
            format!("## Chief Complaint\n\n{EMPTY_SECTION}\n\n## Plan\n\n{EMPTY_SECTION}\n")
        );
        assert_eq!(
            summary_markdown(&summary("EmptySummaryVerified", json!([]))),
            format!("{EMPTY_SECTION}\n")
        );
    }

    #[test]
    fn a_summary_of_another_session_is_refused() {
        let session: wire::Session =
            serde_json::from_value(json!({"sessionId": "s2", "status": "Summarized"})).unwrap();
        assert!(matches!(
            summary_document(&session, &summary("Summarized", json!([])), &test_ctx()),
            Err(MapError::Invalid { field: "sessionId", .. })
        ));
    }
}
