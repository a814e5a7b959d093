//! The integration tests of `gateway`, one binary (linking the FHIR model once): each module is a former
//! test file.

mod abuse;
mod cache;
mod cli;
mod engine;
mod metrics;
mod openapi;
mod process;
mod proptests;
mod replicas;
mod request_limits;
mod resolver;
mod restart;
