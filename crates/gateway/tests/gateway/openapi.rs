//! The committed OpenAPI document is what the gateway serves; regenerate it with
//! `UPDATE_OPENAPI=1 cargo test -p gateway --test openapi` (or `fhir-gateway openapi`).

use std::path::PathBuf;

use gateway::openapi;
use gateway::run::reference_sources;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi/fhir-gateway.openapi.json")
}

#[test]
fn the_committed_openapi_document_is_current() {
    let sources = reference_sources().unwrap();
    let typed = serde_json::to_value(openapi::document(&sources)).unwrap();
    // Nothing of the generated document is lost in utoipa's model.
    let raw = openapi::document_json(&sources);
    let mut differences = Vec::new();
    diff("", &typed, &raw, &mut differences);
    assert!(
        differences.is_empty(),
        "utoipa's model dropped or changed part of the document at: {differences:?}"
    );
    let current = format!("{}\n", serde_json::to_string_pretty(&typed).unwrap());
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "openapi/fhir-gateway.openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p gateway --test openapi`"
    );
    assert_eq!(typed["openapi"], "3.1.0");
    for path in [
        "/fhir/Patient",
        "/fhir/Patient/{id}",
        "/fhir/Appointment/_search",
        "/fhir/metadata",
    ] {
        assert!(typed["paths"][path].is_object(), "{path}");
    }
    // No over-claiming: writes only where a source takes them.
    assert!(
        typed["paths"]["/fhir/Location"]["post"].is_null(),
        "no source creates Locations"
    );
    assert!(
        typed["paths"]["/fhir/Patient/{id}"]["put"].is_null(),
        "no source updates Patients"
    );
    assert!(
        typed["paths"]["/fhir/Appointment"]["post"].is_object(),
        "Zoom schedules visits"
    );
    assert!(
        typed["paths"]["/fhir/DocumentReference/{id}"]["patch"].is_object(),
        "Zoom notes are completed by PATCH"
    );
    assert!(typed["paths"]["/fhir/Appointment/{id}/$admit"]["post"].is_object());
}

/// The JSON pointers where two documents differ.
fn diff(at: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(&format!("{at}/{k}"), p, q, out),
                    _ => out.push(format!("{at}/{k}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{at}/{i}"), p, q, out);
            }
        }
        _ if a == b => {}
        _ => out.push(at.to_owned()),
    }
}
