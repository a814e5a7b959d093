//! The axum application: routes, handlers, and the request-metrics layer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter::{Interaction, ResourceType};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::{Value, json};

use crate::access::{AccessPolicy, Caller};
use crate::bundle::{self, Link};
use crate::capability;
use crate::conditional;
use crate::engine::Engine;
use crate::error::GatewayError;
use crate::format::{self, FHIR_JSON};
use crate::metrics::Metrics;
use crate::openapi;
use crate::operations;
use crate::paging::{Cursor, CursorCodec};
use crate::query::{self, CountLimits, ParsedSearch};
use crate::write;

/// Everything the handlers share.
pub struct AppState {
    pub engine: Engine,
    pub codec: CursorCodec,
    /// The FHIR base URL clients use, without a trailing slash (`http://127.0.0.1:8080/fhir`).
    pub fhir_base: String,
    pub limits: CountLimits,
    pub metrics: Arc<Metrics>,
    pub policy: Arc<dyn AccessPolicy>,
    /// When the process started (the CapabilityStatement's date).
    pub started: String,
    /// The OpenAPI document, rendered once.
    pub openapi: Value,
    /// How long `/readyz` waits for each vendor.
    pub ready_timeout: Duration,
    /// The most a `/fhir` request may take (then 504 + OperationOutcome; the work is dropped).
    pub request_deadline: Duration,
    /// Change events from vendor webhooks (the cache and subscriptions listen here).
    pub changes: tokio::sync::broadcast::Sender<adapter::ChangeEvent>,
    /// The caches in front of the sources, when caching is on (they apply [`Self::changes`]).
    pub caches: Vec<Arc<crate::cache::Cached>>,
    /// SMART on FHIR, when configured: every `/fhir` route but the CapabilityStatement and the
    /// OperationDefinitions needs a valid bearer token.
    pub auth: Option<smart_auth::SmartAuth>,
    /// The per-client rate limit (`[rate_limit]`), when on.
    pub rate_limit: Option<Arc<crate::ratelimit::ClientLimiter>>,
    /// `/metrics` needs a bearer token the gateway accepts (`metrics.require_token`).
    pub metrics_require_token: bool,
    /// Outside `/fhir` (held to [`Self::request_deadline`]), the most a request body may take to
    /// arrive (`server.body_read_timeout_secs`; then 408).
    pub body_read_timeout: Duration,
    /// How much one request may ask for (`[limits]`): body, query and header sizes, parameters.
    pub request_limits: query::Limits,
}

type Shared = Arc<AppState>;

/// Builds the whole router.
pub fn app(state: Arc<AppState>) -> Router {
    let docs =
        utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi::document(&state.engine.sources));
    let fhir = Router::new()
        .route("/fhir/metadata", get(metadata).fallback(method_not_allowed_metadata))
        .route(
            "/fhir/{type}",
            get(search_get).post(create).fallback(method_not_allowed_type),
        )
        .route(
            "/fhir/{type}/_search",
            axum::routing::post(search_post)
                .fallback(method_not_allowed_search)
                // A form of search parameters, not a resource: its own, smaller, body limit.
                .layer(axum::extract::DefaultBodyLimit::max(
                    state.request_limits.max_search_body_bytes,
                )),
        )
        .route(
            "/fhir/{type}/{id}",
            get(read).put(update).patch(patch).fallback(method_not_allowed_instance),
        )
        .route("/fhir/OperationDefinition", get(operation_definitions))
        .route("/fhir/OperationDefinition/{id}", get(operation_definition))
        .route("/fhir/{type}/{id}/{operation}", axum::routing::post(operation))
        .route("/webhooks/{source}", get(webhook).post(webhook))
        .route(
            "/webhooks/{source}/{*rest}",
            get(webhook_with_path).post(webhook_with_path),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found);
    // In order: the token gate (and `/metrics`'), then the per-client rate limit (keyed by the
    // token's client, so after the gate), then the request deadline.
    let fhir = fhir
        .layer(middleware::from_fn_with_state(state.clone(), within_deadline))
        .layer(middleware::from_fn_with_state(state.clone(), crate::ratelimit::limit))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn_with_state(state.clone(), require_metrics_token));
    // Before anything else: the headers' and the URL query's size (431, 414); every body read on
    // these routes is bounded by `limits.max_body_bytes` (`_search`: its own limit above; 413).
    let fhir = fhir
        .layer(middleware::from_fn_with_state(state.clone(), within_limits))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.request_limits.max_body_bytes,
        ));
    // The OpenAPI route is served by Swagger UI's router (same document, typed by utoipa).
    let router = fhir.merge(docs).route("/", get(root)).with_state(state.clone());
    // The authorization server's own routes (discovery, /auth/*) sit beside, outside the token gate.
    let router = match &state.auth {
        Some(auth) => router.merge(auth.router()),
        None => router,
    };
    router
        .layer(middleware::from_fn_with_state(state.clone(), body_deadline))
        .layer(middleware::from_fn(fhir_errors_are_outcomes))
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
}

/// True for the FHIR routes anyone may read: the CapabilityStatement (SMART clients discover the
/// authorization server there) and the OperationDefinitions (no patient data).
fn public_fhir_path(path: &str) -> bool {
    path == "/fhir/metadata" || path == "/fhir/OperationDefinition" || path.starts_with("/fhir/OperationDefinition/")
}

/// With SMART configured, every other `/fhir` request needs a valid bearer token: its grant becomes
/// the request's [`Caller`]; anything else is 401 with `WWW-Authenticate` and an OperationOutcome.
async fn require_token(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    let Some(auth) = &state.auth else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if !path.starts_with("/fhir") || public_fhir_path(path) {
        return next.run(request).await;
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
            request.extensions_mut().insert(Caller::Token(Arc::new(grant)));
            next.run(request).await
        }
        Err(unauthorized) => unauthorized.into_response(),
    }
}

/// No `/fhir` request outlives [`AppState::request_deadline`]: past it the client gets a 504
/// OperationOutcome and the vendor calls under way are dropped.
async fn within_deadline(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/fhir") {
        return next.run(request).await;
    }
    match tokio::time::timeout(state.request_deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("a request ran past the gateway's deadline");
            GatewayError::DeadlineExceeded(state.request_deadline.as_secs()).into_response()
        }
    }
}

/// The cheap bounds, checked before the token gate and any work: the request headers' total size
/// (431) and the URL query's length (414), as `[limits]` sets them.
async fn within_limits(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let limits = &state.request_limits;
    let checked = query::check_headers(request.headers(), limits).and_then(|()| {
        request
            .uri()
            .query()
            .map_or(Ok(()), |q| query::check_query_len(q, limits))
    });
    match checked {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// With `metrics.require_token`, `/metrics` needs a bearer token the gateway accepts (any client,
/// any scope), verified as the token gate verifies: else 401 with `WWW-Authenticate` and an
/// OperationOutcome. Without an authorization server nothing can be verified, so nothing is served.
async fn require_metrics_token(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if !state.metrics_require_token || request.uri().path() != "/metrics" {
        return next.run(request).await;
    }
    let verified = match &state.auth {
        Some(auth) => auth.authenticate(request.headers()).await.map(|_| ()),
        None => Err(smart_auth::Unauthorized {
            error: None,
            description: "a Bearer access token is required".to_owned(),
        }),
    };
    match verified {
        Ok(()) => next.run(request).await,
        Err(unauthorized) => unauthorized.into_response(),
    }
}

/// Outside `/fhir` (which [`within_deadline`] bounds whole), a request body must arrive within
/// [`AppState::body_read_timeout`]: a client trickling a webhook or token request cannot hold the
/// connection. Past it the handler sees the body fail, and the client gets 408 and a closed connection.
async fn body_deadline(State(state): State<Shared>, request: Request, next: Next) -> Response {
    use axum::body::HttpBody as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    if request.uri().path().starts_with("/fhir") || request.body().size_hint().exact() == Some(0) {
        return next.run(request).await;
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
    let response = next.run(request).await;
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
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    GatewayError::Internal("the server failed while handling the request".into()).into_response()
}

/// Any error under `/fhir` that did not come from [`GatewayError`] (an extractor rejection, a body
/// over the size limit) still reaches the client as an OperationOutcome.
async fn fhir_errors_are_outcomes(request: Request, next: Next) -> Response {
    let fhir = request.uri().path().starts_with("/fhir");
    let mut response = next.run(request).await;
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

async fn record_metrics(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // One of a fixed set (`OTHER` for the rest): a client cannot grow the label set.
    let method = crate::metrics::method_label(request.method().as_str());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .http_request(method, &route, response.status().as_u16(), started.elapsed());
    response
}

/// Query pairs in order, duplicates kept.
fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn strict(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().replace(' ', "") == "handling=strict")
}

/// A FHIR JSON body's bytes.
fn render(body: &Value, pretty: bool) -> Vec<u8> {
    if pretty {
        serde_json::to_vec_pretty(body)
    } else {
        serde_json::to_vec(body)
    }
    .unwrap_or_default()
}

/// Renders a FHIR JSON body.
fn fhir_response(status: StatusCode, body: &Value, pretty: bool) -> Response {
    let bytes = render(body, pretty);
    let mut resp = (status, bytes).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

fn pretty(pairs: &[(String, String)]) -> bool {
    first(pairs, "_pretty") == Some("true")
}

fn resource_type(name: &str, sources_serve: impl Fn(ResourceType) -> bool) -> Result<ResourceType, GatewayError> {
    match name.parse::<ResourceType>() {
        Ok(t) if sources_serve(t) => Ok(t),
        _ => Err(GatewayError::UnknownType(name.to_owned())),
    }
}

async fn root(State(state): State<Shared>) -> Html<String> {
    Html(format!(
        "<!doctype html><title>FHIR facade gateway</title><h1>FHIR facade gateway</h1>\
         <ul><li>FHIR base: <a href=\"{b}/metadata\">{b}</a></li><li><a href=\"/docs/\">API docs</a></li>\
         <li><a href=\"/openapi.json\">OpenAPI</a></li></ul>",
        b = state.fhir_base
    ))
}

async fn metadata(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, GatewayError> {
    let pairs = pairs(q.as_deref());
    format::negotiate(&headers, first(&pairs, "_format"))?;
    let mut cs =
        capability::capability_statement(&state.engine.sources, &state.fhir_base, state.limits, &state.started);
    if let Some(auth) = &state.auth {
        cs["rest"][0]["security"] = capability::smart_security(&auth.smart_configuration());
    }
    Ok(fhir_response(StatusCode::OK, &cs, pretty(&pairs)))
}

async fn read(
    State(state): State<Shared>,
    Path((ty, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    caller: Option<axum::Extension<Caller>>,
) -> Result<Response, GatewayError> {
    let pairs = pairs(q.as_deref());
    query::check_limits(&pairs, &state.request_limits)?;
    format::negotiate(&headers, first(&pairs, "_format"))?;
    let t = resource_type(&ty, |t| state.engine.sources.serves(t))?;
    if !adapter::id::is_valid_fhir_id(&id) {
        return Err(GatewayError::BadRequest(format!("'{id}' is not a valid FHIR id")));
    }
    let caller = caller.map_or(Caller::Unauthenticated, |c| c.0);
    state.policy.authorize(&caller, Interaction::Read, t)?;
    let (resource, stale) = crate::cache::noting_stale(state.engine.read(t, &id, &caller, state.policy.as_ref())).await;
    let resource = resource?;
    let last_modified = resource
        .pointer("/meta/lastUpdated")
        .and_then(Value::as_str)
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
        .map(|v| v.with_timezone(&Utc));
    let summary = first(&pairs, "_summary")
        .map(|v| {
            query::parse_summary(v).ok_or_else(|| GatewayError::BadParameter {
                name: "_summary".into(),
                message: "_summary must be one of true, false, text, data, count".into(),
            })
        })
        .transpose()?;
    let elements: Vec<String> = first(&pairs, "_elements")
        .map(|e| {
            e.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let body = bundle::subset(resource, summary, &elements);
    let bytes = render(&body, pretty(&pairs));
    Ok(conditional::read_response(bytes, &headers, last_modified, &stale))
}

async fn search_get(
    State(state): State<Shared>,
    Path(ty): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    caller: Option<axum::Extension<Caller>>,
) -> Result<Response, GatewayError> {
    let pairs = pairs(q.as_deref());
    run_search(
        &state,
        &ty,
        pairs,
        &headers,
        caller.map_or(Caller::Unauthenticated, |c| c.0),
    )
    .await
}

async fn search_post(
    State(state): State<Shared>,
    Path(ty): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    caller: Option<axum::Extension<Caller>>,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let mut all = pairs(q.as_deref());
    if !body.is_empty() {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(GatewayError::UnsupportedMediaType(
                "POST _search takes an application/x-www-form-urlencoded body".into(),
            ));
        }
        all.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    run_search(
        &state,
        &ty,
        all,
        &headers,
        caller.map_or(Caller::Unauthenticated, |c| c.0),
    )
    .await
}

fn caller_of(caller: Option<axum::Extension<Caller>>) -> Caller {
    caller.map_or(Caller::Unauthenticated, |c| c.0)
}

/// Reads a JSON request body of one of the `accepted` media types.
fn json_body(headers: &HeaderMap, body: &Bytes, accepted: &[&str]) -> Result<Value, GatewayError> {
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

const FHIR_BODY: &[&str] = &["application/fhir+json", "application/json", "application/json+fhir"];

/// `POST /fhir/{type}`: create at the source that takes this type.
async fn create(
    State(state): State<Shared>,
    Path(ty): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    caller: Option<axum::Extension<Caller>>,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let pairs = pairs(q.as_deref());
    format::negotiate(&headers, first(&pairs, "_format"))?;
    let t = resource_type(&ty, |t| state.engine.sources.serves(t))?;
    let body = json_body(&headers, &body, FHIR_BODY)?;
    let created = write::create(&state.engine, t, body, &caller_of(caller), state.policy.as_ref()).await?;
    let id = created.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
    let mut resp = fhir_response(StatusCode::CREATED, &created, pretty(&pairs));
    if let Ok(location) = HeaderValue::from_str(&format!("{}/{}/{}", state.fhir_base, t, id)) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    Ok(resp)
}

/// `PUT /fhir/{type}/{id}`.
async fn update(
    State(state): State<Shared>,
    Path((ty, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    caller: Option<axum::Extension<Caller>>,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let pairs = pairs(q.as_deref());
    format::negotiate(&headers, first(&pairs, "_format"))?;
    let t = resource_type(&ty, |t| state.engine.sources.serves(t))?;
    write::writable(&state.engine, t, &id, Interaction::Update)?;
    let body = json_body(&headers, &body, FHIR_BODY)?;
    let updated = write::update(&state.engine, t, &id, body, &caller_of(caller), state.policy.as_ref()).await?;
    Ok(fhir_response(StatusCode::OK, &updated, pretty(&pairs)))
}

/// `PATCH /fhir/{type}/{id}` with `application/json-patch+json`.
async fn patch(
    State(state): State<Shared>,
    Path((ty, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    caller: Option<axum::Extension<Caller>>,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let pairs = pairs(q.as_deref());
    format::negotiate(&headers, first(&pairs, "_format"))?;
    let t = resource_type(&ty, |t| state.engine.sources.serves(t))?;
    write::writable(&state.engine, t, &id, Interaction::Patch)?;
    let body = json_body(&headers, &body, &["application/json-patch+json"])?;
    let updated = write::patch(&state.engine, t, &id, body, &caller_of(caller), state.policy.as_ref()).await?;
    Ok(fhir_response(StatusCode::OK, &updated, pretty(&pairs)))
}

/// `POST /fhir/{type}/{id}/${operation}`.
async fn operation(
    State(state): State<Shared>,
    Path((ty, id, op)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    caller: Option<axum::Extension<Caller>>,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let pairs = pairs(q.as_deref());
    format::negotiate(&headers, first(&pairs, "_format"))?;
    let t = resource_type(&ty, |t| state.engine.sources.serves(t))?;
    let Some(name) = op.strip_prefix('$') else {
        return Err(GatewayError::NotFound(format!(
            "nothing is served at /fhir/{ty}/{id}/{op}"
        )));
    };
    let input = if body.is_empty() {
        None
    } else {
        Some(json_body(&headers, &body, FHIR_BODY)?)
    };
    let out = write::operation(
        &state.engine,
        t,
        &id,
        name,
        input,
        &caller_of(caller),
        state.policy.as_ref(),
    )
    .await?;
    match out.accepted {
        None => Ok(fhir_response(StatusCode::OK, &out.body, pretty(&pairs))),
        Some(follow) => {
            let mut response = fhir_response(StatusCode::ACCEPTED, &out.body, pretty(&pairs));
            if let Some(location) = follow.and_then(|f| HeaderValue::from_str(&format!("{}/{f}", state.fhir_base)).ok())
            {
                response.headers_mut().insert(header::CONTENT_LOCATION, location);
            }
            Ok(response)
        }
    }
}

/// `GET /fhir/OperationDefinition/{id}`: the definition of an operation a source declares.
async fn operation_definition(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, GatewayError> {
    let pairs = pairs(q.as_deref());
    format::negotiate(&headers, first(&pairs, "_format"))?;
    let definition = operations::find(&state.engine.sources, &state.fhir_base, &id)
        .ok_or_else(|| GatewayError::NotFound(format!("OperationDefinition/{id} is not known")))?;
    Ok(fhir_response(StatusCode::OK, &definition, pretty(&pairs)))
}

/// `GET /fhir/OperationDefinition`: every operation's definition, one page.
async fn operation_definitions(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, GatewayError> {
    let pairs = pairs(q.as_deref());
    format::negotiate(&headers, first(&pairs, "_format"))?;
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
    Ok(fhir_response(StatusCode::OK, &bundle, pretty(&pairs)))
}

/// `GET|POST /webhooks/{source}`: the source's adapter verifies the call; change events are
/// published to the gateway's change channel. Refusals say nothing about the payload.
async fn webhook(
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
async fn webhook_with_path(
    State(state): State<Shared>,
    Path((source, rest)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    receive_webhook(state, source, format!("/{rest}"), method, headers, q, body).await
}

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
                // No subscriber yet is fine: the cache subscribes when it exists.
                let _ = state.changes.send(event);
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

async fn run_search(
    state: &AppState,
    ty: &str,
    pairs: Vec<(String, String)>,
    headers: &HeaderMap,
    caller: Caller,
) -> Result<Response, GatewayError> {
    // The client's own parameters, before any work (the policy's compartment filter comes later).
    query::check_limits(&pairs, &state.request_limits)?;
    format::negotiate(headers, first(&pairs, "_format"))?;
    let t = resource_type(ty, |t| state.engine.sources.serves(t))?;
    state.policy.authorize(&caller, Interaction::SearchType, t)?;
    let strict = strict(headers);
    let pretty = pretty(&pairs);
    let now = Utc::now().timestamp();

    // A paging link carries the whole search; everything else in the URL is ignored.
    let (search, position, page_pairs) = match first(&pairs, "_cursor") {
        Some(token) => {
            let cursor = state.codec.decode(token, now)?;
            if cursor.t != t.as_str() {
                return Err(GatewayError::BadParameter {
                    name: "_cursor".into(),
                    message: "the paging link belongs to a search on another type".into(),
                });
            }
            // The caller's compartment is forced on every page, whoever minted the link.
            let mut q = cursor.q.clone();
            q.extend(state.policy.search_filter(&caller, t));
            let search = parse(state, t, &q, strict)?;
            (search, cursor.pos, cursor.q)
        }
        None => {
            let mut pairs = pairs;
            pairs.extend(state.policy.search_filter(&caller, t));
            let search = parse(state, t, &pairs, strict)?;
            let pos = state.engine.start(t, Engine::needs_all(&search));
            let q = search.canonical.clone();
            (search, pos, q)
        }
    };
    let (page, stale) =
        crate::cache::noting_stale(
            state
                .engine
                .search(&search, position, strict, &caller, state.policy.as_ref()),
        )
        .await;
    let mut page = page?;
    let mut links = vec![Link {
        relation: "self",
        url: self_url(&state.fhir_base, t, &page_pairs),
    }];
    if let Some(next) = page.next.take() {
        let token = state.codec.encode(&Cursor {
            t: t.as_str().to_owned(),
            q: page_pairs.clone(),
            iat: now,
            pos: next,
        });
        links.push(Link {
            relation: "next",
            url: format!("{}/{}?_cursor={}", state.fhir_base, t, token),
        });
    }
    let mut issues = search.warnings.clone();
    issues.append(&mut page.issues);
    issues.extend(stale.iter().map(conditional::stale_issue));
    let body = bundle::searchset(bundle::Searchset {
        base_url: &state.fhir_base,
        matches: page.matches,
        included: page.included,
        total: page.total,
        links: &links,
        issues: &issues,
        summary: search.result.summary,
        elements: &search.result.elements,
    });
    let mut response = fhir_response(StatusCode::OK, &body, pretty);
    conditional::mark_stale(&mut response, &stale);
    Ok(response)
}

fn parse(
    state: &AppState,
    t: ResourceType,
    pairs: &[(String, String)],
    strict: bool,
) -> Result<ParsedSearch, GatewayError> {
    query::parse(t, pairs, strict, state.limits, state.engine.tz, &state.fhir_base)
}

fn self_url(base: &str, t: ResourceType, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return format!("{base}/{t}");
    }
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{base}/{t}?{q}")
}

async fn method_not_allowed_metadata(method: Method) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: "/fhir/metadata".into(),
        allow: "GET".into(),
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

async fn method_not_allowed_type(State(state): State<Shared>, method: Method, Path(ty): Path<String>) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: format!("/fhir/{ty}"),
        allow: allowed(&state, &ty, None),
    }
}

async fn method_not_allowed_search(method: Method, Path(ty): Path<String>) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: format!("/fhir/{ty}/_search"),
        allow: "POST".into(),
    }
}

async fn method_not_allowed_instance(
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

async fn not_found(uri: axum::http::Uri) -> GatewayError {
    GatewayError::NotFound(format!("nothing is served at {}", uri.path()))
}

async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#)
}

async fn readyz(State(state): State<Shared>) -> Response {
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

async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
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
