//! The Noa Notes adapter: Docplanner's AI scribe as FHIR R4.
//!
//! A Noa session scribes one visit of an EHR appointment (its *episode*) by one doctor at one
//! facility. The adapter serves
//!
//! - each session as an **Encounter** (`noa-{sessionId}`) whose status follows the session's
//!   lifecycle (the exact Noa status in an extension),
//! - each session's summary as a **US Core clinical-note DocumentReference** (`noa-{sessionId}`)
//!   with the sections as base64 `text/markdown`, preliminary until the doctor verifies it,
//! - **`$start-scribe`** on the EHR's Appointments (a Noa operation on another source's resource),
//!   **`$regenerate`** and **`$recover`** on summaries,
//! - Noa's status **webhooks**, believed only on the secret callback path.
//!
//! Modules:
//!
//! - [`config`]: the consumer's settings ([`NoaConfig`], every Noa path in [`NoaPaths`]).
//! - [`client`]: the HTTP client: consumer sign-in, `api-version`, Noa's answers as
//!   [`AdapterError`](::adapter::AdapterError)s.
//! - [`wire`]: Noa's JSON objects, in the vendor's shape (`docs/noa-api.md`).
//! - [`map`]: pure wire → FHIR mappings (no I/O, no clock) and the FHIR side of `$start-scribe`.
//! - [`NoaAdapter`]: the [`Adapter`](::adapter::Adapter) the gateway talks to.
//! - [`NoaWebhooks`]: the receiver of Noa's callbacks.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use adapter::{Adapter, ResourceType};
//! use adapter_noa::{NoaAdapter, NoaConfig};
//!
//! let secret = "a-32-character-or-longer-path-secret";
//! let config = NoaConfig::new("5e505642-9024-474d-9434-e5a44f505cc5", "client-secret", secret)
//!     .with_webhook_url(format!("https://fhir.example.org/webhooks/noa/{secret}"));
//! let noa = NoaAdapter::new(config)?; // validates; no request yet
//! noa.check().await?; // signs in and lists one session
//! let visit = noa.read(ResourceType::Encounter, "0f8fad5b-d9cb-469f-a165-70867728950e").await?;
//! # let _ = visit; Ok(()) }
//! ```

mod adapter;
pub mod client;
pub mod config;
pub mod map;
mod webhook;
pub mod wire;

pub use crate::adapter::{
    APPOINTMENT_METADATA_KEY, NoaAdapter, OPERATION_RECOVER, OPERATION_REGENERATE, OPERATION_START_SCRIBE,
};
pub use crate::config::{ConfigError, NoaConfig, NoaPaths, Secret};
pub use crate::webhook::NoaWebhooks;
