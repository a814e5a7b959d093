//! `/api/patients` → US Core Patient.

use adapter::fhir::resources::{Patient, PatientCommunication, PatientContact, PatientDeceased};
use adapter::fhir::types::{CodeableConcept, Extension, ExtensionValue, HumanName, Identifier};
use adapter::systems;

use super::codes::{self, Code, Ethnicity, Gender, Language, OmbAnswer, PatientStatus, Race, Telecom};
use super::contact::{address, photo, telecom};
use super::{
    DrCtx, MapError, concept, data_absent_unknown, fhir_id, fhir_text, ids, meta, native_identifier, present,
    reference, time,
};
use crate::wire;

/// Maps a DrChrono patient to a US Core Patient.
///
/// - `name`: the official name (given = first + middle, family = last, prefix/suffix when sent)
///   and `nick_name` as a `usual` name; a patient with neither gets one name carrying only a
///   `data-absent-reason` (US Core requires a name).
/// - `gender`: see [`Gender`] (blank and unknown values → `unknown`, as US Core requires one).
/// - `active`/`deceasedBoolean` from `patient_status` ([`PatientStatus`]); blank → no `active`.
/// - race and ethnicity: the US Core extensions ([`Race`], [`Ethnicity`]); blank → none.
/// - `communication` from `preferred_language` ([`Language`]).
/// - `contact`: the emergency contact, role v2-0131 `C` plus the vendor's free-text relation.
/// - `identifier`: the native id and `chart_id` (type MR). The social security number is never
///   mapped.
pub fn patient(p: &wire::Patient, ctx: &DrCtx) -> Result<Patient, MapError> {
    if p.id <= 0 {
        return Err(MapError::Missing { field: "id" });
    }
    let native = ids::patient(p.id);
    let tz = ctx.tz_for(p.doctor);
    let updated = time::timestamp_field("updated_at", &p.updated_at, tz)?;

    let status = match present(&p.patient_status) {
        None => None,
        Some(s) => Some(PatientStatus::from_wire(s).ok_or(MapError::UnknownCode {
            field: "patient_status",
        })?),
    };

    let birth_date = time::date_field("date_of_birth", &p.date_of_birth)?;

    let race = match Race::from_wire(&p.race) {
        Some(race) => race.answer().map(|a| omb_extension(systems::US_CORE_RACE, a)),
        None => fhir_text(&p.race).map(|t| text_only_extension(systems::US_CORE_RACE, t)),
    };
    let race = match race {
        Some(mut ext) => {
            add_detailed_races(&mut ext, &p.race_subcategories);
            Some(ext)
        }
        None => subcategory_only_race(&p.race_subcategories),
    };
    let ethnicity = match Ethnicity::from_wire(&p.ethnicity) {
        Some(e) => e.answer().map(|a| omb_extension(systems::US_CORE_ETHNICITY, a)),
        None => fhir_text(&p.ethnicity).map(|t| text_only_extension(systems::US_CORE_ETHNICITY, t)),
    };
    let extension: Vec<Extension> = race.into_iter().chain(ethnicity).collect();

    let general_practitioner = match p.doctor.filter(|d| *d > 0) {
        Some(d) => vec![reference("doctor", "Practitioner", &ids::practitioner(d))?],
        None => Vec::new(),
    };

    Ok(Patient {
        id: Some(fhir_id("id", &native)?.into()),
        meta: Some(Box::new(meta(ctx, tz, updated, Some(systems::PROFILE_US_CORE_PATIENT)))),
        extension,
        identifier: identifiers(p, &native),
        active: status.map(|s| s.active().into()),
        name: names(p),
        telecom: telecom(&[
            (Telecom::MobilePhone, &p.cell_phone),
            (Telecom::HomePhone, &p.home_phone),
            (Telecom::WorkPhone, &p.office_phone),
            (Telecom::HomeEmail, &p.email),
        ]),
        gender: Some(Gender::from_wire(&p.gender).fhir().into()),
        birth_date: birth_date.map(|d| time::fhir_date(&d).into()),
        deceased: status
            .and_then(PatientStatus::deceased)
            .map(|d| PatientDeceased::Boolean(d.into())),
        address: address(&p.address, &p.city, &p.state, &p.zip_code, "US", Some("home"))
            .into_iter()
            .collect(),
        photo: photo(&p.patient_photo).into_iter().collect(),
        contact: emergency_contact(p).into_iter().collect(),
        communication: communication(p).into_iter().collect(),
        general_practitioner,
        ..Default::default()
    })
}

fn identifiers(p: &wire::Patient, native: &str) -> Vec<Identifier> {
    let mut out = vec![native_identifier(ids::kind::PATIENT, native)];
    if let Some(chart) = fhir_text(&p.chart_id) {
        out.push(Identifier {
            r#use: Some("usual".into()),
            r#type: Some(Box::new(concept(vec![codes::MEDICAL_RECORD_NUMBER.coding()], None))),
            system: Some(systems::native_id_system(ids::SOURCE, ids::kind::CHART).into()),
            value: Some(chart),
            ..Default::default()
        });
    }
    out
}

fn names(p: &wire::Patient) -> Vec<HumanName> {
    let mut out = Vec::new();
    let given: Vec<_> = [&p.first_name, &p.middle_name]
        .into_iter()
        .filter_map(|s| fhir_text(s))
        .collect();
    let official = HumanName {
        r#use: Some("official".into()),
        family: fhir_text(&p.last_name),
        given,
        prefix: fhir_text(&p.prefix).into_iter().collect(),
        suffix: fhir_text(&p.suffix).into_iter().collect(),
        ..Default::default()
    };
    if official.family.is_some() || !official.given.is_empty() {
        out.push(official);
    }
    if let Some(nick) = fhir_text(&p.nick_name) {
        out.push(HumanName {
            r#use: Some("usual".into()),
            given: vec![nick],
            ..Default::default()
        });
    }
    if out.is_empty() {
        out.push(HumanName {
            extension: vec![data_absent_unknown()],
            ..Default::default()
        });
    }
    out
}

fn emergency_contact(p: &wire::Patient) -> Option<PatientContact> {
    let name = fhir_text(&p.emergency_contact_name);
    let phone = telecom(&[(Telecom::Phone, &p.emergency_contact_phone)]);
    if name.is_none() && phone.is_empty() {
        return None;
    }
    let mut relationship = vec![concept(vec![codes::EMERGENCY_CONTACT.coding()], None)];
    if let Some(relation) = fhir_text(&p.emergency_contact_relation) {
        relationship.push(CodeableConcept {
            text: Some(relation),
            ..Default::default()
        });
    }
    Some(PatientContact {
        relationship,
        name: name.map(|text| {
            Box::new(HumanName {
                text: Some(text),
                ..Default::default()
            })
        }),
        telecom: phone,
        ..Default::default()
    })
}

fn communication(p: &wire::Patient) -> Option<PatientCommunication> {
    let code = &p.preferred_language;
    if Language::is_no_language(code) {
        return None;
    }
    let language = match Language::from_iso639_2(code) {
        Some(lang) => concept(
            vec![lang.code().coding()],
            present(&p.preferred_language_description).or(Some(lang.display())),
        ),
        // Not in the table: keep what DrChrono said as text.
        None => CodeableConcept {
            text: fhir_text(&p.preferred_language_description).or_else(|| fhir_text(code)),
            ..Default::default()
        },
    };
    Some(PatientCommunication {
        language: Box::new(language),
        preferred: Some(true.into()),
        ..Default::default()
    })
}

fn omb_extension(url: &str, answer: OmbAnswer) -> Extension {
    let mut parts = Vec::new();
    if let Some(omb) = answer.omb_category {
        parts.push(coding_part("ombCategory", omb));
    }
    if let Some(detailed) = answer.detailed {
        parts.push(coding_part("detailed", detailed));
    }
    parts.push(text_part(answer.text.into()));
    Extension {
        url: url.into(),
        extension: parts,
        ..Default::default()
    }
}

fn text_only_extension(url: &str, text: adapter::fhir::types::String) -> Extension {
    Extension {
        url: url.into(),
        extension: vec![text_part(text)],
        ..Default::default()
    }
}

fn coding_part(url: &str, code: Code) -> Extension {
    Extension {
        url: url.into(),
        value: Some(ExtensionValue::Coding(Box::new(code.coding()))),
        ..Default::default()
    }
}

fn text_part(text: adapter::fhir::types::String) -> Extension {
    Extension {
        url: "text".into(),
        value: Some(ExtensionValue::String(text)),
        ..Default::default()
    }
}

/// A CDC race code (`NNNN-N`) from `race_subcategories`.
fn detailed_race(sub: &wire::RaceSubcategory) -> Option<adapter::fhir::types::Coding> {
    let code = sub.code.trim();
    let b = code.as_bytes();
    let well_formed = b.len() == 6 && b[4] == b'-' && b[..4].iter().all(u8::is_ascii_digit) && b[5].is_ascii_digit();
    if !well_formed {
        return None;
    }
    Some(adapter::fhir::types::Coding {
        system: Some(systems::CDC_RACE_ETHNICITY.into()),
        code: Some(code.into()),
        display: fhir_text(&sub.description),
        ..Default::default()
    })
}

/// Adds the patient's detailed race codes before the extension's `text` part.
fn add_detailed_races(ext: &mut Extension, subs: &[wire::RaceSubcategory]) {
    let detailed: Vec<Extension> = subs
        .iter()
        .filter_map(detailed_race)
        .map(|c| Extension {
            url: "detailed".into(),
            value: Some(ExtensionValue::Coding(Box::new(c))),
            ..Default::default()
        })
        .collect();
    let at = ext
        .extension
        .iter()
        .position(|e| e.url == "text")
        .unwrap_or(ext.extension.len());
    ext.extension.splice(at..at, detailed);
}

/// A race extension from detailed codes alone (race blank but subcategories sent).
fn subcategory_only_race(subs: &[wire::RaceSubcategory]) -> Option<Extension> {
    let described: Vec<&str> = subs
        .iter()
        .filter(|s| detailed_race(s).is_some())
        .filter_map(|s| present(&s.description))
        .collect();
    if !subs.iter().any(|s| detailed_race(s).is_some()) {
        return None;
    }
    let text = if described.is_empty() {
        "Detailed race".to_owned()
    } else {
        described.join(", ")
    };
    let mut ext = text_only_extension(systems::US_CORE_RACE, text.into());
    add_detailed_races(&mut ext, subs);
    Some(ext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;

    fn with(field: &str, value: &str) -> wire::Patient {
        let mut p = serde_json::json!({"id": 1, "first_name": "A"});
        p[field] = value.into();
        serde_json::from_value(p).unwrap()
    }

    #[test]
    fn an_unknown_patient_status_is_an_error() {
        let err = patient(&with("patient_status", "Q"), &test_ctx()).unwrap_err();
        assert_eq!(
            err,
            MapError::UnknownCode {
                field: "patient_status"
            }
        );
        let p = patient(&with("patient_status", ""), &test_ctx()).unwrap();
        assert_eq!(p.active, None);
        assert_eq!(p.deceased, None);
    }

    #[test]
    fn a_malformed_birth_date_is_an_error_naming_the_field_only() {
        let err = patient(&with("date_of_birth", "02/29/1984"), &test_ctx()).unwrap_err();
        assert_eq!(
            err,
            MapError::Invalid {
                field: "date_of_birth",
                expected: "date"
            }
        );
        assert!(!err.to_string().contains("1984"));
    }

    #[test]
    fn a_patient_needs_an_id() {
        let p: wire::Patient = serde_json::from_value(serde_json::json!({"first_name": "A"})).unwrap();
        assert_eq!(patient(&p, &test_ctx()), Err(MapError::Missing { field: "id" }));
    }

    #[test]
    fn the_ssn_is_never_mapped() {
        let p = with("social_security_number", "987-65-4321");
        let json = fhirbolt::json::to_string(&patient(&p, &test_ctx()).unwrap(), None).unwrap();
        assert!(!json.contains("987-65-4321") && !json.contains("987654321"));
    }

    #[test]
    fn a_language_description_without_a_known_code_is_kept_as_text() {
        let p = with("preferred_language", "tlh");
        let c = &patient(&p, &test_ctx()).unwrap().communication[0];
        assert!(c.language.coding.is_empty());
        assert_eq!(c.language.text.as_ref().unwrap().value.as_deref(), Some("tlh"));
    }
}
