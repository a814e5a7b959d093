//! What every FHIR handler takes from its request: a [`FhirRequest`] (the query pairs and headers, and
//! the checks made on them) and the [`Caller`] the token gate established.

use std::convert::Infallible;

use adapter::ResourceType;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde_json::Value;

use super::Shared;
use crate::access::Caller;
use crate::engine::RequestCtx;
use crate::error::GatewayError;
use crate::format;

/// A FHIR request's query pairs (in order, duplicates kept) and headers, with the checks every FHIR
/// handler makes on them. Extracting it checks nothing: each handler calls [`Self::negotiate`] and
/// [`Self::resource_type`] where its order of checks puts them, since that order decides which error
/// a request with several problems gets (a read checks the parameter limits first; a write's body is
/// read, and its size limit enforced, before either).
pub(super) struct FhirRequest {
    /// The URL's query pairs (`POST _search` appends its form's).
    pub(super) pairs: Vec<(String, String)>,
    pub(super) headers: HeaderMap,
    state: Shared,
}

impl FhirRequest {
    /// The first value of the parameter `key`.
    pub(super) fn first(&self, key: &str) -> Option<&str> {
        first(&self.pairs, key)
    }

    /// `_format`, else `Accept`: JSON in any of its spellings, else 406.
    pub(super) fn negotiate(&self) -> Result<(), GatewayError> {
        format::negotiate(&self.headers, self.first("_format"))
    }

    /// The `{type}` path segment as a type some source serves, else 404 (unknown type).
    pub(super) fn resource_type(&self, name: &str) -> Result<ResourceType, GatewayError> {
        match name.parse::<ResourceType>() {
            Ok(t) if self.state.engine.sources.serves(t) => Ok(t),
            _ => Err(GatewayError::UnknownType(name.to_owned())),
        }
    }

    /// `_pretty=true`: the answer is indented.
    pub(super) fn pretty(&self) -> bool {
        self.first("_pretty") == Some("true")
    }

    /// `Prefer: handling=strict`: unknown parameters and failing sources fail the request instead of
    /// becoming warnings.
    pub(super) fn strict(&self) -> bool {
        self.headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([',', ';']))
            .any(|p| p.trim().replace(' ', "") == "handling=strict")
    }

    /// The engine's context for this request, run for `caller`.
    pub(super) fn ctx<'a>(&'a self, caller: &'a Caller) -> RequestCtx<'a> {
        RequestCtx {
            caller,
            policy: self.state.policy.as_ref(),
            strict: self.strict(),
        }
    }
}

impl FromRequestParts<Shared> for FhirRequest {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Self::Rejection> {
        Ok(Self {
            pairs: pairs(parts.uri.query()),
            headers: parts.headers.clone(),
            state: state.clone(),
        })
    }
}

/// The caller the token gate put into the request's extensions; [`Caller::Unauthenticated`] when
/// there is none (no authorization server, or a route outside the gate).
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::Unauthenticated))
    }
}

/// The media types a FHIR resource body may be sent as.
pub(super) const FHIR_BODY: &[&str] = &["application/fhir+json", "application/json", "application/json+fhir"];

/// Reads a JSON request body of one of the `accepted` media types.
pub(super) fn json_body(headers: &HeaderMap, body: &Bytes, accepted: &[&str]) -> Result<Value, GatewayError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !accepted.contains(&media.as_str()) {
        return Err(GatewayError::UnsupportedMediaType(format!(
            "the body must be one of: {}",
            accepted.join(", ")
        )));
    }
    serde_json::from_slice(body).map_err(|_| GatewayError::BadRequest("the body is not valid JSON".into()))
}

/// Query pairs in order, duplicates kept.
pub(super) fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The first value of the parameter `key`.
pub(super) fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}
