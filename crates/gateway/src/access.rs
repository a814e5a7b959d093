//! The seam where access policy plugs in.
//!
//! An auth layer (SMART on FHIR, a later issue) authenticates the request and puts a [`Caller`]
//! into its extensions; handlers ask the [`AccessPolicy`] whether the caller may perform an
//! interaction and filter every resource through [`AccessPolicy::visible`] **after** it was fetched
//! (and, later, cached), so a cache entry is never the reason one client sees what another may not.

use adapter::{Interaction, ResourceType};
use serde_json::Value;

use crate::error::GatewayError;

/// Who is calling, as established by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No auth layer is configured (demo mode, or `serve --insecure-no-auth`).
    Unauthenticated,
}

/// Decides what a caller may do and see.
pub trait AccessPolicy: Send + Sync + 'static {
    /// May `caller` perform `interaction` on `resource_type`?
    fn authorize(
        &self,
        caller: &Caller,
        interaction: Interaction,
        resource_type: ResourceType,
    ) -> Result<(), GatewayError>;

    /// May `caller` see this resource? Resources it may not see are answered as if missing.
    fn visible(&self, caller: &Caller, resource: &Value) -> bool;
}

/// Everything is allowed: only for demo mode and `--insecure-no-auth`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAccess;

impl AccessPolicy for OpenAccess {
    fn authorize(&self, _: &Caller, _: Interaction, _: ResourceType) -> Result<(), GatewayError> {
        Ok(())
    }

    fn visible(&self, _: &Caller, _: &Value) -> bool {
        true
    }
}
