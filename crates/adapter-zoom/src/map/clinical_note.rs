//! Clinical notes ↔ US Core clinical-note DocumentReference.

use adapter::fhir::resources::{DocumentReference, DocumentReferenceContent, DocumentReferenceContext};
use adapter::fhir::types::{Attachment, Identifier, Period, Reference};
use adapter::systems;
use data_encoding::BASE64;

use super::codes::{self, FhirDocStatus, NoteKind};
use super::ehr::EhrRefs;
use super::{
    MapError, ZoomCtx, concept, diff, fhir_id, fhir_text, ids, meeting_identifiers, meta, native_identifier, present,
    reference, time,
};
use crate::wire;

/// The content type of a note's attachment: Zoom writes notes in markdown.
pub const MARKDOWN: &str = "text/markdown";

/// Maps a clinical note to a US Core clinical-note DocumentReference, with the note owner as a
/// logical author (see [`clinical_note_with_owner`]).
pub fn clinical_note(n: &wire::ClinicalNote, ctx: &ZoomCtx) -> Result<DocumentReference, MapError> {
    clinical_note_with_owner(n, None, ctx)
}

/// Maps a clinical note to a US Core clinical-note DocumentReference.
///
/// - id `zoom-note-{note_id}`; identifiers: the native id, the meeting UUID (`meeting_id`) and
///   number (`meeting_number`) under `urn:fhir-gateway:id:zoom:meeting` / `:meeting-number`.
/// - `status` `current`; `docStatus` `final` when `is_note_completed`, else `preliminary`.
/// - `type`: LOINC by [`NoteKind::of_note`] (Progress note unless the note's type or title names
///   another kind); `category` `clinical-note`; `description` the note's title.
/// - `subject`: the EHR patient of `ehr_context` (see [`super::ehr_references`]: the gateway's own
///   `Patient/{ehr}-{id}` when resolved, else a logical reference). A note without one has no
///   subject and then claims no US Core profile (US Core requires a subject).
/// - `author`: the EHR provider of `ehr_context`; without one, the note's owner: `owner`'s
///   Practitioner when the caller found the provider whose `user_id` is the owner, or
///   `Practitioner/zoom-{owner}` when that is in [`ZoomCtx::resolved`], else a logical reference
///   by Zoom user id ([`owner_reference`]).
/// - `context.period` from `note_start_time`/`note_end_time`; `context.related` the EHR
///   appointment (literal when resolved, logical otherwise).
/// - `date` and `meta.lastUpdated`: the latest of `note_last_modified_time`,
///   `note_completed_time` and `note_created_time` (the doc's example completes a note after its
///   last modification).
/// - `content[0]`: `text/markdown`, `data` the base64 of `note_content` byte for byte as Zoom
///   wrote it, `size`, `title` (the note's title) and `creation`.
pub fn clinical_note_with_owner(
    n: &wire::ClinicalNote,
    owner: Option<&wire::Provider>,
    ctx: &ZoomCtx,
) -> Result<DocumentReference, MapError> {
    let note_id = present(&n.note_id).ok_or(MapError::Missing { field: "note_id" })?;
    let native = ids::note(note_id);
    let tz = ctx.base.default_tz;
    let start = time::timestamp_field("note_start_time", &n.note_start_time, tz)?;
    let end = time::timestamp_field("note_end_time", &n.note_end_time, tz)?;
    let created = time::timestamp_field("note_created_time", &n.note_created_time, tz)?;
    let modified = time::timestamp_field("note_last_modified_time", &n.note_last_modified_time, tz)?;
    let completed = time::timestamp_field("note_completed_time", &n.note_completed_time, tz)?;
    let updated = [modified, completed, created].into_iter().flatten().max();

    let ehr = EhrRefs::read(n.ehr_context.as_ref())?;
    let subject = ehr.patient.as_ref().map(|p| Box::new(p.reference(ctx)));
    let author = match &ehr.practitioner {
        Some(p) => Some(p.reference(ctx)),
        None => author_from_owner(n, owner, ctx)?,
    };
    let related: Vec<Reference> = ehr.appointment.iter().map(|a| a.reference(ctx)).collect();

    let mut identifier = vec![native_identifier(ids::kind::DOCUMENT_REFERENCE, &native)];
    identifier.extend(meeting_identifiers(&n.meeting_id, n.meeting_number));

    let kind = NoteKind::of_note(&n.note_type, &n.note_title);
    let period = (start.is_some() || end.is_some()).then(|| {
        Box::new(Period {
            start: start.map(|t| time::fhir_instant(&t).into()),
            end: end.map(|t| time::fhir_instant(&t).into()),
            ..Default::default()
        })
    });

    let content = n.note_content.as_bytes();
    let attachment = Attachment {
        content_type: Some(MARKDOWN.into()),
        data: (!content.is_empty()).then(|| BASE64.encode(content).into()),
        size: u32::try_from(content.len()).ok().map(Into::into),
        title: fhir_text(&n.note_title),
        creation: created.map(|t| time::fhir_instant(&t).into()),
        ..Default::default()
    };

    let profile = subject.is_some().then_some(systems::PROFILE_US_CORE_DOCUMENTREFERENCE);
    Ok(DocumentReference {
        id: Some(fhir_id("note_id", &native)?.into()),
        meta: Some(Box::new(meta(ctx, updated, profile))),
        identifier,
        status: codes::DOCUMENT_CURRENT.into(),
        doc_status: Some(codes::note_doc_status(n.is_note_completed).code().into()),
        r#type: Some(Box::new(concept(vec![kind.loinc().coding()], None))),
        category: vec![concept(vec![codes::CLINICAL_NOTE_CATEGORY.coding()], None)],
        subject,
        date: updated.map(|t| time::fhir_instant(&t).into()),
        author: author.into_iter().collect(),
        description: fhir_text(&n.note_title),
        content: vec![DocumentReferenceContent {
            attachment: Box::new(attachment),
            ..Default::default()
        }],
        context: (period.is_some() || !related.is_empty()).then(|| DocumentReferenceContext {
            period,
            related,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The gateway reference to check for a note's owner (`Practitioner/zoom-{note_owner_user_id}`):
/// when Zoom provider ids are the providers' user ids, a resolved owner is linked directly.
pub fn owner_reference(n: &wire::ClinicalNote) -> Option<String> {
    let owner = present(&n.note_owner_user_id)?;
    let id = ids::fhir_id(&ids::practitioner(owner)).ok()?;
    Some(format!("Practitioner/{id}"))
}

fn author_from_owner(
    n: &wire::ClinicalNote,
    owner: Option<&wire::Provider>,
    ctx: &ZoomCtx,
) -> Result<Option<Reference>, MapError> {
    let Some(owner_id) = present(&n.note_owner_user_id) else {
        return Ok(None);
    };
    if let Some(p) = owner {
        if present(&p.user_id) != Some(owner_id) && present(&p.id) != Some(owner_id) {
            return Err(MapError::Invalid {
                field: "note_owner_user_id",
                expected: "user id of the provider given as the owner",
            });
        }
        let provider = present(&p.id).ok_or(MapError::Missing { field: "id" })?;
        return reference("id", "Practitioner", &ids::practitioner(provider)).map(Some);
    }
    if let Some(literal) = owner_reference(n).filter(|r| ctx.is_resolved(r)) {
        return Ok(Some(Reference {
            reference: Some(literal.into()),
            ..Default::default()
        }));
    }
    Ok(Some(Reference {
        r#type: Some("Practitioner".into()),
        identifier: Some(Box::new(Identifier {
            system: Some(systems::native_id_system(ids::SOURCE, ids::kind::USER).into()),
            value: Some(owner_id.into()),
            ..Default::default()
        })),
        display: Some("Zoom user who owns the note".into()),
        ..Default::default()
    }))
}

/// The Zoom call that stores a change of a note's DocumentReference from `current` (as the
/// gateway serves it) to `wanted`.
///
/// Zoom stores only a note's completion, so the only storable change is `docStatus`
/// `preliminary` → `final` (`is_note_completed: true`). Differences in `meta` and `text` are
/// ignored (the gateway owns them); an `id` left out is fine. Any other difference — a reopened
/// note, new content, another subject — is [`MapError::Unprocessable`] naming the first element
/// that differs. No change gives an empty [`wire::NotePatch`] (no call needed).
pub fn note_patch(current: &DocumentReference, wanted: &DocumentReference) -> Result<wire::NotePatch, MapError> {
    if let (Some(a), Some(b)) = (&current.id, &wanted.id)
        && a.value != b.value
    {
        return Err(MapError::unprocessable("id", "it names another note"));
    }
    let a = diff::to_json(current)?;
    let b = diff::to_json(wanted)?;
    if let Some(element) = diff::first_difference(&a, &b, &["id", "meta", "text", "docStatus", "_docStatus"]) {
        return Err(MapError::Unprocessable {
            element,
            reason: "Zoom stores only a note's completion (docStatus preliminary to final)",
        });
    }
    let status = |d: &DocumentReference| {
        d.doc_status
            .as_ref()
            .and_then(|s| s.value.as_deref())
            .and_then(FhirDocStatus::from_code)
    };
    match (status(current), status(wanted)) {
        (from, to) if from == to && !diff::element_differs(&a, &b, "_docStatus") => Ok(wire::NotePatch::default()),
        (Some(FhirDocStatus::Preliminary), Some(FhirDocStatus::Final))
            if !diff::element_differs(&a, &b, "_docStatus") =>
        {
            Ok(wire::NotePatch {
                is_note_completed: Some(true),
            })
        }
        _ => Err(MapError::unprocessable(
            "docStatus",
            "Zoom can only mark a draft note completed (preliminary to final)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;
    use serde_json::json;

    fn note(v: serde_json::Value) -> wire::ClinicalNote {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> serde_json::Value {
        json!({
            "note_id": "n1", "meeting_id": "a/b+c==", "meeting_number": 97763643885_i64,
            "note_owner_user_id": "owner_1", "note_title": "Zoom Meeting",
            "note_content": "# Plan\r\n- rest\n\\n literal", "is_note_completed": false,
            "note_created_time": "2025-05-15T03:26:08.608Z"
        })
    }

    #[test]
    fn the_content_is_zooms_markdown_byte_for_byte() {
        let d = clinical_note(&note(base()), &test_ctx()).unwrap();
        let a = &d.content[0].attachment;
        assert_eq!(a.content_type.as_ref().unwrap().value.as_deref(), Some("text/markdown"));
        let data = BASE64
            .decode(a.data.as_ref().unwrap().value.as_ref().unwrap().as_bytes())
            .unwrap();
        assert_eq!(data, b"# Plan\r\n- rest\n\\n literal");
        assert_eq!(a.size.as_ref().unwrap().value, Some(25));
    }

    #[test]
    fn an_empty_note_has_no_data() {
        let mut v = base();
        v["note_content"] = json!("");
        let d = clinical_note(&note(v), &test_ctx()).unwrap();
        assert_eq!(d.content[0].attachment.data, None);
        assert_eq!(d.content[0].attachment.size.as_ref().unwrap().value, Some(0));
    }

    #[test]
    fn a_note_without_id_or_with_bad_times_is_refused() {
        let mut v = base();
        v["note_id"] = json!(" ");
        assert_eq!(
            clinical_note(&note(v), &test_ctx()),
            Err(MapError::Missing { field: "note_id" })
        );
        let mut v = base();
        v["note_start_time"] = json!("yesterday");
        assert!(matches!(
            clinical_note(&note(v), &test_ctx()),
            Err(MapError::Invalid {
                field: "note_start_time",
                ..
            })
        ));
        let mut v = base();
        v["ehr_context"] = json!({"patient_id": "Practitioner/1"});
        let err = clinical_note(&note(v), &test_ctx()).unwrap_err();
        assert!(matches!(
            err,
            MapError::Invalid {
                field: "ehr_context.patient_id",
                ..
            }
        ));
        assert!(!err.to_string().contains("Practitioner/1"));
    }

    #[test]
    fn the_owner_is_the_author_only_without_an_ehr_provider() {
        let mut ctx = test_ctx();
        let author = |v: serde_json::Value, owner: Option<&wire::Provider>, ctx: &ZoomCtx| {
            let d = clinical_note_with_owner(&note(v), owner, ctx).unwrap();
            serde_json::to_value(d.author.first().map(|r| {
                (
                    r.reference.as_ref().and_then(|r| r.value.clone()),
                    r.identifier
                        .as_ref()
                        .and_then(|i| i.value.as_ref())
                        .and_then(|v| v.value.clone()),
                )
            }))
            .unwrap()
        };
        assert_eq!(author(base(), None, &ctx), json!([null, "owner_1"]));
        let provider = wire::Provider {
            id: "prov_9".into(),
            user_id: "owner_1".into(),
            ..Default::default()
        };
        assert_eq!(
            author(base(), Some(&provider), &ctx),
            json!(["Practitioner/zoom-x.OBZG65S7HE", null])
        );
        let stranger = wire::Provider {
            id: "prov_8".into(),
            user_id: "someone".into(),
            ..Default::default()
        };
        assert!(clinical_note_with_owner(&note(base()), Some(&stranger), &ctx).is_err());
        ctx.resolved.insert(owner_reference(&note(base())).unwrap());
        assert_eq!(
            author(base(), None, &ctx),
            json!(["Practitioner/zoom-x.N53W4ZLSL4YQ", null])
        );
        let mut v = base();
        v["ehr_context"] = json!({"provider_id": "Practitioner/34373111"});
        assert_eq!(author(v, Some(&provider), &ctx), json!([null, "34373111"]));
        let mut v = base();
        v["note_owner_user_id"] = json!("");
        assert_eq!(author(v, None, &ctx), json!(null));
    }

    fn doc(v: serde_json::Value) -> DocumentReference {
        clinical_note(&note(v), &test_ctx()).unwrap()
    }

    #[test]
    fn completing_a_draft_is_the_only_storable_change() {
        let current = doc(base());
        let mut wanted = current.clone();
        assert_eq!(note_patch(&current, &wanted), Ok(wire::NotePatch::default()));
        wanted.doc_status = Some("final".into());
        assert_eq!(
            note_patch(&current, &wanted),
            Ok(wire::NotePatch {
                is_note_completed: Some(true)
            })
        );
        // meta, text and a missing id are not changes.
        wanted.meta = None;
        wanted.id = None;
        wanted.text = Some(Box::new(adapter::fhir::types::Narrative {
            status: "generated".into(),
            div: "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>".into(),
            ..Default::default()
        }));
        assert!(note_patch(&current, &wanted).unwrap().is_note_completed == Some(true));
    }

    #[test]
    fn any_other_change_is_unprocessable_and_named() {
        let current = doc(base());
        let element = |wanted: &DocumentReference| match note_patch(&current, wanted) {
            Err(MapError::Unprocessable { element, .. }) => element,
            other => panic!("{other:?}"),
        };
        let mut wanted = current.clone();
        wanted.doc_status = Some("amended".into());
        assert_eq!(element(&wanted), "docStatus");
        let mut wanted = current.clone();
        wanted.doc_status = None;
        assert_eq!(element(&wanted), "docStatus");
        let mut wanted = current.clone();
        wanted.content[0].attachment.data = Some(BASE64.encode(b"edited").into());
        wanted.doc_status = Some("final".into());
        assert_eq!(element(&wanted), "content[0].attachment.data");
        let mut wanted = current.clone();
        wanted.description = Some("new title".into());
        assert_eq!(element(&wanted), "description");
        let mut wanted = current.clone();
        wanted.status = "entered-in-error".into();
        assert_eq!(element(&wanted), "status");
        let mut wanted = current.clone();
        wanted.id = Some("zoom-note-other".into());
        assert_eq!(element(&wanted), "id");
        // Reopening a completed note cannot be stored.
        let mut v = base();
        v["is_note_completed"] = json!(true);
        let done = doc(v);
        let mut wanted = done.clone();
        wanted.doc_status = Some("preliminary".into());
        assert!(matches!(
            note_patch(&done, &wanted),
            Err(MapError::Unprocessable { element, .. }) if element == "docStatus"
        ));
    }
}
