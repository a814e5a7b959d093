//! `/api/doctors` → US Core Practitioner.

use adapter::fhir::resources::{Practitioner, PractitionerQualification};
use adapter::fhir::types::{HumanName, Identifier};
use adapter::systems;
use chrono_tz::Tz;

use super::codes::Telecom;
use super::contact::{photo, telecom};
use super::{
    DrCtx, MapError, data_absent_unknown, fhir_id, fhir_text, ids, meta, native_identifier, text_concept, time,
};
use crate::wire;

/// The doctor's own time zone, when `timezone` names an IANA zone. Use it to fill
/// [`DrCtx::doctor_tz`].
pub fn doctor_timezone(d: &wire::Doctor) -> Option<Tz> {
    d.timezone.trim().parse().ok()
}

/// Maps a DrChrono doctor to a US Core Practitioner.
///
/// - `identifier`: the native id, and the NPI under `http://hl7.org/fhir/sid/us-npi`:
///   `npi_number`, else `group_npi_number` ("If both this field and group_npi_number are set,
///   prefer this field").
/// - `name`: official, family = last name, given = first name, suffix.
/// - `qualification.code.text`: the free-text `specialty`.
/// - `telecom`: office phone (work), cell (mobile), home phone, email (work).
/// - `active` = not `is_account_suspended`.
/// - `meta.lastUpdated`: `updated_at` if sent (the documents list none), else the mapping's `now`.
pub fn practitioner(d: &wire::Doctor, ctx: &DrCtx) -> Result<Practitioner, MapError> {
    if d.id <= 0 {
        return Err(MapError::Missing { field: "id" });
    }
    let native = ids::practitioner(d.id);
    let tz = doctor_timezone(d).unwrap_or_else(|| ctx.tz_for(Some(d.id)));
    let updated = time::timestamp_field("updated_at", &d.updated_at, tz)?;

    let mut identifier = vec![native_identifier(ids::kind::PRACTITIONER, &native)];
    let npi = fhir_text(&d.npi_number).or_else(|| fhir_text(&d.group_npi_number));
    if let Some(npi) = npi {
        identifier.push(Identifier {
            system: Some(systems::NPI.into()),
            value: Some(npi),
            ..Default::default()
        });
    }

    let name = HumanName {
        r#use: Some("official".into()),
        family: fhir_text(&d.last_name),
        given: fhir_text(&d.first_name).into_iter().collect(),
        suffix: fhir_text(&d.suffix).into_iter().collect(),
        ..Default::default()
    };
    let name = if name.family.is_some() || !name.given.is_empty() {
        name
    } else {
        HumanName {
            extension: vec![data_absent_unknown()],
            ..Default::default()
        }
    };

    let qualification = text_concept(&d.specialty)
        .map(|code| PractitionerQualification {
            code: Box::new(code),
            ..Default::default()
        })
        .into_iter()
        .collect();

    Ok(Practitioner {
        id: Some(fhir_id("id", &native)?.into()),
        meta: Some(Box::new(meta(
            ctx,
            tz,
            updated,
            Some(systems::PROFILE_US_CORE_PRACTITIONER),
        ))),
        identifier,
        active: Some((!d.is_account_suspended).into()),
        name: vec![name],
        telecom: telecom(&[
            (Telecom::WorkPhone, &d.office_phone),
            (Telecom::MobilePhone, &d.cell_phone),
            (Telecom::HomePhone, &d.home_phone),
            (Telecom::WorkEmail, &d.email),
            (Telecom::WorkUrl, &d.website),
        ]),
        photo: photo(&d.profile_picture).into_iter().collect(),
        qualification,
        ..Default::default()
    })
}
