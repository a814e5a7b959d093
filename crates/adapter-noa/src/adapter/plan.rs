//! FHIR search → Noa calls: what is pushed down, and what is left to the gateway.
//!
//! Pure. A plan may widen a FHIR search (the gateway filters every parameter again) but never
//! narrows it.
//!
//! | type | Noa call | pushed down |
//! |---|---|---|
//! | Encounter | `GET consumers/sessions` | `_id`/`identifier` (session) → reads; `identifier` (episode), `appointment` → `episodeId`; `practitioner` → `doctorId`; `status` → `status` (the Noa statuses of each Encounter status); `date` → `createdFrom`/`createdTo`; `patient` → filtered in the adapter |
//! | DocumentReference | `GET consumers/sessions?status=Analyzing&status=Summarized&status=Verified&status=EmptySummaryVerified` | `_id`/`identifier` (session), `encounter` → reads; `author` → `doctorId`; `date` → `createdTo`; `patient` → filtered in the adapter (before any summary is fetched) |
//!
//! Dates: a session is created before its recording starts, and the Encounter's period starts at
//! the recording (else the creation), so an upper bound on the period's start bounds `createdAt`
//! exactly (`createdTo`). A lower bound can only bound the period's end, which may come after the
//! creation: `createdFrom` is the bound less [`CREATED_SLACK`] (a Noa session lives hours, and a
//! recording ends the day it started). A summary's `date` (its generation or approval) can come
//! any time after the session was created, so only its upper bound is pushed down.

use adapter::search::{SearchValue, TokenValue, plausible_instant};
use adapter::time::utc_seconds;
use adapter::{ResourceType, SearchRequest, systems};
use chrono::{DateTime, Duration, Utc};

use crate::map::codes::{ENCOUNTER_STATUS_SYSTEM, FhirEncounterStatus, SessionStatus};
use crate::map::ids;

/// How much earlier than a search's lower date bound a session may have been created.
pub(crate) const CREATED_SLACK: Duration = Duration::days(1);

/// What a search needs from Noa.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing at Noa can match: no call.
    Nothing,
    /// Read these sessions one by one.
    Ids(Vec<String>),
    /// Walk the session list.
    List(ListQuery),
}

/// The session list with its filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListQuery {
    /// Query parameters besides `pageSize` and `pageToken` (`status` may repeat).
    pub(crate) params: Vec<(&'static str, String)>,
    /// Only sessions whose EHR patient is one of these (native ids), checked by the adapter.
    pub(crate) patients: Option<Vec<String>>,
}

/// Plans `request` on `resource_type` for sessions of the EHR `ehr_source`.
pub(crate) fn plan(resource_type: ResourceType, request: &SearchRequest, ehr_source: &str) -> Plan {
    if !matches!(resource_type, ResourceType::Encounter | ResourceType::DocumentReference) {
        return Plan::Nothing;
    }
    if let Some(ids) = id_filter(request) {
        return if ids.is_empty() { Plan::Nothing } else { Plan::Ids(ids) };
    }
    let encounter = resource_type == ResourceType::Encounter;
    if !encounter {
        match reference_filter(request, "encounter", ResourceType::Encounter, ids::SOURCE) {
            RefFilter::Absent | RefFilter::Cannot => {}
            RefFilter::Nothing => return Plan::Nothing,
            RefFilter::Natives(sessions) => {
                let sessions: Vec<String> = sessions.into_iter().filter(|s| ids::is_session_id(s)).collect();
                return if sessions.is_empty() {
                    Plan::Nothing
                } else {
                    Plan::Ids(sessions)
                };
            }
        }
    }
    let mut q = ListQuery::default();
    let statuses = if encounter {
        match status_filter(request) {
            StatusFilter::Any => SessionStatus::ALL.to_vec(),
            StatusFilter::Only(list) => list,
        }
    } else {
        SessionStatus::ALL.to_vec()
    };
    let statuses: Vec<SessionStatus> = statuses
        .into_iter()
        .filter(|s| encounter || s.may_have_summary())
        .collect();
    if statuses.is_empty() {
        return Plan::Nothing;
    }
    if statuses.len() < SessionStatus::ALL.len() {
        q.params
            .extend(statuses.iter().map(|s| ("status", s.wire().to_owned())));
    }

    // The episode: an EHR appointment (Encounter.appointment) or the episode identifier.
    let mut episode: Option<String> = None;
    if encounter {
        match reference_filter(request, "appointment", ResourceType::Appointment, ehr_source) {
            RefFilter::Absent | RefFilter::Cannot => {}
            RefFilter::Nothing => return Plan::Nothing,
            RefFilter::Natives(natives) => {
                if let [one] = natives.as_slice() {
                    episode = Some(one.clone());
                }
            }
        }
        let episode_system = systems::native_id_system(ids::SOURCE, ids::kind::EPISODE);
        if let Some(SearchValue::Token(TokenValue {
            system: Some(system),
            code: Some(code),
        })) = request.single("identifier")
            && *system == episode_system
        {
            match &episode {
                Some(e) if e != code => return Plan::Nothing,
                _ => episode = Some(code.clone()),
            }
        }
    }
    if let Some(e) = episode {
        q.params.push(("episodeId", e));
    }

    // The doctor: the only practitioner of an Encounter, the only author of a summary.
    let doctor_param = if encounter { "practitioner" } else { "author" };
    match reference_filter(request, doctor_param, ResourceType::Practitioner, ehr_source) {
        RefFilter::Absent | RefFilter::Cannot => {}
        RefFilter::Nothing => return Plan::Nothing,
        RefFilter::Natives(natives) => {
            if let [one] = natives.as_slice() {
                q.params.push(("doctorId", one.clone()));
            }
        }
    }

    // The patient: not a Noa filter; the adapter checks each session's EHR patient.
    match reference_filter(request, "patient", ResourceType::Patient, ehr_source) {
        RefFilter::Absent | RefFilter::Cannot => {}
        RefFilter::Nothing => return Plan::Nothing,
        RefFilter::Natives(natives) => q.patients = Some(natives),
    }

    if let Some(range) = request.date_bounds("date") {
        if encounter && plausible(range.start) {
            q.params
                .push(("createdFrom", utc_seconds(&(range.start - CREATED_SLACK))));
        }
        if plausible(range.end) {
            q.params.push(("createdTo", utc_seconds(&range.end)));
        }
    }
    Plan::List(q)
}

/// The FHIR parameters [`plan`] pushes down, per type (for the capabilities).
pub(crate) fn pushdown(resource_type: ResourceType) -> Vec<&'static str> {
    match resource_type {
        ResourceType::Encounter => vec![
            "_id",
            "identifier",
            "patient",
            "appointment",
            "practitioner",
            "status",
            "date",
        ],
        ResourceType::DocumentReference => vec!["_id", "identifier", "patient", "encounter", "author", "date"],
        _ => vec![],
    }
}

/// The sessions a search names directly, `None` when it names none: `_id=noa-…,noa-…` or
/// `identifier=urn:fhir-gateway:id:noa:session|{id}` (both types carry the session id). Ids of
/// other sources, or that are no session id, name nothing.
fn id_filter(request: &SearchRequest) -> Option<Vec<String>> {
    if let Some(natives) = request.id_natives(ids::SOURCE) {
        return Some(dedup(natives.into_iter().filter(|n| ids::is_session_id(n)).collect()));
    }
    // An identifier of another system, or of none, may match the episode identifier.
    let codes = request.identifier_codes(&systems::native_id_system(ids::SOURCE, ids::kind::SESSION))?;
    Some(dedup(codes.into_iter().filter(|c| ids::is_session_id(c)).collect()))
}

fn dedup(mut ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    ids
}

/// What a reference parameter says about one target type of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RefFilter {
    /// Not given.
    Absent,
    /// Given, but it cannot be pushed down (a modifier, AND of several, …).
    Cannot,
    /// Given, and no session can match (every value names another source or type).
    Nothing,
    /// Given once; the natives of `source` its values name (values naming others match nothing:
    /// the element only ever refers to `source`'s `target`s).
    Natives(Vec<String>),
}

fn reference_filter(request: &SearchRequest, name: &str, target: ResourceType, source: &str) -> RefFilter {
    let mut params = request.params(name);
    let Some(param) = params.next() else {
        return RefFilter::Absent;
    };
    if params.next().is_some() || param.modifier.is_some() {
        return RefFilter::Cannot;
    }
    let mut natives: Vec<String> = Vec::new();
    for value in &param.values {
        let SearchValue::Reference(r) = value else {
            return RefFilter::Cannot;
        };
        if let Some(native) = r.native_for(source, target)
            && !natives.contains(&native)
        {
            natives.push(native);
        }
    }
    if natives.is_empty() {
        RefFilter::Nothing
    } else {
        RefFilter::Natives(natives)
    }
}

/// What an Encounter `status` parameter allows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StatusFilter {
    Any,
    Only(Vec<SessionStatus>),
}

/// A status parameter given once without a modifier, as the session statuses it matches.
fn status_filter(request: &SearchRequest) -> StatusFilter {
    let Some(codes) = request.token_codes("status", ENCOUNTER_STATUS_SYSTEM) else {
        return StatusFilter::Any;
    };
    let mut out: Vec<SessionStatus> = Vec::new();
    for code in codes {
        for status in FhirEncounterStatus::from_code(code)
            .map(SessionStatus::with_encounter)
            .unwrap_or_default()
        {
            if !out.contains(&status) {
                out.push(status);
            }
        }
    }
    StatusFilter::Only(out)
}

/// Instants a Noa record can carry (from 1900); open bounds (`DateTime::MIN_UTC`…) are not.
fn plausible(t: DateTime<Utc>) -> bool {
    plausible_instant(t, 1900)
}

#[cfg(test)]
mod tests {
    use adapter::search::{DateRange, DateValue, Modifier, Prefix, ReferenceValue, SearchParam};
    use chrono_tz::Tz;

    use super::*;

    const S1: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
    const S2: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

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

    fn r(resource_type: Option<ResourceType>, id: &str) -> SearchValue {
        SearchValue::Reference(ReferenceValue {
            resource_type,
            id: id.into(),
        })
    }

    fn d(prefix: Prefix, value: &str) -> SearchValue {
        SearchValue::Date(DateValue {
            prefix,
            range: DateRange::parse(value, Tz::UTC).unwrap(),
        })
    }

    fn planned(resource_type: ResourceType, params: Vec<SearchParam>) -> Plan {
        let request = SearchRequest {
            resource_type: Some(resource_type),
            params,
        };
        plan(resource_type, &request, "drchrono")
    }

    fn list(resource_type: ResourceType, params: Vec<SearchParam>) -> ListQuery {
        match planned(resource_type, params) {
            Plan::List(q) => q,
            other => panic!("{other:?}"),
        }
    }

    fn params(q: &ListQuery) -> Vec<(&'static str, &str)> {
        q.params.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn ids_and_session_identifiers_are_reads() {
        let ids = |params| match planned(ResourceType::Encounter, params) {
            Plan::Ids(ids) => ids,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ids(vec![p(
                "_id",
                vec![
                    t(None, &format!("noa-{S1}")),
                    t(None, &format!("noa-{S2}")),
                    t(None, &format!("noa-{S1}"))
                ]
            )]),
            [S1, S2]
        );
        assert_eq!(
            ids(vec![p(
                "identifier",
                vec![t(Some("urn:fhir-gateway:id:noa:session"), S1)]
            )]),
            [S1]
        );
        for nothing in [
            vec![p("_id", vec![t(None, "drchrono-1")])],
            vec![p("_id", vec![t(None, "noa-not-a-session")])],
            vec![p("identifier", vec![t(Some("urn:fhir-gateway:id:noa:session"), "x")])],
        ] {
            assert_eq!(planned(ResourceType::Encounter, nothing), Plan::Nothing);
        }
        // An identifier without system may be the episode: no read.
        assert_eq!(
            params(&list(ResourceType::Encounter, vec![p("identifier", vec![t(None, S1)])])),
            []
        );
        let doc = |params| planned(ResourceType::DocumentReference, params);
        assert_eq!(
            doc(vec![p(
                "encounter",
                vec![r(Some(ResourceType::Encounter), &format!("noa-{S1}"))]
            )]),
            Plan::Ids(vec![S1.into()])
        );
        assert_eq!(
            doc(vec![p(
                "encounter",
                vec![r(Some(ResourceType::Encounter), "zoom-enc-1")]
            )]),
            Plan::Nothing
        );
        assert_eq!(planned(ResourceType::Appointment, vec![]), Plan::Nothing);
    }

    #[test]
    fn references_become_noa_filters() {
        let q = list(
            ResourceType::Encounter,
            vec![
                p("appointment", vec![r(Some(ResourceType::Appointment), "drchrono-9001")]),
                p("practitioner", vec![r(None, "drchrono-3")]),
                p(
                    "patient",
                    vec![r(Some(ResourceType::Patient), "drchrono-12"), r(None, "drchrono-13")],
                ),
            ],
        );
        assert_eq!(params(&q), [("episodeId", "9001"), ("doctorId", "3")]);
        assert_eq!(q.patients, Some(vec!["12".into(), "13".into()]));
        let q = list(
            ResourceType::Encounter,
            vec![p(
                "identifier",
                vec![t(Some("urn:fhir-gateway:id:noa:episode"), "9001")],
            )],
        );
        assert_eq!(params(&q), [("episodeId", "9001")]);
        // Two appointments cannot be one filter; contradicting episodes match nothing.
        let q = list(
            ResourceType::Encounter,
            vec![p("appointment", vec![r(None, "drchrono-1"), r(None, "drchrono-2")])],
        );
        assert_eq!(params(&q), []);
        assert_eq!(
            planned(
                ResourceType::Encounter,
                vec![
                    p("appointment", vec![r(None, "drchrono-1")]),
                    p("identifier", vec![t(Some("urn:fhir-gateway:id:noa:episode"), "2")]),
                ]
            ),
            Plan::Nothing
        );
        // References to other sources can match no session.
        for (name, id) in [
            ("patient", "zoom-p1"),
            ("practitioner", "zoom-x"),
            ("appointment", "zoom-v1"),
        ] {
            assert_eq!(
                planned(ResourceType::Encounter, vec![p(name, vec![r(None, id)])]),
                Plan::Nothing,
                "{name}"
            );
        }
        let q = list(
            ResourceType::DocumentReference,
            vec![p("author", vec![r(Some(ResourceType::Practitioner), "drchrono-3")])],
        );
        assert_eq!(
            params(&q),
            [
                ("status", "Analyzing"),
                ("status", "Summarized"),
                ("status", "Verified"),
                ("status", "EmptySummaryVerified"),
                ("doctorId", "3")
            ]
        );
    }

    #[test]
    fn statuses_become_the_noa_statuses_of_each_encounter_status() {
        let q = list(
            ResourceType::Encounter,
            vec![p(
                "status",
                vec![t(None, "planned"), t(Some(ENCOUNTER_STATUS_SYSTEM), "cancelled")],
            )],
        );
        assert_eq!(
            params(&q),
            [
                ("status", "New"),
                ("status", "Interrupted"),
                ("status", "Failed"),
                ("status", "Expired")
            ]
        );
        assert_eq!(
            planned(ResourceType::Encounter, vec![p("status", vec![t(None, "arrived")])]),
            Plan::Nothing
        );
        // Another system, or a modifier: not pushed down.
        assert_eq!(
            params(&list(
                ResourceType::Encounter,
                vec![p("status", vec![t(Some("urn:x"), "planned")])]
            )),
            []
        );
        let mut not = p("status", vec![t(None, "planned")]);
        not.modifier = Some(Modifier::Not);
        assert_eq!(params(&list(ResourceType::Encounter, vec![not])), []);
    }

    #[test]
    fn dates_are_widened_never_narrowed() {
        let q = list(
            ResourceType::Encounter,
            vec![
                p("date", vec![d(Prefix::Ge, "2025-03-10")]),
                p("date", vec![d(Prefix::Lt, "2025-03-20")]),
            ],
        );
        assert_eq!(
            params(&q),
            [
                ("createdFrom", "2025-03-09T00:00:00Z"),
                ("createdTo", "2025-03-20T00:00:00Z")
            ]
        );
        let q = list(
            ResourceType::Encounter,
            vec![p("date", vec![d(Prefix::Eq, "2025-03-10")])],
        );
        assert_eq!(
            params(&q),
            [
                ("createdFrom", "2025-03-09T00:00:00Z"),
                ("createdTo", "2025-03-11T00:00:00Z")
            ]
        );
        // A summary may be approved long after its session was created: upper bounds only.
        let q = list(
            ResourceType::DocumentReference,
            vec![
                p("date", vec![d(Prefix::Ge, "2025-03-10")]),
                p("date", vec![d(Prefix::Le, "2025-03-20")]),
            ],
        );
        assert_eq!(
            q.params.last().unwrap(),
            &("createdTo", "2025-03-21T00:00:00Z".to_owned())
        );
        assert!(!q.params.iter().any(|(k, _)| *k == "createdFrom"));
        assert_eq!(
            pushdown(ResourceType::Encounter),
            [
                "_id",
                "identifier",
                "patient",
                "appointment",
                "practitioner",
                "status",
                "date"
            ]
        );
    }
}
