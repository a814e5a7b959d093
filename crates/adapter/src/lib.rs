//! The contract between the gateway and its vendor adapters.
//!
//! An adapter turns one vendor's API into FHIR R4 resources ([`fhir`], the fhirbolt R4 model). The
//! gateway only ever talks to vendors through [`Adapter`]: it hands over a parsed [`SearchRequest`],
//! receives a [`Page`] of FHIR resources plus an opaque vendor [`Continuation`], and turns every
//! [`AdapterError`] into an `OperationOutcome`. Vendor JSON never crosses this boundary.
//!
//! A new vendor is one new crate implementing [`Adapter`] and one line of wiring in the gateway.

mod capability;
mod change;
mod ctx;
mod error;
pub mod id;
pub mod search;
pub mod systems;

pub use capability::{Capabilities, Interaction, ResourceCapability, ResourceType};
pub use change::{ChangeEvent, ChangeKind};
pub use ctx::MapCtx;
pub use error::AdapterError;
pub use id::{FhirId, IdError, SourceName};
pub use search::{Continuation, Page, PageRequest, SearchRequest};

/// The FHIR R4 model every adapter produces (re-exported from fhirbolt).
pub use fhirbolt::model::r4 as fhir;

/// One FHIR resource of any type.
pub type Resource = fhir::Resource;

/// What every vendor adapter implements.
///
/// Implementations must be cheap to share (`Arc<dyn Adapter>`), must never log or return vendor
/// credentials or patient data in errors, and must only ever return resources whose ids follow the
/// [`FhirId`] scheme with their own [`SourceName`].
#[async_trait::async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// The short source name, the prefix of every id this adapter mints (`drchrono`).
    fn source(&self) -> SourceName;

    /// The vendor account this adapter is bound to (e.g. the DrChrono practice group or the
    /// OAuth client). Caches key their entries by it so two accounts never share an entry.
    fn account(&self) -> &str;

    /// The resource types, interactions and pushed-down search parameters this source supports.
    fn capabilities(&self) -> &Capabilities;

    /// Reads one resource by its native (vendor) id.
    async fn read(&self, resource_type: ResourceType, native_id: &str) -> Result<Resource, AdapterError>;

    /// Runs (part of) a search. The adapter pushes down what its vendor can filter on; it may return
    /// resources that do not match the remaining parameters (the gateway filters them) but must never
    /// drop a resource that matches. `page.cursor` is the continuation from a previous page, if any.
    async fn search(&self, request: &SearchRequest, page: PageRequest) -> Result<Page, AdapterError>;

    /// Checks that the vendor is reachable and that the adapter's credentials work (`/readyz`).
    async fn check(&self) -> Result<(), AdapterError>;
}
