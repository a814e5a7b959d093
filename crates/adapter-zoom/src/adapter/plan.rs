//! FHIR search → Zoom calls: what is pushed down, and what is left to the gateway.
//!
//! Pure: "today" comes in through [`PlanCtx`], no clock is read. A plan may widen a FHIR search
//! (the gateway filters every parameter again) but never narrows it.
//!
//! | type | Zoom call | pushed down |
//! |---|---|---|
//! | DocumentReference | `GET /clinical_notes/notes` | `_id`/`identifier` (native) → reads; `identifier` (meeting UUID) → `meeting_id`; `author` (one Zoom Practitioner) → `note_owner_user_id`; upper bounds of `date`/`_lastUpdated` → `to` |
//! | Appointment | `GET /healthcare/visits` | `_id`/`identifier` → reads; `status` → `status`; `patient`, `practitioner` (one Zoom reference each) → `patient_id`, `provider_id`; `date` → `from`/`to` |
//! | Encounter | `GET /healthcare/visits` | `_id`/`identifier`/`appointment` → reads; `status` → `status`; `patient`, `practitioner` → `patient_id`, `provider_id` |
//! | Patient | visits' patients (Zoom lists no patients) | `_id`/`identifier` → reads |
//! | Practitioner | `GET /healthcare/providers` | `_id`/`identifier` → reads |
//! | Schedule | providers + `…/availability` | `_id`/`identifier`/`actor` → reads |
//! | Slot | providers + `…/availability?from&to` | `_id`/`identifier` → reads; `schedule` → those providers; `start` → the days asked |

use chrono::{DateTime, Duration, NaiveDate, Utc};

use adapter::search::{SearchValue, TokenValue, plausible_instant};
use adapter::time::utc_seconds;
use adapter::{FhirId, ResourceType, SearchRequest, systems};

use super::cursor::Stream;
use crate::map::codes::VisitStatus;
use crate::map::ids::{self, ZoomId};

/// Slots are listed from today for this many days when `start` sets no upper bound.
pub(crate) const DEFAULT_SLOT_DAYS: i64 = 14;

/// Slots are never listed further ahead than this many days.
pub(crate) const MAX_SLOT_DAYS: i64 = 93;

/// The longest `from`..`to` span of one availability call (Zoom computes at most 31 days).
pub(crate) const SLOT_CHUNK_DAYS: i64 = 31;

const APPOINTMENT_STATUS: &str = "http://hl7.org/fhir/appointmentstatus";
const ENCOUNTER_STATUS: &str = "http://hl7.org/fhir/encounter-status";

/// What a search needs from Zoom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing at Zoom can match: no call.
    Nothing,
    /// Read these resources one by one.
    Ids(Vec<ZoomId>),
    /// Walk one Zoom list.
    List(ListQuery),
    /// The slots of these providers on `days` (one page, no continuation).
    Slots { providers: Vec<String>, days: Days },
}

/// One Zoom list with its filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub(crate) stream: Stream,
    /// Query parameters besides `page_size` and `next_page_token`.
    pub(crate) params: Vec<(&'static str, String)>,
    /// Notes of this Zoom provider only (`author`): the adapter looks up its Zoom user id for
    /// `note_owner_user_id`.
    pub(crate) owner_provider: Option<String>,
    /// Slot searches: the days whose slots are listed for each provider.
    pub(crate) days: Option<Days>,
    /// Note and Appointment searches by `patient`/`subject`: the patients (`Patient/{id}`) one of
    /// which a note (as its EHR patient) or a visit (its Zoom or EHR patient) must name to match.
    /// Zoom cannot filter by an EHR patient, so the adapter drops the others before mapping them —
    /// and before checking any of their EHR references at the EHR.
    pub(crate) subjects: Option<Vec<String>>,
}

impl ListQuery {
    fn new(stream: Stream) -> Self {
        Self {
            stream,
            params: Vec::new(),
            owner_provider: None,
            days: None,
            subjects: None,
        }
    }
}

/// An inclusive range of dates (the availability's `from`/`to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Days {
    pub(crate) first: NaiveDate,
    pub(crate) last: NaiveDate,
}

impl Days {
    /// The range cut into availability calls of at most [`SLOT_CHUNK_DAYS`] days.
    pub(crate) fn chunks(self) -> Vec<(NaiveDate, NaiveDate)> {
        let mut out = Vec::new();
        let mut first = self.first;
        while first <= self.last {
            let last = self.last.min(first + Duration::days(SLOT_CHUNK_DAYS - 1));
            out.push((first, last));
            match last.succ_opt() {
                Some(next) => first = next,
                None => break,
            }
        }
        out
    }
}

/// The inputs a plan depends on besides the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanCtx {
    /// Today's date (UTC): slots are only listed from here on.
    pub(crate) today: NaiveDate,
}

/// Plans `request` on `resource_type`.
pub(crate) fn plan(resource_type: ResourceType, request: &SearchRequest, ctx: PlanCtx) -> Plan {
    if let Some(ids) = id_filter(resource_type, request) {
        return if ids.is_empty() { Plan::Nothing } else { Plan::Ids(ids) };
    }
    match resource_type {
        ResourceType::DocumentReference => notes(request),
        ResourceType::Appointment => visits(request, false),
        ResourceType::Encounter => match reference_filter(request, "appointment", ResourceType::Appointment, true) {
            RefFilter::Absent | RefFilter::Cannot => visits(request, true),
            RefFilter::Nothing => Plan::Nothing,
            RefFilter::Natives(visits) => Plan::Ids(visits.into_iter().map(ZoomId::Encounter).collect()),
        },
        // Zoom lists no patients (they are read by id): `_id`/`identifier` above is all a search can do.
        ResourceType::Patient => Plan::Nothing,
        ResourceType::Practitioner => Plan::List(ListQuery::new(Stream::Providers)),
        ResourceType::Schedule => match reference_filter(request, "actor", ResourceType::Practitioner, true) {
            RefFilter::Absent | RefFilter::Cannot => Plan::List(ListQuery::new(Stream::Providers)),
            RefFilter::Nothing => Plan::Nothing,
            RefFilter::Natives(providers) => Plan::Ids(providers.into_iter().map(ZoomId::Schedule).collect()),
        },
        ResourceType::Slot => {
            let Some(days) = slot_days(request, ctx.today) else {
                return Plan::Nothing;
            };
            match reference_filter(request, "schedule", ResourceType::Schedule, true) {
                RefFilter::Absent | RefFilter::Cannot => {
                    let mut q = ListQuery::new(Stream::Providers);
                    q.days = Some(days);
                    Plan::List(q)
                }
                RefFilter::Nothing => Plan::Nothing,
                RefFilter::Natives(schedules) => {
                    let providers: Vec<String> = schedules
                        .iter()
                        .filter_map(|s| match ZoomId::parse(ResourceType::Schedule, s) {
                            Some(ZoomId::Schedule(provider)) => Some(provider),
                            _ => None,
                        })
                        .collect();
                    if providers.is_empty() {
                        Plan::Nothing
                    } else {
                        Plan::Slots { providers, days }
                    }
                }
            }
        }
        ResourceType::Location => Plan::Nothing,
    }
}

/// The FHIR parameters [`plan`] pushes down, per type (for the capabilities).
pub(crate) fn pushdown(resource_type: ResourceType) -> Vec<&'static str> {
    match resource_type {
        ResourceType::DocumentReference => vec!["_id", "identifier", "author", "date", "_lastUpdated"],
        ResourceType::Appointment => vec!["_id", "identifier", "status", "patient", "practitioner", "date"],
        ResourceType::Encounter => vec!["_id", "identifier", "status", "patient", "practitioner", "appointment"],
        ResourceType::Patient | ResourceType::Practitioner => vec!["_id", "identifier"],
        ResourceType::Schedule => vec!["_id", "identifier", "actor"],
        ResourceType::Slot => vec!["_id", "identifier", "schedule", "start"],
        ResourceType::Location => vec![],
    }
}

/// The identifier `kind` of each type's native ids.
fn native_kind(resource_type: ResourceType) -> Option<&'static str> {
    Some(match resource_type {
        ResourceType::Patient => ids::kind::PATIENT,
        ResourceType::Practitioner => ids::kind::PRACTITIONER,
        ResourceType::Appointment => ids::kind::APPOINTMENT,
        ResourceType::Encounter => ids::kind::ENCOUNTER,
        ResourceType::DocumentReference => ids::kind::DOCUMENT_REFERENCE,
        ResourceType::Schedule => ids::kind::SCHEDULE,
        ResourceType::Slot => ids::kind::SLOT,
        ResourceType::Location => return None,
    })
}

/// The resources a search names directly, `None` when it names none: `_id=zoom-…,zoom-…` or
/// `identifier=urn:fhir-gateway:id:zoom:{kind}|{native}` (the identifier every resource carries
/// its native id under). Ids of other sources, or that this scheme does not make, name nothing.
fn id_filter(resource_type: ResourceType, request: &SearchRequest) -> Option<Vec<ZoomId>> {
    if let Some(natives) = request.id_natives(ids::SOURCE) {
        return Some(dedup(
            natives
                .iter()
                .filter_map(|native| ZoomId::parse(resource_type, native))
                .collect(),
        ));
    }
    // An identifier of another system, or of none, may match other identifiers (the meeting).
    let system = systems::native_id_system(ids::SOURCE, native_kind(resource_type)?);
    let codes = request.identifier_codes(&system)?;
    Some(dedup(
        codes
            .iter()
            .filter_map(|code| ZoomId::parse(resource_type, code))
            .collect(),
    ))
}

fn dedup(mut ids: Vec<ZoomId>) -> Vec<ZoomId> {
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    ids
}

fn notes(request: &SearchRequest) -> Plan {
    let mut q = ListQuery::new(Stream::Notes);
    // The meeting UUID every note carries as an identifier.
    let meeting = systems::native_id_system(ids::SOURCE, ids::kind::MEETING);
    if let Some(SearchValue::Token(TokenValue {
        system: Some(system),
        code: Some(uuid),
    })) = request.single("identifier")
        && *system == meeting
        && !uuid.is_empty()
    {
        q.params.push(("meeting_id", uuid.clone()));
    }
    // The author is the EHR provider of `ehr_context` when the note names one, else the Zoom
    // provider owning the note: a Zoom Practitioner is only ever the author of its own notes.
    if let RefFilter::Natives(providers) = reference_filter(request, "author", ResourceType::Practitioner, false)
        && let [provider] = providers.as_slice()
    {
        q.owner_provider = Some(provider.clone());
    }
    q.subjects = subject_filter(request);
    // `date` and `meta.lastUpdated` are the note's last change, never before its creation, which
    // `to` bounds: only their upper bounds narrow the list.
    let upper = ["date", "_lastUpdated"]
        .into_iter()
        .filter_map(|name| request.date_bounds(name))
        .map(|range| range.end)
        .filter(|end| plausible(*end))
        .min();
    if let Some(end) = upper {
        q.params.push(("to", zoom_inclusive_end(end)));
    }
    Plan::List(q)
}

/// The patients (`Patient/{id}`) a note search's `patient` (else `subject`) parameter names, when
/// it is given once, without a modifier, and names only patients; `None` when it does not narrow
/// the notes (absent, or a shape only the engine evaluates). A note's subject is only ever a
/// patient, so any other shape leaves every note to the engine.
fn subject_filter(request: &SearchRequest) -> Option<Vec<String>> {
    let name = ["patient", "subject"]
        .into_iter()
        .find(|name| request.params(name).next().is_some())?;
    let mut params = request.params(name);
    let param = params.next()?;
    if params.next().is_some() || param.modifier.is_some() {
        return None;
    }
    let mut patients = Vec::new();
    for value in &param.values {
        match value {
            SearchValue::Reference(r) if r.resource_type.is_none_or(|t| t == ResourceType::Patient) => {
                patients.push(format!("Patient/{}", r.id));
            }
            _ => return None,
        }
    }
    Some(patients)
}

fn visits(request: &SearchRequest, encounter: bool) -> Plan {
    let mut q = ListQuery::new(Stream::Visits);
    let statuses = if encounter {
        status_filter(request, ENCOUNTER_STATUS, encounter_statuses)
    } else {
        status_filter(request, APPOINTMENT_STATUS, appointment_statuses)
    };
    match statuses {
        StatusFilter::Any => {}
        StatusFilter::Nothing => return Plan::Nothing,
        StatusFilter::Only(list) => {
            let wire: Vec<&str> = list.iter().map(|s| s.wire()).collect();
            q.params.push(("status", wire.join(",")));
        }
    }
    // An Encounter's subject is only ever the Zoom patient; an Appointment also lists the EHR
    // patient and practitioner, and an Encounter the EHR practitioner, so references to another
    // source cannot rule a visit out there.
    for (param, target, filter, exclusive) in [
        ("patient", ResourceType::Patient, "patient_id", encounter),
        ("practitioner", ResourceType::Practitioner, "provider_id", false),
    ] {
        match reference_filter(request, param, target, exclusive) {
            RefFilter::Absent | RefFilter::Cannot => {}
            RefFilter::Nothing => return Plan::Nothing,
            RefFilter::Natives(natives) => {
                if let [one] = natives.as_slice() {
                    q.params.push((filter, one.clone()));
                }
            }
        }
    }
    // Zoom filters by one Zoom patient only; an Appointment naming an EHR patient is kept by the
    // adapter only when it names one of the patients asked for (before its references are checked).
    if !encounter {
        q.subjects = subject_filter(request);
    }
    // An Appointment's `date` is its `start`, the visit's `scheduled_time`, which `from`/`to`
    // filter on. An Encounter's period is actual times, which may differ from the schedule.
    if !encounter && let Some(range) = request.date_bounds("date") {
        if plausible(range.start) {
            q.params.push(("from", utc_seconds(&range.start)));
        }
        if plausible(range.end) {
            q.params.push(("to", zoom_inclusive_end(range.end)));
        }
    }
    Plan::List(q)
}

/// What a reference parameter says about one target type of this source.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RefFilter {
    /// Not given.
    Absent,
    /// Given, but it cannot be pushed down (a modifier, AND of several, chained, …).
    Cannot,
    /// Given, and no resource of this source can match.
    Nothing,
    /// Given once, every value a reference to one of these Zoom natives.
    Natives(Vec<String>),
}

/// Reads a reference parameter. With `exclusive`, the element only ever refers to this source's
/// `target`s, so values naming other sources match nothing here; otherwise they make the
/// parameter impossible to push down.
fn reference_filter(request: &SearchRequest, name: &str, target: ResourceType, exclusive: bool) -> RefFilter {
    let mut params = request.params(name);
    let Some(param) = params.next() else {
        return RefFilter::Absent;
    };
    if params.next().is_some() || param.modifier.is_some() {
        return RefFilter::Cannot;
    }
    let mut natives: Vec<String> = Vec::new();
    let mut foreign = false;
    for value in &param.values {
        let SearchValue::Reference(r) = value else {
            return RefFilter::Cannot;
        };
        if r.resource_type.is_some_and(|t| t != target) {
            foreign = true;
            continue;
        }
        match FhirId::parse(&r.id) {
            Ok(id) if id.source() == ids::SOURCE => match ZoomId::parse(target, id.native()) {
                Some(_) => {
                    if !natives.iter().any(|n| n == id.native()) {
                        natives.push(id.native().to_owned());
                    }
                }
                None => foreign = true,
            },
            _ => foreign = true,
        }
    }
    match (natives.is_empty(), foreign, exclusive) {
        (true, _, true) => RefFilter::Nothing,
        (_, true, false) => RefFilter::Cannot,
        (true, false, false) => RefFilter::Cannot,
        _ => RefFilter::Natives(natives),
    }
}

/// What a status parameter allows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StatusFilter {
    Any,
    Nothing,
    Only(Vec<VisitStatus>),
}

/// A status parameter given once without a modifier, as the visit statuses it matches.
fn status_filter(request: &SearchRequest, system: &str, to_visit: fn(&str) -> Vec<VisitStatus>) -> StatusFilter {
    let Some(codes) = request.token_codes("status", system) else {
        return StatusFilter::Any;
    };
    let mut out: Vec<VisitStatus> = Vec::new();
    for code in codes {
        for status in to_visit(code) {
            if !out.contains(&status) {
                out.push(status);
            }
        }
    }
    if out.is_empty() {
        StatusFilter::Nothing
    } else {
        StatusFilter::Only(out)
    }
}

/// The visit statuses whose Appointment has `code` (the inverse of the mapping's table).
fn appointment_statuses(code: &str) -> Vec<VisitStatus> {
    VisitStatus::ALL
        .into_iter()
        .filter(|s| s.appointment().code() == code)
        .collect()
}

/// The visit statuses whose Encounter can have `code`. A scheduled visit whose patient sits in the
/// waiting room is `arrived` too.
fn encounter_statuses(code: &str) -> Vec<VisitStatus> {
    let mut out: Vec<VisitStatus> = VisitStatus::ALL
        .into_iter()
        .filter(|s| {
            [true, false]
                .into_iter()
                .any(|started| s.encounter(started).is_some_and(|e| e.code() == code))
        })
        .collect();
    if out.contains(&VisitStatus::Waiting) && !out.contains(&VisitStatus::Scheduled) {
        out.push(VisitStatus::Scheduled);
    }
    out
}

/// The days whose slots a Slot search needs: `start`'s bounds (a day wider each way, as days are
/// the provider's), from today, at most [`MAX_SLOT_DAYS`] ahead; [`DEFAULT_SLOT_DAYS`] without an
/// upper bound. `None` when no day is left.
fn slot_days(request: &SearchRequest, today: NaiveDate) -> Option<Days> {
    let horizon = today + Duration::days(MAX_SLOT_DAYS - 1);
    let (mut first, mut last) = (today, today + Duration::days(DEFAULT_SLOT_DAYS - 1));
    if let Some(range) = request.date_bounds("start") {
        if plausible(range.start) {
            first = first.max(range.start.date_naive().pred_opt()?);
        }
        if plausible(range.end) {
            let end = (range.end - Duration::milliseconds(1)).date_naive().succ_opt()?;
            last = end.min(horizon);
        } else {
            last = last.max(first + Duration::days(DEFAULT_SLOT_DAYS - 1)).min(horizon);
        }
    }
    (first <= last).then_some(Days { first, last })
}

/// An inclusive `to` (Zoom's `to` includes its second) for an exclusive end.
fn zoom_inclusive_end(end: DateTime<Utc>) -> String {
    utc_seconds(&(end - Duration::milliseconds(1)))
}

/// Instants a Zoom record can carry (from 1900); open bounds (`DateTime::MIN_UTC`…) are not.
fn plausible(t: DateTime<Utc>) -> bool {
    plausible_instant(t, 1900)
}

#[cfg(test)]
mod tests {
    use adapter::search::{DateRange, DateValue, Prefix, ReferenceValue, SearchParam};
    use chrono_tz::Tz;

    use super::*;

    fn p(name: &str, values: Vec<SearchValue>) -> SearchParam {
        SearchParam {
            name: name.into(),
            modifier: None,
            values,
        }
    }

    fn t(system: Option<&str>, code: &str) -> SearchValue {
        SearchValue::Token(TokenValue {
            system: system.map(Into::into),
            code: Some(code.into()),
        })
    }

    fn r(resource_type: ResourceType, id: &str) -> SearchValue {
        SearchValue::Reference(ReferenceValue {
            resource_type: Some(resource_type),
            id: id.into(),
        })
    }

    fn d(prefix: Prefix, value: &str) -> SearchValue {
        SearchValue::Date(DateValue {
            prefix,
            range: DateRange::parse(value, Tz::UTC).unwrap(),
        })
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, 14).unwrap()
    }

    fn planned(resource_type: ResourceType, params: Vec<SearchParam>) -> Plan {
        let request = SearchRequest {
            resource_type: Some(resource_type),
            params,
        };
        plan(resource_type, &request, PlanCtx { today: today() })
    }

    fn params(resource_type: ResourceType, params: Vec<SearchParam>) -> Vec<(&'static str, String)> {
        match planned(resource_type, params) {
            Plan::List(q) => q.params,
            other => panic!("{other:?}"),
        }
    }

    fn own(values: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        values.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    #[test]
    fn ids_and_native_identifiers_are_read_directly() {
        use ResourceType::{Appointment, DocumentReference, Encounter};
        assert_eq!(
            planned(
                DocumentReference,
                vec![p(
                    "_id",
                    vec![
                        t(None, "zoom-note-a1"),
                        t(None, "drchrono-1"),
                        t(None, "zoom-v1"),
                        t(None, "zoom-note-a1")
                    ]
                )]
            ),
            Plan::Ids(vec![ZoomId::Note("a1".into())])
        );
        assert_eq!(
            planned(Appointment, vec![p("_id", vec![t(None, "drchrono-1")])]),
            Plan::Nothing
        );
        let system = "urn:fhir-gateway:id:zoom:encounter";
        assert_eq!(
            planned(Encounter, vec![p("identifier", vec![t(Some(system), "enc-v9")])]),
            Plan::Ids(vec![ZoomId::Encounter("v9".into())])
        );
        // An identifier in another system may be a meeting: listed, not read.
        assert!(matches!(
            planned(Encounter, vec![p("identifier", vec![t(None, "enc-v9")])]),
            Plan::List(_)
        ));
    }

    #[test]
    fn note_parameters_push_down() {
        use ResourceType::{DocumentReference, Patient, Practitioner};
        assert_eq!(params(DocumentReference, vec![]), own(&[]));
        let meeting = "urn:fhir-gateway:id:zoom:meeting";
        assert_eq!(
            params(
                DocumentReference,
                vec![p("identifier", vec![t(Some(meeting), "I3pH/E+x==")])]
            ),
            own(&[("meeting_id", "I3pH/E+x==")])
        );
        assert_eq!(
            params(DocumentReference, vec![p("date", vec![d(Prefix::Lt, "2025-03-01")])]),
            own(&[("to", "2025-02-28T23:59:59Z")])
        );
        // A lower bound on the last change says nothing of the creation.
        assert_eq!(
            params(DocumentReference, vec![p("date", vec![d(Prefix::Ge, "2025-03-01")])]),
            own(&[])
        );
        let prov_1 = ids::fhir_id("prov_1").unwrap();
        let Plan::List(q) = planned(DocumentReference, vec![p("author", vec![r(Practitioner, &prov_1)])]) else {
            panic!()
        };
        assert_eq!(q.owner_provider.as_deref(), Some("prov_1"));
        // An EHR author may write a Zoom note: no narrowing, and no "nothing".
        for author in [
            vec![r(Practitioner, "drchrono-3")],
            vec![r(Practitioner, "drchrono-3"), r(Practitioner, "zoom-p1")],
        ] {
            let Plan::List(q) = planned(DocumentReference, vec![p("author", author)]) else {
                panic!()
            };
            assert_eq!(q.owner_provider, None);
        }
        // The subject is the EHR patient: never pushed to Zoom, never "nothing"; the adapter keeps
        // only the notes naming one of the patients.
        let subjects = |params: Vec<SearchParam>| match planned(DocumentReference, params) {
            Plan::List(q) => q.subjects,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            subjects(vec![p(
                "patient",
                vec![r(Patient, "drchrono-1"), r(Patient, "drchrono-2")]
            )]),
            Some(vec!["Patient/drchrono-1".to_owned(), "Patient/drchrono-2".to_owned()])
        );
        let untyped = SearchValue::Reference(ReferenceValue {
            resource_type: None,
            id: "drchrono-1".into(),
        });
        assert_eq!(
            subjects(vec![p("subject", vec![untyped])]),
            Some(vec!["Patient/drchrono-1".to_owned()])
        );
        // Shapes the engine evaluates: every note is kept.
        let mut modified = p("patient", vec![r(Patient, "drchrono-1")]);
        modified.modifier = Some(adapter::search::Modifier::Missing);
        assert_eq!(subjects(vec![modified]), None);
        assert_eq!(
            subjects(vec![
                p("patient", vec![r(Patient, "drchrono-1")]),
                p("patient", vec![r(Patient, "drchrono-2")])
            ]),
            None
        );
        assert_eq!(subjects(vec![p("subject", vec![r(Practitioner, "drchrono-3")])]), None);
        assert_eq!(subjects(vec![]), None);
    }

    #[test]
    fn visit_parameters_push_down() {
        use ResourceType::{Appointment, Encounter, Patient, Practitioner};
        // An Appointment naming an EHR patient: every visit is listed, and the adapter keeps those
        // naming the patient; an Encounter's subject is only ever Zoom's.
        let Plan::List(q) = planned(Appointment, vec![p("patient", vec![r(Patient, "drchrono-1")])]) else {
            panic!()
        };
        assert_eq!(q.subjects, Some(vec!["Patient/drchrono-1".to_owned()]));
        let Plan::List(q) = planned(Encounter, vec![p("practitioner", vec![r(Practitioner, "drchrono-3")])]) else {
            panic!()
        };
        assert_eq!(q.subjects, None);
        assert_eq!(
            params(
                Appointment,
                vec![p(
                    "status",
                    vec![t(None, "booked"), t(Some(APPOINTMENT_STATUS), "noshow")]
                )]
            ),
            own(&[("status", "scheduled,no_show")])
        );
        assert_eq!(
            params(Appointment, vec![p("status", vec![t(Some("urn:x"), "booked")])]),
            own(&[])
        );
        assert_eq!(
            planned(Appointment, vec![p("status", vec![t(None, "proposed")])]),
            Plan::Nothing
        );
        assert_eq!(
            params(Encounter, vec![p("status", vec![t(None, "arrived")])]),
            own(&[("status", "waiting,scheduled")])
        );
        assert_eq!(
            params(Encounter, vec![p("status", vec![t(None, "cancelled")])]),
            own(&[("status", "cancelled,no_show")])
        );
        assert_eq!(
            planned(Encounter, vec![p("status", vec![t(None, "planned")])]),
            Plan::Nothing
        );
        assert_eq!(
            params(
                Appointment,
                vec![
                    p("patient", vec![r(Patient, "zoom-p1")]),
                    p("practitioner", vec![r(Practitioner, "zoom-d1")]),
                ]
            ),
            own(&[("patient_id", "p1"), ("provider_id", "d1")])
        );
        // An Appointment lists the EHR patient too; an Encounter's subject is only Zoom's.
        assert_eq!(
            params(Appointment, vec![p("patient", vec![r(Patient, "drchrono-1")])]),
            own(&[])
        );
        assert_eq!(
            planned(Encounter, vec![p("patient", vec![r(Patient, "drchrono-1")])]),
            Plan::Nothing
        );
        assert_eq!(
            params(
                Encounter,
                vec![p("patient", vec![r(Patient, "zoom-p1"), r(Patient, "drchrono-1")])]
            ),
            own(&[("patient_id", "p1")])
        );
        assert_eq!(
            params(
                Appointment,
                vec![
                    p("date", vec![d(Prefix::Ge, "2025-03-01")]),
                    p("date", vec![d(Prefix::Lt, "2025-04-01")])
                ]
            ),
            own(&[("from", "2025-03-01T00:00:00Z"), ("to", "2025-03-31T23:59:59Z")])
        );
        assert_eq!(
            params(Encounter, vec![p("date", vec![d(Prefix::Eq, "2025-03-01")])]),
            own(&[])
        );
        assert_eq!(
            planned(
                Encounter,
                vec![p("appointment", vec![r(ResourceType::Appointment, "zoom-v7")])]
            ),
            Plan::Ids(vec![ZoomId::Encounter("v7".into())])
        );
    }

    #[test]
    fn schedules_and_slots() {
        use ResourceType::{Practitioner, Schedule, Slot};
        assert_eq!(
            planned(Schedule, vec![p("actor", vec![r(Practitioner, "zoom-d1")])]),
            Plan::Ids(vec![ZoomId::Schedule("d1".into())])
        );
        assert_eq!(
            planned(Schedule, vec![p("actor", vec![r(Practitioner, "drchrono-1")])]),
            Plan::Nothing
        );
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            planned(Slot, vec![p("schedule", vec![r(Schedule, "zoom-sched-d1")])]),
            Plan::Slots {
                providers: vec!["d1".into()],
                days: Days {
                    first: today(),
                    last: day("2025-03-27")
                }
            }
        );
        let Plan::List(q) = planned(
            Slot,
            vec![
                p("start", vec![d(Prefix::Ge, "2025-03-20")]),
                p("start", vec![d(Prefix::Lt, "2025-03-22")]),
            ],
        ) else {
            panic!()
        };
        assert_eq!(
            q.days,
            Some(Days {
                first: day("2025-03-19"),
                last: day("2025-03-22")
            })
        );
        assert_eq!(
            planned(Slot, vec![p("start", vec![d(Prefix::Lt, "2025-03-01")])]),
            Plan::Nothing
        );
        let long = Days {
            first: day("2025-01-01"),
            last: day("2025-03-05"),
        };
        assert_eq!(
            long.chunks(),
            vec![
                (day("2025-01-01"), day("2025-01-31")),
                (day("2025-02-01"), day("2025-03-03")),
                (day("2025-03-04"), day("2025-03-05")),
            ]
        );
    }
}
