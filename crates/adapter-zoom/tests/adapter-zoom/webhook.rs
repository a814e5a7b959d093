//! Zoom webhooks: the simulator delivers signed events (after the `endpoint.url_validation`
//! handshake) over loopback HTTP to a receiver that hands them to the adapter's verifier;
//! forged, stale and replayed calls are refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter::{
    Adapter, ChangeEvent, ChangeKind, ResourceType, WebhookError, WebhookReceiver, WebhookRequest, WebhookResponse,
};
use adapter_zoom::map::ids;
use adapter_zoom::{ZoomAdapter, ZoomConfig, ZoomWebhooks};
use chrono::{DateTime, Utc};
use data_encoding::HEXLOWER;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;
use vendor_sim::zoom::wire::VisitStatus;
use vendor_sim::zoom::{DeliveryOutcome, EhrRefs, NewNote, ZoomSim, ZoomSimConfig, ZoomSimHandle};

const SECRET: &str = "zoom-sim-webhook-secret";

/// One call the receiver got, and what the verifier said.
#[derive(Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    outcome: Result<WebhookResponse, WebhookError>,
}

/// A loopback endpoint handing every POST to the adapter's webhook receiver.
struct Endpoint {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn endpoint(adapter: Arc<ZoomAdapter>) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/zoom", listener.local_addr().unwrap());
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
                let method = lines
                    .next()
                    .unwrap_or_default()
                    .split(' ')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
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
                    query: &[],
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
                    headers: headers.clone(),
                    body: body.clone(),
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
    sim: ZoomSimHandle,
    adapter: Arc<ZoomAdapter>,
    endpoint: Endpoint,
}

async fn fixture() -> Fixture {
    let anchor = chrono::NaiveDate::from_ymd_opt(2025, 3, 14).unwrap();
    let sim = ZoomSim::new(ZoomSimConfig::small(3, anchor, EhrRefs::default()))
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let c = sim.config();
    assert_eq!(c.webhook_secret, SECRET);
    let config = ZoomConfig::new(
        c.account_id.clone(),
        c.client_id.clone(),
        c.client_secret.clone(),
        c.webhook_secret.clone(),
    )
    .with_api_base(Url::parse(&sim.api_base_url()).unwrap())
    .with_oauth_base(Url::parse(&sim.base_url()).unwrap());
    let adapter = Arc::new(ZoomAdapter::new(config).unwrap());
    let endpoint = endpoint(adapter.clone()).await;
    sim.set_webhook_url(Some(endpoint.url.clone()));
    Fixture { sim, adapter, endpoint }
}

fn hmac_hex(message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(message);
    HEXLOWER.encode(&mac.finalize().into_bytes())
}

/// A request as Zoom signs it, at `ts` seen at `now`.
fn signed(body: &str, ts: i64, signature: Option<String>) -> (Vec<(String, String)>, Vec<u8>) {
    let signature = signature.unwrap_or_else(|| format!("v0={}", hmac_hex(format!("v0:{ts}:{body}").as_bytes())));
    (
        vec![
            ("content-type".into(), "application/json".into()),
            ("x-zm-request-timestamp".into(), ts.to_string()),
            ("x-zm-signature".into(), signature),
        ],
        body.as_bytes().to_vec(),
    )
}

fn receive(
    hooks: &dyn WebhookReceiver,
    headers: &[(String, String)],
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<WebhookResponse, WebhookError> {
    hooks.receive(&WebhookRequest {
        path: "",
        method: "POST",
        headers,
        query: &[],
        body,
        now,
    })
}

fn change(resource_type: ResourceType, native_id: String, kind: ChangeKind, account: &str) -> ChangeEvent {
    ChangeEvent {
        source: "zoom",
        account: account.to_owned(),
        resource_type,
        native_id,
        kind,
    }
}

#[tokio::test]
async fn the_simulator_validates_the_endpoint_and_its_events_become_change_events() {
    let f = fixture().await;
    let data = f.sim.dataset();
    let account = f.adapter.account().to_owned();
    let scheduled = data.visits.iter().find(|v| v.status == VisitStatus::Scheduled).unwrap();
    let visit = scheduled.id.clone();

    let note = f
        .sim
        .create_note(NewNote {
            visit_id: None,
            ..NewNote::default()
        })
        .unwrap();
    f.sim.complete_note(&note.note_id).unwrap();
    f.sim.patient_joins(&visit).unwrap();
    f.sim.admit(&visit).unwrap();
    f.sim.end_visit(&visit).unwrap();
    assert!(f.sim.wait_for_webhooks(Duration::from_secs(10)).await);

    let log = f.sim.webhook_log();
    assert_eq!(log[0].outcome, DeliveryOutcome::Validated, "{log:?}");
    assert!(
        log[1..]
            .iter()
            .all(|d| d.outcome == DeliveryOutcome::Delivered && d.attempts == 1),
        "{log:?}"
    );
    assert_eq!(
        log.len(),
        7,
        "validation, two note events, waiting, admitted, started, ended"
    );

    let events: Vec<ChangeEvent> = f
        .endpoint
        .received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.outcome.clone().unwrap().events)
        .collect();
    use ChangeKind::{Created, Updated};
    use ResourceType::{Appointment, DocumentReference, Encounter};
    let expected = vec![
        change(DocumentReference, ids::note(&note.note_id), Created, &account),
        change(DocumentReference, ids::note(&note.note_id), Updated, &account),
        change(Encounter, ids::encounter(&visit), Created, &account),
        change(Appointment, ids::appointment(&visit), Updated, &account),
        change(Encounter, ids::encounter(&visit), Updated, &account),
        change(Appointment, ids::appointment(&visit), Updated, &account),
        change(Appointment, ids::appointment(&visit), Updated, &account),
        change(Encounter, ids::encounter(&visit), Updated, &account),
        change(Appointment, ids::appointment(&visit), Updated, &account),
        change(Encounter, ids::encounter(&visit), Updated, &account),
    ];
    assert_eq!(events, expected);

    // The handshake answer itself, as the simulator checked it.
    let received = f.endpoint.received.lock().unwrap();
    let validation = received[0].outcome.as_ref().unwrap();
    let sent: Value = serde_json::from_slice(&received[0].body).unwrap();
    let plain = sent["payload"]["plainToken"].as_str().unwrap();
    assert_eq!(
        validation.body,
        Some(json!({"plainToken": plain, "encryptedToken": hmac_hex(plain.as_bytes())}))
    );
    assert!(validation.events.is_empty());
}

#[tokio::test]
async fn visits_scheduled_and_cancelled_through_the_adapter_are_announced() {
    let f = fixture().await;
    let data = f.sim.dataset();
    let account = f.adapter.account().to_owned();
    let patient = ids::fhir_id(&data.patients[0].id).unwrap();
    let provider = ids::fhir_id(&data.providers[0].id).unwrap();
    let start = (f.sim.now() + chrono::Duration::days(3))
        .format("%Y-%m-%dT15:00:00Z")
        .to_string();
    let new = json!({
        "resourceType": "Appointment", "status": "booked",
        "extension": [{
            "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.virtualService",
            "extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/_datatype", "valueString": "VirtualServiceDetail"},
                {"url": "channelType", "valueCoding": {"system": "http://hl7.org/fhir/virtual-service-type", "code": "zoom"}}
            ]
        }],
        "start": start, "minutesDuration": 20,
        "participant": [
            {"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"},
            {"actor": {"reference": format!("Practitioner/{provider}")}, "status": "accepted"}
        ]
    });
    let created = f
        .adapter
        .create(fhirbolt::json::from_str(&new.to_string(), None).unwrap())
        .await
        .unwrap();
    let mut cancelled = fhirbolt::json::to_json_value(created.clone(), None).unwrap();
    cancelled["status"] = json!("cancelled");
    let id = adapter::FhirId::parse(cancelled["id"].as_str().unwrap()).unwrap();
    f.adapter
        .update(
            ResourceType::Appointment,
            id.native(),
            fhirbolt::json::from_str(&cancelled.to_string(), None).unwrap(),
        )
        .await
        .unwrap();
    assert!(f.sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let events: Vec<ChangeEvent> = f
        .endpoint
        .received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.outcome.clone().unwrap().events)
        .collect();
    let appointment = |kind| change(ResourceType::Appointment, id.native().to_owned(), kind, &account);
    assert_eq!(
        events,
        vec![appointment(ChangeKind::Created), appointment(ChangeKind::Updated)]
    );
}

#[tokio::test]
async fn forged_stale_and_replayed_calls_are_refused() {
    let f = fixture().await;
    let hooks = f.adapter.webhooks().unwrap();
    let visit = f
        .sim
        .dataset()
        .visits
        .iter()
        .find(|v| v.status == VisitStatus::Scheduled)
        .unwrap()
        .clone();
    f.sim.patient_joins(&visit.id).unwrap();
    assert!(f.sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let delivered = f.endpoint.received.lock().unwrap().last().unwrap().clone();
    assert!(delivered.outcome.is_ok());

    // The same call again: a replay.
    assert_eq!(
        receive(hooks, &delivered.headers, &delivered.body, Utc::now()),
        Err(WebhookError::Unauthorized("the request is a replay"))
    );

    let now = Utc::now();
    let body = json!({
        "event": "healthcare.patient.admitted", "event_ts": now.timestamp_millis(),
        "payload": {"account_id": f.sim.config().account_id, "object": {"visit_id": visit.id, "patient_id": visit.patient_id}}
    })
    .to_string();
    let ts = now.timestamp();
    let unauthorized = |r: Result<WebhookResponse, WebhookError>| {
        let error = r.unwrap_err();
        assert!(matches!(error, WebhookError::Unauthorized(_)), "{error:?}");
        assert!(!error.to_string().contains(&visit.patient_id), "{error}");
    };
    // Forged: another key, a changed body, a truncated signature, no v0, no headers.
    let forged = {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"guessed-secret").unwrap();
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        format!("v0={}", HEXLOWER.encode(&mac.finalize().into_bytes()))
    };
    let (headers, bytes) = signed(&body, ts, Some(forged));
    unauthorized(receive(hooks, &headers, &bytes, now));
    let (headers, _) = signed(&body, ts, None);
    unauthorized(receive(
        hooks,
        &headers,
        body.replace("admitted", "waiting").as_bytes(),
        now,
    ));
    let (mut headers, bytes) = signed(&body, ts, None);
    headers[2].1.truncate(40);
    unauthorized(receive(hooks, &headers, &bytes, now));
    let (mut headers, bytes) = signed(&body, ts, None);
    headers[2].1 = headers[2].1.replace("v0=", "v1=");
    unauthorized(receive(hooks, &headers, &bytes, now));
    unauthorized(receive(hooks, &[], body.as_bytes(), now));

    // Correctly signed but more than five minutes old, or ahead.
    for skew in [-301, 301] {
        let (headers, bytes) = signed(&body, ts + skew, None);
        unauthorized(receive(hooks, &headers, &bytes, now));
    }
    // Within the window it is believed, once.
    let (headers, bytes) = signed(&body, ts - 290, None);
    let accepted = receive(hooks, &headers, &bytes, now).unwrap();
    assert_eq!(accepted.status, 200);
    assert_eq!(accepted.events.len(), 2);
    unauthorized(receive(hooks, &headers, &bytes, now));
}

#[test]
fn signed_calls_that_say_nothing_useful() {
    let hooks = ZoomWebhooks::new(SECRET.into(), "acct-name", "acct-1");
    let now = Utc::now();
    let ts = now.timestamp();
    // An event the gateway does not use: acknowledged, no change.
    let body =
        json!({"event": "meeting.started", "payload": {"account_id": "acct-1", "object": {"id": 1}}}).to_string();
    let (headers, bytes) = signed(&body, ts, None);
    let r = receive(&hooks, &headers, &bytes, now).unwrap();
    assert_eq!((r.status, r.body, r.events.len()), (200, None, 0));
    // Another Zoom account's event: acknowledged, no change.
    let body = json!({"event": "clinical_notes.note_created", "payload": {"account_id": "other", "object": {"note_id": "n1"}}}).to_string();
    let (headers, bytes) = signed(&body, ts, None);
    assert!(receive(&hooks, &headers, &bytes, now).unwrap().events.is_empty());
    // Ours: the note.
    let body = json!({"event": "clinical_notes.note_created", "payload": {"account_id": "acct-1", "object": {"note_id": "n1"}}}).to_string();
    let (headers, bytes) = signed(&body, ts, None);
    assert_eq!(
        receive(&hooks, &headers, &bytes, now).unwrap().events,
        vec![change(
            ResourceType::DocumentReference,
            "note-n1".into(),
            ChangeKind::Created,
            "acct-name"
        )]
    );
    // A visit that starts without the patient having waited: its Encounter is new.
    let body = json!({"event": "healthcare.visit.started", "payload": {"account_id": "acct-1", "object": {"id": "v1", "status": "in_progress"}}}).to_string();
    let (headers, bytes) = signed(&body, ts, None);
    assert_eq!(
        receive(&hooks, &headers, &bytes, now).unwrap().events,
        vec![
            change(ResourceType::Appointment, "v1".into(), ChangeKind::Updated, "acct-name"),
            change(
                ResourceType::Encounter,
                "enc-v1".into(),
                ChangeKind::Created,
                "acct-name"
            ),
        ]
    );
    // Signed, but not JSON, or an event without its object: malformed, without echoing it.
    for body in [
        "{not json",
        r#"{"event":"healthcare.visit.started","payload":{"object":{}}}"#,
    ] {
        let (headers, bytes) = signed(body, ts, None);
        let error = receive(&hooks, &headers, &bytes, now).unwrap_err();
        assert!(matches!(error, WebhookError::Malformed(_)), "{error:?}");
    }
    // A URL validation whose plain token could be part of a signed message is not answered.
    let body =
        json!({"event": "endpoint.url_validation", "payload": {"plainToken": format!("v0:{ts}:{{}}")}}).to_string();
    let (headers, bytes) = signed(&body, ts, None);
    assert!(matches!(
        receive(&hooks, &headers, &bytes, now),
        Err(WebhookError::Malformed(_))
    ));
    // An unsigned URL validation is not answered either.
    let body = json!({"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}}).to_string();
    assert!(matches!(
        receive(&hooks, &[], body.as_bytes(), now),
        Err(WebhookError::Unauthorized(_))
    ));
    // Only POST.
    let (headers, bytes) = signed(&body, ts, None);
    let get = WebhookRequest {
        path: "",
        method: "GET",
        headers: &headers,
        query: &[],
        body: &bytes,
        now,
    };
    assert!(matches!(hooks.receive(&get), Err(WebhookError::Malformed(_))));
}
