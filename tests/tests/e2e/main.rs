//! End to end: a FHIR client talks to the real gateway over loopback, which talks to the real
//! DrChrono simulator through the real DrChrono adapter. Expected results are computed from the
//! simulator's own dataset (its truth), never from the adapter.

// The security suite: the attacks the gateway refuses (`attacks.rs`, each asserting the refusal and
// that nothing was served or changed) and the OpenAPI document under schemathesis (`schemathesis.rs`).
mod attacks;
mod budget;
mod caching;
mod faults;
mod noa;
mod schemathesis;
mod smart;
mod zoom;

// The example backend client (`examples/backend_client.rs`), compiled once for the tests that use it.
#[allow(dead_code, clippy::all)]
#[path = "../../../examples/backend_client.rs"]
mod backend_client;

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::{Env, anchor, assert_valid_fhir, entries, id_set, ids, link, words};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use vendor_sim::drchrono::{DrChronoSimConfig, Faults};

fn set(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let s: BTreeSet<String> = ids.into_iter().collect();
    s.into_iter().collect()
}

fn dr(native: impl std::fmt::Display) -> String {
    format!("drchrono-{native}")
}

// --- search parameters -------------------------------------------------------------------------

#[tokio::test]
async fn patient_search_parameters_match_the_simulator_truth() {
    let env = Env::start().await;
    let data = env.sim.dataset();
    let pts = &data.patients;

    // family: FHIR starts-with on any word of the family name (DrChrono's filter is a wider "contains").
    let family = pts
        .iter()
        .map(|p| p.last_name.clone())
        .find(|n| pts.iter().filter(|p| &p.last_name == n).count() > 1)
        .unwrap_or_else(|| pts[0].last_name.clone());
    let stem: String = family.chars().take(3).collect();
    let want = set(pts
        .iter()
        .filter(|p| words(&p.last_name).iter().any(|w| w.starts_with(&stem.to_lowercase())))
        .map(|p| dr(p.id)));
    let got = set(ids(&env.all(&format!("/fhir/Patient?family={stem}&_count=4")).await));
    assert_eq!(got, want, "family={stem}");
    assert!(!got.is_empty());

    // family:exact
    let want = set(pts.iter().filter(|p| p.last_name == family).map(|p| dr(p.id)));
    assert_eq!(
        set(ids(&env.all(&format!("/fhir/Patient?family:exact={family}")).await)),
        want
    );
    assert!(
        env.all(&format!("/fhir/Patient?family:exact={}", family.to_uppercase()))
            .await
            .is_empty()
            || family == family.to_uppercase()
    );

    // given
    let given = pts[1].first_name.clone();
    let want = set(pts
        .iter()
        .filter(|p| {
            words(&p.first_name)
                .iter()
                .chain(words(&p.middle_name).iter())
                .any(|w| w.starts_with(&given.to_lowercase()))
        })
        .map(|p| dr(p.id)));
    let got = set(ids(&env.all(&format!("/fhir/Patient?given={given}")).await));
    assert!(got.contains(&dr(pts[1].id)));
    assert!(
        want.iter().all(|w| got.contains(w)),
        "every patient with that given name is found"
    );

    // name: any part of any name, OR across values
    let got = set(ids(&env
        .all(&format!(
            "/fhir/Patient?name={},{}",
            pts[2].last_name, pts[3].first_name
        ))
        .await));
    assert!(got.contains(&dr(pts[2].id)) && got.contains(&dr(pts[3].id)));

    // gender, with OR and :not
    let want_f = set(pts.iter().filter(|p| p.gender == "Female").map(|p| dr(p.id)));
    assert_eq!(set(ids(&env.all("/fhir/Patient?gender=female").await)), want_f);
    let want_fo = set(pts
        .iter()
        .filter(|p| p.gender == "Female" || p.gender == "Other")
        .map(|p| dr(p.id)));
    assert_eq!(set(ids(&env.all("/fhir/Patient?gender=female,other").await)), want_fo);
    let want_not_f = set(pts.iter().filter(|p| p.gender != "Female").map(|p| dr(p.id)));
    assert_eq!(set(ids(&env.all("/fhir/Patient?gender:not=female").await)), want_not_f);

    // birthdate: eq a day, and a prefix range (AND of two)
    let with_dob: Vec<_> = pts
        .iter()
        .filter(|p| p.date_of_birth.as_deref().is_some_and(|d| !d.is_empty()))
        .collect();
    let dob = with_dob[0].date_of_birth.clone().unwrap();
    let want = set(with_dob
        .iter()
        .filter(|p| p.date_of_birth.as_deref() == Some(dob.as_str()))
        .map(|p| dr(p.id)));
    assert_eq!(
        set(ids(&env.all(&format!("/fhir/Patient?birthdate={dob}")).await)),
        want
    );
    let want = set(with_dob
        .iter()
        .filter(|p| {
            let d = p.date_of_birth.as_deref().unwrap();
            ("1960-01-01".."1980-01-01").contains(&d)
        })
        .map(|p| dr(p.id)));
    assert_eq!(
        set(ids(&env
            .all("/fhir/Patient?birthdate=ge1960-01-01&birthdate=lt1980-01-01")
            .await)),
        want
    );
    let want = set(with_dob
        .iter()
        .filter(|p| p.date_of_birth.as_deref().unwrap().starts_with("197"))
        .map(|p| dr(p.id)));
    let got = set(ids(&env.all("/fhir/Patient?birthdate=ge1970&birthdate=le1979").await));
    assert_eq!(got, want);

    // email (case-insensitive) and phone / telecom (digits compared)
    let p = pts.iter().find(|p| !p.email.is_empty()).unwrap();
    let want = set(pts
        .iter()
        .filter(|q| q.email.eq_ignore_ascii_case(&p.email))
        .map(|q| dr(q.id)));
    assert_eq!(
        set(ids(&env
            .all(&format!("/fhir/Patient?email={}", p.email.to_uppercase()))
            .await)),
        want
    );
    let p = pts.iter().find(|p| !p.cell_phone.is_empty()).unwrap();
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let want = set(pts
        .iter()
        .filter(|q| {
            [&q.cell_phone, &q.home_phone, &q.office_phone]
                .iter()
                .any(|x| !x.is_empty() && digits(x) == digits(&p.cell_phone))
        })
        .map(|q| dr(q.id)));
    assert_eq!(
        set(ids(&env
            .all(&format!("/fhir/Patient?phone={}", digits(&p.cell_phone)))
            .await)),
        want
    );
    assert_eq!(
        set(ids(&env
            .all(&format!("/fhir/Patient?telecom={}", digits(&p.cell_phone)))
            .await)),
        want
    );

    // identifier (native id system, and the chart id) and _id
    let p = &pts[4];
    let got = ids(&env
        .all(&format!(
            "/fhir/Patient?identifier=urn:fhir-gateway:id:drchrono:patient|{}",
            p.id
        ))
        .await);
    assert_eq!(got, vec![dr(p.id)]);
    if !p.chart_id.is_empty() {
        assert!(ids(&env.all(&format!("/fhir/Patient?identifier={}", p.chart_id)).await).contains(&dr(p.id)));
    }
    let got = set(ids(&env
        .all(&format!("/fhir/Patient?_id={},{}", dr(pts[0].id), dr(pts[5].id)))
        .await));
    assert_eq!(got, set([dr(pts[0].id), dr(pts[5].id)]));

    // _lastUpdated: every patient was updated before the anchor's end of day.
    let all = env.all("/fhir/Patient?_lastUpdated=le2100-01-01").await;
    assert_eq!(all.len(), pts.len());
    assert!(env.all("/fhir/Patient?_lastUpdated=gt2100-01-01").await.is_empty());
}

#[tokio::test]
async fn practitioner_and_location_search_parameters() {
    let env = Env::start().await;
    let data = env.sim.dataset();
    let d = &data.doctors[0];
    let want = set(data
        .doctors
        .iter()
        .filter(|x| {
            words(&x.last_name)
                .iter()
                .any(|w| w.starts_with(&d.last_name.to_lowercase()))
        })
        .map(|x| dr(x.id)));
    assert_eq!(
        set(ids(&env
            .all(&format!("/fhir/Practitioner?family={}", d.last_name))
            .await)),
        want
    );
    assert!(ids(&env.all(&format!("/fhir/Practitioner?given={}", d.first_name)).await).contains(&dr(d.id)));
    assert!(ids(&env.all(&format!("/fhir/Practitioner?name={}", d.first_name)).await).contains(&dr(d.id)));
    let with_npi = data.doctors.iter().find(|x| !x.npi_number.is_empty()).unwrap();
    assert_eq!(
        ids(&env
            .all(&format!(
                "/fhir/Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|{}",
                with_npi.npi_number
            ))
            .await),
        vec![dr(with_npi.id)]
    );
    assert_eq!(
        ids(&env.all(&format!("/fhir/Practitioner?_id={}", dr(d.id))).await),
        vec![dr(d.id)]
    );

    // Offices and their exam rooms are Locations; rooms point at their office.
    let locations = env.all("/fhir/Location").await;
    let rooms: usize = data.offices.iter().map(|o| o.exam_rooms.len()).sum();
    assert_eq!(locations.len(), data.offices.len() + rooms);
    let o = &data.offices[0];
    let got = ids(&env.all(&format!("/fhir/Location?name:exact={}", o.name)).await);
    assert!(got.contains(&dr(o.id)));
    for room in locations.iter().filter(|l| l["partOf"].is_object()) {
        assert!(
            room["partOf"]["reference"]
                .as_str()
                .unwrap()
                .starts_with("Location/drchrono-")
        );
    }
    assert_eq!(
        ids(&env.all(&format!("/fhir/Location?_id={}", dr(o.id))).await),
        vec![dr(o.id)]
    );
}

fn visible_appointments(data: &vendor_sim::drchrono::Dataset) -> Vec<&vendor_sim::drchrono::wire::Appointment> {
    data.appointments
        .iter()
        .filter(|a| !a.appt_is_break && !a.deleted_flag && a.patient.is_some())
        .collect()
}

#[tokio::test]
async fn appointment_search_parameters_and_paging_to_the_end() {
    let env = Env::start().await;
    let data = env.sim.dataset();
    let appts = visible_appointments(&data);

    // Everything, paged: the count equals the simulator's truth and no appointment repeats.
    let all = env.all("/fhir/Appointment?_count=9").await;
    assert_eq!(all.len(), appts.len());
    assert_eq!(set(ids(&all)).len(), appts.len());
    assert_eq!(set(ids(&all)), set(appts.iter().map(|a| dr(&a.id))));

    // date: local calendar days in the practice time zone.
    let lo = (anchor() - chrono::Duration::days(10)).to_string();
    let hi = (anchor() + chrono::Duration::days(10)).to_string();
    let in_window =
        |a: &&&vendor_sim::drchrono::wire::Appointment| a.scheduled_time[..10] >= *lo && a.scheduled_time[..10] < *hi;
    let want = set(appts.iter().filter(in_window).map(|a| dr(&a.id)));
    let got = set(ids(&env
        .all(&format!("/fhir/Appointment?date=ge{lo}&date=lt{hi}&_count=20"))
        .await));
    assert_eq!(got, want);
    assert!(!want.is_empty());

    // patient + date + _include=Appointment:patient (the README example)
    let patient = appts
        .iter()
        .filter(in_window)
        .map(|a| a.patient.unwrap())
        .next()
        .unwrap();
    let url = format!(
        "/fhir/Appointment?date=ge{lo}&patient={}&_include=Appointment:patient",
        dr(patient)
    );
    let pages = env.pages(&url).await;
    let matches: Vec<Value> = pages.iter().flat_map(|b| entries(b, "match")).collect();
    let want = set(appts
        .iter()
        .filter(|a| a.patient == Some(patient) && a.scheduled_time[..10] >= *lo)
        .map(|a| dr(&a.id)));
    assert_eq!(set(ids(&matches)), want);
    let included: Vec<Value> = pages.iter().flat_map(|b| entries(b, "include")).collect();
    assert_eq!(ids(&included), vec![dr(patient)]);
    assert_eq!(included[0]["resourceType"], "Patient");

    // practitioner, status (with OR), actor, _id, identifier
    let doctor = appts[0].doctor;
    let want = set(appts.iter().filter(|a| a.doctor == doctor).map(|a| dr(&a.id)));
    assert_eq!(
        set(ids(&env
            .all(&format!(
                "/fhir/Appointment?practitioner=Practitioner/{}&_count=100",
                dr(doctor)
            ))
            .await)),
        want
    );
    assert_eq!(
        set(ids(&env
            .all(&format!("/fhir/Appointment?actor={}&_count=100", dr(doctor)))
            .await)),
        want
    );
    let want = set(appts
        .iter()
        .filter(|a| a.status == "No Show" || a.status == "Complete")
        .map(|a| dr(&a.id)));
    assert_eq!(
        set(ids(&env
            .all("/fhir/Appointment?status=noshow,fulfilled&_count=100")
            .await)),
        want
    );
    assert!(!want.is_empty());
    let want = set(appts
        .iter()
        .filter(|a| a.status == "Cancelled" || a.status == "Rescheduled")
        .map(|a| dr(&a.id)));
    assert_eq!(
        set(ids(&env.all("/fhir/Appointment?status=cancelled&_count=100").await)),
        want
    );
    let a = &appts[3];
    assert_eq!(
        ids(&env.all(&format!("/fhir/Appointment?_id={}", dr(&a.id))).await),
        vec![dr(&a.id)]
    );
    assert_eq!(
        ids(&env.all(&format!("/fhir/Appointment?identifier={}", a.id)).await),
        vec![dr(&a.id)]
    );

    // location: the office, whether or not the appointment names an exam room.
    let office = appts[0].office;
    let want = set(appts.iter().filter(|a| a.office == office).map(|a| dr(&a.id)));
    assert_eq!(
        set(ids(&env
            .all(&format!(
                "/fhir/Appointment?location=Location/{}&_count=100",
                dr(office)
            ))
            .await)),
        want
    );

    // _sort by date descending, across pages.
    let sorted = env
        .all(&format!(
            "/fhir/Appointment?date=ge{lo}&date=lt{hi}&_sort=-date&_count=7"
        ))
        .await;
    let starts: Vec<String> = sorted.iter().map(|r| r["start"].as_str().unwrap().to_owned()).collect();
    let instants: Vec<_> = starts
        .iter()
        .map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap())
        .collect();
    assert!(instants.windows(2).all(|w| w[0] >= w[1]), "sorted descending");
    assert_eq!(sorted.len(), appts.iter().filter(in_window).count());

    // Breaks and deleted appointments are not Appointments.
    let brk = data.appointments.iter().find(|a| a.appt_is_break).unwrap();
    assert_eq!(
        env.get(&format!("/fhir/Appointment/{}", dr(&brk.id))).await.status,
        StatusCode::NOT_FOUND
    );
    let deleted = data
        .appointments
        .iter()
        .find(|a| a.deleted_flag && !a.appt_is_break)
        .unwrap();
    let r = env.get(&format!("/fhir/Appointment/{}", dr(&deleted.id))).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
}

#[tokio::test]
async fn document_reference_search_and_includes() {
    let env = Env::start().await;
    let data = env.sim.dataset();
    let patient = data
        .clinical_notes
        .iter()
        .map(|n| n.patient)
        .find(|p| data.documents.iter().any(|d| d.patient == *p))
        .unwrap_or(data.clinical_notes[0].patient);
    let docs = env
        .all(&format!("/fhir/DocumentReference?patient={}&_count=10", dr(patient)))
        .await;
    let note_ids: Vec<String> = data
        .clinical_notes
        .iter()
        .filter(|n| n.patient == patient && !n.archived)
        .map(|n| dr(format!("note-{}", n.id)))
        .collect();
    let file_ids: Vec<String> = data
        .documents
        .iter()
        .filter(|d| d.patient == patient && !d.archived)
        .map(|d| dr(format!("doc-{}", d.id)))
        .collect();
    let (notes, files) = (note_ids.len(), file_ids.len());
    assert_eq!(set(ids(&docs)), set(note_ids.iter().chain(&file_ids).cloned()));
    assert!(
        docs.iter()
            .all(|d| d["subject"]["reference"] == format!("Patient/{}", dr(patient)))
    );

    let clinical = env
        .all(&format!(
            "/fhir/DocumentReference?subject=Patient/{}&category=clinical-note",
            dr(patient)
        ))
        .await;
    assert_eq!(clinical.len(), notes);
    for d in &clinical {
        assert_eq!(d["content"][0]["attachment"]["contentType"], "text/markdown");
        assert!(d["type"]["coding"][0]["system"] == "http://loinc.org");
    }
    let with_type = env
        .all(&format!(
            "/fhir/DocumentReference?patient={}&type=http://loinc.org|11506-3",
            dr(patient)
        ))
        .await;
    assert!(with_type.iter().all(|d| {
        d["type"]["coding"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "11506-3")
    }));

    // _include subject and author, _revinclude from Patient.
    let page = env
        .get(&format!(
            "/fhir/DocumentReference?patient={}&_include=DocumentReference:subject&_include=DocumentReference:author",
            dr(patient)
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let inc = entries(&page.body, "include");
    assert!(
        inc.iter()
            .any(|r| r["resourceType"] == "Patient" && r["id"] == dr(patient))
    );
    assert!(inc.iter().any(|r| r["resourceType"] == "Practitioner"));
    let rev = env
        .get(&format!(
            "/fhir/Patient?_id={}&_revinclude=DocumentReference:subject&_revinclude=Appointment:patient",
            dr(patient)
        ))
        .await;
    let inc = entries(&rev.body, "include");
    let appts = visible_appointments(&data)
        .iter()
        .filter(|a| a.patient == Some(patient))
        .count();
    assert_eq!(inc.iter().filter(|r| r["resourceType"] == "Appointment").count(), appts);
    assert_eq!(
        inc.iter().filter(|r| r["resourceType"] == "DocumentReference").count(),
        notes + files
    );

    // author: the note's appointment's doctor, the document's doctor.
    let doctor = data.doctors[0].id;
    let appt_doctor: std::collections::HashMap<String, i64> =
        data.appointments.iter().map(|a| (a.id.clone(), a.doctor)).collect();
    let want = set(data
        .clinical_notes
        .iter()
        .filter(|n| !n.archived && appt_doctor.get(&n.appointment.to_string()) == Some(&doctor))
        .map(|n| dr(format!("note-{}", n.id)))
        .chain(
            data.documents
                .iter()
                .filter(|d| !d.archived && d.doctor == doctor)
                .map(|d| dr(format!("doc-{}", d.id))),
        ));
    assert_eq!(
        set(ids(&env
            .all(&format!(
                "/fhir/DocumentReference?author=Practitioner/{}&_count=50",
                dr(doctor)
            ))
            .await)),
        want
    );
    assert!(!want.is_empty());

    // _id, identifier, encounter (DrChrono documents belong to no Encounter), period.
    let note = docs
        .iter()
        .find(|d| d["id"].as_str().unwrap().contains("note-"))
        .unwrap();
    let id = note["id"].as_str().unwrap();
    assert_eq!(
        ids(&env.all(&format!("/fhir/DocumentReference?_id={id}")).await),
        vec![id.to_owned()]
    );
    let ident = &note["identifier"][0];
    let by_ident = env
        .all(&format!(
            "/fhir/DocumentReference?identifier={}|{}",
            ident["system"].as_str().unwrap(),
            ident["value"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ids(&by_ident), vec![id.to_owned()]);
    assert!(
        env.all("/fhir/DocumentReference?encounter=Encounter/drchrono-1")
            .await
            .is_empty()
    );
    let start = note["context"]["period"]["start"].as_str().unwrap();
    let day = &start[..10];
    let in_period = env
        .all(&format!("/fhir/DocumentReference?period={day}&patient={}", dr(patient)))
        .await;
    assert!(ids(&in_period).contains(&id.to_owned()));

    // date and status
    let all = env.all("/fhir/DocumentReference?status=current&_count=50").await;
    assert!(all.iter().all(|d| d["status"] == "current"));
    let dated = env
        .all(&format!(
            "/fhir/DocumentReference?date=ge{}&_count=50",
            anchor() - chrono::Duration::days(30)
        ))
        .await;
    assert!(
        dated
            .iter()
            .all(|d| d["date"].as_str().unwrap()[..10] >= *(anchor() - chrono::Duration::days(31)).to_string())
    );
}

#[tokio::test]
async fn every_served_resource_is_valid_fhir() {
    let env = Env::start().await;
    for ty in [
        "Patient",
        "Practitioner",
        "Location",
        "Appointment",
        "DocumentReference",
    ] {
        let all = env.all(&format!("/fhir/{ty}?_count=100")).await;
        assert!(!all.is_empty(), "{ty}");
        for r in &all {
            assert_eq!(r["resourceType"], ty);
            assert_valid_fhir(r);
            assert_eq!(r["meta"]["source"], "urn:fhir-gateway:source:drchrono");
        }
        // A read gives the same resource as the search did.
        let first = &all[0];
        let read = env.get(&format!("/fhir/{ty}/{}", first["id"].as_str().unwrap())).await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(&read.body, first);
    }
}

// --- handling, paging links, errors -----------------------------------------------------------

#[tokio::test]
async fn strict_and_lenient_handling() {
    let env = Env::start().await;
    let lenient = env.get("/fhir/Patient?shoe-size=9&_count=2").await;
    assert_eq!(lenient.status, StatusCode::OK);
    let outcome = entries(&lenient.body, "outcome");
    assert_eq!(outcome.len(), 1);
    assert!(
        outcome[0]["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("shoe-size")
    );
    assert_eq!(entries(&lenient.body, "match").len(), 2);
    let strict = env
        .request(
            Method::GET,
            "/fhir/Patient?shoe-size=9",
            &[("Prefer", "handling=strict")],
        )
        .await;
    assert_eq!(strict.status, StatusCode::BAD_REQUEST);
    assert_eq!(strict.body["issue"][0]["expression"][0], "shoe-size");
    // POST _search gives the same answer as GET.
    let form = env
        .http
        .post(format!("{}/fhir/Appointment/_search", env.gw.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("status=noshow&_count=100")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let get = env.get("/fhir/Appointment?status=noshow&_count=100").await;
    assert_eq!(id_set(&entries(&form, "match")), id_set(&entries(&get.body, "match")));
}

#[tokio::test]
async fn paging_links_are_signed_and_expire() {
    let env = Env::start_with(
        DrChronoSimConfig::small(7, anchor()),
        |_| {},
        |o| o.link_ttl = Duration::from_secs(1),
    )
    .await;
    let first = env.get("/fhir/Patient?_count=3").await;
    let next = link(&first.body, "next").unwrap();
    assert!(next.contains("_cursor="));
    assert!(
        !next.contains("127.0.0.1:") || next.starts_with(&env.gw.base_url),
        "links point at the gateway"
    );
    let forged = next.replacen("_cursor=", "_cursor=e30", 1);
    let r = env.get(&forged).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = env.get(&next).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.body["issue"][0]["code"], "expired");
}

#[tokio::test]
async fn client_errors_are_operation_outcomes() {
    let env = Env::start().await;
    for (method, path, status) in [
        (Method::GET, "/fhir/Patient/drchrono-99999999", 404),
        (Method::GET, "/fhir/Patient/drchrono-notanumber", 404),
        (Method::GET, "/fhir/Observation?code=x", 404),
        (Method::GET, "/fhir/Patient?birthdate=31-12-1990", 400),
        (Method::GET, "/fhir/Appointment?date=gtyesterday", 400),
        (Method::GET, "/fhir/Patient?_count=many", 400),
        (Method::DELETE, "/fhir/Patient/drchrono-1", 405),
        (Method::PATCH, "/fhir/Appointment/drchrono-1", 405),
        (Method::GET, "/fhir/Patient?_format=application/fhir%2Bxml", 406),
    ] {
        let r = env.request(method.clone(), path, &[]).await;
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.body);
        assert_eq!(r.body["resourceType"], "OperationOutcome", "{method} {path}");
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/fhir+json")
        );
    }
    let r = env
        .request(Method::GET, "/fhir/Patient", &[("Accept", "application/fhir+xml")])
        .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn vendor_failures_become_502_503_504_and_429() {
    let env = Env::start_with(
        DrChronoSimConfig::small(7, anchor()),
        |c| {
            c.request_timeout = Duration::from_millis(400);
            // Each fault as one answer maps: no retries, and no breaker opened by the faults before.
            c.resilience.max_retries = 0;
            c.resilience.breaker_failures = 0;
        },
        |_| {},
    )
    .await;
    // Warm the adapter (token, doctors' time zones) so each fault below hits the request itself.
    assert_eq!(env.get("/fhir/Patient?_count=1").await.status, StatusCode::OK);

    env.sim.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    let r = env.get("/fhir/Patient?family=a").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    env.sim.set_faults(Faults {
        truncated_rate: 1.0,
        ..Faults::default()
    });
    let patient = env.sim.dataset().patients[0].id;
    assert_eq!(
        env.get(&format!("/fhir/Patient/{}", dr(patient))).await.status,
        StatusCode::BAD_GATEWAY
    );

    env.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let r = env.get("/fhir/Practitioner").await;
    assert!(
        r.status == StatusCode::SERVICE_UNAVAILABLE || r.status == StatusCode::BAD_GATEWAY,
        "{}",
        r.status
    );
    assert_eq!(r.body["resourceType"], "OperationOutcome");

    env.sim.set_faults(Faults {
        latency: Duration::from_millis(1500),
        ..Faults::default()
    });
    let r = env.get("/fhir/Patient?_count=1").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);

    env.sim.set_faults(Faults::default());
    env.sim.set_hourly_rate_limit(0);
    let r = env.get("/fhir/Patient?_count=1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry));
    let text = r.body.to_string();
    assert!(
        !text.contains(&env.sim.config().client_secret) && !text.contains("Bearer"),
        "no credentials in errors"
    );
}

#[tokio::test]
async fn vendor_tokens_are_refreshed_and_expired_ones_retried() {
    let mut sim = DrChronoSimConfig::small(7, anchor());
    sim.access_token_ttl = Duration::from_secs(1);
    let env = Env::start_with(sim, |_| {}, |_| {}).await;
    assert_eq!(env.get("/fhir/Patient?_count=1").await.status, StatusCode::OK);
    let grants = env.sim.token_grants();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(env.get("/fhir/Patient?_count=1").await.status, StatusCode::OK);
    assert!(env.sim.token_grants() > grants, "the expired token was refreshed");
    // Tokens revoked at the vendor: one 401, one refresh, the request still succeeds.
    let grants = env.sim.token_grants();
    env.sim.expire_access_tokens();
    assert_eq!(env.get("/fhir/Practitioner").await.status, StatusCode::OK);
    assert!(env.sim.token_grants() > grants);
}

#[tokio::test]
async fn a_next_url_on_a_foreign_host_is_refused() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    // A foreign server that counts what reaches it.
    let hits = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let foreign = format!("http://{}", listener.local_addr().unwrap());
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((_sock, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut sim = DrChronoSimConfig::small(7, anchor());
    sim.faults.foreign_next_origin = Some(foreign);
    let env = Env::start_with(sim, |c| c.page_size = 5, |_| {}).await;
    // 30 patients at 5 per vendor page: the second vendor page is behind the foreign `next`.
    let r = env.get("/fhir/Patient?_count=20").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was sent to the foreign host");
}

// --- operations endpoints ----------------------------------------------------------------------

#[tokio::test]
async fn metadata_health_metrics_and_docs() {
    let env = Env::start().await;
    let m = env.get("/fhir/metadata").await;
    assert_eq!(m.status, StatusCode::OK);
    assert_eq!(m.body["resourceType"], "CapabilityStatement");
    assert_eq!(m.body["fhirVersion"], "4.0.1");
    let types: Vec<&str> = m.body["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Patient",
            "Practitioner",
            "Location",
            "Appointment",
            "DocumentReference"
        ]
    );
    assert!(m.body["rest"][0]["documentation"].as_str().unwrap().contains("_count"));
    assert_valid_fhir(&m.body);

    assert_eq!(env.get("/healthz").await.status, StatusCode::OK);
    let ready = env.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["sources"]["drchrono"], "ok");
    env.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(env.get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    env.sim.set_faults(Faults::default());

    let _ = env.get("/fhir/Patient?_count=1").await;
    let text = env.metrics().await;
    assert!(text.contains("fhir_gateway_http_requests_total{method=\"GET\",route=\"/fhir/{type}\",status=\"200\"}"));
    assert!(text.contains("fhir_gateway_vendor_calls_total{source=\"drchrono\",op=\"search\",outcome=\"ok\"}"));
    assert!(text.contains("fhir_gateway_vendor_call_duration_seconds_bucket"));
    // The DrChrono client's resilience: its breaker closed again, its hourly budget (the
    // simulator's limit) partly used.
    assert!(
        text.contains("fhir_gateway_vendor_breaker_state{source=\"drchrono\"} 0"),
        "{text}"
    );
    assert!(text.contains("fhir_gateway_vendor_retries_total{source=\"drchrono\"}"));
    assert!(text.contains("fhir_gateway_vendor_budget_limit{source=\"drchrono\",label=\"hourly\"} 500"));
    let remaining = text
        .lines()
        .find_map(|l| l.strip_prefix("fhir_gateway_vendor_budget_remaining{source=\"drchrono\",label=\"hourly\"} "))
        .and_then(|v| v.parse::<u32>().ok())
        .expect("the hourly budget's remaining calls");
    assert!(remaining < 500, "{remaining}");

    let api = env.get("/openapi.json").await;
    assert_eq!(api.status, StatusCode::OK);
    assert_eq!(api.body["openapi"], "3.1.0");
    assert!(api.body["paths"]["/fhir/Patient"]["get"].is_object());
    let docs = env.http.get(format!("{}/docs/", env.gw.base_url)).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"));
    let css = env
        .http
        .get(format!("{}/docs/swagger-ui.css", env.gw.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK, "Swagger UI assets are served locally");
}

#[tokio::test]
async fn the_demo_serves_the_readme_examples() {
    let demo = gateway::demo::start_demo("127.0.0.1:0".parse().unwrap(), DrChronoSimConfig::demo(2026, anchor()))
        .await
        .unwrap();
    let data = demo.sim.dataset();
    assert!(data.patients.len() >= 200 && data.appointments.len() >= 1000);
    let base = demo.gateway.fhir_base().to_owned();
    let family = &data.patients[0].last_name;
    // The demo is behind SMART: nothing without a token; the demo backend client gets one.
    let open = reqwest::Client::new()
        .get(format!("{base}/Patient?family={family}"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), StatusCode::UNAUTHORIZED);
    let token: Value = reqwest::Client::new()
        .post(format!("{}/auth/token", demo.gateway.base_url))
        .basic_auth("demo-backend", Some("demo-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "system/*.rs")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token["access_token"].as_str().unwrap())
            .parse()
            .unwrap(),
    );
    let http = reqwest::Client::builder().default_headers(headers).build().unwrap();
    let b: Value = http
        .get(format!("{base}/Patient?family={family}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!entries(&b, "match").is_empty());
    let patient = visible_appointments(&data)
        .iter()
        .find(|a| a.scheduled_time[..10] >= *anchor().to_string())
        .unwrap()
        .patient
        .unwrap();
    let url = format!(
        "{base}/Appointment?date=ge{}&patient=drchrono-{patient}&_include=Appointment:patient",
        anchor()
    );
    let b: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    assert!(!entries(&b, "match").is_empty());
    assert_eq!(ids(&entries(&b, "include")), vec![dr(patient)]);
}

/// Swagger UI at `/docs` renders the API in a real browser with no network but loopback: its
/// assets are served by the gateway itself. Needs Debian's `chromium` (`.ci/run` installs it).
#[tokio::test]
async fn swagger_ui_renders_offline_in_headless_chromium() {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        panic!("this test needs Chromium: apt-get install chromium (see README)");
    };
    let env = Env::start().await;
    let url = format!("{}/docs/", env.gw.base_url);
    let profile = std::env::temp_dir().join(format!("fhir-gw-chromium-{}", std::process::id()));
    let dom = tokio::task::spawn_blocking(move || {
        std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=15000",
                &format!("--user-data-dir={}", profile.display()),
                "--dump-dom",
                &url,
            ])
            .output()
    })
    .await
    .unwrap()
    .expect("chromium runs");
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains("opblock"),
        "Swagger UI rendered no operations:\n{}",
        &html[..html.len().min(2000)]
    );
    for text in ["/fhir/Patient", "/fhir/Appointment/{id}", "FHIR facade gateway"] {
        assert!(html.contains(text), "the rendered page lacks {text}");
    }
}

/// DrChrono verifies the gateway's webhook URL (`?msg=` → HMAC) and then delivers signed events,
/// which become change events; a forged call is refused and produces none.
#[tokio::test]
async fn drchrono_webhooks_are_verified_and_forged_ones_refused() {
    let env = Env::start_with_zoom(vendor_sim::zoom::ZoomSimConfig::small, |_| {}).await;
    let mut changes = env.gw.state.changes.subscribe();
    // The practice verified the URL at start-up; again now, explicitly.
    assert!(env.sim.verify_webhook_url().await);
    let appointment = visible_appointments(&env.sim.dataset())[0].id.clone();
    env.sim.fire_webhook(
        "APPOINTMENT_MODIFY",
        serde_json::json!({"id": appointment, "status": "Arrived"}),
    );
    assert!(env.sim.wait_for_webhooks(std::time::Duration::from_secs(10)).await);
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), changes.recv())
        .await
        .expect("a change event")
        .unwrap();
    assert_eq!(event.source, "drchrono");
    assert_eq!(event.resource_type, adapter::ResourceType::Appointment);
    assert_eq!(event.native_id, appointment);
    assert_eq!(event.kind, adapter::ChangeKind::Updated);

    // Forged: a wrong or missing signature is 401 and nothing is published.
    for signature in [Some("not-the-secret"), None] {
        let mut req = env
            .http
            .post(format!("{}/webhooks/drchrono", env.gw.base_url))
            .header("x-drchrono-event", "PATIENT_MODIFY")
            .header("content-type", "application/json")
            .body(serde_json::json!({"receiver": {"id": 1}, "object": {"id": 1}}).to_string());
        if let Some(s) = signature {
            req = req.header("x-drchrono-signature", s);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), changes.recv())
            .await
            .is_err(),
        "a refused call publishes nothing"
    );
}

/// With the cache on, 200 concurrent cold reads of one patient make one vendor call, and a DrChrono
/// webhook about that patient makes the next read go to the vendor again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_reads_collapse_and_webhooks_evict() {
    let env = Env::start_with_zoom(vendor_sim::zoom::ZoomSimConfig::small, |o| {
        o.cache = Some(Default::default())
    })
    .await;
    let natives: Vec<String> = env.sim.dataset().patients.iter().map(|p| p.id.to_string()).collect();
    // A patient whose vendor path is no prefix of another's, so its hits count alone.
    let native = natives
        .iter()
        .find(|id| natives.iter().filter(|other| other.starts_with(id.as_str())).count() == 1)
        .expect("a patient")
        .clone();
    let vendor_path = format!("/api/patients/{native}");
    let path = format!("/fhir/Patient/{}", dr(&native));
    env.sim.reset_hits();
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (http, url) = (env.http.clone(), format!("{}{path}", env.gw.base_url));
        reads.spawn(async move {
            let r = http.get(url).send().await.expect("the gateway answers");
            (r.status(), r.json::<Value>().await.unwrap_or_default())
        });
    }
    while let Some(answer) = reads.join_next().await {
        let (status, body) = answer.expect("the read task ends");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["id"], dr(&native));
    }
    assert_eq!(
        env.sim.hits_for(&vendor_path),
        1,
        "one vendor read for 200 concurrent ones"
    );
    assert_eq!(env.get(&path).await.status, StatusCode::OK);
    assert_eq!(env.sim.hits_for(&vendor_path), 1, "a warm read makes no vendor call");

    env.sim.fire_webhook(
        "PATIENT_MODIFY",
        serde_json::json!({"id": native.parse::<i64>().unwrap()}),
    );
    assert!(env.sim.wait_for_webhooks(Duration::from_secs(10)).await);
    // The change event reaches the cache asynchronously: read until it has.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while env.sim.hits_for(&vendor_path) == 1 && std::time::Instant::now() < deadline {
        assert_eq!(env.get(&path).await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        env.sim.hits_for(&vendor_path),
        2,
        "the read after the webhook went to the vendor"
    );
    assert_eq!(env.get(&path).await.status, StatusCode::OK);
    assert_eq!(env.sim.hits_for(&vendor_path), 2, "and is cached again");
    // The cache's figures are in /metrics.
    let metrics = env.metrics().await;
    for series in [
        "fhir_gateway_cache_hits_total{source=\"drchrono\",type=\"Patient\"}",
        "fhir_gateway_cache_bytes{source=\"drchrono\",type=\"Patient\"}",
    ] {
        assert!(metrics.contains(series), "{series} in /metrics");
    }
}

/// With the cache on, a search page is served as it was rendered until something it may hold
/// changes: the same Bundle (to its `meta.lastUpdated`) without a vendor call, then, after a DrChrono
/// webhook about a patient, a page computed again from the vendor. Its paging link works from the
/// cached page too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_search_pages_are_served_whole_until_a_webhook_changes_them() {
    let env = Env::start_with_zoom(vendor_sim::zoom::ZoomSimConfig::small, |o| {
        o.cache = Some(Default::default())
    })
    .await;
    let path = "/fhir/Patient?_count=3";
    let first = env.get(path).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["entry"].as_array().map(Vec::len), Some(3));
    env.sim.reset_hits();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = env.get(path).await;
    assert_eq!(
        again.body, first.body,
        "the page as it was rendered, to its lastUpdated"
    );
    assert_eq!(env.sim.hits_for("/api/"), 0, "no vendor call");
    let next = link(&again.body, "next").expect("a next link");
    let second = env.get(&next).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert!(second.body["entry"].as_array().is_some_and(|e| !e.is_empty()));

    let native = env.sim.dataset().patients[0].id;
    env.sim
        .fire_webhook("PATIENT_MODIFY", serde_json::json!({"id": native}));
    assert!(env.sim.wait_for_webhooks(Duration::from_secs(10)).await);
    // The change event reaches the caches asynchronously: search until it has.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut fresh = env.get(path).await;
    while fresh.body == first.body && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        fresh = env.get(path).await;
    }
    assert_eq!(fresh.status, StatusCode::OK);
    assert_ne!(
        fresh.body["meta"]["lastUpdated"], first.body["meta"]["lastUpdated"],
        "rendered again"
    );
    assert!(
        env.sim.hits_for("/api/patients") > 0,
        "the page after the webhook asked the vendor"
    );
    let listed = |b: &Value| -> Vec<Value> {
        b["entry"]
            .as_array()
            .map(|e| e.iter().map(|x| x["resource"]["id"].clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        listed(&fresh.body),
        listed(&first.body),
        "the same patients, read again"
    );
}
