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
//! link), a note's content must decode to Zoom's markdown byte for byte, and a visit's provider
//! join URL must appear only in the provider-only extension.

use adapter::format::{is_code as is_fhir_code, is_date as is_fhir_date, is_instant as is_fhir_instant};
use adapter::id::is_valid_fhir_id as is_fhir_id;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use adapter::fhir::Resource;
use adapter::fhir::resources::{Bundle, BundleEntry};
use adapter::{MapCtx, systems};
use adapter_zoom::map::{self, ZoomCtx};
use adapter_zoom::wire;
use chrono::TimeZone;
use serde_json::Value;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden")
}

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

fn wire<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("wire: {e}"))
}

/// Maps one golden input to its resources.
fn map_case(name: &str, input: &Value) -> Result<Vec<Resource>, String> {
    let err = |e: map::MapError| e.to_string();
    let ctx = ctx(&input["resolved"]);
    let resources = if name.starts_with("note-") {
        let note: wire::ClinicalNote = wire(&input["note"])?;
        let owner: Option<wire::Provider> = wire(&input["owner"])?;
        vec![Resource::DocumentReference(Box::new(
            map::clinical_note_with_owner(&note, owner.as_ref(), &ctx).map_err(err)?,
        ))]
    } else if name.starts_with("visit-") {
        let visit: wire::Visit = wire(&input["visit"])?;
        let waiting: Option<wire::WaitingRoomEntry> = wire(&input["waiting"])?;
        let mut out = vec![Resource::Appointment(Box::new(
            map::visit_appointment(&visit, &ctx).map_err(err)?,
        ))];
        if let Some(e) = map::visit_encounter(&visit, waiting.as_ref(), &ctx).map_err(err)? {
            out.push(Resource::Encounter(Box::new(e)));
        }
        out
    } else if name.starts_with("patient-") {
        vec![Resource::Patient(Box::new(
            map::patient(&wire(&input["patient"])?, &ctx).map_err(err)?,
        ))]
    } else if name.starts_with("provider-") {
        vec![Resource::Practitioner(Box::new(
            map::provider(&wire(input)?, &ctx).map_err(err)?,
        ))]
    } else if name.starts_with("availability-") {
        let provider: wire::Provider = wire(&input["provider"])?;
        let availability: wire::Availability = wire(&input["availability"])?;
        let mut out = vec![Resource::Schedule(Box::new(
            map::schedule(&provider, &availability, &ctx).map_err(err)?,
        ))];
        for slot in map::slots(&provider, &availability, &ctx).map_err(err)? {
            out.push(Resource::Slot(Box::new(slot)));
        }
        out
    } else {
        return Err("unknown prefix".into());
    };
    Ok(resources)
}

fn output_of(mut resources: Vec<Resource>) -> Resource {
    if resources.len() == 1 {
        return resources.remove(0);
    }
    Resource::Bundle(Box::new(Bundle {
        r#type: "collection".into(),
        entry: resources
            .into_iter()
            .map(|r| BundleEntry {
                resource: Some(r),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }))
}

#[test]
fn golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".zoom.json"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 25, "golden inputs are missing");

    let mut failures = String::new();
    let mut expected_files = Vec::new();
    for input_path in &inputs {
        let file = input_path.file_name().unwrap().to_string_lossy();
        let name = file.trim_end_matches(".zoom.json").to_owned();
        let input: Value = serde_json::from_str(&std::fs::read_to_string(input_path).unwrap()).unwrap();
        let resources = match map_case(&name, &input) {
            Ok(r) => r,
            Err(e) => {
                writeln!(failures, "{name}: mapping failed: {e}").unwrap();
                continue;
            }
        };
        let resolved: HashSet<String> = ctx(&input["resolved"]).resolved;
        for problem in resources.iter().flat_map(|r| check_resource(r, &resolved)) {
            writeln!(failures, "{name}: {problem}").unwrap();
        }

        let mut outputs = Vec::new();
        if name.starts_with("note-") {
            match check_note(&input["note"], &resources[0]) {
                Ok(markdown) => outputs.push((format!("{name}.md"), markdown)),
                Err(e) => writeln!(failures, "{name}: {e}").unwrap(),
            }
        }
        if name.starts_with("visit-") {
            for problem in check_visit(&input["visit"], &resources) {
                writeln!(failures, "{name}: {problem}").unwrap();
            }
        }
        let output = output_of(resources);
        let json = fhirbolt::json::to_string_pretty(&output, None).unwrap() + "\n";
        outputs.push((format!("{name}.fhir.json"), json));

        for (file, actual) in outputs {
            let path = golden_dir().join(&file);
            expected_files.push(file.clone());
            if update {
                std::fs::write(&path, &actual).unwrap();
                continue;
            }
            match std::fs::read(&path) {
                Ok(expected) if expected == actual.as_bytes() => {}
                Ok(expected) => writeln!(
                    failures,
                    "{file}: differs from the mapping (UPDATE_GOLDEN=1 to accept)\n{}",
                    first_difference(&String::from_utf8_lossy(&expected), &actual)
                )
                .unwrap(),
                Err(_) => writeln!(failures, "{file}: missing (UPDATE_GOLDEN=1 writes it)").unwrap(),
            }
        }
    }

    // An expected file without an input is stale.
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !file.ends_with(".zoom.json") && !expected_files.contains(&file) {
            writeln!(failures, "{file}: no input produces it").unwrap();
        }
    }
    assert!(failures.is_empty(), "\n{failures}");
}

fn first_difference(expected: &str, actual: &str) -> String {
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            return format!("  line {}:\n  expected: {e}\n  actual:   {a}", i + 1);
        }
    }
    format!(
        "  lengths differ: expected {} lines, actual {}",
        expected.lines().count(),
        actual.lines().count()
    )
}

// ---- checks every produced resource passes ----

fn check_resource(resource: &Resource, resolved: &HashSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let json = fhirbolt::json::to_string(resource, None).unwrap();
    // fhirbolt's default deserialization mode is strict: unknown elements are errors.
    match fhirbolt::json::from_str::<Resource>(&json, None) {
        Ok(back) => {
            if fhirbolt::json::to_string(&back, None).unwrap() != json {
                problems.push("does not re-parse to the same resource".to_owned());
            }
        }
        Err(e) => problems.push(format!("does not re-parse: {e}")),
    }
    let value: Value = serde_json::from_str(&json).unwrap();
    match value["id"].as_str() {
        Some(id) if is_fhir_id(id) && id.starts_with("zoom-") => {}
        other => problems.push(format!("bad id {other:?}")),
    }
    if value["meta"]["source"] != "urn:fhir-gateway:source:zoom" {
        problems.push("meta.source does not name Zoom".into());
    }
    walk(&value, "", resolved, &mut problems);
    problems
}

fn walk(value: &Value, key: &str, resolved: &HashSet<String>, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                walk(v, k, resolved, problems);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, key, resolved, problems)),
        Value::String(s) => {
            let ok = match key {
                "lastUpdated" | "start" | "end" | "created" | "date" | "creation" => is_fhir_instant(s),
                "birthDate" => is_fhir_date(s),
                "reference" => {
                    let valid = s
                        .split_once('/')
                        .is_some_and(|(t, id)| t.bytes().all(|b| b.is_ascii_alphabetic()) && is_fhir_id(id));
                    if valid && !s.contains("/zoom-") && !resolved.contains(s) {
                        problems.push(format!("reference {s:?} into another source did not resolve"));
                    }
                    valid
                }
                "code" => is_fhir_code(s),
                _ => !s.is_empty() && s.trim() == s,
            };
            if !ok {
                problems.push(format!("{key} {s:?} is not valid FHIR"));
            }
        }
        _ => {}
    }
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
        let ours: wire::ClinicalNote = wire(&to(note)).unwrap();
        resolved.extend(map::ehr_references(&ours, "drchrono"));
    }
    for visit in &zoom.visits {
        let ours: wire::Visit = wire(&to(visit)).unwrap();
        resolved.extend(map::visit_ehr_references(&ours, "drchrono"));
    }
    for patient in &zoom.patients {
        let ours: wire::Patient = wire(&to(patient)).unwrap();
        resolved.extend(map::patient_ehr_references(&ours, "drchrono"));
    }
    let resolved_json = Value::from(resolved.clone());
    let ctx = ctx(&resolved_json);
    let resolved: HashSet<String> = ctx.resolved.clone();

    let mut problems = Vec::new();
    let check = |what: &str, r: Result<Resource, map::MapError>| -> Vec<String> {
        match r {
            Ok(resource) => check_resource(&resource, &resolved)
                .into_iter()
                .map(|p| format!("{what}: {p}"))
                .collect(),
            Err(e) => vec![format!("{what}: {e}")],
        }
    };
    assert!(!zoom.clinical_notes.is_empty() && !zoom.visits.is_empty());
    for note in &zoom.clinical_notes {
        let ours: wire::ClinicalNote = wire(&to(note)).unwrap();
        let owner = zoom
            .providers
            .iter()
            .find(|p| p.user_id == ours.note_owner_user_id)
            .map(|p| wire::<wire::Provider>(&to(p)).unwrap());
        let doc = map::clinical_note_with_owner(&ours, owner.as_ref(), &ctx);
        if let Ok(d) = &doc
            && check_note(&to(note), &Resource::DocumentReference(Box::new(d.clone()))).is_err()
        {
            problems.push(format!("note {}: content is not byte for byte", ours.note_id));
        }
        problems.extend(check("note", doc.map(|d| Resource::DocumentReference(Box::new(d)))));
    }
    for visit in &zoom.visits {
        let ours: wire::Visit = wire(&to(visit)).unwrap();
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
        let ours: wire::Patient = wire(&to(patient)).unwrap();
        problems.extend(check(
            "patient",
            map::patient(&ours, &ctx).map(|p| Resource::Patient(Box::new(p))),
        ));
    }
    for (provider, availability) in zoom.providers.iter().zip(&zoom.availability) {
        let p: wire::Provider = wire(&to(provider)).unwrap();
        let a: wire::Availability = wire(&to(availability)).unwrap();
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
