//! The FHIR id scheme: `{source}-{native}`.
//!
//! FHIR ids are `[A-Za-z0-9\-\.]{1,64}`. A native id made only of those characters (and not starting
//! with the [`ENCODED_PREFIX`]) is used verbatim; any other native id (a Zoom meeting UUID with `/`,
//! `+` or `=`, say) is encoded as `x.` followed by its bytes in unpadded base32. The scheme is
//! reversible: [`FhirId::parse`] gives back the exact native id. Source names never contain `-`, so
//! the first `-` always separates the source from the native part.

use std::fmt;

use data_encoding::BASE32_NOPAD;

/// Marks a native id that had to be encoded.
pub const ENCODED_PREFIX: &str = "x.";

/// Longest FHIR id.
pub const MAX_ID_LEN: usize = 64;

/// A source (vendor adapter) name: lowercase ASCII letters and digits, e.g. `drchrono`.
pub type SourceName = &'static str;

/// A gateway resource id split into its source and native parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FhirId {
    source: String,
    native: String,
}

/// Why an id could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("a FHIR id is 1 to 64 characters from [A-Za-z0-9-.]")]
    InvalidFhirId,
    #[error("the id has no source prefix")]
    NoSource,
    #[error("the encoded part of the id is not valid")]
    BadEncoding,
    #[error("the native id is too long to make a FHIR id of at most 64 characters")]
    TooLong,
    #[error("the source name must be lowercase letters and digits")]
    BadSource,
    #[error("the native id is empty")]
    EmptyNative,
}

impl FhirId {
    /// Builds the id of a native vendor id, encoding it if needed.
    pub fn new(source: &str, native: &str) -> Result<Self, IdError> {
        if !is_source_name(source) {
            return Err(IdError::BadSource);
        }
        if native.is_empty() {
            return Err(IdError::EmptyNative);
        }
        let id = Self {
            source: source.to_owned(),
            native: native.to_owned(),
        };
        if id.encoded_native().len() + source.len() + 1 > MAX_ID_LEN {
            return Err(IdError::TooLong);
        }
        Ok(id)
    }

    /// Parses a FHIR id made by [`FhirId::to_string`].
    pub fn parse(id: &str) -> Result<Self, IdError> {
        if !is_valid_fhir_id(id) {
            return Err(IdError::InvalidFhirId);
        }
        let (source, rest) = id.split_once('-').ok_or(IdError::NoSource)?;
        if !is_source_name(source) {
            return Err(IdError::NoSource);
        }
        if rest.is_empty() {
            return Err(IdError::EmptyNative);
        }
        let native = match rest.strip_prefix(ENCODED_PREFIX) {
            Some(enc) => {
                let bytes = BASE32_NOPAD.decode(enc.as_bytes()).map_err(|_| IdError::BadEncoding)?;
                let native = String::from_utf8(bytes).map_err(|_| IdError::BadEncoding)?;
                // Only ids that needed encoding are encoded: anything else is a forgery.
                if !needs_encoding(&native) {
                    return Err(IdError::BadEncoding);
                }
                native
            }
            None => rest.to_owned(),
        };
        Ok(Self {
            source: source.to_owned(),
            native,
        })
    }

    /// The source (adapter) name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The vendor's own id, exactly as the vendor wrote it.
    pub fn native(&self) -> &str {
        &self.native
    }

    fn encoded_native(&self) -> String {
        if needs_encoding(&self.native) {
            format!("{ENCODED_PREFIX}{}", BASE32_NOPAD.encode(self.native.as_bytes()))
        } else {
            self.native.clone()
        }
    }
}

impl fmt::Display for FhirId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.source, self.encoded_native())
    }
}

fn needs_encoding(native: &str) -> bool {
    native.starts_with(ENCODED_PREFIX) || !native.bytes().all(is_id_byte)
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

/// True when `name` can be a source name: one or more lowercase ASCII letters and digits.
pub fn is_source_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// True when `id` is a valid FHIR id (`[A-Za-z0-9\-\.]{1,64}`).
pub fn is_valid_fhir_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(is_id_byte)
}

/// Builds the FHIR id string for a native id (`drchrono`, `"123"` → `drchrono-123`).
pub fn fhir_id(source: &str, native: &str) -> Result<String, IdError> {
    FhirId::new(source, native).map(|id| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_are_kept_verbatim() {
        assert_eq!(fhir_id("drchrono", "12345").unwrap(), "drchrono-12345");
        assert_eq!(fhir_id("drchrono", "a-b.c").unwrap(), "drchrono-a-b.c");
        let id = FhirId::parse("drchrono-a-b.c").unwrap();
        assert_eq!((id.source(), id.native()), ("drchrono", "a-b.c"));
    }

    #[test]
    fn unsafe_ids_round_trip_through_encoding() {
        for native in ["4444AAAiAAAAAiAiAiiAii==", "ab/cd+ef==", "x.looks-encoded", "ü", "a b"] {
            let s = fhir_id("zoom", native).unwrap();
            assert!(is_valid_fhir_id(&s), "{s}");
            assert!(s.starts_with("zoom-x."), "{s}");
            assert_eq!(FhirId::parse(&s).unwrap().native(), native);
        }
    }

    #[test]
    fn bad_ids_are_refused() {
        assert_eq!(FhirId::parse("nodash"), Err(IdError::NoSource));
        assert_eq!(FhirId::parse("drchrono-"), Err(IdError::EmptyNative));
        assert_eq!(FhirId::parse("-12"), Err(IdError::NoSource));
        assert_eq!(FhirId::parse("Dr-12"), Err(IdError::NoSource));
        assert_eq!(FhirId::parse("a/b"), Err(IdError::InvalidFhirId));
        assert_eq!(FhirId::parse(&"a".repeat(65)), Err(IdError::InvalidFhirId));
        assert_eq!(FhirId::parse("zoom-x.!!"), Err(IdError::InvalidFhirId));
        assert_eq!(FhirId::parse("zoom-x.1"), Err(IdError::BadEncoding));
        // "x." + base32("abc") would decode to an id that needs no encoding: not canonical.
        let forged = format!("zoom-x.{}", BASE32_NOPAD.encode(b"abc"));
        assert_eq!(FhirId::parse(&forged), Err(IdError::BadEncoding));
        assert_eq!(fhir_id("zoom", &"a/".repeat(40)), Err(IdError::TooLong));
        assert_eq!(fhir_id("Zoom", "1"), Err(IdError::BadSource));
        assert_eq!(fhir_id("zoom", ""), Err(IdError::EmptyNative));
    }

    #[test]
    fn source_names_are_lowercase_letters_and_digits() {
        assert!(is_source_name("ehr2"));
        for bad in ["", "Ehr", "e-hr", "e hr", "é"] {
            assert!(!is_source_name(bad), "{bad:?}");
        }
    }
}
