//! What describes the server rather than serves records: the CapabilityStatement, the root page,
//! `/healthz`, `/readyz` and `/metrics`, and the 404 and 405 answers for what is not served.

use adapter::{Interaction, ResourceType};
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use super::request::FhirRequest;
use super::response::fhir_response;
use super::{AppState, Shared};
use crate::capability;
use crate::error::GatewayError;

/// `GET /fhir/metadata`: the CapabilityStatement, with the SMART endpoints when configured.
pub(super) async fn metadata(State(state): State<Shared>, req: FhirRequest) -> Result<Response, GatewayError> {
    req.negotiate()?;
    let mut cs =
        capability::capability_statement(&state.engine.sources, &state.fhir_base, state.limits, &state.started);
    if let Some(auth) = &state.auth {
        cs["rest"][0]["security"] = capability::smart_security(&auth.smart_configuration());
    }
    if state.auditor.is_some()
        && let Some(resources) = cs["rest"][0]["resource"].as_array_mut()
    {
        resources.push(capability::audit_event());
    }
    Ok(fhir_response(StatusCode::OK, &cs, req.pretty()))
}

/// `GET /`: a page of links for a person with a browser.
pub(super) async fn root(State(state): State<Shared>) -> Html<String> {
    Html(format!(
        "<!doctype html><title>FHIR facade gateway</title><h1>FHIR facade gateway</h1>\
         <ul><li>FHIR base: <a href=\"{b}/metadata\">{b}</a></li><li><a href=\"/docs/\">API docs</a></li>\
         <li><a href=\"/openapi.json\">OpenAPI</a></li></ul>",
        b = state.fhir_base
    ))
}

/// `GET /healthz`: the process is serving.
pub(super) async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#)
}

/// `GET /readyz`: every vendor answers its check within [`AppState::ready_timeout`], else 503
/// naming the ones that do not.
pub(super) async fn readyz(State(state): State<Shared>) -> Response {
    let checks = futures::future::join_all(state.engine.sources.all().iter().map(|a| async {
        let r = tokio::time::timeout(state.ready_timeout, a.check()).await;
        let status = match r {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        (a.source(), status)
    }))
    .await;
    let ready = checks.iter().all(|(_, s)| s == "ok");
    let sources: serde_json::Map<String, Value> = checks.into_iter().map(|(k, v)| (k.to_owned(), json!(v))).collect();
    let body = json!({"status": if ready { "ready" } else { "not ready" }, "sources": sources});
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `GET /metrics`: Prometheus text (requests, vendor calls, caches, vendor health).
pub(super) async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    if !state.caches.is_empty() {
        text.push_str(&crate::cache::render_metrics(&state.caches));
    }
    let health: Vec<_> = state
        .engine
        .sources
        .all()
        .iter()
        .filter_map(|a| a.health().map(|h| (a.source(), h)))
        .collect();
    if !health.is_empty() {
        text.push_str(&crate::metrics::render_health(&health));
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

/// Anything no route serves.
pub(super) async fn not_found(uri: axum::http::Uri) -> GatewayError {
    GatewayError::NotFound(format!("nothing is served at {}", uri.path()))
}

/// `/fhir/metadata` with another method than GET.
pub(super) async fn method_not_allowed_metadata(method: Method) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: "/fhir/metadata".into(),
        allow: "GET".into(),
    }
}

/// `/fhir/{type}` with a method it does not take.
pub(super) async fn method_not_allowed_type(
    State(state): State<Shared>,
    method: Method,
    Path(ty): Path<String>,
) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: format!("/fhir/{ty}"),
        allow: allowed(&state, &ty, None),
    }
}

/// `/fhir/{type}/_search` with another method than POST.
pub(super) async fn method_not_allowed_search(method: Method, Path(ty): Path<String>) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: format!("/fhir/{ty}/_search"),
        allow: "POST".into(),
    }
}

/// `/fhir/{type}/{id}` with a method it does not take.
pub(super) async fn method_not_allowed_instance(
    State(state): State<Shared>,
    method: Method,
    Path((ty, id)): Path<(String, String)>,
) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: format!("/fhir/{ty}/{{id}}"),
        allow: allowed(&state, &ty, Some(&id)),
    }
}

/// The methods a type or instance URL answers, from what the sources declare.
fn allowed(state: &AppState, ty: &str, id: Option<&str>) -> String {
    let Ok(t) = ty.parse::<ResourceType>() else {
        return "GET".into();
    };
    let sources: Vec<_> = match id.and_then(|id| adapter::FhirId::parse(id).ok()) {
        Some(fid) => state.engine.sources.by_source(fid.source()).into_iter().collect(),
        None => state.engine.sources.all().iter().collect(),
    };
    let has = |i: Interaction| sources.iter().any(|a| a.capabilities().supports(t, i));
    let mut methods = vec!["GET"];
    match id {
        None => {
            if has(Interaction::SearchType) || has(Interaction::Create) {
                methods.push("POST");
            }
        }
        Some(_) => {
            if has(Interaction::Update) {
                methods.push("PUT");
            }
            if has(Interaction::Patch) {
                methods.push("PATCH");
            }
        }
    }
    methods.join(", ")
}
