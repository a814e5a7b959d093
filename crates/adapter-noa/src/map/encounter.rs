//! Noa session → Encounter.

use adapter::fhir::resources::{Encounter, EncounterLocation, EncounterParticipant};
use adapter::fhir::types::{Extension, ExtensionValue, Identifier, Period, Reference};
use adapter::fhir_build;

use super::codes::{self, SessionStatus, VisitType};
use super::ehr::{EhrKind, EhrRef};
use super::{MapError, NoaCtx, concept, fhir_code, fhir_id, ids, meta, native_identifier, present, text_concept, time};
use crate::wire;

/// Maps a session to the Encounter of the visit it scribed (`noa-{sessionId}`).
///
/// - `status` from [`SessionStatus::encounter`] (New → planned, Recording → in-progress, from
///   Recorded to the verified ends → finished, Interrupted/Failed/Expired → cancelled); the exact
///   Noa status in the extension `urn:fhir-gateway:ext:noa-session-status` (`valueCode`), since
///   seven statuses share `finished`.
/// - `class` AMB; `type` the visit type (system `urn:fhir-gateway:noa:visit-type`; an unknown one
///   as text); `serviceType.text` the speciality; the session's language in the extension
///   `urn:fhir-gateway:ext:noa-language` (`valueCode`, BCP-47).
/// - `subject`: the EHR patient of the metadata's patient key, else of the episode's Appointment
///   ([`NoaCtx::patient_of`]); none when neither is known.
/// - `participant`: the doctor (`PPRF`), the EHR Practitioner `doctorId`; `appointment`: the EHR
///   Appointment `episodeId`; `location`: the EHR Location `facilityId`; `serviceProvider`: a
///   logical Organization naming the Noa facility. EHR references are literal when resolved,
///   logical otherwise.
/// - `period`: from `recordingStartedAt` (else `createdAt`) to `recordingEndedAt`, the end only
///   once the recording is over.
/// - identifiers: the session id and the episode id; `meta.lastUpdated` `updatedAt`.
pub fn session_encounter(s: &wire::Session, ctx: &NoaCtx) -> Result<Encounter, MapError> {
    let session_id = present(&s.session_id).ok_or(MapError::Missing { field: "sessionId" })?;
    let status_text = present(&s.status).ok_or(MapError::Missing { field: "status" })?;
    let status = SessionStatus::from_wire(status_text).ok_or(MapError::UnknownCode { field: "status" })?;
    let tz = ctx.base.default_tz;
    let created = time::timestamp_field("createdAt", &s.created_at, tz)?;
    let updated = time::timestamp_field("updatedAt", &s.updated_at, tz)?.or(created);

    let mut extension = vec![Extension {
        url: codes::EXT_SESSION_STATUS.into(),
        value: Some(ExtensionValue::Code(status.wire().into())),
        ..Default::default()
    }];
    if let Some(language) = fhir_code(&s.language) {
        extension.push(Extension {
            url: codes::EXT_LANGUAGE.into(),
            value: Some(ExtensionValue::Code(language.into())),
            ..Default::default()
        });
    }

    let mut identifier = vec![native_identifier(ids::kind::SESSION, session_id)];
    if let Some(episode) = present(&s.episode_id) {
        identifier.push(native_identifier(ids::kind::EPISODE, episode));
    }

    let r#type = match (present(&s.visit_type), VisitType::from_wire(&s.visit_type)) {
        (_, Some(v)) => vec![concept(vec![v.code().coding()], None)],
        (Some(other), None) => text_concept(other).into_iter().collect(),
        (None, None) => Vec::new(),
    };

    let subject = ctx
        .patient_of(s)
        .map(|p| Box::new(EhrRef::new(EhrKind::Patient, &p).reference(ctx)));
    let participant = present(&s.doctor_id)
        .map(|d| EncounterParticipant {
            r#type: vec![concept(vec![codes::PRIMARY_PERFORMER.coding()], None)],
            individual: Some(Box::new(EhrRef::new(EhrKind::Practitioner, d).reference(ctx))),
            ..Default::default()
        })
        .into_iter()
        .collect();
    let appointment = present(&s.episode_id)
        .map(|e| EhrRef::new(EhrKind::Appointment, e).reference(ctx))
        .into_iter()
        .collect();
    let facility = present(&s.facility_id);
    let location = facility
        .map(|f| EncounterLocation {
            location: Box::new(EhrRef::new(EhrKind::Location, f).reference(ctx)),
            ..Default::default()
        })
        .into_iter()
        .collect();
    let service_provider = facility.map(|f| {
        Box::new(Reference {
            r#type: Some("Organization".into()),
            identifier: Some(Box::new(native_identifier(ids::kind::FACILITY, f))),
            display: Some(format!("Noa facility {f}").into()),
            ..Default::default()
        })
    });

    Ok(Encounter {
        id: Some(fhir_id("sessionId", session_id)?.into()),
        meta: Some(Box::new(meta(ctx, updated, None, None))),
        extension,
        identifier,
        status: status.encounter().code().into(),
        class: Box::new(codes::AMBULATORY.coding()),
        r#type,
        service_type: text_concept(&s.speciality).map(Box::new),
        subject,
        participant,
        appointment,
        period: session_period(s, status, ctx)?.map(Box::new),
        location,
        service_provider,
        ..Default::default()
    })
}

/// The time the visit was recorded: from `recordingStartedAt` (else `createdAt`) to
/// `recordingEndedAt` once the recording is over. `None` when no time is known.
pub(crate) fn session_period(
    s: &wire::Session,
    status: SessionStatus,
    ctx: &NoaCtx,
) -> Result<Option<Period>, MapError> {
    let tz = ctx.base.default_tz;
    let created = time::timestamp_field("createdAt", &s.created_at, tz)?;
    let started = time::timestamp_field("recordingStartedAt", &s.recording_started_at, tz)?;
    let ended = time::timestamp_field("recordingEndedAt", &s.recording_ended_at, tz)?;
    let start = started.or(created);
    let end = ended.filter(|e| status.recording_ended() && start.is_none_or(|s| *e >= s));
    Ok((start.is_some() || end.is_some()).then(|| fhir_build::period(start, end)))
}

/// The identifier of a session (`urn:fhir-gateway:id:noa:session`).
pub(crate) fn session_identifier(session_id: &str) -> Identifier {
    native_identifier(ids::kind::SESSION, session_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;
    use serde_json::json;

    fn session(status: &str, extra: serde_json::Value) -> wire::Session {
        let mut v = json!({
            "sessionId": "0f8fad5b-d9cb-469f-a165-70867728950e", "episodeId": "9001", "doctorId": "3",
            "facilityId": "5", "status": status, "createdAt": "2025-03-14T09:00:00Z",
            "updatedAt": "2025-03-14T09:40:00Z"
        });
        for (k, value) in extra.as_object().unwrap() {
            v[k] = value.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_status_and_its_exact_noa_value() {
        for s in SessionStatus::ALL {
            let e = session_encounter(&session(s.wire(), json!({})), &test_ctx()).unwrap();
            assert_eq!(e.status.value.as_deref(), Some(s.encounter().code()));
            let ext = &e.extension[0];
            assert_eq!(ext.url, codes::EXT_SESSION_STATUS);
            assert_eq!(ext.value, Some(ExtensionValue::Code(s.wire().into())));
        }
        assert_eq!(
            session_encounter(&session("Paused", json!({})), &test_ctx()),
            Err(MapError::UnknownCode { field: "status" })
        );
        assert_eq!(
            session_encounter(&session("", json!({})), &test_ctx()),
            Err(MapError::Missing { field: "status" })
        );
    }

    #[test]
    fn the_period_ends_only_once_the_recording_is_over() {
        let times = json!({"recordingStartedAt": "2025-03-14T09:05:00Z", "recordingEndedAt": "2025-03-14T09:25:00Z"});
        let period = |status: &str| {
            let e = session_encounter(&session(status, times.clone()), &test_ctx()).unwrap();
            let p = e.period.unwrap();
            (p.start.and_then(|s| s.value), p.end.and_then(|s| s.value))
        };
        assert_eq!(
            period("Summarized"),
            (
                Some("2025-03-14T10:05:00+01:00".into()),
                Some("2025-03-14T10:25:00+01:00".into())
            )
        );
        assert_eq!(period("Recording").1, None);
        let e = session_encounter(&session("New", json!({})), &test_ctx()).unwrap();
        assert_eq!(
            e.period.unwrap().start.unwrap().value.as_deref(),
            Some("2025-03-14T10:00:00+01:00")
        );
        assert!(matches!(
            session_encounter(&session("New", json!({"createdAt": "x"})), &test_ctx()),
            Err(MapError::Invalid { field: "createdAt", .. })
        ));
    }

    #[test]
    fn an_unknown_visit_type_is_text_and_identifiers_name_session_and_episode() {
        let e = session_encounter(&session("New", json!({"visitType": "Teleconsult"})), &test_ctx()).unwrap();
        assert_eq!(e.r#type[0].text.as_ref().unwrap().value.as_deref(), Some("Teleconsult"));
        assert!(e.r#type[0].coding.is_empty());
        let systems: Vec<_> = e
            .identifier
            .iter()
            .map(|i| i.system.as_ref().unwrap().value.clone().unwrap())
            .collect();
        assert_eq!(
            systems,
            ["urn:fhir-gateway:id:noa:session", "urn:fhir-gateway:id:noa:episode"]
        );
        assert_eq!(session_identifier("s").value.unwrap().value.as_deref(), Some("s"));
    }
}
