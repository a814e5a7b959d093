//! `/api/documents` → US Core DocumentReference pointing at the uploaded file.

use adapter::fhir::resources::{DocumentReference, DocumentReferenceContent};
use adapter::fhir::types::{Attachment, CodeableConcept, Coding};
use adapter::systems;

use super::codes::{self, DocumentStatus, FileType};
use super::ids::DocumentId;
use super::{DrCtx, MapError, concept, fhir_id, fhir_text, ids, meta, native_identifier, present, reference, time};
use crate::wire;

/// Maps an uploaded document.
///
/// - `status`: `current`, or `entered-in-error` when `archived` (DrChrono's DELETE).
/// - `type`: v3-NullFlavor `UNK` (DrChrono does not classify uploads; US Core's type value set
///   includes UNK), `category` text "Document".
/// - `subject`: the patient; `author`: the doctor; `date`: the document's `date`, as the start of
///   that day in the practice zone; `description` and `content.attachment.title`: `description`.
/// - `content.attachment.url`: the file's URL, `contentType` from its extension when known
///   ([`FileType`]). A document without a file URL cannot be a US Core DocumentReference and is
///   an error.
/// - `meta.tag`: one coding per metatag under `adapter::systems::DOC_TAGS`; the code is the tag
///   with its whitespace normalised (FHIR codes allow single inner spaces only), the display is
///   the tag as written. Duplicates are dropped.
pub fn document(d: &wire::Document, ctx: &DrCtx) -> Result<DocumentReference, MapError> {
    if d.id <= 0 {
        return Err(MapError::Missing { field: "id" });
    }
    let native = ids::document(&DocumentId::Document(d.id));
    let tz = ctx.tz_for(d.doctor);
    let updated = time::timestamp_field("updated_at", &d.updated_at, tz)?;
    let date = time::date_field("date", &d.date)?.map(|day| time::start_of_day(day, tz));
    let patient = d
        .patient
        .filter(|p| *p > 0)
        .ok_or(MapError::Missing { field: "patient" })?;
    let url = present(&d.document).ok_or(MapError::Missing { field: "document" })?;

    let mut meta = meta(ctx, tz, updated, Some(systems::PROFILE_US_CORE_DOCUMENTREFERENCE));
    meta.tag = tags(&d.metatags);

    Ok(DocumentReference {
        id: Some(fhir_id("id", &native)?.into()),
        meta: Some(Box::new(meta)),
        identifier: vec![native_identifier(ids::kind::DOCUMENT_REFERENCE, &native)],
        status: DocumentStatus::from_archived(d.archived).code().into(),
        r#type: Some(Box::new(concept(vec![codes::UNKNOWN_DOCUMENT_TYPE.coding()], None))),
        category: vec![CodeableConcept {
            text: Some("Document".into()),
            ..Default::default()
        }],
        subject: Some(Box::new(reference("patient", "Patient", &ids::patient(patient))?)),
        date: date.map(|t| time::fhir_instant(&t).into()),
        author: match d.doctor.filter(|d| *d > 0) {
            Some(doctor) => vec![reference("doctor", "Practitioner", &ids::practitioner(doctor))?],
            None => Vec::new(),
        },
        description: fhir_text(&d.description),
        content: vec![DocumentReferenceContent {
            attachment: Box::new(Attachment {
                content_type: FileType::from_url(url).map(|t| t.mime().into()),
                url: Some(url.into()),
                title: fhir_text(&d.description),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// One `meta.tag` coding per distinct, non-blank metatag.
fn tags(metatags: &[String]) -> Vec<Coding> {
    let mut out: Vec<Coding> = Vec::new();
    for tag in metatags {
        let code = tag.split_whitespace().collect::<Vec<_>>().join(" ");
        if code.is_empty()
            || out
                .iter()
                .any(|c| c.code.as_ref().and_then(|c| c.value.as_deref()) == Some(&code))
        {
            continue;
        }
        out.push(Coding {
            system: Some(systems::DOC_TAGS.into()),
            display: fhir_text(tag),
            code: Some(code.into()),
            ..Default::default()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_valid_distinct_codes() {
        let tags = tags(&["Lab".into(), "  insurance \t card ".into(), "Lab".into(), " ".into()]);
        let got: Vec<_> = tags
            .iter()
            .map(|c| {
                (
                    c.code.as_ref().unwrap().value.clone().unwrap(),
                    c.display.as_ref().unwrap().value.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("Lab".to_owned(), "Lab".to_owned()),
                ("insurance card".to_owned(), "insurance \t card".to_owned()),
            ]
        );
    }
}

#[cfg(test)]
mod mapping_tests {
    use super::*;
    use crate::map::test_ctx;

    fn doc(v: serde_json::Value) -> wire::Document {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_document_needs_a_file_and_a_patient() {
        let no_file = doc(serde_json::json!({"id": 1, "patient": 2, "document": null}));
        assert_eq!(
            document(&no_file, &test_ctx()),
            Err(MapError::Missing { field: "document" })
        );
        let no_patient = doc(serde_json::json!({"id": 1, "document": "https://x/a.pdf"}));
        assert_eq!(
            document(&no_patient, &test_ctx()),
            Err(MapError::Missing { field: "patient" })
        );
    }

    #[test]
    fn a_malformed_date_is_an_error() {
        let d = doc(serde_json::json!({
            "id": 1, "patient": 2, "document": "https://x/a.pdf", "date": "June 3"
        }));
        assert!(matches!(
            document(&d, &test_ctx()),
            Err(MapError::Invalid { field: "date", .. })
        ));
    }
}
