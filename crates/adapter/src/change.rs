//! Change events: what a vendor webhook tells the gateway about its data.

use crate::ResourceType;

/// What happened to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

/// One resource changed at the vendor. Adapters turn their vendor's webhook payloads into these;
/// the gateway evicts caches and notifies subscribers from them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChangeEvent {
    pub source: &'static str,
    /// The vendor account the change belongs to (see [`crate::Adapter::account`]).
    pub account: String,
    pub resource_type: ResourceType,
    pub native_id: String,
    pub kind: ChangeKind,
}
