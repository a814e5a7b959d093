//! The axum application: [`AppState`], what the handlers share, and [`app`], every route and the
//! order of the layers around them.
//!
//! The handlers live in rooms by what they serve:
//! - `read`: reads and searches (`GET /fhir/{type}/{id}`, `GET /fhir/{type}`, `POST /fhir/{type}/_search`);
//! - `write`: create, update and JSON Patch;
//! - `operation`: `POST /fhir/{type}/{id}/${name}` and the OperationDefinitions;
//! - `metadata`: the CapabilityStatement, the root page, `/healthz`, `/readyz`, `/metrics`, and the 404
//!   and 405 answers;
//! - `webhook`: vendor webhooks in, change events out;
//! - `audit`: the audit trail searched (`/fhir/AuditEvent`) and every `/fhir` interaction recorded;
//! - `middleware`: the token gate, the request deadline and size limits, body read deadlines, panics
//!   and other errors as OperationOutcomes, request metrics.
//!
//! Every FHIR handler takes a `request::FhirRequest` (query pairs and headers, with the `_format`,
//! type, `_pretty` and `Prefer` checks it calls in its own order) and the `Caller` the token gate
//! established, and answers through `response`.

mod audit;
mod metadata;
mod middleware;
mod operation;
mod read;
mod request;
mod response;
mod webhook;
mod write;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use serde_json::Value;

use crate::access::AccessPolicy;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::openapi;
use crate::paging::CursorCodec;
use crate::query::{self, CountLimits};

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
    /// The gateway's durable state, shared by replicas (`None`: everything in memory).
    pub store: Option<store::Store>,
    /// The audit trail's recorder, when it is kept (a store, and `audit.enabled`).
    pub auditor: Option<Arc<crate::audit::Auditor>>,
    /// The caches in front of the sources, when caching is on (they apply [`Self::changes`]).
    pub caches: Vec<Arc<crate::cache::Cached>>,
    /// Rendered search pages every caller who may ask would see alike, when caching is on.
    pub pages: Option<crate::pages::PageCache>,
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
        .route(
            "/fhir/metadata",
            get(metadata::metadata).fallback(metadata::method_not_allowed_metadata),
        )
        .route(
            "/fhir/{type}",
            get(read::search_get)
                .post(write::create)
                .fallback(metadata::method_not_allowed_type),
        )
        .route(
            "/fhir/{type}/_search",
            post(read::search_post)
                .fallback(metadata::method_not_allowed_search)
                // A form of search parameters, not a resource: its own, smaller, body limit.
                .layer(axum::extract::DefaultBodyLimit::max(
                    state.request_limits.max_search_body_bytes,
                )),
        )
        .route(
            "/fhir/{type}/{id}",
            get(read::read)
                .put(write::update)
                .patch(write::patch)
                .fallback(metadata::method_not_allowed_instance),
        )
        // The audit trail: read and searched, never written (append-only, by the gateway itself).
        .route("/fhir/AuditEvent", get(audit::search_get).fallback(audit::not_allowed))
        .route(
            "/fhir/AuditEvent/_search",
            post(audit::search_post).fallback(audit::not_allowed),
        )
        .route("/fhir/AuditEvent/{id}", get(audit::read).fallback(audit::not_allowed))
        .route("/fhir/OperationDefinition", get(operation::operation_definitions))
        .route("/fhir/OperationDefinition/{id}", get(operation::operation_definition))
        .route("/fhir/{type}/{id}/{operation}", post(operation::operation))
        .route("/webhooks/{source}", get(webhook::webhook).post(webhook::webhook))
        .route(
            "/webhooks/{source}/{*rest}",
            get(webhook::webhook_with_path).post(webhook::webhook_with_path),
        )
        .route("/healthz", get(metadata::healthz))
        .route("/readyz", get(metadata::readyz))
        .route("/metrics", get(metadata::metrics))
        .fallback(metadata::not_found);
    // The size bounds, the audit record, the token gates, the rate limit and the deadline, in that
    // order (`middleware::fhir_steps`); every body read on these routes is bounded by
    // `limits.max_body_bytes` (`_search`: its own limit above; 413).
    let fhir = fhir
        .layer(from_fn_with_state(state.clone(), middleware::fhir_steps))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.request_limits.max_body_bytes,
        ));
    // The OpenAPI route is served by Swagger UI's router (same document, typed by utoipa).
    let router = fhir
        .merge(docs)
        .route("/", get(metadata::root))
        .with_state(state.clone());
    // The authorization server's own routes (discovery, /auth/*) sit beside, outside the token gate.
    let router = match &state.auth {
        Some(auth) => router.merge(auth.router()),
        None => router,
    };
    router
        .layer(from_fn_with_state(state.clone(), middleware::outer_steps))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            middleware::panic_response,
        ))
}
