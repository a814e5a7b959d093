//! The integration tests of `adapter-zoom`, one binary (linking the FHIR model once): each module is a former
//! test file.

mod adapter;
mod client;
mod golden;
mod webhook;
