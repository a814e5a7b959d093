//! The middleware around the handlers: the token gate (and `/metrics`'), the request deadline, the
//! cheap size bounds, body read deadlines outside `/fhir`, panics and other errors as
//! OperationOutcomes, and request metrics. Each is a step taking the rest of the chain as a closure;
//! [`fhir_steps`] and [`outer_steps`] put them in their order as two axum layers (every `from_fn`
//! layer clones the whole service below it on each request, so one layer per group, not one per
//! step: measured, seven layers cost a cached read a tenth of its throughput).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, Shared};
use crate::access::Caller;
use crate::conditional;
use crate::error::GatewayError;
use crate::query;

/// With SMART configured, every other `/fhir` request needs a valid bearer token: its grant becomes
/// the request's [`Caller`]; anything else is 401 with `WWW-Authenticate` and an OperationOutcome.
pub(super) async fn require_token<N, F>(state: &AppState, mut request: Request, next: N) -> Response
where
    N: FnOnce(Request) -> F,
    F: Future<Output = Response>,
{
    let Some(auth) = &state.auth else {
        return next(request).await;
    };
    let path = request.uri().path();
    if !path.starts_with("/fhir") || public_fhir_path(path) {
        return next(request).await;
    }
    match auth.authenticate(request.headers()).await {
        Ok(identity) => {
            let grant = crate::access::Grant {
                client_id: identity.client_id,
                scopes: identity.scopes,
                patient: identity.patient,
                encounter: identity.encounter,
                fhir_user: identity.fhir_user,
            };
            let caller = Caller::Token(Arc::new(grant));
            request.extensions_mut().insert(caller.clone());
            let mut response = next(request).await;
            // For the audit trail, which records the answer outside the gate.
            response.extensions_mut().insert(caller);
            response
        }
        Err(unauthorized) => GatewayError::from(unauthorized).into_response(),
    }
}

/// True for the FHIR routes anyone may read: the CapabilityStatement (SMART clients discover the
/// authorization server there) and the OperationDefinitions (no patient data).
pub(super) fn public_fhir_path(path: &str) -> bool {
    path == "/fhir/metadata" || path == "/fhir/OperationDefinition" || path.starts_with("/fhir/OperationDefinition/")
}

/// No `/fhir` request outlives [`AppState::request_deadline`](super::AppState::request_deadline): past
/// it the client gets a 504 OperationOutcome and the vendor calls under way are dropped.
pub(super) async fn within_deadline<N, F>(state: &AppState, request: Request, next: N) -> Response
where
    N: FnOnce(Request) -> F,
    F: Future<Output = Response>,
{
    if !request.uri().path().starts_with("/fhir") {
        return next(request).await;
    }
    match tokio::time::timeout(state.request_deadline, next(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("a request ran past the gateway's deadline");
            GatewayError::DeadlineExceeded(state.request_deadline.as_secs()).into_response()
        }
    }
}

/// The cheap bounds, checked before the token gate and any work: the request headers' total size
/// (431) and the URL query's length (414), as `[limits]` sets them.
pub(super) async fn within_limits<N, F>(state: &AppState, request: Request, next: N) -> Response
where
    N: FnOnce(Request) -> F,
    F: Future<Output = Response>,
{
    let limits = &state.request_limits;
    let checked = query::check_headers(request.headers(), limits).and_then(|()| {
        request
            .uri()
            .query()
            .map_or(Ok(()), |q| query::check_query_len(q, limits))
    });
    match checked {
        Ok(()) => next(request).await,
        Err(e) => e.into_response(),
    }
}

/// With `metrics.require_token`, `/metrics` needs a bearer token the gateway accepts (any client,
/// any scope), verified as the token gate verifies: else 401 with `WWW-Authenticate` and an
/// OperationOutcome. Without an authorization server nothing can be verified, so nothing is served.
pub(super) async fn require_metrics_token<N, F>(state: &AppState, request: Request, next: N) -> Response
where
    N: FnOnce(Request) -> F,
    F: Future<Output = Response>,
{
    if !state.metrics_require_token || request.uri().path() != "/metrics" {
        return next(request).await;
    }
    let verified = match &state.auth {
        Some(auth) => auth.authenticate(request.headers()).await.map(|_| ()),
        None => Err(smart_auth::Unauthorized {
            error: None,
            description: "a Bearer access token is required".to_owned(),
        }),
    };
    match verified {
        Ok(()) => next(request).await,
        Err(unauthorized) => GatewayError::from(unauthorized).into_response(),
    }
}

/// Outside `/fhir` (which [`within_deadline`] bounds whole), a request body must arrive within
/// [`AppState::body_read_timeout`](super::AppState::body_read_timeout): a client trickling a webhook
/// or token request cannot hold the connection. Past it the handler sees the body fail, and the client
/// gets 408 and a closed connection.
pub(super) async fn body_deadline<N, F>(state: &AppState, request: Request, next: N) -> Response
where
    N: FnOnce(Request) -> F,
    F: Future<Output = Response>,
{
    use axum::body::HttpBody as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    if request.uri().path().starts_with("/fhir") || request.body().size_hint().exact() == Some(0) {
        return next(request).await;
    }
    let limit = state.body_read_timeout;
    let expired = Arc::new(AtomicBool::new(false));
    let flag = expired.clone();
    let deadline = tokio::time::Instant::now() + limit;
    let request = request.map(move |body| {
        let frames = futures::stream::unfold(Some(body.into_data_stream()), move |stream| {
            let flag = flag.clone();
            async move {
                let mut stream = stream?;
                match tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut stream)).await {
                    Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(stream))),
                    Ok(Some(Err(e))) => Some((Err(axum::BoxError::from(e)), None)),
                    Ok(None) => None,
                    Err(_) => {
                        flag.store(true, Ordering::Relaxed);
                        let message = format!("the request body did not arrive within {} s", limit.as_secs());
                        Some((Err(axum::BoxError::from(message)), None))
                    }
                }
            }
        });
        axum::body::Body::from_stream(frames)
    });
    let response = next(request).await;
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    tracing::debug!("a request body did not arrive in time");
    let body = json!({
        "error": "request_timeout",
        "error_description": format!("the request body did not arrive within {} s", limit.as_secs()),
    });
    (
        StatusCode::REQUEST_TIMEOUT,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CONNECTION, "close"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// A panic is a bug; the client still gets an OperationOutcome (and the process keeps serving).
pub(super) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    GatewayError::Internal("the server failed while handling the request".into()).into_response()
}

/// Any error under `/fhir` that did not come from [`GatewayError`] (an extractor rejection, a body
/// over the size limit) still reaches the client as an OperationOutcome.
pub(super) async fn fhir_errors_are_outcomes<N, F>(request: Request, next: N) -> Response
where
    N: FnOnce(Request) -> F,
    F: Future<Output = Response>,
{
    let fhir = request.uri().path().starts_with("/fhir");
    let mut response = next(request).await;
    if fhir {
        // Patient data: never a shared cache; a client's own cache revalidates (ETag / 304).
        response
            .headers_mut()
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static(conditional::PRIVATE));
    }
    let status = response.status();
    let is_fhir = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/fhir+json"));
    if !fhir || is_fhir || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let message = status.canonical_reason().unwrap_or("request failed").to_owned();
    let error = match status {
        StatusCode::NOT_FOUND => GatewayError::NotFound(message),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => GatewayError::UnsupportedMediaType(message),
        // axum's body limit (`DefaultBodyLimit`, set per route from `[limits]`).
        StatusCode::PAYLOAD_TOO_LARGE => {
            GatewayError::PayloadTooLarge("the request body is larger than this route accepts".into())
        }
        StatusCode::URI_TOO_LONG => GatewayError::UriTooLong("the request URL is too long".into()),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            GatewayError::HeadersTooLarge("the request headers are too large".into())
        }
        s if s.is_server_error() => GatewayError::Internal(message),
        _ => GatewayError::BadRequest(format!("{message}: the request is malformed")),
    };
    let mut outcome = error.into_response();
    *outcome.status_mut() = status;
    outcome
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(conditional::PRIVATE));
    outcome
}

/// Counts every request by method, matched route and status, with its duration.
pub(super) async fn record_metrics<N, F>(state: &AppState, request: Request, next: N) -> Response
where
    N: FnOnce(Request) -> F,
    F: Future<Output = Response>,
{
    let started = Instant::now();
    // One of a fixed set (`OTHER` for the rest): a client cannot grow the label set.
    let method = crate::metrics::method_label(request.method().as_str());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next(request).await;
    state
        .metrics
        .http_request(method, &route, response.status().as_u16(), started.elapsed());
    response
}

/// The `/fhir` routes' steps, outermost first: the cheap size bounds (431, 414); the audit
/// trail's record (outside the gate: refused tokens are interactions to record too); `/metrics`'
/// token; the token gate; the per-client rate limit (keyed by the token's client, so after the
/// gate); the request deadline.
pub(super) async fn fhir_steps(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let s = &*state;
    within_limits(s, request, |r| {
        super::audit::record(s, r, |r| {
            require_metrics_token(s, r, |r| {
                require_token(s, r, |r| {
                    crate::ratelimit::limit(s, r, |r| within_deadline(s, r, |r| next.run(r)))
                })
            })
        })
    })
    .await
}

/// Around every route (the authorization server's too), outermost first: request metrics, errors
/// under `/fhir` as OperationOutcomes, body read deadlines outside `/fhir`.
pub(super) async fn outer_steps(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let s = &*state;
    record_metrics(s, request, |r| {
        fhir_errors_are_outcomes(r, |r| body_deadline(s, r, |r| next.run(r)))
    })
    .await
}
