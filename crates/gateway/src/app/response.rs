//! What the FHIR handlers answer with: FHIR JSON, compact or `_pretty`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::format::FHIR_JSON;

/// Renders a FHIR JSON body.
pub(super) fn fhir_response(status: StatusCode, body: &Value, pretty: bool) -> Response {
    fhir_bytes(status, render(body, pretty))
}

/// Answers with FHIR JSON bytes rendered already.
pub(super) fn fhir_bytes(status: StatusCode, bytes: impl Into<axum::body::Body>) -> Response {
    let mut resp = (status, bytes.into()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

/// A FHIR JSON body's bytes.
pub(super) fn render(body: &Value, pretty: bool) -> Vec<u8> {
    if pretty {
        serde_json::to_vec_pretty(body)
    } else {
        serde_json::to_vec(body)
    }
    .unwrap_or_default()
}
