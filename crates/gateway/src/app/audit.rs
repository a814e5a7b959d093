//! The audit trail over FHIR: `GET /fhir/AuditEvent` (and `POST /fhir/AuditEvent/_search`), `GET
//! /fhir/AuditEvent/{id}`, for auditors only (a `system/AuditEvent` scope naming the type; never a
//! patient-facing token); and the middleware that records every `/fhir` interaction.

use adapter::search::{DateRange, Prefix};
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};

use axum::response::Response;
use smart_auth::scopes::{Context, Permission};
use store::AuditQuery;

use super::request::{FhirRequest, first, pairs};
use super::response::fhir_response;
use super::{AppState, Shared};
use crate::access::Caller;
use crate::audit::{self, RestEntry};
use crate::bundle::{self, Link};
use crate::error::GatewayError;
use crate::query;

/// Records every `/fhir` interaction but the public ones (CapabilityStatement, OperationDefinitions)
/// once it is answered: outside the token gate, so refused tokens are recorded too; the gate puts
/// the verified caller into the answer's extensions.
pub(super) async fn record<N, F>(state: &AppState, request: Request, next: N) -> Response
where
    N: FnOnce(Request) -> F,
    F: std::future::Future<Output = Response>,
{
    let Some(auditor) = &state.auditor else {
        return next(request).await;
    };
    let path = request.uri().path();
    if !path.starts_with("/fhir/") || super::middleware::public_fhir_path(path) {
        return next(request).await;
    }
    let at_ms = chrono::Utc::now().timestamp_millis();
    let method = request.method().clone();
    let path = path.to_owned();
    let query = request.uri().query().map(str::to_owned);
    let ip = audit::peer_ip(request.extensions());
    let response = next(request).await;
    auditor.record_rest(RestEntry {
        at_ms,
        method,
        path,
        query,
        status: response.status().as_u16(),
        caller: response.extensions().get::<Caller>().cloned(),
        ip,
    });
    response
}

/// The audit trail is for auditors: a token with a `system/AuditEvent` scope (a `*` scope does not
/// reach it) allowing `permission`, unconstrained, that speaks for no patient. Without an
/// authorization server (`--insecure-no-auth`, tests) anyone.
fn may_read(caller: &Caller, permission: Permission) -> Result<(), GatewayError> {
    let Caller::Token(grant) = caller else {
        return Ok(());
    };
    // A patient-facing token, or any token launched for a patient, is not an auditor's.
    if caller.patient_facing() || grant.patient_user().is_some() || grant.patient.is_some() {
        return Err(GatewayError::Forbidden(
            "the audit trail is not open to patient-facing tokens".to_owned(),
        ));
    }
    let allowed = grant.scopes.resource_scopes().any(|s| {
        s.context == Context::System
            && s.resource_type.as_deref() == Some("AuditEvent")
            && s.permissions.contains(permission)
            && s.constraint.is_empty()
    });
    if allowed {
        Ok(())
    } else {
        Err(GatewayError::Forbidden(format!(
            "reading the audit trail needs the scope system/AuditEvent.{}",
            if permission == Permission::Read { "r" } else { "s" }
        )))
    }
}

/// `/fhir/AuditEvent…` with a method it does not take: the trail is written by the gateway alone.
pub(super) async fn not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> GatewayError {
    let path = uri.path();
    let (path, allow) = if path.ends_with("/_search") {
        ("/fhir/AuditEvent/_search", "POST")
    } else if path.trim_end_matches('/') == "/fhir/AuditEvent" {
        ("/fhir/AuditEvent", "GET")
    } else {
        ("/fhir/AuditEvent/{id}", "GET")
    };
    GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: path.to_owned(),
        allow: allow.to_owned(),
    }
}

fn store(state: &Shared) -> Result<&store::Store, GatewayError> {
    match (&state.auditor, &state.store) {
        (Some(_), Some(store)) => Ok(store),
        _ => Err(GatewayError::NotFound(
            "this gateway keeps no audit trail (no store, or audit.enabled = false)".to_owned(),
        )),
    }
}

/// `GET /fhir/AuditEvent/{id}`.
pub(super) async fn read(
    State(state): State<Shared>,
    Path(id): Path<String>,
    req: FhirRequest,
    caller: Caller,
) -> Result<Response, GatewayError> {
    query::check_limits(&req.pairs, &state.request_limits)?;
    req.negotiate()?;
    may_read(&caller, Permission::Read)?;
    let store = store(&state)?;
    let not_found = || GatewayError::NotFound(format!("AuditEvent/{id} is not known"));
    let n: i64 = id.parse().map_err(|_| not_found())?;
    let row = store
        .audit_get(n)
        .await
        .map_err(|e| GatewayError::Internal(format!("the audit trail could not be read: {e}")))?
        .ok_or_else(not_found)?;
    Ok(fhir_response(StatusCode::OK, &audit::resource_of(&row), req.pretty()))
}

/// `GET /fhir/AuditEvent`.
pub(super) async fn search_get(
    State(state): State<Shared>,
    req: FhirRequest,
    caller: Caller,
) -> Result<Response, GatewayError> {
    search(&state, req, caller).await
}

/// `POST /fhir/AuditEvent/_search`: the form's parameters after the URL's.
pub(super) async fn search_post(
    State(state): State<Shared>,
    mut req: FhirRequest,
    caller: Caller,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let form = std::str::from_utf8(&body).map_err(|_| GatewayError::BadRequest("the form is not UTF-8".into()))?;
    req.pairs.extend(pairs(Some(form)));
    search(&state, req, caller).await
}

/// The parameters `GET /fhir/AuditEvent` understands (besides `_count`, `_sort`, `_format`,
/// `_pretty` and its own paging position).
pub const SEARCH_PARAMS: &[&str] = &[
    "date", "patient", "entity", "agent", "type", "subtype", "action", "outcome",
];

/// Its paging position: `{recorded_ms}.{id}` of the last event of the previous page.
const AFTER: &str = "_after";

async fn search(state: &Shared, req: FhirRequest, caller: Caller) -> Result<Response, GatewayError> {
    query::check_limits(&req.pairs, &state.request_limits)?;
    req.negotiate()?;
    may_read(&caller, Permission::Search)?;
    let store = store(state)?;
    let q = parse(&req.pairs, state.limits, state.engine.tz)?;
    let rows = store
        .audit_search(&q)
        .await
        .map_err(|e| GatewayError::Internal(format!("the audit trail could not be searched: {e}")))?;
    let total = store
        .audit_count(&q)
        .await
        .map_err(|e| GatewayError::Internal(format!("the audit trail could not be searched: {e}")))?;
    let base = format!("{}/AuditEvent", state.fhir_base);
    let kept: Vec<(String, String)> = req.pairs.iter().filter(|(k, _)| k != AFTER).cloned().collect();
    let link = |extra: Option<String>| {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            ser.append_pair(k, v);
        }
        if let Some(after) = extra {
            ser.append_pair(AFTER, &after);
        }
        let qs = ser.finish();
        if qs.is_empty() {
            base.clone()
        } else {
            format!("{base}?{qs}")
        }
    };
    let mut links = vec![Link {
        relation: "self",
        url: link(first(&req.pairs, AFTER).map(str::to_owned)),
    }];
    if rows.len() == q.limit as usize
        && let Some(last) = rows.last()
    {
        links.push(Link {
            relation: "next",
            url: link(Some(format!("{}.{}", last.recorded_ms, last.id))),
        });
    }
    let body = bundle::searchset(bundle::Searchset {
        base_url: &state.fhir_base,
        matches: rows
            .iter()
            .map(|r| crate::doc::Served::Owned(audit::resource_of(r)))
            .collect(),
        included: Vec::new(),
        total: Some(usize::try_from(total).unwrap_or(usize::MAX)),
        links: &links,
        issues: &[],
        summary: None,
        elements: &[],
    });
    let mut response = fhir_response(StatusCode::OK, &body, req.pretty());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(response)
}

fn bad(name: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::BadParameter {
        name: name.to_owned(),
        message: message.into(),
    }
}

/// A reference parameter's values: `Patient/x`, or a bare id read as `default_type/x`.
fn references(value: &str, default_type: Option<&str>) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| match default_type {
            Some(t) if !v.contains('/') => format!("{t}/{v}"),
            _ => v.to_owned(),
        })
        .collect()
}

/// A token parameter's codes (`system|code` or `code`; the system is not stored, so not checked).
fn codes(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|v| v.rsplit('|').next().unwrap_or(v).trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

fn parse(
    pairs: &[(String, String)],
    limits: query::CountLimits,
    tz: chrono_tz::Tz,
) -> Result<AuditQuery, GatewayError> {
    let mut q = AuditQuery {
        newest_first: true,
        limit: limits.default,
        ..AuditQuery::default()
    };
    for (name, value) in pairs {
        match name.as_str() {
            "_format" | "_pretty" => {}
            "_count" => {
                let n: u32 = value.parse().map_err(|_| {
                    bad(
                        "_count",
                        format!("_count must be a non-negative integer, not '{value}'"),
                    )
                })?;
                q.limit = n.clamp(1, limits.max.min(1000));
            }
            "_sort" => match value.as_str() {
                "-date" => q.newest_first = true,
                "date" => q.newest_first = false,
                other => {
                    return Err(bad(
                        "_sort",
                        format!("AuditEvent sorts by date or -date, not '{other}'"),
                    ));
                }
            },
            AFTER => {
                let (ms, id) = value
                    .split_once('.')
                    .and_then(|(ms, id)| Some((ms.parse().ok()?, id.parse().ok()?)))
                    .ok_or_else(|| bad(AFTER, "not a paging position of this server"))?;
                q.after = Some((ms, id));
            }
            "date" => {
                let (prefix, raw) = Prefix::split(value);
                let range = DateRange::parse(raw, tz)
                    .map_err(|_| bad("date", format!("'{raw}' is not a FHIR date, dateTime or instant")))?;
                let (start, end) = (range.start.timestamp_millis(), range.end.timestamp_millis());
                let (from, to) = match prefix {
                    Prefix::Eq => (Some(start), Some(end)),
                    Prefix::Ge => (Some(start), None),
                    Prefix::Gt => (Some(end), None),
                    Prefix::Le => (None, Some(end)),
                    Prefix::Lt => (None, Some(start)),
                    _ => return Err(bad("date", "AuditEvent's date takes eq, ge, gt, le or lt")),
                };
                if let Some(f) = from {
                    q.from_ms = Some(q.from_ms.map_or(f, |x: i64| x.max(f)));
                }
                if let Some(t) = to {
                    q.to_ms = Some(q.to_ms.map_or(t, |x: i64| x.min(t)));
                }
            }
            "patient" => q.patient.extend(references(value, Some("Patient"))),
            "entity" => q.entity.extend(references(value, None)),
            "agent" => q.agent.extend(references(value, None)),
            "type" => q.type_code.extend(codes(value)),
            "subtype" => q.subtype.extend(codes(value)),
            "action" => q.action.extend(codes(value)),
            "outcome" => q.outcome.extend(codes(value)),
            other => {
                return Err(bad(
                    other,
                    format!(
                        "AuditEvent is searched by {} (and _count, _sort), not '{other}'",
                        SEARCH_PARAMS.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Result<AuditQuery, GatewayError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        parse(&pairs, query::CountLimits { default: 50, max: 500 }, chrono_tz::UTC)
    }

    #[test]
    fn search_parameters_become_a_store_query() {
        let q = p(&[
            ("date", "ge2026-12-01"),
            ("date", "lt2026-12-08"),
            ("patient", "drchrono-1,Patient/drchrono-2"),
            ("agent", "Practitioner/drchrono-7"),
            ("type", "http://terminology.hl7.org/CodeSystem/audit-event-type|rest"),
            ("outcome", "4,8"),
            ("_sort", "date"),
            ("_count", "10"),
        ])
        .unwrap();
        assert_eq!(q.from_ms, Some(1_796_083_200_000));
        assert_eq!(q.to_ms, Some(1_796_688_000_000));
        assert_eq!(q.patient, ["Patient/drchrono-1", "Patient/drchrono-2"]);
        assert_eq!(q.agent, ["Practitioner/drchrono-7"]);
        assert_eq!(q.type_code, ["rest"]);
        assert_eq!(q.outcome, ["4", "8"]);
        assert!(!q.newest_first);
        assert_eq!(q.limit, 10);
        assert!(p(&[]).unwrap().newest_first, "newest first by default");
    }

    #[test]
    fn bad_parameters_are_named() {
        for (name, value) in [
            ("date", "yesterday"),
            ("date", "ne2026-01-01"),
            ("_sort", "outcome"),
            ("family", "Nguyen"),
            ("_after", "x"),
            ("_count", "-1"),
        ] {
            match p(&[(name, value)]) {
                Err(GatewayError::BadParameter { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn only_system_audit_scopes_read_the_trail() {
        let system = Caller::token("auditor", "system/AuditEvent.rs", None, None);
        assert!(may_read(&system, Permission::Search).is_ok());
        assert!(may_read(&system, Permission::Read).is_ok());
        for (scopes, patient, user) in [
            ("system/*.rs", None, None),
            ("user/AuditEvent.rs", None, Some("Practitioner/drchrono-1")),
            ("patient/AuditEvent.rs", Some("drchrono-1"), None),
            ("system/AuditEvent.rs", None, Some("Patient/drchrono-1")),
            ("system/AuditEvent.rs?outcome=0", None, None),
            ("system/AuditEvent.rs patient/*.rs", Some("drchrono-1"), None),
        ] {
            let caller = Caller::token("app", scopes, patient, user);
            assert!(
                matches!(may_read(&caller, Permission::Search), Err(GatewayError::Forbidden(_))),
                "{scopes} {user:?}"
            );
        }
    }
}
