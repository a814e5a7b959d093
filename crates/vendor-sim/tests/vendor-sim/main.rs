//! The integration tests of `vendor-sim`, one binary (linking the FHIR model once): each module is a former
//! test file.

mod drchrono;
mod noa;
mod zoom;
