//! Cross-source references: an adapter that points at another source's resources (a Zoom note's
//! EHR patient) asks the gateway whether the target exists, without depending on that adapter.
//!
//! A missing resource and a failing source are different answers: `Ok(false)` / `Ok(None)` mean
//! the resource is not there (not found, deleted, or no source serves that id), `Err` means its
//! source could not answer right now. A caller must not treat a failure as "missing" (that would
//! silently unlink or drop what it maps); it either keeps what the vendor said or fails itself.

use std::collections::HashSet;

use futures::StreamExt;

use crate::{AdapterError, Resource, ResourceType};

/// Answers whether a gateway resource exists (`Patient`, `drchrono-123`) and reads it.
#[async_trait::async_trait]
pub trait Resolver: Send + Sync {
    /// `Ok(true)` when the resource can be read; `Ok(false)` when it is missing or deleted, or no
    /// source serves that id (an unknown source, a malformed id); `Err` when its source is failing
    /// (unavailable, timing out, rate limited, answering what cannot be mapped). A failure is not
    /// remembered: the next question asks the source again.
    async fn exists(&self, resource_type: ResourceType, id: &str) -> Result<bool, AdapterError>;

    /// The resource: `Ok(Some)` when it can be read, `Ok(None)` when it is missing or deleted or no
    /// source serves that id, `Err` when its source is failing. Adapters use it to follow another
    /// source's facts (Noa's episode is a DrChrono appointment; its patient is the session's
    /// subject). The default reads nothing.
    async fn read(&self, resource_type: ResourceType, id: &str) -> Result<Option<Resource>, AdapterError> {
        let _ = (resource_type, id);
        Ok(None)
    }
}

/// How many references [`linkable`] checks at once.
const CONCURRENT_CHECKS: usize = 8;

/// Which of the `Type/id` references (duplicates allowed) may be written as literal links: asks
/// the resolver, concurrently and once per reference. A reference whose source fails to answer is
/// kept literal — the vendor named that id, only the check could not be made (a logical reference
/// would silently take the resource out of the gateway's `patient=` searches); one that is missing
/// or malformed is not.
pub async fn linkable(resolver: &dyn Resolver, mut references: Vec<String>) -> HashSet<String> {
    references.sort();
    references.dedup();
    futures::stream::iter(references)
        .map(|reference| async move {
            let (type_name, id) = reference.split_once('/')?;
            let resource_type: ResourceType = type_name.parse().ok()?;
            match resolver.exists(resource_type, id).await {
                Ok(found) => found.then_some(reference),
                Err(error) => {
                    tracing::debug!(
                        %resource_type,
                        transient = error.is_transient(),
                        "an EHR reference could not be checked; kept literal"
                    );
                    Some(reference)
                }
            }
        })
        .buffer_unordered(CONCURRENT_CHECKS)
        .filter_map(|found| async move { found })
        .collect()
        .await
}
