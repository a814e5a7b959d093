//! DrChrono webhooks: the `msg` verification and the `X-drchrono-signature` secret, every event
//! kind turned into change events, every refusal; and over loopback HTTP, the simulator verifying
//! a callback URL and delivering hooks to a receiver that hands them to the adapter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter::{
    Adapter, ChangeEvent, ChangeKind, ResourceType, WebhookError, WebhookReceiver, WebhookRequest, WebhookResponse,
};
use adapter_drchrono::map::ids::{self, DocumentId};
use adapter_drchrono::{DrChronoAdapter, DrChronoConfig, DrChronoWebhooks};
use chrono::Utc;
use data_encoding::HEXLOWER;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;
use vendor_sim::drchrono::{DeliveryOutcome, DrChronoSim, DrChronoSimConfig, SimHandle, VERIFICATION};

const SECRET: &str = "drchrono-sim-webhook-secret";
const ACCOUNT: &str = "acct";

fn hooks() -> DrChronoWebhooks {
    DrChronoWebhooks::new(SECRET.into(), ACCOUNT)
}

fn hmac_hex(key: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    HEXLOWER.encode(&mac.finalize().into_bytes())
}

fn headers(event: Option<&str>, signature: Option<&str>) -> Vec<(String, String)> {
    let mut h = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(event) = event {
        h.push(("x-drchrono-event".into(), event.into()));
    }
    if let Some(signature) = signature {
        h.push(("x-drchrono-signature".into(), signature.into()));
    }
    h.push(("x-drchrono-delivery".into(), "17".into()));
    h
}

fn call(
    hooks: &dyn WebhookReceiver,
    method: &str,
    headers: &[(String, String)],
    query: &[(String, String)],
    body: &[u8],
) -> Result<WebhookResponse, WebhookError> {
    hooks.receive(&WebhookRequest {
        method,
        path: "",
        headers,
        query,
        body,
        now: Utc::now(),
    })
}

fn post(hooks: &dyn WebhookReceiver, event: &str, object: Value) -> Result<WebhookResponse, WebhookError> {
    let body = json!({"receiver": {"id": 1}, "object": object}).to_string();
    call(hooks, "POST", &headers(Some(event), Some(SECRET)), &[], body.as_bytes())
}

fn change(resource_type: ResourceType, native_id: &str, kind: ChangeKind, account: &str) -> ChangeEvent {
    ChangeEvent {
        source: "drchrono",
        account: account.to_owned(),
        resource_type,
        native_id: native_id.to_owned(),
        kind,
    }
}

#[test]
fn the_msg_verification_is_answered_with_the_hmac_of_msg() {
    let hooks = hooks();
    let query = [("msg".to_owned(), "a1B2c3-random msg".to_owned())];
    let answer = call(&hooks, "GET", &[], &query, b"").unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        Some(json!({"secret_token": hmac_hex(SECRET, "a1B2c3-random msg")}))
    );
    assert!(answer.events.is_empty());
    // The Python example of the doc, with a known vector.
    let known = DrChronoWebhooks::new("key".into(), ACCOUNT);
    let query = [(
        "msg".to_owned(),
        "The quick brown fox jumps over the lazy dog".to_owned(),
    )];
    assert_eq!(
        call(&known, "GET", &[], &query, b"").unwrap().body,
        Some(json!({"secret_token": "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"}))
    );
    // No msg, an empty one, a huge one: not understood.
    for query in [
        vec![],
        vec![("other".to_owned(), "x".to_owned())],
        vec![("msg".to_owned(), String::new())],
        vec![("msg".to_owned(), "x".repeat(2000))],
    ] {
        let error = call(&hooks, "GET", &[], &query, b"").unwrap_err();
        assert!(matches!(error, WebhookError::Malformed(_)), "{error:?}");
    }
}

#[test]
fn every_event_kind_becomes_its_change_event() {
    use ChangeKind::{Created, Deleted, Updated};
    use ResourceType::{Appointment, DocumentReference, Patient};
    let hooks = hooks();
    let cases = [
        (
            "APPOINTMENT_CREATE",
            json!({"id": 9001, "patient": 5}),
            Appointment,
            "9001",
            Created,
        ),
        (
            "APPOINTMENT_MODIFY",
            json!({"id": "9001", "status": "Arrived"}),
            Appointment,
            "9001",
            Updated,
        ),
        (
            "APPOINTMENT_MODIFY",
            json!({"id": "abc_1"}),
            Appointment,
            "abc_1",
            Updated,
        ),
        ("APPOINTMENT_DELETE", json!({"id": 9001}), Appointment, "9001", Deleted),
        (
            "PATIENT_CREATE",
            json!({"id": 123, "first_name": "Ann"}),
            Patient,
            "123",
            Created,
        ),
        ("PATIENT_MODIFY", json!({"id": "123"}), Patient, "123", Updated),
        // A note keyed as the mapping keys it: its own id, else its appointment's.
        (
            "CLINICAL_NOTE_LOCK",
            json!({"appointment": 9001, "patient": 5}),
            DocumentReference,
            "note-9001",
            Updated,
        ),
        (
            "CLINICAL_NOTE_UNLOCK",
            json!({"appointment": "9001"}),
            DocumentReference,
            "note-9001",
            Updated,
        ),
        (
            "CLINICAL_NOTE_LOCK",
            json!({"id": 77, "appointment": 9001}),
            DocumentReference,
            "note-77",
            Updated,
        ),
    ];
    for (event, object, resource_type, native, kind) in cases {
        let answer = post(&hooks, event, object).unwrap();
        assert_eq!(answer.status, 200, "{event}");
        assert_eq!(answer.body, None, "{event}");
        assert_eq!(
            answer.events,
            vec![change(resource_type, native, kind, ACCOUNT)],
            "{event}"
        );
    }
    assert_eq!(
        ids::document(&DocumentId::ClinicalNote("9001".into())),
        "note-9001",
        "the id the mapping gives the note"
    );
}

#[test]
fn pings_and_unused_events_are_acknowledged_without_change() {
    let hooks = hooks();
    for event in [
        "PING",
        "PATIENT_PROBLEM_CREATE",
        "PATIENT_PROBLEM_MODIFY",
        "PATIENT_ALLERGY_CREATE",
        "PATIENT_ALLERGY_MODIFY",
        "PATIENT_MEDICATION_CREATE",
        "PATIENT_MEDICATION_MODIFY",
        "SOMETHING_NEW",
    ] {
        let answer = post(&hooks, event, json!({"id": 1})).unwrap();
        assert_eq!(
            answer,
            WebhookResponse {
                status: 200,
                body: None,
                events: Vec::new()
            },
            "{event}"
        );
    }
    // A ping body may be anything JSON.
    let answer = call(&hooks, "POST", &headers(Some("PING"), Some(SECRET)), &[], b"{}").unwrap();
    assert!(answer.events.is_empty());
}

#[test]
fn forged_calls_are_refused_and_say_nothing_of_the_payload() {
    let hooks = hooks();
    let body = json!({"receiver": {"id": 1}, "object": {"id": 424242, "first_name": "Zebedee"}}).to_string();
    let unauthorized = |signature: Option<&str>| {
        let error = call(
            &hooks,
            "POST",
            &headers(Some("PATIENT_MODIFY"), signature),
            &[],
            body.as_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(error, WebhookError::Unauthorized(_)),
            "{signature:?}: {error:?}"
        );
        let printed = format!("{error} {error:?}");
        for leaked in ["424242", "Zebedee", SECRET] {
            assert!(!printed.contains(leaked), "{printed}");
        }
    };
    let hmac_of_body = hmac_hex(SECRET, &body);
    let longer = format!("{SECRET}x");
    let upper = SECRET.to_uppercase();
    for signature in [
        None,
        Some(""),
        Some("guessed-secret"),
        Some(&SECRET[..SECRET.len() - 1]),
        Some(longer.as_str()),
        Some(upper.as_str()),
        Some(hmac_of_body.as_str()),
    ] {
        unauthorized(signature);
    }
    // The HMAC the verification answers is not the secret either.
    unauthorized(Some(&hmac_hex(SECRET, "msg")));
    // A receiver keyed with another secret refuses the real one.
    let other = DrChronoWebhooks::new("another-secret".into(), ACCOUNT);
    let error = call(
        &other,
        "POST",
        &headers(Some("PATIENT_MODIFY"), Some(SECRET)),
        &[],
        body.as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(error, WebhookError::Unauthorized(_)));
    // Refused before the body is looked at: a forged call with a broken body is still 401.
    let error = call(
        &hooks,
        "POST",
        &headers(Some("PATIENT_MODIFY"), Some("x")),
        &[],
        b"{not json",
    )
    .unwrap_err();
    assert!(matches!(error, WebhookError::Unauthorized(_)));
    // The header name is matched whatever its case.
    let mixed = vec![
        ("X-DrChrono-Event".to_owned(), "PATIENT_MODIFY".to_owned()),
        ("X-DrChrono-Signature".to_owned(), SECRET.to_owned()),
    ];
    assert_eq!(
        call(&hooks, "POST", &mixed, &[], body.as_bytes()).unwrap().events.len(),
        1
    );
}

#[test]
fn signed_calls_that_cannot_be_understood_are_malformed() {
    let hooks = hooks();
    let malformed = |headers: Vec<(String, String)>, body: &[u8]| {
        let error = call(&hooks, "POST", &headers, &[], body).unwrap_err();
        assert!(matches!(error, WebhookError::Malformed(_)), "{error:?}");
        let printed = format!("{error} {error:?}");
        assert!(!printed.contains("Zebedee") && !printed.contains(SECRET), "{printed}");
    };
    malformed(headers(Some("PATIENT_MODIFY"), Some(SECRET)), b"{\"object\": Zebedee");
    malformed(headers(None, Some(SECRET)), br#"{"object": {"id": 1}}"#);
    malformed(headers(Some(""), Some(SECRET)), br#"{"object": {"id": 1}}"#);
    for (event, body) in [
        ("PATIENT_MODIFY", json!({"receiver": {}})),
        ("PATIENT_MODIFY", json!({"object": "Zebedee"})),
        ("PATIENT_MODIFY", json!({"object": {"first_name": "Zebedee"}})),
        ("PATIENT_MODIFY", json!({"object": {"id": "Zebedee"}})),
        ("PATIENT_MODIFY", json!({"object": {"id": 0}})),
        ("APPOINTMENT_CREATE", json!({"object": {"id": null}})),
        ("APPOINTMENT_MODIFY", json!({"object": {"id": " "}})),
        ("CLINICAL_NOTE_LOCK", json!({"object": {"patient": 5}})),
    ] {
        malformed(headers(Some(event), Some(SECRET)), body.to_string().as_bytes());
    }
    // Too large, or neither GET nor POST.
    let big = vec![b' '; 2 * 1024 * 1024];
    malformed(headers(Some("PING"), Some(SECRET)), &big);
    let error = call(&hooks, "PUT", &headers(Some("PING"), Some(SECRET)), &[], b"{}").unwrap_err();
    assert!(matches!(error, WebhookError::Malformed(_)));
}

#[test]
fn the_adapter_receives_webhooks_only_with_a_secret() {
    let config = DrChronoConfig::new("app", "client-secret", "refresh", "https://x.test/cb");
    let without = DrChronoAdapter::new(config.clone()).unwrap();
    assert!(without.webhooks().is_none());
    let with = DrChronoAdapter::new(config.clone().with_webhook_secret(SECRET)).unwrap();
    let receiver = with.webhooks().expect("a receiver");
    let answer = post(receiver, "PATIENT_CREATE", json!({"id": 5})).unwrap();
    assert_eq!(
        answer.events,
        vec![change(ResourceType::Patient, "5", ChangeKind::Created, "app")]
    );
    assert!(!format!("{with:?}").contains(SECRET));
    // An empty secret is a configuration error, not an open door.
    assert!(DrChronoAdapter::new(config.with_webhook_secret("  ")).is_err());
}

// ---- over loopback HTTP, from the simulator ----

/// One call the receiver got, and what the verifier said.
#[derive(Clone)]
struct Received {
    method: String,
    headers: Vec<(String, String)>,
    outcome: Result<WebhookResponse, WebhookError>,
}

/// A loopback endpoint handing every request to the adapter's webhook receiver.
struct Endpoint {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn endpoint(adapter: Arc<DrChronoAdapter>) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/drchrono", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (adapter, log) = (adapter.clone(), log.clone());
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
                let mut request_line = lines.next().unwrap_or_default().split(' ');
                let method = request_line.next().unwrap_or_default().to_owned();
                let target = request_line.next().unwrap_or_default().to_owned();
                let query: Vec<(String, String)> = target
                    .split_once('?')
                    .map(|(_, q)| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                    .unwrap_or_default();
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
                let body = data[head_end..head_end + length].to_vec();
                let request = WebhookRequest {
                    path: "",
                    method: &method,
                    headers: &headers,
                    query: &query,
                    body: &body,
                    now: Utc::now(),
                };
                let outcome = adapter.webhooks().unwrap().receive(&request);
                let (status, answer) = match &outcome {
                    Ok(r) => (r.status, r.body.as_ref().map(Value::to_string).unwrap_or_default()),
                    Err(WebhookError::Unauthorized(_)) => (401, String::new()),
                    Err(WebhookError::Malformed(_)) => (400, String::new()),
                    Err(WebhookError::UnknownEndpoint) => (404, String::new()),
                };
                log.lock().unwrap().push(Received {
                    method,
                    headers,
                    outcome,
                });
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Endpoint { url, received }
}

struct Fixture {
    sim: SimHandle,
    adapter: Arc<DrChronoAdapter>,
    endpoint: Endpoint,
}

async fn fixture(adapter_secret: &str) -> Fixture {
    let sim = DrChronoSim::new(DrChronoSimConfig::small(7, Utc::now().date_naive()))
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let c = sim.config();
    assert_eq!(c.webhook_secret, SECRET);
    let config = DrChronoConfig::new(
        c.client_id.clone(),
        c.client_secret.clone(),
        c.initial_refresh_token.clone(),
        c.redirect_uri.clone(),
    )
    .with_base_url(Url::parse(&sim.base_url()).unwrap())
    .with_webhook_secret(adapter_secret);
    let adapter = Arc::new(DrChronoAdapter::new(config).unwrap());
    let endpoint = endpoint(adapter.clone()).await;
    sim.set_webhook_url(Some(endpoint.url.clone()));
    Fixture { sim, adapter, endpoint }
}

#[tokio::test]
async fn the_simulator_verifies_the_callback_and_its_hooks_become_change_events() {
    let f = fixture(SECRET).await;
    let data = f.sim.dataset();
    let account = f.adapter.account().to_owned();
    assert!(f.sim.verify_webhook_url().await);

    let patient = &data.patients[0];
    // An appointment the adapter serves (the dataset follows today's date: its first may be a break
    // or deleted, which are not Appointments).
    let appointment = data
        .appointments
        .iter()
        .find(|a| !a.appt_is_break && !a.deleted_flag)
        .unwrap();
    let note = &data.clinical_notes[0];
    f.sim.fire_webhook("PING", json!({}));
    f.sim
        .fire_webhook("PATIENT_CREATE", serde_json::to_value(patient).unwrap());
    f.sim
        .fire_webhook("PATIENT_MODIFY", serde_json::to_value(patient).unwrap());
    f.sim
        .fire_webhook("APPOINTMENT_CREATE", serde_json::to_value(appointment).unwrap());
    f.sim
        .fire_webhook("APPOINTMENT_MODIFY", serde_json::to_value(appointment).unwrap());
    f.sim
        .fire_webhook("CLINICAL_NOTE_LOCK", serde_json::to_value(note).unwrap());
    f.sim
        .fire_webhook("CLINICAL_NOTE_UNLOCK", serde_json::to_value(note).unwrap());
    f.sim
        .fire_webhook("PATIENT_ALLERGY_CREATE", json!({"id": 3, "patient": patient.id}));
    assert!(f.sim.wait_for_webhooks(Duration::from_secs(10)).await);

    let log = f.sim.webhook_log();
    assert_eq!(log.len(), 9, "{log:?}");
    assert_eq!(
        (log[0].event.as_str(), log[0].outcome),
        (VERIFICATION, DeliveryOutcome::Verified)
    );
    assert!(
        log[1..]
            .iter()
            .all(|d| d.outcome == DeliveryOutcome::Delivered && d.status == Some(200)),
        "{log:?}"
    );

    let received = f.endpoint.received.lock().unwrap().clone();
    assert_eq!(received.len(), 9);
    assert_eq!(received[0].method, "GET");
    // The verification answer, as the simulator checked it.
    assert_eq!(
        received[0].outcome.as_ref().unwrap().body,
        Some(json!({"secret_token": hmac_hex(SECRET, &log[0].body)}))
    );
    for r in &received[1..] {
        assert_eq!(r.method, "POST");
        let header = |name: &str| r.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(header("x-drchrono-signature"), Some(SECRET));
        assert!(header("x-drchrono-event").is_some());
        assert!(header("x-drchrono-delivery").is_some());
    }

    let events: Vec<ChangeEvent> = received
        .iter()
        .flat_map(|r| r.outcome.clone().unwrap().events)
        .collect();
    use ChangeKind::{Created, Updated};
    use ResourceType::{Appointment, DocumentReference, Patient};
    let patient_id = ids::patient(patient.id);
    let note_id = ids::document(&DocumentId::ClinicalNote(note.id.to_string()));
    assert_eq!(
        events,
        vec![
            change(Patient, &patient_id, Created, &account),
            change(Patient, &patient_id, Updated, &account),
            change(Appointment, &appointment.id, Created, &account),
            change(Appointment, &appointment.id, Updated, &account),
            change(DocumentReference, &note_id, Updated, &account),
            change(DocumentReference, &note_id, Updated, &account),
        ]
    );
    // The ids are the ones the adapter reads by.
    for event in &events {
        f.adapter
            .read(event.resource_type, &event.native_id)
            .await
            .unwrap_or_else(|e| panic!("{event:?}: {e}"));
    }
}

#[tokio::test]
async fn hooks_wait_for_verification_and_a_wrong_secret_delivers_nothing() {
    // The adapter holds another secret: it cannot answer the verification, so nothing is sent.
    let f = fixture("not-the-sim-secret").await;
    f.sim.fire_webhook("PATIENT_MODIFY", json!({"id": 1}));
    assert!(f.sim.wait_for_webhooks(Duration::from_secs(10)).await);
    assert!(!f.sim.verify_webhook_url().await);
    f.sim.fire_webhook("PATIENT_MODIFY", json!({"id": 1}));
    assert!(f.sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let outcomes: Vec<DeliveryOutcome> = f.sim.webhook_log().iter().map(|d| d.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            DeliveryOutcome::Refused,
            DeliveryOutcome::VerificationFailed,
            DeliveryOutcome::Refused
        ]
    );
    // Only the verification reached the endpoint, and it was answered (with the wrong token).
    let received = f.endpoint.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "GET");
}

#[tokio::test]
async fn a_hook_signed_with_another_secret_is_refused_over_http() {
    let f = fixture(SECRET).await;
    assert!(f.sim.verify_webhook_url().await);
    // Someone else posts to the callback URL with a guessed token.
    let http = reqwest::Client::new();
    let status = http
        .post(&f.endpoint.url)
        .header("X-drchrono-event", "APPOINTMENT_MODIFY")
        .header("X-drchrono-signature", "guessed")
        .body(json!({"object": {"id": 1}}).to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401);
    let received = f.endpoint.received.lock().unwrap().clone();
    let last = received.last().unwrap();
    assert_eq!(
        last.outcome,
        Err(WebhookError::Unauthorized("the signature does not match"))
    );
}
