//! A provider's availability → Schedule and Slots.

use std::collections::BTreeMap;

use adapter::fhir::resources::{Schedule, Slot};
use adapter::fhir::types::Period;
use chrono::{DateTime, FixedOffset};
use chrono_tz::Tz;

use super::appointment::appointment_type;
use super::codes::{ProviderStatus, SlotStatus, Weekday};
use super::{
    MapError, ZoomCtx, fhir_id, fhir_text, ids, meta, native_identifier, present, reference, text_concept, time,
};
use crate::wire;

/// Maps a provider's availability to their Schedule.
///
/// - id `zoom-sched-{provider id}`; identifier: the native id.
/// - `actor` the provider's Practitioner; `active` by the provider's status (absent when
///   unknown); `serviceType` the visit types offered; `specialty.text` the provider's specialty.
/// - `planningHorizon`: the window the availability covers (`from`/`to` when echoed, else from
///   the first slot's start to the last slot's end; none without slots).
/// - `comment`: the weekly hours and dated exceptions in words, in the availability's zone
///   (`Mon 09:00-17:00; ...; 2024-02-14 unavailable (Holiday) (America/New_York)`), so nothing
///   of them is lost.
/// - `meta.lastUpdated` = the availability's `updated_at`.
///
/// Times are in the availability's `timezone`, else the provider's, else the practice zone.
/// The availability must be the provider's (`provider_id` empty or equal).
pub fn schedule(p: &wire::Provider, a: &wire::Availability, ctx: &ZoomCtx) -> Result<Schedule, MapError> {
    let provider = provider_id(p, a)?;
    let native = ids::schedule(provider);
    let tz = zone(p, a, ctx);
    let updated = time::timestamp_field("updated_at", &a.updated_at, tz)?;
    let slots = slot_times(a, tz)?;
    let window = |field, s: &str| match start_of(s, tz) {
        Some(t) => Ok(Some(t)),
        None => time::timestamp_field(field, s, tz),
    };
    let from = window("from", &a.from)?;
    let to = window("to", &a.to)?;
    let horizon_start = from.or_else(|| slots.values().map(|(s, _, _)| *s).min());
    let horizon_end = to.or_else(|| slots.values().map(|(_, e, _)| *e).max());

    Ok(Schedule {
        id: Some(fhir_id("provider_id", &native)?.into()),
        meta: Some(Box::new(meta(ctx, updated, None))),
        identifier: vec![native_identifier(ids::kind::SCHEDULE, &native)],
        active: ProviderStatus::from_wire(&p.status).map(|s| s.active().into()),
        service_type: a.visit_types.iter().filter_map(|t| appointment_type(t)).collect(),
        specialty: text_concept(&p.specialty).into_iter().collect(),
        actor: vec![reference("provider_id", "Practitioner", &ids::practitioner(provider))?],
        planning_horizon: (horizon_start.is_some() || horizon_end.is_some()).then(|| {
            Box::new(Period {
                start: horizon_start.map(|t| time::fhir_instant(&t).into()),
                end: horizon_end.map(|t| time::fhir_instant(&t).into()),
                ..Default::default()
            })
        }),
        comment: hours_comment(a, tz)?.and_then(|c| fhir_text(&c)),
        ..Default::default()
    })
}

/// Maps the slots of a provider's availability, in start order.
///
/// - id `zoom-slot-{provider id}-{start, Unix seconds}`; identifier: the native id;
///   `schedule` the provider's Schedule.
/// - `status` by [`SlotStatus`]: a slot's own `status`/`available` when it has one, else
///   `free` for `available_slots` and `busy` for `booked_slots`. When a free and a busy slot
///   start at the same moment, the busy one is kept.
/// - `start`/`end` in the availability's zone (see [`schedule`]); a slot that does not end after
///   it starts is an error.
pub fn slots(p: &wire::Provider, a: &wire::Availability, ctx: &ZoomCtx) -> Result<Vec<Slot>, MapError> {
    let provider = provider_id(p, a)?;
    let tz = zone(p, a, ctx);
    let updated = time::timestamp_field("updated_at", &a.updated_at, tz)?;
    let schedule = reference("provider_id", "Schedule", &ids::schedule(provider))?;
    slot_times(a, tz)?
        .into_iter()
        .map(|(epoch, (start, end, status))| {
            let native = ids::slot(provider, epoch);
            Ok(Slot {
                id: Some(fhir_id("available_slots.start_time", &native)?.into()),
                meta: Some(Box::new(meta(ctx, updated, None))),
                identifier: vec![native_identifier(ids::kind::SLOT, &native)],
                schedule: Box::new(schedule.clone()),
                status: status.code().into(),
                start: time::fhir_instant(&start).into(),
                end: time::fhir_instant(&end).into(),
                ..Default::default()
            })
        })
        .collect()
}

type SlotTimes = BTreeMap<i64, (DateTime<FixedOffset>, DateTime<FixedOffset>, SlotStatus)>;

/// Every slot by its start (Unix seconds); busy wins over free at the same start.
fn slot_times(a: &wire::Availability, tz: Tz) -> Result<SlotTimes, MapError> {
    let mut out = SlotTimes::new();
    let lists = [
        (&a.available_slots, SlotStatus::Free, "available_slots"),
        (&a.booked_slots, SlotStatus::Busy, "booked_slots"),
    ];
    for (list, default, field) in lists {
        for s in list {
            let start = time::timestamp_field(field, &s.start_time, tz)?.ok_or(MapError::Missing { field })?;
            let end = time::timestamp_field(field, &s.end_time, tz)?.ok_or(MapError::Missing { field })?;
            if end <= start {
                return Err(MapError::Invalid {
                    field,
                    expected: "slot that ends after it starts",
                });
            }
            let status = match (present(&s.status), s.available) {
                (Some(text), _) => SlotStatus::from_wire(text).ok_or(MapError::UnknownCode { field })?,
                (None, Some(true)) => SlotStatus::Free,
                (None, Some(false)) => SlotStatus::Busy,
                (None, None) => default,
            };
            let epoch = start.timestamp();
            if epoch < 0 {
                return Err(MapError::Invalid {
                    field,
                    expected: "slot start after 1970",
                });
            }
            let keep = out.get(&epoch).is_none_or(|(_, _, old)| *old == SlotStatus::Free);
            if keep {
                out.insert(epoch, (start, end, status));
            }
        }
    }
    Ok(out)
}

fn provider_id<'a>(p: &'a wire::Provider, a: &wire::Availability) -> Result<&'a str, MapError> {
    let id = present(&p.id).ok_or(MapError::Missing { field: "id" })?;
    match present(&a.provider_id) {
        Some(other) if other != id => Err(MapError::Invalid {
            field: "provider_id",
            expected: "id of the provider the availability is given with",
        }),
        _ => Ok(id),
    }
}

/// The availability's zone, else the provider's, else the practice zone.
fn zone(p: &wire::Provider, a: &wire::Availability, ctx: &ZoomCtx) -> Tz {
    a.timezone
        .trim()
        .parse()
        .or_else(|_| p.timezone.trim().parse())
        .unwrap_or(ctx.base.default_tz)
}

/// A bare date (`YYYY-MM-DD`) as the start of that day in `tz`.
fn start_of(s: &str, tz: Tz) -> Option<DateTime<FixedOffset>> {
    let d = time::parse_date(s)?;
    Some(time::localize(d.and_time(chrono::NaiveTime::MIN), tz))
}

/// The weekly hours and dated exceptions in words; `None` when there are none.
fn hours_comment(a: &wire::Availability, tz: Tz) -> Result<Option<String>, MapError> {
    let mut weekly: Vec<(Option<Weekday>, String)> = a
        .weekly_hours
        .iter()
        .map(|h| {
            let day = Weekday::from_wire(&h.day);
            let label = day.map_or_else(|| h.day.trim().to_owned(), |d| d.abbreviation().to_owned());
            (day, format!("{label} {}-{}", h.start_time.trim(), h.end_time.trim()))
        })
        .collect();
    weekly.sort_by_key(|(day, _)| day.map_or(7, |d| d as u8));
    let mut parts: Vec<String> = weekly.into_iter().map(|(_, text)| text).collect();
    for o in &a.date_overrides {
        let date = time::date_field("date_overrides.date", &o.date)?.ok_or(MapError::Missing {
            field: "date_overrides.date",
        })?;
        let mut text = time::fhir_date(&date);
        if o.available {
            text.push_str(&format!(" {}-{}", o.start_time.trim(), o.end_time.trim()));
        } else {
            text.push_str(" unavailable");
        }
        if let Some(reason) = present(&o.reason) {
            text.push_str(&format!(" ({reason})"));
        }
        parts.push(text);
    }
    Ok((!parts.is_empty()).then(|| format!("{} ({})", parts.join("; "), tz.name())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;
    use serde_json::json;

    fn provider() -> wire::Provider {
        serde_json::from_value(json!({"id": "d1", "status": "active", "timezone": "America/Chicago"})).unwrap()
    }

    fn availability(v: serde_json::Value) -> wire::Availability {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn busy_wins_over_free_at_the_same_start_and_slots_come_in_order() {
        let a = availability(json!({
            "provider_id": "d1",
            "available_slots": [
                {"start_time": "2024-02-05T16:00:00Z", "end_time": "2024-02-05T16:30:00Z"},
                {"start_time": "2024-02-05T15:00:00Z", "end_time": "2024-02-05T15:30:00Z"},
                {"start_time": "2024-02-05T17:00:00Z", "end_time": "2024-02-05T17:30:00Z", "status": "blocked"}
            ],
            "booked_slots": [{"start_time": "2024-02-05T16:00:00Z", "end_time": "2024-02-05T16:30:00Z"}]
        }));
        let got: Vec<_> = slots(&provider(), &a, &test_ctx())
            .unwrap()
            .into_iter()
            .map(|s| (s.start.value.unwrap(), s.status.value.unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("2024-02-05T09:00:00-06:00".to_owned(), "free".to_owned()),
                ("2024-02-05T10:00:00-06:00".to_owned(), "busy".to_owned()),
                ("2024-02-05T11:00:00-06:00".to_owned(), "busy-unavailable".to_owned()),
            ]
        );
    }

    #[test]
    fn bad_slots_and_foreign_availabilities_are_refused() {
        let backwards = availability(json!({"available_slots": [
            {"start_time": "2024-02-05T16:00:00Z", "end_time": "2024-02-05T16:00:00Z"}]}));
        assert!(matches!(
            slots(&provider(), &backwards, &test_ctx()),
            Err(MapError::Invalid {
                field: "available_slots",
                ..
            })
        ));
        let unknown = availability(json!({"available_slots": [
            {"start_time": "2024-02-05T16:00:00Z", "end_time": "2024-02-05T16:30:00Z", "status": "maybe"}]}));
        assert_eq!(
            slots(&provider(), &unknown, &test_ctx()),
            Err(MapError::UnknownCode {
                field: "available_slots"
            })
        );
        let foreign = availability(json!({"provider_id": "d2"}));
        assert!(matches!(
            schedule(&provider(), &foreign, &test_ctx()),
            Err(MapError::Invalid {
                field: "provider_id",
                ..
            })
        ));
        let no_end = availability(json!({"booked_slots": [{"start_time": "2024-02-05T16:00:00Z"}]}));
        assert_eq!(
            slots(&provider(), &no_end, &test_ctx()),
            Err(MapError::Missing { field: "booked_slots" })
        );
    }

    #[test]
    fn the_comment_keeps_the_hours_and_exceptions() {
        let a = availability(json!({
            "timezone": "America/New_York",
            "weekly_hours": [
                {"day": "wednesday", "start_time": "13:00", "end_time": "17:00"},
                {"day": "monday", "start_time": "09:00", "end_time": "12:00"}
            ],
            "date_overrides": [
                {"date": "2024-02-14", "available": false, "reason": "Holiday"},
                {"date": "2024-02-15", "available": true, "start_time": "10:00", "end_time": "11:00"}
            ],
            "from": "2024-02-05", "to": "2024-02-19"
        }));
        let s = schedule(&provider(), &a, &test_ctx()).unwrap();
        assert_eq!(
            s.comment.unwrap().value.as_deref(),
            Some(
                "Mon 09:00-12:00; Wed 13:00-17:00; 2024-02-14 unavailable (Holiday); 2024-02-15 10:00-11:00 \
                 (America/New_York)"
            )
        );
        let h = s.planning_horizon.unwrap();
        assert_eq!(h.start.unwrap().value.as_deref(), Some("2024-02-05T00:00:00-05:00"));
        assert_eq!(h.end.unwrap().value.as_deref(), Some("2024-02-19T00:00:00-05:00"));
        assert_eq!(s.active.unwrap().value, Some(true));
    }
}
