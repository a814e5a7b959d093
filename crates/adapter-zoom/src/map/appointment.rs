//! Virtual visits → Appointment, with the R5 `virtualService` cross-version extension.

use adapter::fhir::resources::Appointment;
use adapter::fhir::types::{CodeableConcept, Extension, ExtensionValue};
use adapter::fhir_build::accepted_participant;
use adapter::systems;
use chrono::{DateTime, Duration, FixedOffset};

use super::codes::{self, VisitStatus, VisitType};
use super::ehr::EhrRefs;
use super::{
    MapError, ZoomCtx, concept, fhir_id, ids, meeting_identifiers, meta, native_identifier, present, reference,
    text_concept, time,
};
use crate::wire;

/// The core extension naming the data type a cross-version extension carries.
pub const EXT_DATATYPE: &str = "http://hl7.org/fhir/StructureDefinition/_datatype";
/// The R5 data type of `Appointment.virtualService`.
pub const VIRTUAL_SERVICE_DATATYPE: &str = "VirtualServiceDetail";

/// Longest visit the mapping accepts (a year), against garbage durations.
const MAX_MINUTES: i64 = 60 * 24 * 366;

/// Maps a visit to an Appointment.
///
/// - id `zoom-{visit id}`; identifiers: the native id and the meeting (UUID, number) when sent.
/// - `status` by [`VisitStatus::appointment`] (an unknown status is an error).
/// - `appointmentType` by [`VisitType`] (Zoom coding, plus v2-0276 where it fits; an unknown
///   type as text); `reasonCode.text` = `reason`.
/// - `start` = `scheduled_time`; `end` = start + `duration_minutes` (= start when there is no
///   duration); `minutesDuration` when positive; `created` = `created_at`.
/// - participants (all `accepted`): the Zoom patient (`Patient/zoom-…`), the provider
///   (`Practitioner/zoom-…`, type ATND), and — when the visit's `ehr_context` names them and
///   they resolved — the EHR patient and practitioner.
/// - `supportingInformation`: the EHR appointment of `ehr_context` (the gateway's own
///   `Appointment/{ehr}-{id}` when resolved, else a logical reference). `basedOn` is not used:
///   R4 restricts it to ServiceRequest.
/// - `extension`: the R5 `virtualService` ([`virtual_service`]: `_datatype`, channel `zoom`,
///   `address` = the **patient's** join URL) and, separately, the provider's join URL under
///   [`systems::EXT_PROVIDER_JOIN_URL`] (which the gateway removes for patient-context
///   callers). The provider URL appears nowhere else.
/// - `meta.lastUpdated` = `updated_at`, else `created_at`.
pub fn visit_appointment(v: &wire::Visit, ctx: &ZoomCtx) -> Result<Appointment, MapError> {
    let visit_id = present(&v.id).ok_or(MapError::Missing { field: "id" })?;
    let native = ids::appointment(visit_id);
    let status = visit_status(v)?;
    let tz = ctx.base.default_tz;
    let (start, end) = period(v, ctx)?;
    let created = time::timestamp_field("created_at", &v.created_at, tz)?;
    let updated = time::timestamp_field("updated_at", &v.updated_at, tz)?.or(created);
    let ehr = EhrRefs::read(v.ehr_context.as_ref())?;

    let mut participant = vec![
        accepted_participant(reference("patient_id", "Patient", &patient_native(v)?)?, None),
        accepted_participant(
            reference("provider_id", "Practitioner", &provider_native(v)?)?,
            Some(concept(vec![codes::ATTENDER.coding()], None)),
        ),
    ];
    if let Some(p) = ehr.patient.as_ref().and_then(|p| p.resolved_reference(ctx)) {
        participant.push(accepted_participant(p, None));
    }
    if let Some(p) = ehr.practitioner.as_ref().and_then(|p| p.resolved_reference(ctx)) {
        participant.push(accepted_participant(
            p,
            Some(concept(vec![codes::ATTENDER.coding()], None)),
        ));
    }

    let mut identifier = vec![native_identifier(ids::kind::APPOINTMENT, &native)];
    identifier.extend(meeting_identifiers(&v.meeting_id, v.meeting_number));

    let mut extension = vec![virtual_service(present(&v.join_url_patient))];
    if let Some(url) = present(&v.join_url_provider) {
        extension.push(Extension {
            url: systems::EXT_PROVIDER_JOIN_URL.into(),
            value: Some(ExtensionValue::Url(url.into())),
            ..Default::default()
        });
    }

    let minutes = v.duration_minutes.filter(|d| *d > 0);
    Ok(Appointment {
        id: Some(fhir_id("id", &native)?.into()),
        meta: Some(Box::new(meta(ctx, updated, None))),
        extension,
        identifier,
        status: status.appointment().code().into(),
        appointment_type: appointment_type(&v.visit_type).map(Box::new),
        reason_code: text_concept(&v.reason).into_iter().collect(),
        supporting_information: ehr.appointment.iter().map(|a| a.reference(ctx)).collect(),
        start: Some(time::fhir_instant(&start).into()),
        end: Some(time::fhir_instant(&end).into()),
        minutes_duration: minutes.and_then(|m| u32::try_from(m).ok()).map(Into::into),
        created: created.map(|t| time::fhir_instant(&t).into()),
        participant,
        ..Default::default()
    })
}

/// The R5 cross-version `Appointment.virtualService` extension of a Zoom visit:
///
/// ```json
/// {"url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.virtualService",
///  "extension": [
///    {"url": "http://hl7.org/fhir/StructureDefinition/_datatype", "valueString": "VirtualServiceDetail"},
///    {"url": "channelType", "valueCoding": {"system": "http://hl7.org/fhir/virtual-service-type",
///                                           "code": "zoom", "display": "Zoom web conferencing"}},
///    {"url": "address", "valueUrl": "<the patient's join URL>"}]}
/// ```
///
/// `address` is R5's `address[x]` as a `url` (R5 JSON `addressUrl`); it is left out when the
/// visit has no patient join URL.
pub fn virtual_service(patient_join_url: Option<&str>) -> Extension {
    let mut parts = vec![
        Extension {
            url: EXT_DATATYPE.into(),
            value: Some(ExtensionValue::String(VIRTUAL_SERVICE_DATATYPE.into())),
            ..Default::default()
        },
        Extension {
            url: "channelType".into(),
            value: Some(ExtensionValue::Coding(Box::new(codes::ZOOM_CHANNEL.coding()))),
            ..Default::default()
        },
    ];
    if let Some(url) = patient_join_url {
        parts.push(Extension {
            url: "address".into(),
            value: Some(ExtensionValue::Url(url.into())),
            ..Default::default()
        });
    }
    Extension {
        url: systems::EXT_R5_VIRTUAL_SERVICE.into(),
        extension: parts,
        ..Default::default()
    }
}

/// The visit's status, parsed.
pub(crate) fn visit_status(v: &wire::Visit) -> Result<VisitStatus, MapError> {
    VisitStatus::from_wire(&v.status).ok_or(if present(&v.status).is_none() {
        MapError::Missing { field: "status" }
    } else {
        MapError::UnknownCode { field: "status" }
    })
}

/// `appointmentType` of a `visit_type`: the codings of a known type, the text of another.
pub(crate) fn appointment_type(visit_type: &str) -> Option<CodeableConcept> {
    match VisitType::from_wire(visit_type) {
        Some(t) => Some(concept(t.codings(), None)),
        None => text_concept(visit_type),
    }
}

/// The visit's planned start and end in the practice zone.
pub(crate) fn period(
    v: &wire::Visit,
    ctx: &ZoomCtx,
) -> Result<(DateTime<FixedOffset>, DateTime<FixedOffset>), MapError> {
    let tz = ctx.base.default_tz;
    let start = time::timestamp_field("scheduled_time", &v.scheduled_time, tz)?.ok_or(MapError::Missing {
        field: "scheduled_time",
    })?;
    let minutes = v.duration_minutes.unwrap_or(0);
    if !(0..=MAX_MINUTES).contains(&minutes) {
        return Err(MapError::Invalid {
            field: "duration_minutes",
            expected: "number of minutes",
        });
    }
    let end = start
        .checked_add_signed(Duration::minutes(minutes))
        .filter(|end| chrono::Datelike::year(end) <= 9999)
        .ok_or(MapError::Invalid {
            field: "duration_minutes",
            expected: "number of minutes",
        })?
        .with_timezone(&tz)
        .fixed_offset();
    Ok((start, end))
}

pub(crate) fn patient_native(v: &wire::Visit) -> Result<String, MapError> {
    present(&v.patient_id)
        .map(ids::patient)
        .ok_or(MapError::Missing { field: "patient_id" })
}

pub(crate) fn provider_native(v: &wire::Visit) -> Result<String, MapError> {
    present(&v.provider_id)
        .map(ids::practitioner)
        .ok_or(MapError::Missing { field: "provider_id" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;
    use serde_json::json;

    fn visit(v: serde_json::Value) -> wire::Visit {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> serde_json::Value {
        json!({
            "id": "v1", "patient_id": "p1", "provider_id": "d1", "status": "scheduled",
            "scheduled_time": "2024-02-01T14:00:00Z", "duration_minutes": 30,
            "join_url_patient": "https://zoom.us/j/123?pwd=xxx", "join_url_provider": "https://zoom.us/s/123?zak=yyy"
        })
    }

    fn to_json(a: &Appointment) -> serde_json::Value {
        fhirbolt::json::to_json_value(a.clone(), None).unwrap()
    }

    #[test]
    fn the_provider_url_is_only_in_its_own_extension() {
        let a = visit_appointment(&visit(base()), &test_ctx()).unwrap();
        let j = to_json(&a);
        let text = j.to_string();
        assert_eq!(text.matches("zak=yyy").count(), 1);
        let provider: Vec<_> = j["extension"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["url"] == systems::EXT_PROVIDER_JOIN_URL)
            .collect();
        assert_eq!(
            provider,
            [&json!({"url": systems::EXT_PROVIDER_JOIN_URL, "valueUrl": "https://zoom.us/s/123?zak=yyy"})]
        );
        let vs = &j["extension"][0];
        assert_eq!(vs["url"], systems::EXT_R5_VIRTUAL_SERVICE);
        assert_eq!(
            vs["extension"],
            json!([
                {"url": EXT_DATATYPE, "valueString": "VirtualServiceDetail"},
                {"url": "channelType", "valueCoding": {"system": "http://hl7.org/fhir/virtual-service-type",
                                                       "code": "zoom", "display": "Zoom web conferencing"}},
                {"url": "address", "valueUrl": "https://zoom.us/j/123?pwd=xxx"}
            ])
        );
    }

    #[test]
    fn without_join_urls_the_virtual_service_still_names_zoom() {
        let mut v = base();
        v["join_url_patient"] = json!(null);
        v["join_url_provider"] = json!("");
        let j = to_json(&visit_appointment(&visit(v), &test_ctx()).unwrap());
        assert_eq!(j["extension"].as_array().unwrap().len(), 1);
        assert_eq!(j["extension"][0]["extension"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn unusable_visits_are_errors_that_name_the_field() {
        let cases = [
            ("status", json!("postponed"), MapError::UnknownCode { field: "status" }),
            ("status", json!(""), MapError::Missing { field: "status" }),
            ("id", json!(" "), MapError::Missing { field: "id" }),
            ("patient_id", json!(null), MapError::Missing { field: "patient_id" }),
            ("provider_id", json!(""), MapError::Missing { field: "provider_id" }),
            (
                "scheduled_time",
                json!(""),
                MapError::Missing {
                    field: "scheduled_time",
                },
            ),
            (
                "scheduled_time",
                json!("soon"),
                MapError::Invalid {
                    field: "scheduled_time",
                    expected: "timestamp",
                },
            ),
            (
                "scheduled_time",
                json!("9999-12-31T23:50:00-05:00"),
                MapError::Invalid {
                    field: "duration_minutes",
                    expected: "number of minutes",
                },
            ),
            (
                "duration_minutes",
                json!(-5),
                MapError::Invalid {
                    field: "duration_minutes",
                    expected: "number of minutes",
                },
            ),
        ];
        for (key, value, expected) in cases {
            let mut v = base();
            v[key] = value;
            assert_eq!(visit_appointment(&visit(v), &test_ctx()), Err(expected));
        }
    }

    #[test]
    fn a_visit_without_duration_ends_when_it_starts() {
        let mut v = base();
        v["duration_minutes"] = json!(null);
        let a = visit_appointment(&visit(v), &test_ctx()).unwrap();
        assert_eq!(a.start, a.end);
        assert_eq!(a.minutes_duration, None);
    }

    #[test]
    fn ehr_participants_appear_only_when_resolved() {
        let mut v = base();
        v["ehr_context"] = json!({"appointment_id": "77", "patient_id": "Patient/12", "provider_id": "Practitioner/3"});
        let mut ctx = test_ctx();
        let a = visit_appointment(&visit(v.clone()), &ctx).unwrap();
        assert_eq!(a.participant.len(), 2);
        assert_eq!(a.supporting_information[0].reference, None);
        ctx.resolved
            .extend(["Patient/drchrono-12".into(), "Appointment/drchrono-77".into()]);
        let a = visit_appointment(&visit(v), &ctx).unwrap();
        let actors: Vec<_> = a
            .participant
            .iter()
            .map(|p| {
                p.actor
                    .as_ref()
                    .unwrap()
                    .reference
                    .as_ref()
                    .unwrap()
                    .value
                    .clone()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            actors,
            ["Patient/zoom-p1", "Practitioner/zoom-d1", "Patient/drchrono-12"]
        );
        assert_eq!(
            a.supporting_information[0].reference.as_ref().unwrap().value.as_deref(),
            Some("Appointment/drchrono-77")
        );
    }
}
