//! Finding the first FHIR element two resources differ in, for the write mappings.

use serde_json::{Map, Value};

use super::MapError;

/// A resource as FHIR JSON.
pub(crate) fn to_json<T: fhirbolt::serde::SerializeResource>(resource: &T) -> Result<Value, MapError> {
    fhirbolt::json::to_json_value(resource.clone(), None)
        .map_err(|_| MapError::unprocessable("resource", "it cannot be serialized as FHIR JSON"))
}

/// The path of the first element (in key order) whose value differs between `current` and
/// `wanted`, leaving out the top-level elements in `ignore` and `resourceType`. Paths read like
/// FHIRPath: `participant[1].actor.reference`, `extension('http://…').valueUrl`; an array whose
/// length changed is named as a whole (`identifier`).
pub(crate) fn first_difference(current: &Value, wanted: &Value, ignore: &[&str]) -> Option<String> {
    let empty = Map::new();
    let current = current.as_object().unwrap_or(&empty);
    let wanted = wanted.as_object().unwrap_or(&empty);
    keys(current, wanted)
        .into_iter()
        .filter(|k| *k != "resourceType" && !ignore.contains(k))
        .find_map(|k| difference(k, k, current.get(k), wanted.get(k)))
}

/// True when the top-level element `key` differs.
pub(crate) fn element_differs(current: &Value, wanted: &Value, key: &str) -> bool {
    current.get(key) != wanted.get(key)
}

fn keys<'a>(a: &'a Map<String, Value>, b: &'a Map<String, Value>) -> Vec<&'a str> {
    let mut keys: Vec<&str> = a.keys().map(String::as_str).collect();
    keys.extend(b.keys().map(String::as_str).filter(|k| !a.contains_key(*k)));
    keys
}

fn difference(path: &str, key: &str, a: Option<&Value>, b: Option<&Value>) -> Option<String> {
    match (a, b) {
        (None, None) => None,
        (Some(x), Some(y)) if x == y => None,
        (Some(Value::Object(x)), Some(Value::Object(y))) => keys(x, y)
            .into_iter()
            .find_map(|k| difference(&format!("{path}.{k}"), k, x.get(k), y.get(k)))
            .or_else(|| Some(path.to_owned())),
        (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (xi, yi))| {
                let item = match (key, xi.get("url"), yi.get("url")) {
                    ("extension" | "modifierExtension", Some(Value::String(u)), Some(Value::String(v))) if u == v => {
                        format!("{path}('{u}')")
                    }
                    _ => format!("{path}[{i}]"),
                };
                difference(&item, key, Some(xi), Some(yi))
            })
            .or_else(|| Some(path.to_owned())),
        _ => Some(path.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_difference_is_named_like_fhirpath() {
        let a = json!({"resourceType": "Appointment", "status": "booked", "participant": [
            {"actor": {"reference": "Patient/zoom-1"}}, {"actor": {"reference": "Practitioner/zoom-2"}}
        ]});
        let mut b = a.clone();
        assert_eq!(first_difference(&a, &b, &[]), None);
        b["participant"][1]["actor"]["reference"] = json!("Practitioner/zoom-3");
        assert_eq!(
            first_difference(&a, &b, &[]).as_deref(),
            Some("participant[1].actor.reference")
        );
        assert_eq!(first_difference(&a, &b, &["participant"]), None);
        b["participant"].as_array_mut().unwrap().pop();
        assert_eq!(first_difference(&a, &b, &[]).as_deref(), Some("participant"));
        let c =
            json!({"resourceType": "Appointment", "status": "booked", "participant": a["participant"], "comment": "x"});
        assert_eq!(first_difference(&a, &c, &[]).as_deref(), Some("comment"));
        assert_eq!(first_difference(&c, &a, &[]).as_deref(), Some("comment"));
        assert!(element_differs(&a, &c, "comment") && !element_differs(&a, &c, "status"));
    }

    #[test]
    fn extensions_are_named_by_url() {
        let a = json!({"extension": [{"url": "http://x/a", "valueUrl": "https://one"}]});
        let b = json!({"extension": [{"url": "http://x/a", "valueUrl": "https://two"}]});
        assert_eq!(
            first_difference(&a, &b, &[]).as_deref(),
            Some("extension('http://x/a').valueUrl")
        );
        let c = json!({"extension": [{"url": "http://x/b", "valueUrl": "https://one"}]});
        assert_eq!(first_difference(&a, &c, &[]).as_deref(), Some("extension[0].url"));
    }

    #[test]
    fn a_change_of_kind_names_the_element() {
        let a = json!({"code": {"text": "a"}});
        let b = json!({"code": "a"});
        assert_eq!(first_difference(&a, &b, &[]).as_deref(), Some("code"));
    }
}
