//! Vendor webhooks: `GET|POST /webhooks/{source}` and `/webhooks/{source}/{rest}`. The source's
//! adapter verifies each call; the change events it yields go out on [`AppState::changes`](super::AppState::changes).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::Shared;
use super::request::pairs;
use crate::error::GatewayError;

/// `GET|POST /webhooks/{source}`: the source's adapter verifies the call; change events are
/// published to the gateway's change channel. Refusals say nothing about the payload.
pub(super) async fn webhook(
    State(state): State<Shared>,
    Path(source): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    receive_webhook(state, source, String::new(), method, headers, q, body).await
}

/// `GET|POST /webhooks/{source}/{rest}`: as [`webhook`], with the path after the source handed to
/// the adapter (Noa's callback URL carries a secret there).
pub(super) async fn webhook_with_path(
    State(state): State<Shared>,
    Path((source, rest)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    receive_webhook(state, source, format!("/{rest}"), method, headers, q, body).await
}

/// Hands one call to the source's webhook receiver and answers as it says.
async fn receive_webhook(
    state: Shared,
    source: String,
    path: String,
    method: Method,
    headers: HeaderMap,
    q: Option<String>,
    body: Bytes,
) -> Response {
    let Some(receiver) = state.engine.sources.by_source(&source).and_then(|a| a.webhooks()) else {
        return GatewayError::NotFound(format!("no webhooks are received for '{source}'")).into_response();
    };
    let header_pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned())))
        .collect();
    let query = pairs(q.as_deref());
    let request = adapter::WebhookRequest {
        path: &path,
        method: method.as_str(),
        headers: &header_pairs,
        query: &query,
        body: &body,
        now: Utc::now(),
    };
    match receiver.receive(&request) {
        Ok(answer) => {
            state.metrics.webhook(&source, "accepted", answer.events.len());
            for event in answer.events {
                // This replica's caches forget the resource before the vendor is told the hook
                // arrived, so that no read here after the hook answers the old version; then every
                // replica's caches hear of it (through the store when there is one; applying it
                // twice here costs one more eviction).
                for cache in &state.caches {
                    cache.apply(&event).await;
                }
                crate::replicas::announce(state.store.as_ref(), &state.changes, event).await;
            }
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            match answer.body {
                Some(b) => (status, [(header::CONTENT_TYPE, "application/json")], b.to_string()).into_response(),
                None => status.into_response(),
            }
        }
        Err(e) => {
            let (status, outcome) = match e {
                adapter::WebhookError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "refused"),
                adapter::WebhookError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
                adapter::WebhookError::UnknownEndpoint => {
                    // As if nothing were there: the secret in the path was wrong.
                    state.metrics.webhook(&source, "unknown_endpoint", 0);
                    return GatewayError::NotFound("no such webhook endpoint".into()).into_response();
                }
            };
            tracing::warn!(source = %source, reason = %e, "webhook call refused");
            state.metrics.webhook(&source, outcome, 0);
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                json!({"error": outcome}).to_string(),
            )
                .into_response()
        }
    }
}
