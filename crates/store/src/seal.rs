//! Secrets at rest: AES-256-GCM under the key of `store.encryption_key_file`.
//!
//! A sealed value is `1 | nonce (12 bytes) | ciphertext | tag (16 bytes)`; the associated data
//! names what the value is (the vendor account), so a sealed value copied to another row does not
//! open there.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The format byte of a sealed value.
const FORMAT: u8 = 1;

/// The key, as read from its file. Prints as `***`.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(***)")
    }
}

impl SealingKey {
    /// A new random key.
    pub fn generate() -> Result<Self, String> {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| "the system random generator failed".to_owned())?;
        Ok(Self(key))
    }

    /// Reads a key file: 32 bytes written as 64 hexadecimal digits or as base64 (standard or
    /// URL-safe, padded or not); surrounding whitespace is ignored.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(text.trim())
    }

    /// Parses the text of a key file (see [`SealingKey::from_file`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            data_encoding::HEXLOWER_PERMISSIVE.decode(text.as_bytes()).ok()
        } else {
            let unpadded = text.trim_end_matches('=');
            data_encoding::BASE64_NOPAD
                .decode(unpadded.as_bytes())
                .or_else(|_| data_encoding::BASE64URL_NOPAD.decode(unpadded.as_bytes()))
                .ok()
        };
        match decoded {
            Some(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                Ok(Self(key))
            }
            _ => Err("must hold a 32-byte key as 64 hexadecimal digits or base64".to_owned()),
        }
    }

    /// The key as a key file holds it (64 hexadecimal digits and a newline).
    pub fn to_file_text(&self) -> String {
        format!("{}\n", data_encoding::HEXLOWER.encode(&self.0))
    }

    /// Writes a new random key to `path` (owner-only permissions), refusing to overwrite a file.
    pub fn create_file(path: &Path) -> Result<Self, String> {
        let key = Self::generate()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        std::io::Write::write_all(&mut file, key.to_file_text().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(key)
    }

    fn aead(&self) -> LessSafeKey {
        // A 32-byte key is always a valid AES-256 key.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("a 32-byte AES-256 key"))
    }

    /// Seals `plain`, bound to `context`.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "the system random generator failed".to_owned())?;
        let mut in_out = plain.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| "sealing failed".to_owned())?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(FORMAT);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Opens what [`SealingKey::seal`] sealed for the same `context`; an error when the key, the
    /// context or the bytes differ.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
        let Some((&FORMAT, rest)) = sealed.split_first() else {
            return Err("not a sealed value of a known format".to_owned());
        };
        if rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err("the sealed value is truncated".to_owned());
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce".to_owned())?;
        let mut in_out = body.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| "the sealed value does not open with this key (a different key, or altered)".to_owned())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let key = SealingKey::generate().unwrap();
        let sealed = key.seal("drchrono", b"refresh-token").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"refresh"), "no plain text");
        assert_eq!(key.open("drchrono", &sealed).unwrap(), b"refresh-token");
        assert!(key.open("zoom", &sealed).is_err());
        assert!(SealingKey::generate().unwrap().open("drchrono", &sealed).is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(key.open("drchrono", &altered).is_err());
        assert!(key.open("drchrono", &sealed[..10]).is_err());
        assert!(key.open("drchrono", &[]).is_err());
        // Two seals of the same value differ (a fresh nonce each time).
        assert_ne!(key.seal("drchrono", b"x").unwrap(), key.seal("drchrono", b"x").unwrap());
    }

    #[test]
    fn key_files_hold_hex_or_base64() {
        let key = SealingKey::generate().unwrap();
        let hex = key.to_file_text();
        assert_eq!(SealingKey::parse(hex.trim()).unwrap().0, key.0);
        let b64 = data_encoding::BASE64.encode(&key.0);
        assert_eq!(SealingKey::parse(&b64).unwrap().0, key.0);
        let b64url = data_encoding::BASE64URL_NOPAD.encode(&key.0);
        assert_eq!(SealingKey::parse(&b64url).unwrap().0, key.0);
        for bad in ["", "abc", &"0".repeat(63), &data_encoding::BASE64.encode(&[0u8; 16])] {
            assert!(SealingKey::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format!("{key:?}"), "SealingKey(***)");
    }
}
