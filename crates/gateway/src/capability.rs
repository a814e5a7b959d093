//! `GET /fhir/metadata`: the CapabilityStatement, generated from what the wired adapters declare
//! and what the gateway itself evaluates — nothing is claimed that is not served.

use adapter::{Interaction, ResourceType};
use serde_json::{Value, json};

use crate::operations;
use crate::params;
use crate::query::CountLimits;
use crate::sources::Sources;

/// Builds the CapabilityStatement for the configured sources.
pub fn capability_statement(sources: &Sources, base_url: &str, limits: CountLimits, date: &str) -> Value {
    let mut resources = Vec::new();
    for ty in ResourceType::ALL {
        let serving: Vec<_> = sources
            .all()
            .iter()
            .filter_map(|a| a.capabilities().resource(ty))
            .collect();
        if serving.is_empty() {
            continue;
        }
        let mut interactions: Vec<Interaction> = Vec::new();
        for cap in &serving {
            for i in &cap.interactions {
                if !interactions.contains(i) {
                    interactions.push(*i);
                }
            }
        }
        // Delete is not routed by the REST layer.
        interactions.retain(|i| !matches!(i, Interaction::Delete));
        let mut profiles: Vec<&str> = serving.iter().flat_map(|c| c.profiles.iter().copied()).collect();
        profiles.sort_unstable();
        profiles.dedup();
        let searchable = interactions.contains(&Interaction::SearchType);
        let mut entry = json!({
            "type": ty.as_str(),
            "interaction": interactions.iter().map(|i| json!({"code": i.code()})).collect::<Vec<_>>(),
            "versioning": "no-version",
            "readHistory": false,
            "updateCreate": false,
            "conditionalCreate": false,
            "conditionalRead": "not-supported",
            "conditionalUpdate": false,
            "conditionalDelete": "not-supported",
        });
        if !profiles.is_empty() {
            entry["supportedProfile"] = json!(profiles);
        }
        let operations: Vec<Value> = serving
            .iter()
            .flat_map(|c| c.operations.iter())
            .map(|o| {
                json!({"name": o.name, "definition": operations::definition_url(base_url, ty, o.name),
                       "documentation": o.description})
            })
            .collect();
        if !operations.is_empty() {
            entry["operation"] = json!(operations);
        }
        if searchable {
            let pushed: Vec<&str> = serving.iter().flat_map(|c| c.pushdown.iter().copied()).collect();
            entry["searchParam"] = params::COMMON
                .iter()
                .chain(params::for_type(ty))
                .map(|d| {
                    let how = if pushed.contains(&d.name) {
                        " (filtered at the vendor where it can)"
                    } else {
                        ""
                    };
                    json!({"name": d.name, "type": d.kind.code(), "documentation": format!("{}{how}", d.description)})
                })
                .collect::<Vec<_>>()
                .into();
            let inc: Vec<String> = params::INCLUDES
                .iter()
                .filter(|(s, _, t)| *s == ty && sources.serves(*t))
                .map(|(s, n, _)| format!("{s}:{n}"))
                .collect();
            if !inc.is_empty() {
                entry["searchInclude"] = json!(inc);
            }
            let rev: Vec<String> = params::REVINCLUDES
                .iter()
                .filter(|(s, _, t)| *t == ty && sources.serves(*s))
                .map(|(s, n, _)| format!("{s}:{n}"))
                .collect();
            if !rev.is_empty() {
                entry["searchRevInclude"] = json!(rev);
            }
        }
        resources.push(entry);
    }
    if !operations::declared(sources).is_empty() {
        resources.push(json!({
            "type": "OperationDefinition",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "documentation": "The definitions of the operations listed on the other resources",
        }));
    }
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "fhir-gateway",
        "kind": "instance",
        "software": {"name": "fhir-gateway", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "FHIR R4 facade over vendor APIs", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": format!(
                "Searches return {} entries per page unless _count says otherwise; _count is capped at {}. \
                 Paging links are signed and expire; unknown parameters are ignored (reported in an OperationOutcome entry) \
                 unless the request says Prefer: handling=strict.",
                limits.default, limits.max
            ),
            "resource": resources,
        }],
    })
}

/// The audit trail's entry: read and searched (never written) with the scope `system/AuditEvent.rs`.
pub fn audit_event() -> Value {
    let param = |name: &str, kind: &str, doc: &str| json!({"name": name, "type": kind, "documentation": doc});
    json!({
        "type": "AuditEvent",
        "profile": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
        "documentation": "The gateway's audit trail (IHE BALP style): every FHIR interaction, every token issued or refused, every failed sign-in. Append-only; readable with the scope system/AuditEvent.rs only (a system/*.rs scope does not reach it; patient-facing tokens never do). Sorted newest first unless _sort=date.",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": false,
        "updateCreate": false,
        "searchParam": [
            param("date", "date", "When the event was recorded (eq, ge, gt, le, lt)"),
            param("patient", "reference", "The patient the event is about"),
            param("entity", "reference", "The resource the event is about (Type/id), or its patient"),
            param("agent", "reference", "Who: the user (fhirUser reference) or the client id"),
            param("type", "token", "rest (a FHIR interaction) or 110114 (user authentication); also matches the subtype"),
            param("subtype", "token", "The interaction (read, search-type, create, …), ITI-71 (token) or 110122 (sign-in)"),
            param("action", "token", "C, R, U, D or E"),
            param("outcome", "token", "0 success, 4 refused or failed by the client, 8 failed by the server"),
        ],
    })
}

/// `rest.security` for a SMART-protected server: the SMART-on-FHIR service code and the
/// `oauth-uris` extension with the same endpoints as `/.well-known/smart-configuration`.
pub fn smart_security(config: &Value) -> Value {
    let mut uris = Vec::new();
    for (name, key) in [
        ("authorize", "authorization_endpoint"),
        ("token", "token_endpoint"),
        ("introspect", "introspection_endpoint"),
        ("revoke", "revocation_endpoint"),
    ] {
        if let Some(url) = config.get(key).and_then(Value::as_str) {
            uris.push(json!({"url": name, "valueUri": url}));
        }
    }
    json!({
        "cors": false,
        "service": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}]}],
        "description": "SMART App Launch 2.x and Backend Services: OAuth 2.0 bearer tokens; see /.well-known/smart-configuration",
        "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": uris}],
    })
}
