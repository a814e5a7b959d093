//! Cross-source references: an adapter that points at another source's resources (a Zoom note's
//! EHR patient) asks the gateway whether the target exists, without depending on that adapter.

use crate::{Resource, ResourceType};

/// Answers whether a gateway resource exists (`Patient`, `drchrono-123`).
#[async_trait::async_trait]
pub trait Resolver: Send + Sync {
    /// `true` when the resource can be read; `false` when it is missing or its source is unknown
    /// or failing (the caller then keeps a logical reference instead of a link).
    async fn exists(&self, resource_type: ResourceType, id: &str) -> bool;

    /// The resource, when it can be read (`None` when missing, unknown or failing). Adapters use it
    /// to follow another source's facts (Noa's episode is a DrChrono appointment; its patient is
    /// the session's subject).
    async fn read(&self, resource_type: ResourceType, id: &str) -> Option<Resource> {
        let _ = (resource_type, id);
        None
    }
}
