//! Healthcare patients → US Core Patient.

use adapter::fhir::resources::{Patient, PatientCommunication, PatientLink};
use adapter::fhir::types::{ContactPoint, HumanName};
use adapter::systems;

use super::codes::Gender;
use super::ehr::patient_ref;
use super::{
    MapError, ZoomCtx, coding, concept, data_absent_unknown, fhir_id, fhir_text, ids, meta, native_identifier, present,
    time,
};
use crate::wire;

/// Maps a Zoom patient to a US Core Patient.
///
/// - id `zoom-{patient id}`; identifier: the native id.
/// - `name`: official, given = `first_name`, family = `last_name`, text = `display_name` when
///   sent; a patient with none of them gets one name carrying only a `data-absent-reason`.
/// - `gender` by [`Gender`] (US Core requires one: absent or unknown → `unknown`).
/// - `birthDate` = `date_of_birth`; `telecom`: `email` (home), `phone`.
/// - `communication`: `language` as a BCP-47 coding (kept as text when it is not a tag).
/// - `link` (`seealso`) to the EHR patient this one mirrors (`ehr_context.patient_id`, else
///   `external_id`): `Patient/{ehr}-{id}` when resolved, else a logical reference.
/// - `meta.lastUpdated` = `updated_at`, else `created_at`.
pub fn patient(p: &wire::Patient, ctx: &ZoomCtx) -> Result<Patient, MapError> {
    let id = present(&p.id).ok_or(MapError::Missing { field: "id" })?;
    let native = ids::patient(id);
    let tz = ctx.base.default_tz;
    let created = time::timestamp_field("created_at", &p.created_at, tz)?;
    let updated = time::timestamp_field("updated_at", &p.updated_at, tz)?.or(created);
    let birth_date = time::date_field("date_of_birth", &p.date_of_birth)?;
    let ehr = patient_ref(p)?;

    let mut telecom = Vec::new();
    if let Some(email) = fhir_text(&p.email) {
        telecom.push(contact("email", email, Some("home")));
    }
    if let Some(phone) = fhir_text(&p.phone) {
        telecom.push(contact("phone", phone, None));
    }

    Ok(Patient {
        id: Some(fhir_id("id", &native)?.into()),
        meta: Some(Box::new(meta(ctx, updated, Some(systems::PROFILE_US_CORE_PATIENT)))),
        identifier: vec![native_identifier(ids::kind::PATIENT, &native)],
        name: vec![name(p)],
        telecom,
        gender: Some(Gender::from_wire(&p.gender).fhir().into()),
        birth_date: birth_date.map(|d| time::fhir_date(&d).into()),
        communication: communication(&p.language).into_iter().collect(),
        link: ehr
            .map(|r| PatientLink {
                other: Box::new(r.reference(ctx)),
                r#type: "seealso".into(),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        ..Default::default()
    })
}

fn name(p: &wire::Patient) -> HumanName {
    let name = HumanName {
        r#use: Some("official".into()),
        text: fhir_text(&p.display_name),
        family: fhir_text(&p.last_name),
        given: fhir_text(&p.first_name).into_iter().collect(),
        ..Default::default()
    };
    if name.text.is_some() || name.family.is_some() || !name.given.is_empty() {
        name
    } else {
        HumanName {
            extension: vec![data_absent_unknown()],
            ..Default::default()
        }
    }
}

pub(crate) fn contact(system: &str, value: adapter::fhir::types::String, use_: Option<&str>) -> ContactPoint {
    ContactPoint {
        system: Some(system.into()),
        value: Some(value),
        r#use: use_.map(Into::into),
        ..Default::default()
    }
}

/// `communication` from a BCP-47 tag (`en`, `en-US`, `zh-Hant-TW`); other text as `text` only.
fn communication(language: &str) -> Option<PatientCommunication> {
    let tag = present(language)?;
    let language = if is_bcp47(tag) {
        concept(vec![coding(systems::URN_IETF_BCP47, tag, tag)], None)
    } else {
        super::text_concept(tag)?
    };
    Some(PatientCommunication {
        language: Box::new(language),
        ..Default::default()
    })
}

/// A plausible BCP-47 tag: a 2–3 letter language, then subtags of 1–8 letters or digits.
fn is_bcp47(s: &str) -> bool {
    let mut parts = s.split('-');
    let language_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
    language_ok && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;
    use serde_json::json;

    fn patient_of(v: serde_json::Value) -> Result<Patient, MapError> {
        patient(&serde_json::from_value(v).unwrap(), &test_ctx())
    }

    #[test]
    fn bcp47_tags_are_coded_and_other_languages_kept_as_text() {
        for good in ["en", "en-US", "zh-Hant-TW", "haw"] {
            assert!(is_bcp47(good), "{good}");
        }
        for bad in ["", "english", "e", "en_US", "en-", "en-toolongsubtag"] {
            assert!(!is_bcp47(bad), "{bad}");
        }
        let c = communication("English").unwrap();
        assert_eq!(c.language.text.unwrap().value.as_deref(), Some("English"));
        assert!(communication(" ").is_none());
    }

    #[test]
    fn a_nameless_patient_says_the_name_is_unknown() {
        let p = patient_of(json!({"id": "p1"})).unwrap();
        assert_eq!(p.name[0].extension[0].url, crate::map::DATA_ABSENT_REASON);
        assert_eq!(p.gender.unwrap().value.as_deref(), Some("unknown"));
        let p = patient_of(json!({"id": "p1", "name": "Ann Lee"})).unwrap();
        assert_eq!(p.name[0].text.as_ref().unwrap().value.as_deref(), Some("Ann Lee"));
    }

    #[test]
    fn unusable_patients_are_errors_that_name_the_field() {
        assert_eq!(patient_of(json!({"id": ""})), Err(MapError::Missing { field: "id" }));
        let err = patient_of(json!({"id": "p1", "date_of_birth": "1.2.1980"})).unwrap_err();
        assert_eq!(
            err,
            MapError::Invalid {
                field: "date_of_birth",
                expected: "date"
            }
        );
        assert!(!err.to_string().contains("1980"));
    }
}
