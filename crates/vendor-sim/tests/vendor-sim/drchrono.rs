//! The DrChrono simulator over real loopback HTTP, checked against the vendor doc and against
//! its own dataset.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::Value;
use vendor_sim::drchrono::wire::{self, Appointment, Patient};
use vendor_sim::drchrono::{
    APPOINTMENT_STATUSES, DrChronoSim, DrChronoSimConfig, ETHNICITIES, Faults, RACES, SimHandle,
};

fn anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, 14).expect("valid date")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

async fn spawn(config: DrChronoSimConfig) -> SimHandle {
    DrChronoSim::new(config)
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("spawn")
}

/// A running small simulator and an access token obtained with the initial refresh token.
struct Env {
    sim: SimHandle,
    http: reqwest::Client,
    token: String,
}

impl Env {
    async fn new(config: DrChronoSimConfig) -> Self {
        let sim = spawn(config).await;
        let http = client();
        let refresh = sim.config().initial_refresh_token.clone();
        let token = refresh_grant(&sim, &http, &refresh).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
        Env { sim, http, token }
    }

    async fn small() -> Self {
        Self::new(DrChronoSimConfig::small(11, anchor())).await
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.sim.base_url())
    }

    async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.http
            .get(self.url(path_and_query))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("send")
    }

    async fn get_json(&self, path_and_query: &str) -> (StatusCode, Value) {
        let response = self.get(path_and_query).await;
        let status = response.status();
        let body = response.json::<Value>().await.expect("JSON body");
        (status, body)
    }

    /// Walks every page from `path_and_query`, checking each `next` is absolute and on the
    /// simulator's origin, and returns all results.
    async fn all(&self, path_and_query: &str) -> Vec<Value> {
        let mut url = self.url(path_and_query);
        let mut results = Vec::new();
        for _ in 0..1000 {
            let response = self.http.get(&url).bearer_auth(&self.token).send().await.expect("send");
            assert_eq!(response.status(), StatusCode::OK, "{url}");
            let page: Value = response.json().await.expect("JSON page");
            results.extend(page["results"].as_array().expect("results").iter().cloned());
            match page["next"].as_str() {
                Some(next) => {
                    assert!(
                        next.starts_with(&format!("{}/api/", self.sim.base_url())),
                        "next is absolute and on the simulator: {next}"
                    );
                    url = next.to_owned();
                }
                None => return results,
            }
        }
        panic!("pagination did not end");
    }

    /// Ids (as JSON values rendered to strings) of every result.
    async fn ids(&self, path_and_query: &str) -> Vec<String> {
        self.all(path_and_query).await.iter().map(id_of).collect()
    }
}

fn id_of(value: &Value) -> String {
    match &value["id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn refresh_grant(sim: &SimHandle, http: &reqwest::Client, refresh: &str) -> Value {
    let config = sim.config();
    let response = http
        .post(format!("{}/o/token/", sim.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
            ("refresh_token", refresh),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("token JSON")
}

fn active_patients(patients: &[Patient]) -> impl Iterator<Item = &Patient> {
    patients.iter().filter(|p| p.patient_status == "A")
}

fn date_part(timestamp: &str) -> &str {
    &timestamp[..10]
}

// ---------------------------------------------------------------------------------------------
// Dataset

#[test]
fn same_seed_same_dataset_other_seed_other_dataset() {
    let a = DrChronoSim::new(DrChronoSimConfig::small(5, anchor())).dataset();
    let b = DrChronoSim::new(DrChronoSimConfig::small(5, anchor())).dataset();
    let c = DrChronoSim::new(DrChronoSimConfig::small(6, anchor())).dataset();
    let json = |d: &vendor_sim::drchrono::Dataset| {
        serde_json::to_string(&(
            &d.patients,
            &d.doctors,
            &d.offices,
            &d.appointments,
            &d.clinical_notes,
            &d.documents,
        ))
        .expect("serialize")
    };
    assert_eq!(json(&a), json(&b));
    assert_eq!(a, b);
    assert_ne!(json(&a), json(&c));
}

#[test]
fn demo_practice_is_large_coherent_and_covers_every_code() {
    let config = DrChronoSimConfig::demo(2025, anchor());
    let data = DrChronoSim::new(config.clone()).dataset();
    assert!(data.patients.len() >= 200);
    assert!(data.doctors.len() >= 5);
    assert!(data.appointments.len() >= 1000);
    assert!(data.clinical_notes.len() >= 300, "{}", data.clinical_notes.len());
    assert!(data.documents.len() >= 200);
    let active_offices: Vec<_> = data.offices.iter().filter(|o| !o.archived).collect();
    assert!(active_offices.len() >= 3);
    assert!(data.offices.iter().all(|o| o.exam_rooms.len() >= 2));
    assert!(data.offices.iter().any(|o| o.archived));

    for status in APPOINTMENT_STATUSES {
        assert!(
            data.appointments.iter().any(|a| a.status == *status),
            "status {status:?} occurs"
        );
    }
    for race in RACES {
        assert!(data.patients.iter().any(|p| p.race == *race), "race {race}");
    }
    for ethnicity in ETHNICITIES {
        assert!(data.patients.iter().any(|p| p.ethnicity == *ethnicity));
    }
    for language in ["eng", "spa", "zho", "vie", "fra", "deu", "ara", "rus", "blank", ""] {
        assert!(
            data.patients.iter().any(|p| p.preferred_language == language),
            "language {language:?}"
        );
    }
    for status in ["A", "I", "D"] {
        assert!(data.patients.iter().any(|p| p.patient_status == status));
    }
    for gender in ["Male", "Female", "Other"] {
        assert!(data.patients.iter().any(|p| p.gender == gender));
    }
    let family = |name: &str| data.patients.iter().filter(|p| p.last_name == name).count();
    assert!(family("Nguyen") >= 3 && family("Smith") >= 3);
    assert!(family("O'Brien") >= 1 && family("Núñez") >= 1);

    // Doctors: valid NPIs (Luhn over 80840 + NPI), some with only a group NPI.
    assert!(data.doctors.iter().all(|d| d.timezone == config.timezone));
    assert!(
        data.doctors
            .iter()
            .any(|d| d.npi_number.is_empty() && !d.group_npi_number.is_empty())
    );
    for d in data.doctors.iter().filter(|d| !d.npi_number.is_empty()) {
        assert!(npi_is_valid(&d.npi_number), "{}", d.npi_number);
    }

    // Appointments: breaks, deletions, references, office hours and the time span.
    assert!(data.appointments.iter().any(|a| a.appt_is_break && a.patient.is_none()));
    assert!(data.appointments.iter().any(|a| a.deleted_flag));
    let first_day = anchor() - chrono::Days::new(125);
    let last_day = anchor() + chrono::Days::new(95);
    let mut previous_id = 0i64;
    for a in &data.appointments {
        let id: i64 = a.id.parse().expect("numeric id");
        assert!(id > previous_id, "appointments are in id order");
        previous_id = id;
        let office = data.offices.iter().find(|o| o.id == a.office).expect("office");
        assert!(office.exam_rooms.iter().any(|r| r.index == a.exam_room));
        assert!(data.doctors.iter().any(|d| d.id == a.doctor));
        if let Some(patient) = a.patient {
            assert!(data.patients.iter().any(|p| p.id == patient));
        }
        assert!((10..=60).contains(&a.duration));
        let day = NaiveDate::parse_from_str(date_part(&a.scheduled_time), "%Y-%m-%d").expect("date");
        assert!(first_day <= day && day <= last_day, "{}", a.scheduled_time);
        let time = &a.scheduled_time[11..];
        assert!(office.start_time.as_str() <= time && time < office.end_time.as_str());
        assert!(a.created_at <= a.updated_at);
    }
    // Clinical notes belong to past, non-break appointments of the same patient.
    for note in &data.clinical_notes {
        let a = data
            .appointments
            .iter()
            .find(|a| a.id == note.appointment.to_string())
            .expect("note's appointment");
        assert!(!a.appt_is_break && a.patient == Some(note.patient));
        assert!(date_part(&a.scheduled_time) <= "2025-03-14");
        assert_eq!(note.archived, a.deleted_flag);
        assert!(a.clinical_note.is_some());
        assert!(note.clinical_note_sections.iter().all(|s| !s.values.is_empty()));
    }
    for document in &data.documents {
        assert!(data.patients.iter().any(|p| p.id == document.patient));
        assert!(data.doctors.iter().any(|d| d.id == document.doctor));
    }
}

#[test]
fn degenerate_counts_do_not_panic() {
    let mut config = DrChronoSimConfig::small(9, anchor());
    (config.patients, config.doctors, config.offices) = (0, 0, 0);
    (config.appointments, config.clinical_notes, config.documents) = (10, 10, 10);
    let data = DrChronoSim::new(config).dataset();
    assert_eq!((data.doctors.len(), data.offices.len()), (1, 1));
    assert!(data.appointments.iter().all(|a| a.appt_is_break));
    assert!(data.clinical_notes.is_empty() && data.documents.is_empty());
}

fn npi_is_valid(npi: &str) -> bool {
    let digits: Vec<u32> = format!("80840{npi}").chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 1 { (d * 2) / 10 + (d * 2) % 10 } else { *d })
        .sum();
    npi.len() == 10 && sum.is_multiple_of(10)
}

// ---------------------------------------------------------------------------------------------
// OAuth

#[tokio::test]
async fn authorization_code_flow() {
    let sim = spawn(DrChronoSimConfig::small(1, anchor())).await;
    let http = client();
    let config = sim.config().clone();
    let base = sim.base_url();

    let response = http
        .get(format!("{base}/o/authorize"))
        .query(&[
            ("client_id", config.client_id.as_str()),
            ("redirect_uri", config.redirect_uri.as_str()),
            ("scope", "patients:read calendar:read"),
            ("state", "xyz 1"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = url::Url::parse(response.headers()["location"].to_str().expect("ascii")).expect("absolute Location");
    assert!(location.as_str().starts_with(&config.redirect_uri));
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query.get("state").map(String::as_str), Some("xyz 1"));
    let code = query.get("code").expect("code").clone();

    let exchange = |code: String, redirect_uri: String| {
        let http = http.clone();
        let config = config.clone();
        let base = base.clone();
        async move {
            http.post(format!("{base}/o/token/"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", config.client_id.as_str()),
                    ("client_secret", config.client_secret.as_str()),
                    ("redirect_uri", redirect_uri.as_str()),
                    ("code", code.as_str()),
                ])
                .send()
                .await
                .expect("send")
        }
    };
    let response = exchange(code.clone(), config.redirect_uri.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.expect("JSON");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 172_800);
    assert_eq!(tokens["scope"], "patients:read calendar:read");
    assert!(tokens["refresh_token"].as_str().is_some_and(|t| t.len() >= 20));
    let access = tokens["access_token"].as_str().expect("access token");
    assert!(!access.contains(&config.client_secret));
    let api = http
        .get(format!("{base}/api/doctors"))
        .bearer_auth(access)
        .send()
        .await
        .expect("send");
    assert_eq!(api.status(), StatusCode::OK);

    // Codes are single-use.
    let again = exchange(code, config.redirect_uri.clone()).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let error: Value = again.json().await.expect("JSON");
    assert_eq!(error["error"], "invalid_grant");
    assert_eq!(sim.token_grants(), 1);

    // Unknown client or redirect URI: 400, no redirect.
    for (client_id, redirect_uri) in [
        ("someone-else", config.redirect_uri.as_str()),
        (config.client_id.as_str(), "https://evil.example/cb"),
    ] {
        let response = http
            .get(format!("{base}/o/authorize"))
            .query(&[("client_id", client_id), ("redirect_uri", redirect_uri)])
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn token_endpoint_refuses_bad_requests() {
    let sim = spawn(DrChronoSimConfig::small(1, anchor())).await;
    let http = client();
    let config = sim.config().clone();
    let token_url = format!("{}/o/token/", sim.base_url());
    let refresh = config.initial_refresh_token.as_str();

    // JSON instead of a form.
    let response = http
        .post(&token_url)
        .json(&serde_json::json!({
            "grant_type": "refresh_token",
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "refresh_token": refresh,
        }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Wrong secret.
    let response = http
        .post(&token_url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", "wrong"),
            ("refresh_token", refresh),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_client");

    // Unknown code, unsupported grant.
    for (grant, extra) in [("authorization_code", ("code", "nope")), ("password", ("x", "y"))] {
        let response = http
            .post(&token_url)
            .form(&[
                ("grant_type", grant),
                ("client_id", config.client_id.as_str()),
                ("client_secret", config.client_secret.as_str()),
                ("redirect_uri", config.redirect_uri.as_str()),
                extra,
            ])
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    // The doc: POST OAuth URLs require the trailing slash.
    let response = http
        .post(format!("{}/o/token", sim.base_url()))
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .expect("send");
    assert!(response.status().is_client_error());

    // None of these spent the initial refresh token.
    refresh_grant(&sim, &http, refresh).await;
    assert_eq!(sim.token_grants(), 1);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_access_tokens_expire() {
    let mut config = DrChronoSimConfig::small(2, anchor());
    config.access_token_ttl = Duration::from_millis(1200);
    let sim = spawn(config.clone()).await;
    let http = client();
    let doctors = format!("{}/api/doctors", sim.base_url());

    let first = refresh_grant(&sim, &http, &config.initial_refresh_token).await;
    assert_eq!(first["expires_in"], 1);
    let access = first["access_token"].as_str().expect("token").to_owned();
    let status = |token: String| {
        let http = http.clone();
        let doctors = doctors.clone();
        async move {
            http.get(&doctors)
                .bearer_auth(token)
                .send()
                .await
                .expect("send")
                .status()
        }
    };
    assert_eq!(status(access.clone()).await, StatusCode::OK);

    // The used refresh token is spent; the new one works.
    let reuse = http
        .post(format!("{}/o/token/", sim.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
            ("refresh_token", config.initial_refresh_token.as_str()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(reuse.status(), StatusCode::BAD_REQUEST);
    let second = refresh_grant(&sim, &http, first["refresh_token"].as_str().expect("rt")).await;
    let access2 = second["access_token"].as_str().expect("token").to_owned();
    assert_ne!(access, access2);
    assert_eq!(sim.token_grants(), 2);

    // Access tokens die by TTL...
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(status(access2).await, StatusCode::UNAUTHORIZED);

    // ...and on demand.
    let third = refresh_grant(&sim, &http, second["refresh_token"].as_str().expect("rt")).await;
    let access3 = third["access_token"].as_str().expect("token").to_owned();
    assert_eq!(status(access3.clone()).await, StatusCode::OK);
    sim.expire_access_tokens();
    let response = http.get(&doctors).bearer_auth(&access3).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("JSON");
    assert!(body["detail"].is_string());
    // The refresh token still works after the access tokens were expired.
    refresh_grant(&sim, &http, third["refresh_token"].as_str().expect("rt")).await;
}

#[tokio::test]
async fn api_needs_a_valid_bearer_token() {
    let env = Env::small().await;
    let no_token = env.http.get(env.url("/api/patients")).send().await.expect("send");
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let body: Value = no_token.json().await.expect("JSON");
    assert!(body["detail"].is_string());
    let bogus = env
        .http
        .get(env.url("/api/patients"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("send");
    assert_eq!(bogus.status(), StatusCode::UNAUTHORIZED);

    // Revoked tokens stop working.
    let config = env.sim.config();
    let revoke = env
        .http
        .post(env.url("/o/revoke_token/"))
        .form(&[
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
            ("token", env.token.as_str()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(revoke.status(), StatusCode::OK);
    assert_eq!(env.get("/api/patients").await.status(), StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// Objects by id

#[tokio::test]
async fn objects_by_id_match_the_dataset() {
    let env = Env::small().await;
    let data = env.sim.dataset();

    let patient = &data.patients[3];
    for path in [
        format!("/api/patients/{}?verbose=true", patient.id),
        format!("/api/patients/{}/?verbose=true", patient.id),
    ] {
        let response = env.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK);
        let served: Patient = response.json().await.expect("patient");
        assert_eq!(&served, patient);
    }
    // Without verbose the verbose-only keys are absent, and the object still reads as a Patient.
    let (_, plain) = env.get_json(&format!("/api/patients/{}", patient.id)).await;
    assert!(plain.get("primary_insurance").is_none());
    let plain: Patient = serde_json::from_value(plain).expect("non-verbose patient");
    assert_eq!(plain.last_name, patient.last_name);

    let appointment = &data.appointments[5];
    let served: Appointment = env
        .get(&format!("/api/appointments/{}?verbose=true", appointment.id))
        .await
        .json()
        .await
        .expect("appointment");
    assert_eq!(&served, appointment);
    let (_, raw) = env.get_json(&format!("/api/appointments/{}", appointment.id)).await;
    assert!(raw["id"].is_string(), "appointment ids are strings");
    let doctor: wire::Doctor = env
        .get(&format!("/api/doctors/{}", data.doctors[0].id))
        .await
        .json()
        .await
        .expect("doctor");
    assert_eq!(doctor, data.doctors[0]);
    let office: wire::Office = env
        .get(&format!("/api/offices/{}?verbose=true", data.offices[0].id))
        .await
        .json()
        .await
        .expect("office");
    assert_eq!(office, data.offices[0]);
    let document: wire::Document = env
        .get(&format!("/api/documents/{}", data.documents[0].id))
        .await
        .json()
        .await
        .expect("document");
    assert_eq!(document, data.documents[0]);
    let note = &data.clinical_notes[0];
    let served: wire::ClinicalNote = env
        .get(&format!("/api/clinical_notes/{}?verbose=true", note.id))
        .await
        .json()
        .await
        .expect("note");
    assert_eq!(served.clinical_note_sections, note.clinical_note_sections);
    assert_eq!((served.appointment, served.patient), (note.appointment, note.patient));

    // Archived and inactive objects are still served by id.
    let archived = data.offices.iter().find(|o| o.archived).expect("archived office");
    assert_eq!(
        env.get(&format!("/api/offices/{}", archived.id)).await.status(),
        StatusCode::OK
    );

    for path in [
        "/api/patients/1",
        "/api/appointments/abc",
        "/api/documents/0/",
        "/api/nothing",
    ] {
        let (status, body) = env.get_json(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["detail"], "Not found.");
    }
}

#[tokio::test]
async fn file_urls_point_at_the_simulator() {
    let env = Env::small().await;
    let data = env.sim.dataset();
    let document = &data.documents[0];
    assert!(document.document.starts_with(&format!("{}/media/", env.sim.base_url())));
    let file = env.http.get(&document.document).send().await.expect("send");
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.headers()["content-type"], "application/pdf");
    assert!(file.bytes().await.expect("bytes").starts_with(b"%PDF-"));
}

// ---------------------------------------------------------------------------------------------
// Filters

#[tokio::test]
async fn appointments_and_clinical_notes_need_since_date_or_date_range() {
    let env = Env::small().await;
    for path in [
        "/api/appointments",
        "/api/appointments/?doctor=1",
        "/api/clinical_notes",
    ] {
        let (status, body) = env.get_json(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(body.is_object());
    }
}

#[tokio::test]
async fn patient_filters_narrow_like_the_doc_says() {
    let env = Env::small().await;
    let data = env.sim.dataset();
    let expect = |pred: &dyn Fn(&Patient) -> bool| -> Vec<String> {
        active_patients(&data.patients)
            .filter(|p| pred(p))
            .map(|p| p.id.to_string())
            .collect()
    };

    assert_eq!(env.ids("/api/patients").await, expect(&|_| true));
    let all: Vec<String> = data.patients.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(env.ids("/api/patients?show_inactive=true").await, all);
    assert!(all.len() > expect(&|_| true).len(), "some patients are inactive");

    let sample = active_patients(&data.patients)
        .find(|p| p.date_of_birth.is_some() && !p.email.is_empty())
        .expect("a patient with a birth date and email");
    let dob = sample.date_of_birth.clone().expect("dob");
    assert_eq!(
        env.ids(&format!("/api/patients?date_of_birth={dob}")).await,
        expect(&|p| p.date_of_birth.as_deref() == Some(dob.as_str()))
    );
    let doctor = data.doctors[1].id;
    let by_doctor = expect(&|p| p.doctor == doctor);
    assert!(!by_doctor.is_empty());
    assert_eq!(env.ids(&format!("/api/patients?doctor={doctor}")).await, by_doctor);
    assert_eq!(
        env.ids(&format!("/api/patients?email={}", sample.email.to_uppercase()))
            .await,
        expect(&|p| p.email.eq_ignore_ascii_case(&sample.email))
    );
    for gender in ["Male", "Female"] {
        assert_eq!(
            env.ids(&format!("/api/patients?gender={gender}")).await,
            expect(&|p| p.gender == gender)
        );
    }
    let spanish = env.ids("/api/patients?preferred_language=spa&show_inactive=true").await;
    let truth: Vec<String> = data
        .patients
        .iter()
        .filter(|p| p.preferred_language == "spa")
        .map(|p| p.id.to_string())
        .collect();
    assert_eq!(spanish, truth);
    for race in RACES {
        assert_eq!(
            env.ids(&format!("/api/patients?race={race}")).await,
            expect(&|p| p.race == *race)
        );
    }
    assert_eq!(
        env.ids("/api/patients?ethnicity=hispanic").await,
        expect(&|p| p.ethnicity == "hispanic")
    );

    // Names: case-insensitive, partial.
    let nguyen = env.ids("/api/patients?last_name=GUY&show_inactive=1").await;
    let truth: Vec<String> = data
        .patients
        .iter()
        .filter(|p| p.last_name.to_lowercase().contains("guy"))
        .map(|p| p.id.to_string())
        .collect();
    assert!(truth.len() >= 3);
    assert_eq!(nguyen, truth);
    let obrien = env.all("/api/patients?last_name=o%27bri&show_inactive=true").await;
    assert!(!obrien.is_empty());
    assert!(obrien.iter().all(|p| p["last_name"] == "O'Brien"));
    let nunez = env
        .all("/api/patients?last_name=N%C3%BA%C3%B1&show_inactive=true")
        .await;
    assert!(nunez.iter().any(|p| p["last_name"] == "Núñez"));
    let first = &sample.first_name;
    let part: String = first.chars().skip(1).take(3).collect::<String>().to_uppercase();
    assert_eq!(
        env.ids(&format!("/api/patients?first_name={}", urlencode(&part))).await,
        expect(&|p| p.first_name.to_lowercase().contains(&part.to_lowercase()))
    );

    // Offices: patients with an appointment at one of them.
    let office = data.offices[0].id;
    let other = data.offices[1].id;
    assert_eq!(
        env.ids(&format!("/api/patients?offices={office},{other}")).await,
        expect(&|p| p.offices.contains(&office) || p.offices.contains(&other))
    );
    let at_office = expect(&|p| p.offices.contains(&office));
    assert!(!at_office.is_empty());
    assert_eq!(env.ids(&format!("/api/patients?offices={office}")).await, at_office);

    // since: updated at or after.
    let mut times: Vec<&str> = data.patients.iter().map(|p| p.updated_at.as_str()).collect();
    times.sort();
    let since = times[times.len() / 2];
    assert_eq!(
        env.ids(&format!("/api/patients?since={since}")).await,
        expect(&|p| p.updated_at.as_str() >= since)
    );

    // Unparseable values.
    for path in [
        "/api/patients?date_of_birth=12/01/1980",
        "/api/patients?doctor=abc",
        "/api/patients?gender=female",
        "/api/patients?race=martian",
        "/api/patients?offices=1,x",
        "/api/patients?since=yesterday",
        "/api/patients?show_inactive=maybe",
    ] {
        let (status, body) = env.get_json(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(body.is_object());
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn appointment_filters_narrow_like_the_doc_says() {
    let env = Env::small().await;
    let data = env.sim.dataset();
    let range = "2024-11-10/2025-05-18";
    let in_range = |a: &Appointment| ("2024-11-10"..="2025-05-18").contains(&date_part(&a.scheduled_time));
    let expect = |pred: &dyn Fn(&Appointment) -> bool| -> Vec<String> {
        data.appointments
            .iter()
            .filter(|a| !a.deleted_flag && in_range(a) && pred(a))
            .map(|a| a.id.clone())
            .collect()
    };

    let everything = env.ids(&format!("/api/appointments?date_range={range}")).await;
    assert_eq!(everything, expect(&|_| true));
    assert!(everything.len() > 100);
    assert!(
        !everything.is_empty() && data.appointments.iter().any(|a| a.deleted_flag),
        "deleted appointments exist to be hidden"
    );
    let archived = env
        .ids(&format!("/api/appointments?date_range={range}&show_archived=true"))
        .await;
    let truth: Vec<String> = data
        .appointments
        .iter()
        .filter(|a| in_range(a))
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(archived, truth);

    let day = date_part(&data.appointments[10].scheduled_time).to_owned();
    let on_day = env.ids(&format!("/api/appointments?date={day}")).await;
    assert!(!on_day.is_empty());
    assert_eq!(on_day, expect(&|a| date_part(&a.scheduled_time) == day));

    let doctor = data.doctors[0].id;
    let office = data.offices[1].id;
    let patient = data.appointments.iter().find_map(|a| a.patient).expect("patient");
    let by_doctor = env
        .ids(&format!("/api/appointments?date_range={range}&doctor={doctor}"))
        .await;
    assert!(!by_doctor.is_empty() && by_doctor.len() < everything.len());
    assert_eq!(by_doctor, expect(&|a| a.doctor == doctor));
    assert_eq!(
        env.ids(&format!("/api/appointments?date_range={range}&office={office}"))
            .await,
        expect(&|a| a.office == office)
    );
    assert_eq!(
        env.ids(&format!("/api/appointments?date_range={range}&patient={patient}"))
            .await,
        expect(&|a| a.patient == Some(patient))
    );
    for status in ["Complete", "No Show", "Cancelled", "Not Confirmed"] {
        assert_eq!(
            env.ids(&format!(
                "/api/appointments?date_range={range}&status={}",
                urlencode(status)
            ))
            .await,
            expect(&|a| a.status == status),
            "{status}"
        );
    }
    let mut times: Vec<&str> = data.appointments.iter().map(|a| a.updated_at.as_str()).collect();
    times.sort();
    let since = times[times.len() * 3 / 4];
    let truth: Vec<String> = data
        .appointments
        .iter()
        .filter(|a| !a.deleted_flag && a.updated_at.as_str() >= since)
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(env.ids(&format!("/api/appointments?since={since}")).await, truth);

    // date_range limits: more than 190 days is refused unless in the past.
    let (status, _) = env.get_json("/api/appointments?date_range=2025-01-01/2025-12-31").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = env.get_json("/api/appointments?date_range=2024-01-01/2025-03-01").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/appointments?date=2025-13-01",
        "/api/appointments?date_range=2025-01-01",
        "/api/appointments?date=2025-01-01&office=main",
    ] {
        assert_eq!(env.get_json(path).await.0, StatusCode::BAD_REQUEST, "{path}");
    }
}

#[tokio::test]
async fn clinical_note_filters_and_verbose_values() {
    let env = Env::small().await;
    let data = env.sim.dataset();
    let appointment = |note: &wire::ClinicalNote| {
        data.appointments
            .iter()
            .find(|a| a.id == note.appointment.to_string())
            .expect("appointment")
    };
    let range = "2024-10-01/2025-03-31";
    let expect = |pred: &dyn Fn(&wire::ClinicalNote) -> bool| -> Vec<String> {
        data.clinical_notes
            .iter()
            .filter(|n| !n.archived && pred(n))
            .map(|n| n.id.to_string())
            .collect()
    };
    let all = env.ids(&format!("/api/clinical_notes?date_range={range}")).await;
    assert_eq!(all, expect(&|_| true));
    assert!(all.len() >= 20);

    let office = data.offices[0].id;
    assert_eq!(
        env.ids(&format!("/api/clinical_notes?date_range={range}&office={office}"))
            .await,
        expect(&|n| appointment(n).office == office)
    );
    let patient = data.clinical_notes[0].patient;
    assert_eq!(
        env.ids(&format!("/api/clinical_notes?date_range={range}&patient={patient}"))
            .await,
        expect(&|n| n.patient == patient)
    );
    let day = date_part(&appointment(&data.clinical_notes[3]).scheduled_time).to_owned();
    assert_eq!(
        env.ids(&format!("/api/clinical_notes?date={day}")).await,
        expect(&|n| date_part(&appointment(n).scheduled_time) == day)
    );
    let with_archived = env
        .ids(&format!("/api/clinical_notes?date_range={range}&show_archived=true"))
        .await;
    assert_eq!(
        with_archived,
        data.clinical_notes.iter().map(|n| n.id.to_string()).collect::<Vec<_>>()
    );
    let since = &data.clinical_notes[data.clinical_notes.len() / 2].updated_at;
    assert_eq!(
        env.ids(&format!("/api/clinical_notes?since={since}")).await,
        expect(&|n| n.updated_at.as_str() >= since.as_str())
    );

    // 5 per page by default, at most 20; values only with verbose=true.
    let (_, page) = env.get_json(&format!("/api/clinical_notes?date_range={range}")).await;
    let results = page["results"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    assert!(results[0]["clinical_note_sections"][0].get("values").is_none());
    assert!(results[0]["clinical_note_sections"][0]["name"].is_string());
    let (_, page) = env
        .get_json(&format!(
            "/api/clinical_notes?date_range={range}&page_size=100&verbose=true"
        ))
        .await;
    let results = page["results"].as_array().expect("results");
    assert_eq!(results.len(), 20);
    assert!(results[0]["clinical_note_sections"][0]["values"][0]["value"].is_string());
}

#[tokio::test]
async fn document_and_office_filters() {
    let env = Env::small().await;
    let data = env.sim.dataset();
    let doctor = data.documents[0].doctor;
    let patient = data.documents[1].patient;
    let docs = |pred: &dyn Fn(&wire::Document) -> bool| -> Vec<String> {
        data.documents
            .iter()
            .filter(|d| pred(d))
            .map(|d| d.id.to_string())
            .collect()
    };
    assert_eq!(env.ids("/api/documents").await, docs(&|_| true));
    assert_eq!(
        env.ids(&format!("/api/documents?doctor={doctor}")).await,
        docs(&|d| d.doctor == doctor)
    );
    assert_eq!(
        env.ids(&format!("/api/documents?patient={patient}")).await,
        docs(&|d| d.patient == patient)
    );
    let since = &data.documents[data.documents.len() / 2].updated_at;
    assert_eq!(
        env.ids(&format!("/api/documents?since={since}")).await,
        docs(&|d| d.updated_at.as_str() >= since.as_str())
    );

    let active: Vec<String> = data
        .offices
        .iter()
        .filter(|o| !o.archived)
        .map(|o| o.id.to_string())
        .collect();
    assert_eq!(env.ids("/api/offices").await, active);
    assert_eq!(
        env.ids("/api/offices?show_archived=true").await,
        data.offices.iter().map(|o| o.id.to_string()).collect::<Vec<_>>()
    );
    let (_, offices) = env.get_json("/api/offices").await;
    assert!(offices["results"][0].get("online_timeslots").is_none());
    assert!(offices["results"][0]["exam_rooms"][0]["index"].is_i64());
    let doctors: Vec<String> = data.doctors.iter().map(|d| d.id.to_string()).collect();
    assert_eq!(env.ids("/api/doctors").await, doctors);
}

// ---------------------------------------------------------------------------------------------
// Pagination and verbose

#[tokio::test]
async fn paging_walks_every_item_once_with_absolute_links() {
    let env = Env::small().await;
    let data = env.sim.dataset();
    let truth: Vec<String> = active_patients(&data.patients).map(|p| p.id.to_string()).collect();
    let walked = env.ids("/api/patients?page_size=7").await;
    assert_eq!(walked, truth);
    let unique: BTreeSet<&String> = walked.iter().collect();
    assert_eq!(unique.len(), walked.len());

    let (_, first) = env.get_json("/api/patients?page_size=7").await;
    assert!(first["previous"].is_null());
    let next = first["next"].as_str().expect("next");
    assert_eq!(next, format!("{}/api/patients?page_size=7&page=2", env.sim.base_url()));
    let (_, second) = env.get_json("/api/patients?page_size=7&page=2").await;
    assert_eq!(
        second["previous"].as_str(),
        Some(format!("{}/api/patients?page_size=7", env.sim.base_url()).as_str())
    );
    assert_eq!(second["results"][0]["id"].to_string(), truth[7]);

    let pages = truth.len().div_ceil(7);
    let (status, body) = env
        .get_json(&format!("/api/patients?page_size=7&page={}", pages + 1))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "Invalid page.");
    let (_, last) = env.get_json(&format!("/api/patients?page_size=7&page={pages}")).await;
    assert!(last["next"].is_null());
}

#[tokio::test]
async fn page_sizes_default_to_250_and_verbose_lowers_them_to_50() {
    let env = Env::new(DrChronoSimConfig::demo(3, anchor())).await;
    let range = "2024-11-10/2025-05-18";
    let (_, page) = env.get_json(&format!("/api/appointments?date_range={range}")).await;
    assert_eq!(page["results"].as_array().expect("results").len(), 250);
    assert!(page["results"][0].get("vitals").is_none());
    let (_, page) = env
        .get_json(&format!("/api/appointments?date_range={range}&page_size=1000"))
        .await;
    assert_eq!(page["results"].as_array().expect("results").len(), 250);
    let (_, page) = env
        .get_json(&format!("/api/appointments?date_range={range}&verbose=true"))
        .await;
    let results = page["results"].as_array().expect("results");
    assert_eq!(results.len(), 50);
    for key in [
        "clinical_note",
        "custom_vitals",
        "extended_updated_at",
        "reminders",
        "status_transitions",
        "vitals",
    ] {
        assert!(results[0].get(key).is_some(), "{key}");
    }
    let (_, page) = env.get_json("/api/patients?verbose=true&page_size=120").await;
    let results = page["results"].as_array().expect("results");
    assert_eq!(results.len(), 50);
    assert!(results[0]["primary_insurance"].is_object());
    let (_, page) = env.get_json("/api/patients").await;
    let results = page["results"].as_array().expect("results");
    assert!(results.len() > 50);
    for key in [
        "primary_insurance",
        "custom_demographics",
        "patient_flags",
        "referring_doctor",
    ] {
        assert!(results[0].get(key).is_none(), "{key} needs verbose");
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limit, redirects, faults

#[tokio::test]
async fn hourly_rate_limit_answers_429_with_retry_after() {
    let env = Env::small().await;
    env.sim.set_hourly_rate_limit(3);
    for _ in 0..3 {
        assert_eq!(env.get("/api/doctors").await.status(), StatusCode::OK);
    }
    let response = env.get("/api/doctors").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&retry));
    let body: Value = response.json().await.expect("JSON");
    assert!(body["detail"].is_string());
    env.sim.set_hourly_rate_limit(500);
    assert_eq!(env.get("/api/doctors").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn configured_redirects_answer_302_before_auth() {
    let mut config = DrChronoSimConfig::small(4, anchor());
    config.redirects = vec![
        ("/api/moved_patients".into(), "/api/patients".into()),
        ("/api/elsewhere".into(), "https://other.example/api".into()),
    ];
    let env = Env::new(config).await;
    let response = env
        .http
        .get(env.url("/api/moved_patients/?page_size=2"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().expect("ascii");
    assert_eq!(location, "/api/patients/?page_size=2");
    // Re-sending with the Authorization header works.
    let (status, page) = env.get_json(location).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["results"].as_array().map(Vec::len), Some(2));

    let response = env.get("/api/elsewhere/doctors").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["location"], "https://other.example/api/doctors");
}

#[tokio::test]
async fn fault_knobs_break_api_responses_but_not_oauth() {
    let env = Env::small().await;
    let (_, clean) = env.get_json("/api/doctors").await;

    env.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..6 {
        assert!(env.get("/api/doctors").await.status().is_server_error());
    }
    // OAuth endpoints are unaffected.
    let response = env
        .http
        .get(env.url("/o/authorize"))
        .query(&[
            ("client_id", env.sim.config().client_id.as_str()),
            ("redirect_uri", env.sim.config().redirect_uri.as_str()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::FOUND);

    env.sim.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    let response = env.get("/api/doctors").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    assert!(serde_json::from_str::<Value>(&text).is_err());

    env.sim.set_faults(Faults {
        truncated_rate: 1.0,
        ..Faults::default()
    });
    let response = env.get("/api/doctors").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    assert!(serde_json::from_str::<Value>(&text).is_err());
    let full = serde_json::to_string(&clean).expect("serialize");
    assert_eq!(text.len(), full.len() / 2);
    assert!(full.starts_with(&text));

    env.sim.set_faults(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(env.get("/api/doctors").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    env.sim.set_faults(Faults {
        foreign_next_origin: Some("https://evil.example".into()),
        ..Faults::default()
    });
    let (_, page) = env.get_json("/api/patients?page_size=2").await;
    assert_eq!(
        page["next"].as_str(),
        Some("https://evil.example/api/patients?page_size=2&page=2")
    );

    // A partial error rate fails some requests and serves the rest.
    env.sim.set_faults(Faults {
        error_rate: 0.5,
        ..Faults::default()
    });
    let mut failed = 0;
    for _ in 0..40 {
        if env.get("/api/doctors").await.status().is_server_error() {
            failed += 1;
        }
    }
    assert!((5..=35).contains(&failed), "{failed}");
}

#[tokio::test]
async fn hits_count_api_requests_by_path() {
    let env = Env::small().await;
    env.sim.reset_hits();
    env.get("/api/doctors").await;
    env.get("/api/patients?page_size=1").await;
    env.get("/api/patients/").await;
    env.http.get(env.url("/api/patients")).send().await.expect("send");
    assert_eq!(env.sim.hits(), 4);
    assert_eq!(env.sim.hits_for("/api/patients"), 3);
    assert_eq!(env.sim.hits_for("/api/doctors"), 1);
    env.sim.reset_hits();
    assert_eq!(env.sim.hits(), 0);
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let env = Env::small().await;
    assert_eq!(env.get("/api/doctors").await.status(), StatusCode::OK);
    env.sim.shutdown();
    let fresh = client();
    let mut refused = false;
    for _ in 0..50 {
        if fresh.get(env.url("/api/doctors")).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused);
}

// ---- webhooks ----

/// One request a capturing callback URL got: method, target, lower-case headers, body.
type Captured = (String, String, Vec<(String, String)>, String);

/// A loopback callback URL that records every request and answers the `msg` verification with
/// `secret` (or a wrong token when `secret` is `None`), and every POST with 200.
async fn callback(secret: Option<&'static str>) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Captured>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let captured = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = captured.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                let head_end = loop {
                    if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
                let mut lines = head.lines();
                let mut first = lines.next().unwrap_or_default().split(' ');
                let method = first.next().unwrap_or_default().to_owned();
                let target = first.next().unwrap_or_default().to_owned();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while data.len() < head_end + length {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&data[head_end..head_end + length]).into_owned();
                let answer = if method == "GET" {
                    let msg = target
                        .split_once("?msg=")
                        .map(|(_, m)| m.to_owned())
                        .unwrap_or_default();
                    let token = match secret {
                        Some(secret) => vendor_sim::drchrono::verification_token(secret, &msg),
                        None => "0".repeat(64),
                    };
                    serde_json::json!({ "secret_token": token }).to_string()
                } else {
                    String::new()
                };
                log.lock().expect("log").push((method, target, headers, body));
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, captured)
}

#[tokio::test]
async fn webhooks_are_verified_then_sent_with_the_documented_headers() {
    use vendor_sim::drchrono::{DeliveryOutcome, VERIFICATION};
    let sim = spawn(DrChronoSimConfig::small(11, anchor())).await;
    let secret = "drchrono-sim-webhook-secret";
    assert_eq!(sim.config().webhook_secret, secret);
    assert_eq!(DrChronoSimConfig::demo(1, anchor()).webhook_secret, secret);
    let (url, captured) = callback(Some("drchrono-sim-webhook-secret")).await;
    sim.set_webhook_url(Some(url.clone()));

    assert!(sim.verify_webhook_url().await);
    let object = serde_json::json!({"id": 9001, "patient": 5});
    sim.fire_webhook("APPOINTMENT_MODIFY", object.clone());
    sim.fire_webhook("PING", serde_json::json!({}));
    assert!(sim.wait_for_webhooks(Duration::from_secs(10)).await);

    let log = sim.webhook_log();
    let summary: Vec<(&str, DeliveryOutcome)> = log.iter().map(|d| (d.event.as_str(), d.outcome)).collect();
    assert_eq!(
        summary,
        vec![
            (VERIFICATION, DeliveryOutcome::Verified),
            ("APPOINTMENT_MODIFY", DeliveryOutcome::Delivered),
            ("PING", DeliveryOutcome::Delivered),
        ]
    );
    assert!(log.iter().all(|d| d.url.as_deref() == Some(url.as_str())));
    assert_ne!(log[1].delivery_id, log[2].delivery_id);

    let captured = captured.lock().expect("captured").clone();
    assert_eq!(captured.len(), 3);
    let (method, target, _, _) = &captured[0];
    assert_eq!(method, "GET");
    assert_eq!(target, &format!("/hooks?msg={}", log[0].body));
    assert_eq!(log[0].body.len(), 32);
    for ((method, _, headers, body), (event, delivery)) in captured[1..]
        .iter()
        .zip([("APPOINTMENT_MODIFY", &log[1]), ("PING", &log[2])])
    {
        assert_eq!(method, "POST");
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        assert_eq!(header("x-drchrono-event").as_deref(), Some(event));
        assert_eq!(header("x-drchrono-signature").as_deref(), Some(secret));
        assert_eq!(header("x-drchrono-delivery"), Some(delivery.delivery_id.to_string()));
        assert_eq!(body, &delivery.body);
        let sent: Value = serde_json::from_str(body).expect("json body");
        assert!(sent["receiver"].is_object(), "{sent}");
        assert!(!body.contains(secret), "the secret travels in the header only");
    }
    let sent: Value = serde_json::from_str(&captured[1].3).expect("json body");
    assert_eq!(sent["object"], object);
}

#[tokio::test]
async fn webhooks_go_only_to_a_verified_callback_url() {
    use vendor_sim::drchrono::DeliveryOutcome;
    let sim = spawn(DrChronoSimConfig::small(11, anchor())).await;
    // No URL at all.
    sim.fire_webhook("PATIENT_CREATE", serde_json::json!({"id": 1}));
    assert!(sim.wait_for_webhooks(Duration::from_secs(10)).await);
    assert!(!sim.verify_webhook_url().await);
    // A URL that answers the verification wrongly.
    let (wrong, wrong_captured) = callback(None).await;
    sim.set_webhook_url(Some(wrong));
    assert!(!sim.verify_webhook_url().await);
    sim.fire_webhook("PATIENT_CREATE", serde_json::json!({"id": 1}));
    assert!(sim.wait_for_webhooks(Duration::from_secs(10)).await);
    // A verified URL, then a change of URL: verification is needed again.
    let (good, good_captured) = callback(Some("drchrono-sim-webhook-secret")).await;
    sim.set_webhook_url(Some(good));
    assert!(sim.verify_webhook_url().await);
    let (other, _) = callback(Some("drchrono-sim-webhook-secret")).await;
    sim.set_webhook_url(Some(other));
    sim.fire_webhook("PATIENT_CREATE", serde_json::json!({"id": 1}));
    assert!(sim.wait_for_webhooks(Duration::from_secs(10)).await);

    let outcomes: Vec<DeliveryOutcome> = sim.webhook_log().iter().map(|d| d.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            DeliveryOutcome::NotConfigured,
            DeliveryOutcome::NotConfigured,
            DeliveryOutcome::VerificationFailed,
            DeliveryOutcome::Refused,
            DeliveryOutcome::Verified,
            DeliveryOutcome::Refused,
        ]
    );
    // Only verifications were sent anywhere.
    assert!(wrong_captured.lock().expect("log").iter().all(|c| c.0 == "GET"));
    assert!(good_captured.lock().expect("log").iter().all(|c| c.0 == "GET"));
    sim.clear_webhook_log();
    assert!(sim.webhook_log().is_empty());
}

#[tokio::test]
async fn rate_limit_bursts_spikes_and_dropped_connections() {
    let env = Env::small().await;
    // A burst of two: the real throttled answer, then service again.
    env.sim.set_rate_limit_burst(2);
    for _ in 0..2 {
        let response = env.get("/api/doctors").await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "1");
        let body: Value = response.json().await.expect("JSON");
        assert!(body["detail"].as_str().expect("detail").contains("throttled"));
    }
    assert_eq!(env.sim.faults().rate_limit_burst, 0);
    assert_eq!(env.get("/api/doctors").await.status(), StatusCode::OK);

    env.sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(env.get("/api/doctors").await.status(), StatusCode::TOO_MANY_REQUESTS);
    // OAuth is never faulted.
    let response = env
        .http
        .get(env.url("/o/authorize"))
        .query(&[
            ("client_id", env.sim.config().client_id.as_str()),
            ("redirect_uri", env.sim.config().redirect_uri.as_str()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::FOUND);

    env.sim.set_faults(Faults {
        spike_rate: 1.0,
        spike_latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(env.get("/api/doctors").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    env.sim.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    let error = env
        .http
        .get(env.url("/api/doctors"))
        .bearer_auth(&env.token)
        .send()
        .await
        .expect_err("the connection is dropped");
    assert!(error.status().is_none() && !error.is_timeout(), "{error:?}");
    env.sim.set_faults(Faults::default());
    assert_eq!(env.get("/api/doctors").await.status(), StatusCode::OK);
}
