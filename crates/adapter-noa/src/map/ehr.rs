//! References into the EHR a session belongs to.
//!
//! Noa's `episodeId`, `doctorId` and `facilityId` are the EHR's own ids (the adapter creates
//! sessions from EHR appointments), and the metadata names the EHR patient. Each becomes the
//! gateway id of the configured EHR source (`Appointment/drchrono-9001`). That literal reference is
//! used only when the adapter checked it exists, or could not check it because the EHR was failing
//! ([`NoaCtx::resolved`]); otherwise the reference is logical: `type`, an `identifier` under the
//! EHR's native-id system (`urn:fhir-gateway:id:drchrono:appointment`, the identifier the EHR
//! adapter publishes its own resources under) and a `display`. Both forms are
//! [`adapter::ehr::EhrRef`]'s; the context says which references resolved.
//!
//! [`NoaCtx::resolved`]: super::NoaCtx::resolved

pub use adapter::ehr::{EhrKind, EhrRef};
