//! Client bodies in FHIR JSON, made safe for the FHIR JSON parser before it sees them.
//!
//! fhirbolt 0.4 parses a `Resource` in two steps: the JSON becomes a generic element tree, which is
//! then read into the typed model. An empty JSON array anywhere in a body (`"participant": []`,
//! `"_start": {"extension": []}`, `"parameter": []`) leaves a property with no value in that tree,
//! and the second step unwraps the missing value: a panic (500), not an error. Like any recursive
//! parser it also needs the nesting bounded. FHIR JSON forbids those shapes anyway, so [`check`]
//! refuses them, and the others FHIR JSON forbids that can be seen without the type definitions,
//! with a 400 naming the element (FHIRPath-like: `Appointment.participant`,
//! `Appointment._start.extension`, `Parameters.parameter[0].part`), never a value:
//!
//! - the body is a JSON object, and no object is empty;
//! - every property name is an element name (`_` optional, a letter, then letters and digits);
//! - no array is empty, and no array holds an array;
//! - `null` is only an item of an array whose `_` counterpart (`given` / `_given`) has a value at
//!   that index, and such a pair has the same length;
//! - a `_` property holds an object with only `id` and `extension` (or an array of those and nulls);
//! - `resourceType` is a string;
//! - objects and arrays nest at most [`MAX_DEPTH`] deep (serde_json stops at 128 on its own);
//! - an `id` is not fhirbolt's own marker for a missing required element (`$invalid`).
//!
//! [`parse`] checks, then parses with any panic of the parser turned into a 400 (a last line of
//! defence: the workspace builds with `panic = "unwind"`), and refuses what fhirbolt reads but cannot
//! write back (a `decimal` given as a string that is not a number), which would otherwise fail only
//! when the resource is answered.
//!
//! The walk is iterative (an explicit stack), so no body can exhaust the thread's stack here.

use std::panic::{AssertUnwindSafe, catch_unwind};

use adapter::Resource;
use serde_json::{Map, Value};

use crate::error::GatewayError;

/// The deepest nesting of objects and arrays a body may have (the resource itself is level 1; an
/// object in an array of a property of the resource is level 3). The resources the gateway takes
/// stay below 20 (a `Parameters` part holding an Appointment with a nested extension); the parser's
/// typed step recurses with large frames per level, so the bound is kept well under serde_json's 128.
pub const MAX_DEPTH: usize = 32;

/// The longest element name accepted (FHIR's are far shorter).
const MAX_NAME_LEN: usize = 64;

/// fhirbolt's marker for a missing required element in lax mode; as an id it breaks serialization.
const FHIRBOLT_INVALID_MARKER: &str = "$invalid";

const EMPTY_OBJECT: &str = "an object must not be empty in FHIR JSON";
const EMPTY_ARRAY: &str = "an array must not be empty in FHIR JSON";
const NULL_VALUE: &str = "null is allowed in FHIR JSON only as an item of a primitive array whose `_` counterpart has a value at the same index";
const TOO_DEEP: &str = "the body nests objects and arrays too deeply";

/// One step of an element path.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Name(&'a str),
    Index(usize),
}

/// The paths of the objects being walked: each node points at its parent, so a path is spelled
/// out only when something is refused.
struct Paths<'a> {
    nodes: Vec<(usize, Step<'a>)>,
}

impl<'a> Paths<'a> {
    fn new(root: &'a str) -> Self {
        Self {
            nodes: vec![(0, Step::Name(root))],
        }
    }

    fn child(&mut self, parent: usize, step: Step<'a>) -> usize {
        self.nodes.push((parent, step));
        self.nodes.len() - 1
    }

    /// `Appointment.participant[0].actor`: the path of `node`, then `last`.
    fn spell(&self, node: usize, last: Option<Step<'a>>) -> String {
        let mut steps: Vec<Step<'a>> = last.into_iter().collect();
        let mut at = node;
        // Parents are always earlier nodes and the root is node 0, so this ends.
        while let Some(&(parent, step)) = self.nodes.get(at) {
            steps.push(step);
            if at == 0 || parent >= at {
                break;
            }
            at = parent;
        }
        let mut path = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Name(name) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                }
                Step::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        path
    }

    /// The 400 for `problem` at the element `node` (then `last`).
    fn refuse(&self, node: usize, last: Option<Step<'a>>, problem: &str) -> GatewayError {
        let name = self.spell(node, last);
        GatewayError::BadParameter {
            message: format!("{name}: {problem}"),
            name,
        }
    }
}

/// An object still to be walked.
struct Frame<'a> {
    object: &'a Map<String, Value>,
    node: usize,
    depth: usize,
    /// The object is (an item of) a `_` property: a primitive's id and extensions.
    primitive_extension: bool,
}

/// Refuses (400, naming the element) every shape of `body` that FHIR JSON forbids and that could
/// reach a panic of the FHIR JSON parser; see the module documentation for the rules.
pub fn check(body: &Value) -> Result<(), GatewayError> {
    let Value::Object(root) = body else {
        return Err(GatewayError::BadRequest(
            "the body must be a JSON object (a FHIR resource)".into(),
        ));
    };
    let root_name = root
        .get("resourceType")
        .and_then(Value::as_str)
        .filter(|t| is_type_name(t))
        .unwrap_or("Resource");
    let mut paths = Paths::new(root_name);
    let mut stack = vec![Frame {
        object: root,
        node: 0,
        depth: 1,
        primitive_extension: false,
    }];
    while let Some(frame) = stack.pop() {
        let Frame {
            object,
            node,
            depth,
            primitive_extension,
        } = frame;
        if object.is_empty() {
            return Err(paths.refuse(node, None, EMPTY_OBJECT));
        }
        for (key, value) in object {
            if !is_element_name(key) {
                return Err(paths.refuse(node, None, "a property's name is not a FHIR element name"));
            }
            let here = Some(Step::Name(key.as_str()));
            if primitive_extension && key != "id" && key != "extension" {
                return Err(paths.refuse(node, here, "a primitive's `_` object holds only `id` and `extension`"));
            }
            let underscore = key.starts_with('_');
            if key == "resourceType" && !value.is_string() {
                return Err(paths.refuse(node, here, "resourceType must be a string"));
            }
            match value {
                Value::Null => return Err(paths.refuse(node, here, NULL_VALUE)),
                Value::Bool(_) | Value::Number(_) | Value::String(_) => {
                    if underscore {
                        return Err(paths.refuse(
                            node,
                            here,
                            "a `_` property holds an object with `id` and `extension`",
                        ));
                    }
                    if key == "id" && value.as_str() == Some(FHIRBOLT_INVALID_MARKER) {
                        return Err(paths.refuse(node, here, "this is not an id"));
                    }
                }
                Value::Object(child) => {
                    if depth + 1 > MAX_DEPTH {
                        return Err(paths.refuse(node, here, TOO_DEEP));
                    }
                    let child_node = paths.child(node, Step::Name(key.as_str()));
                    stack.push(Frame {
                        object: child,
                        node: child_node,
                        depth: depth + 1,
                        primitive_extension: underscore,
                    });
                }
                Value::Array(items) => {
                    if items.is_empty() {
                        return Err(paths.refuse(node, here, EMPTY_ARRAY));
                    }
                    if depth + 1 > MAX_DEPTH {
                        return Err(paths.refuse(node, here, TOO_DEEP));
                    }
                    let plain = key.strip_prefix('_').unwrap_or(key);
                    let aligned = match counterpart(object, key) {
                        None => None,
                        Some(Value::Array(other)) if other.len() == items.len() => Some(other),
                        Some(_) => {
                            return Err(paths.refuse(
                                node,
                                here,
                                &format!("`{plain}` and `_{plain}` must be arrays of the same length"),
                            ));
                        }
                    };
                    let array_node = paths.child(node, Step::Name(key.as_str()));
                    for (i, item) in items.iter().enumerate() {
                        let at = Some(Step::Index(i));
                        match item {
                            Value::Null => {
                                let partnered = aligned.and_then(|o| o.get(i)).is_some_and(|p| !p.is_null());
                                if !partnered {
                                    return Err(paths.refuse(array_node, at, NULL_VALUE));
                                }
                            }
                            Value::Array(_) => {
                                return Err(paths.refuse(array_node, at, "an array must not hold arrays"));
                            }
                            Value::Object(child) => {
                                if depth + 2 > MAX_DEPTH {
                                    return Err(paths.refuse(array_node, at, TOO_DEEP));
                                }
                                let item_node = paths.child(array_node, Step::Index(i));
                                stack.push(Frame {
                                    object: child,
                                    node: item_node,
                                    depth: depth + 2,
                                    primitive_extension: underscore,
                                });
                            }
                            Value::Bool(_) | Value::Number(_) | Value::String(_) => {
                                if underscore {
                                    return Err(paths.refuse(
                                        array_node,
                                        at,
                                        "the items of a `_` array are objects with `id` and `extension`, or null",
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// True when objects and arrays in `value` nest more than `max` deep (walked with an explicit
/// stack, so a deep value cannot overflow this one).
pub fn deeper_than(value: &Value, max: usize) -> bool {
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        if depth + 1 > max {
            return true;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}

/// [`check`]s `body`, then parses it as the FHIR R4 resource it is. `what` names the expected
/// resource in the refusal of a body that is not one (`Appointment`, `Parameters resource`).
pub fn parse(body: &Value, what: &str) -> Result<Resource, GatewayError> {
    check(body)?;
    let text = body.to_string();
    let parsed = catch_unwind(AssertUnwindSafe(|| -> Option<Resource> {
        let resource: Resource = fhirbolt::json::from_str(&text, None).ok()?;
        // What fhirbolt reads but cannot write back would fail only when answered (a 500).
        fhirbolt::json::to_json_value(resource.clone(), None).ok()?;
        Some(resource)
    }));
    let not_fhir = || GatewayError::BadRequest(format!("the body is not a valid FHIR R4 {what}"));
    match parsed {
        Ok(Some(resource)) => Ok(resource),
        Ok(None) => Err(not_fhir()),
        Err(_) => {
            tracing::warn!("the FHIR JSON parser panicked on a request body that passed the checks");
            Err(not_fhir())
        }
    }
}

/// The other half of a primitive written in two properties (`given` and `_given`).
fn counterpart<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    match key.strip_prefix('_') {
        Some(plain) => object.get(plain),
        None => object.get(&format!("_{key}")),
    }
}

/// `name`, `_birthDate`, `valueString`: an optional `_`, a letter, then letters and digits.
fn is_element_name(key: &str) -> bool {
    let name = key.strip_prefix('_').unwrap_or(key);
    name.len() <= MAX_NAME_LEN
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `Appointment`: an upper-case letter, then letters and digits.
fn is_type_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && name.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn depth_is_measured_without_recursion() {
        // Built by hand: `json!` would serialise the inner value recursively.
        let mut deep = json!(1);
        for _ in 0..10_000 {
            let mut object = Map::new();
            object.insert("a".into(), Value::Array(vec![deep]));
            deep = Value::Object(object);
        }
        assert!(deeper_than(&deep, MAX_DEPTH));
        assert!(!deeper_than(&json!({"a": {"b": [1, {"c": 2}]}}), 4));
        assert!(deeper_than(&json!({"a": {"b": [1, {"c": 2}]}}), 3));
        // serde_json drops deep values recursively: take it apart by hand.
        let mut stack = vec![deep];
        while let Some(mut v) = stack.pop() {
            if let Some(m) = v.as_object_mut() {
                stack.extend(std::mem::take(m).into_iter().map(|(_, v)| v));
            } else if let Some(a) = v.as_array_mut() {
                stack.append(a);
            }
        }
    }

    fn refused_at(body: Value) -> String {
        match check(&body) {
            Err(GatewayError::BadParameter { name, message }) => {
                assert!(message.starts_with(&name), "{message}");
                name
            }
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn empty_arrays_are_refused_by_element() {
        assert_eq!(
            refused_at(json!({"resourceType": "Parameters", "parameter": []})),
            "Parameters.parameter"
        );
        assert_eq!(
            refused_at(json!({"resourceType": "Appointment", "status": "booked", "participant": []})),
            "Appointment.participant"
        );
        assert_eq!(
            refused_at(json!({"resourceType": "Appointment", "_start": {"extension": []}})),
            "Appointment._start.extension"
        );
        assert_eq!(
            refused_at(json!({"resourceType": "Parameters", "parameter": [{"name": "a"}, {"name": "b", "part": []}]})),
            "Parameters.parameter[1].part"
        );
    }

    #[test]
    fn nulls_only_where_a_primitive_array_is_aligned() {
        let ok = json!({"resourceType": "Patient", "name": [{"given": ["a", null], "_given": [null, {"id": "x"}]}]});
        assert!(check(&ok).is_ok());
        assert_eq!(
            refused_at(json!({"resourceType": "Patient", "gender": null})),
            "Patient.gender"
        );
        assert_eq!(
            refused_at(json!({"resourceType": "Patient", "name": [{"given": [null]}]})),
            "Patient.name[0].given[0]"
        );
        assert_eq!(
            refused_at(json!({"resourceType": "Patient", "name": [{"given": [null], "_given": [null]}]})),
            "Patient.name[0].given[0]"
        );
        assert_eq!(
            refused_at(json!({"resourceType": "Patient", "name": [{"given": ["a"], "_given": [null, {"id": "x"}]}]})),
            "Patient.name[0].given"
        );
    }

    #[test]
    fn other_forbidden_shapes() {
        assert_eq!(
            refused_at(json!({"resourceType": "Patient", "meta": {}})),
            "Patient.meta"
        );
        assert_eq!(
            refused_at(json!({"resourceType": "Patient", "_gender": {"value": "x"}})),
            "Patient._gender.value"
        );
        assert_eq!(
            refused_at(json!({"resourceType": "Patient", "_gender": "x"})),
            "Patient._gender"
        );
        assert_eq!(refused_at(json!({"resourceType": "Patient", "a b": 1})), "Patient");
        assert_eq!(
            refused_at(json!({"resourceType": "Patient", "name": [[]]})),
            "Patient.name[0]"
        );
        assert_eq!(
            refused_at(json!({"resourceType": "Patient", "id": "$invalid"})),
            "Patient.id"
        );
        assert_eq!(
            refused_at(json!({"resourceType": ["Patient"]})),
            "Resource.resourceType"
        );
        assert!(matches!(check(&json!([])), Err(GatewayError::BadRequest(_))));
        assert!(matches!(check(&json!(null)), Err(GatewayError::BadRequest(_))));
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        // `json!` would serialize an embedded Value (recursively): wrap by hand.
        fn wrap(inner: Value) -> Value {
            let mut map = Map::new();
            map.insert("extension".into(), Value::Array(vec![inner]));
            Value::Object(map)
        }
        let mut deep = json!({"url": "x"});
        for _ in 0..10_000 {
            deep = wrap(deep);
        }
        let mut body = wrap(deep);
        body["resourceType"] = json!("Patient");
        assert!(matches!(check(&body), Err(GatewayError::BadParameter { .. })));
        // Dropping a Value this deep recurses too: take it apart iteratively.
        let mut stack = vec![body];
        while let Some(mut v) = stack.pop() {
            match &mut v {
                Value::Array(items) => stack.append(items),
                Value::Object(map) => stack.extend(map.values_mut().map(std::mem::take)),
                _ => {}
            }
        }
        let mut shallow = json!({"url": "x"});
        for _ in 0..(MAX_DEPTH / 2 - 1) {
            shallow = wrap(shallow);
        }
        shallow["resourceType"] = json!("Patient");
        assert!(check(&shallow).is_ok(), "{shallow}");
        let too_deep = wrap(wrap(shallow));
        assert!(check(&too_deep).is_err());
    }

    #[test]
    fn valid_resources_pass_and_parse() {
        let appointment = json!({"resourceType": "Appointment", "id": "a-1", "status": "booked",
            "start": "2026-06-15T10:00:00Z", "_start": {"extension": [{"url": "urn:x", "valueString": "y"}]},
            "participant": [{"status": "accepted", "actor": {"reference": "Patient/p-1"}}]});
        assert!(parse(&appointment, "Appointment").is_ok());
        let parameters = json!({"resourceType": "Parameters", "parameter": [{"name": "template", "part": [
            {"name": "title", "valueString": "Plan"}]}, {"name": "n", "valueDecimal": 1.5}]});
        assert!(parse(&parameters, "Parameters resource").is_ok());
    }

    #[test]
    fn what_fhirbolt_cannot_write_back_is_refused() {
        let parameters = json!({"resourceType": "Parameters", "parameter": [{"name": "n", "valueDecimal": "abc"}]});
        assert!(matches!(
            parse(&parameters, "Parameters resource"),
            Err(GatewayError::BadRequest(_))
        ));
    }
}
