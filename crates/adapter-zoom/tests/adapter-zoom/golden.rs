//! Golden tests of the Zoom mappings.
//!
//! Every `testdata/golden/<name>.zoom.json` is mapped and the result compared with
//! `<name>.fhir.json`; for a clinical note the decoded attachment is also compared with
//! `<name>.md`. Run with `UPDATE_GOLDEN=1` to (re)write the expected files, then review the diff.
//!
//! The name's prefix picks the mapping and the input's shape:
//!
//! - `note-`: `{"note": {...}, "owner": {provider} | null, "resolved": [gateway ids]}` →
//!   DocumentReference;
//! - `visit-`: `{"visit": {...}, "waiting": {entry} | null, "resolved": [...]}` → the
//!   Appointment and, for a visit that started, its Encounter;
//! - `patient-`: `{"patient": {...}, "resolved": [...]}` → Patient;
//! - `provider-`: a provider → Practitioner;
//! - `availability-`: `{"provider": {...}, "availability": {...}}` → Schedule and Slots.
//!
//! `resolved` lists the EHR references the adapter would have found to exist. One resource is
//! written as itself; several as a `collection` Bundle.
//!
//! Besides the comparison, every output must re-parse with fhirbolt (strict mode) to the same
//! JSON, its dates and instants must match FHIR's regular expressions, its ids and references
//! must be valid, a reference into another source must be one that resolved (never a broken
//! link) ([`RULES`]), a note's content must decode to Zoom's markdown byte for byte, and a visit's
//! provider join URL must appear only in the provider-only extension. The harness is
//! [`adapter::golden`].

use std::collections::HashSet;
use std::path::Path;

use adapter::fhir::Resource;
use adapter::golden::{Golden, Mapped, Rules, decode};
use adapter::{MapCtx, systems};
use adapter_zoom::map::{self, ZoomCtx};
use adapter_zoom::wire;
use chrono::TimeZone;
use serde_json::Value;

/// What every Zoom resource is checked for besides the comparison: references into the EHR must be
/// among the case's `resolved`.
const RULES: Rules = Rules {
    source: "zoom",
    instants: &["lastUpdated", "start", "end", "created", "date", "creation"],
    codes: &["code"],
    unchecked: &[],
    meta_source: true,
    foreign_references_resolve: true,
};

/// The context every golden case maps with: a New York practice whose EHR is DrChrono.
fn ctx(resolved: &Value) -> ZoomCtx {
    let mut ctx = ZoomCtx::new(MapCtx::new(
        chrono::Utc.with_ymd_and_hms(2025, 6, 10, 12, 0, 0).unwrap(),
        chrono_tz::America::New_York,
    ));
    ctx.resolved = resolved
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    ctx
}

fn err(e: map::MapError) -> String {
    e.to_string()
}

/// The resources of one case, with the references its context resolved.
fn mapped_in(resources: Vec<Resource>, ctx: &ZoomCtx) -> Mapped {
    Mapped {
        resolved: ctx.resolved.clone(),
        ..Mapped::new(resources)
    }
}

#[test]
fn golden_files() {
    Golden::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden"), RULES)
        .at_least(25)
        .map("note-", |input| {
            let input: Value = input.json()?;
            let ctx = ctx(&input["resolved"]);
            let note: wire::ClinicalNote = decode(&input["note"])?;
            let owner: Option<wire::Provider> = decode(&input["owner"])?;
            let doc = map::clinical_note_with_owner(&note, owner.as_ref(), &ctx).map_err(err)?;
            let mut mapped = mapped_in(vec![Resource::DocumentReference(Box::new(doc))], &ctx);
            match check_note(&input["note"], &mapped.resources[0]) {
                Ok(markdown) => mapped.files.push(("md".into(), markdown)),
                Err(e) => mapped.problems.push(e),
            }
            Ok(mapped)
        })
        .map("visit-", |input| {
            // The Appointment and, for a visit that started, its Encounter.
            let input: Value = input.json()?;
            let ctx = ctx(&input["resolved"]);
            let visit: wire::Visit = decode(&input["visit"])?;
            let waiting: Option<wire::WaitingRoomEntry> = decode(&input["waiting"])?;
            let mut out = vec![Resource::Appointment(Box::new(
                map::visit_appointment(&visit, &ctx).map_err(err)?,
            ))];
            if let Some(e) = map::visit_encounter(&visit, waiting.as_ref(), &ctx).map_err(err)? {
                out.push(Resource::Encounter(Box::new(e)));
            }
            let mut mapped = mapped_in(out, &ctx);
            mapped.problems = check_visit(&input["visit"], &mapped.resources);
            Ok(mapped)
        })
        .map("patient-", |input| {
            let input: Value = input.json()?;
            let ctx = ctx(&input["resolved"]);
            let patient = map::patient(&decode(&input["patient"])?, &ctx).map_err(err)?;
            Ok(mapped_in(vec![Resource::Patient(Box::new(patient))], &ctx))
        })
        .map("provider-", |input| {
            let input: Value = input.json()?;
            let ctx = ctx(&input["resolved"]);
            let provider = map::provider(&decode(&input)?, &ctx).map_err(err)?;
            Ok(mapped_in(vec![Resource::Practitioner(Box::new(provider))], &ctx))
        })
        .map("availability-", |input| {
            // The Schedule and its Slots.
            let input: Value = input.json()?;
            let ctx = ctx(&input["resolved"]);
            let provider: wire::Provider = decode(&input["provider"])?;
            let availability: wire::Availability = decode(&input["availability"])?;
            let mut out = vec![Resource::Schedule(Box::new(
                map::schedule(&provider, &availability, &ctx).map_err(err)?,
            ))];
            for slot in map::slots(&provider, &availability, &ctx).map_err(err)? {
                out.push(Resource::Slot(Box::new(slot)));
            }
            Ok(mapped_in(out, &ctx))
        })
        .run()
        .assert_none();
}

/// The note's attachment decodes to Zoom's markdown byte for byte; the profile is claimed only
/// with a subject. Returns the markdown.
fn check_note(note: &Value, resource: &Resource) -> Result<String, String> {
    let Resource::DocumentReference(doc) = resource else {
        return Err("not a DocumentReference".into());
    };
    let expected = note["note_content"].as_str().unwrap_or("");
    let attachment = &doc.content[0].attachment;
    let decoded = match attachment.data.as_ref().and_then(|d| d.value.as_ref()) {
        Some(data) => data_encoding::BASE64
            .decode(data.as_bytes())
            .map_err(|e| format!("data is not base64: {e}"))?,
        None => Vec::new(),
    };
    if decoded != expected.as_bytes() {
        return Err("the attachment is not Zoom's markdown byte for byte".into());
    }
    if attachment.content_type.as_ref().and_then(|c| c.value.as_deref()) != Some("text/markdown") {
        return Err("the attachment is not text/markdown".into());
    }
    let profiled = doc.meta.as_ref().is_some_and(|m| !m.profile.is_empty());
    if profiled != doc.subject.is_some() {
        return Err("the US Core profile is claimed without a subject (or not claimed with one)".into());
    }
    String::from_utf8(decoded).map_err(|_| "the markdown is not UTF-8".into())
}

/// The visit's virtualService carries the patient's join URL and its `_datatype`; the provider's
/// join URL appears in nothing but the provider-only extension; an Encounter points at the
/// Appointment.
fn check_visit(visit: &Value, resources: &[Resource]) -> Vec<String> {
    let mut problems = Vec::new();
    let Resource::Appointment(appointment) = &resources[0] else {
        return vec!["the first resource is not an Appointment".into()];
    };
    let json = fhirbolt::json::to_json_value(appointment.as_ref().clone(), None).unwrap();
    let extensions = json["extension"].as_array().cloned().unwrap_or_default();
    let services: Vec<&Value> = extensions
        .iter()
        .filter(|e| e["url"] == systems::EXT_R5_VIRTUAL_SERVICE)
        .collect();
    if services.len() != 1 {
        problems.push("not exactly one virtualService extension".into());
    } else {
        let parts = services[0]["extension"].as_array().cloned().unwrap_or_default();
        let part = |url: &str| parts.iter().find(|p| p["url"] == url).cloned().unwrap_or(Value::Null);
        if part("http://hl7.org/fhir/StructureDefinition/_datatype")["valueString"] != "VirtualServiceDetail" {
            problems.push("virtualService has no _datatype VirtualServiceDetail".into());
        }
        if part("channelType")["valueCoding"]["code"] != "zoom" {
            problems.push("virtualService channelType is not zoom".into());
        }
        let patient_url = visit["join_url_patient"].as_str().unwrap_or("");
        if !patient_url.is_empty() && part("address")["valueUrl"] != patient_url {
            problems.push("virtualService address is not the patient's join URL".into());
        }
    }
    let provider_url = visit["join_url_provider"].as_str().unwrap_or("");
    if !provider_url.is_empty() {
        let mut without = json.clone();
        if let Some(list) = without["extension"].as_array_mut() {
            let before = list.len();
            list.retain(|e| e["url"] != systems::EXT_PROVIDER_JOIN_URL);
            if before - list.len() != 1 {
                problems.push("not exactly one provider join URL extension".into());
            }
        }
        let mut everything = without.to_string();
        for r in &resources[1..] {
            everything.push_str(&fhirbolt::json::to_string(r, None).unwrap());
        }
        if everything.contains(provider_url) {
            problems.push("the provider's join URL appears outside its extension".into());
        }
    }
    if let Some(Resource::Encounter(e)) = resources.get(1) {
        let target = format!(
            "Appointment/{}",
            appointment.id.as_ref().unwrap().value.as_ref().unwrap()
        );
        if e.appointment
            .first()
            .and_then(|r| r.reference.as_ref())
            .and_then(|r| r.value.as_deref())
            != Some(target.as_str())
        {
            problems.push("the Encounter does not point at the visit's Appointment".into());
        }
    }
    problems
}

/// Every object of the Zoom simulator's generated account maps, and passes the checks above.
/// The simulator is written from the same vendor docs, so this checks that the two readings of
/// them agree (field names, time formats, id shapes, `ehr_context` forms).
#[test]
fn the_simulators_account_maps() {
    use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig};
    use vendor_sim::zoom::{EhrRefs, ZoomSim, ZoomSimConfig};

    let anchor = chrono::NaiveDate::from_ymd_opt(2025, 3, 14).unwrap();
    let ehr = DrChronoSim::new(DrChronoSimConfig::small(7, anchor)).dataset();
    let zoom = ZoomSim::new(ZoomSimConfig::small(7, anchor, EhrRefs::from_drchrono(&ehr))).dataset();
    let to = |v: &dyn erased::Json| -> Value { v.json() };

    // Every EHR record exists, as the adapter's resolver would find.
    let mut resolved = Vec::new();
    for note in &zoom.clinical_notes {
        let ours: wire::ClinicalNote = decode(&to(note)).unwrap();
        resolved.extend(map::ehr_references(&ours, "drchrono"));
    }
    for visit in &zoom.visits {
        let ours: wire::Visit = decode(&to(visit)).unwrap();
        resolved.extend(map::visit_ehr_references(&ours, "drchrono"));
    }
    for patient in &zoom.patients {
        let ours: wire::Patient = decode(&to(patient)).unwrap();
        resolved.extend(map::patient_ehr_references(&ours, "drchrono"));
    }
    let resolved_json = Value::from(resolved.clone());
    let ctx = ctx(&resolved_json);
    let resolved: HashSet<String> = ctx.resolved.clone();

    let mut problems = Vec::new();
    let check = |what: &str, r: Result<Resource, map::MapError>| -> Vec<String> {
        match r {
            Ok(resource) => RULES
                .check(&resource, &resolved)
                .into_iter()
                .map(|p| format!("{what}: {p}"))
                .collect(),
            Err(e) => vec![format!("{what}: {e}")],
        }
    };
    assert!(!zoom.clinical_notes.is_empty() && !zoom.visits.is_empty());
    for note in &zoom.clinical_notes {
        let ours: wire::ClinicalNote = decode(&to(note)).unwrap();
        let owner = zoom
            .providers
            .iter()
            .find(|p| p.user_id == ours.note_owner_user_id)
            .map(|p| decode::<wire::Provider>(&to(p)).unwrap());
        let doc = map::clinical_note_with_owner(&ours, owner.as_ref(), &ctx);
        if let Ok(d) = &doc
            && check_note(&to(note), &Resource::DocumentReference(Box::new(d.clone()))).is_err()
        {
            problems.push(format!("note {}: content is not byte for byte", ours.note_id));
        }
        problems.extend(check("note", doc.map(|d| Resource::DocumentReference(Box::new(d)))));
    }
    for visit in &zoom.visits {
        let ours: wire::Visit = decode(&to(visit)).unwrap();
        let appointment = map::visit_appointment(&ours, &ctx);
        let encounter = map::visit_encounter(&ours, None, &ctx);
        if let (Ok(a), Ok(e)) = (&appointment, &encounter) {
            let mut resources = vec![Resource::Appointment(Box::new(a.clone()))];
            resources.extend(e.clone().map(|e| Resource::Encounter(Box::new(e))));
            problems.extend(
                check_visit(&to(visit), &resources)
                    .into_iter()
                    .map(|p| format!("visit {}: {p}", ours.id)),
            );
        }
        problems.extend(check("visit", appointment.map(|a| Resource::Appointment(Box::new(a)))));
        if let Some(e) = encounter.transpose() {
            problems.extend(check("encounter", e.map(|e| Resource::Encounter(Box::new(e)))));
        }
    }
    for patient in &zoom.patients {
        let ours: wire::Patient = decode(&to(patient)).unwrap();
        problems.extend(check(
            "patient",
            map::patient(&ours, &ctx).map(|p| Resource::Patient(Box::new(p))),
        ));
    }
    for (provider, availability) in zoom.providers.iter().zip(&zoom.availability) {
        let p: wire::Provider = decode(&to(provider)).unwrap();
        let a: wire::Availability = decode(&to(availability)).unwrap();
        problems.extend(check(
            "provider",
            map::provider(&p, &ctx).map(|r| Resource::Practitioner(Box::new(r))),
        ));
        problems.extend(check(
            "schedule",
            map::schedule(&p, &a, &ctx).map(|r| Resource::Schedule(Box::new(r))),
        ));
        match map::slots(&p, &a, &ctx) {
            Ok(slots) => {
                for slot in slots {
                    problems.extend(check("slot", Ok(Resource::Slot(Box::new(slot)))));
                }
            }
            Err(e) => problems.extend(check("slots", Err(e))),
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Any serializable simulator object as JSON.
mod erased {
    pub trait Json {
        fn json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }
}
