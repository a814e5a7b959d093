//! Search-set Bundles and the `_summary` / `_elements` subsetting of resources.

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::doc::Served;
use crate::error::{Issue, operation_outcome};
use crate::query::Summary;

const SUBSETTED: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// The elements FHIR R4 marks `isSummary` per type (choice elements end in `[x]`).
fn summary_elements(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Patient" => &[
            "identifier",
            "active",
            "name",
            "telecom",
            "gender",
            "birthDate",
            "deceased[x]",
            "address",
            "managingOrganization",
            "link",
        ],
        "Practitioner" => &[
            "identifier",
            "active",
            "name",
            "telecom",
            "address",
            "gender",
            "birthDate",
        ],
        "Location" => &[
            "identifier",
            "status",
            "operationalStatus",
            "name",
            "alias",
            "mode",
            "type",
            "telecom",
            "address",
            "physicalType",
            "managingOrganization",
            "partOf",
            "endpoint",
        ],
        "Appointment" => &[
            "identifier",
            "status",
            "cancelationReason",
            "serviceCategory",
            "serviceType",
            "specialty",
            "appointmentType",
            "start",
            "end",
            "participant",
        ],
        "Encounter" => &[
            "identifier",
            "status",
            "class",
            "type",
            "serviceType",
            "priority",
            "subject",
            "episodeOfCare",
            "basedOn",
            "participant",
            "appointment",
            "period",
            "length",
            "reasonCode",
            "reasonReference",
            "diagnosis",
            "account",
            "location",
            "serviceProvider",
            "partOf",
        ],
        "DocumentReference" => &[
            "masterIdentifier",
            "identifier",
            "status",
            "docStatus",
            "type",
            "category",
            "subject",
            "date",
            "author",
            "authenticator",
            "custodian",
            "relatesTo",
            "securityLabel",
            "content",
            "context",
        ],
        "Schedule" => &[
            "identifier",
            "active",
            "serviceCategory",
            "serviceType",
            "specialty",
            "actor",
            "planningHorizon",
        ],
        "Slot" => &[
            "identifier",
            "serviceCategory",
            "serviceType",
            "specialty",
            "appointmentType",
            "schedule",
            "status",
            "start",
            "end",
            "overbooked",
        ],
        _ => &[],
    }
}

/// Elements every subset keeps.
const ALWAYS: [&str; 4] = ["resourceType", "id", "meta", "implicitRules"];

fn keep(key: &str, list: &[&str]) -> bool {
    list.iter().any(|k| match k.strip_suffix("[x]") {
        Some(prefix) => key.starts_with(prefix) && key[prefix.len()..].starts_with(|c: char| c.is_ascii_uppercase()),
        None => *k == key,
    })
}

fn mark_subsetted(resource: &mut Map<String, Value>) {
    let meta = resource.entry("meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        let tags = meta.entry("tag").or_insert_with(|| json!([]));
        if let Some(tags) = tags.as_array_mut() {
            tags.push(json!({"system": SUBSETTED, "code": "SUBSETTED"}));
        }
    }
}

/// Applies `_summary` and `_elements` to one resource.
pub fn subset(mut resource: Value, summary: Option<Summary>, elements: &[String]) -> Value {
    let Some(obj) = resource.as_object_mut() else {
        return resource;
    };
    let ty = obj.get("resourceType").and_then(Value::as_str).unwrap_or("").to_owned();
    let before = obj.len();
    match summary {
        Some(Summary::True) => {
            let list = summary_elements(&ty);
            obj.retain(|k, _| ALWAYS.contains(&k.as_str()) || keep(k, list));
        }
        Some(Summary::Text) => {
            let list = summary_elements(&ty);
            obj.retain(|k, _| ALWAYS.contains(&k.as_str()) || k == "text" || (k == "status" && keep(k, list)));
        }
        Some(Summary::Data) => {
            obj.remove("text");
        }
        Some(Summary::False) | Some(Summary::Count) | None => {}
    }
    if !elements.is_empty() && summary.is_none_or(|s| s == Summary::False) {
        let names: Vec<&str> = elements
            .iter()
            .map(|e| e.strip_prefix(&format!("{ty}.")).unwrap_or(e))
            .map(|e| e.split('.').next().unwrap_or(e))
            .collect();
        obj.retain(|k, _| ALWAYS.contains(&k.as_str()) || keep(k, &names));
    }
    let subsetted = obj.len() != before || matches!(summary, Some(Summary::True | Summary::Text | Summary::Data));
    if subsetted && summary != Some(Summary::False) {
        mark_subsetted(obj);
    }
    resource
}

/// True when `_summary` / `_elements` change a resource, so its cached bytes cannot be sent as
/// they are.
pub fn subsets(summary: Option<Summary>, elements: &[String]) -> bool {
    matches!(summary, Some(Summary::True | Summary::Text | Summary::Data))
        || (!elements.is_empty() && summary.is_none_or(|s| s == Summary::False))
}

/// A link of the Bundle.
#[derive(Debug, Clone)]
pub struct Link {
    pub relation: &'static str,
    pub url: String,
}

/// The parts of a searchset Bundle.
#[derive(Debug)]
pub struct Searchset<'a> {
    pub base_url: &'a str,
    pub matches: Vec<Served>,
    pub included: Vec<Served>,
    pub total: Option<usize>,
    pub links: &'a [Link],
    pub issues: &'a [Issue],
    pub summary: Option<Summary>,
    pub elements: &'a [String],
}

fn now_instant() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Builds a searchset Bundle as a JSON tree.
pub fn searchset(parts: Searchset<'_>) -> Value {
    searchset_at(parts, &now_instant())
}

fn searchset_at(parts: Searchset<'_>, now: &str) -> Value {
    let Searchset {
        base_url,
        matches,
        included,
        total,
        links,
        issues,
        summary,
        elements,
    } = parts;
    let entry = |resource: Served, mode: &str| -> Value {
        let resource = resource.into_json();
        let full_url = full_url(base_url, &resource);
        json!({"fullUrl": full_url, "resource": subset(resource, summary, elements), "search": {"mode": mode}})
    };
    let mut entries: Vec<Value> = Vec::with_capacity(matches.len() + included.len() + 1);
    if summary != Some(Summary::Count) {
        entries.extend(matches.into_iter().map(|r| entry(r, "match")));
        entries.extend(included.into_iter().map(|r| entry(r, "include")));
    }
    if !issues.is_empty() {
        entries.push(json!({"resource": operation_outcome(issues), "search": {"mode": "outcome"}}));
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "meta": {"lastUpdated": now},
        "type": "searchset",
        "link": links.iter().map(|l| json!({"relation": l.relation, "url": l.url})).collect::<Vec<_>>(),
    });
    if let Some(t) = total {
        bundle["total"] = json!(t);
    }
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

fn full_url(base_url: &str, resource: &Value) -> String {
    let ty = resource.get("resourceType").and_then(Value::as_str).unwrap_or("");
    let id = resource.get("id").and_then(Value::as_str).unwrap_or("");
    format!("{base_url}/{ty}/{id}")
}

/// A searchset Bundle's bytes: compact, each entry a shared document's cached bytes unless
/// `_summary` / `_elements` change it; `_pretty` builds the tree instead.
pub fn render_searchset(parts: Searchset<'_>, pretty: bool) -> Vec<u8> {
    if pretty {
        serde_json::to_vec_pretty(&searchset(parts)).unwrap_or_default()
    } else {
        searchset_bytes(parts, &now_instant())
    }
}

fn searchset_bytes(parts: Searchset<'_>, now: &str) -> Vec<u8> {
    let Searchset {
        base_url,
        matches,
        included,
        total,
        links,
        issues,
        summary,
        elements,
    } = parts;
    let subsetting = subsets(summary, elements);
    let listed = if summary == Some(Summary::Count) {
        0
    } else {
        matches.len() + included.len()
    };
    let size: usize = matches
        .iter()
        .chain(&included)
        .take(listed)
        .map(|m| m.doc().map_or(1024, |d| d.bytes().len() + 128))
        .sum();
    let mut out = Vec::with_capacity(size + 512);
    out.extend_from_slice(br#"{"resourceType":"Bundle","meta":{"lastUpdated":"#);
    put(&mut out, now);
    out.extend_from_slice(br#"},"type":"searchset""#);
    if let Some(t) = total {
        out.extend_from_slice(br#","total":"#);
        out.extend_from_slice(t.to_string().as_bytes());
    }
    out.extend_from_slice(br#","link":["#);
    for (i, l) in links.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"relation":"#);
        put(&mut out, l.relation);
        out.extend_from_slice(br#","url":"#);
        put(&mut out, &l.url);
        out.push(b'}');
    }
    out.push(b']');
    let mut first = true;
    let mut open_entry = |out: &mut Vec<u8>| {
        out.extend_from_slice(if first {
            br#","entry":["#.as_slice()
        } else {
            b",".as_slice()
        });
        first = false;
    };
    let items = matches
        .into_iter()
        .map(|r| (r, "match"))
        .chain(included.into_iter().map(|r| (r, "include")))
        .take(listed);
    for (resource, mode) in items {
        open_entry(&mut out);
        out.extend_from_slice(br#"{"fullUrl":"#);
        put(&mut out, &full_url(base_url, resource.json()));
        out.extend_from_slice(br#","resource":"#);
        match resource.doc() {
            Some(doc) if !subsetting => out.extend_from_slice(doc.bytes()),
            _ => put(&mut out, &subset(resource.into_json(), summary, elements)),
        }
        out.extend_from_slice(br#","search":{"mode":"#);
        put(&mut out, mode);
        out.extend_from_slice(b"}}");
    }
    if !issues.is_empty() {
        open_entry(&mut out);
        out.extend_from_slice(br#"{"resource":"#);
        put(&mut out, &operation_outcome(issues));
        out.extend_from_slice(br#","search":{"mode":"outcome"}}"#);
    }
    if !first {
        out.push(b']');
    }
    out.push(b'}');
    out
}

/// Appends a value's compact JSON (writing to a Vec cannot fail).
fn put<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient() -> Value {
        json!({"resourceType": "Patient", "id": "drchrono-1", "meta": {"source": "x"}, "text": {"status": "generated", "div": "<div/>"},
               "name": [{"family": "A"}], "gender": "male", "deceasedBoolean": false, "communication": [{"language": {"text": "en"}}], "contact": []})
    }

    #[test]
    fn summary_true_keeps_summary_elements_and_tags() {
        let s = subset(patient(), Some(Summary::True), &[]);
        assert!(s.get("name").is_some() && s.get("gender").is_some() && s.get("deceasedBoolean").is_some());
        assert!(s.get("communication").is_none() && s.get("text").is_none());
        assert_eq!(s["meta"]["tag"][0]["code"], "SUBSETTED");
        assert_eq!(s["meta"]["source"], "x");
    }

    #[test]
    fn elements_and_data() {
        let e = subset(patient(), None, &["gender".into(), "Patient.name".into()]);
        let keys: Vec<_> = e.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 5, "{keys:?}");
        assert!(e.get("communication").is_none());
        let d = subset(patient(), Some(Summary::Data), &[]);
        assert!(d.get("text").is_none() && d.get("communication").is_some());
        let full = subset(patient(), None, &[]);
        assert_eq!(full, patient());
    }

    #[test]
    fn bundle_has_modes_links_and_outcome() {
        let b = searchset(Searchset {
            base_url: "http://h/fhir",
            matches: vec![Served::Owned(patient())],
            included: vec![Served::Owned(
                json!({"resourceType": "Practitioner", "id": "drchrono-2"}),
            )],
            total: Some(1),
            links: &[Link {
                relation: "self",
                url: "http://h/fhir/Patient".into(),
            }],
            issues: &[Issue::new(
                crate::error::Severity::Warning,
                crate::error::IssueCode::NotSupported,
                "x",
            )],
            summary: None,
            elements: &[],
        });
        assert_eq!(b["total"], 1);
        assert_eq!(b["entry"][0]["fullUrl"], "http://h/fhir/Patient/drchrono-1");
        assert_eq!(b["entry"][0]["search"]["mode"], "match");
        assert_eq!(b["entry"][1]["search"]["mode"], "include");
        assert_eq!(b["entry"][2]["search"]["mode"], "outcome");
        assert_eq!(b["entry"][2]["resource"]["resourceType"], "OperationOutcome");
    }

    #[test]
    fn written_bytes_are_the_tree() {
        let shared = Served::Shared(std::sync::Arc::new(crate::doc::Doc::from_json(patient())));
        let links = [
            Link {
                relation: "self",
                url: "http://h/fhir/Patient?name=\"a\"".into(),
            },
            Link {
                relation: "next",
                url: "http://h/fhir/Patient?_cursor=x".into(),
            },
        ];
        let issues = [Issue::new(
            crate::error::Severity::Warning,
            crate::error::IssueCode::NotSupported,
            "x \u{2028} y",
        )];
        let included = Served::Owned(json!({"resourceType": "Practitioner", "id": "drchrono-2"}));
        /// `_summary`, `_elements`, total, issues.
        type Case<'a> = (Option<Summary>, Vec<String>, Option<usize>, &'a [Issue]);
        let cases: [Case<'_>; 5] = [
            (None, vec![], Some(2), &issues),
            (Some(Summary::True), vec![], None, &[]),
            (None, vec!["gender".into()], Some(1), &issues),
            (Some(Summary::Count), vec![], Some(7), &[]),
            (Some(Summary::False), vec![], None, &[]),
        ];
        for (summary, elements, total, issues) in cases {
            let parts = || Searchset {
                base_url: "http://h/fhir",
                matches: vec![shared.clone()],
                included: vec![included.clone()],
                total,
                links: &links,
                issues,
                summary,
                elements: &elements,
            };
            let bytes = searchset_bytes(parts(), "2026-12-07T10:00:00.000Z");
            let parsed: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                parsed,
                searchset_at(parts(), "2026-12-07T10:00:00.000Z"),
                "{summary:?} {elements:?}"
            );
        }
        let empty = Searchset {
            base_url: "http://h/fhir",
            matches: vec![],
            included: vec![],
            total: Some(0),
            links: &links[..1],
            issues: &[],
            summary: None,
            elements: &[],
        };
        let parsed: Value = serde_json::from_slice(&searchset_bytes(empty, "t")).unwrap();
        assert!(parsed.get("entry").is_none() && parsed["total"] == 0);
    }
}
