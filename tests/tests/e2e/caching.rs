//! HTTP caching semantics and the cache's guarantees end to end: validators and 304s on reads,
//! `Cache-Control: private` on everything under `/fhir`, stale-if-error answers that say so, and the
//! access policy applied after the cache — a patient token never receives a cached entry of another
//! patient's data, whatever order the requests come in.

use std::time::Duration;

use adapter::ResourceType;
use e2e::{Env, anchor, entries};
use gateway::cache::CacheSettings;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vendor_sim::drchrono::{DrChronoSimConfig, Faults};

use super::dr;

fn short_lived() -> CacheSettings {
    let mut settings = CacheSettings::default();
    settings
        .read_ttl
        .insert(ResourceType::Patient, Duration::from_millis(300));
    settings.search_ttl = Duration::from_millis(300);
    settings.search_ttl_by_type.clear();
    // DrChrono's webhooks announce every Patient change; these tests watch the TTL itself.
    settings.announced_ttl = Duration::ZERO;
    settings.stale_if_error = Duration::from_secs(120);
    settings
}

#[tokio::test]
async fn reads_carry_validators_and_unchanged_copies_are_304() {
    let env = Env::start_with(
        DrChronoSimConfig::small(7, anchor()),
        |_| {},
        |o| o.cache = Some(Default::default()),
    )
    .await;
    let id = dr(env.sim.dataset().patients[0].id);
    let path = format!("/fhir/Patient/{id}");
    let first = env.get(&path).await;
    assert_eq!(first.status, StatusCode::OK);
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\""), "a weak tag: {etag}");
    assert_eq!(first.headers["cache-control"], "private, no-cache");
    let last_modified = first.headers["last-modified"].to_str().unwrap().to_owned();
    assert!(last_modified.ends_with(" GMT"), "{last_modified}");
    assert_eq!(
        env.get(&path).await.headers["etag"],
        etag.as_str(),
        "same content, same tag"
    );

    let r = env.request(Method::GET, &path, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers["etag"], etag.as_str());
    assert_eq!(r.headers["cache-control"], "private, no-cache");
    let r = env
        .request(Method::GET, &path, &[("if-none-match", "W/\"something-else\"")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], id);
    let r = env
        .request(Method::GET, &path, &[("if-modified-since", &last_modified)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let r = env
        .request(
            Method::GET,
            &path,
            &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // The tag is of what this client receives: a subset is another representation.
    let r = env.get(&format!("{path}?_elements=name")).await;
    assert_ne!(r.headers["etag"], etag.as_str());

    // Searches and errors are private too.
    let r = env.get("/fhir/Patient?_count=5").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["cache-control"], "private, no-cache");
    let r = env.get("/fhir/Patient/drchrono-999999999").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.headers["cache-control"], "private, no-cache");
}

#[tokio::test]
async fn a_failing_vendor_is_answered_from_the_stale_cache_and_says_so() {
    let env = Env::start_with(
        DrChronoSimConfig::small(7, anchor()),
        |_| {},
        |o| o.cache = Some(short_lived()),
    )
    .await;
    let patients = env.sim.dataset().patients.clone();
    // The search below warms reads of the first few; the last patient is never read.
    let (known, unknown) = (dr(patients[0].id), dr(patients[patients.len() - 1].id));
    let read = format!("/fhir/Patient/{known}");
    let search = "/fhir/Patient?_count=3";
    let fresh = env.get(&read).await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert!(fresh.headers.get("warning").is_none());
    let page = env.get(search).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(entries(&page.body, "outcome").is_empty());

    tokio::time::sleep(Duration::from_millis(400)).await;
    env.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let stale = env.get(&read).await;
    assert_eq!(stale.status, StatusCode::OK, "{}", stale.body);
    assert_eq!(stale.body, fresh.body, "the cached copy");
    let warning = stale.headers["warning"].to_str().unwrap();
    assert!(warning.starts_with("110 "), "{warning}");
    assert!(warning.contains("drchrono"), "{warning}");
    let age: u64 = stale.headers["age"].to_str().unwrap().parse().unwrap();
    assert!(age < 120, "{age}");

    let stale_page = env.get(search).await;
    assert_eq!(stale_page.status, StatusCode::OK, "{}", stale_page.body);
    assert_eq!(entries(&stale_page.body, "match"), entries(&page.body, "match"));
    let outcomes = entries(&stale_page.body, "outcome");
    assert_eq!(outcomes.len(), 1, "{}", stale_page.body);
    let issue = &outcomes[0]["issue"][0];
    assert_eq!(issue["severity"], "warning");
    assert!(issue["diagnostics"].as_str().unwrap().contains("drchrono"), "{issue}");

    // Nothing cached, nothing to stand in: the failure is reported.
    let r = env.get(&format!("/fhir/Patient/{unknown}")).await;
    assert!(r.status.is_server_error(), "{}", r.status);
    assert_eq!(r.body["resourceType"], "OperationOutcome");

    let metrics = env.metrics().await;
    assert!(
        metrics.contains("fhir_gateway_cache_stale_total{source=\"drchrono\",type=\"Patient\"} 2"),
        "{metrics}"
    );
}

// --- the policy runs after the cache -----------------------------------------------------------

const IDP: &str = "https://idp.example/realms/clinic";
const AUDIENCE: &str = "fhir-gateway-e2e";

/// Serves the demo signing key's JWKS as an external IdP would.
async fn jwks_server() -> String {
    let jwks: Value =
        serde_json::from_str(include_str!("../../../examples/keys/demo-jwt.jwks.json")).expect("the demo JWKS");
    let app = axum::Router::new().route("/jwks", axum::routing::get(move || async move { axum::Json(jwks) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/jwks")
}

/// A patient app's token from the external IdP, signed with the demo key.
fn patient_token(patient: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": IDP, "aud": AUDIENCE, "sub": format!("user-{patient}"), "iat": now, "exp": now + 600,
        "scope": "patient/*.rs", "patient": patient, "fhirUser": format!("Patient/{patient}"),
    });
    let mut header = Header::new(Algorithm::ES384);
    header.kid = Some("demo-jwt-1".into());
    let key =
        EncodingKey::from_ec_pem(include_bytes!("../../../examples/keys/demo-jwt.private.pem")).expect("the demo key");
    jsonwebtoken::encode(&header, &claims, &key).expect("signs")
}

async fn system_token(env: &Env) -> String {
    let r = env
        .http
        .post(format!("{}/auth/token", env.gw.base_url))
        .basic_auth("demo-backend", Some("demo-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "system/*.rs")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Every `Patient/…` reference and Patient id in a resource.
fn patients_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.get("resourceType") == Some(&json!("Patient"))
                && let Some(id) = map.get("id").and_then(Value::as_str)
            {
                out.push(id.to_owned());
            }
            if let Some(r) = map.get("reference").and_then(Value::as_str)
                && let Some(id) = r.strip_prefix("Patient/")
            {
                out.push(id.to_owned());
            }
            map.values().for_each(|v| patients_in(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| patients_in(v, out)),
        _ => {}
    }
}

#[derive(Clone, Copy, Debug)]
enum Who {
    System,
    A,
    B,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_token_never_receives_another_patients_cached_data_in_any_order() {
    let jwks_url = jwks_server().await;
    let env = Env::start_secured_with(|o| {
        let auth = o.auth.as_mut().expect("the demo SMART settings");
        auth.external = Some(smart_auth::ExternalIdp::new(IDP, jwks_url, AUDIENCE));
        o.cache = Some(CacheSettings::default());
    })
    .await;
    let system = system_token(&env).await;
    // Patients with appointments, in pairs: each order starts with the pair's data uncached.
    let data = env.sim.dataset();
    let mut with_appointments: Vec<i64> = data
        .appointments
        .iter()
        .filter(|a| !a.deleted_flag)
        .filter_map(|a| a.patient)
        .collect();
    with_appointments.sort_unstable();
    with_appointments.dedup();
    assert!(with_appointments.len() >= 6, "the small practice has enough patients");
    let orders = [
        [Who::System, Who::A, Who::B],
        [Who::A, Who::B, Who::System],
        [Who::B, Who::System, Who::A],
    ];
    for (n, order) in orders.iter().enumerate() {
        let (a, b) = (with_appointments[2 * n], with_appointments[2 * n + 1]);
        let appointment_of = |p: i64| {
            data.appointments
                .iter()
                .find(|x| x.patient == Some(p) && !x.deleted_flag)
                .map(|x| dr(&x.id))
                .expect("an appointment")
        };
        let (pa, pb) = (dr(a), dr(b));
        let paths = [
            format!("/fhir/Patient/{pa}"),
            format!("/fhir/Patient/{pb}"),
            format!("/fhir/Appointment/{}", appointment_of(a)),
            format!("/fhir/Appointment/{}", appointment_of(b)),
            "/fhir/Appointment?_count=50".to_owned(),
            format!("/fhir/Appointment?patient={pa}"),
            format!("/fhir/Appointment?patient={pb}"),
            "/fhir/Appointment?_count=50&_include=Appointment:patient".to_owned(),
            "/fhir/Patient?_count=50".to_owned(),
        ];
        for who in order {
            let (token, own) = match who {
                Who::System => (system.clone(), None),
                Who::A => (patient_token(&pa), Some(&pa)),
                Who::B => (patient_token(&pb), Some(&pb)),
            };
            let auth = format!("Bearer {token}");
            for path in &paths {
                let r = env.request(Method::GET, path, &[("authorization", &auth)]).await;
                let Some(own) = own else {
                    assert_eq!(r.status, StatusCode::OK, "{who:?} {path}: {}", r.body);
                    continue;
                };
                match r.status {
                    StatusCode::OK => {
                        let mut seen = Vec::new();
                        patients_in(&r.body, &mut seen);
                        // (A Zoom visit of this patient also names the patient's Zoom record.)
                        seen.retain(|p| p.starts_with("drchrono-"));
                        assert!(
                            seen.iter().all(|p| p == own),
                            "order {n}, {who:?} {path}: another patient's data {seen:?}"
                        );
                    }
                    StatusCode::NOT_FOUND => {
                        assert!(
                            path.contains('/') && !path.contains('?'),
                            "{who:?} {path}: a search is never 404"
                        );
                    }
                    other => panic!("{who:?} {path}: {other} {}", r.body),
                }
            }
            if let Some(own) = own {
                // Its own data it does get.
                let r = env
                    .request(
                        Method::GET,
                        &format!("/fhir/Patient/{own}"),
                        &[("authorization", &auth)],
                    )
                    .await;
                assert_eq!(r.status, StatusCode::OK);
                let other = if own == &pa { &pb } else { &pa };
                let r = env
                    .request(
                        Method::GET,
                        &format!("/fhir/Patient/{other}"),
                        &[("authorization", &auth)],
                    )
                    .await;
                assert_eq!(
                    r.status,
                    StatusCode::NOT_FOUND,
                    "{who:?}: the other patient is unknown to it"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_request_never_outlives_the_gateway_deadline() {
    let env = Env::start_with(
        DrChronoSimConfig::small(7, anchor()),
        |_| {},
        |o| o.request_deadline = Duration::from_millis(500),
    )
    .await;
    env.sim.set_faults(Faults {
        latency: Duration::from_secs(3),
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let r = env
        .get(&format!("/fhir/Patient/{}", dr(env.sim.dataset().patients[0].id)))
        .await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    assert_eq!(r.body["issue"][0]["code"], "timeout");
    assert!(took < Duration::from_millis(2500), "answered after {took:?}");
    // The gateway's own endpoints are not held to it by a slow vendor.
    env.sim.set_faults(Faults::default());
    assert_eq!(env.get("/fhir/metadata").await.status, StatusCode::OK);
}
