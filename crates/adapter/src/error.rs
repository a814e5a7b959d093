//! The errors an adapter reports. The gateway turns each into an OperationOutcome and a status.
//!
//! Messages must never carry vendor credentials or patient data: they are shown to clients.

use std::time::Duration;

use crate::ResourceType;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdapterError {
    /// The vendor has no such resource (404).
    #[error("{resource_type}/{id} is not known")]
    NotFound { resource_type: ResourceType, id: String },
    /// The resource existed and was deleted (410).
    #[error("{resource_type}/{id} has been deleted")]
    Gone { resource_type: ResourceType, id: String },
    /// The vendor's rate limit is exhausted (429 with `Retry-After`).
    #[error("the {vendor} rate limit is exhausted")]
    RateLimited {
        vendor: &'static str,
        retry_after: Option<Duration>,
    },
    /// The vendor could not be reached or answered with a server error (503).
    #[error("{vendor} is unavailable: {detail}")]
    Unavailable { vendor: &'static str, detail: String },
    /// The vendor did not answer in time (504).
    #[error("{vendor} did not answer in time")]
    Timeout { vendor: &'static str },
    /// The vendor answered with something that cannot be mapped to FHIR (502).
    #[error("{vendor} sent a response that cannot be mapped: {detail}")]
    Unmappable { vendor: &'static str, detail: String },
    /// The vendor refused the gateway's own credentials (502: the client did nothing wrong).
    #[error("{vendor} refused the gateway's credentials")]
    VendorAuth { vendor: &'static str },
    /// The source does not support this (a type, an interaction, a parameter value) (400 or 405).
    #[error("not supported: {what}")]
    Unsupported { what: String },
    /// The request cannot be served as asked, e.g. a parameter value the vendor refuses (400).
    #[error("invalid request: {detail}")]
    InvalidRequest { detail: String },
    /// The vendor refuses the operation for this account or resource (403). The detail must not
    /// reveal vendor internals.
    #[error("the vendor refused the operation: {detail}")]
    Forbidden { detail: String },
    /// A write asks for a change the vendor cannot store (422); `element` names the FHIR element.
    #[error("{element} cannot be changed at the vendor: {detail}")]
    Unprocessable { element: String, detail: String },
    /// A continuation is no longer valid at the vendor (410).
    #[error("the {vendor} page continuation has expired")]
    ContinuationExpired { vendor: &'static str },
    /// The gateway's own durable store (where it keeps vendor tokens) failed (503: the client did
    /// nothing wrong). The reason names the failure, never a stored value.
    #[error("the gateway's token store failed: {reason}")]
    TokenStore { reason: String },
}

impl AdapterError {
    /// True for failures that may succeed if retried (the vendor or the gateway's own store, not the
    /// request, was at fault).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Unavailable { .. } | Self::Timeout { .. } | Self::TokenStore { .. }
        )
    }
}
