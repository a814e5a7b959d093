//! The FHIR facade gateway: one FHIR R4 API over the vendor adapters.
//!
//! - [`config`]: settings from TOML, the environment and secret files.
//! - [`app`]: the axum router, its layers, and the handlers in rooms (read, write, operation, metadata,
//!   webhook, middleware); [`error`]: errors → OperationOutcome.
//! - [`fhir_json`]: client FHIR JSON bodies checked before the FHIR parser sees them.
//! - [`query`] parses searches, [`params`] defines and evaluates search parameters,
//!   [`engine`] federates, filters, sorts, pages and includes, [`bundle`] shapes results,
//!   [`paging`] signs paging links.
//! - [`capability`] and [`openapi`] describe the API from the same tables.
//! - [`sources`]: the wired adapters, each metered, and the cross-source [`sources::GatewayResolver`];
//!   [`cache`]: the opt-in caching decorator; [`access`]: the auth seam; [`write`]: create, update, patch,
//!   operations; [`engine::RequestCtx`]: the caller, policy and strictness every read, search and write
//!   runs with.
//! - [`ratelimit`]: per-client request rate limits.
//! - [`run`]: wiring for `serve`; [`demo`] (feature `demo`, on by default): the simulated practice.
//! - `picker`: the SMART patient picker's view of the gateway.

pub mod access;
pub mod app;
pub mod audit;
pub mod bundle;
pub mod cache;
pub mod capability;
pub mod conditional;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod doc;
pub mod engine;
pub mod error;
pub mod fhir_json;
pub mod format;
pub mod metrics;
pub mod openapi;
pub mod operations;
pub mod pages;
pub mod paging;
pub mod params;
mod picker;
pub mod query;
pub mod ratelimit;
pub mod replicas;
pub mod run;
pub mod sources;
pub mod vault;
pub mod write;
