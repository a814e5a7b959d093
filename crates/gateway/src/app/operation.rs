//! Operations: `POST /fhir/{type}/{id}/${name}`, and the OperationDefinitions that describe them
//! (`GET /fhir/OperationDefinition` and `/fhir/OperationDefinition/{id}`, outside the token gate).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::Shared;
use super::request::{FHIR_BODY, FhirRequest, json_body};
use super::response::fhir_response;
use crate::access::Caller;
use crate::error::GatewayError;
use crate::operations;

/// `POST /fhir/{type}/{id}/${operation}`.
pub(super) async fn operation(
    State(state): State<Shared>,
    Path((ty, id, op)): Path<(String, String, String)>,
    req: FhirRequest,
    caller: Caller,
    body: Bytes,
) -> Result<Response, GatewayError> {
    req.negotiate()?;
    let t = req.resource_type(&ty)?;
    let Some(name) = op.strip_prefix('$') else {
        return Err(GatewayError::NotFound(format!(
            "nothing is served at /fhir/{ty}/{id}/{op}"
        )));
    };
    let input = if body.is_empty() {
        None
    } else {
        Some(json_body(&req.headers, &body, FHIR_BODY)?)
    };
    let out = crate::write::operation(&state.engine, t, &id, name, input, req.ctx(&caller)).await?;
    match out.accepted {
        None => Ok(fhir_response(StatusCode::OK, &out.body, req.pretty())),
        Some(follow) => {
            let mut response = fhir_response(StatusCode::ACCEPTED, &out.body, req.pretty());
            if let Some(location) = follow.and_then(|f| HeaderValue::from_str(&format!("{}/{f}", state.fhir_base)).ok())
            {
                response.headers_mut().insert(header::CONTENT_LOCATION, location);
            }
            Ok(response)
        }
    }
}

/// `GET /fhir/OperationDefinition/{id}`: the definition of an operation a source declares.
pub(super) async fn operation_definition(
    State(state): State<Shared>,
    Path(id): Path<String>,
    req: FhirRequest,
) -> Result<Response, GatewayError> {
    req.negotiate()?;
    let definition = operations::find(&state.engine.sources, &state.fhir_base, &id)
        .ok_or_else(|| GatewayError::NotFound(format!("OperationDefinition/{id} is not known")))?;
    Ok(fhir_response(StatusCode::OK, &definition, req.pretty()))
}

/// `GET /fhir/OperationDefinition`: every operation's definition, one page.
pub(super) async fn operation_definitions(
    State(state): State<Shared>,
    req: FhirRequest,
) -> Result<Response, GatewayError> {
    req.negotiate()?;
    let entries: Vec<Value> = operations::declared(&state.engine.sources)
        .iter()
        .map(|(t, op)| {
            let resource = operations::definition(&state.fhir_base, *t, op);
            json!({"fullUrl": resource["url"], "resource": resource, "search": {"mode": "match"}})
        })
        .collect();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "link": [{"relation": "self", "url": format!("{}/OperationDefinition", state.fhir_base)}],
        "entry": entries,
    });
    Ok(fhir_response(StatusCode::OK, &bundle, req.pretty()))
}
