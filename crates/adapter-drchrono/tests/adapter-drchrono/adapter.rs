//! `DrChronoAdapter` against the DrChrono simulator over loopback HTTP: reads of every type,
//! pushed-down searches compared with the simulator's own dataset, paging through continuations,
//! and what FHIR must not show (breaks, deleted appointments, archived documents).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use adapter::search::{DateRange, DateValue, Modifier, Prefix, ReferenceValue, SearchParam, SearchValue, TokenValue};
use adapter::{Adapter, AdapterError, Continuation, Interaction, PageRequest, Resource, ResourceType, SearchRequest};
use adapter_drchrono::{DrChronoAdapter, DrChronoConfig, Secret};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;
use vendor_sim::drchrono::wire as sim;
use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig, SimHandle};
use vendor_sim::faults::Faults;

const NY: Tz = chrono_tz::America::New_York;

struct Fixture {
    sim: SimHandle,
    adapter: DrChronoAdapter,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(tweak: impl FnOnce(&mut DrChronoConfig)) -> Self {
        let anchor = Utc::now().date_naive();
        let sim = DrChronoSim::new(DrChronoSimConfig::small(5, anchor))
            .spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let c = sim.config();
        let mut config = DrChronoConfig::new(
            c.client_id.clone(),
            c.client_secret.clone(),
            c.initial_refresh_token.clone(),
            c.redirect_uri.clone(),
        )
        .with_base_url(Url::parse(&sim.base_url()).unwrap());
        config.default_timezone = NY;
        tweak(&mut config);
        let adapter = DrChronoAdapter::new(config).unwrap();
        Self { sim, adapter }
    }

    fn data(&self) -> Arc<vendor_sim::drchrono::Dataset> {
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
        let resources = self.all(request, size).await;
        let ids: Vec<String> = resources.iter().map(id_of).collect();
        let set: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(set.len(), ids.len(), "a resource came twice: {ids:?}");
        set
    }
}

fn id_of(resource: &Resource) -> String {
    resource
        .id()
        .and_then(|id| id.value.clone())
        .expect("every resource has an id")
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

fn string(name: &str, value: &str) -> SearchParam {
    param(name, SearchValue::String(value.into()))
}

fn token(name: &str, code: &str) -> SearchParam {
    param(
        name,
        SearchValue::Token(TokenValue {
            system: None,
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

fn set<I: IntoIterator<Item = String>>(ids: I) -> BTreeSet<String> {
    ids.into_iter().collect()
}

fn local(ts: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S").unwrap();
    NY.from_local_datetime(&naive).earliest().unwrap().with_timezone(&Utc)
}

/// Appointments FHIR shows: not breaks, not deleted.
fn visible_appointments(data: &vendor_sim::drchrono::Dataset) -> Vec<&sim::Appointment> {
    data.appointments
        .iter()
        .filter(|a| !a.appt_is_break && a.patient.is_some() && !a.deleted_flag)
        .collect()
}

fn appointment_ids<'a>(it: impl IntoIterator<Item = &'a &'a sim::Appointment>) -> BTreeSet<String> {
    it.into_iter().map(|a| format!("drchrono-{}", a.id)).collect()
}

#[tokio::test]
async fn reads_every_type() {
    let f = Fixture::new().await;
    let data = f.data();
    let a = &f.adapter;

    let patient = &data.patients[0];
    let r = a.read(ResourceType::Patient, &patient.id.to_string()).await.unwrap();
    assert!(matches!(&r, Resource::Patient(_)));
    assert_eq!(id_of(&r), format!("drchrono-{}", patient.id));

    let doctor = &data.doctors[0];
    let r = a
        .read(ResourceType::Practitioner, &doctor.id.to_string())
        .await
        .unwrap();
    assert_eq!(id_of(&r), format!("drchrono-{}", doctor.id));

    let office = data.offices.iter().find(|o| !o.exam_rooms.is_empty()).unwrap();
    let r = a.read(ResourceType::Location, &office.id.to_string()).await.unwrap();
    assert_eq!(id_of(&r), format!("drchrono-{}", office.id));
    let room = &office.exam_rooms[0];
    let native = format!("{}-room-{}", office.id, room.index);
    let r = a.read(ResourceType::Location, &native).await.unwrap();
    assert_eq!(id_of(&r), format!("drchrono-{native}"));
    let missing_room = format!("{}-room-99", office.id);
    assert!(matches!(
        a.read(ResourceType::Location, &missing_room).await,
        Err(AdapterError::NotFound { .. })
    ));

    let appointment = visible_appointments(&data)[0];
    let r = a.read(ResourceType::Appointment, &appointment.id).await.unwrap();
    assert_eq!(id_of(&r), format!("drchrono-{}", appointment.id));

    let note = data.clinical_notes.iter().find(|n| !n.archived).unwrap();
    let r = a
        .read(ResourceType::DocumentReference, &format!("note-{}", note.id))
        .await
        .unwrap();
    assert_eq!(id_of(&r), format!("drchrono-note-{}", note.id));

    let document = data.documents.iter().find(|d| !d.archived).unwrap();
    let r = a
        .read(ResourceType::DocumentReference, &format!("doc-{}", document.id))
        .await
        .unwrap();
    assert_eq!(id_of(&r), format!("drchrono-doc-{}", document.id));
}

#[tokio::test]
async fn deleted_breaks_and_unknown_ids_are_gone_or_missing() {
    let f = Fixture::new().await;
    let data = f.data();
    let a = &f.adapter;

    let deleted = data
        .appointments
        .iter()
        .find(|x| x.deleted_flag && !x.appt_is_break)
        .expect("the dataset has a deleted appointment");
    assert_eq!(
        a.read(ResourceType::Appointment, &deleted.id).await.unwrap_err(),
        AdapterError::Gone {
            resource_type: ResourceType::Appointment,
            id: deleted.id.clone()
        }
    );
    let brk = data
        .appointments
        .iter()
        .find(|x| x.appt_is_break && !x.deleted_flag)
        .expect("the dataset has a break");
    assert!(matches!(
        a.read(ResourceType::Appointment, &brk.id).await,
        Err(AdapterError::NotFound { .. })
    ));
    // Seed 5 has archived documents and notes of deleted appointments.
    let doc = data.documents.iter().find(|d| d.archived).unwrap();
    assert!(matches!(
        a.read(ResourceType::DocumentReference, &format!("doc-{}", doc.id))
            .await,
        Err(AdapterError::Gone { .. })
    ));
    let note = data.clinical_notes.iter().find(|n| n.archived).unwrap();
    assert!(matches!(
        a.read(ResourceType::DocumentReference, &format!("note-{}", note.id))
            .await,
        Err(AdapterError::Gone { .. })
    ));

    assert!(matches!(
        a.read(ResourceType::Patient, "999999").await,
        Err(AdapterError::NotFound { .. })
    ));
    assert!(matches!(
        a.read(ResourceType::Encounter, "1").await,
        Err(AdapterError::Unsupported { .. })
    ));
}

#[tokio::test]
async fn patient_searches_walk_every_patient_once_and_push_filters_down() {
    let f = Fixture::new().await;
    let data = f.data();
    let all = f.ids(&search(ResourceType::Patient, vec![]), 7).await;
    assert_eq!(
        all,
        set(data.patients.iter().map(|p| format!("drchrono-{}", p.id))),
        "inactive patients too"
    );

    // family → last_name (DrChrono: case-insensitive substring; FHIR's starts-with is within it).
    let last = &data.patients[3].last_name;
    let fragment = last[..3.min(last.len())].to_uppercase();
    let got = f
        .ids(&search(ResourceType::Patient, vec![string("family", &fragment)]), 50)
        .await;
    let vendor_truth = set(data
        .patients
        .iter()
        .filter(|p| p.last_name.to_lowercase().contains(&fragment.to_lowercase()))
        .map(|p| format!("drchrono-{}", p.id)));
    assert_eq!(got, vendor_truth);
    let fhir_truth = set(data
        .patients
        .iter()
        .filter(|p| p.last_name.to_lowercase().starts_with(&fragment.to_lowercase()))
        .map(|p| format!("drchrono-{}", p.id)));
    assert!(got.is_superset(&fhir_truth) && got.len() < all.len());

    // gender → gender.
    let got = f
        .ids(&search(ResourceType::Patient, vec![token("gender", "female")]), 50)
        .await;
    assert_eq!(
        got,
        set(data
            .patients
            .iter()
            .filter(|p| p.gender == "Female")
            .map(|p| format!("drchrono-{}", p.id)))
    );

    // birthdate (one day) → date_of_birth.
    let dob = data.patients.iter().find_map(|p| p.date_of_birth.clone()).unwrap();
    let got = f
        .ids(
            &search(ResourceType::Patient, vec![date("birthdate", Prefix::Eq, &dob)]),
            50,
        )
        .await;
    assert_eq!(
        got,
        set(data
            .patients
            .iter()
            .filter(|p| p.date_of_birth.as_deref() == Some(dob.as_str()))
            .map(|p| format!("drchrono-{}", p.id)))
    );

    // email → email (DrChrono: exact, case-insensitive).
    let p = data.patients.iter().find(|p| !p.email.is_empty()).unwrap();
    let got = f
        .ids(
            &search(ResourceType::Patient, vec![token("email", &p.email.to_uppercase())]),
            50,
        )
        .await;
    assert!(got.contains(&format!("drchrono-{}", p.id)));
    assert_eq!(
        got,
        set(data
            .patients
            .iter()
            .filter(|q| q.email.eq_ignore_ascii_case(&p.email))
            .map(|q| format!("drchrono-{}", q.id)))
    );

    // _lastUpdated=ge… → since: nothing updated at or after the bound is lost.
    let mut updated: Vec<&str> = data.patients.iter().map(|p| p.updated_at.as_str()).collect();
    updated.sort();
    let bound = local(updated[updated.len() / 2]);
    let got = f
        .ids(
            &search(
                ResourceType::Patient,
                vec![param(
                    "_lastUpdated",
                    SearchValue::Date(DateValue {
                        prefix: Prefix::Ge,
                        range: DateRange {
                            start: bound,
                            end: bound + Duration::seconds(1),
                        },
                    }),
                )],
            ),
            50,
        )
        .await;
    let fhir_truth = set(data
        .patients
        .iter()
        .filter(|p| local(&p.updated_at) >= bound)
        .map(|p| format!("drchrono-{}", p.id)));
    assert!(got.is_superset(&fhir_truth), "{got:?} ⊉ {fhir_truth:?}");
    assert!(got.len() < all.len(), "the filter was pushed down");
}

#[tokio::test]
async fn id_and_identifier_searches_read_directly() {
    let f = Fixture::new().await;
    let data = f.data();
    let (p1, p2) = (data.patients[1].id, data.patients[2].id);
    let request = search(
        ResourceType::Patient,
        vec![SearchParam {
            name: "_id".into(),
            modifier: None,
            values: vec![
                SearchValue::Token(TokenValue {
                    system: None,
                    code: Some(format!("drchrono-{p1}")),
                }),
                SearchValue::Token(TokenValue {
                    system: None,
                    code: Some(format!("drchrono-{p2}")),
                }),
                SearchValue::Token(TokenValue {
                    system: None,
                    code: Some("drchrono-999999".into()),
                }),
                SearchValue::Token(TokenValue {
                    system: None,
                    code: Some("zoom-1".into()),
                }),
            ],
        }],
    );
    f.sim.reset_hits();
    let got = f.ids(&request, 10).await;
    assert_eq!(got, set([format!("drchrono-{p1}"), format!("drchrono-{p2}")]));
    assert_eq!(f.sim.hits_for("/api/patients"), 3, "three reads, no list");

    let appointment = visible_appointments(&data)[3];
    let request = search(
        ResourceType::Appointment,
        vec![param(
            "identifier",
            SearchValue::Token(TokenValue {
                system: Some("urn:fhir-gateway:id:drchrono:appointment".into()),
                code: Some(appointment.id.clone()),
            }),
        )],
    );
    let got = f.ids(&request, 10).await;
    assert_eq!(got, set([format!("drchrono-{}", appointment.id)]));

    // An `_id` of another source matches nothing here, without a vendor call.
    f.sim.reset_hits();
    let got = f
        .ids(&search(ResourceType::Patient, vec![token("_id", "zoom-4")]), 10)
        .await;
    assert!(got.is_empty());
    assert_eq!(f.sim.hits_for("/api/patients"), 0);
}

#[tokio::test]
async fn practitioners_and_locations_are_listed_whole() {
    let f = Fixture::new().await;
    let data = f.data();
    let got = f.ids(&search(ResourceType::Practitioner, vec![]), 2).await;
    assert_eq!(got, set(data.doctors.iter().map(|d| format!("drchrono-{}", d.id))));
    let got = f.ids(&search(ResourceType::Location, vec![]), 1).await;
    let mut truth = BTreeSet::new();
    for office in &data.offices {
        truth.insert(format!("drchrono-{}", office.id));
        for room in &office.exam_rooms {
            truth.insert(format!("drchrono-{}-room-{}", office.id, room.index));
        }
    }
    assert!(data.offices.iter().any(|o| o.archived));
    assert_eq!(got, truth, "archived offices are inactive Locations, still listed");
}

#[tokio::test]
async fn appointment_searches_exclude_breaks_and_deleted_and_push_filters_down() {
    let f = Fixture::new().await;
    let data = f.data();
    let visible = visible_appointments(&data);
    assert!(data.appointments.iter().any(|a| a.appt_is_break));
    assert!(data.appointments.iter().any(|a| a.deleted_flag));

    let all = f.ids(&search(ResourceType::Appointment, vec![]), 25).await;
    assert_eq!(all, appointment_ids(&visible));

    let patient = visible[0].patient.unwrap();
    let got = f
        .ids(
            &search(
                ResourceType::Appointment,
                vec![reference(
                    "patient",
                    ResourceType::Patient,
                    &format!("drchrono-{patient}"),
                )],
            ),
            25,
        )
        .await;
    assert_eq!(
        got,
        appointment_ids(visible.iter().filter(|a| a.patient == Some(patient)))
    );

    let doctor = visible[0].doctor;
    let got = f
        .ids(
            &search(
                ResourceType::Appointment,
                vec![reference(
                    "practitioner",
                    ResourceType::Practitioner,
                    &format!("drchrono-{doctor}"),
                )],
            ),
            25,
        )
        .await;
    assert_eq!(got, appointment_ids(visible.iter().filter(|a| a.doctor == doctor)));

    // An office's Location pushes down `office`; an exam room's widens to its office.
    let office = visible[0].office;
    let office_truth = appointment_ids(visible.iter().filter(|a| a.office == office));
    for location in [format!("drchrono-{office}"), format!("drchrono-{office}-room-1")] {
        let got = f
            .ids(
                &search(
                    ResourceType::Appointment,
                    vec![reference("location", ResourceType::Location, &location)],
                ),
                25,
            )
            .await;
        assert_eq!(got, office_truth, "{location}");
    }

    let got = f
        .ids(&search(ResourceType::Appointment, vec![token("status", "noshow")]), 25)
        .await;
    let noshow = appointment_ids(visible.iter().filter(|a| a.status == "No Show"));
    assert!(!noshow.is_empty());
    assert_eq!(got, noshow);
    // `booked` is two DrChrono statuses: not pushed, everything comes back for the gateway.
    let got = f
        .ids(&search(ResourceType::Appointment, vec![token("status", "booked")]), 50)
        .await;
    assert_eq!(got, all);

    // A reference to another source matches nothing here, without a vendor call.
    f.sim.reset_hits();
    let got = f
        .ids(
            &search(
                ResourceType::Appointment,
                vec![reference("patient", ResourceType::Patient, "zoom-9")],
            ),
            25,
        )
        .await;
    assert!(got.is_empty());
    assert_eq!(f.sim.hits_for("/api/appointments"), 0);
}

#[tokio::test]
async fn appointment_dates_become_vendor_windows() {
    let f = Fixture::new().await;
    let data = f.data();
    let visible = visible_appointments(&data);
    let day_of = |a: &sim::Appointment| NaiveDate::parse_from_str(&a.scheduled_time[..10], "%Y-%m-%d").unwrap();

    // One day → `date`.
    let day = day_of(visible[10]);
    let got = f
        .ids(
            &search(
                ResourceType::Appointment,
                vec![date("date", Prefix::Eq, &day.to_string())],
            ),
            25,
        )
        .await;
    assert_eq!(got, appointment_ids(visible.iter().filter(|a| day_of(a) == day)));

    // 250 days (more than DrChrono's 190-day window, reaching into the future) → two windows.
    let first = Utc::now().date_naive() - Duration::days(150);
    let end = first + Duration::days(250);
    f.sim.reset_hits();
    let got = f
        .ids(
            &search(
                ResourceType::Appointment,
                vec![
                    date("date", Prefix::Ge, &first.to_string()),
                    date("date", Prefix::Lt, &end.to_string()),
                ],
            ),
            250,
        )
        .await;
    let truth = appointment_ids(visible.iter().filter(|a| day_of(a) >= first && day_of(a) < end));
    assert!(!truth.is_empty());
    assert_eq!(got, truth);
    assert_eq!(f.sim.hits_for("/api/appointments"), 2, "one call per window");

    // An open-ended range cannot be windowed: everything is listed and nothing lost.
    let got = f
        .ids(
            &search(
                ResourceType::Appointment,
                vec![date("date", Prefix::Ge, &Utc::now().date_naive().to_string())],
            ),
            250,
        )
        .await;
    let today = Utc::now().date_naive();
    let upcoming = appointment_ids(visible.iter().filter(|a| day_of(a) >= today));
    assert!(got.is_superset(&upcoming));
}

#[tokio::test]
async fn document_searches_walk_notes_then_documents() {
    let f = Fixture::new().await;
    let data = f.data();
    let notes = set(data
        .clinical_notes
        .iter()
        .filter(|n| !n.archived)
        .map(|n| format!("drchrono-note-{}", n.id)));
    let docs = set(data
        .documents
        .iter()
        .filter(|d| !d.archived)
        .map(|d| format!("drchrono-doc-{}", d.id)));
    assert!(!notes.is_empty() && !docs.is_empty());

    let all = f.ids(&search(ResourceType::DocumentReference, vec![]), 6).await;
    assert_eq!(all, notes.union(&docs).cloned().collect());

    let patient = data.documents[0].patient;
    for name in ["patient", "subject"] {
        let got = f
            .ids(
                &search(
                    ResourceType::DocumentReference,
                    vec![reference(name, ResourceType::Patient, &format!("drchrono-{patient}"))],
                ),
                20,
            )
            .await;
        let truth: BTreeSet<String> = data
            .clinical_notes
            .iter()
            .filter(|n| !n.archived && n.patient == patient)
            .map(|n| format!("drchrono-note-{}", n.id))
            .chain(
                data.documents
                    .iter()
                    .filter(|d| !d.archived && d.patient == patient)
                    .map(|d| format!("drchrono-doc-{}", d.id)),
            )
            .collect();
        assert_eq!(got, truth, "{name}");
    }

    // author → the documents' doctor; notes are not narrowed (their author is their appointment's).
    let doctor = data.documents[0].doctor;
    let got = f
        .ids(
            &search(
                ResourceType::DocumentReference,
                vec![reference(
                    "author",
                    ResourceType::Practitioner,
                    &format!("drchrono-{doctor}"),
                )],
            ),
            20,
        )
        .await;
    let doctor_docs = set(data
        .documents
        .iter()
        .filter(|d| !d.archived && d.doctor == doctor)
        .map(|d| format!("drchrono-doc-{}", d.id)));
    assert_eq!(
        got.iter()
            .filter(|id| id.contains("-doc-"))
            .cloned()
            .collect::<BTreeSet<_>>(),
        doctor_docs
    );
    assert!(got.is_superset(&notes));
}

#[tokio::test]
async fn continuations_are_checked() {
    let f = Fixture::new().await;
    let request = search(ResourceType::Patient, vec![]);
    let first = f
        .adapter
        .search(&request, PageRequest { cursor: None, size: 5 })
        .await
        .unwrap();
    let next = first.next.expect("more than one page");
    assert!(next.0.contains("\"s\":\"patients\""), "{}", next.0);

    // A continuation of another search has expired.
    let appointments = search(ResourceType::Appointment, vec![]);
    let expired = AdapterError::ContinuationExpired { vendor: "drchrono" };
    let err = f
        .adapter
        .search(
            &appointments,
            PageRequest {
                cursor: Some(next.clone()),
                size: 5,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err, expired);

    // A forged link to another origin is never followed.
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let foreign = format!("http://{}", listener.local_addr().unwrap());
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = socket.shutdown().await;
        }
    });
    for forged in [
        format!(r#"{{"s":"patients","n":"{foreign}/api/patients?page=2"}}"#),
        format!(r#"{{"s":"patients","n":"{}/o/token/"}}"#, f.sim.base_url()),
        format!(r#"{{"s":"patients","n":"{}/api/doctors?page=2"}}"#, f.sim.base_url()),
        "not json".to_owned(),
    ] {
        let err = f
            .adapter
            .search(
                &request,
                PageRequest {
                    cursor: Some(Continuation(forged.clone())),
                    size: 5,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err, expired, "{forged}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_foreign_next_link_fails_the_search() {
    let f = Fixture::new().await;
    f.sim.set_faults(Faults {
        foreign_next_origin: Some("http://127.0.0.1:9".into()),
        ..Faults::default()
    });
    let err = f
        .adapter
        .search(
            &search(ResourceType::Patient, vec![]),
            PageRequest { cursor: None, size: 5 },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AdapterError::Unmappable { .. }), "{err:?}");
}

#[tokio::test]
async fn check_probes_the_credentials() {
    let f = Fixture::new().await;
    f.adapter.check().await.unwrap();
    let bad = Fixture::with(|c| c.refresh_token = Secret::new("wrong")).await;
    assert_eq!(
        bad.adapter.check().await.unwrap_err(),
        AdapterError::VendorAuth { vendor: "drchrono" }
    );
}

#[tokio::test]
async fn capabilities_name_what_is_pushed_down() {
    let f = Fixture::new().await;
    let caps = f.adapter.capabilities();
    for t in [
        ResourceType::Patient,
        ResourceType::Practitioner,
        ResourceType::Location,
        ResourceType::Appointment,
        ResourceType::DocumentReference,
    ] {
        assert!(caps.supports(t, Interaction::Read) && caps.supports(t, Interaction::SearchType));
    }
    assert!(!caps.supports(ResourceType::Encounter, Interaction::Read));
    let patient = caps.resource(ResourceType::Patient).unwrap();
    assert!(patient.pushdown.contains(&"family") && !patient.pushdown.contains(&"given"));
    let appointment = caps.resource(ResourceType::Appointment).unwrap();
    for p in ["patient", "practitioner", "location", "date", "status"] {
        assert!(appointment.pushdown.contains(&p), "{p}");
    }
    assert_eq!(f.adapter.source(), "drchrono");
    assert_eq!(f.adapter.account(), f.sim.config().client_id);
}

/// A vendor that answers with a record the mapping refuses: the search and the read fail as
/// Unmappable (never a silently shorter page), and the error carries no patient data.
#[tokio::test]
async fn unmappable_records_fail_loudly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let bad = r#"{"id": 1, "first_name": "Zelda", "date_of_birth": "1980-13-45", "gender": "Female"}"#;
                let body = if line.starts_with("POST /o/token/") {
                    r#"{"access_token":"a","refresh_token":"r2","expires_in":172800}"#.to_owned()
                } else if line.contains("/api/doctors") {
                    r#"{"next":null,"previous":null,"results":[]}"#.to_owned()
                } else if line.contains("/api/patients/1") {
                    bad.to_owned()
                } else {
                    format!(r#"{{"next":null,"previous":null,"results":[{bad}]}}"#)
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    let config =
        DrChronoConfig::new("id", "secret", "r1", "http://localhost/cb").with_base_url(Url::parse(&origin).unwrap());
    let adapter = DrChronoAdapter::new(config).unwrap();
    let err = adapter
        .search(
            &search(ResourceType::Patient, vec![]),
            PageRequest { cursor: None, size: 10 },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AdapterError::Unmappable { .. }), "{err:?}");
    let err = adapter.read(ResourceType::Patient, "1").await.unwrap_err();
    assert!(matches!(err, AdapterError::Unmappable { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("Zelda") && !shown.contains("1980-13-45"), "{shown}");
}

#[tokio::test]
async fn modifiers_that_cannot_be_pushed_down_widen() {
    let f = Fixture::new().await;
    let data = f.data();
    // `family:missing` cannot be sent to DrChrono: every patient comes back for the gateway.
    let request = search(
        ResourceType::Patient,
        vec![SearchParam {
            name: "family".into(),
            modifier: Some(Modifier::Missing),
            values: vec![SearchValue::Missing(true)],
        }],
    );
    assert_eq!(f.ids(&request, 50).await.len(), data.patients.len());
}

#[tokio::test]
async fn document_dates_push_down_to_notes() {
    let f = Fixture::new().await;
    let data = f.data();
    let notes: Vec<&sim::ClinicalNote> = data.clinical_notes.iter().filter(|n| !n.archived).collect();
    let docs = set(data
        .documents
        .iter()
        .filter(|d| !d.archived)
        .map(|d| format!("drchrono-doc-{}", d.id)));
    let note_ids = |it: &mut dyn Iterator<Item = &&sim::ClinicalNote>| -> BTreeSet<String> {
        it.map(|n| format!("drchrono-note-{}", n.id)).collect()
    };

    // A note's `date` is its update time (the appointment's verbose `clinical_note.updated_at`).
    let one = f
        .adapter
        .read(ResourceType::DocumentReference, &format!("note-{}", notes[0].id))
        .await
        .unwrap();
    let Resource::DocumentReference(doc) = one else {
        panic!()
    };
    assert!(doc.date.is_some(), "the note's date comes from its appointment");

    let mut updated: Vec<&str> = notes.iter().map(|n| n.updated_at.as_str()).collect();
    updated.sort();
    let bound = local(updated[updated.len() / 2]);
    let got = f
        .ids(
            &search(
                ResourceType::DocumentReference,
                vec![param(
                    "date",
                    SearchValue::Date(DateValue {
                        prefix: Prefix::Ge,
                        range: DateRange {
                            start: bound,
                            end: bound + Duration::seconds(1),
                        },
                    }),
                )],
            ),
            20,
        )
        .await;
    let later = note_ids(&mut notes.iter().filter(|n| local(&n.updated_at) >= bound));
    assert!(got.is_superset(&later), "no note updated after the bound is lost");
    assert!(
        got.is_superset(&docs),
        "documents are not filtered by `date` at DrChrono"
    );
    let got_notes = got.iter().filter(|id| id.contains("-note-")).count();
    assert!(got_notes < notes.len(), "the note filter was pushed down");

    // `period` is the appointment's time: the notes of that day.
    let appointment_day = |n: &sim::ClinicalNote| {
        data.appointments
            .iter()
            .find(|a| a.id == n.appointment.to_string())
            .map(|a| a.scheduled_time[..10].to_owned())
            .unwrap()
    };
    let day = appointment_day(notes[0]);
    let got = f
        .ids(
            &search(ResourceType::DocumentReference, vec![date("period", Prefix::Eq, &day)]),
            20,
        )
        .await;
    let that_day = note_ids(&mut notes.iter().filter(|n| appointment_day(n) == day));
    assert!(got.is_superset(&that_day) && !that_day.is_empty());
    assert!(got.iter().filter(|id| id.contains("-note-")).count() < notes.len());
}

#[tokio::test]
async fn malformed_ids_are_not_found_without_a_request() {
    let f = Fixture::new().await;
    let a = &f.adapter;
    for (t, native) in [
        (ResourceType::Patient, "abc"),
        (ResourceType::Patient, "012"),
        (ResourceType::Patient, "-1"),
        (ResourceType::Practitioner, "1.5"),
        (ResourceType::Location, "7-room-x"),
        (ResourceType::Appointment, "../patients/1"),
        (ResourceType::DocumentReference, "31"),
        (ResourceType::DocumentReference, "doc-x"),
    ] {
        assert_eq!(
            a.read(t, native).await.unwrap_err(),
            AdapterError::NotFound {
                resource_type: t,
                id: native.into()
            },
            "{t}/{native}"
        );
    }
    assert_eq!(f.sim.hits(), 0, "malformed ids never reach DrChrono");
}
