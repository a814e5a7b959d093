//! Providers → US Core Practitioner.

use adapter::fhir::resources::{Practitioner, PractitionerQualification};
use adapter::fhir::types::{HumanName, Identifier};
use adapter::systems;

use super::codes::ProviderStatus;
use super::patient::contact;
use super::{
    MapError, ZoomCtx, data_absent_unknown, fhir_id, fhir_text, ids, meta, native_identifier, present, text_concept,
    time,
};
use crate::wire;

/// Maps a provider to a US Core Practitioner.
///
/// - id `zoom-{provider id}`; identifiers: the native id, the Zoom `user_id` (system
///   `urn:fhir-gateway:id:zoom:user`, the one a note owner's logical reference carries) and the
///   NPI under `http://hl7.org/fhir/sid/us-npi` when sent.
/// - `name`: official, given = `first_name`, family = `last_name`, text = `display_name`; a
///   provider with none of them gets a name carrying only a `data-absent-reason`.
/// - `telecom`: `email` (work); `active` by [`ProviderStatus`]; `qualification.code.text` the
///   free-text `specialty` when sent.
/// - `meta.lastUpdated` = `updated_at`, else `created_at`.
pub fn provider(p: &wire::Provider, ctx: &ZoomCtx) -> Result<Practitioner, MapError> {
    let id = present(&p.id).ok_or(MapError::Missing { field: "id" })?;
    let native = ids::practitioner(id);
    let tz = ctx.base.default_tz;
    let created = time::timestamp_field("created_at", &p.created_at, tz)?;
    let updated = time::timestamp_field("updated_at", &p.updated_at, tz)?.or(created);

    let mut identifier = vec![native_identifier(ids::kind::PRACTITIONER, &native)];
    if let Some(user) = present(&p.user_id) {
        identifier.push(native_identifier(ids::kind::USER, user));
    }
    if let Some(npi) = fhir_text(&p.npi) {
        identifier.push(Identifier {
            system: Some(systems::NPI.into()),
            value: Some(npi),
            ..Default::default()
        });
    }

    let name = HumanName {
        r#use: Some("official".into()),
        text: fhir_text(&p.display_name),
        family: fhir_text(&p.last_name),
        given: fhir_text(&p.first_name).into_iter().collect(),
        ..Default::default()
    };
    let name = if name.text.is_some() || name.family.is_some() || !name.given.is_empty() {
        name
    } else {
        HumanName {
            extension: vec![data_absent_unknown()],
            ..Default::default()
        }
    };

    Ok(Practitioner {
        id: Some(fhir_id("id", &native)?.into()),
        meta: Some(Box::new(meta(
            ctx,
            updated,
            Some(systems::PROFILE_US_CORE_PRACTITIONER),
        ))),
        identifier,
        active: ProviderStatus::from_wire(&p.status).map(|s| s.active().into()),
        name: vec![name],
        telecom: fhir_text(&p.email)
            .map(|e| contact("email", e, Some("work")))
            .into_iter()
            .collect(),
        qualification: text_concept(&p.specialty)
            .map(|code| PractitionerQualification {
                code: Box::new(code),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;
    use serde_json::json;

    #[test]
    fn identifiers_carry_the_user_id_and_the_npi() {
        let p: wire::Provider = serde_json::from_value(json!({
            "id": "d1", "user_id": "u_1", "npi_number": "1234567893", "status": "inactive"
        }))
        .unwrap();
        let practitioner = provider(&p, &test_ctx()).unwrap();
        let ids: Vec<_> = practitioner
            .identifier
            .iter()
            .map(|i| i.value.as_ref().unwrap().value.clone().unwrap())
            .collect();
        assert_eq!(ids, ["d1", "u_1", "1234567893"]);
        assert_eq!(practitioner.active.unwrap().value, Some(false));
        assert_eq!(practitioner.name[0].extension.len(), 1);
    }

    #[test]
    fn a_provider_without_id_is_refused() {
        assert_eq!(
            provider(&wire::Provider::default(), &test_ctx()),
            Err(MapError::Missing { field: "id" })
        );
    }
}
