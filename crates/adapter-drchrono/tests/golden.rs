//! Golden tests of the DrChrono mappings.
//!
//! Every `testdata/golden/<name>.drchrono.json` is mapped and the result compared with
//! `<name>.fhir.json`; for a clinical note the decoded markdown content is also compared with
//! `<name>.md`. Run with `UPDATE_GOLDEN=1` to (re)write the expected files, then review the diff.
//!
//! The name's prefix picks the mapping: `patient-`, `doctor-`, `office-` (the office and one
//! Location per exam room), `appointment-` (a break gives no resource), `clinical-note-` (input
//! `{"clinical_note": {...}, "appointment": {...} | null}`) and `document-`. One resource is
//! written as itself; none or several as a `collection` Bundle.
//!
//! Besides the comparison, every output must re-parse with fhirbolt (strict mode) to the same
//! JSON, its dates and instants must match FHIR's regular expressions, its ids and references must
//! be valid, a patient's social security number must not appear anywhere, and a clinical note's
//! markdown must give back every section, field and value of the input.

use adapter::format::{is_code as is_fhir_code, is_date as is_fhir_date, is_instant as is_fhir_instant};
use adapter::id::is_valid_fhir_id as is_fhir_id;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use adapter::MapCtx;
use adapter::fhir::Resource;
use adapter::fhir::resources::{Bundle, BundleEntry};
use adapter_drchrono::map::{self, DrCtx};
use adapter_drchrono::wire;
use chrono::TimeZone;
use serde_json::Value;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden")
}

/// The context every golden case maps with: doctor 45 works in Chicago, every other doctor in the
/// configured default zone, New York.
fn ctx() -> DrCtx {
    let base = MapCtx::new(
        chrono::Utc.with_ymd_and_hms(2024, 6, 10, 12, 0, 0).unwrap(),
        chrono_tz::America::New_York,
    );
    DrCtx {
        base,
        doctor_tz: HashMap::from([(45, chrono_tz::America::Chicago)]),
    }
}

/// Maps one golden input to its resources.
fn map_case(name: &str, input: &Value, ctx: &DrCtx) -> Result<Vec<Resource>, String> {
    fn wire<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, String> {
        serde_json::from_value(v.clone()).map_err(|e| format!("wire: {e}"))
    }
    let err = |e: map::MapError| e.to_string();
    let resources = if name.starts_with("patient-") {
        vec![Resource::Patient(Box::new(
            map::patient(&wire(input)?, ctx).map_err(err)?,
        ))]
    } else if name.starts_with("doctor-") {
        vec![Resource::Practitioner(Box::new(
            map::practitioner(&wire(input)?, ctx).map_err(err)?,
        ))]
    } else if name.starts_with("office-") {
        let office: wire::Office = wire(input)?;
        let mut out = vec![map::office_location(&office, ctx).map_err(err)?];
        for room in &office.exam_rooms {
            out.push(map::exam_room_location(&office, room, ctx).map_err(err)?);
        }
        out.into_iter().map(|l| Resource::Location(Box::new(l))).collect()
    } else if name.starts_with("appointment-") {
        map::appointment(&wire(input)?, ctx)
            .map_err(err)?
            .into_iter()
            .map(|a| Resource::Appointment(Box::new(a)))
            .collect()
    } else if name.starts_with("clinical-note-") {
        let note: wire::ClinicalNote = wire(&input["clinical_note"])?;
        let appointment: Option<wire::Appointment> = wire(&input["appointment"])?;
        vec![Resource::DocumentReference(Box::new(
            map::clinical_note(&note, appointment.as_ref(), ctx).map_err(err)?,
        ))]
    } else if name.starts_with("document-") {
        vec![Resource::DocumentReference(Box::new(
            map::document(&wire(input)?, ctx).map_err(err)?,
        ))]
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
    let ctx = ctx();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".drchrono.json"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 30, "golden inputs are missing");

    let mut failures = String::new();
    let mut expected_files = Vec::new();
    for input_path in &inputs {
        let file = input_path.file_name().unwrap().to_string_lossy();
        let name = file.trim_end_matches(".drchrono.json").to_owned();
        let input: Value = serde_json::from_str(&std::fs::read_to_string(input_path).unwrap()).unwrap();
        let resources = match map_case(&name, &input, &ctx) {
            Ok(r) => r,
            Err(e) => {
                writeln!(failures, "{name}: mapping failed: {e}").unwrap();
                continue;
            }
        };

        for problem in resources.iter().flat_map(check_resource) {
            writeln!(failures, "{name}: {problem}").unwrap();
        }
        if name.starts_with("patient-") {
            let ssn = input["social_security_number"].as_str().unwrap_or("");
            let json = fhirbolt::json::to_string(&resources[0], None).unwrap();
            if !ssn.is_empty() && json.contains(ssn) {
                writeln!(failures, "{name}: the social security number leaked").unwrap();
            }
        }

        let mut outputs = Vec::new();
        if name.starts_with("clinical-note-") {
            let Resource::DocumentReference(doc) = &resources[0] else {
                unreachable!()
            };
            let data = doc.content[0].attachment.data.as_ref().unwrap();
            let bytes = data_encoding::BASE64
                .decode(data.value.as_ref().unwrap().as_bytes())
                .unwrap();
            let markdown = String::from_utf8(bytes).unwrap();
            if let Err(e) = check_markdown_keeps_everything(&input["clinical_note"], &markdown) {
                writeln!(failures, "{name}: markdown lost data: {e}").unwrap();
            }
            outputs.push((format!("{name}.md"), markdown));
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
            match std::fs::read_to_string(&path) {
                Ok(expected) if expected == actual => {}
                Ok(expected) => writeln!(
                    failures,
                    "{file}: differs from the mapping (UPDATE_GOLDEN=1 to accept)\n{}",
                    first_difference(&expected, &actual)
                )
                .unwrap(),
                Err(_) => writeln!(failures, "{file}: missing (UPDATE_GOLDEN=1 writes it)").unwrap(),
            }
        }
    }

    // An expected file without an input is stale.
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !file.ends_with(".drchrono.json") && !expected_files.contains(&file) {
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

fn check_resource(resource: &Resource) -> Vec<String> {
    let mut problems = Vec::new();
    let json = fhirbolt::json::to_string(resource, None).unwrap();
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
        Some(id) if is_fhir_id(id) && id.starts_with("drchrono-") => {}
        other => problems.push(format!("bad id {other:?}")),
    }
    walk(&value, "", &mut problems);
    problems
}

fn walk(value: &Value, key: &str, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                walk(v, k, problems);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, key, problems)),
        Value::String(s) => {
            let ok = match key {
                "lastUpdated" | "start" | "end" | "created" | "date" => is_fhir_instant(s),
                "birthDate" => is_fhir_date(s),
                "reference" => s
                    .split_once('/')
                    .is_some_and(|(t, id)| t.bytes().all(|b| b.is_ascii_alphabetic()) && is_fhir_id(id)),
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

// ---- the clinical-note markdown gives back everything ----

/// Reads the markdown back (sections, field labels, values) and compares it with the raw vendor
/// JSON of the note: same sections in the same order, same fields, same values.
fn check_markdown_keeps_everything(note: &Value, markdown: &str) -> Result<(), String> {
    let expected: Vec<(String, Vec<(String, String)>)> = note["clinical_note_sections"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|section| {
            let name = section["name"].as_str().unwrap_or("").trim();
            let name = if name.is_empty() { "Untitled section" } else { name };
            let values = section["values"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|v| {
                    let label = match (v["name"].as_str().map(str::trim), &v["clinical_note_field"]) {
                        (Some(n), _) if !n.is_empty() => n.to_owned(),
                        (_, Value::Number(id)) => format!("Field {id}"),
                        _ => "Unnamed field".to_owned(),
                    };
                    let text = match &v["value"] {
                        Value::Null => String::new(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let text = text.replace("\r\n", "\n").replace('\r', "\n");
                    let text = if text.contains('\n') {
                        text.strip_suffix('\n').unwrap_or(&text).to_owned()
                    } else {
                        text.trim().to_owned()
                    };
                    (label, text)
                })
                .collect();
            (name.to_owned(), values)
        })
        .collect();
    let actual = parse_note_markdown(markdown)?;
    if actual != expected {
        return Err(format!("expected {expected:#?}\nread back {actual:#?}"));
    }
    Ok(())
}

type Sections = Vec<(String, Vec<(String, String)>)>;

fn parse_note_markdown(md: &str) -> Result<Sections, String> {
    let mut lines = md.lines();
    if lines.next() != Some("# Clinical note") {
        return Err("no title".into());
    }
    let mut sections: Sections = Vec::new();
    while let Some(line) = lines.next() {
        if line.is_empty() || line == "*(no fields)*" {
            continue;
        }
        if let Some(name) = line.strip_prefix("## ") {
            sections.push((unescape(name), Vec::new()));
            continue;
        }
        let section = sections.last_mut().ok_or("a field before any section")?;
        let rest = line.strip_prefix("**").ok_or(format!("unexpected line {line:?}"))?;
        let end = label_end(rest).ok_or(format!("no label in {line:?}"))?;
        let label = unescape(&rest[..end]);
        let after = &rest[end + 3..];
        let value = if after.is_empty() {
            // A fenced multi-line value follows after one blank line.
            if lines.next() != Some("") {
                return Err("no blank line before a fence".into());
            }
            let open = lines.next().ok_or("no fence")?;
            let fence = open.strip_suffix("text").ok_or("fence without info string")?;
            if fence.len() < 3 || !fence.bytes().all(|b| b == b'`') {
                return Err(format!("bad fence {open:?}"));
            }
            let mut body = Vec::new();
            loop {
                let l = lines.next().ok_or("unclosed fence")?;
                if l == fence {
                    break;
                }
                body.push(l);
            }
            body.join("\n")
        } else {
            let after = after.strip_prefix(' ').ok_or("no space after label")?;
            if after == "*(empty)*" {
                String::new()
            } else {
                unescape(after)
            }
        };
        section.1.push((label, value));
    }
    Ok(sections)
}

/// Index of the `:**` that closes a bold label, skipping backslash escapes.
fn label_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i..].starts_with(b":**") {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}
