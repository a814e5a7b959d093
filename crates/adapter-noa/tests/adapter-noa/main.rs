//! The integration tests of `adapter-noa`, one binary (linking the FHIR model once): each module is a former
//! test file.

mod adapter;
mod client;
mod golden;
