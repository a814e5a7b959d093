//! Golden tests of the DrChrono mappings.
//!
//! Every `testdata/golden/<name>.drchrono.json` is mapped and the result compared with
//! `<name>.fhir.json`; for a clinical note the decoded markdown content is also compared with
//! `<name>.md`. Run with `UPDATE_GOLDEN=1` to (re)write the expected files, then review the diff.
//!
//! The name's prefix picks the mapping: `patient-`, `doctor-`, `office-` (the office and one
//! Location per exam room), `appointment-` (a break gives no resource), `clinical-note-` (input
//! `{"clinical_note": {...}, "appointment": {...} | null}`) and `document-`. One resource is
//! written as itself; none or several as a `collection` Bundle. The harness is
//! [`adapter::golden`].
//!
//! Besides the comparison, every output must re-parse with fhirbolt (strict mode) to the same
//! JSON, its dates and instants must match FHIR's regular expressions, its ids and references must
//! be valid ([`RULES`]), a patient's social security number must not appear anywhere, and a
//! clinical note's markdown must give back every section, field and value of the input.

use std::collections::HashMap;
use std::path::Path;

use adapter::MapCtx;
use adapter::fhir::Resource;
use adapter::golden::{Golden, Input, Mapped, Rules, decode};
use adapter_drchrono::map::{self, DrCtx};
use adapter_drchrono::wire;
use chrono::TimeZone;
use serde_json::Value;

/// What every DrChrono resource is checked for besides the comparison.
const RULES: Rules = Rules {
    source: "drchrono",
    instants: &["lastUpdated", "start", "end", "created", "date"],
    codes: &["code"],
    unchecked: &[],
    meta_source: false,
    foreign_references_resolve: false,
};

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

fn err(e: map::MapError) -> String {
    e.to_string()
}

#[test]
fn golden_files() {
    let ctx = ctx();
    Golden::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden"), RULES)
        .at_least(30)
        .map("patient-", |input| {
            let input: Value = input.json()?;
            let patient = map::patient(&decode(&input)?, &ctx).map_err(err)?;
            let mut mapped = Mapped::new(vec![Resource::Patient(Box::new(patient))]);
            let ssn = input["social_security_number"].as_str().unwrap_or("");
            let json = fhirbolt::json::to_string(&mapped.resources[0], None).unwrap();
            if !ssn.is_empty() && json.contains(ssn) {
                mapped.problems.push("the social security number leaked".into());
            }
            Ok(mapped)
        })
        .map("doctor-", |input| {
            let doctor = map::practitioner(&decode(&input.json()?)?, &ctx).map_err(err)?;
            Ok(Mapped::new(vec![Resource::Practitioner(Box::new(doctor))]))
        })
        .map("office-", |input| {
            // The office and one Location per exam room.
            let office: wire::Office = decode(&input.json()?)?;
            let mut out = vec![map::office_location(&office, &ctx).map_err(err)?];
            for room in &office.exam_rooms {
                out.push(map::exam_room_location(&office, room, &ctx).map_err(err)?);
            }
            Ok(Mapped::new(
                out.into_iter().map(|l| Resource::Location(Box::new(l))).collect(),
            ))
        })
        .map("appointment-", |input| {
            // A break gives no resource.
            let appointments = map::appointment(&decode(&input.json()?)?, &ctx).map_err(err)?;
            Ok(Mapped::new(
                appointments
                    .into_iter()
                    .map(|a| Resource::Appointment(Box::new(a)))
                    .collect(),
            ))
        })
        .map("clinical-note-", |input| clinical_note(input, &ctx))
        .map("document-", |input| {
            let document = map::document(&decode(&input.json()?)?, &ctx).map_err(err)?;
            Ok(Mapped::new(vec![Resource::DocumentReference(Box::new(document))]))
        })
        .run()
        .assert_none();
}

/// Input `{"clinical_note": {...}, "appointment": {...} | null}` → DocumentReference, whose
/// decoded markdown is compared with `<name>.md` and must give back every section, field and value
/// of the input.
fn clinical_note(input: &Input, ctx: &DrCtx) -> Result<Mapped, String> {
    let input: Value = input.json()?;
    let note: wire::ClinicalNote = decode(&input["clinical_note"])?;
    let appointment: Option<wire::Appointment> = decode(&input["appointment"])?;
    let doc = map::clinical_note(&note, appointment.as_ref(), ctx).map_err(err)?;
    let data = doc.content[0].attachment.data.as_ref().unwrap();
    let bytes = data_encoding::BASE64
        .decode(data.value.as_ref().unwrap().as_bytes())
        .unwrap();
    let markdown = String::from_utf8(bytes).unwrap();
    let mut mapped = Mapped::new(vec![Resource::DocumentReference(Box::new(doc))]);
    if let Err(e) = check_markdown_keeps_everything(&input["clinical_note"], &markdown) {
        mapped.problems.push(format!("markdown lost data: {e}"));
    }
    mapped.files.push(("md".into(), markdown));
    Ok(mapped)
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
