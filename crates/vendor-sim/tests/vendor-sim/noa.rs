//! The Noa Notes simulator over real loopback HTTP, checked against `docs/noa-api.md` (the
//! contract shared with the adapter) and against its own dataset.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use chrono::{NaiveDate, TimeDelta};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig};
use vendor_sim::noa::wire::{SessionDetails, SessionList, SessionStatus, Summary, WebhookEvent};
use vendor_sim::noa::{DeliveryOutcome, EhrRefs, Faults, NoaSim, NoaSimConfig, NoaSimHandle, SimError};

const STATUS_NAMES: [&str; 12] = [
    "New",
    "Recording",
    "Recorded",
    "Transcribing",
    "Transcribed",
    "Analyzing",
    "Summarized",
    "Verified",
    "EmptySummaryVerified",
    "Interrupted",
    "Failed",
    "Expired",
];

fn anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, 14).expect("valid date")
}

fn drchrono_small() -> Arc<vendor_sim::drchrono::Dataset> {
    DrChronoSim::new(DrChronoSimConfig::small(11, anchor())).dataset()
}

fn small_config() -> NoaSimConfig {
    NoaSimConfig::small(7, anchor(), EhrRefs::from_drchrono(&drchrono_small()))
}

async fn spawn(config: NoaSimConfig) -> NoaSimHandle {
    NoaSim::new(config)
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("spawn")
}

const V: (&str, &str) = ("api-version", "1.0");

async fn sign_in(sim: &NoaSimHandle, http: &reqwest::Client, secret: &str) -> reqwest::Response {
    http.post(format!("{}/clients/authenticate", sim.api_base_url()))
        .query(&[V])
        .json(&json!({"clientId": sim.config().client_id, "secret": secret}))
        .send()
        .await
        .expect("sign-in request")
}

/// A running simulator and a consumer token.
struct Env {
    sim: NoaSimHandle,
    http: reqwest::Client,
    token: String,
}

impl Env {
    async fn new(config: NoaSimConfig) -> Self {
        let sim = spawn(config).await;
        let http = reqwest::Client::new();
        let response = sign_in(&sim, &http, &sim.config().client_secret.clone()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("token JSON");
        let token = body["accessToken"].as_str().expect("accessToken").to_owned();
        Env { sim, http, token }
    }

    async fn small() -> Self {
        Self::new(small_config()).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.api_base_url())
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .query(&[V])
            .query(query)
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
        };
        (status, value)
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        self.send_with(Method::GET, path, query, &self.token, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send_with(Method::POST, path, &[], &self.token, Some(body)).await
    }

    /// POSTs `body` as it is written.
    async fn post_raw(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .query(&[V])
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.expect("JSON"))
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send_with(Method::PUT, path, &[], &self.token, Some(body)).await
    }

    /// A registered (doctor, facility) pair of the dataset.
    fn registered(&self) -> (String, String) {
        let doctor = self.sim.dataset().doctors[0].clone();
        (doctor.external_doctor_id, doctor.external_facility_id)
    }

    async fn create(&self, episode: &str) -> (StatusCode, Value) {
        let (doctor, facility) = self.registered();
        self.post(
            "/consumers/sessions",
            json!({"episodeId": episode, "doctorId": doctor, "facilityId": facility}),
        )
        .await
    }

    /// A typed answer, parsed from the text (a `Value` would sort template sections).
    async fn get_typed<T: serde::de::DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> T {
        let response = self
            .http
            .get(self.url(path))
            .query(&[V])
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, StatusCode::OK, "{text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }

    async fn status_of(&self, session_id: &str) -> SessionDetails {
        self.get_typed(&format!("/consumers/sessions/{session_id}/status"), &[])
            .await
    }

    async fn summary_of(&self, session_id: &str) -> (StatusCode, Value) {
        self.get(&format!("/consumers/sessions/{session_id}/summary"), &[])
            .await
    }

    /// Every page of the list with `query`.
    async fn all_pages(&self, query: &[(&str, &str)], page_size: usize) -> Vec<SessionDetails> {
        let size = page_size.to_string();
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let mut q: Vec<(&str, &str)> = vec![("pageSize", &size)];
            match &token {
                Some(token) => q.push(("pageToken", token)),
                None => q.extend_from_slice(query),
            }
            let page: SessionList = self.get_typed("/consumers/sessions", &q).await;
            assert!(page.items.len() <= page_size);
            items.extend(page.items);
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => return items,
            }
        }
        panic!("paging never ended");
    }

    /// Advances the clock in 30 s steps, `total` in all, and waits for the webhooks.
    async fn run_clock(&self, total: TimeDelta) {
        let step = TimeDelta::seconds(30);
        let mut done = TimeDelta::zero();
        while done < total {
            self.sim.advance_clock(step);
            done += step;
        }
        assert!(self.sim.wait_for_webhooks(Duration::from_secs(20)).await);
    }
}

fn problem_type(body: &Value) -> &str {
    body["type"].as_str().unwrap_or_default()
}

fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    assert!(body["title"].is_string(), "{body}");
    assert!(body["traceId"].as_str().is_some_and(|t| t.starts_with("00-")), "{body}");
}

fn is_uuid(raw: &str) -> bool {
    let parts: Vec<&str> = raw.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && raw
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// A webhook listener that records every body it gets and answers 204.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    async fn start() -> Self {
        let received: Arc<Mutex<Vec<(String, Value)>>> = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let app = axum::Router::new().route(
            "/webhooks/noa/{secret}",
            axum::routing::post(
                move |axum::extract::Path(secret): axum::extract::Path<String>, body: Bytes| {
                    let sink = sink.clone();
                    async move {
                        let value: Value = serde_json::from_slice(&body).expect("webhook JSON");
                        sink.lock().expect("lock").push((secret, value));
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/webhooks/noa/s3cret", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, received }
    }

    /// Events received for `session_id`, in order.
    fn events_for(&self, session_id: &str) -> Vec<WebhookEvent> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, v)| v["sessionId"] == session_id)
            .map(|(_, v)| serde_json::from_value(v.clone()).expect("webhook event"))
            .collect()
    }
}

#[tokio::test]
async fn sign_in_wrong_secret_and_expired_tokens() {
    let sim = spawn(small_config()).await;
    let http = reqwest::Client::new();
    assert!(is_uuid(&sim.config().client_id));
    assert!(is_uuid(&sim.config().consumer_id));

    let response = sign_in(&sim, &http, "wrong").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/problem+json")
    );
    let body: Value = response.json().await.expect("problem");
    assert_problem(StatusCode::UNAUTHORIZED, &body, StatusCode::UNAUTHORIZED);
    assert_eq!(sim.token_grants(), 0);

    let unknown_client = http
        .post(format!("{}/clients/authenticate", sim.api_base_url()))
        .query(&[V])
        .json(&json!({"clientId": "5e505642-9024-474d-9434-e5a44f505cc5", "secret": sim.config().client_secret}))
        .send()
        .await
        .expect("request");
    assert_eq!(unknown_client.status(), StatusCode::UNAUTHORIZED);

    let response = sign_in(&sim, &http, &sim.config().client_secret).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token");
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 3600);
    let token = body["accessToken"].as_str().expect("token").to_owned();
    assert_eq!(sim.token_grants(), 1);

    let list = |token: String| {
        let http = http.clone();
        let url = format!("{}/consumers/sessions", sim.api_base_url());
        async move { http.get(url).query(&[V]).bearer_auth(token).send().await.expect("list") }
    };
    assert_eq!(list(token.clone()).await.status(), StatusCode::OK);
    let no_token = http
        .get(format!("{}/consumers/sessions", sim.api_base_url()))
        .query(&[V])
        .send()
        .await
        .expect("request");
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    assert!(no_token.headers().contains_key("www-authenticate"));
    assert_eq!(list("garbage".into()).await.status(), StatusCode::UNAUTHORIZED);

    sim.expire_access_tokens();
    let expired = list(token).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let body: Value = expired.json().await.expect("problem");
    assert!(body["detail"].as_str().expect("detail").contains("expired"), "{body}");

    // Signing in again gives a working token.
    let response = sign_in(&sim, &http, &sim.config().client_secret).await;
    let body: Value = response.json().await.expect("token");
    let fresh = body["accessToken"].as_str().expect("token").to_owned();
    assert_eq!(list(fresh).await.status(), StatusCode::OK);
    assert_eq!(sim.token_grants(), 2);
    sim.shutdown();
}

#[tokio::test]
async fn api_version_is_required() {
    let env = Env::small().await;
    let url = env.url("/consumers/sessions");
    let missing = env
        .http
        .get(&url)
        .bearer_auth(&env.token)
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    let body: Value = missing.json().await.expect("problem");
    assert_problem(StatusCode::BAD_REQUEST, &body, StatusCode::BAD_REQUEST);
    assert!(problem_type(&body).ends_with("#unspecified"), "{body}");

    let other = env
        .http
        .get(&url)
        .query(&[("api-version", "2.0")])
        .bearer_auth(&env.token)
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), StatusCode::BAD_REQUEST);
    let body: Value = other.json().await.expect("problem");
    assert!(problem_type(&body).ends_with("#unsupported"), "{body}");

    // Sign-in too, and before the token is looked at.
    let sign_in = env
        .http
        .post(env.url("/clients/authenticate"))
        .json(&json!({"clientId": env.sim.config().client_id, "secret": env.sim.config().client_secret}))
        .send()
        .await
        .expect("request");
    assert_eq!(sign_in.status(), StatusCode::BAD_REQUEST);
    let no_auth = env.http.get(&url).send().await.expect("request");
    assert_eq!(no_auth.status(), StatusCode::BAD_REQUEST);
    env.sim.shutdown();
}

#[tokio::test]
async fn create_resume_and_new_after_final() {
    let env = Env::small().await;
    let (doctor, facility) = env.registered();
    // Raw text: a `serde_json::Value` would sort the template's sections before sending.
    let body = format!(
        r#"{{"episodeId": "episode-123", "doctorId": "{doctor}", "facilityId": "{facility}",
            "webhookUrl": "http://127.0.0.1:9/hook",
            "template": {{"value": {{
                "Reason for the Visit": "Detailed description of the presenting problem",
                "Personal Information": "Include patient demographics and insurance information",
                "Allergies": "Known allergies"}}}},
            "visitType": "FirstVisit", "metadata": {{"key1": "value1", "patientId": "42"}},
            "language": "es-MX", "speciality": "psychiatrist"}}"#
    );
    let (status, created) = env.post_raw("/consumers/sessions", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["sessionId"].as_str().expect("sessionId").to_owned();
    assert!(is_uuid(&id), "{id}");
    assert_eq!(created["consumerId"], env.sim.config().consumer_id.as_str());
    assert_eq!(created["expiresIn"], 7200);
    assert_eq!(created["status"], "New");
    assert_eq!(
        created["recorderUrl"],
        format!("{}/recorder/sessions/{id}", env.sim.base_url())
    );
    assert_eq!(
        created["summaryUrl"],
        format!("{}/recorder/sessions/{id}/summary", env.sim.base_url())
    );
    let session_token = created["sessionToken"].as_str().expect("token").to_owned();

    // The template keeps its order on the wire.
    let raw = env
        .http
        .get(env.url(&format!("/consumers/sessions/{id}/status")))
        .query(&[V])
        .bearer_auth(&env.token)
        .send()
        .await
        .expect("status")
        .text()
        .await
        .expect("text");
    let reason = raw.find("Reason for the Visit").expect("reason");
    let personal = raw.find("Personal Information").expect("personal");
    let allergies = raw.find("\"Allergies\"").expect("allergies");
    assert!(reason < personal && personal < allergies, "{raw}");
    let details = env.status_of(&id).await;
    assert_eq!(details.status, SessionStatus::New);
    assert_eq!(details.episode_id, "episode-123");
    assert_eq!(details.facility_id.as_deref(), Some(facility.as_str()));
    assert_eq!(details.language, "es-MX");
    assert_eq!(details.visit_type.as_deref(), Some("FirstVisit"));
    assert_eq!(details.speciality.as_deref(), Some("psychiatrist"));
    assert_eq!(details.webhook_url.as_deref(), Some("http://127.0.0.1:9/hook"));
    let metadata = details.metadata.clone().expect("metadata");
    assert_eq!(metadata.get("key1").map(String::as_str), Some("value1"));
    let titles: Vec<&str> = details.template.as_ref().expect("template").titles().collect();
    assert_eq!(
        titles,
        vec!["Reason for the Visit", "Personal Information", "Allergies"]
    );
    assert_eq!(details.created_at, details.updated_at);
    assert!(details.created_at.ends_with('Z'));
    assert!(details.recording_started_at.is_none());

    // Resume: same session, a fresh token.
    let (status, resumed) = env.post_raw("/consumers/sessions", &body).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["sessionId"], id.as_str());
    assert_ne!(resumed["sessionToken"], session_token.as_str());

    // The session token reads its own session through /sessions/…, nothing else.
    let (status, own) = env
        .send_with(
            Method::GET,
            &format!("/sessions/{id}/status"),
            &[],
            &session_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["sessionId"], id.as_str());
    let (status, body_404) = env
        .send_with(
            Method::GET,
            &format!("/sessions/{id}/summary"),
            &[],
            &session_token,
            None,
        )
        .await;
    assert_problem(status, &body_404, StatusCode::NOT_FOUND);
    let (status, _) = env
        .send_with(Method::GET, "/consumers/sessions", &[], &session_token, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other = env.sim.dataset().sessions[0].session_id.clone();
    let (status, _) = env
        .send_with(
            Method::GET,
            &format!("/sessions/{other}/status"),
            &[],
            &session_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = env
        .send_with(
            Method::GET,
            &format!("/sessions/{id}/status"),
            &[],
            &env.token.clone(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Unknown and malformed ids.
    let (status, body_404) = env
        .get("/consumers/sessions/00000000-0000-4000-8000-000000000000/status", &[])
        .await;
    assert_problem(status, &body_404, StatusCode::NOT_FOUND);
    let (status, body_400) = env.get("/consumers/sessions/not-a-uuid/status", &[]).await;
    assert_problem(status, &body_400, StatusCode::BAD_REQUEST);
    let (status, body_405) = env
        .send_with(
            Method::DELETE,
            &format!("/consumers/sessions/{id}/status"),
            &[],
            &env.token.clone(),
            None,
        )
        .await;
    assert_problem(status, &body_405, StatusCode::METHOD_NOT_ALLOWED);
    let (status, body_404) = env.get("/consumers/nothing-here", &[]).await;
    assert_problem(status, &body_404, StatusCode::NOT_FOUND);

    // An in-flight session of the dataset is resumed too.
    let dataset = env.sim.dataset();
    let in_flight = dataset
        .sessions
        .iter()
        .find(|s| s.status == SessionStatus::Recording)
        .expect("a recording session");
    let (status, resumed) = env
        .post(
            "/consumers/sessions",
            json!({"episodeId": in_flight.episode_id, "doctorId": in_flight.doctor_id, "facilityId": in_flight.facility_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["sessionId"], in_flight.session_id.as_str());
    // Until final, the same triple resumes; once Verified, a new session starts.
    env.sim.advance_clock(TimeDelta::hours(1));
    assert_eq!(env.status_of(&id).await.status, SessionStatus::Summarized);
    let (status, resumed) = env.post_raw("/consumers/sessions", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resumed["sessionId"], id.as_str());
    assert_eq!(resumed["status"], "Summarized");
    let verified = env.sim.approve(&id, false).expect("approve");
    assert_eq!(verified.status, SessionStatus::Verified);
    let (status, fresh) = env.post_raw("/consumers/sessions", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{fresh}");
    assert_ne!(fresh["sessionId"], id.as_str());

    // A different facility (null) is a different triple.
    let (status, no_facility) = env
        .post(
            "/consumers/sessions",
            json!({"episodeId": "episode-123", "doctorId": doctor, "facilityId": null}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{no_facility}");
    let details = env.status_of(no_facility["sessionId"].as_str().expect("id")).await;
    assert_eq!(details.facility_id, None);
    assert_eq!(details.language, "en-US");
    assert_eq!(details.metadata, None);
    assert_eq!(details.template, None);

    env.sim.shutdown();
}

#[tokio::test]
async fn create_validates_and_needs_registered_doctors() {
    let env = Env::small().await;
    let (doctor, facility) = env.registered();
    let base = json!({"episodeId": "e-1", "doctorId": doctor, "facilityId": facility});
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    for (body, field) in [
        (with("episodeId", Value::Null), "EpisodeId"),
        (with("episodeId", json!("  ")), "EpisodeId"),
        (with("doctorId", Value::Null), "DoctorId"),
        (with("language", json!("en-GB")), "Language"),
        (with("visitType", json!("Emergency")), "VisitType"),
        (with("webhookUrl", json!("not a url")), "WebhookUrl"),
    ] {
        let (status, problem) = env.post("/consumers/sessions", body).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST);
        assert!(problem["errors"][field].is_array(), "{field}: {problem}");
    }
    let (status, problem) = env
        .post("/consumers/sessions", with("template", json!({"value": "nope"})))
        .await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST);
    let response = env
        .http
        .post(env.url("/consumers/sessions"))
        .query(&[V])
        .bearer_auth(&env.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Every language of the doc, visit types and null are fine.
    for language in vendor_sim::noa::wire::LANGUAGES {
        let (status, body) = env
            .post(
                "/consumers/sessions",
                with("language", json!(language))
                    .as_object()
                    .map(|o| {
                        let mut o = o.clone();
                        o.insert("episodeId".into(), json!(format!("lang-{language}")));
                        Value::Object(o)
                    })
                    .expect("object"),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{language}: {body}");
    }
    let (status, _) = env
        .post(
            "/consumers/sessions",
            json!({"episodeId": "vt", "doctorId": doctor, "facilityId": facility, "visitType": "FollowUpVisit", "language": null}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, problem) = env
        .post("/consumers/sessions", with("doctorId", json!("no-such-doctor")))
        .await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("Doctor 'no-such-doctor'"),
        "{problem}"
    );
    let (status, problem) = env
        .post("/consumers/sessions", with("facilityId", json!("no-such-facility")))
        .await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("Facility 'no-such-facility'"),
        "{problem}"
    );
    let (status, problem) = env
        .post(
            "/consumers/sessions",
            json!({"episodeId": "x", "doctorId": "no-such-doctor", "facilityId": null}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);
    env.sim.shutdown();
}

#[tokio::test]
async fn facilities_and_doctors_are_created_and_updated_by_external_id() {
    let env = Env::small().await;
    let (status, body) = env
        .put("/consumers/facilities/fac-9", json!({"name": "North Clinic"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body, json!({"externalFacilityId": "fac-9", "name": "North Clinic"}));
    let (status, body) = env
        .put("/consumers/facilities/fac-9", json!({"name": "North Clinic 2"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "North Clinic 2");
    let (status, body) = env.get("/consumers/facilities/fac-9", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "North Clinic 2");
    let (status, body) = env.get("/consumers/facilities/fac-unknown", &[]).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = env.put("/consumers/facilities/fac-9", json!({"name": " "})).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);

    let (status, body) = env
        .post(
            "/consumers/facilities/fac-9/doctors",
            json!({"name": "Dr. Ada", "externalDoctorId": "doc-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"externalDoctorId": "doc-1", "externalFacilityId": "fac-9", "name": "Dr. Ada"})
    );
    let (status, body) = env
        .post(
            "/consumers/facilities/fac-9/doctors",
            json!({"name": "Dr. Ada", "externalDoctorId": "doc-1"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (status, body) = env
        .post(
            "/consumers/facilities/fac-unknown/doctors",
            json!({"name": "Dr. Ada", "externalDoctorId": "doc-1"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = env
        .post(
            "/consumers/facilities/fac-9/doctors",
            json!({"name": "", "externalDoctorId": "doc-2"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) = env
        .put(
            "/consumers/facilities/fac-9/doctors/doc-1",
            json!({"name": "Dr. Ada L."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Dr. Ada L.");
    let (status, body) = env.get("/consumers/facilities/fac-9/doctors/doc-1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "Dr. Ada L.");
    let (status, body) = env
        .put("/consumers/facilities/fac-9/doctors/doc-unknown", json!({"name": "X"}))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = env.get("/consumers/facilities/fac-9/doctors/doc-unknown", &[]).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let dataset = env.sim.dataset();
    assert_eq!(
        dataset.facility("fac-9").map(|f| f.name.as_str()),
        Some("North Clinic 2")
    );
    assert_eq!(
        dataset.doctor("fac-9", "doc-1").map(|d| d.name.as_str()),
        Some("Dr. Ada L.")
    );

    let (status, body) = env
        .post(
            "/consumers/sessions",
            json!({"episodeId": "e-9", "doctorId": "doc-1", "facilityId": "fac-9"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The DrChrono doctor left unregistered: 404 until the client registers them.
    let ehr = &env.sim.config().ehr;
    let registered: BTreeSet<&str> = dataset.doctors.iter().map(|d| d.external_doctor_id.as_str()).collect();
    let appointment = ehr
        .appointments
        .iter()
        .find(|a| !registered.contains(a.doctor.to_string().as_str()))
        .expect("an appointment of an unregistered doctor");
    let office = appointment.office.to_string();
    let doctor = appointment.doctor.to_string();
    let request = json!({"episodeId": appointment.id, "doctorId": doctor, "facilityId": office});
    let (status, body) = env.post("/consumers/sessions", request.clone()).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, _) = env
        .put(&format!("/consumers/facilities/{office}"), json!({"name": "Office"}))
        .await;
    assert!(status == StatusCode::OK || status == StatusCode::CREATED);
    let (status, body) = env
        .post(
            &format!("/consumers/facilities/{office}/doctors"),
            json!({"name": "Dr. Late Registration", "externalDoctorId": doctor}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = env.post("/consumers/sessions", request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    env.sim.shutdown();
}

#[tokio::test]
async fn list_filters_and_pages_to_the_end() {
    let env = Env::small().await;
    let dataset = env.sim.dataset();
    let all = env.all_pages(&[], 7).await;
    assert_eq!(all.len(), dataset.sessions.len());
    let ids: HashSet<&str> = all.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "no repeats");
    assert_eq!(all, dataset.sessions, "createdAt then sessionId order");
    for pair in all.windows(2) {
        assert!(
            (&pair[0].created_at, &pair[0].session_id) < (&pair[1].created_at, &pair[1].session_id),
            "{} {}",
            pair[0].created_at,
            pair[1].created_at
        );
    }

    // Default page size 50, capped at 100.
    let (_, body) = env.get("/consumers/sessions", &[("pageSize", "1000")]).await;
    assert_eq!(
        body["items"].as_array().expect("items").len(),
        dataset.sessions.len().min(100)
    );

    let verified = env.all_pages(&[("status", "Verified")], 5).await;
    assert_eq!(verified.len(), dataset.sessions_in(SessionStatus::Verified).count());
    assert!(verified.iter().all(|s| s.status == SessionStatus::Verified));
    let two = env.all_pages(&[("status", "Verified"), ("status", "Failed")], 5).await;
    assert_eq!(
        two.len(),
        dataset
            .sessions
            .iter()
            .filter(|s| matches!(s.status, SessionStatus::Verified | SessionStatus::Failed))
            .count()
    );

    let sample = &dataset.sessions[dataset.sessions.len() / 2];
    let by_doctor = env.all_pages(&[("doctorId", &sample.doctor_id)], 4).await;
    assert_eq!(
        by_doctor.len(),
        dataset
            .sessions
            .iter()
            .filter(|s| s.doctor_id == sample.doctor_id)
            .count()
    );
    let facility = sample.facility_id.clone().expect("facility");
    let by_facility = env.all_pages(&[("facilityId", &facility)], 50).await;
    assert!(
        by_facility
            .iter()
            .all(|s| s.facility_id.as_deref() == Some(facility.as_str()))
    );
    let by_episode = env.all_pages(&[("episodeId", &sample.episode_id)], 50).await;
    assert!(by_episode.iter().any(|s| s.session_id == sample.session_id));
    assert!(by_episode.iter().all(|s| s.episode_id == sample.episode_id));

    // createdFrom inclusive, createdTo exclusive.
    let from = &sample.created_at;
    let later = env.all_pages(&[("createdFrom", from)], 50).await;
    assert_eq!(
        later.len(),
        dataset.sessions.iter().filter(|s| s.created_at >= *from).count()
    );
    assert!(later.iter().any(|s| s.session_id == sample.session_id));
    let earlier = env.all_pages(&[("createdTo", from)], 50).await;
    assert_eq!(earlier.len() + later.len(), dataset.sessions.len());

    for query in [
        [("pageToken", "bogus")],
        [("status", "Done")],
        [("pageSize", "0")],
        [("createdFrom", "yesterday")],
    ] {
        let (status, body) = env.get("/consumers/sessions", &query).await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST);
    }
    env.sim.shutdown();
}

#[tokio::test]
async fn full_lifecycle_by_the_clock_with_webhooks() {
    let receiver = Receiver::start().await;
    let mut config = small_config();
    config.default_webhook_url = Some(receiver.url.clone());
    let env = Env::new(config).await;
    let (status, created) = env.create("lifecycle-1").await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["sessionId"].as_str().expect("id").to_owned();
    let start = env.sim.now();

    // A session with its own webhook URL.
    let (doctor, facility) = env.registered();
    let own_url = receiver.url.replace("s3cret", "own");
    let (_, own) = env
        .post(
            "/consumers/sessions",
            json!({"episodeId": "lifecycle-2", "doctorId": doctor, "facilityId": facility, "webhookUrl": own_url}),
        )
        .await;
    let own_id = own["sessionId"].as_str().expect("id").to_owned();

    // Nothing happens while the clock stands still.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(env.status_of(&id).await.status, SessionStatus::New);

    env.run_clock(TimeDelta::minutes(50)).await;
    let details = env.status_of(&id).await;
    assert_eq!(details.status, SessionStatus::Summarized);
    assert!(details.recording_started_at.is_some() && details.recording_ended_at.is_some());
    assert!(details.recording_started_at < details.recording_ended_at);
    assert!(details.updated_at > details.created_at);
    assert!(env.sim.now() >= start + TimeDelta::minutes(50));

    let events = receiver.events_for(&id);
    let statuses: Vec<SessionStatus> = events.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        vec![
            SessionStatus::Recording,
            SessionStatus::Recorded,
            SessionStatus::Transcribing,
            SessionStatus::Transcribed,
            SessionStatus::Analyzing,
            SessionStatus::Summarized,
        ]
    );
    assert_eq!(events[0].previous_status, SessionStatus::New);
    for pair in events.windows(2) {
        assert_eq!(pair[1].previous_status, pair[0].status);
        assert!(pair[0].occurred_at <= pair[1].occurred_at);
    }
    let event_ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(event_ids.len(), events.len());
    assert!(events.iter().all(|e| is_uuid(&e.event_id)
        && e.episode_id == "lifecycle-1"
        && e.doctor_id == doctor
        && e.facility_id.as_deref() == Some(facility.as_str())));
    assert_eq!(
        events[0].occurred_at,
        details.recording_started_at.clone().expect("start")
    );
    assert_eq!(events[5].occurred_at, details.updated_at);
    // The raw payload has exactly the documented keys.
    let raw = receiver
        .received
        .lock()
        .expect("lock")
        .iter()
        .find(|(_, v)| v["sessionId"] == id.as_str())
        .map(|(_, v)| v.clone())
        .expect("raw");
    let keys: BTreeSet<&str> = raw.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "eventId",
            "sessionId",
            "episodeId",
            "doctorId",
            "facilityId",
            "status",
            "previousStatus",
            "occurredAt"
        ])
    );
    // No webhook ever announces New.
    assert!(
        receiver
            .received
            .lock()
            .expect("lock")
            .iter()
            .all(|(_, v)| v["status"] != "New")
    );
    // The session with its own URL was posted there, the others to the default.
    let received = receiver.received.lock().expect("lock").clone();
    assert!(
        received
            .iter()
            .filter(|(_, v)| v["sessionId"] == own_id.as_str())
            .all(|(s, _)| s == "own")
    );
    assert!(
        received
            .iter()
            .any(|(s, v)| s == "own" && v["sessionId"] == own_id.as_str())
    );
    assert!(
        received
            .iter()
            .filter(|(_, v)| v["sessionId"] == id.as_str())
            .all(|(s, _)| s == "s3cret")
    );
    let log = env.sim.webhook_log();
    assert!(
        log.iter()
            .all(|d| d.outcome == DeliveryOutcome::Delivered && d.status == Some(204))
    );
    assert!(log.iter().any(|d| d.url.as_deref() == Some(own_url.as_str())));
    assert_eq!(log.iter().filter(|d| d.event.session_id == id).count(), 6);

    let (status, summary) = env.summary_of(&id).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    let summary: Summary = serde_json::from_value(summary).expect("summary");
    assert_eq!(summary.status, SessionStatus::Summarized);
    assert!(!summary.doctor_approved);
    assert_eq!(summary.revision, 1);
    assert_eq!(summary.approved_at, None);
    assert_eq!(summary.language, "en-US");
    let titles: Vec<&str> = summary.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        titles,
        vec!["Chief Complaint", "History of Present Illness", "Assessment", "Plan"]
    );
    assert!(summary.sections.iter().all(|s| !s.content.trim().is_empty()));
    assert!(summary.sections[3].content.contains("- "), "plan is a list");

    // The doctor verifies.
    env.sim.clear_webhook_log();
    let details = env.sim.approve(&id, false).expect("approve");
    assert_eq!(details.status, SessionStatus::Verified);
    assert!(env.sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let last = receiver.events_for(&id).pop().expect("event");
    assert_eq!(
        (last.previous_status, last.status),
        (SessionStatus::Summarized, SessionStatus::Verified)
    );
    assert_eq!(env.sim.webhook_log().len(), 1);
    let (_, summary) = env.summary_of(&id).await;
    assert_eq!(summary["doctorApproved"], true);
    assert_eq!(summary["status"], "Verified");
    assert!(summary["approvedAt"].is_string());
    env.sim.shutdown();
}

#[tokio::test]
async fn approve_empty_approve_and_control_routes() {
    let env = Env::small().await;
    let (_, a) = env.create("approve-a").await;
    let (_, b) = env.create("approve-b").await;
    let a = a["sessionId"].as_str().expect("id").to_owned();
    let b = b["sessionId"].as_str().expect("id").to_owned();

    // Too early: New cannot be approved.
    let error = env.sim.approve(&a, false).expect_err("not summarized");
    assert!(matches!(
        error,
        SimError::InvalidTransition {
            from: SessionStatus::New,
            to: SessionStatus::Verified,
            ..
        }
    ));
    assert!(matches!(
        env.sim.approve("00000000-0000-4000-8000-000000000000", false),
        Err(SimError::NotFound(_))
    ));

    // Start recording now through the control route; the clock route moves time.
    let sim_url = |path: &str| format!("{}{path}", env.sim.base_url());
    let response = env
        .http
        .post(sim_url(&format!("/_sim/sessions/{a}/start-recording")))
        .send()
        .await
        .expect("start");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("details");
    assert_eq!(body["status"], "Recording");
    assert_eq!(body["recordingStartedAt"], body["updatedAt"]);
    let again = env
        .http
        .post(sim_url(&format!("/_sim/sessions/{a}/start-recording")))
        .send()
        .await
        .expect("start");
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(
        env.sim.start_recording(&b).expect("start").status,
        SessionStatus::Recording
    );

    let before = env.sim.now();
    let response = env
        .http
        .post(sim_url("/_sim/clock/advance"))
        .json(&json!({"seconds": 3600}))
        .send()
        .await
        .expect("advance");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("now");
    assert_eq!(
        body["now"],
        (before + TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert_eq!(env.sim.now(), before + TimeDelta::hours(1));
    assert_eq!(env.status_of(&a).await.status, SessionStatus::Summarized);
    assert_eq!(env.status_of(&b).await.status, SessionStatus::Summarized);

    let response = env
        .http
        .post(sim_url(&format!("/_sim/sessions/{a}/approve")))
        .json(&json!({"empty": false}))
        .send()
        .await
        .expect("approve");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("details");
    assert_eq!(body["status"], "Verified");
    let (_, summary) = env.summary_of(&a).await;
    assert_eq!(summary["doctorApproved"], true);
    assert!(
        summary["sections"]
            .as_array()
            .expect("sections")
            .iter()
            .all(|s| s["content"] != "")
    );

    let response = env
        .http
        .post(sim_url(&format!("/_sim/sessions/{b}/approve")))
        .json(&json!({"empty": true}))
        .send()
        .await
        .expect("approve");
    assert_eq!(response.status(), StatusCode::OK);
    let (_, summary) = env.summary_of(&b).await;
    assert_eq!(summary["status"], "EmptySummaryVerified");
    assert_eq!(summary["doctorApproved"], true);
    let sections = summary["sections"].as_array().expect("sections");
    assert_eq!(sections.len(), 4);
    assert!(sections.iter().all(|s| s["content"] == "" && s["title"] != ""));
    assert_eq!(env.status_of(&b).await.status, SessionStatus::EmptySummaryVerified);

    // Approving twice, or an unknown session.
    let response = env
        .http
        .post(sim_url(&format!("/_sim/sessions/{b}/approve")))
        .send()
        .await
        .expect("approve");
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = env
        .http
        .post(sim_url("/_sim/sessions/00000000-0000-4000-8000-000000000000/approve"))
        .send()
        .await
        .expect("approve");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // The recorder page shows the session.
    let page = env
        .http
        .get(sim_url(&format!("/recorder/sessions/{a}")))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Verified") && page.contains("Chief Complaint"), "{page}");

    // Control routes are not API hits.
    env.sim.reset_hits();
    let _ = env
        .http
        .post(sim_url("/_sim/clock/advance"))
        .json(&json!({"seconds": 1}))
        .send()
        .await;
    assert_eq!(env.sim.hits(), 0);
    env.sim.shutdown();
}

#[tokio::test]
async fn regenerate_and_recover() {
    let receiver = Receiver::start().await;
    let mut config = small_config();
    config.default_webhook_url = Some(receiver.url.clone());
    let env = Env::new(config).await;
    let (_, created) = env.create("redo-1").await;
    let id = created["sessionId"].as_str().expect("id").to_owned();

    // No summary yet: 409. Unknown: 404. Malformed: 400.
    let (status, body) = env
        .post(&format!("/consumers/sessions/{id}/regenerate"), json!({}))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (status, body) = env
        .post(
            "/consumers/sessions/00000000-0000-4000-8000-000000000000/recover",
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = env.post("/consumers/sessions/nope/recover", json!({})).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);

    env.sim.advance_clock(TimeDelta::hours(1));
    env.sim.approve(&id, false).expect("approve");
    let (_, original) = env.summary_of(&id).await;
    let original: Summary = serde_json::from_value(original).expect("summary");
    assert_eq!(original.revision, 1);
    assert!(env.sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let seen = receiver.events_for(&id).len();

    let (status, body) = env
        .post(&format!("/consumers/sessions/{id}/regenerate"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body,
        json!({"sessionId": id, "status": "Analyzing", "operation": "Regenerate"})
    );
    let (status, body) = env
        .post(&format!("/consumers/sessions/{id}/regenerate"), json!({}))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (status, body) = env.post(&format!("/consumers/sessions/{id}/recover"), json!({})).await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    // Readable meanwhile, no longer approved.
    let (status, during) = env.summary_of(&id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(during["status"], "Analyzing");
    assert_eq!(during["doctorApproved"], false);
    assert_eq!(during["revision"], 1);

    env.run_clock(TimeDelta::minutes(5)).await;
    let (_, regenerated) = env.summary_of(&id).await;
    let regenerated: Summary = serde_json::from_value(regenerated).expect("summary");
    assert_eq!(regenerated.status, SessionStatus::Summarized);
    assert_eq!(regenerated.revision, 2);
    assert!(!regenerated.doctor_approved);
    assert_eq!(regenerated.approved_at, None);
    assert_ne!(regenerated.sections, original.sections);
    let titles = |s: &Summary| s.sections.iter().map(|x| x.title.clone()).collect::<Vec<_>>();
    assert_eq!(titles(&regenerated), titles(&original));
    assert!(regenerated.generated_at > original.generated_at);
    let statuses: Vec<(SessionStatus, SessionStatus)> = receiver.events_for(&id)[seen..]
        .iter()
        .map(|e| (e.previous_status, e.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (SessionStatus::Verified, SessionStatus::Analyzing),
            (SessionStatus::Analyzing, SessionStatus::Summarized)
        ]
    );

    // Empty-verify, then recover brings back revision 1's text.
    env.sim.approve(&id, true).expect("empty approve");
    let (status, body) = env.post(&format!("/consumers/sessions/{id}/recover"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["operation"], "Recover");
    env.run_clock(TimeDelta::minutes(5)).await;
    let (_, recovered) = env.summary_of(&id).await;
    let recovered: Summary = serde_json::from_value(recovered).expect("summary");
    assert_eq!(recovered.revision, 3);
    assert_eq!(recovered.sections, original.sections);
    assert!(!recovered.doctor_approved);
    assert_eq!(env.status_of(&id).await.status, SessionStatus::Summarized);
    env.sim.shutdown();
}

/// Runs one new session under `config` for `hours` of simulated time; its webhook statuses and
/// final details.
async fn run_one(config: NoaSimConfig, hours: i64) -> (Vec<SessionStatus>, SessionDetails, Env) {
    let receiver = Receiver::start().await;
    let mut config = config;
    config.default_webhook_url = Some(receiver.url.clone());
    let env = Env::new(config).await;
    let (status, created) = env.create("outcome-1").await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["sessionId"].as_str().expect("id").to_owned();
    env.run_clock(TimeDelta::hours(hours)).await;
    let statuses = receiver.events_for(&id).iter().map(|e| e.status).collect();
    let details = env.status_of(&id).await;
    (statuses, details, env)
}

#[tokio::test]
async fn planned_error_outcomes() {
    let mut expired = small_config();
    expired.expired_rate = 1.0;
    let (statuses, details, env) = run_one(expired, 3).await;
    assert_eq!(statuses, vec![SessionStatus::Expired]);
    assert_eq!(details.status, SessionStatus::Expired);
    assert_eq!(details.updated_at, details.expires_at);
    assert!(details.recording_started_at.is_none());
    let (status, body) = env.summary_of(&details.session_id).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    // An error end: the same triple starts a new session.
    let (status, _) = env.create("outcome-1").await;
    assert_eq!(status, StatusCode::CREATED);
    env.sim.shutdown();

    let mut interrupted = small_config();
    interrupted.interrupted_rate = 1.0;
    let (statuses, details, env) = run_one(interrupted, 2).await;
    assert_eq!(statuses, vec![SessionStatus::Recording, SessionStatus::Interrupted]);
    assert!(details.recording_ended_at.is_some());
    let (status, _) = env.summary_of(&details.session_id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    env.sim.shutdown();

    let mut failed = small_config();
    failed.failed_rate = 1.0;
    let (statuses, details, env) = run_one(failed, 2).await;
    assert_eq!(details.status, SessionStatus::Failed);
    assert_eq!(
        &statuses[..3],
        &[
            SessionStatus::Recording,
            SessionStatus::Recorded,
            SessionStatus::Transcribing
        ]
    );
    assert_eq!(statuses.last(), Some(&SessionStatus::Failed));
    assert!(
        statuses.len() == 4
            || statuses[3..]
                == [
                    SessionStatus::Transcribed,
                    SessionStatus::Analyzing,
                    SessionStatus::Failed
                ]
    );
    let (status, body) = env
        .post(
            &format!("/consumers/sessions/{}/recover", details.session_id),
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    env.sim.shutdown();

    // Automatic approval.
    let mut auto = small_config();
    auto.auto_approve_after = Some(TimeDelta::minutes(10));
    let (statuses, details, env) = run_one(auto, 2).await;
    assert_eq!(statuses.last(), Some(&SessionStatus::Verified));
    assert_eq!(details.status, SessionStatus::Verified);
    let (_, summary) = env.summary_of(&details.session_id).await;
    assert_eq!(summary["doctorApproved"], true);
    env.sim.shutdown();
}

#[tokio::test]
async fn faults_apply_to_the_api_only() {
    let env = Env::small().await;
    env.sim.reset_hits();
    env.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let response = env
        .http
        .get(env.url("/consumers/sessions"))
        .query(&[V])
        .bearer_auth(&env.token)
        .send()
        .await
        .expect("request");
    assert!(response.status().is_server_error(), "{}", response.status());
    // Sign-in and control routes are spared.
    let response = sign_in(&env.sim, &env.http, &env.sim.config().client_secret).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = env
        .http
        .get(format!("{}/_sim/clock", env.sim.base_url()))
        .send()
        .await
        .expect("clock");
    assert_eq!(response.status(), StatusCode::OK);

    env.sim.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    let response = env
        .http
        .get(env.url("/consumers/sessions"))
        .query(&[V])
        .bearer_auth(&env.token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&response.text().await.expect("text")).is_err());

    env.sim.set_faults(Faults {
        truncated_rate: 1.0,
        ..Faults::default()
    });
    let response = env
        .http
        .get(env.url("/consumers/sessions"))
        .query(&[V])
        .bearer_auth(&env.token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    assert!(!text.is_empty());
    assert!(serde_json::from_str::<Value>(&text).is_err());

    env.sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let started = Instant::now();
    let (status, _) = env.get("/consumers/sessions", &[("pageSize", "1")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));

    env.sim.set_faults(Faults::default());
    // Faults do not hide auth: an unknown token is still 401 first.
    let (status, _) = env
        .send_with(Method::GET, "/consumers/sessions", &[], "nope", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(env.sim.hits_for("/api/v1/consumers/sessions"), 5);
    assert_eq!(env.sim.hits_for("/api/v1/clients/authenticate"), 1);
    assert_eq!(env.sim.hits(), 6);
    env.sim.shutdown();
}

/// Every status at least once, every session on a real DrChrono appointment of its doctor and
/// office, registered doctors and facilities named after the EHR, one EHR doctor unregistered.
fn check_dataset_against_drchrono(
    dataset: &vendor_sim::noa::Dataset,
    drchrono: &vendor_sim::drchrono::Dataset,
    config: &NoaSimConfig,
) {
    let statuses: BTreeSet<&str> = dataset.sessions.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, BTreeSet::from(STATUS_NAMES), "every status");
    let appointments: BTreeMap<&str, &vendor_sim::drchrono::wire::Appointment> =
        drchrono.appointments.iter().map(|a| (a.id.as_str(), a)).collect();
    let mut without_metadata = 0;
    for session in &dataset.sessions {
        assert_eq!(session.consumer_id, config.consumer_id);
        let appointment = appointments
            .get(session.episode_id.as_str())
            .unwrap_or_else(|| panic!("episode {} is not a DrChrono appointment", session.episode_id));
        assert_eq!(session.doctor_id, appointment.doctor.to_string());
        assert_eq!(session.facility_id, Some(appointment.office.to_string()));
        assert!(!appointment.appt_is_break && !appointment.deleted_flag);
        match &session.metadata {
            Some(metadata) => assert_eq!(
                metadata.get("patientId"),
                Some(&appointment.patient.expect("patient").to_string())
            ),
            None => without_metadata += 1,
        }
        let facility = session.facility_id.as_deref().expect("facility");
        let doctor = dataset.doctor(facility, &session.doctor_id).expect("registered doctor");
        let ehr_doctor = drchrono
            .doctors
            .iter()
            .find(|d| d.id == appointment.doctor)
            .expect("doctor");
        assert!(doctor.name.contains(&ehr_doctor.last_name));
        let office = drchrono
            .offices
            .iter()
            .find(|o| o.id == appointment.office)
            .expect("office");
        assert_eq!(dataset.facility(facility).expect("facility").name, office.name);
        assert!(vendor_sim::noa::wire::LANGUAGES.contains(&session.language.as_str()));
        assert!(
            session.visit_type.is_none()
                || vendor_sim::noa::wire::VISIT_TYPES.contains(&session.visit_type.as_deref().unwrap_or(""))
        );
        assert!(is_uuid(&session.session_id));
        // Summaries exist from Summarized on.
        let has_summary = dataset.summary(&session.session_id).is_some();
        let expect_summary = matches!(
            session.status,
            SessionStatus::Summarized | SessionStatus::Verified | SessionStatus::EmptySummaryVerified
        );
        assert_eq!(has_summary, expect_summary, "{}", session.status);
    }
    let share = without_metadata as f64 / dataset.sessions.len() as f64;
    assert!((0.05..0.5).contains(&share), "{share}");
    // Nothing is in flight twice for the same triple.
    let mut active = HashSet::new();
    for s in dataset.sessions.iter().filter(|s| !s.status.is_terminal()) {
        assert!(active.insert((&s.episode_id, &s.doctor_id, &s.facility_id)));
    }
    // A DrChrono doctor with appointments is not registered.
    let registered: BTreeSet<String> = dataset.doctors.iter().map(|d| d.external_doctor_id.clone()).collect();
    assert!(
        config
            .ehr
            .appointments
            .iter()
            .any(|a| !registered.contains(&a.doctor.to_string())),
        "an unregistered doctor"
    );
    for summary in &dataset.summaries {
        if summary.status == SessionStatus::EmptySummaryVerified {
            assert!(summary.sections.iter().all(|s| s.content.is_empty()));
        } else {
            assert!(summary.sections.iter().all(|s| !s.content.is_empty()));
        }
        assert_eq!(
            summary.doctor_approved,
            matches!(
                summary.status,
                SessionStatus::Verified | SessionStatus::EmptySummaryVerified
            )
        );
    }
}

#[test]
fn small_dataset_has_every_status_on_real_drchrono_ids() {
    let drchrono = drchrono_small();
    let config = small_config();
    let dataset = NoaSim::new(config.clone()).dataset();
    assert!(
        (20..=30).contains(&dataset.sessions.len()),
        "{}",
        dataset.sessions.len()
    );
    check_dataset_against_drchrono(&dataset, &drchrono, &config);
}

#[test]
fn demo_dataset_has_every_status_on_real_drchrono_ids() {
    let drchrono = DrChronoSim::new(DrChronoSimConfig::demo(5, anchor())).dataset();
    let config = NoaSimConfig::demo(5, anchor(), EhrRefs::from_drchrono(&drchrono));
    let dataset = NoaSim::new(config.clone()).dataset();
    assert!(dataset.sessions.len() >= 120, "{}", dataset.sessions.len());
    check_dataset_against_drchrono(&dataset, &drchrono, &config);
    let verified = dataset.sessions_in(SessionStatus::Verified).count();
    assert!(verified * 2 > dataset.sessions.len(), "mostly verified: {verified}");
    let english = dataset.sessions.iter().filter(|s| s.language == "en-US").count();
    assert!(english * 10 > dataset.sessions.len() * 7 && english < dataset.sessions.len());
    assert!(dataset.sessions.iter().any(|s| s.template.is_some()));
    assert!(dataset.sessions.iter().any(|s| s.visit_type.is_none()));
    assert!(
        dataset
            .sessions
            .iter()
            .filter_map(|s| s.template.as_ref())
            .any(|t| t.titles().eq(["Personal Information", "Reason for the Visit"]))
    );
    // Sessions lie in the past or near-present of the clock's start.
    let now = NoaSim::new(config).dataset();
    assert_eq!(now, dataset);
}

#[test]
fn same_seed_same_dataset() {
    let a = NoaSim::new(small_config()).dataset();
    let b = NoaSim::new(small_config()).dataset();
    assert_eq!(a, b);
    let mut other = small_config();
    other.seed = 8;
    assert_ne!(NoaSim::new(other).dataset().sessions, a.sessions);
    // Without an EHR, a synthetic one is used.
    let alone = NoaSim::new(NoaSimConfig::small(3, anchor(), EhrRefs::default())).dataset();
    let statuses: BTreeSet<&str> = alone.sessions.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses.len(), 12);
}

#[tokio::test]
async fn session_tokens_expire() {
    let env = Env::small().await;
    let (_, created) = env.create("tokens-1").await;
    let id = created["sessionId"].as_str().expect("id").to_owned();
    let token = created["sessionToken"].as_str().expect("token").to_owned();
    let (status, _) = env
        .send_with(Method::GET, &format!("/sessions/{id}/status"), &[], &token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    env.sim.expire_access_tokens();
    let (status, body) = env
        .send_with(Method::GET, &format!("/sessions/{id}/status"), &[], &token, None)
        .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    env.sim.shutdown();
}

#[tokio::test]
async fn demo_clock_runs_by_itself() {
    let drchrono = drchrono_small();
    let mut config = NoaSimConfig::demo(9, anchor(), EhrRefs::from_drchrono(&drchrono));
    config.clock_speed = Some(600.0);
    let env = Env::new(config).await;
    let (_, created) = env.create("fast-1").await;
    let id = created["sessionId"].as_str().expect("id").to_owned();
    let start = env.sim.now();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let details = env.status_of(&id).await;
        if details.status.is_terminal() {
            break;
        }
        assert!(Instant::now() < deadline, "still {}", details.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(env.sim.now() > start);
    env.sim.shutdown();
}

#[tokio::test]
async fn rate_limit_bursts_spikes_and_dropped_connections() {
    let env = Env::small().await;
    env.sim.set_rate_limit_burst(2);
    for _ in 0..2 {
        let response = env
            .http
            .get(env.url("/consumers/sessions"))
            .query(&[V])
            .bearer_auth(&env.token)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "1");
        let body: Value = response.json().await.expect("problem JSON");
        assert_eq!(body["status"], 429);
    }
    assert_eq!(env.sim.faults().rate_limit_burst, 0);
    assert_eq!(env.get("/consumers/sessions", &[]).await.0, StatusCode::OK);
    // The sign-in is never faulted.
    env.sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        ..Faults::default()
    });
    let response = sign_in(&env.sim, &env.http, &env.sim.config().client_secret).await;
    assert_eq!(response.status(), StatusCode::OK);

    env.sim.set_faults(Faults {
        spike_rate: 1.0,
        spike_latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(env.get("/consumers/sessions", &[]).await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    env.sim.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    let error = env
        .http
        .get(env.url("/consumers/sessions"))
        .query(&[V])
        .bearer_auth(&env.token)
        .send()
        .await
        .expect_err("the connection is dropped");
    assert!(error.status().is_none() && !error.is_timeout(), "{error:?}");
    env.sim.set_faults(Faults::default());
    assert_eq!(env.get("/consumers/sessions", &[]).await.0, StatusCode::OK);
    env.sim.shutdown();
}
