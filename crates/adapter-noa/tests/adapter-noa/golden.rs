//! Golden tests of the Noa mappings.
//!
//! Every `testdata/golden/<name>.noa.json` is mapped and the result compared with
//! `<name>.fhir.json`; for a summary the decoded attachment is also compared with `<name>.md`. Run
//! with `UPDATE_GOLDEN=1` to (re)write the expected files, then review the diff.
//!
//! An input is `{"session": {...}, "summary": {...}, "resolved": [gateway ids], "episodePatients":
//! {episodeId: patient}}`; the name's prefix picks the mapping:
//!
//! - `encounter-`: the session → Encounter;
//! - `summary-`: the session and its summary → DocumentReference.
//!
//! `resolved` lists the EHR references the adapter would have found to exist; `episodePatients`
//! the patients it would have read from the episodes' Appointments.
//!
//! Besides the comparison, every output must re-parse with fhirbolt (strict mode) to the same
//! JSON, its dates and instants must match FHIR's regular expressions, its ids and references must
//! be valid, a reference into another source must be one that resolved (never a broken link)
//! ([`RULES`]), an Encounter's status must be the table's for its Noa status (kept in its
//! extension), and a summary's content must decode to the sections in order, byte for byte. The
//! harness is [`adapter::golden`].

use std::collections::{HashMap, HashSet};
use std::path::Path;

use adapter::MapCtx;
use adapter::fhir::Resource;
use adapter::golden::{Golden, Mapped, Rules};
use adapter_noa::map::codes::{EXT_SESSION_STATUS, SessionStatus};
use adapter_noa::map::{self, NoaCtx};
use adapter_noa::wire;
use chrono::TimeZone;
use serde::Deserialize;
use serde_json::json;

/// What every Noa resource is checked for besides the comparison: references into the EHR must be
/// among the case's `resolved`.
const RULES: Rules = Rules {
    source: "noa",
    instants: &["lastUpdated", "start", "end", "date", "creation"],
    codes: &["code", "valueCode", "language", "status", "docStatus", "contentType"],
    unchecked: &["div"],
    meta_source: true,
    foreign_references_resolve: true,
};

/// One golden input, read straight from its text (so a template keeps its order).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    session: wire::Session,
    #[serde(default)]
    summary: Option<wire::Summary>,
    #[serde(default)]
    resolved: Vec<String>,
    #[serde(default)]
    episode_patients: HashMap<String, String>,
}

/// The context every golden case maps with: a Warsaw practice whose EHR is DrChrono.
fn ctx(case: &Case) -> NoaCtx {
    let mut ctx = NoaCtx::new(MapCtx::new(
        chrono::Utc.with_ymd_and_hms(2025, 3, 20, 12, 0, 0).unwrap(),
        chrono_tz::Europe::Warsaw,
    ));
    ctx.resolved = case.resolved.iter().cloned().collect();
    ctx.episode_patients = case.episode_patients.clone();
    ctx
}

fn err(e: map::MapError) -> String {
    e.to_string()
}

/// The webhook URL's secret appears in no resource.
fn secret_leaks(resource: &Resource) -> Vec<String> {
    if fhirbolt::json::to_string(resource, None)
        .unwrap()
        .contains("SECRET-NOT-SHOWN")
    {
        vec!["the webhook URL leaked into a resource".into()]
    } else {
        Vec::new()
    }
}

/// [`RULES`] and [`secret_leaks`].
fn check_resource(resource: &Resource, resolved: &HashSet<String>) -> Vec<String> {
    let mut problems = RULES.check(resource, resolved);
    problems.extend(secret_leaks(resource));
    problems
}

/// The resource of one case, with the references the case resolved and the leaks found.
fn mapped_case(resource: Resource, case: &Case) -> Mapped {
    let problems = secret_leaks(&resource);
    Mapped {
        resolved: case.resolved.iter().cloned().collect(),
        problems,
        ..Mapped::new(vec![resource])
    }
}

#[test]
fn golden_files() {
    let mut statuses_seen = HashSet::new();
    let mut failures = Golden::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden"), RULES)
        .at_least(20)
        .map("encounter-", |input| {
            // The session → Encounter, whose status must be the table's.
            let case: Case = input.json()?;
            let encounter = map::session_encounter(&case.session, &ctx(&case)).map_err(err)?;
            let mut mapped = mapped_case(Resource::Encounter(Box::new(encounter)), &case);
            statuses_seen.insert(case.session.status.clone());
            mapped
                .problems
                .extend(check_encounter(&case.session, &mapped.resources[0]));
            Ok(mapped)
        })
        .map("summary-", |input| {
            // The session and its summary → DocumentReference, whose markdown is compared too.
            let case: Case = input.json()?;
            let summary = case.summary.as_ref().ok_or("a summary case without summary")?;
            let document = map::summary_document(&case.session, summary, &ctx(&case)).map_err(err)?;
            let mut mapped = mapped_case(Resource::DocumentReference(Box::new(document)), &case);
            match check_summary(&case, &mapped.resources[0]) {
                Ok(markdown) => mapped.files.push(("md".into(), markdown)),
                Err(e) => mapped.problems.push(e),
            }
            Ok(mapped)
        })
        .run();

    // Every Noa status has a golden Encounter.
    for status in SessionStatus::ALL {
        if !statuses_seen.contains(status.wire()) {
            failures.push(format!("no encounter- case for status {}", status.wire()));
        }
    }
    failures.assert_none();
}

/// The whole status table, each row through the mappings: a session in the status → its
/// Encounter's status, and (for the statuses that may have one) its approved summary's docStatus.
#[test]
fn every_session_status_maps_as_the_table_says() {
    let table = [
        ("New", "planned", None),
        ("Recording", "in-progress", None),
        ("Recorded", "finished", None),
        ("Transcribing", "finished", None),
        ("Transcribed", "finished", None),
        ("Analyzing", "finished", Some("preliminary")),
        ("Summarized", "finished", Some("preliminary")),
        ("Verified", "finished", Some("final")),
        ("EmptySummaryVerified", "finished", Some("final")),
        ("Interrupted", "cancelled", None),
        ("Failed", "cancelled", None),
        ("Expired", "cancelled", None),
    ];
    assert_eq!(table.len(), SessionStatus::ALL.len());
    let case = |status: &str| Case {
        session: serde_json::from_value(json!({
            "sessionId": "0f8fad5b-d9cb-469f-a165-70867728950e", "episodeId": "9001", "doctorId": "3",
            "status": status, "createdAt": "2025-03-14T09:00:00Z"
        }))
        .unwrap(),
        summary: Some(
            serde_json::from_value(json!({
                "status": status, "doctorApproved": true, "sections": [{"title": "Plan", "content": "Rest."}]
            }))
            .unwrap(),
        ),
        resolved: Vec::new(),
        episode_patients: HashMap::new(),
    };
    for (status, encounter, doc_status) in table {
        let c = case(status);
        let e = map::session_encounter(&c.session, &ctx(&c)).unwrap();
        assert_eq!(e.status.value.as_deref(), Some(encounter), "{status}");
        if let Some(doc_status) = doc_status {
            assert!(SessionStatus::from_wire(status).unwrap().may_have_summary(), "{status}");
            let d = map::summary_document(&c.session, c.summary.as_ref().unwrap(), &ctx(&c)).unwrap();
            assert_eq!(d.doc_status.unwrap().value.as_deref(), Some(doc_status), "{status}");
        } else {
            assert!(
                !SessionStatus::from_wire(status).unwrap().may_have_summary(),
                "{status}"
            );
        }
    }
    // A verified summary the doctor did not approve (Noa says so) stays preliminary.
    let mut c = case("Verified");
    c.summary.as_mut().unwrap().doctor_approved = false;
    let d = map::summary_document(&c.session, c.summary.as_ref().unwrap(), &ctx(&c)).unwrap();
    assert_eq!(d.doc_status.unwrap().value.as_deref(), Some("preliminary"));
    assert!(d.authenticator.is_none());
}

// ---- checks of Noa's own ----

/// The Encounter's status is the table's for the session's status, which its extension keeps.
fn check_encounter(session: &wire::Session, resource: &Resource) -> Vec<String> {
    let Resource::Encounter(e) = resource else {
        return vec!["not an Encounter".into()];
    };
    let mut problems = Vec::new();
    let status = SessionStatus::from_wire(&session.status).unwrap();
    if e.status.value.as_deref() != Some(status.encounter().code()) {
        problems.push("the status is not the table's".into());
    }
    let kept = e
        .extension
        .iter()
        .find(|x| x.url == EXT_SESSION_STATUS)
        .and_then(|x| match &x.value {
            Some(adapter::fhir::types::ExtensionValue::Code(c)) => c.value.clone(),
            _ => None,
        });
    if kept.as_deref() != Some(status.wire()) {
        problems.push("the Noa status is not kept in its extension".into());
    }
    problems
}

/// The summary's attachment decodes to the sections in order; the profile is claimed only with a
/// subject; the Encounter is the session's. Returns the markdown.
fn check_summary(case: &Case, resource: &Resource) -> Result<String, String> {
    let Resource::DocumentReference(doc) = resource else {
        return Err("not a DocumentReference".into());
    };
    let summary = case.summary.as_ref().unwrap();
    let attachment = &doc.content[0].attachment;
    let decoded = match attachment.data.as_ref().and_then(|d| d.value.as_ref()) {
        Some(data) => data_encoding::BASE64
            .decode(data.as_bytes())
            .map_err(|e| format!("data is not base64: {e}"))?,
        None => Vec::new(),
    };
    let markdown = String::from_utf8(decoded).map_err(|_| "the markdown is not UTF-8".to_owned())?;
    if markdown != map::summary_markdown(summary) {
        return Err("the attachment is not the summary's markdown".into());
    }
    // Never lossy: every section's content is in the document, in order.
    let mut at = 0;
    for section in &summary.sections {
        match markdown[at..].find(&format!("## {}", section.title)) {
            Some(i) => at += i,
            None => return Err(format!("section {:?} is missing or out of order", section.title)),
        }
        if !markdown[at..].contains(&section.content) {
            return Err(format!("the content of {:?} is not kept byte for byte", section.title));
        }
    }
    if attachment.content_type.as_ref().and_then(|c| c.value.as_deref()) != Some("text/markdown") {
        return Err("the attachment is not text/markdown".into());
    }
    let profiled = doc.meta.as_ref().is_some_and(|m| !m.profile.is_empty());
    if profiled != doc.subject.is_some() {
        return Err("the US Core profile is claimed without a subject (or not claimed with one)".into());
    }
    let encounter = doc
        .context
        .as_ref()
        .and_then(|c| c.encounter.first())
        .and_then(|r| r.reference.as_ref())
        .and_then(|r| r.value.clone());
    if encounter != Some(format!("Encounter/noa-{}", case.session.session_id)) {
        return Err("context.encounter is not the session's Encounter".into());
    }
    if let Some(template) = &case.session.template {
        let titles: Vec<&str> = template.sections.iter().map(|s| s.title.as_str()).collect();
        let sections: Vec<&str> = summary.sections.iter().map(|s| s.title.as_str()).collect();
        if titles != sections {
            return Err("the template was not read in its order".into());
        }
    }
    Ok(markdown)
}

/// Every session and summary of the Noa simulator's consumer maps, and passes the checks above.
/// The simulator is written from the same `docs/noa-api.md`, so this checks that the two readings
/// of it agree (field names, time formats, id shapes, the template's order).
#[test]
fn the_simulators_consumer_maps() {
    use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig};
    use vendor_sim::noa::{EhrRefs, NoaSim, NoaSimConfig};

    let anchor = chrono::NaiveDate::from_ymd_opt(2025, 3, 14).unwrap();
    let ehr = EhrRefs::from_drchrono(&DrChronoSim::new(DrChronoSimConfig::demo(7, anchor)).dataset());
    let noa = NoaSim::new(NoaSimConfig::demo(7, anchor, ehr.clone())).dataset();
    assert!(
        noa.sessions.len() >= 100 && !noa.summaries.is_empty(),
        "{} sessions",
        noa.sessions.len()
    );

    let mut problems = Vec::new();
    let mut templated = 0;
    for session in &noa.sessions {
        let text = serde_json::to_string(session).unwrap();
        let ours: wire::Session = serde_json::from_str(&text).unwrap();
        if let Some(template) = &session.template {
            templated += 1;
            let theirs: Vec<&str> = template.value.iter().map(|(t, _)| t.as_str()).collect();
            let read: Vec<&str> = ours
                .template
                .as_ref()
                .unwrap()
                .sections
                .iter()
                .map(|s| s.title.as_str())
                .collect();
            if theirs != read {
                problems.push(format!("session {}: the template's order was lost", ours.session_id));
            }
        }
        // Every EHR record exists, and each episode's patient is known, as the adapter would find.
        let patient = ehr
            .appointments
            .iter()
            .find(|a| a.id == ours.episode_id)
            .map(|a| a.patient);
        let case = Case {
            session: ours.clone(),
            summary: None,
            resolved: Vec::new(),
            episode_patients: patient
                .map(|p| HashMap::from([(ours.episode_id.clone(), p.to_string())]))
                .unwrap_or_default(),
        };
        let mut ctx = ctx(&case);
        ctx.resolved = map::session_references(&ours, &ctx).into_iter().collect();
        let resolved = ctx.resolved.clone();
        match map::session_encounter(&ours, &ctx) {
            Ok(e) => {
                if e.subject.is_none() {
                    problems.push(format!("session {}: no subject", ours.session_id));
                }
                let e = Resource::Encounter(Box::new(e));
                problems.extend(
                    check_resource(&e, &resolved)
                        .into_iter()
                        .map(|p| format!("encounter: {p}")),
                );
                problems.extend(check_encounter(&ours, &e));
            }
            Err(e) => problems.push(format!("session {}: {e}", ours.session_id)),
        }
        if let Some(summary) = noa.summary(&ours.session_id) {
            let summary: wire::Summary = serde_json::from_str(&serde_json::to_string(summary).unwrap()).unwrap();
            let case = Case {
                summary: Some(summary.clone()),
                ..case
            };
            match map::summary_document(&ours, &summary, &ctx) {
                Ok(d) => {
                    let d = Resource::DocumentReference(Box::new(d));
                    problems.extend(
                        check_resource(&d, &resolved)
                            .into_iter()
                            .map(|p| format!("summary: {p}")),
                    );
                    if let Err(e) = check_summary(&case, &d) {
                        problems.push(format!("summary {}: {e}", ours.session_id));
                    }
                }
                Err(e) => problems.push(format!("summary {}: {e}", ours.session_id)),
            }
        }
    }
    assert!(templated > 0, "no session of the simulator has a custom template");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
