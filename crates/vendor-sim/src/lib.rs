//! Simulators of the vendor APIs the gateway fronts, written from the vendors' own documents so
//! that they check the adapters instead of mirroring them.
//!
//! Each simulator serves a deterministic synthetic dataset over real HTTP on loopback and can
//! inject the failures a production integration meets (see [`faults`]).

mod delivery;
pub mod drchrono;
pub mod faults;
pub mod noa;
pub mod zoom;
