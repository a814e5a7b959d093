//! Parses FHIR search query parameters into an [`adapter::SearchRequest`] plus the result
//! parameters (`_count`, `_sort`, `_include`, ...), following `Prefer: handling`.

use adapter::ResourceType;
use adapter::search::{
    DateRange, DateValue, Modifier, Prefix, ReferenceValue, SearchParam, SearchRequest, SearchValue, TokenValue,
};
use chrono_tz::Tz;

use crate::error::{GatewayError, Issue, IssueCode, Severity};
use crate::params::{self, ParamKind};

/// `_summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    True,
    False,
    Text,
    Data,
    Count,
}

/// `_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    None,
    Estimate,
    Accurate,
}

/// One `_sort` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortSpec {
    pub param: &'static str,
    pub descending: bool,
}

/// `_include` / `_revinclude` relation: (source type, reference parameter, target type).
pub type Relation = (ResourceType, &'static str, ResourceType);

/// The result-shaping parameters of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultParams {
    pub count: u32,
    pub sort: Vec<SortSpec>,
    pub include: Vec<Relation>,
    pub revinclude: Vec<Relation>,
    pub summary: Option<Summary>,
    pub elements: Vec<String>,
    pub total: Total,
}

/// A fully parsed search.
#[derive(Debug, Clone)]
pub struct ParsedSearch {
    pub resource_type: ResourceType,
    pub request: SearchRequest,
    pub result: ResultParams,
    /// Issues to report in the Bundle (ignored parameters under lenient handling).
    pub warnings: Vec<Issue>,
    /// The canonical form of the query (used in `self` links and bound into paging links).
    pub canonical: Vec<(String, String)>,
}

/// Server limits and defaults for `_count`.
#[derive(Debug, Clone, Copy)]
pub struct CountLimits {
    pub default: u32,
    pub max: u32,
}

/// Parameters that shape the HTTP exchange rather than the search.
const TRANSPORT: &[&str] = &["_format", "_pretty"];

/// `[limits]`: how much one request may ask for. Each is checked before any work is done for the
/// request, and going over is answered with an OperationOutcome naming the parameter (never its
/// value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The largest body of a create, update, patch, operation or webhook, in bytes (then 413).
    pub max_body_bytes: usize,
    /// The largest `POST /fhir/{type}/_search` form body, in bytes (then 413).
    pub max_search_body_bytes: usize,
    /// The longest URL query, in bytes as sent (then 414). A `_cursor` paging link is not counted:
    /// the gateway minted it (and checks its signature before anything else).
    pub max_query_bytes: usize,
    /// The most header bytes (names and values) a request may carry (then 431).
    pub max_header_bytes: usize,
    /// The most query (and `_search` form) parameters (then 400).
    pub max_params: usize,
    /// The longest parameter name or value, in characters (then 400; `_cursor` excepted).
    pub max_value_len: usize,
    /// The most `_sort` keys, over every `_sort` parameter (then 400).
    pub max_sort_keys: usize,
    /// The most `_include` and `_revinclude` parameters together (then 400).
    pub max_includes: usize,
    /// The most `_elements` names, over every `_elements` parameter (then 400).
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_search_body_bytes: 64 * 1024,
            max_query_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_params: 100,
            max_value_len: 2000,
            max_sort_keys: 8,
            max_includes: 10,
            max_elements: 50,
        }
    }
}

/// Longer than `max` characters (counting only when the bytes could be).
fn longer_than(text: &str, max: usize) -> bool {
    text.len() > max && text.chars().count() > max
}

/// Checks the query (and `_search` form) pairs of a request against `limits` before they are
/// parsed: how many parameters, how long each name and value, how many `_sort` keys, includes and
/// `_elements` names.
pub fn check_limits(pairs: &[(String, String)], limits: &Limits) -> Result<(), GatewayError> {
    if pairs.len() > limits.max_params {
        return Err(GatewayError::TooCostly {
            name: None,
            message: format!("the request has more than {} parameters", limits.max_params),
        });
    }
    let (mut sort_keys, mut includes, mut elements) = (0usize, 0usize, 0usize);
    for (key, value) in pairs {
        if longer_than(key, limits.max_value_len) {
            return Err(GatewayError::ValueTooLong {
                name: None,
                message: format!("a parameter name is longer than {} characters", limits.max_value_len),
            });
        }
        // A paging link is checked by its signature; its length follows from the search it carries.
        if key != "_cursor" && longer_than(value, limits.max_value_len) {
            return Err(GatewayError::ValueTooLong {
                name: Some(key.clone()),
                message: format!(
                    "the value of '{key}' is longer than {} characters",
                    limits.max_value_len
                ),
            });
        }
        let name = key.split_once(':').map_or(key.as_str(), |(n, _)| n);
        match name {
            "_sort" => {
                sort_keys += value.split(',').filter(|s| !s.is_empty()).count();
                if sort_keys > limits.max_sort_keys {
                    return Err(GatewayError::TooCostly {
                        name: Some("_sort".into()),
                        message: format!("_sort takes at most {} keys", limits.max_sort_keys),
                    });
                }
            }
            "_include" | "_revinclude" => {
                includes += 1;
                if includes > limits.max_includes {
                    return Err(GatewayError::TooCostly {
                        name: Some(name.to_owned()),
                        message: format!(
                            "a search takes at most {} _include and _revinclude parameters together",
                            limits.max_includes
                        ),
                    });
                }
            }
            "_elements" => {
                elements += value.split(',').filter(|s| !s.trim().is_empty()).count();
                if elements > limits.max_elements {
                    return Err(GatewayError::TooCostly {
                        name: Some("_elements".into()),
                        message: format!("_elements takes at most {} names", limits.max_elements),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks the length of a URL's raw query (as sent, percent-encoded), leaving out `_cursor`
/// paging links (see [`Limits::max_query_bytes`]).
pub fn check_query_len(raw: &str, limits: &Limits) -> Result<(), GatewayError> {
    if raw.len() <= limits.max_query_bytes {
        return Ok(());
    }
    let counted: usize = raw
        .split('&')
        .filter(|part| !part.starts_with("_cursor="))
        .map(|part| part.len() + 1)
        .sum();
    if counted.saturating_sub(1) > limits.max_query_bytes {
        return Err(GatewayError::UriTooLong(format!(
            "the URL query is longer than {} bytes",
            limits.max_query_bytes
        )));
    }
    Ok(())
}

/// Checks the total size of a request's headers, names and values (see [`Limits::max_header_bytes`]).
pub fn check_headers(headers: &axum::http::HeaderMap, limits: &Limits) -> Result<(), GatewayError> {
    let total: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if total > limits.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge(format!(
            "the request headers are larger than {} bytes",
            limits.max_header_bytes
        )));
    }
    Ok(())
}

/// Parses query pairs for a search on `resource_type`.
pub fn parse(
    resource_type: ResourceType,
    pairs: &[(String, String)],
    strict: bool,
    limits: CountLimits,
    tz: Tz,
    base_url: &str,
) -> Result<ParsedSearch, GatewayError> {
    let mut request = SearchRequest {
        resource_type: Some(resource_type),
        params: Vec::new(),
    };
    let mut result = ResultParams {
        count: limits.default,
        sort: Vec::new(),
        include: Vec::new(),
        revinclude: Vec::new(),
        summary: None,
        elements: Vec::new(),
        total: Total::None,
    };
    let mut warnings = Vec::new();
    let mut canonical = Vec::new();
    let ignore = |name: &str, why: String, warnings: &mut Vec<Issue>| -> Result<(), GatewayError> {
        if strict {
            Err(GatewayError::BadParameter {
                name: name.to_owned(),
                message: why,
            })
        } else {
            warnings.push(
                Issue::new(
                    Severity::Warning,
                    IssueCode::NotSupported,
                    format!("{why}; it was ignored"),
                )
                .at(name),
            );
            Ok(())
        }
    };

    for (key, value) in pairs {
        if TRANSPORT.contains(&key.as_str()) {
            continue;
        }
        let bad = |message: String| GatewayError::BadParameter {
            name: key.clone(),
            message,
        };
        match key.as_str() {
            "_count" => {
                let n: u32 = value
                    .parse()
                    .map_err(|_| bad(format!("_count must be a non-negative integer, not '{value}'")))?;
                result.count = n.min(limits.max);
            }
            "_sort" => {
                for item in value.split(',').filter(|s| !s.is_empty()) {
                    let (descending, name) = match item.strip_prefix('-') {
                        Some(n) => (true, n),
                        None => (false, item),
                    };
                    let def = params::find(resource_type, name)
                        .ok_or_else(|| bad(format!("cannot sort {resource_type} by '{name}'")))?;
                    result.sort.push(SortSpec {
                        param: def.name,
                        descending,
                    });
                }
            }
            "_include" | "_revinclude" => {
                let table = if key == "_include" {
                    params::INCLUDES
                } else {
                    params::REVINCLUDES
                };
                let found = value.split_once(':').and_then(|(src, name)| {
                    let (name, target) = match name.split_once(':') {
                        Some((n, t)) => (n, Some(t)),
                        None => (name, None),
                    };
                    table
                        .iter()
                        .find(|(s, n, t)| s.as_str() == src && *n == name && target.is_none_or(|x| x == t.as_str()))
                });
                let fits = |rel: &&Relation| {
                    if key == "_include" {
                        rel.0 == resource_type
                    } else {
                        rel.2 == resource_type
                    }
                };
                match found.filter(fits) {
                    Some(rel) if key == "_include" => result.include.push(*rel),
                    Some(rel) => result.revinclude.push(*rel),
                    None => {
                        ignore(
                            key,
                            format!("{key}={value} is not supported on {resource_type}"),
                            &mut warnings,
                        )?;
                        continue;
                    }
                }
            }
            "_summary" => result.summary = Some(summary_param(value)?),
            "_elements" => result.elements.extend(parse_elements(value)),
            "_total" => {
                result.total = match value.as_str() {
                    "none" => Total::None,
                    "estimate" => Total::Estimate,
                    "accurate" => Total::Accurate,
                    _ => return Err(bad("_total must be one of none, estimate, accurate".into())),
                };
            }
            _ => {
                let (name, modifier_text) = match key.split_once(':') {
                    Some((n, m)) => (n, Some(m)),
                    None => (key.as_str(), None),
                };
                let Some(def) = params::find(resource_type, name) else {
                    ignore(
                        key,
                        format!("the search parameter '{name}' is not supported on {resource_type}"),
                        &mut warnings,
                    )?;
                    continue;
                };
                let modifier = match modifier_text {
                    None => None,
                    Some(m) => {
                        let parsed = match m {
                            "exact" => Some(Modifier::Exact),
                            "contains" => Some(Modifier::Contains),
                            "missing" => Some(Modifier::Missing),
                            "not" => Some(Modifier::Not),
                            _ => None,
                        };
                        match parsed.filter(|m| def.kind.allows(*m)) {
                            Some(m) => Some(m),
                            // A typed reference (`patient:Patient=...`) is the same as no modifier.
                            None if def.kind == ParamKind::Reference && m.parse::<ResourceType>().is_ok() => None,
                            None => {
                                return Err(bad(format!(
                                    "the modifier ':{m}' is not supported on the {} parameter '{name}'",
                                    def.kind.code()
                                )));
                            }
                        }
                    }
                };
                let values = parse_values(def, modifier, value, tz, base_url).map_err(bad)?;
                request.params.push(SearchParam {
                    name: def.name.to_owned(),
                    modifier,
                    values,
                });
            }
        }
        canonical.push((key.clone(), value.clone()));
    }
    Ok(ParsedSearch {
        resource_type,
        request,
        result,
        warnings,
        canonical,
    })
}

/// Parses a `_summary` value.
pub fn parse_summary(value: &str) -> Option<Summary> {
    Some(match value {
        "true" => Summary::True,
        "false" => Summary::False,
        "text" => Summary::Text,
        "data" => Summary::Data,
        "count" => Summary::Count,
        _ => return None,
    })
}

/// Parses a `_summary` value, or says what it may be (400 naming `_summary`); searches and reads
/// accept the same values.
pub fn summary_param(value: &str) -> Result<Summary, GatewayError> {
    parse_summary(value).ok_or_else(|| GatewayError::BadParameter {
        name: "_summary".into(),
        message: "_summary must be one of true, false, text, data, count".into(),
    })
}

/// The element names of one `_elements` value: comma-separated, trimmed, blanks skipped.
pub fn parse_elements(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Splits on commas not escaped with a backslash, unescaping `\,` `\|` `\$` `\\`.
fn split_values(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => cur.push(n),
                None => cur.push('\\'),
            },
            ',' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn parse_values(
    def: &params::ParamDef,
    modifier: Option<Modifier>,
    raw: &str,
    tz: Tz,
    base_url: &str,
) -> Result<Vec<SearchValue>, String> {
    if modifier == Some(Modifier::Missing) {
        return match raw {
            "true" => Ok(vec![SearchValue::Missing(true)]),
            "false" => Ok(vec![SearchValue::Missing(false)]),
            _ => Err(":missing takes true or false".into()),
        };
    }
    let mut out = Vec::new();
    for v in split_values(raw) {
        if v.is_empty() {
            return Err("empty search value".into());
        }
        out.push(match def.kind {
            ParamKind::String => SearchValue::String(v),
            ParamKind::Token => {
                let (system, code) = match v.split_once('|') {
                    Some((s, c)) => (Some(s.to_owned()), (!c.is_empty()).then(|| c.to_owned())),
                    None => (None, Some(v.clone())),
                };
                SearchValue::Token(TokenValue { system, code })
            }
            ParamKind::Date => {
                let (prefix, rest) = Prefix::split(&v);
                let range =
                    DateRange::parse(rest, tz).map_err(|_| format!("'{v}' is not a valid FHIR date search value"))?;
                SearchValue::Date(DateValue { prefix, range })
            }
            ParamKind::Reference => {
                let local = v
                    .strip_prefix(base_url)
                    .map(|rest| rest.trim_start_matches('/'))
                    .unwrap_or(&v);
                let (ty, id) = match params::parse_reference(local) {
                    Some((ty, id)) if !local.contains("://") => {
                        let t = ty
                            .parse::<ResourceType>()
                            .map_err(|_| format!("'{ty}' is not a resource type served here"))?;
                        (Some(t), id)
                    }
                    Some(_) => return Err(format!("'{v}' is a reference to another server")),
                    // A bare id of a parameter with one target type names that type: `patient=
                    // drchrono-1` is `patient=Patient/drchrono-1`, one search (and one cache key).
                    None => (
                        match def.targets {
                            [only] => Some(*only),
                            _ => None,
                        },
                        local,
                    ),
                };
                if !adapter::id::is_valid_fhir_id(id) {
                    return Err(format!("'{id}' is not a valid FHIR id"));
                }
                SearchValue::Reference(ReferenceValue {
                    resource_type: ty,
                    id: id.to_owned(),
                })
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: CountLimits = CountLimits { default: 20, max: 100 };
    const BASE: &str = "http://localhost:8080/fhir";

    fn q(t: ResourceType, pairs: &[(&str, &str)], strict: bool) -> Result<ParsedSearch, GatewayError> {
        let pairs: Vec<_> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse(t, &pairs, strict, LIMITS, Tz::UTC, BASE)
    }

    #[test]
    fn parses_values_of_every_kind() {
        let p = q(
            ResourceType::Appointment,
            &[
                ("date", "ge2024-01-01"),
                ("date", "lt2024-02"),
                ("patient", "Patient/drchrono-1,drchrono-2"),
                ("status", "booked,noshow"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(p.request.params.len(), 4);
        assert_eq!(p.request.params[2].values.len(), 2);
        let SearchValue::Reference(r) = &p.request.params[2].values[0] else {
            panic!()
        };
        assert_eq!(
            (r.resource_type, r.id.as_str()),
            (Some(ResourceType::Patient), "drchrono-1")
        );
        // A bare id of a parameter with one target type gets that type (one search, one cache
        // key); a parameter with several targets (`actor`) leaves it open.
        let SearchValue::Reference(r) = &p.request.params[2].values[1] else {
            panic!()
        };
        assert_eq!(
            (r.resource_type, r.id.as_str()),
            (Some(ResourceType::Patient), "drchrono-2")
        );
        let actor = q(ResourceType::Appointment, &[("actor", "drchrono-3")], true).unwrap();
        let SearchValue::Reference(r) = &actor.request.params[0].values[0] else {
            panic!()
        };
        assert_eq!((r.resource_type, r.id.as_str()), (None, "drchrono-3"));
        let abs = q(
            ResourceType::Appointment,
            &[("patient", "http://localhost:8080/fhir/Patient/drchrono-9")],
            true,
        )
        .unwrap();
        let SearchValue::Reference(r) = &abs.request.params[0].values[0] else {
            panic!()
        };
        assert_eq!(r.id, "drchrono-9");
        let t = q(ResourceType::Patient, &[("identifier", "urn:a|b\\,c")], true).unwrap();
        assert_eq!(
            t.request.params[0].values,
            vec![SearchValue::Token(TokenValue {
                system: Some("urn:a".into()),
                code: Some("b,c".into())
            })]
        );
    }

    #[test]
    fn result_parameters() {
        let p = q(
            ResourceType::Appointment,
            &[
                ("_count", "500"),
                ("_sort", "-date,status"),
                ("_include", "Appointment:patient"),
                ("_summary", "count"),
                ("_total", "accurate"),
                ("_elements", "status, start"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(p.result.count, 100);
        assert_eq!(
            p.result.sort,
            vec![
                SortSpec {
                    param: "date",
                    descending: true
                },
                SortSpec {
                    param: "status",
                    descending: false
                }
            ]
        );
        assert_eq!(
            p.result.include,
            vec![(ResourceType::Appointment, "patient", ResourceType::Patient)]
        );
        assert_eq!(p.result.summary, Some(Summary::Count));
        assert_eq!(p.result.total, Total::Accurate);
        assert_eq!(p.result.elements, vec!["status", "start"]);
        let r = q(ResourceType::Patient, &[("_revinclude", "Appointment:patient")], true).unwrap();
        assert_eq!(r.result.revinclude.len(), 1);
    }

    #[test]
    fn unknown_parameters_follow_handling() {
        let lenient = q(ResourceType::Patient, &[("shoe-size", "9"), ("family", "x")], false).unwrap();
        assert_eq!(lenient.warnings.len(), 1);
        assert_eq!(lenient.request.params.len(), 1);
        assert!(matches!(
            q(ResourceType::Patient, &[("shoe-size", "9")], true),
            Err(GatewayError::BadParameter { .. })
        ));
        assert!(q(ResourceType::Patient, &[("_include", "Appointment:patient")], true).is_err());
        assert_eq!(
            q(ResourceType::Patient, &[("_include", "Appointment:patient")], false)
                .unwrap()
                .warnings
                .len(),
            1
        );
    }

    #[test]
    fn malformed_values_are_errors_in_any_handling() {
        for (k, v) in [
            ("birthdate", "yesterday"),
            ("_count", "-1"),
            ("_count", "ten"),
            ("family:fuzzy", "x"),
            ("gender:exact", "male"),
            ("birthdate:missing", "maybe"),
            ("_summary", "yes"),
            ("_total", "all"),
            ("_sort", "shoe"),
            ("general-practitioner", "x"),
        ] {
            let r = q(ResourceType::Patient, &[(k, v)], false);
            if k == "general-practitioner" {
                assert!(r.is_ok());
            } else {
                assert!(matches!(r, Err(GatewayError::BadParameter { .. })), "{k}={v}");
            }
        }
        assert!(q(ResourceType::Appointment, &[("patient", "Patient/a b")], false).is_err());
        assert!(
            q(
                ResourceType::Appointment,
                &[("patient", "https://other.example/fhir/Patient/1")],
                false
            )
            .is_err()
        );
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const SMALL: Limits = Limits {
        max_body_bytes: 1024,
        max_search_body_bytes: 256,
        max_query_bytes: 40,
        max_header_bytes: 100,
        max_params: 4,
        max_value_len: 20,
        max_sort_keys: 2,
        max_includes: 2,
        max_elements: 3,
    };

    #[test]
    fn each_limit_is_a_400_outcome_naming_the_parameter_not_its_value() {
        use axum::http::StatusCode;
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
        let cases: &[Case] = &[
            (
                &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")],
                None,
                "too-costly",
            ),
            (&[("family", "secret-value-of-a-patient")], Some("family"), "too-long"),
            (&[("family", "ąąąąąąąąąąąąąąąąąąąąą")], Some("family"), "too-long"),
            (&[("a-parameter-name-too-long", "x")], None, "too-long"),
            (&[("_sort", "date,status,name")], Some("_sort"), "too-costly"),
            (
                &[("_sort", "date"), ("_sort", "-status,name")],
                Some("_sort"),
                "too-costly",
            ),
            (
                &[("_include", "A:b"), ("_revinclude", "C:d"), ("_include:iterate", "E:f")],
                Some("_include"),
                "too-costly",
            ),
            (
                &[("_revinclude", "A:b"), ("_include", "C:d"), ("_revinclude", "E:f")],
                Some("_revinclude"),
                "too-costly",
            ),
            (
                &[("_elements", "a,b"), ("_elements", "c,d")],
                Some("_elements"),
                "too-costly",
            ),
        ];
        for (pairs, name, code) in cases {
            let e = check_limits(&owned(pairs), &SMALL).expect_err(&format!("{pairs:?}"));
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{pairs:?}");
            let outcome = crate::error::operation_outcome(&[e.issue()]);
            let issue = &outcome["issue"][0];
            assert_eq!(issue["code"], *code, "{pairs:?}");
            match name {
                Some(n) => assert_eq!(issue["expression"][0], *n, "{pairs:?}"),
                None => assert!(issue.get("expression").is_none(), "{pairs:?}"),
            }
            let diagnostics = issue["diagnostics"].as_str().unwrap();
            assert!(
                !diagnostics.contains("secret-value") && !diagnostics.contains('ą'),
                "{diagnostics}"
            );
        }
    }

    #[test]
    fn within_the_limits_everything_passes() {
        let within: &[&[(&str, &str)]] = &[
            &[
                ("_sort", "date,-status"),
                ("_include", "A:b"),
                ("_revinclude", "C:d"),
                ("_elements", "a, b,c"),
            ],
            // Characters, not bytes.
            &[("family", "ąąąąąąąąąąąąąąąąąąąą")],
            // A paging link the gateway minted is checked by its signature, not its length.
            &[("_cursor", "eyJ0IjoiUGF0aWVudCIsInEiOltdfQ.c2lnbmF0dXJl")],
            &[],
        ];
        for pairs in within {
            assert!(check_limits(&owned(pairs), &SMALL).is_ok(), "{pairs:?}");
        }
        // The defaults are generous enough for ordinary searches.
        let ordinary = owned(&[
            ("patient", "Patient/drchrono-17"),
            ("date", "ge2026-06-01"),
            ("_sort", "-date"),
            ("_include", "Appointment:patient"),
            ("_count", "100"),
        ]);
        assert!(check_limits(&ordinary, &Limits::default()).is_ok());
    }

    #[test]
    fn a_long_query_is_414_but_a_paging_link_is_not_counted() {
        use axum::http::StatusCode;
        assert!(check_query_len("family=smith&_count=10", &SMALL).is_ok());
        let e = check_query_len(&format!("family={}", "x".repeat(40)), &SMALL).unwrap_err();
        assert_eq!(e.status(), StatusCode::URI_TOO_LONG);
        assert_eq!(e.issue().code, IssueCode::TooLong);
        assert!(!e.to_string().contains("xxx"));
        let cursor = format!("_cursor={}", "c".repeat(500));
        assert!(check_query_len(&format!("{cursor}&_pretty=true"), &SMALL).is_ok());
        assert!(check_query_len(&format!("_format=json&{cursor}"), &SMALL).is_ok());
        assert!(check_query_len(&format!("{cursor}&family={}", "x".repeat(40)), &SMALL).is_err());
    }

    #[test]
    fn large_headers_are_431() {
        use axum::http::{HeaderMap, HeaderValue, StatusCode};
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("application/fhir+json"));
        assert!(check_headers(&headers, &SMALL).is_ok());
        headers.insert("x-big", HeaderValue::from_str(&"v".repeat(100)).unwrap());
        let e = check_headers(&headers, &SMALL).unwrap_err();
        assert_eq!(e.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(e.issue().code, IssueCode::TooLong);
        assert!(check_headers(&headers, &Limits::default()).is_ok());
    }
}
