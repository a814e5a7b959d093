//! SMART on FHIR end to end: the gateway behind the embedded authorization server with the demo
//! clients and users, over loopback. A standalone launch is driven through the login and consent
//! pages in headless Chromium (WebDriver); backend services get tokens with a client secret and
//! with a signed assertion (the `examples/backend_client.rs` example itself); and every attack of
//! the issue's list that concerns the FHIR API is refused with nothing served.

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use e2e::webdriver::Browser;
use e2e::{Env, entries};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::backend_client;

/// The demo users' FHIR identities (see `gateway::demo::demo_auth`).
fn demo_patient(env: &Env) -> String {
    let d = env.sim.dataset();
    let id = d.appointments.iter().find_map(|a| a.patient).unwrap();
    format!("drchrono-{id}")
}

/// Another patient of the practice with appointments.
fn other_patient(env: &Env, not: &str) -> String {
    let d = env.sim.dataset();
    d.appointments
        .iter()
        .filter_map(|a| a.patient)
        .map(|p| format!("drchrono-{p}"))
        .find(|p| p != not)
        .unwrap()
}

async fn token_with_secret(env: &Env, scope: &str) -> (StatusCode, Value) {
    let r = env
        .http
        .post(format!("{}/auth/token", env.gw.base_url))
        .basic_auth("demo-backend", Some("demo-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn get_with(env: &Env, token: &str, path: &str) -> e2e::Resp {
    let auth = format!("Bearer {token}");
    env.request(Method::GET, path, &[("authorization", auth.as_str())])
        .await
}

#[tokio::test]
async fn discovery_and_the_capability_statement_name_the_same_endpoints() {
    let env = Env::start_secured().await;
    let base = &env.gw.base_url;
    let r = env
        .request(
            Method::GET,
            "/.well-known/smart-configuration",
            &[("accept", "text/html")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let config = r.body;
    assert_eq!(config["token_endpoint"], format!("{base}/auth/token"));
    assert_eq!(config["code_challenge_methods_supported"], json!(["S256"]));
    for capability in [
        "launch-ehr",
        "launch-standalone",
        "client-confidential-asymmetric",
        "permission-v2",
        "sso-openid-connect",
    ] {
        assert!(
            config["capabilities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == capability),
            "{capability}"
        );
    }
    // The CapabilityStatement is public and carries the same endpoints.
    let m = env.get("/fhir/metadata").await;
    assert_eq!(m.status, StatusCode::OK);
    let security = &m.body["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    let uris = security["extension"][0]["extension"].as_array().unwrap();
    let uri = |name: &str| uris.iter().find(|u| u["url"] == name).unwrap()["valueUri"].clone();
    assert_eq!(uri("token"), config["token_endpoint"]);
    assert_eq!(uri("authorize"), config["authorization_endpoint"]);
}

#[tokio::test]
async fn without_a_valid_token_nothing_is_served() {
    let env = Env::start_secured().await;
    let patient = demo_patient(&env);
    for path in [
        format!("/fhir/Patient/{patient}"),
        "/fhir/Appointment".to_owned(),
        "/fhir/DocumentReference?patient=x".to_owned(),
    ] {
        let r = env.get(&path).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.body["resourceType"], "OperationOutcome");
        assert!(r.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        for bad in [
            "Bearer nonsense",
            "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
            "Basic ZGVtbzpkZW1v",
        ] {
            let r = env.request(Method::GET, &path, &[("authorization", bad)]).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path} with {bad}");
            assert!(!r.body.to_string().contains(&patient), "nothing served");
        }
    }
    // No vendor call was made for any of them.
    assert_eq!(env.sim.hits_for("/api/patients"), 0);
}

#[tokio::test]
async fn backend_services_read_within_their_scopes() {
    let env = Env::start_secured().await;
    // client_secret_basic: the scopes asked for, within the client's.
    let (s, t) = token_with_secret(&env, "system/Patient.r").await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(t["scope"], "system/Patient.r");
    let patient = demo_patient(&env);
    assert_eq!(
        get_with(&env, &token, &format!("/fhir/Patient/{patient}")).await.status,
        StatusCode::OK
    );
    // A system/Patient.r token searching Appointments: 403 and nothing served.
    let r = get_with(&env, &token, "/fhir/Appointment").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["issue"][0]["code"], "forbidden");
    let r = get_with(&env, &token, "/fhir/Patient?family=x").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "read is not search");
    // Asking for more than the client may have is refused.
    let (s, t) = token_with_secret(&env, "system/*.cruds").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{t}");
    assert_eq!(t["error"], "invalid_scope");

    // private_key_jwt: the committed example pages through a whole search.
    let summary = backend_client::run(&env.gw.base_url, "Appointment?_count=40")
        .await
        .unwrap();
    assert_eq!(summary.scope, "system/*.rs");
    let truth = env
        .sim
        .dataset()
        .appointments
        .iter()
        .filter(|a| !a.appt_is_break && !a.deleted_flag)
        .count();
    let zoom_visits = env.zoom().dataset().visits.len();
    assert_eq!(
        summary.resources,
        truth + zoom_visits,
        "every appointment of both vendors, once"
    );
    assert!(summary.pages > 1);
}

#[tokio::test]
async fn tokens_are_checked_for_revocation_and_introspected() {
    let env = Env::start_secured().await;
    let (_, t) = token_with_secret(&env, "system/*.rs").await;
    let token = t["access_token"].as_str().unwrap().to_owned();
    let patient = demo_patient(&env);
    assert_eq!(
        get_with(&env, &token, &format!("/fhir/Patient/{patient}")).await.status,
        StatusCode::OK
    );
    let introspect = |token: String| {
        env.http
            .post(format!("{}/auth/introspect", env.gw.base_url))
            .basic_auth("demo-backend", Some("demo-secret"))
            .form(&[("token", token)])
            .send()
    };
    let i: Value = introspect(token.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], "demo-backend");
    let r = env
        .http
        .post(format!("{}/auth/revoke", env.gw.base_url))
        .basic_auth("demo-backend", Some("demo-secret"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = get_with(&env, &token, &format!("/fhir/Patient/{patient}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a revoked token serves nothing");
    let i: Value = introspect(token).await.unwrap().json().await.unwrap();
    assert_eq!(i["active"], false);
}

/// A one-shot HTTP responder for the app's redirect URI (the browser lands there with the code).
async fn callback_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let body = "<html><body><p id=\"done\">signed in</p></body></html>";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    (port, task)
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn a_standalone_launch_in_a_browser_reads_only_the_patients_own_data() {
    let env = Env::start_secured().await;
    let me = demo_patient(&env);
    let other = other_patient(&env, &me);
    let (port, callback) = callback_server().await;
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let verifier = format!("{}{}", HEXLOWER.encode(&rand_bytes()), HEXLOWER.encode(&rand_bytes()));
    let challenge = BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()));
    let state = HEXLOWER.encode(&rand_bytes());
    let mut authorize = url::Url::parse(&format!("{}/auth/authorize", env.gw.base_url)).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "demo-app")
        .append_pair("redirect_uri", &redirect)
        .append_pair("scope", "openid fhirUser launch/patient patient/*.rs offline_access")
        .append_pair("state", &state)
        .append_pair("aud", &env.fhir())
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");

    // Log in as the demo patient, consent, land on the app's redirect URI with a code.
    let browser = Browser::start().await;
    browser.goto(authorize.as_str()).await;
    browser.fill("#username", "patient.demo").await;
    browser.fill("#password", "demo-password").await;
    browser.click("#login").await;
    browser.find("#allow").await;
    let consent = browser.source().await;
    assert!(
        consent.contains("Appointment") || consent.contains("all records"),
        "the consent page lists the scopes"
    );
    browser.click("#allow").await;
    let landed = browser.wait_for_url(&redirect).await;
    browser.quit().await;
    callback.abort();
    assert_eq!(query_param(&landed, "state").as_deref(), Some(state.as_str()));
    let code = query_param(&landed, "code").expect("a code on the redirect");

    // Exchange it (PKCE); a wrong verifier first uses the code up, so exchange correctly once.
    let exchange = |code: String, verifier: String| {
        env.http
            .post(format!("{}/auth/token", env.gw.base_url))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect.as_str()),
                ("client_id", "demo-app"),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
    };
    let r = exchange(code.clone(), verifier.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["patient"], me.as_str());
    assert!(t["id_token"].is_string() && t["refresh_token"].is_string());
    let token = t["access_token"].as_str().unwrap().to_owned();

    // The patient's Appointments, and only theirs.
    let r = get_with(&env, &token, "/fhir/Appointment?_count=100").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mine = entries(&r.body, "match");
    assert!(!mine.is_empty());
    for a in &mine {
        assert!(
            a["participant"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["actor"]["reference"] == format!("Patient/{me}")),
            "{a}"
        );
    }
    // Another patient: by id (404, as missing), by search (empty), by _include (never included).
    let r = get_with(&env, &token, &format!("/fhir/Patient/{other}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get_with(&env, &token, &format!("/fhir/Appointment?patient={other}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(entries(&r.body, "match").is_empty(), "{}", r.body);
    let r = get_with(
        &env,
        &token,
        "/fhir/Appointment?_include=Appointment:patient&_count=100",
    )
    .await;
    let patients: Vec<String> = entries(&r.body, "include")
        .iter()
        .filter(|r| r["resourceType"] == "Patient")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        patients,
        std::slice::from_ref(&me),
        "only the patient themself is included"
    );
    let r = get_with(
        &env,
        &token,
        &format!("/fhir/Patient?_id={other}&_revinclude=Appointment:patient"),
    )
    .await;
    assert!(entries(&r.body, "match").is_empty() && entries(&r.body, "include").is_empty());
    // Its own notes, not another's.
    let r = get_with(&env, &token, &format!("/fhir/DocumentReference?patient={other}")).await;
    assert!(entries(&r.body, "match").is_empty());
    // Writes are outside patient/*.rs.
    let r = env
        .http
        .post(format!("{}/Appointment/drchrono-1/$start-scribe", env.fhir()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The code is single-use: replaying it fails and revokes what it was exchanged for.
    let reused = exchange(code, verifier).await.unwrap();
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    let r = get_with(&env, &token, "/fhir/Appointment").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

fn rand_bytes() -> [u8; 16] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::digest(format!("{nanos}-{}", std::process::id()).as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}
