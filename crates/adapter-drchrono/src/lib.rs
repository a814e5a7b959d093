//! The DrChrono EHR API v4 adapter: patients, doctors, offices (and their exam rooms),
//! appointments, clinical notes and documents as FHIR R4 resources.
//!
//! - [`config`]: the account settings ([`DrChronoConfig`], credentials as [`Secret`]s).
//! - [`client`]: the HTTP client: OAuth refresh with rotation, pagination and redirects pinned to
//!   the configured origin, vendor failures as [`AdapterError`](::adapter::AdapterError)s.
//! - [`wire`]: DrChrono's JSON objects, in the vendor's shape.
//! - [`map`]: pure wire → FHIR mappings (no I/O, no clock).
//! - [`DrChronoWebhooks`]: verification of DrChrono's webhooks (the `msg` handshake and the
//!   `X-drchrono-signature` secret) and their change events.
//! - [`DrChronoAdapter`]: the [`Adapter`](::adapter::Adapter) the gateway talks to. It plans each FHIR search
//!   into DrChrono list queries (pushing down what DrChrono can filter on without narrowing the
//!   search), walks them with continuations, and maps every record through `wire` and `map`.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use adapter::{Adapter, ResourceType};
//! use adapter_drchrono::{DrChronoAdapter, DrChronoConfig};
//!
//! let config = DrChronoConfig::new("client-id", "client-secret", "refresh-token", "https://app.example/cb");
//! let drchrono = DrChronoAdapter::new(config)?; // validates; no request yet
//! drchrono.check().await?; // fetches a token and lists one doctor
//! let patient = drchrono.read(ResourceType::Patient, "12345").await?;
//! # let _ = patient; Ok(()) }
//! ```

mod adapter;
pub mod client;
pub mod config;
pub mod map;
pub mod webhook;
pub mod wire;

pub use crate::adapter::DrChronoAdapter;
pub use crate::config::{ConfigError, DrChronoConfig, Secret};
pub use crate::webhook::DrChronoWebhooks;
