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

/// Locks a mutex, carrying on with the data if a panicking thread poisoned it (every simulator's
/// state is plain data a panic cannot leave half-written in a way that matters to a test).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
