//! Writes: `POST /fhir/{type}` (create), `PUT /fhir/{type}/{id}` (update) and `PATCH /fhir/{type}/{id}`
//! (JSON Patch), each handed to [`crate::write`] for the source that takes it.

use adapter::Interaction;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::Shared;
use super::request::{FHIR_BODY, FhirRequest, json_body};
use super::response::fhir_response;
use crate::access::Caller;
use crate::error::GatewayError;

/// `POST /fhir/{type}`: create at the source that takes this type.
pub(super) async fn create(
    State(state): State<Shared>,
    Path(ty): Path<String>,
    req: FhirRequest,
    caller: Caller,
    body: Bytes,
) -> Result<Response, GatewayError> {
    req.negotiate()?;
    let t = req.resource_type(&ty)?;
    let body = json_body(&req.headers, &body, FHIR_BODY)?;
    let created = crate::write::create(&state.engine, t, body, req.ctx(&caller)).await?;
    let id = created.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
    let mut resp = fhir_response(StatusCode::CREATED, &created, req.pretty());
    if let Ok(location) = HeaderValue::from_str(&format!("{}/{}/{}", state.fhir_base, t, id)) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    Ok(resp)
}

/// `PUT /fhir/{type}/{id}`.
pub(super) async fn update(
    State(state): State<Shared>,
    Path((ty, id)): Path<(String, String)>,
    req: FhirRequest,
    caller: Caller,
    body: Bytes,
) -> Result<Response, GatewayError> {
    req.negotiate()?;
    let t = req.resource_type(&ty)?;
    crate::write::writable(&state.engine, t, &id, Interaction::Update)?;
    let body = json_body(&req.headers, &body, FHIR_BODY)?;
    let updated = crate::write::update(&state.engine, t, &id, body, req.ctx(&caller)).await?;
    Ok(fhir_response(StatusCode::OK, &updated, req.pretty()))
}

/// `PATCH /fhir/{type}/{id}` with `application/json-patch+json`.
pub(super) async fn patch(
    State(state): State<Shared>,
    Path((ty, id)): Path<(String, String)>,
    req: FhirRequest,
    caller: Caller,
    body: Bytes,
) -> Result<Response, GatewayError> {
    req.negotiate()?;
    let t = req.resource_type(&ty)?;
    crate::write::writable(&state.engine, t, &id, Interaction::Patch)?;
    let body = json_body(&req.headers, &body, &["application/json-patch+json"])?;
    let updated = crate::write::patch(&state.engine, t, &id, body, req.ctx(&caller)).await?;
    Ok(fhir_response(StatusCode::OK, &updated, req.pretty()))
}
