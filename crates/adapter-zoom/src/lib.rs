//! The Zoom adapter: clinical notes (AI-drafted visit notes) and the Healthcare API (virtual visits,
//! patients, waiting room, providers and availability) as FHIR R4, with writes and webhooks.
//!
//! - [`config`]: the account settings ([`ZoomConfig`], credentials as [`Secret`]s).
//! - [`client`]: the HTTP client: Server-to-Server OAuth, Zoom's error codes as
//!   [`AdapterError`](::adapter::AdapterError)s, redirects pinned to the configured origins,
//!   rate-limit headers per label.
//! - [`wire`]: Zoom's JSON objects, in the vendor's shape.
//! - [`map`]: pure wire ↔ FHIR mappings (no I/O, no clock).
//! - [`ZoomAdapter`]: the [`Adapter`](::adapter::Adapter) the gateway talks to: reads, pushed-down
//!   searches walked with Zoom's `next_page_token`, writes (note completion, visit create /
//!   reschedule / cancel, `$admit`, `$invite`).
//! - [`ZoomWebhooks`]: verification of Zoom's signed webhooks and their change events.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use adapter::{Adapter, ResourceType};
//! use adapter_zoom::{ZoomAdapter, ZoomConfig};
//!
//! let config = ZoomConfig::new("account-id", "client-id", "client-secret", "webhook-secret-token");
//! let zoom = ZoomAdapter::new(config)?; // validates; no request yet
//! zoom.check().await?; // fetches a token and lists one provider
//! let visit = zoom.read(ResourceType::Appointment, "visit_abc123").await?;
//! # let _ = visit; Ok(()) }
//! ```

mod adapter;
pub mod client;
pub mod config;
pub mod map;
mod webhook;
pub mod wire;

pub use crate::adapter::{OPERATION_ADMIT, OPERATION_INVITE, ZoomAdapter};
pub use crate::config::{ConfigError, Secret, ZoomConfig, ZoomRateLimits};
pub use crate::webhook::ZoomWebhooks;
