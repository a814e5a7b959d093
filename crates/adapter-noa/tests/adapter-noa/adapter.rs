//! `NoaAdapter` against the Noa simulator over loopback HTTP: reads of every session, searches
//! compared with the simulator's own dataset (filters and paging), `$start-scribe` (idempotent,
//! with the facility and doctor registered), the lifecycle seen through reads as the simulated
//! clock runs, `$regenerate`/`$recover`, the verified-summary memo, and webhooks delivered by the
//! simulator to the secret callback path.
//!
//! The EHR is the DrChrono simulator's practice, served to the adapter by a tiny in-test
//! [`Resolver`] as FHIR resources built here (half the appointments are in an exam room, a
//! Location that is `partOf` its office).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter::search::{DateRange, DateValue, Prefix, ReferenceValue, SearchParam, SearchValue, TokenValue};
use adapter::{
    Adapter, AdapterError, ChangeKind, Continuation, FhirId, PageRequest, Resolver, Resource, ResourceType,
    SearchRequest, WebhookError, WebhookRequest,
};
use adapter_noa::map::codes::SessionStatus;
use adapter_noa::{NoaAdapter, NoaConfig};
use chrono::{NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;
use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig};
use vendor_sim::noa::wire::SessionDetails;
use vendor_sim::noa::{EhrRefs, NoaSim, NoaSimConfig, NoaSimHandle};

const NY: Tz = chrono_tz::America::New_York;
const HOOK: &str = "noa-webhook-path-secret-0123456789abcdef";
const SESSIONS: &str = "/api/v1/consumers/sessions";

// ---- the EHR, as the gateway would serve it -----------------------------------------------------

/// The EHR's resources by `Type/id`; counts the questions. While `failing`, it answers every
/// question as a failing EHR would.
struct Ehr {
    resources: HashMap<String, Value>,
    reads: AtomicUsize,
    failing: AtomicBool,
}

impl Ehr {
    fn new(refs: &EhrRefs) -> Self {
        let mut resources = HashMap::new();
        let mut put = |v: Value| {
            let key = format!("{}/{}", v["resourceType"].as_str().unwrap(), v["id"].as_str().unwrap());
            resources.insert(key, v);
        };
        for d in &refs.doctors {
            let (given, family) = d.name.split_once(' ').unwrap_or(("", &d.name));
            put(
                json!({"resourceType": "Practitioner", "id": format!("drchrono-{}", d.id),
                       "name": [{"use": "official", "family": family, "given": [given], "prefix": ["Dr."]}]}),
            );
        }
        for o in &refs.offices {
            put(json!({"resourceType": "Location", "id": format!("drchrono-{}", o.id), "name": o.name}));
            put(
                json!({"resourceType": "Location", "id": format!("drchrono-{}-room-1", o.id), "name": "Exam room 1",
                       "partOf": {"reference": format!("Location/drchrono-{}", o.id)}}),
            );
        }
        for (i, a) in refs.appointments.iter().enumerate() {
            put(json!({"resourceType": "Patient", "id": format!("drchrono-{}", a.patient)}));
            let location = if i % 2 == 0 {
                format!("Location/drchrono-{}-room-1", a.office)
            } else {
                format!("Location/drchrono-{}", a.office)
            };
            put(appointment_json(&a.id, "booked", a.patient, a.doctor, &location));
        }
        Self {
            resources,
            reads: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        }
    }

    fn resource(&self, key: &str) -> Option<Resource> {
        self.resources.get(key).map(|v| resource(v.clone()))
    }
}

fn appointment_json(id: &str, status: &str, patient: i64, doctor: i64, location: &str) -> Value {
    json!({"resourceType": "Appointment", "id": format!("drchrono-{id}"), "status": status, "participant": [
        {"actor": {"reference": format!("Patient/drchrono-{patient}")}, "status": "accepted"},
        {"actor": {"reference": format!("Practitioner/drchrono-{doctor}")}, "status": "accepted"},
        {"actor": {"reference": location}, "status": "accepted"}
    ]})
}

impl Ehr {
    fn failure(&self) -> Result<(), AdapterError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(AdapterError::Unavailable {
                vendor: "drchrono",
                detail: "down for the test".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Resolver for Ehr {
    async fn exists(&self, resource_type: ResourceType, id: &str) -> Result<bool, AdapterError> {
        self.failure()?;
        Ok(self.resources.contains_key(&format!("{resource_type}/{id}")))
    }

    async fn read(&self, resource_type: ResourceType, id: &str) -> Result<Option<Resource>, AdapterError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.failure()?;
        Ok(self.resource(&format!("{resource_type}/{id}")))
    }
}

// ---- fixture -----------------------------------------------------------------------------------

struct Fixture {
    sim: NoaSimHandle,
    adapter: NoaAdapter,
    ehr: Arc<Ehr>,
    refs: EhrRefs,
    hooks: Option<Hooks>,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(false).await
    }

    /// With `hooks`, the adapter hands Noa a callback URL on a local receiver.
    async fn with(hooks: bool) -> Self {
        let anchor = NaiveDate::from_ymd_opt(2025, 3, 14).unwrap();
        let refs = EhrRefs::from_drchrono(&DrChronoSim::new(DrChronoSimConfig::small(5, anchor)).dataset());
        let sim = NoaSim::new(NoaSimConfig::small(9, anchor, refs.clone()))
            .spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let hooks = if hooks { Some(Hooks::spawn().await) } else { None };
        let c = sim.config();
        let mut config = NoaConfig::new(c.client_id.clone(), c.client_secret.clone(), HOOK)
            .with_api_base(Url::parse(&sim.api_base_url()).unwrap());
        config.default_timezone = NY;
        config.page_size = 10;
        if let Some(h) = &hooks {
            config.webhook_url = Some(format!("{}/webhooks/noa/{HOOK}", h.origin));
        }
        let ehr = Arc::new(Ehr::new(&refs));
        let adapter = NoaAdapter::new(config).unwrap().with_resolver(ehr.clone());
        Self {
            sim,
            adapter,
            ehr,
            refs,
            hooks,
        }
    }

    fn sessions(&self) -> Vec<SessionDetails> {
        self.sim.dataset().sessions
    }

    /// Every resource of a search, walking its continuations with pages of `size`; also the
    /// number of pages.
    async fn all(&self, request: &SearchRequest, size: u32) -> (Vec<Value>, usize) {
        let mut out = Vec::new();
        let mut cursor: Option<Continuation> = None;
        for pages in 1..500 {
            let page = self
                .adapter
                .search(
                    request,
                    PageRequest {
                        cursor: cursor.clone(),
                        size,
                    },
                )
                .await
                .unwrap();
            out.extend(page.resources.iter().map(json_of));
            match page.next {
                Some(next) => cursor = Some(next),
                None => return (out, pages),
            }
        }
        panic!("the search did not end");
    }

    /// The session ids a search finds, checking that none comes twice.
    async fn ids(&self, request: &SearchRequest) -> BTreeSet<String> {
        let (found, _) = self.all(request, 7).await;
        let ids: Vec<String> = found.iter().map(session_of).collect();
        let set: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(set.len(), ids.len(), "a resource came twice: {ids:?}");
        set
    }

    async fn read(&self, resource_type: ResourceType, session_id: &str) -> Result<Value, AdapterError> {
        self.adapter.read(resource_type, session_id).await.map(|r| json_of(&r))
    }

    fn summary_hits(&self, session_id: &str) -> u64 {
        self.sim.hits_for(&format!("{SESSIONS}/{session_id}/summary"))
    }

    /// `$start-scribe` on the EHR appointment `id`, as the gateway would run it.
    async fn start_scribe(&self, id: &str, input: Option<Resource>) -> Result<Value, AdapterError> {
        let target = self
            .ehr
            .resource(&format!("Appointment/drchrono-{id}"))
            .expect("an EHR appointment");
        self.adapter
            .operation_on(
                &FhirId::parse(&format!("drchrono-{id}")).unwrap(),
                &target,
                "start-scribe",
                input,
            )
            .await
            .map(|r| json_of(&r))
    }

    /// An EHR appointment without a Noa session, in an exam room (`room`) or at the office.
    fn free_appointment(&self, room: bool) -> vendor_sim::noa::EhrAppointment {
        let taken: BTreeSet<String> = self.sessions().into_iter().map(|s| s.episode_id).collect();
        self.refs
            .appointments
            .iter()
            .enumerate()
            .find(|(i, a)| (i % 2 == 0) == room && !taken.contains(&a.id))
            .map(|(_, a)| a.clone())
            .expect("a free appointment")
    }
}

fn json_of(resource: &Resource) -> Value {
    fhirbolt::json::to_json_value(resource.clone(), None).unwrap()
}

fn resource(value: Value) -> Resource {
    fhirbolt::json::from_str(&value.to_string(), None).unwrap()
}

/// The session id of an Encounter or DocumentReference.
fn session_of(v: &Value) -> String {
    v["id"].as_str().unwrap().strip_prefix("noa-").unwrap().to_owned()
}

fn wire(status: &impl serde::Serialize) -> String {
    serde_json::to_value(status).unwrap().as_str().unwrap().to_owned()
}

fn status_of(s: &SessionDetails) -> SessionStatus {
    SessionStatus::from_wire(&wire(&s.status)).unwrap()
}

fn noa_status(encounter: &Value) -> String {
    encounter["extension"][0]["valueCode"].as_str().unwrap().to_owned()
}

fn param<'a>(parameters: &'a Value, name: &str) -> &'a Value {
    parameters["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or(&Value::Null)
}

fn search(resource_type: ResourceType, params: Vec<SearchParam>) -> SearchRequest {
    SearchRequest {
        resource_type: Some(resource_type),
        params,
    }
}

fn p(name: &str, value: SearchValue) -> SearchParam {
    SearchParam {
        name: name.into(),
        modifier: None,
        values: vec![value],
    }
}

fn token(system: Option<&str>, code: &str) -> SearchValue {
    SearchValue::Token(TokenValue {
        system: system.map(Into::into),
        code: Some(code.into()),
    })
}

fn reference(resource_type: ResourceType, id: &str) -> SearchValue {
    SearchValue::Reference(ReferenceValue {
        resource_type: Some(resource_type),
        id: id.into(),
    })
}

/// The EHR patient of a session, as the simulator made it (its appointment's patient).
fn patient_of(refs: &EhrRefs, s: &SessionDetails) -> i64 {
    refs.appointments
        .iter()
        .find(|a| a.id == s.episode_id)
        .map(|a| a.patient)
        .expect("every session is for an EHR appointment")
}

fn scribe_input() -> Resource {
    resource(json!({"resourceType": "Parameters", "parameter": [
        {"name": "language", "valueCode": "pl-PL"},
        {"name": "visitType", "valueCode": "FirstVisit"},
        {"name": "speciality", "valueString": "cardiology"},
        {"name": "template", "part": [{"name": "title", "valueString": "Zeta"}, {"name": "instruction", "valueString": "last letter first"}]},
        {"name": "template", "part": [{"name": "title", "valueString": "Alpha"}, {"name": "instruction", "valueString": "then the first"}]}
    ]}))
}

// ---- reads -------------------------------------------------------------------------------------

#[tokio::test]
async fn check_signs_in_and_lists() {
    let f = Fixture::new().await;
    f.adapter.check().await.unwrap();
    assert_eq!(f.sim.token_grants(), 1);
    assert_eq!(f.adapter.account(), f.sim.config().client_id);
    let shown = format!("{:?} {:?}", f.adapter, f.adapter.webhooks().map(|_| "receiver"));
    assert!(
        !shown.contains(HOOK) && !shown.contains(&f.sim.config().client_secret),
        "{shown}"
    );
}

#[tokio::test]
async fn every_session_reads_as_its_encounter_and_summary() {
    let f = Fixture::new().await;
    let sessions = f.sessions();
    let statuses: BTreeSet<String> = sessions.iter().map(|s| wire(&s.status)).collect();
    assert_eq!(statuses.len(), 12, "the simulator has every status: {statuses:?}");
    let summaries = f.sim.dataset().summaries;
    for s in &sessions {
        let status = status_of(s);
        let e = f.read(ResourceType::Encounter, &s.session_id).await.unwrap();
        assert_eq!(e["status"], status.encounter().code(), "{status:?}");
        assert_eq!(noa_status(&e), status.wire());
        // The patient comes from the metadata, else from the episode's appointment.
        assert_eq!(
            e["subject"]["reference"],
            format!("Patient/drchrono-{}", patient_of(&f.refs, s)),
            "metadata: {:?}",
            s.metadata
        );
        assert_eq!(
            e["appointment"][0]["reference"],
            format!("Appointment/drchrono-{}", s.episode_id)
        );
        assert_eq!(
            e["participant"][0]["individual"]["reference"],
            format!("Practitioner/drchrono-{}", s.doctor_id)
        );

        let has_summary = summaries.iter().any(|x| x.session_id == s.session_id);
        match f.read(ResourceType::DocumentReference, &s.session_id).await {
            Ok(d) => {
                assert!(has_summary && status.may_have_summary(), "{status:?}");
                let final_ = status.is_verified();
                assert_eq!(
                    d["docStatus"],
                    if final_ { "final" } else { "preliminary" },
                    "{status:?}"
                );
                assert_eq!(d["subject"], e["subject"]);
                assert_eq!(
                    d["context"]["encounter"][0]["reference"],
                    format!("Encounter/noa-{}", s.session_id)
                );
                assert_eq!(d["content"][0]["attachment"]["contentType"], "text/markdown");
            }
            // A first analysis (Analyzing) has no summary yet.
            Err(AdapterError::NotFound { .. }) => assert!(!has_summary, "{status:?}"),
            Err(other) => panic!("{other:?}"),
        }
    }
    // A summary is never asked for a session whose status has none.
    for s in sessions.iter().filter(|s| !status_of(s).may_have_summary()) {
        assert_eq!(f.summary_hits(&s.session_id), 0, "{:?}", s.status);
    }
    for bad in ["not-a-session", "0f8fad5b-d9cb-469f-a165-70867728950e"] {
        assert!(matches!(
            f.read(ResourceType::Encounter, bad).await,
            Err(AdapterError::NotFound { .. })
        ));
    }
    assert!(matches!(
        f.adapter.read(ResourceType::Patient, "1").await,
        Err(AdapterError::Unsupported { .. })
    ));
}

#[tokio::test]
async fn a_failed_session_is_a_cancelled_encounter_without_document() {
    let f = Fixture::new().await;
    let failed = f
        .sessions()
        .into_iter()
        .find(|s| status_of(s) == SessionStatus::Failed)
        .unwrap();
    let e = f.read(ResourceType::Encounter, &failed.session_id).await.unwrap();
    assert_eq!(
        (e["status"].as_str(), noa_status(&e).as_str()),
        (Some("cancelled"), "Failed")
    );
    assert!(matches!(
        f.read(ResourceType::DocumentReference, &failed.session_id).await,
        Err(AdapterError::NotFound { .. })
    ));
    let by_encounter = search(
        ResourceType::DocumentReference,
        vec![p(
            "encounter",
            reference(ResourceType::Encounter, &format!("noa-{}", failed.session_id)),
        )],
    );
    assert!(f.ids(&by_encounter).await.is_empty());
    let all_docs = f.ids(&search(ResourceType::DocumentReference, vec![])).await;
    assert!(!all_docs.contains(&failed.session_id));
    assert_eq!(f.summary_hits(&failed.session_id), 0);
}

// ---- searches ----------------------------------------------------------------------------------

#[tokio::test]
async fn searches_match_the_dataset_and_page_through_it() {
    let f = Fixture::new().await;
    let sessions = f.sessions();
    let all: BTreeSet<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
    let (found, pages) = f.all(&search(ResourceType::Encounter, vec![]), 5).await;
    assert!(
        pages >= 5,
        "{} sessions in pages of 5 took {pages} pages",
        sessions.len()
    );
    let ids: Vec<String> = found.iter().map(session_of).collect();
    assert_eq!(ids.len(), all.len(), "no session twice, none missing");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), all);

    let of = |keep: &dyn Fn(&SessionDetails) -> bool| -> BTreeSet<String> {
        sessions
            .iter()
            .filter(|s| keep(s))
            .map(|s| s.session_id.clone())
            .collect()
    };

    // status → the Noa statuses of each Encounter status.
    let cancelled = search(ResourceType::Encounter, vec![p("status", token(None, "cancelled"))]);
    let expected = of(&|s| status_of(s).is_error());
    assert!(!expected.is_empty());
    assert_eq!(f.ids(&cancelled).await, expected);
    f.sim.reset_hits();
    let arrived = search(ResourceType::Encounter, vec![p("status", token(None, "arrived"))]);
    assert!(f.ids(&arrived).await.is_empty());
    assert_eq!(f.sim.hits(), 0, "no Noa status is arrived: no call");

    // patient → filtered in the adapter, whether the session names it in metadata or not.
    let with_and_without_metadata = sessions
        .iter()
        .map(|s| patient_of(&f.refs, s))
        .find(|p| {
            let mine: Vec<&SessionDetails> = sessions.iter().filter(|s| patient_of(&f.refs, s) == *p).collect();
            mine.len() >= 2
        })
        .unwrap_or_else(|| patient_of(&f.refs, &sessions[0]));
    let by_patient = search(
        ResourceType::Encounter,
        vec![p(
            "patient",
            reference(ResourceType::Patient, &format!("drchrono-{with_and_without_metadata}")),
        )],
    );
    let expected = of(&|s| patient_of(&f.refs, s) == with_and_without_metadata);
    assert_eq!(f.ids(&by_patient).await, expected);
    for s in &sessions {
        let one = search(
            ResourceType::Encounter,
            vec![p(
                "patient",
                reference(ResourceType::Patient, &format!("drchrono-{}", patient_of(&f.refs, s))),
            )],
        );
        assert!(f.ids(&one).await.contains(&s.session_id), "metadata: {:?}", s.metadata);
    }

    // appointment and the episode identifier → episodeId; practitioner → doctorId.
    let s0 = &sessions[sessions.len() / 2];
    let by_episode = of(&|s| s.episode_id == s0.episode_id);
    let appointment = search(
        ResourceType::Encounter,
        vec![p(
            "appointment",
            reference(ResourceType::Appointment, &format!("drchrono-{}", s0.episode_id)),
        )],
    );
    assert_eq!(f.ids(&appointment).await, by_episode);
    let episode = search(
        ResourceType::Encounter,
        vec![p(
            "identifier",
            token(Some("urn:fhir-gateway:id:noa:episode"), &s0.episode_id),
        )],
    );
    assert_eq!(f.ids(&episode).await, by_episode);
    let practitioner = search(
        ResourceType::Encounter,
        vec![p(
            "practitioner",
            reference(ResourceType::Practitioner, &format!("drchrono-{}", s0.doctor_id)),
        )],
    );
    assert_eq!(f.ids(&practitioner).await, of(&|s| s.doctor_id == s0.doctor_id));

    // date: a session created on the day and everything the day's period may hold.
    let day = &s0.created_at[..10];
    let on_day = search(
        ResourceType::Encounter,
        vec![p(
            "date",
            SearchValue::Date(DateValue {
                prefix: Prefix::Eq,
                range: DateRange::parse(day, NY).unwrap(),
            }),
        )],
    );
    let found = f.ids(&on_day).await;
    assert!(found.contains(&s0.session_id), "{day}");
    assert!(found.len() < all.len() || sessions.iter().all(|s| s.created_at[..10] == *day));

    // _id and the session identifier are reads; other sources' ids name nothing.
    let by_id = search(
        ResourceType::Encounter,
        vec![p("_id", token(None, &format!("noa-{}", s0.session_id)))],
    );
    assert_eq!(f.ids(&by_id).await, BTreeSet::from([s0.session_id.clone()]));
    let by_identifier = search(
        ResourceType::DocumentReference,
        vec![p(
            "identifier",
            token(Some("urn:fhir-gateway:id:noa:session"), &s0.session_id),
        )],
    );
    let has_doc = status_of(s0).may_have_summary();
    assert_eq!(f.ids(&by_identifier).await.len(), usize::from(has_doc));
    let foreign = search(ResourceType::Encounter, vec![p("_id", token(None, "zoom-enc-1"))]);
    assert!(f.ids(&foreign).await.is_empty());

    // A continuation that is not ours, or that Noa no longer knows, has expired.
    for bad in [r#"{"s":"sessions","t":"no-such-token"}"#, "garbage"] {
        let page = f
            .adapter
            .search(
                &search(ResourceType::Encounter, vec![]),
                PageRequest {
                    cursor: Some(Continuation(bad.into())),
                    size: 5,
                },
            )
            .await;
        assert_eq!(page.unwrap_err(), AdapterError::ContinuationExpired { vendor: "noa" });
    }
}

#[tokio::test]
async fn document_searches_filter_patients_before_fetching_summaries() {
    let f = Fixture::new().await;
    let sessions = f.sessions();
    let summaries = f.sim.dataset().summaries;
    let with_summary: Vec<&SessionDetails> = sessions
        .iter()
        .filter(|s| summaries.iter().any(|x| x.session_id == s.session_id))
        .collect();
    assert!(with_summary.iter().all(|s| status_of(s).may_have_summary()));
    let target = with_summary[0];
    let patient = patient_of(&f.refs, target);
    let request = search(
        ResourceType::DocumentReference,
        vec![p(
            "patient",
            reference(ResourceType::Patient, &format!("drchrono-{patient}")),
        )],
    );
    let found = f.ids(&request).await;
    let expected: BTreeSet<String> = with_summary
        .iter()
        .filter(|s| patient_of(&f.refs, s) == patient)
        .map(|s| s.session_id.clone())
        .collect();
    assert_eq!(found, expected);
    for s in &sessions {
        let fetched = f.summary_hits(&s.session_id);
        if patient_of(&f.refs, s) != patient || !status_of(s).may_have_summary() {
            assert_eq!(fetched, 0, "a summary of another patient (or none to have) was fetched");
        } else {
            assert_eq!(fetched, 1);
        }
    }

    // Every summary, and by author.
    let all = f.ids(&search(ResourceType::DocumentReference, vec![])).await;
    assert_eq!(all, with_summary.iter().map(|s| s.session_id.clone()).collect());
    let author = search(
        ResourceType::DocumentReference,
        vec![p(
            "author",
            reference(ResourceType::Practitioner, &format!("drchrono-{}", target.doctor_id)),
        )],
    );
    let expected: BTreeSet<String> = with_summary
        .iter()
        .filter(|s| s.doctor_id == target.doctor_id)
        .map(|s| s.session_id.clone())
        .collect();
    assert_eq!(f.ids(&author).await, expected);
}

#[tokio::test]
async fn verified_summaries_are_fetched_once() {
    let f = Fixture::new().await;
    let sessions = f.sessions();
    let docs = search(ResourceType::DocumentReference, vec![]);
    f.ids(&docs).await;
    f.sim.reset_hits();
    f.ids(&docs).await;
    for s in &sessions {
        let status = status_of(s);
        let expected = u64::from(status.may_have_summary() && !status.is_verified());
        assert_eq!(f.summary_hits(&s.session_id), expected, "{status:?}");
        assert_eq!(f.adapter.has_memoized_summary(&s.session_id), status.is_verified());
    }
}

#[tokio::test]
async fn a_failing_ehr_fails_what_needs_an_episode_patient_and_keeps_the_links_sessions_name() {
    let f = Fixture::new().await;
    let sessions = f.sessions();
    let summaries = f.sim.dataset().summaries;
    let names_patient = |s: &SessionDetails| s.metadata.as_ref().is_some_and(|m| m.get("patientId").is_some());
    let from_episode = sessions
        .iter()
        .find(|s| !names_patient(s) && summaries.iter().any(|x| x.session_id == s.session_id))
        .expect("a session with a summary whose metadata names no patient");
    let named = sessions
        .iter()
        .find(|s| names_patient(s))
        .expect("a session whose metadata names its patient");
    f.ehr.failing.store(true, Ordering::SeqCst);

    // The episode's appointment cannot be read: no Encounter or DocumentReference without its
    // subject, a transient error instead.
    for resource_type in [ResourceType::Encounter, ResourceType::DocumentReference] {
        match f.read(resource_type, &from_episode.session_id).await {
            Err(error) => assert!(error.is_transient(), "{resource_type}: {error:?}"),
            Ok(r) => panic!("{resource_type} answered while its patient cannot be read: {r}"),
        }
    }
    // A search meets such a session on some page, and fails there.
    let mut cursor: Option<Continuation> = None;
    let failed = loop {
        let page = f
            .adapter
            .search(
                &search(ResourceType::Encounter, vec![]),
                PageRequest {
                    cursor: cursor.clone(),
                    size: 10,
                },
            )
            .await;
        match page {
            Err(error) => break error,
            Ok(page) => match page.next {
                Some(next) => cursor = Some(next),
                None => panic!("every page answered while episode patients cannot be read"),
            },
        }
    };
    assert!(failed.is_transient(), "{failed:?}");

    // A session naming its patient needs no read: its EHR links stay literal (the EHR could not
    // check them, the session names them).
    let e = f.read(ResourceType::Encounter, &named.session_id).await.unwrap();
    assert_eq!(
        e["subject"]["reference"],
        format!("Patient/drchrono-{}", patient_of(&f.refs, named))
    );
    assert_eq!(
        e["appointment"][0]["reference"],
        format!("Appointment/drchrono-{}", named.episode_id)
    );
    assert_eq!(
        e["participant"][0]["individual"]["reference"],
        format!("Practitioner/drchrono-{}", named.doctor_id)
    );

    // Nothing of the failure is remembered: once the EHR answers, the episode's patient is read.
    f.ehr.failing.store(false, Ordering::SeqCst);
    let e = f.read(ResourceType::Encounter, &from_episode.session_id).await.unwrap();
    assert_eq!(
        e["subject"]["reference"],
        format!("Patient/drchrono-{}", patient_of(&f.refs, from_episode))
    );
}

// ---- $start-scribe -----------------------------------------------------------------------------

#[tokio::test]
async fn start_scribe_fails_transiently_and_creates_nothing_while_the_ehr_fails() {
    let f = Fixture::new().await;
    let a = f.free_appointment(true);
    let before = f.sim.dataset();
    f.ehr.failing.store(true, Ordering::SeqCst);
    match f.start_scribe(&a.id, Some(scribe_input())).await {
        Err(error) => assert!(error.is_transient(), "{error:?}"),
        Ok(answer) => panic!("a session was started without the EHR's facts: {answer}"),
    }
    let after = f.sim.dataset();
    assert_eq!(after.sessions.len(), before.sessions.len());
    let (office, doctor) = (a.office.to_string(), a.doctor.to_string());
    assert_eq!(after.facility(&office), before.facility(&office), "nothing registered");
    assert_eq!(after.doctor(&office, &doctor), before.doctor(&office, &doctor));

    f.ehr.failing.store(false, Ordering::SeqCst);
    f.start_scribe(&a.id, Some(scribe_input())).await.unwrap();
    assert_eq!(f.sim.dataset().sessions.len(), before.sessions.len() + 1);
}

#[tokio::test]
async fn start_scribe_registers_facility_and_doctor_and_is_idempotent() {
    let f = Fixture::new().await;
    let a = f.free_appointment(true);
    let first = f.start_scribe(&a.id, Some(scribe_input())).await.unwrap();
    let session_id = param(&first, "sessionId")["valueString"].as_str().unwrap().to_owned();
    assert_eq!(param(&first, "resumed")["valueBoolean"], false);
    assert_eq!(
        param(&first, "encounter")["valueReference"]["reference"],
        format!("Encounter/noa-{session_id}")
    );
    assert_eq!(param(&first, "status")["valueCode"], "New");
    for name in ["sessionToken", "consumerId"] {
        assert!(
            param(&first, name)["valueString"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{name}"
        );
    }
    for name in ["recorderUrl", "summaryUrl"] {
        assert!(
            param(&first, name)["valueUrl"]
                .as_str()
                .is_some_and(|u| u.contains(&session_id)),
            "{name}"
        );
    }
    assert_eq!(param(&first, "expiresIn")["valueInteger"], 7200);
    assert!(param(&first, "expires")["valueInstant"].is_string());

    // Noa holds the session as asked: the room's office is the facility, the template in order.
    let data = f.sim.dataset();
    let session = data.session(&session_id).unwrap();
    assert_eq!(session.episode_id, a.id);
    assert_eq!(session.doctor_id, a.doctor.to_string());
    assert_eq!(session.facility_id.as_deref(), Some(a.office.to_string().as_str()));
    assert_eq!(session.language, "pl-PL");
    assert_eq!(session.visit_type.as_deref(), Some("FirstVisit"));
    assert_eq!(session.speciality.as_deref(), Some("cardiology"));
    let metadata = session.metadata.clone().unwrap();
    assert_eq!(metadata["patientId"], a.patient.to_string());
    assert_eq!(metadata["appointment"], format!("drchrono-{}", a.id));
    let titles: Vec<&str> = session
        .template
        .as_ref()
        .unwrap()
        .value
        .iter()
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(titles, ["Zeta", "Alpha"]);
    let office = f.refs.offices.iter().find(|o| o.id == a.office).unwrap();
    assert_eq!(data.facility(&a.office.to_string()).unwrap().name, office.name);
    let doctor = f.refs.doctors.iter().find(|d| d.id == a.doctor).unwrap();
    assert_eq!(
        data.doctor(&a.office.to_string(), &a.doctor.to_string()).unwrap().name,
        format!("Dr. {}", doctor.name)
    );

    // The same appointment again: Noa resumes the live session.
    let again = f.start_scribe(&a.id, None).await.unwrap();
    assert_eq!(param(&again, "sessionId")["valueString"], session_id.as_str());
    assert_eq!(param(&again, "resumed")["valueBoolean"], true);
    assert_eq!(f.sim.dataset().sessions.len(), data.sessions.len());

    let e = f.read(ResourceType::Encounter, &session_id).await.unwrap();
    assert_eq!(e["status"], "planned");
    assert_eq!(e["subject"]["reference"], format!("Patient/drchrono-{}", a.patient));
    assert_eq!(
        e["location"][0]["location"]["reference"],
        format!("Location/drchrono-{}", a.office)
    );
}

#[tokio::test]
async fn start_scribe_registers_an_unknown_doctor_and_uses_an_office_location() {
    let f = Fixture::new().await;
    let data = f.sim.dataset();
    // The simulator leaves one EHR doctor with appointments unregistered.
    let taken: BTreeSet<String> = data.sessions.iter().map(|s| s.episode_id.clone()).collect();
    let a = f
        .refs
        .appointments
        .iter()
        .find(|a| {
            !taken.contains(&a.id)
                && !data
                    .doctors
                    .iter()
                    .any(|d| d.external_doctor_id == a.doctor.to_string())
        })
        .cloned()
        .expect("an appointment of the unregistered doctor");
    let out = f.start_scribe(&a.id, None).await.unwrap();
    assert_eq!(param(&out, "resumed")["valueBoolean"], false);
    let data = f.sim.dataset();
    assert!(data.doctor(&a.office.to_string(), &a.doctor.to_string()).is_some());
    let at_office = f.free_appointment(false);
    let out = f.start_scribe(&at_office.id, None).await.unwrap();
    let id = param(&out, "sessionId")["valueString"].as_str().unwrap().to_owned();
    let session = f.sim.dataset().session(&id).cloned().unwrap();
    assert_eq!(
        session.facility_id,
        Some(at_office.office.to_string()),
        "the office Location itself"
    );
}

#[tokio::test]
async fn start_scribe_refuses_what_cannot_be_a_session() {
    let f = Fixture::new().await;
    let a = f.free_appointment(true);
    let unprocessable = |r: Result<Value, AdapterError>| match r {
        Err(AdapterError::Unprocessable { element, .. }) => element,
        other => panic!("{other:?}"),
    };
    for status in ["cancelled", "noshow", "entered-in-error"] {
        let target = resource(appointment_json(
            &a.id,
            status,
            a.patient,
            a.doctor,
            "Location/drchrono-1",
        ));
        let r = f
            .adapter
            .operation_on(
                &FhirId::parse(&format!("drchrono-{}", a.id)).unwrap(),
                &target,
                "start-scribe",
                None,
            )
            .await
            .map(|r| json_of(&r));
        assert_eq!(unprocessable(r), "Appointment.status");
    }
    let zoom = resource(appointment_json(
        "v1",
        "booked",
        a.patient,
        a.doctor,
        "Location/drchrono-1",
    ));
    let r = f
        .adapter
        .operation_on(&FhirId::parse("zoom-v1").unwrap(), &zoom, "start-scribe", None)
        .await
        .map(|r| json_of(&r));
    assert_eq!(unprocessable(r), "Appointment");
    let unknown_location = resource(appointment_json(
        &a.id,
        "booked",
        a.patient,
        a.doctor,
        "Location/drchrono-424242",
    ));
    let r = f
        .adapter
        .operation_on(
            &FhirId::parse(&format!("drchrono-{}", a.id)).unwrap(),
            &unknown_location,
            "start-scribe",
            None,
        )
        .await
        .map(|r| json_of(&r));
    assert_eq!(unprocessable(r), "Appointment.participant");
    let bad_language =
        resource(json!({"resourceType": "Parameters", "parameter": [{"name": "language", "valueCode": "xx"}]}));
    assert!(matches!(
        f.start_scribe(&a.id, Some(bad_language)).await,
        Err(AdapterError::InvalidRequest { .. })
    ));
    assert_eq!(f.sim.hits_for(SESSIONS), 0, "nothing was sent to Noa");

    // Without the gateway's resolver the EHR cannot be read.
    let c = f.sim.config();
    let bare = NoaAdapter::new(
        NoaConfig::new(c.client_id.clone(), c.client_secret.clone(), HOOK)
            .with_api_base(Url::parse(&f.sim.api_base_url()).unwrap()),
    )
    .unwrap();
    let target = f.ehr.resource(&format!("Appointment/drchrono-{}", a.id)).unwrap();
    assert!(matches!(
        bare.operation_on(
            &FhirId::parse(&format!("drchrono-{}", a.id)).unwrap(),
            &target,
            "start-scribe",
            None
        )
        .await,
        Err(AdapterError::Unsupported { .. })
    ));
}

// ---- lifecycle, operations, memo ---------------------------------------------------------------

#[tokio::test]
async fn the_lifecycle_is_seen_through_reads_and_summaries_can_be_regenerated() {
    let f = Fixture::new().await;
    let a = f.free_appointment(false);
    let out = f.start_scribe(&a.id, None).await.unwrap();
    let id = param(&out, "sessionId")["valueString"].as_str().unwrap().to_owned();
    let encounter = || f.read(ResourceType::Encounter, &id);
    let document = || f.read(ResourceType::DocumentReference, &id);

    assert_eq!(encounter().await.unwrap()["status"], "planned");
    assert!(matches!(document().await, Err(AdapterError::NotFound { .. })));
    // No summary yet: nothing to regenerate.
    let early = f
        .adapter
        .operation(ResourceType::DocumentReference, &id, "regenerate", None)
        .await;
    assert!(
        matches!(&early, Err(AdapterError::Unprocessable { element, .. }) if element == "DocumentReference.docStatus"),
        "{early:?}"
    );

    f.sim.start_recording(&id).unwrap();
    let e = encounter().await.unwrap();
    assert_eq!(
        (e["status"].as_str(), noa_status(&e).as_str()),
        (Some("in-progress"), "Recording")
    );
    assert!(e["period"]["start"].is_string() && e["period"]["end"].is_null());

    let mut seen = Vec::new();
    for _ in 0..40 {
        f.sim.advance_clock(TimeDelta::minutes(2));
        let e = encounter().await.unwrap();
        let status = noa_status(&e);
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "Summarized" {
            assert_eq!(e["status"], "finished");
            assert!(e["period"]["end"].is_string());
            break;
        }
    }
    assert_eq!(seen.last().map(String::as_str), Some("Summarized"), "{seen:?}");
    let d = document().await.unwrap();
    assert_eq!(d["docStatus"], "preliminary");
    assert_eq!(d["meta"]["versionId"], "1");
    assert!(d.get("authenticator").is_none());

    // The doctor verifies: final, and kept once fetched.
    f.sim.approve(&id, false).unwrap();
    let d = document().await.unwrap();
    assert_eq!(d["docStatus"], "final");
    assert_eq!(
        d["authenticator"]["reference"],
        format!("Practitioner/drchrono-{}", a.doctor)
    );
    assert!(f.adapter.has_memoized_summary(&id));
    f.sim.reset_hits();
    document().await.unwrap();
    document().await.unwrap();
    assert_eq!(f.summary_hits(&id), 0, "a verified summary is not fetched again");

    // Regenerate: Noa writes it again; the doctor must verify again.
    let answer = f
        .adapter
        .operation(ResourceType::DocumentReference, &id, "regenerate", None)
        .await
        .map(|r| json_of(&r))
        .unwrap();
    assert_eq!(param(&answer, "status")["valueCode"], "Analyzing");
    assert_eq!(param(&answer, "operation")["valueCode"], "Regenerate");
    assert_eq!(
        param(&answer, "follow")["valueReference"]["reference"],
        format!("Encounter/noa-{id}")
    );
    assert_eq!(
        param(&answer, "documentReference")["valueReference"]["reference"],
        format!("DocumentReference/noa-{id}")
    );
    assert!(!f.adapter.has_memoized_summary(&id));
    let busy = f
        .adapter
        .operation(ResourceType::DocumentReference, &id, "recover", None)
        .await;
    assert!(
        matches!(busy, Err(AdapterError::Unprocessable { .. })),
        "one at a time: {busy:?}"
    );
    let d = document().await.unwrap();
    assert_eq!(d["docStatus"], "preliminary");
    assert_eq!(noa_status(&encounter().await.unwrap()), "Analyzing");
    f.sim.advance_clock(TimeDelta::minutes(5));
    assert_eq!(noa_status(&encounter().await.unwrap()), "Summarized");
    let d = document().await.unwrap();
    assert_eq!(
        (d["docStatus"].as_str(), d["meta"]["versionId"].as_str()),
        (Some("preliminary"), Some("2"))
    );

    // Recover: revision 3, and an unknown session is not found.
    f.adapter
        .operation(ResourceType::DocumentReference, &id, "recover", None)
        .await
        .unwrap();
    f.sim.advance_clock(TimeDelta::minutes(5));
    assert_eq!(document().await.unwrap()["meta"]["versionId"], "3");
    let unknown = f
        .adapter
        .operation(
            ResourceType::DocumentReference,
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "regenerate",
            None,
        )
        .await;
    assert!(matches!(unknown, Err(AdapterError::NotFound { .. })));
    let undeclared = f
        .adapter
        .operation(ResourceType::Encounter, &id, "regenerate", None)
        .await;
    assert!(matches!(undeclared, Err(AdapterError::Unsupported { .. })));
}

// ---- webhooks ----------------------------------------------------------------------------------

/// The path and body of each call a webhook receiver got.
type Calls = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A local webhook receiver: keeps the path and body of every call, answers 204.
struct Hooks {
    origin: String,
    calls: Calls,
}

impl Hooks {
    async fn spawn() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let kept = calls.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let mut data = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if data.len() >= end + 4 + length {
                                let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                                kept.lock().unwrap().push((path, data[end + 4..].to_vec()));
                                break;
                            }
                        }
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => data.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = socket
                        .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                        .await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { origin, calls }
    }

    fn take(&self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

#[tokio::test]
async fn webhooks_on_the_secret_path_announce_changes_and_fetch_a_verified_summary_once() {
    let f = Fixture::with(true).await;
    let hooks = f.hooks.as_ref().unwrap();
    let receiver = f.adapter.webhooks().unwrap();
    let a = f.free_appointment(true);
    let out = f.start_scribe(&a.id, None).await.unwrap();
    let id = param(&out, "sessionId")["valueString"].as_str().unwrap().to_owned();
    let session = f.sim.dataset().session(&id).cloned().unwrap();
    assert_eq!(
        session.webhook_url.as_deref(),
        Some(format!("{}/webhooks/noa/{HOOK}", hooks.origin).as_str()),
        "the callback URL was handed to Noa"
    );

    f.sim.start_recording(&id).unwrap();
    f.sim.advance_clock(TimeDelta::hours(1));
    f.sim.approve(&id, false).unwrap();
    assert!(f.sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let calls = hooks.take();
    let statuses: Vec<String> = calls
        .iter()
        .map(|(_, body)| {
            serde_json::from_slice::<Value>(body).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        statuses,
        [
            "Recording",
            "Recorded",
            "Transcribing",
            "Transcribed",
            "Analyzing",
            "Summarized",
            "Verified"
        ]
    );

    let deliver = |method: &'static str, path: &str, body: &[u8]| {
        let path = path.strip_prefix("/webhooks/noa").unwrap_or(path).to_owned();
        receiver.receive(&WebhookRequest {
            method,
            path: &path,
            headers: &[],
            query: &[],
            body,
            now: Utc::now(),
        })
    };
    f.sim.reset_hits();
    for (path, body) in &calls {
        let answer = deliver("POST", path, body).unwrap();
        assert_eq!(answer.status, 204);
        let changed: Vec<(ResourceType, &str, ChangeKind)> = answer
            .events
            .iter()
            .map(|e| (e.resource_type, e.native_id.as_str(), e.kind))
            .collect();
        assert_eq!(
            changed,
            [
                (ResourceType::Encounter, id.as_str(), ChangeKind::Updated),
                (ResourceType::DocumentReference, id.as_str(), ChangeKind::Updated)
            ]
        );
        assert!(
            answer
                .events
                .iter()
                .all(|e| e.source == "noa" && e.account == f.sim.config().client_id)
        );
    }
    // The Verified event fetched the summary once, in the background.
    for _ in 0..100 {
        if f.adapter.has_memoized_summary(&id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(f.adapter.has_memoized_summary(&id));
    assert_eq!(f.summary_hits(&id), 1);
    let (verified_path, verified_body) = calls.last().unwrap();
    deliver("POST", verified_path, verified_body).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.summary_hits(&id), 1, "a repeated event fetches nothing");
    let d = f.read(ResourceType::DocumentReference, &id).await.unwrap();
    assert_eq!(d["docStatus"], "final");
    assert_eq!(f.summary_hits(&id), 1, "the read was served from the memo");

    // An Analyzing event (a regeneration started elsewhere) drops the kept summary.
    let (analyzing_path, analyzing_body) = &calls[4];
    deliver("POST", analyzing_path, analyzing_body).unwrap();
    assert!(!f.adapter.has_memoized_summary(&id));

    // Any other path or method is nowhere; a bad body on the right path is malformed.
    let body = verified_body.as_slice();
    for (method, path) in [
        ("POST", "/".to_owned()),
        ("POST", String::new()),
        ("POST", "/wrong-secret".to_owned()),
        ("POST", format!("/{HOOK}x")),
        ("POST", format!("/{HOOK}/extra")),
        ("POST", HOOK.to_owned()),
        ("GET", format!("/{HOOK}")),
    ] {
        assert_eq!(
            deliver(method, &format!("/webhooks/noa{path}"), body).unwrap_err(),
            WebhookError::UnknownEndpoint,
            "{method} {path}"
        );
    }
    let good = format!("/webhooks/noa/{HOOK}");
    for bad in [
        &b"not json"[..],
        br#"{"status":"Verified"}"#,
        br#"{"sessionId":"x","status":"Verified"}"#,
    ] {
        let error = deliver("POST", &good, bad).unwrap_err();
        assert!(matches!(error, WebhookError::Malformed(_)), "{error:?}");
        assert!(!error.to_string().contains("Verified"));
    }
}
