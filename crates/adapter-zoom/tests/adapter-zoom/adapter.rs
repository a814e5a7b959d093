//! `ZoomAdapter` against the Zoom simulator over loopback HTTP: reads of every type, searches
//! compared with the simulator's own dataset, paging through `next_page_token` continuations,
//! writes (note completion, visit create / reschedule / cancel, `$admit`, `$invite`) and the
//! writes Zoom cannot store, which must change nothing.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use adapter::fhir::resources::{Parameters, ParametersParameter, ParametersParameterValue};
use adapter::search::{DateRange, DateValue, Prefix, ReferenceValue, SearchParam, SearchValue, TokenValue};
use adapter::{
    Adapter, AdapterError, Continuation, Interaction, PageRequest, Resolver, Resource, ResourceType, SearchRequest,
};
use adapter_zoom::map::ids::{self, ZoomId};
use adapter_zoom::{ZoomAdapter, ZoomConfig};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use url::Url;
use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig};
use vendor_sim::zoom::wire::{self as sim, VisitStatus};
use vendor_sim::zoom::{EhrRefs, ZoomSim, ZoomSimConfig, ZoomSimHandle};

const NY: Tz = chrono_tz::America::New_York;

/// Says which EHR resources exist: the EHR's patients and doctors, not its appointments (so both
/// literal and logical references are exercised). Counts the questions. While `failing`, it
/// answers every question as a failing EHR would.
struct KnownEhr {
    known: HashSet<String>,
    asked: AtomicUsize,
    failing: AtomicBool,
}

#[async_trait::async_trait]
impl Resolver for KnownEhr {
    async fn exists(&self, resource_type: ResourceType, id: &str) -> Result<bool, AdapterError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(AdapterError::Unavailable {
                vendor: "drchrono",
                detail: "down for the test".into(),
            });
        }
        Ok(self.known.contains(&format!("{resource_type}/{id}")))
    }
}

struct Fixture {
    sim: ZoomSimHandle,
    adapter: ZoomAdapter,
    resolver: Arc<KnownEhr>,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(tweak: impl FnOnce(&mut ZoomSimConfig)) -> Self {
        let anchor = Utc::now().date_naive();
        let ehr = EhrRefs::from_drchrono(&DrChronoSim::new(DrChronoSimConfig::small(5, anchor)).dataset());
        let mut known = HashSet::new();
        for p in &ehr.patients {
            known.insert(format!("Patient/drchrono-{}", p.id));
        }
        for d in &ehr.doctors {
            known.insert(format!("Practitioner/drchrono-{}", d.id));
        }
        let mut config = ZoomSimConfig::small(9, anchor, ehr);
        tweak(&mut config);
        let sim = ZoomSim::new(config)
            .spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let c = sim.config();
        let mut config = ZoomConfig::new(
            c.account_id.clone(),
            c.client_id.clone(),
            c.client_secret.clone(),
            c.webhook_secret.clone(),
        )
        .with_api_base(Url::parse(&sim.api_base_url()).unwrap())
        .with_oauth_base(Url::parse(&sim.base_url()).unwrap());
        config.default_timezone = NY;
        let resolver = Arc::new(KnownEhr {
            known,
            asked: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        });
        let adapter = ZoomAdapter::new(config).unwrap().with_resolver(resolver.clone());
        Self { sim, adapter, resolver }
    }

    fn data(&self) -> Arc<vendor_sim::zoom::Dataset> {
        self.sim.dataset()
    }

    /// Every resource of a search, walking its continuations with pages of `size`.
    async fn all(&self, request: &SearchRequest, size: u32) -> Vec<Resource> {
        let mut out = Vec::new();
        let mut cursor: Option<Continuation> = None;
        for _ in 0..500 {
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
            out.extend(page.resources);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return out,
            }
        }
        panic!("the search did not end");
    }

    /// The FHIR ids of a search, checking that none comes twice.
    async fn ids(&self, request: &SearchRequest, size: u32) -> BTreeSet<String> {
        let ids: Vec<String> = self.all(request, size).await.iter().map(id_of).collect();
        let set: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(set.len(), ids.len(), "a resource came twice: {ids:?}");
        set
    }

    async fn read(&self, resource_type: ResourceType, native: &str) -> Result<Value, AdapterError> {
        self.adapter.read(resource_type, native).await.map(|r| json(&r))
    }
}

fn json(resource: &Resource) -> Value {
    fhirbolt::json::to_json_value(resource.clone(), None).unwrap()
}

fn resource(value: Value) -> Resource {
    fhirbolt::json::from_str(&value.to_string(), None).unwrap()
}

fn id_of(resource: &Resource) -> String {
    resource
        .id()
        .and_then(|id| id.value.clone())
        .expect("every resource has an id")
}

fn fhir(id: &ZoomId) -> String {
    id.fhir_id().unwrap()
}

fn search(resource_type: ResourceType, params: Vec<SearchParam>) -> SearchRequest {
    SearchRequest {
        resource_type: Some(resource_type),
        params,
    }
}

fn param(name: &str, value: SearchValue) -> SearchParam {
    SearchParam {
        name: name.into(),
        modifier: None,
        values: vec![value],
    }
}

fn token(name: &str, system: Option<&str>, code: &str) -> SearchParam {
    param(
        name,
        SearchValue::Token(TokenValue {
            system: system.map(Into::into),
            code: Some(code.into()),
        }),
    )
}

fn reference(name: &str, resource_type: ResourceType, id: &str) -> SearchParam {
    param(
        name,
        SearchValue::Reference(ReferenceValue {
            resource_type: Some(resource_type),
            id: id.into(),
        }),
    )
}

fn date(name: &str, prefix: Prefix, value: &str) -> SearchParam {
    param(
        name,
        SearchValue::Date(DateValue {
            prefix,
            range: DateRange::parse(value, NY).unwrap(),
        }),
    )
}

fn utc(ts: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(ts).unwrap().with_timezone(&Utc)
}

fn appointment_ids<'a>(visits: impl IntoIterator<Item = &'a sim::Visit>) -> BTreeSet<String> {
    visits
        .into_iter()
        .map(|v| fhir(&ZoomId::Appointment(v.id.clone())))
        .collect()
}

/// Visits that have an Encounter: the patient came (or the meeting began).
fn started(v: &sim::Visit) -> bool {
    match v.status {
        VisitStatus::Scheduled => false,
        VisitStatus::Waiting | VisitStatus::InProgress | VisitStatus::Completed => true,
        VisitStatus::Cancelled | VisitStatus::NoShow => v.patient_joined_at.is_some() || v.started_at.is_some(),
    }
}

#[tokio::test]
async fn reads_every_type() {
    let f = Fixture::new().await;
    let data = f.data();

    let note = data
        .clinical_notes
        .iter()
        .find(|n| n.ehr_context.as_ref().is_some_and(|c| c.patient_id.is_some()))
        .unwrap();
    let doc = f
        .read(ResourceType::DocumentReference, &ids::note(&note.note_id))
        .await
        .unwrap();
    assert_eq!(doc["id"], fhir(&ZoomId::Note(note.note_id.clone())));
    let expected = if note.is_note_completed { "final" } else { "preliminary" };
    assert_eq!(doc["docStatus"], expected);
    let ehr_patient = note.ehr_context.as_ref().unwrap().patient_id.as_deref().unwrap();
    let ehr_patient = ehr_patient.trim_start_matches("Patient/");
    assert_eq!(doc["subject"]["reference"], format!("Patient/drchrono-{ehr_patient}"));
    assert_eq!(doc["content"][0]["attachment"]["contentType"], "text/markdown");

    let visit = data.visits.iter().find(|v| v.status == VisitStatus::Waiting).unwrap();
    let appointment = f.read(ResourceType::Appointment, &visit.id).await.unwrap();
    assert_eq!(appointment["id"], fhir(&ZoomId::Appointment(visit.id.clone())));
    assert_eq!(appointment["status"], "arrived");
    let encounter = f
        .read(ResourceType::Encounter, &ids::encounter(&visit.id))
        .await
        .unwrap();
    assert_eq!(encounter["status"], "arrived");
    assert_eq!(
        encounter["appointment"][0]["reference"],
        format!("Appointment/{}", appointment["id"].as_str().unwrap())
    );
    let scheduled = data.visits.iter().find(|v| v.status == VisitStatus::Scheduled).unwrap();
    assert!(matches!(
        f.read(ResourceType::Encounter, &ids::encounter(&scheduled.id)).await,
        Err(AdapterError::NotFound { .. })
    ));

    let patient = &data.patients[0];
    let p = f.read(ResourceType::Patient, &patient.id).await.unwrap();
    assert_eq!(p["id"], fhir(&ZoomId::Patient(patient.id.clone())));
    let provider = &data.providers[0];
    let p = f.read(ResourceType::Practitioner, &provider.id).await.unwrap();
    assert_eq!(p["id"], fhir(&ZoomId::Practitioner(provider.id.clone())));
    let s = f
        .read(ResourceType::Schedule, &ids::schedule(&provider.id))
        .await
        .unwrap();
    assert_eq!(s["id"], fhir(&ZoomId::Schedule(provider.id.clone())));
    assert_eq!(
        s["actor"][0]["reference"],
        format!("Practitioner/{}", p["id"].as_str().unwrap())
    );

    // A slot read by its id is the slot a search gives.
    let slots = f
        .all(
            &search(
                ResourceType::Slot,
                vec![reference("schedule", ResourceType::Schedule, s["id"].as_str().unwrap())],
            ),
            100,
        )
        .await;
    let slot = json(
        slots
            .first()
            .expect("a provider with hours has free slots in two weeks"),
    );
    let native = adapter::FhirId::parse(slot["id"].as_str().unwrap()).unwrap();
    assert_eq!(f.read(ResourceType::Slot, native.native()).await.unwrap(), slot);

    for (resource_type, native) in [
        (ResourceType::Appointment, "visit_nope"),
        (ResourceType::Encounter, visit.id.as_str()),
        (ResourceType::DocumentReference, "note-nope"),
        (ResourceType::DocumentReference, note.note_id.as_str()),
        (ResourceType::Patient, "pat_nope"),
        (ResourceType::Schedule, "sched-prov_nope"),
        (ResourceType::Slot, "slot-prov_nope-1700000000"),
    ] {
        assert!(
            matches!(f.read(resource_type, native).await, Err(AdapterError::NotFound { .. })),
            "{resource_type}/{native}"
        );
    }
    assert!(matches!(
        f.adapter.read(ResourceType::Location, "x").await,
        Err(AdapterError::Unsupported { .. })
    ));
}

#[tokio::test]
async fn searches_walk_every_page_once_and_match_the_dataset() {
    let f = Fixture::new().await;
    let data = f.data();

    let visits = appointment_ids(&data.visits);
    assert_eq!(f.ids(&search(ResourceType::Appointment, vec![]), 3).await, visits);

    let notes: BTreeSet<String> = data
        .clinical_notes
        .iter()
        .map(|n| fhir(&ZoomId::Note(n.note_id.clone())))
        .collect();
    assert_eq!(notes.len(), data.clinical_notes.len());
    assert_eq!(f.ids(&search(ResourceType::DocumentReference, vec![]), 7).await, notes);

    let providers: BTreeSet<String> = data
        .providers
        .iter()
        .map(|p| fhir(&ZoomId::Practitioner(p.id.clone())))
        .collect();
    assert_eq!(f.ids(&search(ResourceType::Practitioner, vec![]), 2).await, providers);
    let schedules: BTreeSet<String> = data
        .providers
        .iter()
        .map(|p| fhir(&ZoomId::Schedule(p.id.clone())))
        .collect();
    assert_eq!(f.ids(&search(ResourceType::Schedule, vec![]), 2).await, schedules);

    let encounters: BTreeSet<String> = data
        .visits
        .iter()
        .filter(|v| started(v))
        .map(|v| fhir(&ZoomId::Encounter(v.id.clone())))
        .collect();
    assert!(!encounters.is_empty());
    assert_eq!(f.ids(&search(ResourceType::Encounter, vec![]), 3).await, encounters);

    // Zoom lists no patients: Patient search is not offered (patients are read by id).
    assert!(
        !f.adapter
            .capabilities()
            .supports(ResourceType::Patient, adapter::Interaction::SearchType)
    );
    assert!(
        f.adapter
            .capabilities()
            .supports(ResourceType::Patient, adapter::Interaction::Read)
    );

    // `_id` reads directly; unknown and foreign ids are no match.
    let wanted = [&data.visits[0], &data.visits[1]];
    let request = search(
        ResourceType::Appointment,
        vec![SearchParam {
            name: "_id".into(),
            modifier: None,
            values: vec![
                SearchValue::Token(TokenValue {
                    system: None,
                    code: Some(fhir(&ZoomId::Appointment(wanted[0].id.clone()))),
                }),
                SearchValue::Token(TokenValue {
                    system: None,
                    code: Some(fhir(&ZoomId::Appointment(wanted[1].id.clone()))),
                }),
                SearchValue::Token(TokenValue {
                    system: None,
                    code: Some("zoom-visitnope".into()),
                }),
                SearchValue::Token(TokenValue {
                    system: None,
                    code: Some("drchrono-1".into()),
                }),
            ],
        }],
    );
    assert_eq!(f.ids(&request, 10).await, appointment_ids(wanted));
}

#[tokio::test]
async fn filters_are_pushed_down_without_dropping_a_match() {
    let f = Fixture::new().await;
    let data = f.data();

    // Appointment status, patient, practitioner and date.
    let booked = f
        .ids(
            &search(ResourceType::Appointment, vec![token("status", None, "booked")]),
            50,
        )
        .await;
    assert_eq!(
        booked,
        appointment_ids(data.visits.iter().filter(|v| v.status == VisitStatus::Scheduled))
    );
    let visit = &data.visits[data.visits.len() / 2];
    let patient = fhir(&ZoomId::Patient(visit.patient_id.clone()));
    let by_patient = f
        .ids(
            &search(
                ResourceType::Appointment,
                vec![reference("patient", ResourceType::Patient, &patient)],
            ),
            50,
        )
        .await;
    assert_eq!(
        by_patient,
        appointment_ids(data.visits.iter().filter(|v| v.patient_id == visit.patient_id))
    );
    let provider = fhir(&ZoomId::Practitioner(visit.provider_id.clone()));
    let by_provider = f
        .ids(
            &search(
                ResourceType::Appointment,
                vec![reference("practitioner", ResourceType::Practitioner, &provider)],
            ),
            50,
        )
        .await;
    assert_eq!(
        by_provider,
        appointment_ids(data.visits.iter().filter(|v| v.provider_id == visit.provider_id))
    );
    let day = utc(&visit.scheduled_time).with_timezone(&NY).date_naive().to_string();
    let on_day = f
        .ids(
            &search(ResourceType::Appointment, vec![date("date", Prefix::Eq, &day)]),
            50,
        )
        .await;
    assert_eq!(
        on_day,
        appointment_ids(
            data.visits
                .iter()
                .filter(|v| utc(&v.scheduled_time).with_timezone(&NY).date_naive().to_string() == day)
        )
    );
    assert!(on_day.contains(&fhir(&ZoomId::Appointment(visit.id.clone()))));

    // Encounter status.
    let finished = f
        .ids(
            &search(ResourceType::Encounter, vec![token("status", None, "finished")]),
            50,
        )
        .await;
    let completed: BTreeSet<String> = data
        .visits
        .iter()
        .filter(|v| v.status == VisitStatus::Completed)
        .map(|v| fhir(&ZoomId::Encounter(v.id.clone())))
        .collect();
    assert_eq!(finished, completed);

    // Notes by their Zoom author: the same as filtering every note.
    let all = f.all(&search(ResourceType::DocumentReference, vec![]), 100).await;
    let authored = all
        .iter()
        .map(json)
        .find_map(|d| {
            let author = d["author"][0]["reference"].as_str()?.to_owned();
            author.starts_with("Practitioner/zoom-").then_some(author)
        })
        .expect("a note without an EHR provider names its Zoom owner");
    let expected: BTreeSet<String> = all
        .iter()
        .map(json)
        .filter(|d| d["author"][0]["reference"].as_str() == Some(authored.as_str()))
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    let author_id = authored.trim_start_matches("Practitioner/");
    let by_author = f
        .ids(
            &search(
                ResourceType::DocumentReference,
                vec![reference("author", ResourceType::Practitioner, author_id)],
            ),
            100,
        )
        .await;
    assert!(by_author.is_superset(&expected), "{by_author:?} {expected:?}");
    assert!(by_author.len() < all.len(), "the owner filter narrowed the list");

    // Notes of one meeting, by the meeting identifier.
    let note = &data.clinical_notes[3];
    let by_meeting = f
        .ids(
            &search(
                ResourceType::DocumentReference,
                vec![token(
                    "identifier",
                    Some("urn:fhir-gateway:id:zoom:meeting"),
                    &note.meeting_id,
                )],
            ),
            100,
        )
        .await;
    let same_meeting: BTreeSet<String> = data
        .clinical_notes
        .iter()
        .filter(|n| n.meeting_id == note.meeting_id)
        .map(|n| fhir(&ZoomId::Note(n.note_id.clone())))
        .collect();
    assert_eq!(by_meeting, same_meeting);

    // Slots of one schedule within two days: what Zoom computes for those days.
    let provider = &data.providers[0];
    let schedule = fhir(&ZoomId::Schedule(provider.id.clone()));
    let from = (Utc::now() + chrono::Duration::days(2)).date_naive();
    let to = from + chrono::Duration::days(2);
    let slots = f
        .all(
            &search(
                ResourceType::Slot,
                vec![
                    reference("schedule", ResourceType::Schedule, &schedule),
                    date("start", Prefix::Ge, &format!("{from}T00:00:00Z")),
                    date("start", Prefix::Lt, &format!("{to}T00:00:00Z")),
                ],
            ),
            100,
        )
        .await;
    let lo = utc(&format!("{from}T00:00:00Z"));
    let hi = utc(&format!("{to}T00:00:00Z"));
    let starts: Vec<DateTime<Utc>> = slots
        .iter()
        .map(json)
        .map(|s| utc(s["start"].as_str().unwrap()))
        .filter(|t| *t >= lo && *t < hi)
        .collect();
    let truth: Vec<DateTime<Utc>> = f
        .adapter
        .client()
        .get(
            &["healthcare", "providers", &provider.id, "availability"],
            &[
                ("from", (from - chrono::Duration::days(1)).to_string()),
                ("to", to.to_string()),
            ],
        )
        .await
        .unwrap()
        .unwrap()["available_slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| utc(s["start_time"].as_str().unwrap()))
        .filter(|t| *t >= lo && *t < hi)
        .collect();
    assert_eq!(starts, truth);
}

#[tokio::test]
async fn an_expired_page_token_is_a_continuation_expired() {
    let f = Fixture::with(|c| c.next_page_token_ttl = Duration::from_millis(300)).await;
    let request = search(ResourceType::Appointment, vec![]);
    let first = f
        .adapter
        .search(&request, PageRequest { cursor: None, size: 2 })
        .await
        .unwrap();
    let next = first.next.expect("twenty visits make more than one page");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let error = f
        .adapter
        .search(
            &request,
            PageRequest {
                cursor: Some(next.clone()),
                size: 2,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error, AdapterError::ContinuationExpired { vendor: "zoom" });
    // A continuation of another list, or none of this adapter's, has expired too.
    for bad in [next.0.replace("visits", "notes"), "{}".into(), "garbage".into()] {
        let error = f
            .adapter
            .search(
                &request,
                PageRequest {
                    cursor: Some(Continuation(bad)),
                    size: 2,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(error, AdapterError::ContinuationExpired { vendor: "zoom" });
    }
}

#[tokio::test]
async fn ehr_references_are_resolved_once_each_and_linked_only_when_they_exist() {
    let f = Fixture::new().await;
    let data = f.data();
    let notes = f
        .adapter
        .search(
            &search(ResourceType::DocumentReference, vec![]),
            PageRequest {
                cursor: None,
                size: 300,
            },
        )
        .await
        .unwrap();
    assert!(notes.next.is_none());
    let distinct: HashSet<String> = data
        .clinical_notes
        .iter()
        .filter_map(|n| n.ehr_context.as_ref())
        .flat_map(|c| {
            [
                c.patient_id.as_ref().map(|p| p.replace('/', "/drchrono-")),
                c.provider_id.as_ref().map(|p| p.replace('/', "/drchrono-")),
                c.appointment_id.as_ref().map(|a| format!("Appointment/drchrono-{a}")),
            ]
        })
        .flatten()
        .collect();
    assert!(!distinct.is_empty());
    assert_eq!(
        f.resolver.asked.load(Ordering::SeqCst),
        distinct.len(),
        "one question per reference"
    );
    for d in notes.resources.iter().map(json) {
        if let Some(subject) = d.get("subject") {
            assert!(
                subject["reference"].as_str().unwrap().starts_with("Patient/drchrono-"),
                "{subject}"
            );
        }
        // EHR appointments are not known to the resolver: logical references only.
        for related in d["context"]["related"].as_array().into_iter().flatten() {
            assert!(related.get("reference").is_none(), "{related}");
            assert_eq!(
                related["identifier"]["system"],
                "urn:fhir-gateway:id:drchrono:appointment"
            );
        }
    }
}

/// The gateway reference an `ehr_context` key names (`Patient/12` or `12` → `Patient/drchrono-12`).
fn ehr_reference(resource_type: &str, key: &str) -> String {
    let native = key.rsplit('/').next().unwrap_or(key);
    format!("{resource_type}/drchrono-{native}")
}

#[tokio::test]
async fn ehr_references_stay_literal_while_the_ehr_cannot_be_checked() {
    let f = Fixture::new().await;
    let data = f.data();
    let everything = |resource_type| search(resource_type, vec![]);
    f.resolver.failing.store(true, Ordering::SeqCst);

    // Notes: the subject and the related appointment stay the links Zoom names, even the
    // appointments the EHR would say it does not know (it could not be asked).
    let notes = f.all(&everything(ResourceType::DocumentReference), 300).await;
    let mut linked = 0;
    for n in &data.clinical_notes {
        let Some(c) = &n.ehr_context else { continue };
        let d = notes
            .iter()
            .map(json)
            .find(|d| d["id"] == fhir(&ZoomId::Note(n.note_id.clone())))
            .unwrap();
        if let Some(patient) = &c.patient_id {
            assert_eq!(d["subject"]["reference"], ehr_reference("Patient", patient), "{d}");
            linked += 1;
        }
        if let Some(appointment) = &c.appointment_id {
            let related = d["context"]["related"].as_array().unwrap();
            assert!(
                related
                    .iter()
                    .any(|r| r["reference"] == ehr_reference("Appointment", appointment)),
                "{d}"
            );
        }
    }
    assert!(linked > 0, "the dataset links notes to EHR patients");

    // Visits: the EHR patient stays a participant.
    let visits = f.all(&everything(ResourceType::Appointment), 300).await;
    let mut participants = 0;
    for v in &data.visits {
        let Some(patient) = v.ehr_context.as_ref().and_then(|c| c.patient_id.as_ref()) else {
            continue;
        };
        let a = visits
            .iter()
            .map(json)
            .find(|a| a["id"] == fhir(&ZoomId::Appointment(v.id.clone())))
            .unwrap();
        let wanted = ehr_reference("Patient", patient);
        assert!(
            a["participant"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["actor"]["reference"] == wanted.as_str()),
            "{a}"
        );
        participants += 1;
    }
    assert!(participants > 0, "the dataset links visits to EHR patients");

    // Nothing of the failure is remembered: once the EHR answers, what it does not know is
    // logical again.
    f.resolver.failing.store(false, Ordering::SeqCst);
    let notes = f.all(&everything(ResourceType::DocumentReference), 300).await;
    for d in notes.iter().map(json) {
        for related in d["context"]["related"].as_array().into_iter().flatten() {
            assert!(related.get("reference").is_none(), "{related}");
        }
    }
}

#[tokio::test]
async fn a_note_is_completed_through_update() {
    let f = Fixture::new().await;
    let note = f
        .data()
        .clinical_notes
        .iter()
        .find(|n| !n.is_note_completed)
        .unwrap()
        .clone();
    let native = ids::note(&note.note_id);
    let current = f.read(ResourceType::DocumentReference, &native).await.unwrap();
    assert_eq!(current["docStatus"], "preliminary");

    // Unchanged: nothing is sent.
    let same = f
        .adapter
        .update(ResourceType::DocumentReference, &native, resource(current.clone()))
        .await
        .unwrap();
    assert_eq!(json(&same), current);
    assert_eq!(f.data().note(&note.note_id).unwrap(), &note);

    let mut wanted = current.clone();
    wanted["docStatus"] = json!("final");
    let updated = json(
        &f.adapter
            .update(ResourceType::DocumentReference, &native, resource(wanted))
            .await
            .unwrap(),
    );
    assert_eq!(updated["docStatus"], "final");
    let stored = f.data().note(&note.note_id).unwrap().clone();
    assert!(stored.is_note_completed);
    assert_eq!(stored.note_last_modified_user_id, f.data().admin_user_id);
    assert_eq!(updated, f.read(ResourceType::DocumentReference, &native).await.unwrap());
}

#[tokio::test]
async fn note_changes_zoom_cannot_store_change_nothing() {
    let f = Fixture::new().await;
    let data = f.data();
    let draft = data.clinical_notes.iter().find(|n| !n.is_note_completed).unwrap();
    let done = data.clinical_notes.iter().find(|n| n.is_note_completed).unwrap();
    let cases = [
        (draft, "description", json!("A new title")),
        (draft, "status", json!("superseded")),
        (done, "docStatus", json!("preliminary")),
    ];
    for (note, element, value) in cases {
        let native = ids::note(&note.note_id);
        let mut wanted = f.read(ResourceType::DocumentReference, &native).await.unwrap();
        wanted[element] = value;
        wanted["docStatus"] = json!(if element == "docStatus" { "preliminary" } else { "final" });
        f.sim.reset_hits();
        let error = f
            .adapter
            .update(ResourceType::DocumentReference, &native, resource(wanted))
            .await
            .unwrap_err();
        let path = format!("/v2/clinical_notes/notes/{}", note.note_id);
        assert_eq!(f.sim.hits_for(&path), 1, "the note was read, never patched");
        match &error {
            AdapterError::Unprocessable { element: e, .. } => assert!(e.starts_with(element), "{e} vs {element}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(f.data().clinical_notes, data.clinical_notes, "nothing changed at Zoom");

    // The wrong type, and an unknown note.
    let visit = f.read(ResourceType::Appointment, &data.visits[0].id).await.unwrap();
    assert!(matches!(
        f.adapter
            .update(
                ResourceType::DocumentReference,
                &ids::note(&draft.note_id),
                resource(visit)
            )
            .await,
        Err(AdapterError::InvalidRequest { .. })
    ));
    let doc = f
        .read(ResourceType::DocumentReference, &ids::note(&draft.note_id))
        .await
        .unwrap();
    assert!(matches!(
        f.adapter
            .update(ResourceType::DocumentReference, "note-nope", resource(doc))
            .await,
        Err(AdapterError::NotFound { .. })
    ));
}

/// A new visit's Appointment for a patient and provider of the dataset, starting at `start`.
fn new_appointment(patient: &str, provider: &str, start: &str) -> Value {
    json!({
        "resourceType": "Appointment",
        "status": "booked",
        "extension": [{
            "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.virtualService",
            "extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/_datatype", "valueString": "VirtualServiceDetail"},
                {"url": "channelType", "valueCoding": {"system": "http://hl7.org/fhir/virtual-service-type", "code": "zoom"}}
            ]
        }],
        "start": start,
        "minutesDuration": 30,
        "reasonCode": [{"text": "Follow-up of blood pressure"}],
        "participant": [
            {"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"},
            {"actor": {"reference": format!("Practitioner/{provider}")}, "status": "accepted"}
        ]
    })
}

#[tokio::test]
async fn visits_are_created_rescheduled_and_cancelled() {
    let f = Fixture::new().await;
    let data = f.data();
    let patient = fhir(&ZoomId::Patient(data.patients[0].id.clone()));
    let provider = data.providers.iter().find(|p| p.status == "active").unwrap();
    let provider_id = fhir(&ZoomId::Practitioner(provider.id.clone()));
    let start = (Utc::now() + chrono::Duration::days(10)).date_naive();
    let created = json(
        &f.adapter
            .create(resource(new_appointment(
                &patient,
                &provider_id,
                &format!("{start}T15:00:00Z"),
            )))
            .await
            .unwrap(),
    );
    assert_eq!(created["status"], "booked");
    assert_eq!(data.visits.len() + 1, f.data().visits.len());
    let native = adapter::FhirId::parse(created["id"].as_str().unwrap())
        .unwrap()
        .native()
        .to_owned();
    let visit = f.data().visit(&native).unwrap().clone();
    assert_eq!(visit.scheduled_time, format!("{start}T15:00:00Z"));
    assert_eq!(visit.duration_minutes, 30);
    assert_eq!(visit.patient_id, data.patients[0].id);
    assert!(visit.settings.waiting_room, "HIPAA-safe settings");
    assert_eq!(created, f.read(ResourceType::Appointment, &native).await.unwrap());

    // Reschedule: a new start and end.
    let mut wanted = created.clone();
    let later = utc(&format!("{start}T15:00:00Z")) + chrono::Duration::hours(2);
    wanted["start"] = json!(later.with_timezone(&NY).to_rfc3339());
    wanted["end"] = json!((later + chrono::Duration::minutes(30)).with_timezone(&NY).to_rfc3339());
    let moved = json(
        &f.adapter
            .update(ResourceType::Appointment, &native, resource(wanted))
            .await
            .unwrap(),
    );
    assert_eq!(utc(moved["start"].as_str().unwrap()), later);
    assert_eq!(utc(&f.data().visit(&native).unwrap().scheduled_time), later);

    // Cancel.
    let mut wanted = moved.clone();
    wanted["status"] = json!("cancelled");
    let cancelled = json(
        &f.adapter
            .update(ResourceType::Appointment, &native, resource(wanted))
            .await
            .unwrap(),
    );
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(f.data().visit(&native).unwrap().status, VisitStatus::Cancelled);

    // A participant Zoom does not know: refused, nothing created.
    let before = f.data().visits.len();
    let error = f
        .adapter
        .create(resource(new_appointment(
            "zoom-patnope",
            &provider_id,
            &format!("{start}T16:00:00Z"),
        )))
        .await
        .unwrap_err();
    assert!(matches!(error, AdapterError::Unprocessable { .. }), "{error:?}");
    assert_eq!(f.data().visits.len(), before);
}

#[tokio::test]
async fn visit_changes_zoom_cannot_store_change_nothing() {
    let f = Fixture::new().await;
    let data = f.data();
    let scheduled = data.visits.iter().find(|v| v.status == VisitStatus::Scheduled).unwrap();
    let in_progress = data
        .visits
        .iter()
        .find(|v| v.status == VisitStatus::InProgress)
        .unwrap();
    let other = data.providers.iter().find(|p| p.id != scheduled.provider_id).unwrap();

    let current = f.read(ResourceType::Appointment, &scheduled.id).await.unwrap();
    let mut wanted = current.clone();
    for p in wanted["participant"].as_array_mut().unwrap() {
        if p["actor"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("Practitioner/zoom-")
        {
            p["actor"]["reference"] = json!(format!(
                "Practitioner/{}",
                fhir(&ZoomId::Practitioner(other.id.clone()))
            ));
        }
    }
    f.sim.reset_hits();
    let error = f
        .adapter
        .update(ResourceType::Appointment, &scheduled.id, resource(wanted))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AdapterError::Unprocessable { element, .. } if element.starts_with("participant")),
        "{error:?}"
    );
    let path = format!("/v2/healthcare/visits/{}", scheduled.id);
    assert_eq!(f.sim.hits_for(&path), 1, "the visit was read, never patched");
    let mut wanted = current.clone();
    wanted["status"] = json!("fulfilled");
    assert!(matches!(
        f.adapter
            .update(ResourceType::Appointment, &scheduled.id, resource(wanted))
            .await,
        Err(AdapterError::Unprocessable { .. })
    ));
    // A visit under way cannot be rescheduled.
    let mut wanted = f.read(ResourceType::Appointment, &in_progress.id).await.unwrap();
    wanted["start"] = json!("2030-01-01T10:00:00Z");
    wanted["end"] = json!("2030-01-01T10:30:00Z");
    let error = f
        .adapter
        .update(ResourceType::Appointment, &in_progress.id, resource(wanted))
        .await
        .unwrap_err();
    assert!(matches!(error, AdapterError::Unprocessable { .. }), "{error:?}");
    assert_eq!(f.data().visits, data.visits, "nothing changed at Zoom");
}

#[tokio::test]
async fn admit_takes_the_patient_out_of_the_waiting_room() {
    let f = Fixture::new().await;
    let data = f.data();
    let waiting = data.visits.iter().find(|v| v.status == VisitStatus::Waiting).unwrap();
    let admitted = json(
        &f.adapter
            .operation(ResourceType::Appointment, &waiting.id, "admit", None)
            .await
            .unwrap(),
    );
    assert_eq!(admitted["resourceType"], "Appointment");
    assert_eq!(admitted["status"], "checked-in");
    assert_eq!(f.data().visit(&waiting.id).unwrap().status, VisitStatus::InProgress);
    let encounter = f
        .read(ResourceType::Encounter, &ids::encounter(&waiting.id))
        .await
        .unwrap();
    assert_eq!(encounter["status"], "in-progress");

    // A patient who is not waiting cannot be admitted; nothing changes.
    let before = f.data().visits.clone();
    let scheduled = data.visits.iter().find(|v| v.status == VisitStatus::Scheduled).unwrap();
    let error = f
        .adapter
        .operation(ResourceType::Appointment, &scheduled.id, "admit", None)
        .await
        .unwrap_err();
    assert!(matches!(error, AdapterError::Unprocessable { .. }), "{error:?}");
    assert!(matches!(
        f.adapter
            .operation(ResourceType::Appointment, "visit_nope", "admit", None)
            .await,
        Err(AdapterError::NotFound { .. })
    ));
    assert!(matches!(
        f.adapter
            .operation(ResourceType::Patient, &data.patients[0].id, "admit", None)
            .await,
        Err(AdapterError::Unsupported { .. })
    ));
    assert_eq!(f.data().visits, before);
}

fn invite_input(params: &[(&str, &str)]) -> Resource {
    Resource::Parameters(Box::new(Parameters {
        parameter: params
            .iter()
            .map(|(name, value)| ParametersParameter {
                name: (*name).into(),
                value: Some(if *name == "channel" {
                    ParametersParameterValue::Code((*value).into())
                } else {
                    ParametersParameterValue::String((*value).into())
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }))
}

#[tokio::test]
async fn invite_sends_the_invitation_by_the_channels_asked_for() {
    let f = Fixture::new().await;
    let data = f.data();
    let visit = data
        .visits
        .iter()
        .find(|v| {
            v.status == VisitStatus::Scheduled
                && data
                    .patient(&v.patient_id)
                    .is_some_and(|p| !p.email.is_empty() && !p.phone.is_empty())
        })
        .unwrap();
    let answer = json(
        &f.adapter
            .operation(
                ResourceType::Appointment,
                &visit.id,
                "invite",
                Some(invite_input(&[("channel", "email"), ("channel", "sms")])),
            )
            .await
            .unwrap(),
    );
    assert_eq!(answer["resourceType"], "Parameters");
    let value = |name: &str| -> Vec<Value> {
        answer["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == name)
            .cloned()
            .collect()
    };
    assert_eq!(value("status")[0]["valueCode"], "sent");
    assert_eq!(value("channel").len(), 2);
    assert_eq!(
        value("appointment")[0]["valueReference"]["reference"],
        format!("Appointment/{}", fhir(&ZoomId::Appointment(visit.id.clone())))
    );
    let invitations = f.data().invitations.clone();
    assert_eq!(invitations.len(), 1);
    assert_eq!(value("invitation")[0]["valueString"], invitations[0].id);
    assert_eq!(invitations[0].channels, vec!["email", "sms"]);
    assert_eq!(invitations[0].visit_id.as_deref(), Some(visit.id.as_str()));
    assert!(!answer.to_string().contains("zoom.us/j/"), "no join URL in the answer");

    // No channel, an unknown channel, or a visit that is over: refused, nothing sent.
    for input in [None, Some(invite_input(&[("channel", "fax")]))] {
        let error = f
            .adapter
            .operation(ResourceType::Appointment, &visit.id, "invite", input)
            .await
            .unwrap_err();
        assert!(matches!(error, AdapterError::InvalidRequest { .. }), "{error:?}");
    }
    let over = data.visits.iter().find(|v| v.status == VisitStatus::Completed).unwrap();
    let error = f
        .adapter
        .operation(
            ResourceType::Appointment,
            &over.id,
            "invite",
            Some(invite_input(&[("channel", "email")])),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, AdapterError::Unprocessable { .. }), "{error:?}");
    assert_eq!(f.data().invitations.len(), 1);
}

#[tokio::test]
async fn check_and_capabilities() {
    let f = Fixture::new().await;
    f.adapter.check().await.unwrap();
    assert_eq!(f.sim.token_grants(), 1);
    let caps = f.adapter.capabilities();
    assert!(caps.supports(ResourceType::DocumentReference, Interaction::Update));
    assert!(caps.supports(ResourceType::Appointment, Interaction::Create));
    assert!(!caps.supports(ResourceType::Encounter, Interaction::Update));
    let ops: Vec<(&str, bool)> = caps
        .resource(ResourceType::Appointment)
        .unwrap()
        .operations
        .iter()
        .map(|o| (o.name, o.affects_state))
        .collect();
    assert_eq!(ops, vec![("admit", true), ("invite", true)]);
    assert_eq!(f.adapter.source(), "zoom");
    assert_eq!(f.adapter.account(), f.sim.config().account_id);
    assert!(f.adapter.webhooks().is_some());
}
