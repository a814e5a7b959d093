//! SMART on FHIR for the gateway.

pub mod scopes;
