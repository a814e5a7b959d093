//! Lenient field deserializers for vendor JSON (`#[serde(deserialize_with = "...")]`), for vendors
//! whose documents are vague about types or whose payloads drift:
//!
//! - text takes a string (kept byte for byte), `null` (→ `""`), a number or a boolean (→ its JSON
//!   text), or an array/object (→ its compact JSON text), so nothing the vendor sent is silently
//!   dropped;
//! - integers take a number (an integral float too) or a string of digits; `null` and `""` are
//!   absent. A string that is no integer is an error: guessing could attach a record to the wrong
//!   patient;
//! - booleans take `true`/`false`, `null` (→ absent), `0`/`1` and the strings `"true"`/`"false"`
//!   (any case), `"1"`/`"0"` and `""` (→ `false`);
//! - lists take `null` as empty; nested objects take `null` and `""` as absent.
//!
//! Error messages name the kind of value expected, never the value.

use serde::de::{DeserializeOwned, Error};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Any JSON value as text: `null` → `""`, strings verbatim, scalars → their JSON text, arrays and
/// objects → compact JSON.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(value_text(Value::deserialize(d)?))
}

/// A JSON value as text, as [`text`] reads it.
pub fn value_text(v: Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// An integer from a number or a string of digits; `null`/`""` → `None`.
pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    value_int(Value::deserialize(d)?).map_err(D::Error::custom)
}

/// An integer; absent (`null`/`""`) gives `0`.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(opt_int(d)?.unwrap_or(0))
}

/// A JSON value as an integer, as [`opt_int`] reads it; the error says what was wrong.
pub fn value_int(v: Value) -> Result<Option<i64>, &'static str> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            _ => Err(NOT_AN_INTEGER),
        },
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s.trim().parse().map(Some).map_err(|_| NOT_AN_INTEGER),
        _ => Err(NOT_AN_INTEGER),
    }
}

const NOT_AN_INTEGER: &str = "an integer field is not an integer";

/// A boolean; `null` → `false`.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(opt_flag(d)?.unwrap_or(false))
}

/// A boolean; `null` → `None`.
pub fn opt_flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            _ => Err(D::Error::custom("a boolean is a number other than 0 or 1")),
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" | "" => Ok(Some(false)),
            _ => Err(D::Error::custom("a boolean is an unrecognised string")),
        },
        _ => Err(D::Error::custom("a boolean is an array or an object")),
    }
}

/// A list of objects; `null` → empty.
pub fn list<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        v @ Value::Array(_) => serde_json::from_value(v).map_err(D::Error::custom),
        _ => Err(D::Error::custom("a list is not an array")),
    }
}

/// A nested object; `null` and `""` → `None`.
pub fn opt_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        v @ Value::Object(_) => serde_json::from_value(v).map(Some).map_err(D::Error::custom),
        _ => Err(D::Error::custom("a nested object is not an object")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default)]
    struct Nested {
        #[serde(deserialize_with = "text")]
        name: String,
    }

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default)]
    struct Record {
        #[serde(deserialize_with = "text")]
        text: String,
        #[serde(deserialize_with = "opt_int")]
        opt_int: Option<i64>,
        #[serde(deserialize_with = "int")]
        int: i64,
        #[serde(deserialize_with = "flag")]
        flag: bool,
        #[serde(deserialize_with = "opt_flag")]
        opt_flag: Option<bool>,
        #[serde(deserialize_with = "list")]
        list: Vec<Nested>,
        #[serde(deserialize_with = "opt_object")]
        object: Option<Nested>,
    }

    fn read(v: Value) -> Result<Record, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn nulls_blanks_and_missing_keys_give_defaults() {
        let r = read(json!({
            "text": null, "opt_int": "", "int": null, "flag": null, "opt_flag": null, "list": null,
            "object": ""
        }))
        .unwrap();
        assert_eq!(r, Record::default());
        assert_eq!(read(json!({})).unwrap(), Record::default());
        assert_eq!(read(json!({"object": null})).unwrap().object, None);
    }

    #[test]
    fn text_fields_keep_scalars_as_text() {
        for (input, expected) in [
            (json!(" a\tb "), " a\tb "),
            (json!(10001), "10001"),
            (json!(1.5), "1.5"),
            (json!(true), "true"),
            (json!(["a", 1]), r#"["a",1]"#),
            (json!({"k": null}), r#"{"k":null}"#),
        ] {
            assert_eq!(read(json!({ "text": input })).unwrap().text, expected, "{input}");
        }
    }

    #[test]
    fn integers_are_numbers_or_strings_of_digits() {
        for (input, expected) in [
            (json!(1234), Some(1234)),
            (json!("45"), Some(45)),
            (json!(" 7 "), Some(7)),
            (json!(30.0), Some(30)),
            (json!(-2), Some(-2)),
        ] {
            assert_eq!(read(json!({ "opt_int": input })).unwrap().opt_int, expected, "{input}");
        }
        assert_eq!(read(json!({"int": "12"})).unwrap().int, 12);
        for bad in [json!("bob"), json!(1.5), json!(true), json!([1]), json!(1e300)] {
            assert!(read(json!({ "opt_int": bad })).is_err(), "{bad}");
        }
        assert_eq!(value_int(json!("x")), Err(NOT_AN_INTEGER));
    }

    #[test]
    fn booleans_are_lenient_but_not_careless() {
        for (input, expected) in [
            (json!(true), true),
            (json!("True"), true),
            (json!("1"), true),
            (json!(1), true),
            (json!(false), false),
            (json!(""), false),
            (json!(" FALSE "), false),
            (json!(0), false),
            (json!(null), false),
        ] {
            assert_eq!(read(json!({ "flag": input })).unwrap().flag, expected, "{input}");
        }
        assert_eq!(read(json!({"opt_flag": "0"})).unwrap().opt_flag, Some(false));
        for bad in [json!("maybe"), json!(2), json!([]), json!({})] {
            assert!(read(json!({ "flag": bad })).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_and_nested_objects_accept_null_and_blank_but_not_other_shapes() {
        let r = read(json!({"list": [{"name": "a"}, {}], "object": {"name": 5}})).unwrap();
        assert_eq!(r.list, [Nested { name: "a".into() }, Nested::default()]);
        assert_eq!(r.object, Some(Nested { name: "5".into() }));
        assert!(read(json!({"list": "a"})).is_err());
        assert!(read(json!({"list": {}})).is_err());
        assert!(read(json!({"object": "x"})).is_err());
        assert!(read(json!({"object": []})).is_err());
    }
}
