//! The Zoom simulator over real loopback HTTP, checked against the vendor docs
//! (`zoom-clinical-notes-api.md`, `zoom-healthcare-api.md`) and against its own dataset.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use chrono::NaiveDate;
use data_encoding::{BASE64, HEXLOWER};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig};
use vendor_sim::zoom::wire::{self, ClinicalNote, VisitStatus, events};
use vendor_sim::zoom::{
    DeliveryOutcome, EhrRefs, Faults, NewNote, RateLimits, SimError, ZoomSim, ZoomSimConfig, ZoomSimHandle,
};

fn anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, 14).expect("valid date")
}

fn small_ehr() -> EhrRefs {
    EhrRefs::from_drchrono(&DrChronoSim::new(DrChronoSimConfig::small(11, anchor())).dataset())
}

fn small_config() -> ZoomSimConfig {
    ZoomSimConfig::small(7, anchor(), small_ehr())
}

async fn spawn(config: ZoomSimConfig) -> ZoomSimHandle {
    ZoomSim::new(config)
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("spawn")
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{id}:{secret}").as_bytes()))
}

async fn fetch_token(sim: &ZoomSimHandle, http: &reqwest::Client) -> String {
    let config = sim.config();
    let response = http
        .post(format!("{}/oauth/token", sim.base_url()))
        .query(&[
            ("grant_type", "account_credentials"),
            ("account_id", &config.account_id),
        ])
        .header("authorization", basic(&config.client_id, &config.client_secret))
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token JSON");
    body["access_token"].as_str().expect("access_token").to_owned()
}

/// A running simulator and an access token.
struct Env {
    sim: ZoomSimHandle,
    http: reqwest::Client,
    token: String,
}

impl Env {
    async fn new(config: ZoomSimConfig) -> Self {
        let sim = spawn(config).await;
        let http = reqwest::Client::new();
        let token = fetch_token(&sim, &http).await;
        Env { sim, http, token }
    }

    async fn small() -> Self {
        Self::new(small_config()).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2{path}", self.sim.base_url())
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("send")
    }

    async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self.get(path, query).await;
        let status = response.status();
        (status, response.json().await.expect("JSON body"))
    }

    async fn send_json(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        };
        (status, value)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::PATCH, path, body).await
    }

    /// Every page of `path` (a list whose items are under `key`), with `page_size`.
    async fn all_pages(&self, path: &str, key: &str, query: &[(&str, &str)], page_size: usize) -> Vec<Value> {
        let size = page_size.to_string();
        let mut items = Vec::new();
        let mut token = String::new();
        for _ in 0..1000 {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            q.push(("page_size", &size));
            if !token.is_empty() {
                q.push(("next_page_token", &token));
            }
            let (status, body) = self.get_json(path, &q).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let page = body[key].as_array().expect("items").clone();
            assert!(page.len() <= page_size);
            items.extend(page);
            token = body["next_page_token"].as_str().expect("next_page_token").to_owned();
            if token.is_empty() {
                return items;
            }
        }
        panic!("paging never ended");
    }
}

fn code(body: &Value) -> i64 {
    body["code"].as_i64().unwrap_or_else(|| panic!("no code in {body}"))
}

const NOTE_KEYS: &[&str] = &[
    "meeting_id",
    "meeting_number",
    "note_id",
    "note_owner_user_id",
    "note_start_time",
    "note_end_time",
    "note_created_time",
    "note_last_modified_time",
    "note_last_modified_user_id",
    "note_title",
    "note_content",
    "is_note_completed",
    "note_completed_time",
    "ehr_context",
];

fn assert_doc_note_shape(note: &Value) {
    let object = note.as_object().expect("note object");
    for key in object.keys() {
        assert!(NOTE_KEYS.contains(&key.as_str()), "unexpected key {key}");
    }
    for key in &NOTE_KEYS[..12] {
        assert!(object.contains_key(*key), "missing {key} in {note}");
    }
    for key in [
        "note_start_time",
        "note_end_time",
        "note_created_time",
        "note_last_modified_time",
    ] {
        let t = note[key].as_str().expect("time");
        assert!(t.ends_with('Z') && t.len() == 24, "{key}: {t}");
    }
    assert_eq!(
        note["is_note_completed"].as_bool(),
        Some(object.contains_key("note_completed_time"))
    );
    if let Some(ctx) = note.get("ehr_context") {
        for key in ctx.as_object().expect("ehr_context object").keys() {
            assert!(["appointment_id", "patient_id", "provider_id"].contains(&key.as_str()));
        }
    }
}

// -------------------------------------------------------------------------------------------
// Data

#[test]
fn same_seed_and_ehr_give_the_same_dataset() {
    let ehr = small_ehr();
    let a = ZoomSim::new(ZoomSimConfig::small(3, anchor(), ehr.clone())).dataset();
    let b = ZoomSim::new(ZoomSimConfig::small(3, anchor(), ehr.clone())).dataset();
    assert_eq!(a, b);
    let c = ZoomSim::new(ZoomSimConfig::small(4, anchor(), ehr)).dataset();
    assert_ne!(a.clinical_notes, c.clinical_notes);
    // No EHR at all still gives a usable account.
    let bare = ZoomSim::new(ZoomSimConfig::small(3, anchor(), EhrRefs::default())).dataset();
    assert_eq!(bare.clinical_notes.len(), 40);
    assert!(bare.clinical_notes.iter().all(|n| n.ehr_context.is_none()));
    assert_eq!(bare.visits.len(), 20);
}

#[test]
fn demo_is_big_enough_and_coherent_with_the_ehr() {
    let drchrono = DrChronoSim::new(DrChronoSimConfig::demo(42, anchor())).dataset();
    let ehr = EhrRefs::from_drchrono(&drchrono);
    let data = ZoomSim::new(ZoomSimConfig::demo(42, anchor(), ehr.clone())).dataset();

    assert!(data.clinical_notes.len() >= 300, "{}", data.clinical_notes.len());
    assert!(data.visits.len() >= 100);
    for status in VisitStatus::ALL {
        assert!(data.visits.iter().any(|v| v.status == status), "no {status:?} visit");
    }
    assert!(data.patients.len() >= 50);
    assert_eq!(data.providers.len(), ehr.doctors.len() + 1);
    assert_eq!(data.availability.len(), data.providers.len());
    for (provider, availability) in data.providers.iter().zip(&data.availability) {
        assert_eq!(provider.id, availability.provider_id);
        assert!(!availability.weekly_hours.is_empty());
    }

    let ehr_patients: HashSet<String> = ehr.patients.iter().map(|p| format!("Patient/{}", p.id)).collect();
    let ehr_doctors: HashSet<String> = ehr.doctors.iter().map(|d| format!("Practitioner/{}", d.id)).collect();
    let appointments: std::collections::HashMap<&str, &vendor_sim::zoom::EhrAppointment> =
        ehr.appointments.iter().map(|a| (a.id.as_str(), a)).collect();
    let owners: HashSet<&str> = data.providers.iter().map(|p| p.user_id.as_str()).collect();

    let mut with_context = 0;
    let mut with_appointment = 0;
    for note in &data.clinical_notes {
        assert!(owners.contains(note.note_owner_user_id.as_str()));
        assert!(!note.note_content.is_empty());
        assert!(note.note_start_time <= note.note_end_time);
        assert!(note.note_end_time <= note.note_created_time);
        assert!(note.note_created_time <= note.note_last_modified_time);
        if let Some(ctx) = &note.ehr_context {
            with_context += 1;
            let patient = ctx.patient_id.as_deref().expect("patient_id");
            let provider = ctx.provider_id.as_deref().expect("provider_id");
            assert!(ehr_patients.contains(patient), "{patient}");
            assert!(ehr_doctors.contains(provider), "{provider}");
            // The owner is the provider of the context.
            let owner = data
                .providers
                .iter()
                .find(|p| p.user_id == note.note_owner_user_id)
                .expect("owner");
            assert_eq!(
                owner.ehr_context.as_ref().and_then(|c| c.provider_id.as_deref()),
                Some(provider)
            );
            if let Some(id) = ctx.appointment_id.as_deref() {
                with_appointment += 1;
                let appointment = appointments.get(id).expect("appointment exists");
                assert_eq!(format!("Patient/{}", appointment.patient), patient);
                assert_eq!(format!("Practitioner/{}", appointment.doctor), provider);
            }
        }
    }
    let total = data.clinical_notes.len();
    assert!(
        with_context > total / 2 && with_context < total,
        "{with_context}/{total}"
    );
    assert!(with_appointment > total / 2);
    let slash_plus = data
        .clinical_notes
        .iter()
        .filter(|n| n.meeting_id.contains('/') && n.meeting_id.contains('+'))
        .count();
    assert!(slash_plus >= total / 4, "{slash_plus}");
    assert!(data.clinical_notes.iter().any(|n| n.meeting_id.starts_with("//")));
    assert!(data.clinical_notes.iter().any(|n| n.is_note_completed));
    assert!(data.clinical_notes.iter().any(|n| !n.is_note_completed));
    assert!(
        data.clinical_notes
            .iter()
            .any(|n| n.note_content.starts_with("## Chief Complaint"))
    );
    assert!(
        data.clinical_notes
            .iter()
            .any(|n| n.note_content.starts_with("Chief Complaint\n"))
    );

    // Patients mirror EHR patients by name; visits reference Zoom patients and providers, and
    // those booked for EHR appointments agree with them.
    let mirrored = data.patients.iter().filter(|p| p.ehr_context.is_some()).count();
    assert!(mirrored >= 50 && mirrored < data.patients.len());
    for patient in &data.patients {
        if let Some(id) = patient.ehr_context.as_ref().and_then(|c| c.patient_id.as_deref()) {
            let source = ehr
                .patients
                .iter()
                .find(|p| format!("Patient/{}", p.id) == id)
                .expect("source");
            assert_eq!(
                (&source.first_name, &source.last_name),
                (&patient.first_name, &patient.last_name)
            );
        }
    }
    let mut linked = 0;
    for visit in &data.visits {
        let patient = data.patient(&visit.patient_id).expect("visit patient");
        let provider = data.provider(&visit.provider_id).expect("visit provider");
        assert!(visit.join_url_patient.starts_with("https://zoom.us/j/"));
        assert_ne!(visit.join_url_patient, visit.join_url_provider);
        if let Some(ctx) = &visit.ehr_context {
            linked += 1;
            assert!(appointments.contains_key(ctx.appointment_id.as_deref().expect("appointment")));
            assert_eq!(
                patient.ehr_context.as_ref().and_then(|c| c.patient_id.clone()),
                ctx.patient_id
            );
            assert_eq!(
                provider.ehr_context.as_ref().and_then(|c| c.provider_id.clone()),
                ctx.provider_id
            );
        }
    }
    assert!(linked > 10, "{linked}");
}

// -------------------------------------------------------------------------------------------
// OAuth

#[tokio::test]
async fn server_to_server_oauth() {
    let sim = spawn(ZoomSimConfig {
        token_ttl: Duration::from_secs(1),
        ..small_config()
    })
    .await;
    let http = reqwest::Client::new();
    let config = sim.config().clone();
    let token_url = format!("{}/oauth/token", sim.base_url());

    let response = http
        .post(&token_url)
        .query(&[
            ("grant_type", "account_credentials"),
            ("account_id", &config.account_id),
        ])
        .header("authorization", basic(&config.client_id, &config.client_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let grant: wire::AccessToken = response.json().await.unwrap();
    assert_eq!(grant.token_type, "bearer");
    assert_eq!(grant.expires_in, 1);
    assert!(grant.scope.contains("clinical_note:read:admin"));
    assert_eq!(sim.token_grants(), 1);

    // Parameters in a form body work too.
    let response = http
        .post(&token_url)
        .header("authorization", basic(&config.client_id, &config.client_secret))
        .form(&[
            ("grant_type", "account_credentials"),
            ("account_id", &config.account_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Wrong secret, no Basic auth, wrong grant, wrong account.
    for (auth, grant_type, account, status, error) in [
        (
            Some("wrong"),
            "account_credentials",
            config.account_id.as_str(),
            401,
            "invalid_client",
        ),
        (
            None,
            "account_credentials",
            config.account_id.as_str(),
            401,
            "invalid_client",
        ),
        (
            Some(config.client_secret.as_str()),
            "client_credentials",
            config.account_id.as_str(),
            400,
            "unsupported_grant_type",
        ),
        (
            Some(config.client_secret.as_str()),
            "account_credentials",
            "other",
            400,
            "invalid_request",
        ),
    ] {
        let mut request = http
            .post(&token_url)
            .query(&[("grant_type", grant_type), ("account_id", account)]);
        if let Some(secret) = auth {
            request = request.header("authorization", basic(&config.client_id, secret));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{body}");
        assert!(body["reason"].is_string());
    }
    assert_eq!(sim.token_grants(), 2);

    let api = format!("{}/v2/healthcare/providers", sim.base_url());
    let call = |token: Option<String>| {
        let mut request = http.get(&api);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, _) = call(Some(grant.access_token.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(None).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, 124));
    let (status, body) = call(Some("not-a-token".into())).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, 124));
    assert_eq!(body["message"], "Invalid access token.");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = call(Some(grant.access_token.clone())).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, 124));
    assert_eq!(body["message"], "Access token is expired.");

    // expire_access_tokens() ends a fresh token at once.
    let env = Env::small().await;
    assert_eq!(env.get("/healthcare/providers", &[]).await.status(), StatusCode::OK);
    env.sim.expire_access_tokens();
    let (status, body) = env.get_json("/healthcare/providers", &[]).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Access token is expired."))
    );
}

// -------------------------------------------------------------------------------------------
// Clinical notes

#[tokio::test]
async fn notes_list_filters_and_pages_to_the_end() {
    let env = Env::small().await;
    let data = env.sim.dataset();

    // Default page size is 30; the response carries the doc's keys.
    let (status, first) = env.get_json("/clinical_notes/notes", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["page_size"], 30);
    assert_eq!(first["clinical_notes"].as_array().unwrap().len(), 30);
    let keys: BTreeSet<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["clinical_notes", "next_page_token", "page_size"]));

    let all = env.all_pages("/clinical_notes/notes", "clinical_notes", &[], 7).await;
    assert_eq!(all.len(), data.clinical_notes.len());
    let ids: HashSet<&str> = all.iter().map(|n| n["note_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len());
    let created: Vec<&str> = all.iter().map(|n| n["note_created_time"].as_str().unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");
    for note in &all {
        assert_doc_note_shape(note);
        let typed: ClinicalNote = serde_json::from_value(note.clone()).unwrap();
        assert_eq!(Some(&typed), data.note(&typed.note_id));
    }
    assert!(all.iter().any(|n| n.get("ehr_context").is_none()));
    assert!(all.iter().any(|n| n["ehr_context"]["appointment_id"].is_string()));
    assert!(all.iter().any(|n| {
        n["ehr_context"]["patient_id"]
            .as_str()
            .is_some_and(|p| p.starts_with("Patient/"))
    }));

    // note_owner_user_id.
    let owner = data.clinical_notes[0].note_owner_user_id.clone();
    let owned = env
        .all_pages(
            "/clinical_notes/notes",
            "clinical_notes",
            &[("note_owner_user_id", &owner)],
            5,
        )
        .await;
    let expected = data
        .clinical_notes
        .iter()
        .filter(|n| n.note_owner_user_id == owner)
        .count();
    assert_eq!(owned.len(), expected);
    assert!(owned.iter().all(|n| n["note_owner_user_id"] == owner.as_str()));

    // meeting_id with '/' and '+', encoded once; and one starting with '/', double-encoded.
    let tricky = data
        .clinical_notes
        .iter()
        .find(|n| n.meeting_id.contains('/') && n.meeting_id.contains('+') && !n.meeting_id.starts_with('/'))
        .expect("a UUID with / and +");
    let (status, body) = env
        .get_json("/clinical_notes/notes", &[("meeting_id", &tricky.meeting_id)])
        .await;
    assert_eq!(status, StatusCode::OK);
    let found = body["clinical_notes"].as_array().unwrap();
    assert!(!found.is_empty());
    assert!(found.iter().all(|n| n["meeting_id"] == tricky.meeting_id.as_str()));
    let slashed = data
        .clinical_notes
        .iter()
        .find(|n| n.meeting_id.starts_with('/'))
        .expect("a UUID starting with /");
    let once =
        percent_encoding::utf8_percent_encode(&slashed.meeting_id, percent_encoding::NON_ALPHANUMERIC).to_string();
    let (_, body) = env.get_json("/clinical_notes/notes", &[("meeting_id", &once)]).await;
    assert_eq!(body["clinical_notes"][0]["meeting_id"], slashed.meeting_id.as_str());
    let (_, body) = env.get_json("/clinical_notes/notes", &[("meeting_id", "nope==")]).await;
    assert_eq!(body["clinical_notes"].as_array().unwrap().len(), 0);

    // from/to on the creation time, echoed.
    let mut times: Vec<&str> = data
        .clinical_notes
        .iter()
        .map(|n| n.note_created_time.as_str())
        .collect();
    times.sort();
    let from = format!("{}Z", &times[10][..19]);
    let to = format!("{}Z", &times[30][..19]);
    let ranged = env
        .all_pages(
            "/clinical_notes/notes",
            "clinical_notes",
            &[("from", &from), ("to", &to)],
            9,
        )
        .await;
    let (from_ms, to_ms) = (format!("{}.000Z", &from[..19]), format!("{}.000Z", &to[..19]));
    let expected = data
        .clinical_notes
        .iter()
        .filter(|n| n.note_created_time >= from_ms && n.note_created_time <= to_ms)
        .count();
    assert!(expected >= 15, "{expected}");
    assert_eq!(ranged.len(), expected);
    let (_, body) = env
        .get_json("/clinical_notes/notes", &[("from", &from), ("to", &to)])
        .await;
    assert_eq!(body["from"], from.as_str());
    assert_eq!(body["to"], to.as_str());

    // Errors: unknown user (30008), bad page size and bad dates (300).
    let (status, body) = env
        .get_json("/clinical_notes/notes", &[("note_owner_user_id", "nobody")])
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 30008));
    assert_eq!(body["message"], "Query user does not exist.");
    let (status, body) = env.get_json("/clinical_notes/notes", &[("page_size", "0")]).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 300));
    let (status, body) = env.get_json("/clinical_notes/notes", &[("from", "yesterday")]).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 300));
}

#[tokio::test]
async fn next_page_tokens_expire() {
    let env = Env::new(ZoomSimConfig {
        next_page_token_ttl: Duration::from_millis(600),
        ..small_config()
    })
    .await;
    let (_, first) = env.get_json("/clinical_notes/notes", &[("page_size", "10")]).await;
    let token = first["next_page_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    let (status, second) = env
        .get_json("/clinical_notes/notes", &[("next_page_token", &token)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["page_size"], 10, "the token keeps the page size");
    assert_ne!(second["clinical_notes"][0], first["clinical_notes"][0]);
    // The same token again gives the same page.
    let (_, again) = env
        .get_json("/clinical_notes/notes", &[("next_page_token", &token)])
        .await;
    assert_eq!(again["clinical_notes"], second["clinical_notes"]);

    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, body) = env
        .get_json("/clinical_notes/notes", &[("next_page_token", &token)])
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 300));
    assert_eq!(body["message"], "The next page token is invalid or expired.");
    let (status, body) = env
        .get_json(
            "/clinical_notes/notes",
            &[("next_page_token", "ff9d4fb9-8b64-4d6d-93ff-8bc86b18f5c4")],
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 300));
    // A visits token is not a notes token.
    let (_, visits) = env.get_json("/healthcare/visits", &[("page_size", "2")]).await;
    let visits_token = visits["next_page_token"].as_str().unwrap();
    let (status, _) = env
        .get_json("/clinical_notes/notes", &[("next_page_token", visits_token)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn get_and_patch_notes_with_the_doc_errors() {
    let env = Env::small().await;
    let data = env.sim.dataset();
    let draft = data
        .clinical_notes
        .iter()
        .find(|n| !n.is_note_completed)
        .expect("a draft")
        .clone();
    let path = format!("/clinical_notes/notes/{}", draft.note_id);

    let (status, body) = env.get_json(&path, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_doc_note_shape(&body);
    assert_eq!(serde_json::from_value::<ClinicalNote>(body).unwrap(), draft);

    let (status, body) = env.get_json("/clinical_notes/notes/NoSuchNote123", &[]).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, 30009));
    assert_eq!(body["message"], "Clinical note does not exist.");
    let (status, body) = env
        .patch(
            "/clinical_notes/notes/NoSuchNote123",
            json!({"is_note_completed": true}),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, 30009));

    // Body validation.
    let (status, body) = env.patch(&path, json!({"is_note_completed": "yes"})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 300));
    let (status, _) = env.patch(&path, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // 30011 when the update fails, then success (204).
    env.sim.fail_next_note_updates(1);
    let (status, body) = env.patch(&path, json!({"is_note_completed": true})).await;
    assert_eq!((status, code(&body)), (StatusCode::INTERNAL_SERVER_ERROR, 30011));
    assert!(!env.sim.dataset().note(&draft.note_id).unwrap().is_note_completed);
    let (status, body) = env.patch(&path, json!({"is_note_completed": true})).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (_, body) = env.get_json(&path, &[]).await;
    assert_eq!(body["is_note_completed"], true);
    assert!(body["note_completed_time"].is_string());
    assert_eq!(body["note_last_modified_user_id"], data.admin_user_id.as_str());
    assert!(env.sim.dataset().note(&draft.note_id).unwrap().is_note_completed);

    // 30007: the owner's notes are denied to the app.
    env.sim.set_denied_note_owners([draft.note_owner_user_id.clone()]);
    let (status, body) = env.get_json(&path, &[]).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, 30007));
    let (status, body) = env.patch(&path, json!({"is_note_completed": false})).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, 30007));
    let (status, body) = env
        .get_json(
            "/clinical_notes/notes",
            &[("note_owner_user_id", &draft.note_owner_user_id)],
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, 30007));
    let visible = env.all_pages("/clinical_notes/notes", "clinical_notes", &[], 100).await;
    assert!(
        visible
            .iter()
            .all(|n| n["note_owner_user_id"] != draft.note_owner_user_id.as_str())
    );
    env.sim.set_denied_note_owners(Vec::<String>::new());

    // 30001: a user without the feature (list 403), and the account-wide switch (list 403,
    // get and patch 400, as the doc has it).
    let unlicensed = data
        .providers
        .iter()
        .find(|p| !p.clinical_notes_enabled)
        .expect("unlicensed");
    let (status, body) = env
        .get_json("/clinical_notes/notes", &[("note_owner_user_id", &unlicensed.user_id)])
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, 30001));
    env.sim.set_clinical_notes_enabled(false);
    let (status, body) = env.get_json("/clinical_notes/notes", &[]).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, 30001));
    let (status, body) = env.get_json(&path, &[]).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 30001));
    let (status, body) = env.patch(&path, json!({"is_note_completed": true})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 30001));
    assert_eq!(body["message"], "Clinical note feature not enabled for this user.");
    env.sim.set_clinical_notes_enabled(true);
    assert_eq!(env.get(&path, &[]).await.status(), StatusCode::OK);
}

// -------------------------------------------------------------------------------------------
// Healthcare

#[tokio::test]
async fn visits_crud_lifecycle_and_waiting_room() {
    let env = Env::small().await;
    let data = env.sim.dataset();
    let patient = data.patients[0].clone();
    let provider = data.providers[0].clone();

    // Create: HIPAA-safe defaults, settings stored as sent.
    let (status, created) = env
        .post(
            "/healthcare/visits",
            json!({
                "patient_id": patient.id,
                "provider_id": provider.id,
                "scheduled_time": "2025-03-20T14:00:00Z",
                "duration_minutes": 30,
                "visit_type": "follow_up",
                "reason": "Post-surgery checkup",
                "settings": {"recording": true, "recording_consent": "verbal"},
                "notifications": {"patient_email": true, "patient_sms": true, "reminder_minutes": [1440, 60]},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("visit_"));
    assert_eq!(created["status"], "scheduled");
    assert_eq!(created["scheduled_time"], "2025-03-20T14:00:00Z");
    assert_eq!(
        created["settings"],
        json!({"waiting_room": true, "recording": true, "require_encryption": true, "recording_consent": "verbal"})
    );
    assert_eq!(created["meeting_settings"]["encryption_type"], "e2ee");
    assert_eq!(created["data_retention"]["auto_delete_days"], 30);
    assert!(
        created["join_url_patient"]
            .as_str()
            .unwrap()
            .starts_with("https://zoom.us/j/")
    );
    assert_ne!(created["join_url_patient"], created["join_url_provider"]);
    let path = format!("/healthcare/visits/{id}");
    let (status, fetched) = env.get_json(&path, &[]).await;
    assert_eq!((status, &fetched), (StatusCode::OK, &created));

    // Validation and missing references.
    for (body, status, code_) in [
        (
            json!({"provider_id": provider.id, "scheduled_time": "2025-03-20T14:00:00Z"}),
            400,
            300,
        ),
        (
            json!({"patient_id": patient.id, "provider_id": provider.id, "scheduled_time": "tomorrow"}),
            400,
            300,
        ),
        (
            json!({"patient_id": patient.id, "provider_id": provider.id, "scheduled_time": "2025-03-20T14:00:00Z", "visit_type": "house_call"}),
            400,
            300,
        ),
        (
            json!({"patient_id": "pat_nope", "provider_id": provider.id, "scheduled_time": "2025-03-20T14:00:00Z"}),
            404,
            1001,
        ),
        (
            json!({"patient_id": patient.id, "provider_id": "prov_nope", "scheduled_time": "2025-03-20T14:00:00Z"}),
            404,
            1001,
        ),
    ] {
        let (s, b) = env.post("/healthcare/visits", body).await;
        assert_eq!((s.as_u16(), code(&b)), (status, code_), "{b}");
    }
    let response = env
        .http
        .post(env.url("/healthcare/visits"))
        .bearer_auth(&env.token)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, body) = env.get_json("/healthcare/visits/visit_nope", &[]).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, 3001));

    // Reschedule (PATCH → 204), partial settings merge.
    let (status, _) = env
        .patch(
            &path,
            json!({"scheduled_time": "2025-03-21T15:30:00Z", "settings": {"waiting_room": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, fetched) = env.get_json(&path, &[]).await;
    assert_eq!(fetched["scheduled_time"], "2025-03-21T15:30:00Z");
    assert_eq!(fetched["settings"]["recording_consent"], "verbal");

    // List filters and paging.
    let mine = env
        .all_pages("/healthcare/visits", "visits", &[("patient_id", &patient.id)], 2)
        .await;
    assert!(mine.iter().any(|v| v["id"] == id.as_str()));
    assert!(mine.iter().all(|v| v["patient_id"] == patient.id.as_str()));
    let (_, body) = env.get_json("/healthcare/visits", &[("page_size", "5")]).await;
    assert_eq!(body["total_records"], (data.visits.len() + 1) as u64);
    let everything = env.all_pages("/healthcare/visits", "visits", &[], 6).await;
    assert_eq!(everything.len(), data.visits.len() + 1);
    let done = env
        .all_pages("/healthcare/visits", "visits", &[("status", "completed,no_show")], 50)
        .await;
    assert_eq!(
        done.len(),
        data.visits
            .iter()
            .filter(|v| matches!(v.status, VisitStatus::Completed | VisitStatus::NoShow))
            .count()
    );
    let by_provider = env
        .all_pages(
            "/healthcare/visits",
            "visits",
            &[
                ("provider_id", &provider.id),
                ("from", "2025-03-21"),
                ("to", "2025-03-21"),
            ],
            50,
        )
        .await;
    assert!(by_provider.iter().any(|v| v["id"] == id.as_str()));
    assert!(
        by_provider
            .iter()
            .all(|v| v["scheduled_time"].as_str().unwrap().starts_with("2025-03-21"))
    );
    let (status, body) = env.get_json("/healthcare/visits", &[("status", "lost")]).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 300));

    // Lifecycle: join → waiting room → admit over HTTP → end.
    let waiting = env.sim.patient_joins(&id).unwrap();
    assert_eq!(waiting.status, VisitStatus::Waiting);
    let room = env.all_pages("/healthcare/waiting_room", "patients", &[], 50).await;
    let entry = room
        .iter()
        .find(|p| p["visit_id"] == id.as_str())
        .expect("in the waiting room");
    assert_eq!(entry["patient_id"], patient.id.as_str());
    assert_eq!(entry["first_name"], patient.first_name.as_str());
    let (status, _) = env
        .post(
            &format!("/healthcare/waiting_room/{}/notify", patient.id),
            json!({"message": "Two minutes."}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        env.sim.dataset().waiting_room_notifications.last().unwrap().message,
        "Two minutes."
    );
    let (status, admitted) = env
        .post(
            &format!("/healthcare/waiting_room/{}/admit", patient.id),
            json!({"visit_id": id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{admitted}");
    assert_eq!(admitted["status"], "in_progress");
    assert!(admitted["started_at"].is_string());
    let (status, body) = env
        .post(
            &format!("/healthcare/waiting_room/{}/admit", patient.id),
            json!({"visit_id": id}),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 3000));
    let ended = env.sim.end_visit(&id).unwrap();
    assert_eq!(ended.status, VisitStatus::Completed);
    assert!(ended.ended_at.is_some());
    assert!(matches!(
        env.sim.patient_joins(&id),
        Err(SimError::InvalidTransition { .. })
    ));
    assert!(matches!(env.sim.admit("visit_nope"), Err(SimError::NotFound { .. })));
    let (status, body) = env.patch(&path, json!({"status": "waiting"})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 3000));
    let (status, body) = env
        .patch(&path, json!({"scheduled_time": "2025-04-01T10:00:00Z"}))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 3000));
    let response = env
        .http
        .delete(env.url(&path))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(env.sim.dataset().visit(&id).unwrap().status, VisitStatus::Completed);

    // Cancel with DELETE; no-show through the handle; status through PATCH.
    let scheduled: Vec<String> = data
        .visits
        .iter()
        .filter(|v| v.status == VisitStatus::Scheduled)
        .map(|v| v.id.clone())
        .collect();
    assert!(scheduled.len() >= 3);
    let response = env
        .http
        .delete(env.url(&format!("/healthcare/visits/{}", scheduled[0])))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (_, body) = env.get_json(&format!("/healthcare/visits/{}", scheduled[0]), &[]).await;
    assert_eq!(body["status"], "cancelled");
    assert!(body["cancelled_at"].is_string());
    assert_eq!(env.sim.mark_no_show(&scheduled[1]).unwrap().status, VisitStatus::NoShow);
    let (status, _) = env
        .patch(
            &format!("/healthcare/visits/{}", scheduled[2]),
            json!({"status": "waiting"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        env.sim.dataset().visit(&scheduled[2]).unwrap().status,
        VisitStatus::Waiting
    );

    // Admitting someone who is not waiting; unknown patients.
    let (status, body) = env
        .post(
            &format!("/healthcare/waiting_room/{}/admit", data.patients[1].id),
            json!({"visit_id": "visit_nope"}),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 3000));
    let (status, body) = env.post("/healthcare/waiting_room/pat_nope/admit", json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, 1001));
}

#[tokio::test]
async fn patients_and_invitations() {
    let env = Env::small().await;
    let (status, patient) = env
        .post(
            "/healthcare/patients",
            json!({"first_name": "Zoë", "last_name": "O'Neill", "email": "zoe@example.org", "phone": "(212) 555-0101", "date_of_birth": "1990-02-03"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{patient}");
    let id = patient["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("pat_"));
    assert_eq!(patient["phone"], "+12125550101");
    let path = format!("/healthcare/patients/{id}");
    let (status, fetched) = env.get_json(&path, &[]).await;
    assert_eq!((status, &fetched), (StatusCode::OK, &patient));

    let (status, _) = env
        .patch(&path, json!({"last_name": "O'Neill-Reyes", "phone": ""}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, fetched) = env.get_json(&path, &[]).await;
    assert_eq!(fetched["last_name"], "O'Neill-Reyes");
    assert_eq!(fetched["first_name"], "Zoë");

    for body in [
        json!({"last_name": "X"}),
        json!({"first_name": "A", "last_name": "B", "email": "not-an-email"}),
        json!({"first_name": "A", "last_name": "B", "date_of_birth": "03/02/1990"}),
    ] {
        let (status, body) = env.post("/healthcare/patients", body).await;
        assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 300));
    }
    let (status, body) = env.get_json("/healthcare/patients/pat_nope", &[]).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, 1001));

    // Invitations: email works, SMS needs a phone, channels are validated.
    let provider = env.sim.dataset().providers[0].id.clone();
    let (_, visit) = env
        .post(
            "/healthcare/visits",
            json!({"patient_id": id, "provider_id": provider, "scheduled_time": "2025-03-18T16:00:00Z"}),
        )
        .await;
    let (status, invitation) = env
        .post(
            &format!("{path}/invite"),
            json!({"visit_id": visit["id"], "channels": ["email"], "message": "See you Tuesday."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    assert_eq!(invitation["channels"], json!(["email"]));
    assert_eq!(invitation["join_url"], visit["join_url_patient"]);
    assert_eq!(invitation["status"], "sent");
    assert_eq!(env.sim.dataset().invitations.len(), 1);
    let (status, body) = env
        .post(&format!("{path}/invite"), json!({"channels": ["email", "sms"]}))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 300));
    let (status, _) = env.post(&format!("{path}/invite"), json!({"channels": ["fax"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = env.post(&format!("{path}/invite"), json!({"channels": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let with_phone = env
        .sim
        .dataset()
        .patients
        .iter()
        .find(|p| !p.phone.is_empty() && !p.email.is_empty())
        .unwrap()
        .id
        .clone();
    let (status, body) = env
        .post(
            &format!("/healthcare/patients/{with_phone}/invite"),
            json!({"channels": ["sms", "email", "sms"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["channels"], json!(["sms", "email"]));
    let (status, body) = env
        .post("/healthcare/patients/pat_nope/invite", json!({"channels": ["email"]}))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, 1001));
}

#[tokio::test]
async fn providers_and_their_availability() {
    let env = Env::small().await;
    let data = env.sim.dataset();
    let providers = env.all_pages("/healthcare/providers", "providers", &[], 2).await;
    assert_eq!(providers.len(), data.providers.len());
    let (_, body) = env.get_json("/healthcare/providers", &[("page_size", "2")]).await;
    assert_eq!(body["total_records"], data.providers.len() as u64);
    let provider = &data.providers[0];
    assert_eq!(provider.email, small_ehr().doctors[0].email);
    let (status, body) = env
        .get_json(&format!("/healthcare/providers/{}", provider.id), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user_id"], provider.user_id.as_str());
    let (status, body) = env.get_json("/healthcare/providers/prov_nope", &[]).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, 1001));

    let path = format!("/healthcare/providers/{}/availability", provider.id);
    let (status, availability) = env.get_json(&path, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(availability["provider_id"], provider.id.as_str());
    assert!(availability.get("available_slots").is_none());
    assert!(!availability["weekly_hours"].as_array().unwrap().is_empty());

    let (status, _) = env
        .patch(
            &path,
            json!({
                "timezone": "America/Chicago",
                "slot_duration_minutes": 30,
                "weekly_hours": [
                    {"day": "monday", "start_time": "09:00", "end_time": "12:00"},
                    {"day": "wednesday", "start_time": "13:00", "end_time": "15:00"},
                ],
                "date_overrides": [{"date": "2025-03-19", "available": false, "reason": "Conference"}],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, availability) = env
        .get_json(&path, &[("from", "2025-03-17"), ("to", "2025-03-23")])
        .await;
    assert_eq!(availability["timezone"], "America/Chicago");
    assert_eq!(availability["weekly_hours"].as_array().unwrap().len(), 2);
    let slots = availability["available_slots"].as_array().unwrap();
    // Monday 09:00–12:00 Chicago (CDT, UTC−5) in 30-minute slots, minus booked visits; the
    // Wednesday is off.
    let booked: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> = data
        .visits
        .iter()
        .filter(|v| {
            v.provider_id == provider.id
                && matches!(
                    v.status,
                    VisitStatus::Scheduled | VisitStatus::Waiting | VisitStatus::InProgress
                )
        })
        .map(|v| {
            let start = chrono::DateTime::parse_from_rfc3339(&v.scheduled_time)
                .unwrap()
                .to_utc();
            (start, start + chrono::TimeDelta::minutes(v.duration_minutes))
        })
        .collect();
    let expected: Vec<String> = (0..6)
        .map(|i| {
            chrono::DateTime::parse_from_rfc3339("2025-03-17T14:00:00Z")
                .unwrap()
                .to_utc()
                + chrono::TimeDelta::minutes(30 * i)
        })
        .filter(|start| {
            let end = *start + chrono::TimeDelta::minutes(30);
            !booked.iter().any(|(b0, b1)| start < b1 && b0 < &end)
        })
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect();
    let starts: Vec<&str> = slots.iter().map(|s| s["start_time"].as_str().unwrap()).collect();
    assert!(!expected.is_empty());
    assert_eq!(starts, expected);

    for body in [
        json!({"timezone": "Mars/Olympus"}),
        json!({"weekly_hours": [{"day": "funday", "start_time": "09:00", "end_time": "10:00"}]}),
        json!({"weekly_hours": [{"day": "monday", "start_time": "11:00", "end_time": "10:00"}]}),
        json!({"date_overrides": [{"date": "2025-03-19", "available": true}]}),
        json!({"slot_duration_minutes": 1}),
    ] {
        let (status, body) = env.patch(&path, body).await;
        assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, 300));
    }
    let (status, _) = env
        .get_json(&path, &[("from", "2025-03-17"), ("to", "2025-06-17")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

// -------------------------------------------------------------------------------------------
// Webhooks

#[derive(Clone, Copy, PartialEq, Eq)]
enum Handshake {
    Correct,
    WrongToken,
}

/// A webhook receiver: answers the URL validation (rightly or wrongly), fails the first
/// `fail_events` events with 500, and records every request.
#[derive(Clone)]
struct Receiver {
    secret: String,
    handshake: Handshake,
    fail_events: Arc<Mutex<u32>>,
    received: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

impl Receiver {
    async fn spawn(secret: &str, handshake: Handshake, fail_events: u32) -> (String, Self) {
        let receiver = Receiver {
            secret: secret.to_owned(),
            handshake,
            fail_events: Arc::new(Mutex::new(fail_events)),
            received: Arc::new(Mutex::new(Vec::new())),
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { state.handle(headers, body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, receiver)
    }

    fn handle(&self, headers: HeaderMap, body: Bytes) -> (AxumStatus, String) {
        let text = String::from_utf8(body.to_vec()).unwrap();
        self.received.lock().unwrap().push((headers, text.clone()));
        let value: Value = serde_json::from_str(&text).unwrap();
        if value["event"] == events::URL_VALIDATION {
            let plain = value["payload"]["plainToken"].as_str().unwrap();
            let encrypted = match self.handshake {
                Handshake::Correct => hmac_hex(&self.secret, plain.as_bytes()),
                Handshake::WrongToken => hmac_hex("not-the-secret", plain.as_bytes()),
            };
            return (
                AxumStatus::OK,
                json!({"plainToken": plain, "encryptedToken": encrypted}).to_string(),
            );
        }
        let mut failures = self.fail_events.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return (AxumStatus::INTERNAL_SERVER_ERROR, String::new());
        }
        (AxumStatus::OK, String::new())
    }

    fn bodies(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| serde_json::from_str(body).unwrap())
            .collect()
    }
}

fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    HEXLOWER.encode(&mac.finalize().into_bytes())
}

fn fast_webhooks(config: ZoomSimConfig, url: Option<String>) -> ZoomSimConfig {
    ZoomSimConfig {
        webhook_url: url,
        webhook_retries: 2,
        webhook_retry_delay: Duration::from_millis(30),
        ..config
    }
}

#[tokio::test]
async fn webhooks_validate_the_url_then_deliver_signed_events() {
    let secret = "s3cr3t-token";
    let (url, receiver) = Receiver::spawn(secret, Handshake::Correct, 0).await;
    let env = Env::new(ZoomSimConfig {
        webhook_secret: secret.into(),
        ..fast_webhooks(small_config(), Some(url.clone()))
    })
    .await;
    let data = env.sim.dataset();

    // Triggers: note completion (handle and API), note creation for a visit, content edit, and
    // a whole visit lifecycle.
    let drafts: Vec<&ClinicalNote> = data.clinical_notes.iter().filter(|n| !n.is_note_completed).collect();
    assert!(drafts.len() >= 2);
    let completed = env.sim.complete_note(&drafts[0].note_id).unwrap();
    assert!(completed.is_note_completed);
    let (status, _) = env
        .patch(
            &format!("/clinical_notes/notes/{}", drafts[1].note_id),
            json!({"is_note_completed": true}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let visit = data
        .visits
        .iter()
        .find(|v| {
            v.status == VisitStatus::Scheduled
                && v.settings.waiting_room
                && data.provider(&v.provider_id).is_some_and(|p| p.clinical_notes_enabled)
        })
        .unwrap()
        .id
        .clone();
    env.sim.patient_joins(&visit).unwrap();
    env.sim.admit(&visit).unwrap();
    env.sim.end_visit(&visit).unwrap();
    let note = env
        .sim
        .create_note(NewNote {
            visit_id: Some(visit.clone()),
            ..NewNote::default()
        })
        .unwrap();
    assert_eq!(note.meeting_id, env.sim.dataset().visit(&visit).unwrap().meeting_id);
    env.sim
        .update_note_content(&note.note_id, "## Addendum\nPatient called back.")
        .unwrap();
    let (status, created) = env
        .post(
            "/healthcare/visits",
            json!({"patient_id": data.patients[0].id, "provider_id": data.providers[0].id, "scheduled_time": "2025-03-25T15:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let response = env
        .http
        .delete(env.url(&format!("/healthcare/visits/{}", created["id"].as_str().unwrap())))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    assert!(env.sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let expected = [
        events::NOTE_COMPLETED,
        events::NOTE_COMPLETED,
        events::PATIENT_WAITING,
        events::PATIENT_ADMITTED,
        events::VISIT_STARTED,
        events::VISIT_ENDED,
        events::NOTE_CREATED,
        events::NOTE_UPDATED,
        events::VISIT_SCHEDULED,
        events::VISIT_CANCELLED,
    ];
    let log = env.sim.webhook_log();
    assert_eq!(log[0].event, events::URL_VALIDATION);
    assert_eq!(log[0].outcome, DeliveryOutcome::Validated);
    assert_eq!(log.len(), expected.len() + 1);
    for (entry, event) in log[1..].iter().zip(expected) {
        assert_eq!(entry.event, event);
        assert_eq!(entry.outcome, DeliveryOutcome::Delivered);
        assert_eq!(entry.status, Some(200));
        assert_eq!(entry.attempts, 1);
        assert_eq!(entry.url.as_deref(), Some(url.as_str()));
    }

    // What the receiver got: the handshake, then the events in order, each signed.
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), expected.len() + 1);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    for (headers, body) in &received {
        let timestamp = headers["x-zm-request-timestamp"].to_str().unwrap();
        let ts: u64 = timestamp.parse().unwrap();
        assert!(now.abs_diff(ts) < 60);
        let expected_signature = format!("v0={}", hmac_hex(secret, format!("v0:{timestamp}:{body}").as_bytes()));
        assert_eq!(headers["x-zm-signature"].to_str().unwrap(), expected_signature);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
    }
    let bodies = receiver.bodies();
    assert_eq!(bodies[0]["event"], events::URL_VALIDATION);
    for (body, event) in bodies[1..].iter().zip(expected) {
        assert_eq!(body["event"], event);
        assert!(body["event_ts"].as_i64().unwrap() > 1_600_000_000_000);
        assert_eq!(body["payload"]["account_id"], env.sim.config().account_id.as_str());
        assert!(body["payload"]["object"].is_object());
    }
    let completed_object = &bodies[1]["payload"]["object"];
    assert_eq!(completed_object["note_id"], drafts[0].note_id.as_str());
    assert_eq!(completed_object["is_note_completed"], true);
    assert!(completed_object.get("note_content").is_none());
    let waiting_object = &bodies[3]["payload"]["object"];
    assert_eq!(waiting_object["visit_id"], visit.as_str());
    assert!(waiting_object["joined_at"].is_string());
    let started = &bodies[5]["payload"]["object"];
    assert_eq!(started["status"], "in_progress");
    assert!(started.get("join_url_provider").is_none());
    assert_eq!(bodies[6]["payload"]["object"]["status"], "completed");
}

#[tokio::test]
async fn webhooks_are_refused_when_the_handshake_is_wrong() {
    let secret = "right-secret";
    let (url, receiver) = Receiver::spawn(secret, Handshake::WrongToken, 0).await;
    let sim = spawn(ZoomSimConfig {
        webhook_secret: secret.into(),
        ..fast_webhooks(small_config(), Some(url))
    })
    .await;
    let draft = sim
        .dataset()
        .clinical_notes
        .iter()
        .find(|n| !n.is_note_completed)
        .unwrap()
        .note_id
        .clone();
    sim.complete_note(&draft).unwrap();
    assert!(sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let log = sim.webhook_log();
    let outcomes: Vec<(&str, DeliveryOutcome)> = log.iter().map(|e| (e.event.as_str(), e.outcome)).collect();
    assert_eq!(
        outcomes,
        vec![
            (events::URL_VALIDATION, DeliveryOutcome::ValidationFailed),
            (events::NOTE_COMPLETED, DeliveryOutcome::Refused),
        ]
    );
    assert_eq!(log[1].attempts, 0);
    let bodies = receiver.bodies();
    assert!(bodies.iter().all(|b| b["event"] == events::URL_VALIDATION));

    // A correct receiver at a new URL gets validated and served.
    let (good_url, good) = Receiver::spawn(secret, Handshake::Correct, 0).await;
    sim.set_webhook_url(Some(good_url));
    let visit = sim
        .dataset()
        .visits
        .iter()
        .find(|v| v.status == VisitStatus::Scheduled)
        .unwrap()
        .id
        .clone();
    sim.cancel_visit(&visit).unwrap();
    assert!(sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let log = sim.webhook_log();
    assert_eq!(log[2].outcome, DeliveryOutcome::Validated);
    assert_eq!(
        (log[3].event.as_str(), log[3].outcome),
        (events::VISIT_CANCELLED, DeliveryOutcome::Delivered)
    );
    assert_eq!(good.bodies().len(), 2);
}

#[tokio::test]
async fn webhooks_are_retried_and_logged_without_a_url() {
    let secret = "retry-secret";
    // The first two event requests fail: the first event succeeds on its third attempt (two
    // retries), the second at once.
    let (url, receiver) = Receiver::spawn(secret, Handshake::Correct, 2).await;
    let sim = spawn(ZoomSimConfig {
        webhook_secret: secret.into(),
        ..fast_webhooks(small_config(), None)
    })
    .await;
    let visits: Vec<String> = sim
        .dataset()
        .visits
        .iter()
        .filter(|v| v.status == VisitStatus::Scheduled)
        .map(|v| v.id.clone())
        .collect();
    sim.cancel_visit(&visits[0]).unwrap();
    assert!(sim.wait_for_webhooks(Duration::from_secs(5)).await);
    let log = sim.webhook_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].outcome, DeliveryOutcome::NotConfigured);
    assert_eq!(log[0].event, events::VISIT_CANCELLED);

    sim.clear_webhook_log();
    sim.set_webhook_url(Some(url));
    sim.cancel_visit(&visits[1]).unwrap();
    sim.mark_no_show(&visits[2]).unwrap();
    assert!(sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let log = sim.webhook_log();
    let summary: Vec<(&str, DeliveryOutcome, u32, Option<u16>)> = log
        .iter()
        .map(|e| (e.event.as_str(), e.outcome, e.attempts, e.status))
        .collect();
    assert_eq!(
        summary,
        vec![
            (events::URL_VALIDATION, DeliveryOutcome::Validated, 1, Some(200)),
            (events::VISIT_CANCELLED, DeliveryOutcome::Delivered, 3, Some(200)),
            (events::VISIT_ENDED, DeliveryOutcome::Delivered, 1, Some(200)),
        ]
    );
    let ended: Value = serde_json::from_str(&log[2].body).unwrap();
    assert_eq!(ended["payload"]["object"]["status"], "no_show");
    assert_eq!(receiver.bodies().len(), 5);

    // Always failing: given up after 1 + retries attempts.
    *receiver.fail_events.lock().unwrap() = 100;
    sim.clear_webhook_log();
    sim.cancel_visit(&visits[3]).unwrap();
    assert!(sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let log = sim.webhook_log();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].outcome, log[0].attempts, log[0].status),
        (DeliveryOutcome::Failed, 3, Some(500))
    );
}

// -------------------------------------------------------------------------------------------
// Rate limits, faults, hits, control routes

#[tokio::test]
async fn rate_limits_answer_429_with_zoom_headers() {
    let env = Env::new(ZoomSimConfig {
        rate_limits: RateLimits {
            light: 3,
            medium: 100,
            heavy: 100,
        },
        ..small_config()
    })
    .await;
    let note = env.sim.dataset().clinical_notes[0].note_id.clone();
    let path = format!("/clinical_notes/notes/{note}");
    let responses = futures_join(&env, &path, 12).await;
    let ok: Vec<&reqwest::Response> = responses.iter().filter(|r| r.status() == StatusCode::OK).collect();
    let limited: Vec<&reqwest::Response> = responses
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(!limited.is_empty() && ok.len() >= 3 && ok.len() <= 6, "{} ok", ok.len());
    for response in &ok {
        assert_eq!(response.headers()["x-ratelimit-category"], "Light");
        assert_eq!(response.headers()["x-ratelimit-limit"], "3");
    }
    let response = limited[0];
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["x-ratelimit-category"], "Light");
    assert_eq!(response.headers()["x-ratelimit-limit"], "3");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");

    // Medium endpoints have their own budget.
    let (status, _) = env.get_json("/healthcare/visits", &[]).await;
    assert_eq!(status, StatusCode::OK);

    let response = env.get(&path, &[]).await;
    let response = if response.status() == StatusCode::OK {
        // A new second started; exhaust it again.
        let mut last = response;
        for _ in 0..10 {
            last = env.get(&path, &[]).await;
            if last.status() == StatusCode::TOO_MANY_REQUESTS {
                break;
            }
        }
        last
    } else {
        response
    };
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), 429);

    // After a second, requests go through again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(env.get(&path, &[]).await.status(), StatusCode::OK);
    env.sim.set_rate_limits(RateLimits {
        light: 0,
        medium: 0,
        heavy: 0,
    });
    let responses = futures_join(&env, &path, 12).await;
    assert!(responses.iter().all(|r| r.status() == StatusCode::OK));
}

/// `n` concurrent GETs of `path`.
async fn futures_join(env: &Env, path: &str, n: usize) -> Vec<reqwest::Response> {
    let mut handles = Vec::new();
    for _ in 0..n {
        let request = env.http.get(env.url(path)).bearer_auth(&env.token);
        handles.push(tokio::spawn(async move { request.send().await.unwrap() }));
    }
    let mut responses = Vec::new();
    for handle in handles {
        responses.push(handle.await.unwrap());
    }
    responses
}

#[tokio::test]
async fn each_fault_knob() {
    let env = Env::small().await;
    let path = "/healthcare/providers";

    env.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..5 {
        let response = env.get(path, &[]).await;
        assert!(response.status().is_server_error());
    }
    // OAuth is never faulted.
    let token = fetch_token(&env.sim, &env.http).await;
    assert!(!token.is_empty());

    env.sim.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    let response = env.get(path, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&response.text().await.unwrap()).is_err());

    env.sim.set_faults(Faults::default());
    let full = env.get(path, &[]).await.bytes().await.unwrap();
    env.sim.set_faults(Faults {
        truncated_rate: 1.0,
        ..Faults::default()
    });
    let response = env.get(path, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cut = response.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&cut).is_err());
    assert!(full.starts_with(&cut) && cut.len() == full.len() / 2);

    env.sim.set_faults(Faults {
        latency: Duration::from_millis(250),
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(env.get(path, &[]).await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(250));

    env.sim.set_faults(Faults {
        foreign_next_origin: Some("https://evil.example".into()),
        ..Faults::default()
    });
    let (status, body) = env.get_json(path, &[("page_size", "1")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.to_string().contains("evil.example"));
}

#[tokio::test]
async fn hits_are_counted_per_path() {
    let env = Env::small().await;
    env.get("/clinical_notes/notes", &[]).await;
    env.get("/clinical_notes/notes/x", &[]).await;
    env.get("/healthcare/visits", &[]).await;
    env.http.get(env.url("/healthcare/visits")).send().await.unwrap();
    assert_eq!(env.sim.hits(), 4);
    assert_eq!(env.sim.hits_for("/v2/clinical_notes"), 2);
    assert_eq!(env.sim.hits_for("/v2/healthcare/visits"), 2);
    env.sim.reset_hits();
    assert_eq!(env.sim.hits(), 0);
    let (status, body) = env.get_json("/nothing/here", &[]).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, 404));
}

#[tokio::test]
async fn control_routes_drive_the_lifecycle_over_http() {
    let sim = spawn(small_config()).await;
    let http = reqwest::Client::new();
    let visit = sim
        .dataset()
        .visits
        .iter()
        .find(|v| v.status == VisitStatus::Scheduled)
        .unwrap()
        .id
        .clone();
    for (action, status) in [("join", "waiting"), ("admit", "in_progress"), ("end", "completed")] {
        let response = http
            .post(format!("{}/_sim/visits/{visit}/{action}", sim.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], status);
    }
    let response = http
        .post(format!("{}/_sim/visits/{visit}/join", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = http
        .post(format!("{}/_sim/notes", sim.base_url()))
        .json(&json!({"visit_id": visit, "content": "## Note\nDone."}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let note: ClinicalNote = response.json().await.unwrap();
    assert_eq!(note.note_content, "## Note\nDone.");
    assert!(!note.is_note_completed);
    let response = http
        .post(format!("{}/_sim/notes/{}/complete", sim.base_url(), note.note_id))
        .send()
        .await
        .unwrap();
    let note: ClinicalNote = response.json().await.unwrap();
    assert!(note.is_note_completed);
    assert_eq!(sim.dataset().note(&note.note_id), Some(&note));
    // The clock the timestamps come from can be moved.
    let before = sim.now();
    sim.advance_clock(chrono::TimeDelta::hours(2));
    assert!(sim.now() - before >= chrono::TimeDelta::hours(2));
    sim.shutdown();
}

#[tokio::test]
async fn rate_limit_bursts_spikes_and_dropped_connections() {
    let env = Env::small().await;
    let path = "/healthcare/providers";
    env.sim.set_rate_limit_burst(2);
    for _ in 0..2 {
        let response = env.get(path, &[]).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.headers()["x-ratelimit-category"], "Medium");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(code(&body), 429);
    }
    assert_eq!(env.sim.faults().rate_limit_burst, 0);
    assert_eq!(env.get(path, &[]).await.status(), StatusCode::OK);

    env.sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(env.get(path, &[]).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // OAuth is never faulted.
    assert!(!fetch_token(&env.sim, &env.http).await.is_empty());

    env.sim.set_faults(Faults {
        spike_rate: 1.0,
        spike_latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(env.get(path, &[]).await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    env.sim.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    let error = env
        .http
        .get(env.url(path))
        .bearer_auth(&env.token)
        .send()
        .await
        .expect_err("the connection is dropped");
    assert!(error.status().is_none() && !error.is_timeout(), "{error:?}");
    env.sim.set_faults(Faults::default());
    assert_eq!(env.get(path, &[]).await.status(), StatusCode::OK);
}
