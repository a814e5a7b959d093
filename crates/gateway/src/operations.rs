//! `OperationDefinition`s for the operations the wired sources declare, served at
//! `/fhir/OperationDefinition/{Type}-{name}` and referenced from the CapabilityStatement. They are
//! generated from each source's [`adapter::OperationDef`], so what is published is what is routed.

use adapter::{OperationDef, OperationParam, ResourceType};
use serde_json::{Value, json};

use crate::sources::Sources;

/// The id of an operation's definition (`Appointment-start-scribe`).
pub fn definition_id(t: ResourceType, name: &str) -> String {
    format!("{t}-{name}")
}

/// The canonical URL of an operation's definition.
pub fn definition_url(fhir_base: &str, t: ResourceType, name: &str) -> String {
    format!("{fhir_base}/OperationDefinition/{}", definition_id(t, name))
}

/// Every operation the sources declare, once per type and name, in capability order.
pub fn declared(sources: &Sources) -> Vec<(ResourceType, OperationDef)> {
    let mut out: Vec<(ResourceType, OperationDef)> = Vec::new();
    for t in ResourceType::ALL {
        for adapter in sources.all() {
            let Some(cap) = adapter.capabilities().resource(t) else {
                continue;
            };
            for op in &cap.operations {
                if !out.iter().any(|(ot, o)| *ot == t && o.name == op.name) {
                    out.push((t, *op));
                }
            }
        }
    }
    out
}

/// A computer-friendly name: `Appointment` + `start-scribe` → `AppointmentStartScribe`.
fn pascal(t: ResourceType, name: &str) -> String {
    let mut out = t.as_str().to_owned();
    for word in name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    out
}

fn parameter(p: &OperationParam) -> Value {
    let mut v = json!({
        "name": p.name,
        "use": p.direction.code(),
        "min": p.min,
        "max": p.max.map_or_else(|| "*".to_owned(), |m| m.to_string()),
        "documentation": p.documentation,
    });
    if let Some(t) = p.fhir_type {
        v["type"] = json!(t);
    }
    if !p.parts.is_empty() {
        v["part"] = p.parts.iter().map(parameter).collect::<Vec<_>>().into();
    }
    v
}

/// The `OperationDefinition` resource of one declared operation.
pub fn definition(fhir_base: &str, t: ResourceType, op: &OperationDef) -> Value {
    let mut v = json!({
        "resourceType": "OperationDefinition",
        "id": definition_id(t, op.name),
        "url": definition_url(fhir_base, t, op.name),
        "name": pascal(t, op.name),
        "title": format!("${} on {t}", op.name),
        "status": "active",
        "kind": "operation",
        "description": op.description,
        "affectsState": op.affects_state,
        "code": op.name,
        "resource": [t.as_str()],
        "system": false,
        "type": false,
        "instance": true,
    });
    let mut comment = vec![op.performer.describe().to_owned()];
    if op.target == adapter::OperationTarget::AnySource {
        comment.push(format!("Runs on a {t} of any source."));
    }
    if op.asynchronous {
        comment.push(
            "Asynchronous: answered 202 Accepted with the Parameters below; Content-Location names the resource \
             that reflects completion (the `follow` parameter)."
                .to_owned(),
        );
    }
    v["comment"] = json!(comment.join(" "));
    if !op.parameters.is_empty() {
        v["parameter"] = op.parameters.iter().map(parameter).collect::<Vec<_>>().into();
    }
    v
}

/// The definition with id `id`, if a source declares that operation.
pub fn find(sources: &Sources, fhir_base: &str, id: &str) -> Option<Value> {
    declared(sources)
        .into_iter()
        .find(|(t, op)| definition_id(*t, op.name) == id)
        .map(|(t, op)| definition(fhir_base, t, &op))
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapter::{OperationTarget, ParamUse};

    const PARTS: &[OperationParam] = &[OperationParam::new(
        "title",
        ParamUse::In,
        1,
        Some(1),
        "string",
        "Title",
    )];
    const PARAMS: &[OperationParam] = &[
        OperationParam::new("language", ParamUse::In, 0, Some(1), "code", "Language"),
        OperationParam {
            name: "template",
            direction: ParamUse::In,
            min: 0,
            max: None,
            fhir_type: None,
            documentation: "Sections",
            parts: PARTS,
        },
    ];

    #[test]
    fn definitions_carry_parameters_and_names() {
        let op = OperationDef {
            name: "start-scribe",
            description: "Start",
            affects_state: true,
            target: OperationTarget::AnySource,
            asynchronous: true,
            parameters: PARAMS,
            performer: adapter::Performer::Provider,
        };
        let d = definition("http://x/fhir", ResourceType::Appointment, &op);
        assert_eq!(d["id"], "Appointment-start-scribe");
        assert_eq!(d["url"], "http://x/fhir/OperationDefinition/Appointment-start-scribe");
        assert_eq!(d["name"], "AppointmentStartScribe");
        assert_eq!(d["code"], "start-scribe");
        assert_eq!(d["instance"], true);
        assert_eq!(d["parameter"][0]["max"], "1");
        assert_eq!(d["parameter"][1]["max"], "*");
        assert!(d["parameter"][1].get("type").is_none());
        assert_eq!(d["parameter"][1]["part"][0]["name"], "title");
        assert!(d["comment"].as_str().unwrap().contains("202"));
        assert!(
            d["comment"]
                .as_str()
                .unwrap()
                .contains("providers and backend systems only"),
            "who may run it is published"
        );
        let parsed: Result<adapter::Resource, _> = fhirbolt::json::from_str(&d.to_string(), None);
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}
