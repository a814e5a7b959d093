//! `/api/appointments` → Appointment.

use adapter::fhir::resources::Appointment;
use adapter::fhir_build::accepted_participant;
use chrono::{DateTime, Duration, FixedOffset};

use super::codes::{self, AppointmentStatus, FhirAppointmentStatus};
use super::ids::LocationId;
use super::{
    DrCtx, MapError, concept, fhir_id, fhir_text, ids, meta, native_identifier, present, reference, text_concept, time,
};
use crate::wire;

/// Maps a DrChrono appointment. Breaks (`appt_is_break`, or a `null` patient) are not
/// appointments with a patient and give `Ok(None)`.
///
/// - `status`: `deleted_flag` → `entered-in-error`; otherwise [`AppointmentStatus`] (an unknown
///   status string is an error). "Rescheduled" also sets `cancelationReason.text`.
/// - `start`: `scheduled_time` in the practice zone with its offset; `end` = start + `duration`
///   minutes (its own offset, which differs from the start's across a DST change);
///   `minutesDuration` = `duration` when positive (a zero or missing duration gives end = start).
/// - participants (all `accepted`): the patient, the doctor (type ATND), the exam room's Location
///   when `exam_room` is set, and always the office's Location (so a search by the office finds
///   appointments in any of its rooms).
/// - `reasonCode.text` = `reason`, `comment` = `notes`, `created` = `created_at`.
pub fn appointment(a: &wire::Appointment, ctx: &DrCtx) -> Result<Option<Appointment>, MapError> {
    let Some(patient) = a.patient.filter(|_| !a.appt_is_break) else {
        return Ok(None);
    };
    let native = present(&a.id)
        .map(ids::appointment)
        .ok_or(MapError::Missing { field: "id" })?;
    let status = if a.deleted_flag {
        None
    } else {
        Some(AppointmentStatus::from_wire(&a.status).ok_or(MapError::UnknownCode { field: "status" })?)
    };
    let fhir_status = status.map_or(FhirAppointmentStatus::EnteredInError, AppointmentStatus::fhir);

    let tz = ctx.tz_for(a.doctor);
    let updated = time::timestamp_field("updated_at", &a.updated_at, tz)?;
    let created = time::timestamp_field("created_at", &a.created_at, tz)?;
    let (start, end) = period(a, ctx)?;
    let minutes = a.duration.filter(|d| *d > 0).map(|d| {
        u32::try_from(d).map_err(|_| MapError::Invalid {
            field: "duration",
            expected: "number of minutes",
        })
    });

    let mut participants = vec![accepted_participant(
        reference("patient", "Patient", &ids::patient(patient))?,
        None,
    )];
    if let Some(doctor) = a.doctor {
        participants.push(accepted_participant(
            reference("doctor", "Practitioner", &ids::practitioner(doctor))?,
            Some(concept(vec![codes::ATTENDER.coding()], None)),
        ));
    }
    if let Some(location) = appointment_location(a) {
        if let LocationId::ExamRoom { office, .. } = location {
            participants.push(accepted_participant(
                reference("exam_room", "Location", &ids::location(&location))?,
                None,
            ));
            participants.push(accepted_participant(
                reference("office", "Location", &ids::location(&LocationId::Office(office)))?,
                None,
            ));
        } else {
            participants.push(accepted_participant(
                reference("office", "Location", &ids::location(&location))?,
                None,
            ));
        }
    }

    Ok(Some(Appointment {
        id: Some(fhir_id("id", &native)?.into()),
        meta: Some(Box::new(meta(ctx, tz, updated, None))),
        identifier: vec![native_identifier(ids::kind::APPOINTMENT, &native)],
        status: fhir_status.code().into(),
        cancelation_reason: (status == Some(AppointmentStatus::Rescheduled))
            .then(|| text_concept("Rescheduled").map(Box::new))
            .flatten(),
        reason_code: text_concept(&a.reason).into_iter().collect(),
        start: Some(time::fhir_instant(&start).into()),
        end: Some(time::fhir_instant(&end).into()),
        minutes_duration: minutes.transpose()?.map(Into::into),
        created: created.map(|c| time::fhir_instant(&c).into()),
        comment: fhir_text(&a.notes),
        participant: participants,
        ..Default::default()
    }))
}

/// The appointment's start and end in the practice zone of its doctor.
pub(crate) fn period(
    a: &wire::Appointment,
    ctx: &DrCtx,
) -> Result<(DateTime<FixedOffset>, DateTime<FixedOffset>), MapError> {
    let tz = ctx.tz_for(a.doctor);
    let start = time::timestamp_field("scheduled_time", &a.scheduled_time, tz)?.ok_or(MapError::Missing {
        field: "scheduled_time",
    })?;
    let minutes = a.duration.unwrap_or(0);
    if !(0..=60 * 24 * 366).contains(&minutes) {
        return Err(MapError::Invalid {
            field: "duration",
            expected: "number of minutes",
        });
    }
    let end = (start + Duration::minutes(minutes)).with_timezone(&tz).fixed_offset();
    Ok((start, end))
}

/// The Location an appointment takes place in: its exam room when set, else its office.
pub fn appointment_location(a: &wire::Appointment) -> Option<LocationId> {
    let office = a.office.filter(|o| *o > 0)?;
    Some(match a.exam_room.filter(|r| *r > 0) {
        Some(index) => LocationId::ExamRoom { office, index },
        None => LocationId::Office(office),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;

    fn appt(status: &str, deleted: bool) -> wire::Appointment {
        serde_json::from_value(serde_json::json!({
            "id": "1", "doctor": 2, "office": 3, "patient": 4, "status": status,
            "deleted_flag": deleted, "scheduled_time": "2024-01-01T10:00:00", "duration": 20
        }))
        .unwrap()
    }

    #[test]
    fn an_unknown_status_is_an_error_that_does_not_repeat_it() {
        let err = appointment(&appt("Waiting On Labs", false), &test_ctx()).unwrap_err();
        assert_eq!(err, MapError::UnknownCode { field: "status" });
        assert!(!err.to_string().contains("Waiting"));
    }

    #[test]
    fn a_deleted_appointment_is_entered_in_error_whatever_its_status() {
        for status in ["Complete", "Waiting On Labs"] {
            let a = appointment(&appt(status, true), &test_ctx()).unwrap().unwrap();
            assert_eq!(a.status.value.as_deref(), Some("entered-in-error"));
        }
    }

    #[test]
    fn breaks_are_not_appointments() {
        let mut a = appt("", false);
        a.appt_is_break = true;
        assert_eq!(appointment(&a, &test_ctx()), Ok(None));
        let mut a = appt("", false);
        a.patient = None;
        assert_eq!(appointment(&a, &test_ctx()), Ok(None));
    }

    #[test]
    fn unusable_times_and_ids_are_errors() {
        let mut a = appt("", false);
        a.scheduled_time = String::new();
        assert_eq!(
            appointment(&a, &test_ctx()),
            Err(MapError::Missing {
                field: "scheduled_time"
            })
        );
        a.scheduled_time = "2024-01-01 at ten".into();
        assert!(matches!(
            appointment(&a, &test_ctx()),
            Err(MapError::Invalid {
                field: "scheduled_time",
                ..
            })
        ));
        let mut a = appt("", false);
        a.duration = Some(-5);
        assert!(matches!(
            appointment(&a, &test_ctx()),
            Err(MapError::Invalid { field: "duration", .. })
        ));
        let mut a = appt("", false);
        a.id = " ".into();
        assert_eq!(appointment(&a, &test_ctx()), Err(MapError::Missing { field: "id" }));
    }

    #[test]
    fn the_location_is_the_room_else_the_office() {
        let mut a = appt("", false);
        assert_eq!(appointment_location(&a), Some(LocationId::Office(3)));
        a.exam_room = Some(2);
        assert_eq!(
            appointment_location(&a),
            Some(LocationId::ExamRoom { office: 3, index: 2 })
        );
        a.office = None;
        assert_eq!(appointment_location(&a), None);
    }
}
