//! The FHIR search parameters the gateway serves per type, and how each one is evaluated on a
//! resource (the gateway filters everything a vendor could not filter itself).
//!
//! Resources are evaluated in their FHIR JSON form (as fhirbolt serialises them): each parameter
//! names the element paths it reads, the same way the FHIR spec's search expressions do.

use adapter::ResourceType;
use adapter::search::{DateRange, Modifier, Prefix, ReferenceValue, SearchParam, SearchValue, TokenValue};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

/// The FHIR search parameter types the gateway implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    String,
    Token,
    Date,
    Reference,
}

impl ParamKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Token => "token",
            Self::Date => "date",
            Self::Reference => "reference",
        }
    }

    /// The modifiers the gateway supports for this kind.
    pub fn allows(self, modifier: Modifier) -> bool {
        match modifier {
            Modifier::Missing => true,
            Modifier::Exact | Modifier::Contains => self == Self::String,
            Modifier::Not => self == Self::Token,
        }
    }
}

/// One search parameter of one resource type.
#[derive(Debug, Clone, Copy)]
pub struct ParamDef {
    pub name: &'static str,
    pub kind: ParamKind,
    /// Element paths (dot-separated, arrays flattened) the parameter reads.
    pub paths: &'static [&'static str],
    /// For reference parameters: the target types (empty = any).
    pub targets: &'static [ResourceType],
    /// For ContactPoint tokens: only contact points of this `system`.
    pub contact_system: Option<&'static str>,
    pub description: &'static str,
}

const fn p(name: &'static str, kind: ParamKind, paths: &'static [&'static str], description: &'static str) -> ParamDef {
    ParamDef {
        name,
        kind,
        paths,
        targets: &[],
        contact_system: None,
        description,
    }
}

const fn r(
    name: &'static str,
    paths: &'static [&'static str],
    targets: &'static [ResourceType],
    description: &'static str,
) -> ParamDef {
    ParamDef {
        name,
        kind: ParamKind::Reference,
        paths,
        targets,
        contact_system: None,
        description,
    }
}

const fn c(name: &'static str, system: Option<&'static str>, description: &'static str) -> ParamDef {
    ParamDef {
        name,
        kind: ParamKind::Token,
        paths: &["telecom"],
        targets: &[],
        contact_system: system,
        description,
    }
}

use ParamKind::{Date, String as Str, Token};
use ResourceType as T;

/// Parameters every type has.
pub const COMMON: &[ParamDef] = &[
    p("_id", Token, &["id"], "Logical id of the resource"),
    p(
        "_lastUpdated",
        Date,
        &["meta.lastUpdated"],
        "When the resource last changed at its source",
    ),
];

const PATIENT: &[ParamDef] = &[
    p(
        "identifier",
        Token,
        &["identifier"],
        "A patient identifier (system|value)",
    ),
    p("name", Str, &["name"], "Any part of a name"),
    p("family", Str, &["name.family"], "Family name"),
    p("given", Str, &["name.given"], "Given name"),
    p("birthdate", Date, &["birthDate"], "Date of birth"),
    p("gender", Token, &["gender"], "Administrative gender"),
    c("email", Some("email"), "An email address"),
    c("phone", Some("phone"), "A phone number"),
    c("telecom", None, "Any contact point value"),
];

const PRACTITIONER: &[ParamDef] = &[
    p(
        "identifier",
        Token,
        &["identifier"],
        "A practitioner identifier, e.g. the NPI",
    ),
    p("name", Str, &["name"], "Any part of a name"),
    p("family", Str, &["name.family"], "Family name"),
    p("given", Str, &["name.given"], "Given name"),
];

const LOCATION: &[ParamDef] = &[p("name", Str, &["name", "alias"], "Name or alias of the location")];

const APPOINTMENT: &[ParamDef] = &[
    p("identifier", Token, &["identifier"], "An appointment identifier"),
    p("date", Date, &["start"], "Appointment start"),
    r(
        "patient",
        &["participant.actor"],
        &[T::Patient],
        "A patient taking part",
    ),
    r(
        "practitioner",
        &["participant.actor"],
        &[T::Practitioner],
        "A practitioner taking part",
    ),
    r("actor", &["participant.actor"], &[], "Any participant"),
    r(
        "location",
        &["participant.actor"],
        &[T::Location],
        "The location of the appointment",
    ),
    p("status", Token, &["status"], "Appointment status"),
];

const ENCOUNTER: &[ParamDef] = &[
    p("identifier", Token, &["identifier"], "An encounter identifier"),
    p("date", Date, &["period"], "A date within the encounter's period"),
    r("patient", &["subject"], &[T::Patient], "The patient"),
    r(
        "practitioner",
        &["participant.individual"],
        &[T::Practitioner],
        "A practitioner taking part",
    ),
    p("status", Token, &["status"], "Encounter status"),
    r(
        "appointment",
        &["appointment"],
        &[T::Appointment],
        "The appointment the encounter fulfils",
    ),
];

const DOCUMENT_REFERENCE: &[ParamDef] = &[
    p(
        "identifier",
        Token,
        &["identifier", "masterIdentifier"],
        "A document identifier",
    ),
    r(
        "patient",
        &["subject"],
        &[T::Patient],
        "The patient the document is about",
    ),
    r("subject", &["subject"], &[], "Who or what the document is about"),
    p("date", Date, &["date"], "When the document reference was created"),
    p(
        "period",
        Date,
        &["context.period"],
        "The time of the service documented",
    ),
    p("status", Token, &["status"], "current | superseded | entered-in-error"),
    p("type", Token, &["type"], "Kind of document (LOINC)"),
    p("category", Token, &["category"], "Categorization of the document"),
    r("author", &["author"], &[], "Who wrote the document"),
    r(
        "encounter",
        &["context.encounter"],
        &[T::Encounter],
        "The encounter the document belongs to",
    ),
];

const SCHEDULE: &[ParamDef] = &[
    p("identifier", Token, &["identifier"], "A schedule identifier"),
    r("actor", &["actor"], &[], "Whose availability the schedule holds"),
    p("active", Token, &["active"], "Whether the schedule is in use"),
    p("date", Date, &["planningHorizon"], "A date within the planning horizon"),
];

const SLOT: &[ParamDef] = &[
    p("identifier", Token, &["identifier"], "A slot identifier"),
    r(
        "schedule",
        &["schedule"],
        &[T::Schedule],
        "The schedule the slot belongs to",
    ),
    p("start", Date, &["start"], "Slot start"),
    p(
        "status",
        Token,
        &["status"],
        "busy | free | busy-unavailable | busy-tentative | entered-in-error",
    ),
];

/// The type-specific parameters of `resource_type` (without [`COMMON`]).
pub fn for_type(resource_type: ResourceType) -> &'static [ParamDef] {
    match resource_type {
        T::Patient => PATIENT,
        T::Practitioner => PRACTITIONER,
        T::Location => LOCATION,
        T::Appointment => APPOINTMENT,
        T::Encounter => ENCOUNTER,
        T::DocumentReference => DOCUMENT_REFERENCE,
        T::Schedule => SCHEDULE,
        T::Slot => SLOT,
    }
}

/// Looks a parameter up by name (common or type-specific).
pub fn find(resource_type: ResourceType, name: &str) -> Option<&'static ParamDef> {
    COMMON.iter().chain(for_type(resource_type)).find(|d| d.name == name)
}

/// The `_include`/`_revinclude` relations the gateway serves: (source type, parameter, target).
pub const INCLUDES: &[(ResourceType, &str, ResourceType)] = &[
    (T::Appointment, "patient", T::Patient),
    (T::Appointment, "practitioner", T::Practitioner),
    (T::Appointment, "location", T::Location),
    (T::DocumentReference, "subject", T::Patient),
    (T::DocumentReference, "author", T::Practitioner),
    (T::Encounter, "patient", T::Patient),
    (T::Encounter, "appointment", T::Appointment),
    (T::Slot, "schedule", T::Schedule),
];

/// The `_revinclude` relations: (referring type, parameter, referenced type).
pub const REVINCLUDES: &[(ResourceType, &str, ResourceType)] = &[
    (T::Appointment, "patient", T::Patient),
    (T::DocumentReference, "subject", T::Patient),
];

// ---------------------------------------------------------------------------------------------
// Evaluation

/// Collects the elements at a dotted path (arrays are flattened at every step).
pub fn select<'a>(resource: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![resource];
    for step in path.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v.get(step) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(Value::Null) | None => {}
                Some(other) => next.push(other),
            }
        }
        current = next;
    }
    current
}

fn elements<'a>(def: &ParamDef, resource: &'a Value) -> Vec<&'a Value> {
    let mut out: Vec<&Value> = def.paths.iter().flat_map(|p| select(resource, p)).collect();
    if let Some(system) = def.contact_system {
        out.retain(|e| e.get("system").and_then(Value::as_str) == Some(system));
    }
    out
}

/// True when `resource` satisfies one (ANDed) parameter.
pub fn matches(def: &ParamDef, param: &SearchParam, resource: &Value, tz: Tz) -> bool {
    let elems = elements(def, resource);
    if param.modifier == Some(Modifier::Missing) {
        return param.values.iter().any(|v| match v {
            SearchValue::Missing(missing) => elems.is_empty() == *missing,
            _ => false,
        });
    }
    let any = |v: &SearchValue| elems.iter().any(|e| element_matches(def, param.modifier, v, e, tz));
    if param.modifier == Some(Modifier::Not) {
        !param.values.iter().any(any)
    } else {
        param.values.iter().any(any)
    }
}

fn element_matches(def: &ParamDef, modifier: Option<Modifier>, value: &SearchValue, elem: &Value, tz: Tz) -> bool {
    match value {
        SearchValue::String(s) => string_matches(modifier, s, elem),
        SearchValue::Token(t) => token_matches(t, elem, def.paths == ["telecom"]),
        SearchValue::Date(d) => element_range(elem, tz).is_some_and(|r| r.matches(d.prefix, &d.range)),
        SearchValue::Reference(rv) => reference_matches(def, rv, elem),
        SearchValue::Missing(_) => false,
    }
}

/// Folds case and accents, as FHIR string search does by default.
pub fn fold(s: &str) -> String {
    s.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

fn strings_of(elem: &Value) -> Vec<&str> {
    match elem {
        Value::String(s) => vec![s.as_str()],
        Value::Object(map) => {
            let mut out = Vec::new();
            for key in [
                "text",
                "family",
                "given",
                "prefix",
                "suffix",
                "line",
                "city",
                "district",
                "state",
                "postalCode",
                "country",
            ] {
                match map.get(key) {
                    Some(Value::String(s)) => out.push(s.as_str()),
                    Some(Value::Array(items)) => out.extend(items.iter().filter_map(Value::as_str)),
                    _ => {}
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

fn string_matches(modifier: Option<Modifier>, wanted: &str, elem: &Value) -> bool {
    let candidates = strings_of(elem);
    match modifier {
        Some(Modifier::Exact) => candidates.contains(&wanted),
        Some(Modifier::Contains) => {
            let w = fold(wanted);
            candidates.iter().any(|c| fold(c).contains(&w))
        }
        _ => {
            let w = fold(wanted);
            // FHIR: the value matches the start of the string, or of any word in it.
            candidates.iter().any(|c| {
                let f = fold(c);
                f.starts_with(&w)
                    || f.split([' ', '-']).any(|word| word.starts_with(&w))
                    || f.split([' ', '-', '\'']).any(|part| part.starts_with(&w))
            })
        }
    }
}

fn token_matches(t: &TokenValue, elem: &Value, contact_point: bool) -> bool {
    let code_eq = |candidate: Option<&str>| match (&t.code, candidate) {
        (None, _) => true,
        (Some(want), Some(have)) if contact_point => normalise_contact(want) == normalise_contact(have),
        (Some(want), Some(have)) => want == have,
        (Some(_), None) => false,
    };
    let system_eq = |candidate: Option<&str>| match t.system.as_deref() {
        None => true,
        Some("") => candidate.is_none(),
        Some(want) => candidate == Some(want),
    };
    match elem {
        Value::String(s) => t.system.as_deref().is_none_or(|s| !s.is_empty()) && code_eq(Some(s)),
        Value::Bool(b) => t.system.is_none() && code_eq(Some(if *b { "true" } else { "false" })),
        Value::Object(map) => {
            if let Some(Value::Array(codings)) = map.get("coding") {
                return codings.iter().any(|c| token_matches(t, c, false));
            }
            if contact_point {
                return code_eq(map.get("value").and_then(Value::as_str));
            }
            let system = map.get("system").and_then(Value::as_str);
            let code = map.get("code").or_else(|| map.get("value")).and_then(Value::as_str);
            code.is_some() && system_eq(system) && code_eq(code)
        }
        _ => false,
    }
}

fn normalise_contact(s: &str) -> String {
    if s.contains('@') {
        s.trim().to_lowercase()
    } else {
        s.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect()
    }
}

/// Splits a reference string into (type, id): `Patient/drchrono-1`, or an absolute URL ending so.
pub fn parse_reference(reference: &str) -> Option<(&str, &str)> {
    let mut parts = reference.rsplit('/');
    let id = parts.next()?;
    let ty = parts.next()?;
    (!id.is_empty() && !ty.is_empty()).then_some((ty, id))
}

fn reference_matches(def: &ParamDef, rv: &ReferenceValue, elem: &Value) -> bool {
    let Some(reference) = elem.get("reference").and_then(Value::as_str) else {
        return false;
    };
    let Some((ty, id)) = parse_reference(reference) else {
        return false;
    };
    if !def.targets.is_empty() && !def.targets.iter().any(|t| t.as_str() == ty) {
        return false;
    }
    id == rv.id && rv.resource_type.is_none_or(|t| t.as_str() == ty)
}

/// The instant range a date-ish element covers (a date, dateTime, instant, or Period).
pub fn element_range(elem: &Value, tz: Tz) -> Option<DateRange> {
    match elem {
        Value::String(s) => DateRange::parse(s, tz).ok(),
        Value::Object(map) => {
            let start = map
                .get("start")
                .and_then(Value::as_str)
                .map(|s| DateRange::parse(s, tz));
            let end = map.get("end").and_then(Value::as_str).map(|s| DateRange::parse(s, tz));
            if start.is_none() && end.is_none() {
                return None;
            }
            Some(DateRange {
                start: match start {
                    Some(r) => r.ok()?.start,
                    None => DateTime::<Utc>::MIN_UTC,
                },
                end: match end {
                    Some(r) => r.ok()?.end,
                    None => DateTime::<Utc>::MAX_UTC,
                },
            })
        }
        _ => None,
    }
}

/// A value to sort by, taken from the first element a parameter selects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortKey {
    /// Missing values sort last in ascending order.
    Missing,
    Instant(DateTime<Utc>),
    Text(String),
}

/// The sort key of `resource` for parameter `def`.
pub fn sort_key(def: &ParamDef, resource: &Value, tz: Tz) -> SortKey {
    let elems = elements(def, resource);
    let Some(first) = elems.first() else {
        return SortKey::Missing;
    };
    match def.kind {
        ParamKind::Date => element_range(first, tz).map_or(SortKey::Missing, |r| SortKey::Instant(r.start)),
        ParamKind::String => strings_of(first)
            .first()
            .map_or(SortKey::Missing, |s| SortKey::Text(fold(s))),
        ParamKind::Token => match first {
            Value::String(s) => SortKey::Text(s.clone()),
            Value::Object(m) => m
                .get("value")
                .or_else(|| m.get("code"))
                .and_then(Value::as_str)
                .map_or(SortKey::Missing, |s| SortKey::Text(s.to_owned())),
            _ => SortKey::Missing,
        },
        ParamKind::Reference => first
            .get("reference")
            .and_then(Value::as_str)
            .map_or(SortKey::Missing, |s| SortKey::Text(s.to_owned())),
    }
}

/// True when `prefix` is meaningful for a parameter kind (only dates take prefixes here).
pub fn prefix_allowed(kind: ParamKind, prefix: Prefix) -> bool {
    kind == ParamKind::Date || prefix == Prefix::Eq
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapter::search::DateValue;
    use serde_json::json;

    fn param(name: &str, modifier: Option<Modifier>, values: Vec<SearchValue>) -> SearchParam {
        SearchParam {
            name: name.into(),
            modifier,
            values,
        }
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient", "id": "drchrono-1",
            "meta": {"lastUpdated": "2024-05-01T10:00:00-04:00"},
            "identifier": [{"system": "urn:x", "value": "A1"}],
            "name": [{"family": "Núñez O'Brien", "given": ["María", "José"]}],
            "gender": "female", "birthDate": "1980-02-29",
            "telecom": [{"system": "email", "value": "Maria@Example.org"}, {"system": "phone", "value": "(555) 010-2000"}]
        })
    }

    fn check(name: &str, modifier: Option<Modifier>, values: Vec<SearchValue>) -> bool {
        let def = find(ResourceType::Patient, name).unwrap();
        matches(def, &param(name, modifier, values), &patient(), Tz::UTC)
    }

    fn s(v: &str) -> SearchValue {
        SearchValue::String(v.into())
    }

    fn tok(system: Option<&str>, code: Option<&str>) -> SearchValue {
        SearchValue::Token(TokenValue {
            system: system.map(Into::into),
            code: code.map(Into::into),
        })
    }

    #[test]
    fn strings_fold_case_and_accents_and_match_word_starts() {
        assert!(check("family", None, vec![s("nunez")]));
        assert!(!check("family", None, vec![s("obrien")]));
        assert!(check("family", None, vec![s("O'Br")]));
        assert!(check("family", None, vec![s("brien")]));
        assert!(!check("family", None, vec![s("unez")]));
        assert!(check("family", Some(Modifier::Contains), vec![s("UNEZ")]));
        assert!(check("family", Some(Modifier::Exact), vec![s("Núñez O'Brien")]));
        assert!(!check("family", Some(Modifier::Exact), vec![s("nunez o'brien")]));
        assert!(check("given", None, vec![s("jose")]));
        assert!(check("name", None, vec![s("xx"), s("maria")]));
    }

    #[test]
    fn tokens_match_systems_codes_and_contact_points() {
        assert!(check("gender", None, vec![tok(None, Some("female"))]));
        assert!(!check("gender", None, vec![tok(None, Some("male"))]));
        assert!(check("gender", Some(Modifier::Not), vec![tok(None, Some("male"))]));
        assert!(check("identifier", None, vec![tok(Some("urn:x"), Some("A1"))]));
        assert!(!check("identifier", None, vec![tok(Some("urn:y"), Some("A1"))]));
        assert!(check("identifier", None, vec![tok(Some("urn:x"), None)]));
        assert!(!check("identifier", None, vec![tok(Some(""), Some("A1"))]));
        assert!(check("email", None, vec![tok(None, Some("maria@example.org"))]));
        assert!(!check("email", None, vec![tok(None, Some("5550102000"))]));
        assert!(check("phone", None, vec![tok(None, Some("555-010-2000"))]));
        assert!(check("telecom", None, vec![tok(None, Some("5550102000"))]));
        assert!(check("_id", None, vec![tok(None, Some("drchrono-1"))]));
    }

    #[test]
    fn dates_and_missing() {
        let date = |prefix, v: &str| {
            SearchValue::Date(DateValue {
                prefix,
                range: DateRange::parse(v, Tz::UTC).unwrap(),
            })
        };
        assert!(check("birthdate", None, vec![date(Prefix::Eq, "1980-02-29")]));
        assert!(check("birthdate", None, vec![date(Prefix::Eq, "1980")]));
        assert!(!check("birthdate", None, vec![date(Prefix::Gt, "1980-02-29")]));
        assert!(check("birthdate", None, vec![date(Prefix::Lt, "1980-03")]));
        assert!(check(
            "_lastUpdated",
            None,
            vec![date(Prefix::Ge, "2024-05-01T13:59:00Z")]
        ));
        assert!(!check(
            "_lastUpdated",
            None,
            vec![date(Prefix::Gt, "2024-05-01T14:00:00Z")]
        ));
        assert!(check(
            "birthdate",
            Some(Modifier::Missing),
            vec![SearchValue::Missing(false)]
        ));
        assert!(!check(
            "birthdate",
            Some(Modifier::Missing),
            vec![SearchValue::Missing(true)]
        ));
    }

    #[test]
    fn references_respect_target_types() {
        let appt = json!({"resourceType": "Appointment", "participant": [
            {"actor": {"reference": "Patient/drchrono-1"}}, {"actor": {"reference": "Practitioner/drchrono-2"}}]});
        let rv = |t: Option<ResourceType>, id: &str| {
            SearchValue::Reference(ReferenceValue {
                resource_type: t,
                id: id.into(),
            })
        };
        let m = |name: &str, v| {
            matches(
                find(T::Appointment, name).unwrap(),
                &param(name, None, vec![v]),
                &appt,
                Tz::UTC,
            )
        };
        assert!(m("patient", rv(None, "drchrono-1")));
        assert!(!m("patient", rv(None, "drchrono-2")));
        assert!(m("practitioner", rv(Some(T::Practitioner), "drchrono-2")));
        assert!(m("actor", rv(None, "drchrono-2")));
        assert!(!m("actor", rv(Some(T::Patient), "drchrono-2")));
    }

    #[test]
    fn every_include_names_a_reference_parameter() {
        for (src, name, target) in INCLUDES.iter().chain(REVINCLUDES) {
            let def = find(*src, name).unwrap();
            assert_eq!(def.kind, ParamKind::Reference);
            assert!(def.targets.is_empty() || def.targets.contains(target));
        }
    }
}
