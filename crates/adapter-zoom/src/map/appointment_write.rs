//! Appointment writes → Zoom visit calls (`POST`, `PATCH`, `DELETE /healthcare/visits`).
//!
//! Both mappings refuse a write whole, with [`MapError::Unprocessable`] naming the first FHIR
//! element Zoom cannot store, rather than store part of it.

use adapter::fhir::resources::{Appointment, AppointmentParticipant};
use adapter::fhir::types::{Extension, ExtensionValue, Reference};
use adapter::{FhirId, systems};
use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use super::appointment::{EXT_DATATYPE, VIRTUAL_SERVICE_DATATYPE, period, visit_appointment, visit_status};
use super::codes::{self, FhirAppointmentStatus, VisitStatus, VisitType};
use super::ids::ZoomId;
use super::{MapError, ZoomCtx, diff, present, time};
use crate::wire;

/// What a change of a visit's Appointment needs at Zoom.
#[derive(Debug, Clone, PartialEq)]
pub enum VisitChange {
    /// Nothing Zoom stores changed.
    None,
    /// `PATCH /healthcare/visits/{visitId}` with this body.
    Patch(wire::VisitPatch),
    /// `DELETE /healthcare/visits/{visitId}` (Zoom's "Cancel visit").
    Cancel,
}

/// Longest visit a write may ask for (a day).
const MAX_MINUTES: i64 = 24 * 60;

/// The top-level elements a new visit can be made of.
const CREATE_ELEMENTS: &[&str] = &[
    "resourceType",
    "id",
    "meta",
    "text",
    "status",
    "extension",
    "start",
    "end",
    "minutesDuration",
    "participant",
    "reasonCode",
    "appointmentType",
    "supportingInformation",
];

/// The body of `POST /healthcare/visits` that creates `a`.
///
/// The Appointment must be `booked`, carry the R5 `virtualService` extension with channel
/// `zoom` (without an address: Zoom makes the join URLs), a `start`, an `end` or
/// `minutesDuration` (whole minutes, agreeing when both are given), exactly one Zoom patient
/// (`Patient/zoom-…`) and one Zoom provider (`Practitioner/zoom-…`) among its participants (all
/// `accepted`). It may carry one `reasonCode` (text only), an `appointmentType` naming a Zoom
/// visit type (by [`VisitType`] coding or text), and the EHR's own patient, practitioner
/// (participants) and appointment (`supportingInformation`, literal or logical) of the
/// configured EHR source, which go to `ehr_context`. Anything else is
/// [`MapError::Unprocessable`]. `id`, `meta` and `text` are ignored.
///
/// The visit gets HIPAA-safe settings: waiting room on, encryption required, recording off
/// ([`wire::VisitSettings::hipaa`]), and the doc's HIPAA `meeting_settings`
/// ([`wire::MeetingSettings::hipaa`]).
pub fn create_visit(a: &Appointment, ctx: &ZoomCtx) -> Result<wire::CreateVisit, MapError> {
    let json = diff::to_json(a)?;
    if let Some(key) = json
        .as_object()
        .and_then(|o| o.keys().find(|k| !CREATE_ELEMENTS.contains(&k.as_str())))
    {
        return Err(MapError::unprocessable(key.clone(), "a Zoom visit cannot store it"));
    }
    if a.status.value.as_deref() != Some(FhirAppointmentStatus::Booked.code()) {
        return Err(MapError::unprocessable("status", "a new Zoom visit is booked"));
    }
    check_extensions(&a.extension)?;

    let start = a
        .start
        .as_ref()
        .and_then(|s| s.value.as_deref())
        .and_then(time::parse_fhir_instant)
        .ok_or(MapError::unprocessable("start", "a Zoom visit needs a start instant"))?;
    let minutes = duration(
        start,
        a.end.as_ref().and_then(|e| e.value.as_deref()),
        a.minutes_duration.as_ref().and_then(|m| m.value),
    )?;

    let people = participants(&a.participant, &json, ctx)?;
    let patient_id = people.patient.ok_or(MapError::unprocessable(
        "participant",
        "a Zoom visit needs a Zoom patient (Patient/zoom-…)",
    ))?;
    let provider_id = people.provider.ok_or(MapError::unprocessable(
        "participant",
        "a Zoom visit needs a Zoom provider (Practitioner/zoom-…)",
    ))?;

    let ehr_appointment = ehr_appointment(&a.supporting_information, ctx)?;
    let ehr_context = wire::EhrContext {
        appointment_id: ehr_appointment.unwrap_or_default(),
        patient_id: people.ehr_patient.map(|p| format!("Patient/{p}")).unwrap_or_default(),
        provider_id: people
            .ehr_practitioner
            .map(|p| format!("Practitioner/{p}"))
            .unwrap_or_default(),
    };

    Ok(wire::CreateVisit {
        patient_id,
        provider_id,
        scheduled_time: time::zoom_utc(&start),
        duration_minutes: minutes,
        visit_type: visit_type(a)?.map(|t| t.wire().to_owned()).unwrap_or_default(),
        reason: reason(a)?.unwrap_or_default(),
        settings: wire::VisitSettings::hipaa(),
        meeting_settings: Some(wire::MeetingSettings::hipaa()),
        notifications: None,
        ehr_context: (!ehr_context.is_empty()).then_some(ehr_context),
    })
}

/// What it takes at Zoom to change `current`'s Appointment (as [`visit_appointment`] maps it
/// with the same `ctx`) into `wanted`.
///
/// - `start`, `end`, `minutesDuration` → `scheduled_time`/`duration_minutes`. Moving `start`
///   alone keeps the duration; a changed `end` sets the duration from the new start to it; a
///   changed `minutesDuration` sets it (both changed must agree). Only a `scheduled` visit can
///   be rescheduled.
/// - `reasonCode` (one, text only, or none to clear it) → `reason`.
/// - `status` `cancelled` → [`VisitChange::Cancel`], only with no other change and only for a
///   visit that has not finished.
///
/// `meta`, `text` and a missing `id` are ignored. Any other difference (another status,
/// participant, type, join URL, ...) is [`MapError::Unprocessable`] naming the element.
pub fn visit_patch(current: &wire::Visit, wanted: &Appointment, ctx: &ZoomCtx) -> Result<VisitChange, MapError> {
    let served = visit_appointment(current, ctx)?;
    if let (Some(a), Some(b)) = (&served.id, &wanted.id)
        && a.value != b.value
    {
        return Err(MapError::unprocessable("id", "it names another visit"));
    }
    let a = diff::to_json(&served)?;
    let b = diff::to_json(wanted)?;
    let mutable = [
        "id",
        "meta",
        "text",
        "status",
        "start",
        "end",
        "minutesDuration",
        "reasonCode",
    ];
    if let Some(element) = diff::first_difference(&a, &b, &mutable) {
        return Err(MapError::Unprocessable {
            element,
            reason: "Zoom can change only a visit's start, end, minutesDuration and reasonCode, or cancel it",
        });
    }

    let status = visit_status(current)?;
    let cancel = match wanted.status.value.as_deref() {
        s if s == served.status.value.as_deref() => false,
        Some("cancelled") => true,
        _ => return Err(MapError::unprocessable("status", "a Zoom visit can only be cancelled")),
    };
    let changed: Vec<&str> = ["start", "end", "minutesDuration", "reasonCode"]
        .into_iter()
        .filter(|k| diff::element_differs(&a, &b, k))
        .collect();
    if cancel {
        if let Some(element) = changed.first() {
            return Err(MapError::unprocessable(
                *element,
                "a visit is cancelled without changing anything else",
            ));
        }
        if status.is_final() {
            return Err(MapError::unprocessable(
                "status",
                "a finished visit cannot be cancelled",
            ));
        }
        return Ok(VisitChange::Cancel);
    }
    let Some(first) = changed.first() else {
        return Ok(VisitChange::None);
    };
    if status != VisitStatus::Scheduled {
        return Err(MapError::unprocessable(*first, "only a scheduled visit can be changed"));
    }

    let mut patch = wire::VisitPatch::default();
    if changed.iter().any(|k| *k != "reasonCode") {
        let (current_start, _) = period(current, ctx)?;
        let current_minutes = current.duration_minutes.unwrap_or(0);
        let start = wanted
            .start
            .as_ref()
            .and_then(|s| s.value.as_deref())
            .and_then(time::parse_fhir_instant)
            .ok_or(MapError::unprocessable("start", "a Zoom visit needs a start instant"))?;
        let end = wanted.end.as_ref().and_then(|e| e.value.as_deref());
        let minutes = wanted.minutes_duration.as_ref().and_then(|m| m.value);
        let new_minutes = match (changed.contains(&"end"), changed.contains(&"minutesDuration")) {
            (true, false) => duration(start, Some(end.ok_or(end_needed())?), None)?,
            (false, true) => duration(
                start,
                None,
                Some(minutes.ok_or(MapError::unprocessable(
                    "minutesDuration",
                    "a Zoom visit keeps a duration",
                ))?),
            )?,
            (true, true) => duration(start, Some(end.ok_or(end_needed())?), minutes)?,
            (false, false) => current_minutes,
        };
        if start != current_start {
            patch.scheduled_time = Some(time::zoom_utc(&start));
        }
        if new_minutes != current_minutes {
            patch.duration_minutes = Some(new_minutes);
        }
    }
    if changed.contains(&"reasonCode") {
        patch.reason = Some(reason(wanted)?.unwrap_or_default());
    }
    Ok(if patch.is_empty() {
        VisitChange::None
    } else {
        VisitChange::Patch(patch)
    })
}

fn end_needed() -> MapError {
    MapError::unprocessable("end", "a Zoom visit needs an end or minutesDuration")
}

/// The visit's length in minutes from `end` and/or `minutesDuration`.
fn duration(start: DateTime<FixedOffset>, end: Option<&str>, minutes: Option<u32>) -> Result<i64, MapError> {
    let from_end = match end {
        None => None,
        Some(end) => {
            let end = time::parse_fhir_instant(end).ok_or(MapError::unprocessable("end", "it is not an instant"))?;
            let seconds = (end - start).num_seconds();
            if seconds <= 0 {
                return Err(MapError::unprocessable("end", "a visit ends after it starts"));
            }
            if seconds % 60 != 0 || end.timestamp_subsec_nanos() != start.timestamp_subsec_nanos() {
                return Err(MapError::unprocessable("end", "Zoom visits last whole minutes"));
            }
            Some(seconds / 60)
        }
    };
    let minutes = match (from_end, minutes.map(i64::from)) {
        (Some(a), Some(b)) if a != b => {
            return Err(MapError::unprocessable(
                "minutesDuration",
                "it disagrees with start and end",
            ));
        }
        (Some(m), _) | (None, Some(m)) => m,
        (None, None) => return Err(end_needed()),
    };
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(MapError::unprocessable(
            "minutesDuration",
            "a Zoom visit lasts a minute to a day",
        ));
    }
    Ok(minutes)
}

/// Only the R5 `virtualService` extension, once, with channel `zoom` and no address.
fn check_extensions(extensions: &[Extension]) -> Result<(), MapError> {
    let mut found = false;
    for e in extensions {
        if e.url == systems::EXT_PROVIDER_JOIN_URL {
            return Err(MapError::unprocessable(
                format!("extension('{}')", e.url),
                "Zoom makes the join URLs",
            ));
        }
        if e.url != systems::EXT_R5_VIRTUAL_SERVICE {
            return Err(MapError::unprocessable(
                format!("extension('{}')", e.url),
                "a Zoom visit cannot store it",
            ));
        }
        if found {
            return Err(MapError::unprocessable(
                "virtualService",
                "a Zoom visit has one virtual service",
            ));
        }
        found = true;
        check_virtual_service(e)?;
    }
    if found {
        Ok(())
    } else {
        Err(MapError::unprocessable(
            "virtualService",
            "a Zoom visit needs the virtualService extension with channelType zoom",
        ))
    }
}

fn check_virtual_service(e: &Extension) -> Result<(), MapError> {
    if e.value.is_some() {
        return Err(MapError::unprocessable("virtualService", "it is a complex extension"));
    }
    let mut zoom = false;
    for part in &e.extension {
        match (part.url.as_str(), &part.value) {
            (EXT_DATATYPE, Some(ExtensionValue::String(s))) if s.value.as_deref() == Some(VIRTUAL_SERVICE_DATATYPE) => {
            }
            (EXT_DATATYPE, _) => {
                return Err(MapError::unprocessable(
                    "virtualService._datatype",
                    "it is VirtualServiceDetail",
                ));
            }
            ("channelType", Some(ExtensionValue::Coding(c)))
                if c.system.as_ref().and_then(|s| s.value.as_deref()) == Some(codes::ZOOM_CHANNEL.system)
                    && c.code.as_ref().and_then(|s| s.value.as_deref()) == Some(codes::ZOOM_CHANNEL.code) =>
            {
                zoom = true;
            }
            ("channelType", _) => {
                return Err(MapError::unprocessable(
                    "virtualService.channelType",
                    "a Zoom visit is a Zoom meeting (channelType zoom)",
                ));
            }
            ("address", _) => {
                return Err(MapError::unprocessable(
                    "virtualService.address",
                    "Zoom makes the join URLs",
                ));
            }
            _ => {
                return Err(MapError::unprocessable(
                    format!("virtualService.{}", part.url),
                    "a Zoom visit cannot store it",
                ));
            }
        }
    }
    if zoom {
        Ok(())
    } else {
        Err(MapError::unprocessable(
            "virtualService",
            "a Zoom visit needs the virtualService extension with channelType zoom",
        ))
    }
}

#[derive(Default)]
struct People {
    patient: Option<String>,
    provider: Option<String>,
    ehr_patient: Option<String>,
    ehr_practitioner: Option<String>,
}

fn participants(list: &[AppointmentParticipant], json: &Value, ctx: &ZoomCtx) -> Result<People, MapError> {
    let mut people = People::default();
    for (i, p) in list.iter().enumerate() {
        let at = |element: &str| format!("participant[{i}]{element}");
        if let Some(key) = json["participant"][i]
            .as_object()
            .and_then(|o| o.keys().find(|k| !["actor", "status", "type"].contains(&k.as_str())))
        {
            return Err(MapError::unprocessable(
                at(&format!(".{key}")),
                "a Zoom visit cannot store it",
            ));
        }
        if let Some(key) = json["participant"][i]["actor"].as_object().and_then(|o| {
            o.keys()
                .find(|k| !["reference", "type", "display"].contains(&k.as_str()))
        }) {
            return Err(MapError::unprocessable(
                at(&format!(".actor.{key}")),
                "a participant is named by a literal reference",
            ));
        }
        if p.status.value.as_deref() != Some("accepted") {
            return Err(MapError::unprocessable(
                at(".status"),
                "Zoom visit participants are accepted",
            ));
        }
        let reference = p
            .actor
            .as_ref()
            .and_then(|r| r.reference.as_ref())
            .and_then(|r| r.value.as_deref())
            .ok_or(MapError::unprocessable(
                at(".actor"),
                "a participant is named by a literal reference",
            ))?;
        let attender = p.r#type.len() == 1
            && p.r#type[0].text.is_none()
            && p.r#type[0].coding.len() == 1
            && p.r#type[0].coding[0].system.as_ref().and_then(|s| s.value.as_deref()) == Some(codes::ATTENDER.system)
            && p.r#type[0].coding[0].code.as_ref().and_then(|s| s.value.as_deref()) == Some(codes::ATTENDER.code);
        let is_practitioner = reference.starts_with("Practitioner/");
        let type_storable = p.r#type.is_empty() || (is_practitioner && attender);
        if !type_storable {
            return Err(MapError::unprocessable(
                at(".type"),
                "Zoom stores no participant type but a provider's ATND",
            ));
        }
        match ZoomId::parse_reference(reference) {
            Some(ZoomId::Patient(id)) => place(&mut people.patient, id, at(""))?,
            Some(ZoomId::Practitioner(id)) => place(&mut people.provider, id, at(""))?,
            Some(_) => return Err(MapError::unprocessable(at(".actor"), "it is not a patient or provider")),
            None => match ehr_native(reference, ctx) {
                Some(("Patient", native)) => place(&mut people.ehr_patient, native, at(""))?,
                Some(("Practitioner", native)) => place(&mut people.ehr_practitioner, native, at(""))?,
                _ => {
                    return Err(MapError::unprocessable(
                        at(".actor"),
                        "Zoom stores only its own patient and provider and the EHR's",
                    ));
                }
            },
        }
    }
    Ok(people)
}

fn place(slot: &mut Option<String>, id: String, element: String) -> Result<(), MapError> {
    if slot.is_some() {
        return Err(MapError::unprocessable(
            element,
            "a Zoom visit has one of each participant",
        ));
    }
    *slot = Some(id);
    Ok(())
}

/// `Patient/drchrono-12` → `("Patient", "12")` for the configured EHR source.
fn ehr_native<'a>(reference: &'a str, ctx: &ZoomCtx) -> Option<(&'a str, String)> {
    let (resource_type, id) = reference.split_once('/')?;
    let id = FhirId::parse(id).ok()?;
    (id.source() == ctx.ehr_source).then(|| (resource_type, id.native().to_owned()))
}

/// The EHR appointment of `supportingInformation`: a literal reference of the EHR source, or a
/// logical one by the EHR's appointment identifier.
fn ehr_appointment(list: &[Reference], ctx: &ZoomCtx) -> Result<Option<String>, MapError> {
    let refuse = |i: usize| {
        MapError::unprocessable(
            format!("supportingInformation[{i}]"),
            "Zoom stores only the EHR appointment a visit is for",
        )
    };
    if list.len() > 1 {
        return Err(refuse(1));
    }
    let Some(r) = list.first() else {
        return Ok(None);
    };
    if let Some(reference) = r.reference.as_ref().and_then(|r| r.value.as_deref()) {
        return match ehr_native(reference, ctx) {
            Some(("Appointment", native)) => Ok(Some(native)),
            _ => Err(refuse(0)),
        };
    }
    let system = systems::native_id_system(&ctx.ehr_source, super::EhrKind::Appointment.identifier_kind());
    match r.identifier.as_ref() {
        Some(i) if i.system.as_ref().and_then(|s| s.value.as_deref()) == Some(system.as_str()) => i
            .value
            .as_ref()
            .and_then(|v| v.value.as_deref())
            .and_then(present)
            .map(|v| Some(v.to_owned()))
            .ok_or_else(|| refuse(0)),
        _ => Err(refuse(0)),
    }
}

/// The Zoom visit type of `appointmentType`: every coding Zoom knows must agree; a concept
/// without codings is read by its text.
fn visit_type(a: &Appointment) -> Result<Option<VisitType>, MapError> {
    let Some(concept) = a.appointment_type.as_deref() else {
        return Ok(None);
    };
    let refuse = || MapError::unprocessable("appointmentType", "it is not a Zoom visit type");
    if concept.coding.is_empty() {
        let text = concept.text.as_ref().and_then(|t| t.value.as_deref()).unwrap_or("");
        return VisitType::from_wire(text).map(Some).ok_or_else(refuse);
    }
    let mut found = None;
    for c in &concept.coding {
        let system = c.system.as_ref().and_then(|s| s.value.as_deref()).unwrap_or("");
        let code = c.code.as_ref().and_then(|s| s.value.as_deref()).unwrap_or("");
        let t = VisitType::from_coding(system, code).ok_or_else(refuse)?;
        if found.is_some_and(|f| f != t) {
            return Err(refuse());
        }
        found = Some(t);
    }
    Ok(found)
}

/// The reason text of `reasonCode`: none, or one concept with text only.
fn reason(a: &Appointment) -> Result<Option<String>, MapError> {
    match a.reason_code.as_slice() {
        [] => Ok(None),
        [one] if one.coding.is_empty() => Ok(one.text.as_ref().and_then(|t| t.value.clone())),
        [_] => Err(MapError::unprocessable(
            "reasonCode[0].coding",
            "Zoom stores the reason as text",
        )),
        _ => Err(MapError::unprocessable("reasonCode", "Zoom stores one reason")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;
    use serde_json::json;

    fn appointment(v: Value) -> Appointment {
        fhirbolt::json::from_str(&v.to_string(), None).unwrap()
    }

    fn virtual_service() -> Value {
        json!({"url": systems::EXT_R5_VIRTUAL_SERVICE, "extension": [
            {"url": EXT_DATATYPE, "valueString": "VirtualServiceDetail"},
            {"url": "channelType", "valueCoding": {"system": "http://hl7.org/fhir/virtual-service-type", "code": "zoom"}}
        ]})
    }

    fn new_visit() -> Value {
        json!({
            "resourceType": "Appointment", "status": "booked",
            "extension": [virtual_service()],
            "start": "2024-02-01T09:00:00-05:00", "minutesDuration": 30,
            "reasonCode": [{"text": "Post-surgery checkup"}],
            "appointmentType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "FOLLOWUP"}]},
            "participant": [
                {"actor": {"reference": "Patient/zoom-p1"}, "status": "accepted"},
                {"actor": {"reference": "Practitioner/zoom-x.OBZG65S7GQ2TM"}, "status": "accepted",
                 "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}]}
            ]
        })
    }

    fn refused(v: Value) -> String {
        match create_visit(&appointment(v), &test_ctx()) {
            Err(MapError::Unprocessable { element, .. }) => element,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_new_visit_gets_hipaa_safe_settings() {
        let body = create_visit(&appointment(new_visit()), &test_ctx()).unwrap();
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({
                "patient_id": "p1", "provider_id": "prov_456", "scheduled_time": "2024-02-01T14:00:00Z",
                "duration_minutes": 30, "visit_type": "follow_up", "reason": "Post-surgery checkup",
                "settings": {"waiting_room": true, "recording": false, "require_encryption": true},
                "meeting_settings": {"waiting_room": true, "password_required": true, "encryption_type": "e2ee",
                                     "allow_recording": false, "authenticated_users_only": true, "watermark": true}
            })
        );
    }

    #[test]
    fn ehr_references_go_to_the_ehr_context() {
        let mut v = new_visit();
        v["participant"].as_array_mut().unwrap().extend([
            json!({"actor": {"reference": "Patient/drchrono-12"}, "status": "accepted"}),
            json!({"actor": {"reference": "Practitioner/drchrono-3", "display": "Dr X"}, "status": "accepted"}),
        ]);
        v["supportingInformation"] = json!([{"reference": "Appointment/drchrono-77"}]);
        let body = create_visit(&appointment(v.clone()), &test_ctx()).unwrap();
        assert_eq!(
            body.ehr_context,
            Some(wire::EhrContext {
                appointment_id: "77".into(),
                patient_id: "Patient/12".into(),
                provider_id: "Practitioner/3".into()
            })
        );
        v["supportingInformation"] =
            json!([{"identifier": {"system": "urn:fhir-gateway:id:drchrono:appointment", "value": "78"}}]);
        let body = create_visit(&appointment(v), &test_ctx()).unwrap();
        assert_eq!(body.ehr_context.unwrap().appointment_id, "78");
    }

    #[test]
    fn end_and_minutes_duration_must_agree() {
        let mut v = new_visit();
        v["end"] = json!("2024-02-01T09:45:00-05:00");
        v.as_object_mut().unwrap().remove("minutesDuration");
        assert_eq!(
            create_visit(&appointment(v.clone()), &test_ctx())
                .unwrap()
                .duration_minutes,
            45
        );
        v["minutesDuration"] = json!(30);
        assert_eq!(refused(v.clone()), "minutesDuration");
        v["minutesDuration"] = json!(45);
        assert_eq!(
            create_visit(&appointment(v.clone()), &test_ctx())
                .unwrap()
                .duration_minutes,
            45
        );
        v["end"] = json!("2024-02-01T09:45:30-05:00");
        v.as_object_mut().unwrap().remove("minutesDuration");
        assert_eq!(refused(v.clone()), "end");
        v["end"] = json!("2024-02-01T08:45:00-05:00");
        assert_eq!(refused(v.clone()), "end");
        v.as_object_mut().unwrap().remove("end");
        assert_eq!(refused(v), "end");
    }

    #[test]
    fn what_zoom_cannot_store_is_refused_by_element() {
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut v = new_visit();
            f(&mut v);
            refused(v)
        };
        assert_eq!(edit(&|v| v["extension"] = json!([])), "virtualService");
        assert_eq!(
            edit(&|v| v["extension"][0]["extension"][1]["valueCoding"]["code"] = json!("ms-teams")),
            "virtualService.channelType"
        );
        assert_eq!(
            edit(&|v| {
                v["extension"][0]["extension"].as_array_mut().unwrap().remove(1);
            }),
            "virtualService"
        );
        assert_eq!(
            edit(&|v| v["extension"][0]["extension"]
                .as_array_mut()
                .unwrap()
                .push(json!({"url": "address", "valueUrl": "https://zoom.us/j/1"}))),
            "virtualService.address"
        );
        assert_eq!(
            edit(&|v| v["extension"]
                .as_array_mut()
                .unwrap()
                .push(json!({"url": systems::EXT_PROVIDER_JOIN_URL, "valueUrl": "https://zoom.us/s/1"}))),
            format!("extension('{}')", systems::EXT_PROVIDER_JOIN_URL)
        );
        assert_eq!(edit(&|v| v["comment"] = json!("bring your meds")), "comment");
        assert_eq!(edit(&|v| v["status"] = json!("proposed")), "status");
        assert_eq!(
            edit(&|v| {
                v.as_object_mut().unwrap().remove("start");
            }),
            "start"
        );
        assert_eq!(
            edit(&|v| v["participant"][0]["actor"]["reference"] = json!("Patient/noa-1")),
            "participant[0].actor"
        );
        assert_eq!(
            edit(&|v| v["participant"][0]["status"] = json!("tentative")),
            "participant[0].status"
        );
        assert_eq!(
            edit(&|v| v["participant"][0]["required"] = json!("required")),
            "participant[0].required"
        );
        assert_eq!(
            edit(&|v| {
                v["participant"].as_array_mut().unwrap().remove(1);
            }),
            "participant"
        );
        assert_eq!(
            edit(&|v| v["participant"]
                .as_array_mut()
                .unwrap()
                .push(json!({"actor": {"reference": "Patient/zoom-p2"}, "status": "accepted"}))),
            "participant[2]"
        );
        assert_eq!(
            edit(&|v| v["appointmentType"] =
                json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "ROUTINE"}]})),
            "appointmentType"
        );
        assert_eq!(
            edit(&|v| v["reasonCode"] = json!([{"coding": [{"system": "http://snomed.info/sct", "code": "1"}]}])),
            "reasonCode[0].coding"
        );
        assert_eq!(
            edit(&|v| v["supportingInformation"] = json!([{"reference": "Patient/drchrono-1"}])),
            "supportingInformation[0]"
        );
    }

    fn current(status: &str) -> wire::Visit {
        serde_json::from_value(json!({
            "id": "v1", "patient_id": "p1", "provider_id": "d1", "status": status, "visit_type": "follow_up",
            "reason": "Check-in", "scheduled_time": "2024-02-01T14:00:00Z", "duration_minutes": 30,
            "join_url_patient": "https://zoom.us/j/1?pwd=a", "join_url_provider": "https://zoom.us/s/1?zak=b"
        }))
        .unwrap()
    }

    fn served(v: &wire::Visit) -> Value {
        fhirbolt::json::to_json_value(visit_appointment(v, &test_ctx()).unwrap(), None).unwrap()
    }

    fn change(v: &wire::Visit, f: &dyn Fn(&mut Value)) -> Result<VisitChange, MapError> {
        let mut wanted = served(v);
        f(&mut wanted);
        visit_patch(v, &appointment(wanted), &test_ctx())
    }

    #[test]
    fn an_unchanged_appointment_needs_nothing() {
        let v = current("scheduled");
        assert_eq!(change(&v, &|_| {}), Ok(VisitChange::None));
        assert_eq!(
            change(&v, &|w| {
                w.as_object_mut().unwrap().remove("meta");
                w.as_object_mut().unwrap().remove("id");
            }),
            Ok(VisitChange::None)
        );
        // The same instants written in UTC are no change either.
        assert_eq!(
            change(&v, &|w| {
                w["start"] = json!("2024-02-01T14:00:00Z");
                w["end"] = json!("2024-02-01T14:30:00Z");
            }),
            Ok(VisitChange::None)
        );
    }

    #[test]
    fn rescheduling_patches_start_and_duration() {
        let v = current("scheduled");
        let patch = |f: &dyn Fn(&mut Value)| match change(&v, f) {
            Ok(VisitChange::Patch(p)) => p,
            other => panic!("{other:?}"),
        };
        // Moving start and end together keeps the duration.
        assert_eq!(
            patch(&|w| {
                w["start"] = json!("2024-02-02T10:00:00-05:00");
                w["end"] = json!("2024-02-02T10:30:00-05:00");
            }),
            wire::VisitPatch {
                scheduled_time: Some("2024-02-02T15:00:00Z".into()),
                ..Default::default()
            }
        );
        // Moving start alone keeps the duration too.
        assert_eq!(
            patch(&|w| w["start"] = json!("2024-02-01T10:00:00-05:00")),
            wire::VisitPatch {
                scheduled_time: Some("2024-02-01T15:00:00Z".into()),
                ..Default::default()
            }
        );
        assert_eq!(
            patch(&|w| w["minutesDuration"] = json!(45)),
            wire::VisitPatch {
                duration_minutes: Some(45),
                ..Default::default()
            }
        );
        assert_eq!(
            patch(&|w| w["end"] = json!("2024-02-01T09:50:00-05:00")),
            wire::VisitPatch {
                duration_minutes: Some(50),
                ..Default::default()
            }
        );
        assert_eq!(
            patch(&|w| w["reasonCode"] = json!([{"text": "Medication review"}])),
            wire::VisitPatch {
                reason: Some("Medication review".into()),
                ..Default::default()
            }
        );
        assert_eq!(
            patch(&|w| {
                w.as_object_mut().unwrap().remove("reasonCode");
            }),
            wire::VisitPatch {
                reason: Some(String::new()),
                ..Default::default()
            }
        );
    }

    #[test]
    fn cancelling_is_a_cancel_alone() {
        let v = current("scheduled");
        assert_eq!(
            change(&v, &|w| w["status"] = json!("cancelled")),
            Ok(VisitChange::Cancel)
        );
        assert_eq!(
            change(&current("waiting"), &|w| w["status"] = json!("cancelled")),
            Ok(VisitChange::Cancel)
        );
        let element = |r: Result<VisitChange, MapError>| match r {
            Err(MapError::Unprocessable { element, .. }) => element,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            element(change(&v, &|w| {
                w["status"] = json!("cancelled");
                w["minutesDuration"] = json!(45);
            })),
            "minutesDuration"
        );
        assert_eq!(
            element(change(&current("completed"), &|w| w["status"] = json!("cancelled"))),
            "status"
        );
        // An already cancelled visit stays cancelled without a call.
        assert_eq!(change(&current("cancelled"), &|_| {}), Ok(VisitChange::None));
    }

    #[test]
    fn forbidden_changes_are_named() {
        let v = current("scheduled");
        let element = |f: &dyn Fn(&mut Value)| match change(&v, f) {
            Err(MapError::Unprocessable { element, .. }) => element,
            other => panic!("{other:?}"),
        };
        assert_eq!(element(&|w| w["status"] = json!("arrived")), "status");
        assert_eq!(
            element(&|w| w["participant"][0]["actor"]["reference"] = json!("Patient/zoom-p2")),
            "participant[0].actor.reference"
        );
        assert_eq!(
            element(&|w| w["extension"][1]["valueUrl"] = json!("https://evil.example/")),
            format!("extension('{}').valueUrl", systems::EXT_PROVIDER_JOIN_URL)
        );
        assert_eq!(element(&|w| w["comment"] = json!("x")), "comment");
        assert_eq!(
            element(&|w| w["appointmentType"]["coding"][0]["code"] = json!("urgent_care")),
            "appointmentType.coding[0].code"
        );
        assert_eq!(element(&|w| w["id"] = json!("zoom-v2")), "id");
        assert_eq!(
            element(&|w| {
                w["minutesDuration"] = json!(45);
                w["end"] = json!("2024-02-01T09:40:00-05:00");
            }),
            "minutesDuration"
        );
        assert_eq!(
            element(&|w| w["reasonCode"] = json!([{"text": "a"}, {"text": "b"}])),
            "reasonCode"
        );
        // A visit under way cannot be rescheduled.
        assert!(matches!(
            change(&current("in_progress"), &|w| w["minutesDuration"] = json!(45)),
            Err(MapError::Unprocessable { element, .. }) if element == "minutesDuration"
        ));
    }
}
