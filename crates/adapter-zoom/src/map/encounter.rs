//! Visits that started → Encounter.

use adapter::fhir::resources::{Encounter, EncounterParticipant, EncounterStatusHistory};
use adapter::fhir::types::Duration as FhirDuration;
use adapter::fhir_build;
use chrono::{DateTime, FixedOffset};

use super::appointment::{appointment_type, patient_native, provider_native, visit_status};
use super::codes::{self, FhirEncounterStatus, VisitStatus};
use super::ehr::EhrRefs;
use super::{
    MapError, ZoomCtx, concept, fhir_id, ids, meeting_identifiers, meta, native_identifier, present, reference,
    text_concept, time,
};
use crate::wire;

const UCUM: &str = "http://unitsofmeasure.org";

/// Maps a visit that started to an Encounter; `Ok(None)` for a visit that never did.
///
/// A visit started when the patient entered the waiting room (`waiting`, or a `waiting` entry
/// for it, or `patient_joined_at`) or the meeting began (`started_at`). Status by
/// [`VisitStatus::encounter`]: `waiting` → `arrived`, `in_progress` → `in-progress`,
/// `completed` → `finished`, `cancelled`/`no_show` after a start → `cancelled`; a `scheduled`
/// visit whose patient is in the waiting room (`waiting` given) is `arrived`. Scheduled visits,
/// and cancelled or no-show visits that never started, have no Encounter.
///
/// - id `zoom-enc-{visit id}`; identifiers: the native id and the meeting (UUID, number).
/// - `class` v3-ActCode `VR` (virtual); `type` the visit type; `reasonCode.text` the reason.
/// - `subject` the Zoom patient; `participant` the provider (ATND) and, when resolved, the EHR
///   practitioner of the visit's `ehr_context`; `appointment` the visit's Appointment.
/// - `period`: from the earliest actual time known (the patient's arrival in the waiting room —
///   `patient_joined_at`, else the waiting entry's `joined_at` — or `started_at`) to `ended_at`.
///   A cancelled Encounter ends at `ended_at`, else `cancelled_at`. Planned times are never used
///   as actual ones: a visit without actual times has no period.
///   `length` in minutes when both ends are known.
/// - `statusHistory`: the earlier statuses whose times are known (`arrived` from arrival to
///   start; `in-progress` from start to end).
pub fn visit_encounter(
    v: &wire::Visit,
    waiting: Option<&wire::WaitingRoomEntry>,
    ctx: &ZoomCtx,
) -> Result<Option<Encounter>, MapError> {
    let visit_id = present(&v.id).ok_or(MapError::Missing { field: "id" })?;
    if let Some(w) = waiting
        && present(&w.visit_id) != Some(visit_id)
    {
        return Err(MapError::Invalid {
            field: "visit_id",
            expected: "id of the visit the waiting-room entry is given with",
        });
    }
    let mut status = visit_status(v)?;
    if status == VisitStatus::Scheduled && waiting.is_some() {
        status = VisitStatus::Waiting;
    }
    let tz = ctx.base.default_tz;
    let joined = match time::timestamp_field("patient_joined_at", &v.patient_joined_at, tz)? {
        Some(t) => Some(t),
        None => time::timestamp_field("joined_at", waiting.map_or("", |w| w.joined_at.as_str()), tz)?,
    };
    let started = time::timestamp_field("started_at", &v.started_at, tz)?;
    let ended = time::timestamp_field("ended_at", &v.ended_at, tz)?;
    let cancelled = time::timestamp_field("cancelled_at", &v.cancelled_at, tz)?;
    let ever_started = joined.is_some() || started.is_some() || waiting.is_some();
    let Some(encounter_status) = status.encounter(ever_started) else {
        return Ok(None);
    };

    let native = ids::encounter(visit_id);
    let created = time::timestamp_field("created_at", &v.created_at, tz)?;
    let updated = time::timestamp_field("updated_at", &v.updated_at, tz)?.or(created);
    let ehr = EhrRefs::read(v.ehr_context.as_ref())?;

    let begin = match (joined, started) {
        (Some(j), Some(s)) => Some(j.min(s)),
        (j, s) => j.or(s),
    };
    let end = match encounter_status {
        FhirEncounterStatus::Finished => ended,
        FhirEncounterStatus::Cancelled => ended.or(cancelled),
        _ => None,
    };
    let period = (begin.is_some() || end.is_some()).then(|| Box::new(fhir_build::period(begin, end)));
    let length = match (begin, end) {
        (Some(b), Some(e)) if e >= b => Some(Box::new(FhirDuration {
            value: Some((e - b).num_minutes().to_string().into()),
            unit: Some("min".into()),
            system: Some(UCUM.into()),
            code: Some("min".into()),
            ..Default::default()
        })),
        _ => None,
    };

    let mut status_history = Vec::new();
    if let Some(j) = joined.filter(|_| encounter_status != FhirEncounterStatus::Arrived) {
        status_history.push(history(FhirEncounterStatus::Arrived, Some(j), started.or(end)));
    }
    if let Some(s) = started.filter(|_| {
        matches!(
            encounter_status,
            FhirEncounterStatus::Finished | FhirEncounterStatus::Cancelled
        )
    }) {
        status_history.push(history(FhirEncounterStatus::InProgress, Some(s), end));
    }

    let mut participant = vec![EncounterParticipant {
        r#type: vec![concept(vec![codes::ATTENDER.coding()], None)],
        individual: Some(Box::new(reference(
            "provider_id",
            "Practitioner",
            &provider_native(v)?,
        )?)),
        ..Default::default()
    }];
    if let Some(p) = ehr.practitioner.as_ref().and_then(|p| p.resolved_reference(ctx)) {
        participant.push(EncounterParticipant {
            r#type: vec![concept(vec![codes::ATTENDER.coding()], None)],
            individual: Some(Box::new(p)),
            ..Default::default()
        });
    }

    let mut identifier = vec![native_identifier(ids::kind::ENCOUNTER, &native)];
    identifier.extend(meeting_identifiers(&v.meeting_id, v.meeting_number));

    Ok(Some(Encounter {
        id: Some(fhir_id("id", &native)?.into()),
        meta: Some(Box::new(meta(ctx, updated, None))),
        identifier,
        status: encounter_status.code().into(),
        status_history,
        class: Box::new(codes::VIRTUAL.coding()),
        r#type: appointment_type(&v.visit_type).into_iter().collect(),
        subject: Some(Box::new(reference("patient_id", "Patient", &patient_native(v)?)?)),
        participant,
        appointment: vec![reference("id", "Appointment", &ids::appointment(visit_id))?],
        period,
        length,
        reason_code: text_concept(&v.reason).into_iter().collect(),
        ..Default::default()
    }))
}

fn history(
    status: FhirEncounterStatus,
    start: Option<DateTime<FixedOffset>>,
    end: Option<DateTime<FixedOffset>>,
) -> EncounterStatusHistory {
    EncounterStatusHistory {
        status: status.code().into(),
        period: Box::new(fhir_build::period(start, end)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;
    use serde_json::json;

    fn visit(status: &str, extra: serde_json::Value) -> wire::Visit {
        let mut v = json!({
            "id": "v1", "patient_id": "p1", "provider_id": "d1", "status": status,
            "scheduled_time": "2024-02-01T14:00:00Z", "duration_minutes": 30
        });
        for (k, value) in extra.as_object().unwrap() {
            v[k] = value.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn status_of(v: &wire::Visit, waiting: Option<&wire::WaitingRoomEntry>) -> Option<String> {
        visit_encounter(v, waiting, &test_ctx())
            .unwrap()
            .map(|e| e.status.value.unwrap())
    }

    #[test]
    fn only_visits_that_started_have_an_encounter() {
        let joined = json!({"patient_joined_at": "2024-02-01T13:58:00Z"});
        let table = [
            ("scheduled", json!({}), None),
            ("waiting", json!({}), Some("arrived")),
            ("in_progress", json!({}), Some("in-progress")),
            ("completed", json!({}), Some("finished")),
            ("cancelled", json!({}), None),
            ("no_show", json!({}), None),
            ("cancelled", joined.clone(), Some("cancelled")),
            (
                "no_show",
                json!({"started_at": "2024-02-01T14:00:00Z"}),
                Some("cancelled"),
            ),
        ];
        for (status, extra, expected) in table {
            assert_eq!(status_of(&visit(status, extra), None).as_deref(), expected, "{status}");
        }
    }

    #[test]
    fn a_waiting_entry_makes_a_scheduled_visit_arrived() {
        let w = wire::WaitingRoomEntry {
            visit_id: "v1".into(),
            patient_id: "p1".into(),
            joined_at: "2024-02-01T13:57:00Z".into(),
            ..Default::default()
        };
        let v = visit("scheduled", json!({}));
        let e = visit_encounter(&v, Some(&w), &test_ctx()).unwrap().unwrap();
        assert_eq!(e.status.value.as_deref(), Some("arrived"));
        assert_eq!(
            e.period.unwrap().start.unwrap().value.as_deref(),
            Some("2024-02-01T08:57:00-05:00")
        );
        let other = wire::WaitingRoomEntry {
            visit_id: "v2".into(),
            ..w
        };
        assert!(matches!(
            visit_encounter(&v, Some(&other), &test_ctx()),
            Err(MapError::Invalid { field: "visit_id", .. })
        ));
    }

    #[test]
    fn actual_times_make_period_history_and_length() {
        let v = visit(
            "completed",
            json!({"patient_joined_at": "2024-02-01T13:58:00Z", "started_at": "2024-02-01T14:01:00Z",
                   "ended_at": "2024-02-01T14:29:00Z"}),
        );
        let e = visit_encounter(&v, None, &test_ctx()).unwrap().unwrap();
        let p = e.period.unwrap();
        assert_eq!(p.start.unwrap().value.as_deref(), Some("2024-02-01T08:58:00-05:00"));
        assert_eq!(p.end.unwrap().value.as_deref(), Some("2024-02-01T09:29:00-05:00"));
        let history: Vec<_> = e
            .status_history
            .iter()
            .map(|h| h.status.value.clone().unwrap())
            .collect();
        assert_eq!(history, ["arrived", "in-progress"]);
        assert_eq!(e.length.unwrap().value.unwrap().value.as_deref(), Some("31"));
        // Without actual times there is no period: planned times are not actual ones.
        let e = visit_encounter(&visit("completed", json!({})), None, &test_ctx())
            .unwrap()
            .unwrap();
        assert_eq!(e.period, None);
    }
}
