//! How few vendor calls the gateway makes. DrChrono allows 500 calls an hour per account, so a
//! search by patient must not pay for the records of every other patient: Zoom cannot filter notes
//! or visits by an EHR patient and Noa cannot filter sessions by patient at all, and each record
//! they return names EHR records the gateway confirms at DrChrono. Only the records of the patient
//! asked for are confirmed, and many at once with one list rather than a read each.
//!
//! Each test finds the truth in one practice (every resource of the type, filtered here) and asks
//! the same question of a fresh practice with the same seed and the cache on (as `serve` and the
//! demo run), counting the requests DrChrono's simulator receives.

use std::collections::{BTreeMap, BTreeSet};

use e2e::{Env, id_set};
use serde_json::Value;
use vendor_sim::noa::NoaSimConfig;

/// The patient (`drchrono-…`) most resources of `all` name in `field` (a reference or a list of
/// participants), with the ids of those resources.
fn busiest_patient(all: &[Value], patients_of: fn(&Value) -> Vec<String>) -> (String, BTreeSet<String>) {
    let mut by_patient: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in all {
        for p in patients_of(r) {
            if let Some(id) = p.strip_prefix("Patient/drchrono-") {
                by_patient
                    .entry(format!("drchrono-{id}"))
                    .or_default()
                    .insert(r["id"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    by_patient
        .into_iter()
        .max_by_key(|(_, ids)| ids.len())
        .expect("a patient with resources")
}

fn subject(r: &Value) -> Vec<String> {
    r["subject"]["reference"]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .collect()
}

fn participants(r: &Value) -> Vec<String> {
    r["participant"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["actor"]["reference"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// DrChrono requests by kind, for a failure's message.
fn drchrono_requests(env: &Env) -> String {
    [
        "/api/patients",
        "/api/appointments",
        "/api/doctors",
        "/api/clinical_notes",
        "/api/offices",
    ]
    .iter()
    .map(|p| {
        let all = env.sim.hits_for(p);
        let one = env.sim.hits_for(&format!("{p}/"));
        format!("{p}: {} lists, {one} reads", all - one)
    })
    .collect::<Vec<_>>()
    .join("; ")
}

fn sources(ids: &BTreeSet<String>) -> BTreeSet<String> {
    ids.iter()
        .filter_map(|id| id.split('-').next().map(str::to_owned))
        .collect()
}

/// Finds the busiest patient's resources of `resource_type` in one practice (every resource of
/// the type, by `patients_of`), then searches them by patient in a fresh practice with the cache
/// on, counting DrChrono's requests from there: that practice, the truth, what it found.
async fn one_patients(
    resource_type: &str,
    patients_of: fn(&Value) -> Vec<String>,
) -> (Env, BTreeSet<String>, BTreeSet<String>) {
    let truth = Env::start_with_noa(NoaSimConfig::small, |_| {}).await;
    let all = truth.all(&format!("/fhir/{resource_type}?_count=200")).await;
    let (patient, expected) = busiest_patient(&all, patients_of);
    assert!(
        sources(&expected).len() >= 2,
        "the patient's {resource_type}s come from several vendors: {expected:?}"
    );

    let env = Env::start_with_noa(NoaSimConfig::small, |o| o.cache = Some(Default::default())).await;
    env.sim.reset_hits();
    let found = env
        .all(&format!("/fhir/{resource_type}?patient={patient}&_count=200"))
        .await;
    let found = id_set(&found).into_iter().collect();
    (env, expected, found)
}

#[tokio::test]
async fn one_patients_note_search_asks_drchrono_a_handful_of_times() {
    let (env, notes, found) = one_patients("DocumentReference", subject).await;
    assert_eq!(found, notes);
    // Besides the lists, DrChrono's adapter reads each of its own notes' appointment (verbose: the
    // note's lock state).
    let drchrono_notes = notes.iter().filter(|id| id.starts_with("drchrono-")).count() as u64;
    let calls = env.sim.hits_for("/api/");
    assert!(
        calls <= 5 + drchrono_notes,
        "{calls} DrChrono requests for one patient's {} notes: {}",
        notes.len(),
        drchrono_requests(&env)
    );
}

#[tokio::test]
async fn one_patients_appointments_ask_drchrono_a_handful_of_times() {
    let (env, appointments, found) = one_patients("Appointment", participants).await;
    assert_eq!(found, appointments);
    let calls = env.sim.hits_for("/api/");
    assert!(
        calls <= 5,
        "{calls} DrChrono requests for one patient's {} appointments: {}",
        appointments.len(),
        drchrono_requests(&env)
    );
}

#[tokio::test]
async fn a_search_over_many_patients_confirms_their_records_with_lists() {
    let env = Env::start_with_noa(NoaSimConfig::small, |o| o.cache = Some(Default::default())).await;
    env.sim.reset_hits();
    // Every Zoom visit names a DrChrono patient (and many an appointment): the patients are
    // confirmed with a list; appointments, which a practice piles up without end, are never listed
    // whole: each is read once (then cached).
    let visits = env.all("/fhir/Appointment?_count=200").await;
    let zoom = visits
        .iter()
        .filter(|a| a["id"].as_str().is_some_and(|id| id.starts_with("zoom-")))
        .count();
    assert!(zoom >= 10, "{zoom} Zoom visits");
    let patient_reads = env.sim.hits_for("/api/patients/");
    assert!(
        patient_reads <= 4,
        "{patient_reads} single-patient DrChrono reads to confirm {zoom} visits' patients"
    );
    let appointment_reads = env.sim.hits_for("/api/appointments/");
    assert!(
        appointment_reads <= zoom as u64,
        "{appointment_reads} DrChrono appointment reads for {zoom} visits"
    );
    // The same search again: everything confirmed is remembered, nothing is read twice.
    env.sim.reset_hits();
    env.all("/fhir/Appointment?_count=200").await;
    assert_eq!(
        env.sim.hits_for("/api/patients/") + env.sim.hits_for("/api/appointments/"),
        0
    );
}
