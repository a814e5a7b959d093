//! Noa Notes end to end: a scribe session started for a DrChrono appointment through one FHIR
//! call, its Encounter followed through the lifecycle the simulator's clock drives (status webhooks
//! delivered to the gateway's secret callback URL), the verified summary in the patient's note
//! list beside DrChrono's and Zoom's, regenerate/recover, sign-in and token expiry, a failed
//! session, and webhooks with a wrong secret.

use std::time::Duration;

use chrono::TimeDelta;
use e2e::{Env, entries};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vendor_sim::noa::NoaSimConfig;
use vendor_sim::noa::wire::SessionStatus;

const NOA_STATUS: &str = "urn:fhir-gateway:ext:noa-session-status";

/// A value of a `Parameters` resource by name.
fn param<'a>(parameters: &'a Value, name: &str) -> Option<&'a Value> {
    parameters["parameter"].as_array()?.iter().find(|p| p["name"] == name)
}

fn noa_status(encounter: &Value) -> String {
    encounter["extension"]
        .as_array()
        .and_then(|e| e.iter().find(|x| x["url"] == NOA_STATUS))
        .and_then(|x| x["valueCode"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A DrChrono appointment a scribe session can be started for, preferring one whose doctor Noa
/// does not know yet (so starting the session must register the doctor).
fn scribe_appointment(env: &Env) -> (String, i64, i64, i64) {
    let dr = env.sim.dataset();
    let noa = env.noa().dataset();
    let candidates: Vec<_> = dr
        .appointments
        .iter()
        .filter(|a| {
            a.patient.is_some()
                && !a.appt_is_break
                && !a.deleted_flag
                && !matches!(a.status.as_str(), "Cancelled" | "Rescheduled" | "No Show")
                && !noa.sessions.iter().any(|s| s.episode_id == a.id)
        })
        .collect();
    let unknown_doctor = candidates
        .iter()
        .find(|a| !noa.doctors.iter().any(|d| d.external_doctor_id == a.doctor.to_string()));
    let a = unknown_doctor
        .or(candidates.first())
        .expect("a schedulable appointment");
    (a.id.clone(), a.patient.unwrap_or_default(), a.doctor, a.office)
}

async fn start_scribe(env: &Env, appointment: &str, input: &Value) -> e2e::Resp {
    env.send_json(
        Method::POST,
        &format!("/fhir/Appointment/drchrono-{appointment}/$start-scribe"),
        "application/fhir+json",
        input,
    )
    .await
}

/// Advances Noa's clock in steps, letting the webhooks reach the gateway after each.
async fn advance(env: &Env, minutes: i64) {
    for _ in 0..minutes {
        env.noa().advance_clock(TimeDelta::minutes(1));
    }
    assert!(env.noa().wait_for_webhooks(Duration::from_secs(10)).await);
}

#[tokio::test]
async fn a_scribe_session_goes_from_one_fhir_call_to_a_verified_note() {
    let env = Env::start_with_noa(NoaSimConfig::small, |_| {}).await;
    let (appointment, patient, doctor, office) = scribe_appointment(&env);
    let input = json!({"resourceType": "Parameters", "parameter": [
        {"name": "language", "valueCode": "en-US"},
        {"name": "visitType", "valueCode": "FollowUpVisit"},
        {"name": "template", "part": [{"name": "title", "valueString": "Reason for the Visit"},
                                      {"name": "instruction", "valueString": "Why the patient came"}]},
        {"name": "template", "part": [{"name": "title", "valueString": "Plan"},
                                      {"name": "instruction", "valueString": "What happens next"}]}]});
    let r = start_scribe(&env, &appointment, &input).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["resourceType"], "Parameters");
    let session = param(&r.body, "sessionId").expect("sessionId")["valueString"]
        .as_str()
        .unwrap()
        .to_owned();
    let encounter_ref = format!("Encounter/noa-{session}");
    assert_eq!(
        param(&r.body, "encounter").unwrap()["valueReference"]["reference"],
        encounter_ref
    );
    for name in ["recorderUrl", "summaryUrl"] {
        let url = param(&r.body, name).unwrap()["valueUrl"].as_str().unwrap();
        assert!(url.starts_with(&env.noa().base_url()), "{name}: {url}");
    }
    assert!(
        !param(&r.body, "sessionToken").unwrap()["valueString"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert!(param(&r.body, "expires").is_some());
    assert_eq!(param(&r.body, "resumed").unwrap()["valueBoolean"], false);

    // Noa now knows the doctor and the facility, and the session points at the EHR's ids.
    let noa = env.noa().dataset();
    assert!(noa.doctor(&office.to_string(), &doctor.to_string()).is_some());
    let s = noa.session(&session).expect("the session exists at Noa");
    assert_eq!(s.episode_id, appointment);
    assert_eq!(s.doctor_id, doctor.to_string());
    assert_eq!(s.facility_id.as_deref(), Some(office.to_string().as_str()));
    assert_eq!(s.language, "en-US");
    let titles: Vec<&str> = s
        .template
        .as_ref()
        .unwrap()
        .value
        .iter()
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(titles, ["Reason for the Visit", "Plan"], "the template keeps its order");

    // Calling again for the live session returns the same session.
    let again = start_scribe(&env, &appointment, &json!({"resourceType": "Parameters"})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(
        param(&again.body, "sessionId").unwrap()["valueString"],
        session.as_str()
    );
    assert_eq!(param(&again.body, "resumed").unwrap()["valueBoolean"], true);

    // The Encounter follows the lifecycle.
    let e = env.get(&format!("/fhir/{encounter_ref}")).await;
    assert_eq!(e.status, StatusCode::OK, "{}", e.body);
    assert_eq!(e.body["status"], "planned");
    assert_eq!(e.body["subject"]["reference"], format!("Patient/drchrono-{patient}"));
    assert_eq!(
        e.body["appointment"][0]["reference"],
        format!("Appointment/drchrono-{appointment}")
    );
    assert_eq!(
        e.body["participant"][0]["individual"]["reference"],
        format!("Practitioner/drchrono-{doctor}")
    );
    let doc = format!("/fhir/DocumentReference/noa-{session}");
    assert_eq!(
        env.get(&doc).await.status,
        StatusCode::NOT_FOUND,
        "no summary before Summarized"
    );

    env.noa().start_recording(&session).expect("recording starts");
    assert!(env.noa().wait_for_webhooks(Duration::from_secs(10)).await);
    let e = env.get(&format!("/fhir/{encounter_ref}")).await;
    assert_eq!(e.body["status"], "in-progress");
    assert_eq!(noa_status(&e.body), "Recording");

    let mut seen = Vec::new();
    for _ in 0..120 {
        advance(&env, 1).await;
        let status = env.noa().dataset().session(&session).unwrap().status;
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        if status == SessionStatus::Summarized {
            break;
        }
    }
    assert_eq!(seen.last(), Some(&SessionStatus::Summarized), "{seen:?}");
    let e = env.get(&format!("/fhir/{encounter_ref}")).await;
    assert_eq!(e.body["status"], "finished");
    assert_eq!(noa_status(&e.body), "Summarized");
    assert!(e.body["period"]["end"].is_string());

    let d = env.get(&doc).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert_eq!(d.body["docStatus"], "preliminary");
    assert_eq!(d.body["context"]["encounter"][0]["reference"], encounter_ref);

    // The doctor approves in Noa's widget: the webhook tells the gateway, the note is final.
    env.noa().approve(&session, false).expect("approve");
    assert!(env.noa().wait_for_webhooks(Duration::from_secs(10)).await);
    let d = env.get(&doc).await;
    assert_eq!(d.body["docStatus"], "final");
    let markdown = String::from_utf8(
        data_encoding::BASE64
            .decode(d.body["content"][0]["attachment"]["data"].as_str().unwrap().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let reason = markdown.find("Reason for the Visit").expect("first section");
    let plan = markdown.find("Plan").expect("second section");
    assert!(reason < plan, "sections in template order:\n{markdown}");

    // In the patient's note list, beside the other vendors' notes.
    let list = env
        .get(&format!(
            "/fhir/DocumentReference?patient=drchrono-{patient}&_count=200"
        ))
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let notes = entries(&list.body, "match");
    assert!(notes.iter().any(|n| n["id"] == format!("noa-{session}")));
    assert!(
        notes
            .iter()
            .all(|n| n["subject"]["reference"] == format!("Patient/drchrono-{patient}"))
    );

    // Encounter search by the appointment and by the patient finds it.
    for query in [
        format!("appointment=Appointment/drchrono-{appointment}"),
        format!("patient=drchrono-{patient}&status=finished"),
    ] {
        let r = env.get(&format!("/fhir/Encounter?{query}&_count=100")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            entries(&r.body, "match")
                .iter()
                .any(|e| e["id"] == format!("noa-{session}")),
            "{query}"
        );
    }

    // Once a session is final, starting again creates a new one.
    let third = start_scribe(&env, &appointment, &json!({"resourceType": "Parameters"})).await;
    assert_eq!(third.status, StatusCode::OK);
    assert_ne!(
        param(&third.body, "sessionId").unwrap()["valueString"],
        session.as_str()
    );
}

#[tokio::test]
async fn start_scribe_refuses_what_noa_cannot_record() {
    let env = Env::start_with_noa(NoaSimConfig::small, |_| {}).await;
    let (appointment, ..) = scribe_appointment(&env);
    // A language outside Noa's list.
    let bad = json!({"resourceType": "Parameters", "parameter": [{"name": "language", "valueCode": "xx-XX"}]});
    let r = start_scribe(&env, &appointment, &bad).await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.body);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    // A body that is not Parameters; an unknown appointment; a cancelled one.
    let r = start_scribe(&env, &appointment, &json!({"resourceType": "Patient"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = start_scribe(&env, "999999999", &json!({"resourceType": "Parameters"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let dr = env.sim.dataset();
    if let Some(cancelled) = dr
        .appointments
        .iter()
        .find(|a| a.status == "Cancelled" && !a.deleted_flag && !a.appt_is_break && a.patient.is_some())
    {
        let r = start_scribe(&env, &cancelled.id, &json!({"resourceType": "Parameters"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    }
    // Nothing was created at Noa by any of these.
    let noa = env.noa().dataset();
    assert!(!noa.sessions.iter().any(|s| s.episode_id == appointment));
}

#[tokio::test]
async fn regenerate_and_recover_are_accepted_and_followed_through_the_encounter() {
    let env = Env::start_with_noa(NoaSimConfig::small, |_| {}).await;
    let noa = env.noa().dataset();
    let verified = noa
        .sessions_in(SessionStatus::Verified)
        .next()
        .expect("the small dataset has a verified session")
        .session_id
        .clone();
    let doc = format!("/fhir/DocumentReference/noa-{verified}");
    let before = env.get(&doc).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.body);
    assert_eq!(before.body["docStatus"], "final");

    let r = env.request(Method::POST, &format!("{doc}/$regenerate"), &[]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        r.headers["content-location"].to_str().unwrap(),
        format!("{}/Encounter/noa-{verified}", env.fhir())
    );
    assert_eq!(param(&r.body, "status").unwrap()["valueCode"], "Analyzing");
    // A second one while it runs is refused; nothing changes.
    let again = env.request(Method::POST, &format!("{doc}/$recover"), &[]).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", again.body);

    assert!(env.noa().wait_for_webhooks(Duration::from_secs(10)).await);
    let e = env.get(&format!("/fhir/Encounter/noa-{verified}")).await;
    assert_eq!(noa_status(&e.body), "Analyzing");
    for _ in 0..30 {
        advance(&env, 1).await;
        if env.noa().dataset().session(&verified).unwrap().status == SessionStatus::Summarized {
            break;
        }
    }
    let e = env.get(&format!("/fhir/Encounter/noa-{verified}")).await;
    assert_eq!(noa_status(&e.body), "Summarized");
    let after = env.get(&doc).await;
    assert_eq!(
        after.body["docStatus"], "preliminary",
        "a regenerated summary needs verifying again"
    );
    assert_eq!(after.body["meta"]["versionId"], "2");
    let data = |d: &Value| d["content"][0]["attachment"]["data"].clone();
    assert_ne!(data(&after.body), data(&before.body));

    // Recover brings back the original text.
    let r = env.request(Method::POST, &format!("{doc}/$recover"), &[]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    for _ in 0..30 {
        advance(&env, 1).await;
        if env.noa().dataset().session(&verified).unwrap().status == SessionStatus::Summarized {
            break;
        }
    }
    let recovered = env.get(&doc).await;
    assert_eq!(data(&recovered.body), data(&before.body), "the original text is back");
    assert_eq!(recovered.body["meta"]["versionId"], "3");
}

#[tokio::test]
async fn a_verified_summary_is_fetched_from_noa_once() {
    let env = Env::start_with_noa(NoaSimConfig::small, |_| {}).await;
    let (appointment, ..) = scribe_appointment(&env);
    let r = start_scribe(&env, &appointment, &json!({"resourceType": "Parameters"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let session = param(&r.body, "sessionId").unwrap()["valueString"]
        .as_str()
        .unwrap()
        .to_owned();
    env.noa().start_recording(&session).unwrap();
    for _ in 0..120 {
        advance(&env, 1).await;
        if env.noa().dataset().session(&session).unwrap().status == SessionStatus::Summarized {
            break;
        }
    }
    env.noa().approve(&session, false).unwrap();
    assert!(env.noa().wait_for_webhooks(Duration::from_secs(10)).await);
    // The webhook made the gateway fetch the verified summary; give it a moment to land.
    let summary_path = format!("/api/v1/consumers/sessions/{session}/summary");
    let mut fetched = 0;
    for _ in 0..50 {
        fetched = env.noa().hits_for(&summary_path);
        if fetched >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fetched, 1, "fetched once on Verified");
    for _ in 0..3 {
        let d = env.get(&format!("/fhir/DocumentReference/noa-{session}")).await;
        assert_eq!(d.body["docStatus"], "final");
    }
    assert_eq!(env.noa().hits_for(&summary_path), 1, "reads use the verified summary");
}

#[tokio::test]
async fn an_empty_verified_summary_is_a_final_note_that_says_so() {
    let env = Env::start_with_noa(NoaSimConfig::small, |_| {}).await;
    let empty = env
        .noa()
        .dataset()
        .sessions_in(SessionStatus::EmptySummaryVerified)
        .next()
        .expect("the small dataset has an empty verified session")
        .session_id
        .clone();
    let d = env.get(&format!("/fhir/DocumentReference/noa-{empty}")).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert_eq!(d.body["docStatus"], "final");
    let e = env.get(&format!("/fhir/Encounter/noa-{empty}")).await;
    assert_eq!(e.body["status"], "finished");
    assert_eq!(noa_status(&e.body), "EmptySummaryVerified");
}

fn failing(seed: u64, anchor: chrono::NaiveDate, ehr: vendor_sim::noa::EhrRefs) -> NoaSimConfig {
    let mut c = NoaSimConfig::small(seed, anchor, ehr);
    c.failed_rate = 1.0;
    c
}

#[tokio::test]
async fn a_failed_session_is_a_cancelled_encounter_without_a_note() {
    let env = Env::start_with_noa(failing, |_| {}).await;
    let (appointment, ..) = scribe_appointment(&env);
    let r = start_scribe(&env, &appointment, &json!({"resourceType": "Parameters"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let session = param(&r.body, "sessionId").unwrap()["valueString"]
        .as_str()
        .unwrap()
        .to_owned();
    env.noa().start_recording(&session).unwrap();
    for _ in 0..120 {
        advance(&env, 1).await;
        if env.noa().dataset().session(&session).unwrap().status == SessionStatus::Failed {
            break;
        }
    }
    assert_eq!(
        env.noa().dataset().session(&session).unwrap().status,
        SessionStatus::Failed
    );
    let e = env.get(&format!("/fhir/Encounter/noa-{session}")).await;
    assert_eq!(e.body["status"], "cancelled");
    assert_eq!(noa_status(&e.body), "Failed");
    let d = env.get(&format!("/fhir/DocumentReference/noa-{session}")).await;
    assert_eq!(d.status, StatusCode::NOT_FOUND);
    // A failed session is not resumed: starting again makes a new one.
    let again = start_scribe(&env, &appointment, &json!({"resourceType": "Parameters"})).await;
    assert_ne!(
        param(&again.body, "sessionId").unwrap()["valueString"],
        session.as_str()
    );
}

#[tokio::test]
async fn noa_sign_in_is_renewed_when_its_token_expires() {
    let env = Env::start_with_noa(NoaSimConfig::small, |_| {}).await;
    let id = env.noa().dataset().sessions[0].session_id.clone();
    let r = env.get(&format!("/fhir/Encounter/noa-{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let grants = env.noa().token_grants();
    assert!(grants >= 1);
    env.noa().expire_access_tokens();
    let r = env.get(&format!("/fhir/Encounter/noa-{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(env.noa().token_grants(), grants + 1, "signed in once more");
}

#[tokio::test]
async fn noa_webhooks_with_a_wrong_secret_are_not_there() {
    let env = Env::start_with_noa(NoaSimConfig::small, |_| {}).await;
    let noa = env.noa().dataset();
    let session = noa
        .sessions
        .iter()
        .find(|s| s.status != SessionStatus::Failed)
        .expect("a session that did not fail");
    let before = noa_status(
        &env.get(&format!("/fhir/Encounter/noa-{}", session.session_id))
            .await
            .body,
    );
    let event = json!({"eventId": "00000000-0000-4000-8000-000000000000", "sessionId": session.session_id,
        "episodeId": session.episode_id, "doctorId": session.doctor_id, "facilityId": session.facility_id,
        "status": "Failed", "previousStatus": "Analyzing", "occurredAt": "2026-06-15T10:00:00Z"});
    for path in ["/webhooks/noa/not-the-secret", "/webhooks/noa"] {
        let r = env.send_json(Method::POST, path, "application/json", &event).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.body["resourceType"], "OperationOutcome");
    }
    let text = env.metrics().await;
    assert!(
        !text.contains("fhir_gateway_webhooks_total{source=\"noa\",outcome=\"accepted\"}"),
        "nothing was accepted:\n{text}"
    );
    assert!(text.contains("fhir_gateway_webhooks_total{source=\"noa\",outcome=\"unknown_endpoint\"} 2"));
    // The session is untouched.
    let after = noa_status(
        &env.get(&format!("/fhir/Encounter/noa-{}", session.session_id))
            .await
            .body,
    );
    assert_eq!(before, after);
}
