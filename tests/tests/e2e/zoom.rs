//! Zoom end to end: notes and virtual visits through the gateway, writes, webhooks, paging across
//! an expiring `next_page_token`, and rate limits — against the real Zoom and DrChrono simulators.

use std::time::Duration;

use adapter::resilience::ResilienceSettings;
use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER};
use e2e::{Env, entries, ids, link};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use vendor_sim::zoom::{RateLimits, ZoomSimConfig};

fn hmac_hex(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    HEXLOWER.encode(&mac.finalize().into_bytes())
}

/// The EHR patient a Zoom object's context names (`Patient/123` or `123`).
fn ehr_patient(ctx: Option<&vendor_sim::zoom::wire::EhrContext>) -> Option<String> {
    let id = ctx?.patient_id.as_deref()?;
    Some(id.rsplit('/').next().unwrap_or(id).to_owned())
}

fn is_zoom(r: &Value) -> bool {
    r["meta"]["source"] == "urn:fhir-gateway:source:zoom"
}

/// The DrChrono patient with the most Zoom notes that also has DrChrono clinical notes.
fn shared_patient(env: &Env) -> i64 {
    let zoom = env.zoom().dataset();
    let dr = env.sim.dataset();
    let mut best = (0, 0);
    for p in &dr.patients {
        let zoom_notes = zoom
            .clinical_notes
            .iter()
            .filter(|n| ehr_patient(n.ehr_context.as_ref()) == Some(p.id.to_string()))
            .count();
        let dr_notes = dr.clinical_notes.iter().filter(|n| n.patient == p.id).count();
        if dr_notes > 0 && zoom_notes > best.1 {
            best = (p.id, zoom_notes);
        }
    }
    assert!(best.1 > 0, "the shared seed links Zoom notes to DrChrono patients");
    best.0
}

#[tokio::test]
async fn zoom_and_drchrono_notes_come_together_for_a_patient() {
    let env = Env::start_with_zoom(ZoomSimConfig::small, |_| {}).await;
    let patient = shared_patient(&env);
    let url =
        format!("/fhir/DocumentReference?patient=drchrono-{patient}&_include=DocumentReference:subject&_count=100");
    let r = env.get(&url).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let matches = entries(&r.body, "match");
    let zoom_docs: Vec<&Value> = matches.iter().filter(|d| is_zoom(d)).collect();
    let zoom_truth: Vec<_> = env
        .zoom()
        .dataset()
        .clinical_notes
        .iter()
        .filter(|n| ehr_patient(n.ehr_context.as_ref()) == Some(patient.to_string()))
        .cloned()
        .collect();
    assert_eq!(zoom_docs.len(), zoom_truth.len(), "every Zoom note of the patient");
    assert!(matches.iter().any(|d| !is_zoom(d)), "DrChrono notes are there too");
    for d in &zoom_docs {
        assert_eq!(d["subject"]["reference"], format!("Patient/drchrono-{patient}"));
        assert_eq!(d["category"][0]["coding"][0]["code"], "clinical-note");
        let data = d["content"][0]["attachment"]["data"].as_str().unwrap();
        let text = String::from_utf8(BASE64.decode(data.as_bytes()).unwrap()).unwrap();
        assert!(
            zoom_truth.iter().any(|n| n.note_content == text),
            "the markdown is exactly as Zoom wrote it"
        );
    }
    let included = entries(&r.body, "include");
    assert_eq!(ids(&included), vec![format!("drchrono-{patient}")]);
    for d in &matches {
        e2e::assert_valid_fhir(d);
    }
}

#[tokio::test]
async fn completing_a_note_through_fhir_is_visible_on_the_next_read_and_in_zoom() {
    let env = Env::start_with_zoom(ZoomSimConfig::small, |_| {}).await;
    let note = env
        .zoom()
        .dataset()
        .clinical_notes
        .iter()
        .find(|n| !n.is_note_completed)
        .cloned()
        .expect("an open note");
    let found = env
        .all(&format!(
            "/fhir/DocumentReference?identifier=urn:fhir-gateway:id:zoom:documentreference|note-{}",
            note.note_id
        ))
        .await;
    let doc = found
        .iter()
        .find(|d| is_zoom(d))
        .expect("the note is found by its Zoom id")
        .clone();
    assert_eq!(doc["docStatus"], "preliminary");
    let id = doc["id"].as_str().unwrap().to_owned();

    // A change Zoom cannot store: 422 naming the element, nothing applied.
    let bad = json!([{"op": "replace", "path": "/docStatus", "value": "final"}, {"op": "replace", "path": "/description", "value": "edited"}]);
    let r = env
        .send_json(
            Method::PATCH,
            &format!("/fhir/DocumentReference/{id}"),
            "application/json-patch+json",
            &bad,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("description")
    );
    let now = env.zoom().dataset();
    assert!(
        !now.clinical_notes
            .iter()
            .find(|n| n.note_id == note.note_id)
            .unwrap()
            .is_note_completed,
        "nothing half-applied"
    );

    let good = json!([{"op": "replace", "path": "/docStatus", "value": "final"}]);
    let r = env
        .send_json(
            Method::PATCH,
            &format!("/fhir/DocumentReference/{id}"),
            "application/json-patch+json",
            &good,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["docStatus"], "final");
    assert_eq!(
        env.get(&format!("/fhir/DocumentReference/{id}")).await.body["docStatus"],
        "final"
    );
    assert!(
        env.zoom()
            .dataset()
            .clinical_notes
            .iter()
            .find(|n| n.note_id == note.note_id)
            .unwrap()
            .is_note_completed
    );
}

/// A Zoom patient and provider, found through FHIR alone: the participants of a Zoom visit.
async fn zoom_participants(env: &Env) -> (String, String) {
    let visits = env.all("/fhir/Appointment?_count=200").await;
    let visit = visits.iter().find(|a| is_zoom(a)).expect("Zoom visits are served");
    let actor = |ty: &str| {
        visit["participant"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["actor"]["reference"].as_str())
            .find_map(|r| {
                r.strip_prefix(&format!("{ty}/zoom-"))
                    .map(|rest| format!("zoom-{rest}"))
            })
            .unwrap_or_else(|| panic!("a Zoom {ty} participant"))
    };
    let (patient, provider) = (actor("Patient"), actor("Practitioner"));
    assert_eq!(
        env.get(&format!("/fhir/Patient/{patient}")).await.status,
        StatusCode::OK,
        "Zoom patients are read by id"
    );
    (patient, provider)
}

fn virtual_appointment(patient: &str, provider: &str, start: &str, minutes: u32) -> Value {
    json!({
        "resourceType": "Appointment",
        "status": "booked",
        "start": start,
        "minutesDuration": minutes,
        "reasonCode": [{"text": "Follow-up on lab results"}],
        "extension": [{
            "url": adapter::systems::EXT_R5_VIRTUAL_SERVICE,
            "extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/_datatype", "valueString": "VirtualServiceDetail"},
                {"url": "channelType", "valueCoding": {"system": "http://hl7.org/fhir/virtual-service-type", "code": "zoom"}}
            ]
        }],
        "participant": [
            {"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"},
            {"actor": {"reference": format!("Practitioner/{provider}")}, "status": "accepted"}
        ]
    })
}

#[tokio::test]
async fn a_virtual_visit_is_scheduled_read_admitted_and_cancelled_through_fhir() {
    let env = Env::start_with_zoom(ZoomSimConfig::small, |_| {}).await;
    let (patient, provider) = zoom_participants(&env).await;
    let start = (env.zoom().now() + chrono::Duration::days(2))
        .format("%Y-%m-%dT15:00:00Z")
        .to_string();
    let before: Vec<String> = env.zoom().dataset().visits.iter().map(|v| v.id.clone()).collect();

    let r = env
        .send_json(
            Method::POST,
            "/fhir/Appointment",
            "application/fhir+json",
            &virtual_appointment(&patient, &provider, &start, 30),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let location = r.headers["location"].to_str().unwrap().to_owned();
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(location.ends_with(&format!("/fhir/Appointment/{id}")));
    let visit = env
        .zoom()
        .dataset()
        .visits
        .iter()
        .find(|v| !before.contains(&v.id))
        .cloned()
        .expect("Zoom has the visit");
    assert!(
        visit.settings.waiting_room && visit.settings.require_encryption && !visit.settings.recording,
        "HIPAA-safe defaults"
    );
    assert_eq!(visit.duration_minutes, 30);

    let read = env.get(&location).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["status"], "booked");
    let text = read.body.to_string();
    assert!(
        text.contains(&visit.join_url_patient),
        "the patient join URL is in virtualService"
    );

    // Reschedule: a new start moves the visit.
    let later = (env.zoom().now() + chrono::Duration::days(3))
        .format("%Y-%m-%dT16:00:00Z")
        .to_string();
    let r = env
        .send_json(
            Method::PATCH,
            &format!("/fhir/Appointment/{id}"),
            "application/json-patch+json",
            &json!([{"op": "replace", "path": "/start", "value": later}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // The patient arrives in the waiting room, the provider admits them.
    env.zoom().patient_joins(&visit.id).unwrap();
    let r = env
        .request(Method::POST, &format!("/fhir/Appointment/{id}/$admit"), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let now = env.zoom().dataset();
    let status = serde_json::to_value(now.visits.iter().find(|v| v.id == visit.id).unwrap().status).unwrap();
    assert_eq!(status, "in_progress", "Zoom admitted the patient");
    let encounters = env.all(&format!("/fhir/Encounter?appointment=Appointment/{id}")).await;
    assert_eq!(encounters.len(), 1);
    assert_eq!(encounters[0]["status"], "in-progress");
    assert_eq!(encounters[0]["class"]["code"], "VR");

    // A second visit, cancelled through FHIR.
    let r = env
        .send_json(
            Method::POST,
            "/fhir/Appointment",
            "application/fhir+json",
            &virtual_appointment(&patient, &provider, &later, 20),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let second = r.body["id"].as_str().unwrap().to_owned();
    let r = env
        .send_json(
            Method::PATCH,
            &format!("/fhir/Appointment/{second}"),
            "application/json-patch+json",
            &json!([{"op": "replace", "path": "/status", "value": "cancelled"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        env.get(&format!("/fhir/Appointment/{second}")).await.body["status"],
        "cancelled"
    );

    // Something Zoom cannot store.
    let r = env
        .send_json(
            Method::PATCH,
            &format!("/fhir/Appointment/{second}"),
            "application/json-patch+json",
            &json!([{"op": "add", "path": "/comment", "value": "x"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
}

fn cursor_has_zoom_continuation(next: &str) -> bool {
    let token = next.split("_cursor=").nth(1).unwrap_or("");
    let body = token.split('.').next().unwrap_or("");
    let Ok(json) = BASE64URL_NOPAD.decode(body.as_bytes()) else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<Value>(&json) else {
        return false;
    };
    v["pos"]["sources"]
        .as_array()
        .is_some_and(|s| s.iter().any(|p| p["src"] == "zoom" && !p["cont"].is_null()))
}

#[tokio::test]
async fn an_expired_zoom_page_token_is_a_clear_410_never_a_wrong_page() {
    fn short_tokens(seed: u64, anchor: chrono::NaiveDate, ehr: vendor_sim::zoom::EhrRefs) -> ZoomSimConfig {
        let mut c = ZoomSimConfig::small(seed, anchor, ehr);
        c.next_page_token_ttl = Duration::from_secs(1);
        c
    }
    let env = Env::start_with_zoom(short_tokens, |_| {}).await;
    // Walk the notes (no search parameters, so vendor pages are small) until a paging link carries
    // a Zoom next_page_token.
    let mut next = link(&env.get("/fhir/DocumentReference?_count=5").await.body, "next");
    let mut steps = 0;
    while let Some(url) = next.clone() {
        if cursor_has_zoom_continuation(&url) {
            break;
        }
        next = link(&env.get(&url).await.body, "next");
        steps += 1;
        assert!(steps < 100, "no page ever carried a Zoom continuation");
    }
    let url = next.expect("the notes span several Zoom pages");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let r = env.get(&url).await;
    assert_eq!(r.status, StatusCode::GONE, "{}", r.body);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    assert_eq!(r.body["issue"][0]["code"], "expired");
}

#[tokio::test]
async fn zoom_webhooks_reach_the_gateway_verified() {
    let env = Env::start_with_zoom(ZoomSimConfig::small, |_| {}).await;
    let secret = env.zoom().config().webhook_secret.clone();
    let url = format!("{}/webhooks/zoom", env.gw.base_url);

    // The url_validation handshake, answered with the HMAC of the plain token.
    let body = json!({"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}, "event_ts": 1_700_000_000_000u64}).to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = format!("v0={}", hmac_hex(&secret, &format!("v0:{ts}:{body}")));
    let r = env
        .http
        .post(&url)
        .header("x-zm-request-timestamp", &ts)
        .header("x-zm-signature", &sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(answer["encryptedToken"], hmac_hex(&secret, "qgg8vlvZRS6UYooatFL8Aw"));

    // A real event from the simulator, signed by it: accepted and turned into a change event.
    let note = env
        .zoom()
        .dataset()
        .clinical_notes
        .iter()
        .find(|n| !n.is_note_completed)
        .cloned()
        .unwrap();
    env.zoom().complete_note(&note.note_id).unwrap();
    assert!(
        env.zoom().wait_for_webhooks(Duration::from_secs(5)).await,
        "the simulator delivered its webhooks"
    );
    let log = env.zoom().webhook_log();
    assert!(!log.is_empty());
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("fhir_gateway_webhooks_total{source=\"zoom\",outcome=\"accepted\"}"),
        "{metrics}"
    );

    // Forged signature, stale timestamp, replay: refused.
    let event = json!({"event": "clinical_notes.note_updated", "event_ts": 1, "payload": {"account_id": "x", "object": {"note_id": note.note_id}}}).to_string();
    let post = |ts: String, sig: String, body: String| {
        let http = env.http.clone();
        let url = url.clone();
        async move {
            http.post(url)
                .header("x-zm-request-timestamp", ts)
                .header("x-zm-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        post(now.to_string(), "v0=00ff".into(), event.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    let stale = (now - 600).to_string();
    assert_eq!(
        post(
            stale.clone(),
            format!("v0={}", hmac_hex(&secret, &format!("v0:{stale}:{event}"))),
            event.clone()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let fresh = now.to_string();
    let good = format!("v0={}", hmac_hex(&secret, &format!("v0:{fresh}:{event}")));
    assert_eq!(post(fresh.clone(), good.clone(), event.clone()).await, StatusCode::OK);
    assert_eq!(
        post(fresh, good, event).await,
        StatusCode::UNAUTHORIZED,
        "a replay is refused"
    );
}

#[tokio::test]
async fn zoom_rate_limits_are_reported_not_hidden() {
    // Not retried: a retry would wait out Zoom's `Retry-After: 1` and hide the 429 this test is about.
    let env = Env::start_with_zoom(ZoomSimConfig::small, |o| {
        o.practice_resilience = Some(ResilienceSettings {
            max_retries: 0,
            ..ResilienceSettings::default()
        })
    })
    .await;
    let doc = env
        .all("/fhir/DocumentReference?category=clinical-note&_count=100")
        .await
        .into_iter()
        .find(is_zoom)
        .unwrap();
    // One request per second per label: a burst trips Zoom's 429.
    env.zoom().set_rate_limits(RateLimits {
        light: 1,
        medium: 1,
        heavy: 1,
    });
    let mut limited = None;
    for _ in 0..10 {
        let r = env
            .get(&format!("/fhir/DocumentReference/{}", doc["id"].as_str().unwrap()))
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = limited.expect("a burst is rate limited");
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    assert!(r.headers.contains_key("retry-after"));
    // A federated search still answers with DrChrono's notes and names the failed source.
    let patient = shared_patient(&env);
    let mut reported = false;
    for _ in 0..10 {
        let r = env
            .get(&format!("/fhir/DocumentReference?patient=drchrono-{patient}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(!entries(&r.body, "match").is_empty());
        if let Some(outcome) = entries(&r.body, "outcome").first() {
            assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("zoom"));
            reported = true;
            break;
        }
    }
    assert!(reported, "the rate-limited source is named in the Bundle");
    let mut strict_refused = false;
    for _ in 0..10 {
        let strict = env
            .request(
                Method::GET,
                &format!("/fhir/DocumentReference?patient=drchrono-{patient}"),
                &[("Prefer", "handling=strict")],
            )
            .await;
        if strict.status == StatusCode::TOO_MANY_REQUESTS {
            strict_refused = true;
            break;
        }
    }
    assert!(
        strict_refused,
        "strict handling turns the partial result into the error"
    );
}
