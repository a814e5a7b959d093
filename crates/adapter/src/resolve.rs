//! Cross-source references: an adapter that points at another source's resources (a Zoom note's
//! EHR patient) asks the gateway whether the target exists, without depending on that adapter.

use crate::ResourceType;

/// Answers whether a gateway resource exists (`Patient`, `drchrono-123`).
#[async_trait::async_trait]
pub trait Resolver: Send + Sync {
    /// `true` when the resource can be read; `false` when it is missing or its source is unknown
    /// or failing (the caller then keeps a logical reference instead of a link).
    async fn exists(&self, resource_type: ResourceType, id: &str) -> bool;
}
