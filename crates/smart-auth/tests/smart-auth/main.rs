//! The integration tests of `smart-auth`, one binary (linking the FHIR model once): each module is a former
//! test file.

mod attacks;
mod audit;
mod authorization_code;
mod client_credentials;
mod common;
mod discovery;
mod durable;
mod external_idp;
mod hardening;
mod keys_store;
mod throttle_store;
