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
pub mod codes;
mod ctx;
pub mod ehr;
mod error;
pub mod fhir_build;
pub mod format;
#[cfg(feature = "test-support")]
pub mod golden;
mod health;
pub mod http;
pub mod id;
pub mod lenient;
#[cfg(feature = "client")]
pub mod resilience;
mod resolve;
pub mod search;
mod secret;
pub mod systems;
pub mod time;
#[cfg(feature = "client")]
pub mod token_slot;
pub mod vault;
mod webhook;

pub use capability::{
    Capabilities, Interaction, OperationDef, OperationParam, OperationTarget, ParamUse, Performer, ResourceCapability,
    ResourceType,
};
pub use change::{ChangeEvent, ChangeKind};
pub use ctx::MapCtx;
pub use error::AdapterError;
pub use health::{BreakerState, BudgetStatus, VendorHealth};
pub use id::{FhirId, IdError, SourceName};
pub use resolve::{Resolver, linkable, linkable_for_patients};
pub use search::{Continuation, Page, PageRequest, SearchRequest};
pub use secret::Secret;
pub use webhook::{WebhookError, WebhookReceiver, WebhookRequest, WebhookResponse};

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

    /// Creates a resource at the vendor (`POST /fhir/{type}`); returns it as stored, with its id.
    async fn create(&self, resource: Resource) -> Result<Resource, AdapterError> {
        let _ = resource;
        Err(AdapterError::Unsupported {
            what: format!("create at {}", self.source()),
        })
    }

    /// Replaces a resource (`PUT`, and `PATCH` after the gateway applied the patch). The adapter
    /// compares with the current state and performs the vendor calls; a change the vendor cannot
    /// store is [`AdapterError::Unprocessable`] naming the element, and nothing is applied.
    async fn update(
        &self,
        resource_type: ResourceType,
        native_id: &str,
        resource: Resource,
    ) -> Result<Resource, AdapterError> {
        let _ = (resource_type, native_id, resource);
        Err(AdapterError::Unsupported {
            what: format!("update at {}", self.source()),
        })
    }

    /// Runs an instance operation (`POST /fhir/{type}/{id}/${name}`) declared in the capabilities;
    /// `input` is the `Parameters` resource sent, if any. Returns the resource to answer with.
    async fn operation(
        &self,
        resource_type: ResourceType,
        native_id: &str,
        name: &str,
        input: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        let _ = (resource_type, native_id, input);
        Err(AdapterError::Unsupported {
            what: format!("${name} at {}", self.source()),
        })
    }

    /// Runs an operation this source declares with [`OperationTarget::AnySource`] on another source's
    /// resource (`POST /fhir/Appointment/drchrono-7/$start-scribe` handled by Noa). `target_id` is
    /// the gateway id (`drchrono-7`); `target` is the resource as the gateway read it for the
    /// caller (the caller may see it).
    async fn operation_on(
        &self,
        target_id: &FhirId,
        target: &Resource,
        name: &str,
        input: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        let _ = (target_id, target, input);
        Err(AdapterError::Unsupported {
            what: format!("${name} at {}", self.source()),
        })
    }

    /// The verifier of this vendor's webhooks, if it sends any.
    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        None
    }

    /// How the calls to the vendor are faring (circuit breaker, retries, client-side rate
    /// budgets), for `/metrics`; `None` for a source without such a client. Decorators forward it.
    fn health(&self) -> Option<VendorHealth> {
        None
    }
}
