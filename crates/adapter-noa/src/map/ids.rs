//! The native-id scheme inside the `noa` source.
//!
//! A session is one visit: its Encounter and (once summarised) its summary's DocumentReference
//! both have the id `noa-{sessionId}` ([`fhir_id`]). Noa's session ids are lower-case UUIDs, which
//! are FHIR id characters; any other id is encoded reversibly by [`adapter::id`] (`noa-x.{base32}`).
//!
//! Every resource carries the session id as an identifier under
//! `adapter::systems::native_id_system("noa", kind::SESSION)`; the Encounter also carries the
//! episode (the EHR appointment) under [`kind::EPISODE`], and its service provider names the
//! facility under [`kind::FACILITY`].

use adapter::IdError;

/// The source name of this adapter, the prefix of every FHIR id it mints.
pub const SOURCE: &str = "noa";

/// The `kind` part of the identifier systems (`adapter::systems::native_id_system(SOURCE, kind)`).
pub mod kind {
    /// A Noa session id (`urn:fhir-gateway:id:noa:session`).
    pub const SESSION: &str = "session";
    /// An episode id, the EHR's appointment id (`urn:fhir-gateway:id:noa:episode`).
    pub const EPISODE: &str = "episode";
    /// A facility's external id, the EHR's office id (`urn:fhir-gateway:id:noa:facility`).
    pub const FACILITY: &str = "facility";
}

/// The FHIR id of a session: `noa-{sessionId}` (encoded when needed).
pub fn fhir_id(session_id: &str) -> Result<String, IdError> {
    adapter::id::fhir_id(SOURCE, session_id)
}

/// True when `native` has the shape of a Noa session id: a UUID (`8-4-4-4-12` hex digits, either
/// case). Anything else names no session, and is answered "not found" without asking Noa (which
/// would refuse it as malformed).
pub fn is_session_id(native: &str) -> bool {
    let b = native.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_the_native_ids() {
        assert_eq!(
            fhir_id("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap(),
            "noa-0f8fad5b-d9cb-469f-a165-70867728950e"
        );
        assert_eq!(fhir_id("a_b").unwrap(), "noa-x.MFPWE");
        assert!(is_session_id("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(is_session_id("0F8FAD5B-D9CB-469F-A165-70867728950E"));
        for bad in [
            "",
            "s1",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "0f8fad5b_d9cb-469f-a165-70867728950e",
        ] {
            assert!(!is_session_id(bad), "{bad}");
        }
        assert_eq!(
            adapter::systems::native_id_system(SOURCE, kind::SESSION),
            "urn:fhir-gateway:id:noa:session"
        );
    }
}
