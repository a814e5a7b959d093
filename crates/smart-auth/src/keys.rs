//! The gateway's own signing keys: load, generate, persist, rotate, publish.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;

use crate::util::{now, pem_decode, pem_encode};

/// The file a generated key is kept in, under `data_dir`.
pub(crate) const KEY_FILE: &str = "smart-signing-key.pem";

/// One signing key.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    /// The public JWK (kid, kty, alg, use=sig and the key material).
    pub(crate) jwk: serde_json::Value,
}

impl SigningKey {
    /// From a PEM private key: ES256 (P-256), ES384 (P-384) or RS256 (RSA, PKCS#8 or PKCS#1).
    pub(crate) fn from_pem(pem: &str) -> Result<Self, String> {
        let (label, _) = pem_decode(pem).ok_or("not a PEM private key")?;
        let bytes = pem.as_bytes();
        let candidates: Vec<(Algorithm, Result<EncodingKey, _>)> = match label.as_str() {
            "PRIVATE KEY" => vec![
                (Algorithm::ES256, EncodingKey::from_ec_pem(bytes)),
                (Algorithm::ES384, EncodingKey::from_ec_pem(bytes)),
                (Algorithm::RS256, EncodingKey::from_rsa_pem(bytes)),
            ],
            "RSA PRIVATE KEY" => vec![(Algorithm::RS256, EncodingKey::from_rsa_pem(bytes))],
            "EC PRIVATE KEY" => {
                return Err("SEC1 'EC PRIVATE KEY' PEM is not supported: convert it to PKCS#8 \
                            (openssl pkcs8 -topk8 -nocrypt)"
                    .to_owned());
            }
            other => return Err(format!("PEM block '{other}' is not a private key")),
        };
        for (alg, key) in candidates {
            let Ok(key) = key else { continue };
            if let Ok(k) = Self::from_encoding_key(key, alg) {
                return Ok(k);
            }
        }
        Err("not an ES256/ES384 (PKCS#8) or RSA private key".to_owned())
    }

    /// A new ES256 key and its PKCS#8 PEM.
    pub(crate) fn generate() -> Result<(Self, String), String> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| "key generation failed")?;
        let der = pair.to_pkcs8v1().map_err(|_| "key export failed")?;
        let key = Self::from_encoding_key(EncodingKey::from_ec_der(der.as_ref()), Algorithm::ES256)?;
        Ok((key, pem_encode("PRIVATE KEY", der.as_ref())))
    }

    fn from_encoding_key(encoding: EncodingKey, alg: Algorithm) -> Result<Self, String> {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(|e| format!("unusable key: {e}"))?;
        // Proves the key signs with `alg` (an RSA key below 2048 bits, a P-384 key for ES256 fail here).
        let probe = jsonwebtoken::encode(&Header::new(alg), &serde_json::json!({"probe": true}), &encoding)
            .map_err(|e| format!("the key cannot sign {alg:?}: {e}"))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| format!("unusable key: {e}"))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key: {e}"))?;
        let mut check = jsonwebtoken::Validation::new(alg);
        check.validate_exp = false;
        check.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(&probe, &decoding, &check)
            .map_err(|e| format!("the key does not verify its own signature: {e}"))?;
        let jwk = serde_json::to_value(&jwk).map_err(|e| e.to_string())?;
        Ok(Self {
            kid,
            alg,
            encoding,
            decoding,
            jwk,
        })
    }

    /// Signs `claims` with this key; `typ` is the JOSE header type (`at+jwt`, `JWT`).
    pub(crate) fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, String> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }
}

/// The current key and the retired ones still verifying.
pub(crate) struct KeyRing {
    ring: RwLock<Ring>,
    /// How long a retired key keeps verifying (the access-token lifetime).
    grace: i64,
    /// Where a new current key is written.
    persist_to: Option<PathBuf>,
}

struct Ring {
    current: Arc<SigningKey>,
    /// Replaced keys and when they were replaced.
    retired: Vec<(Arc<SigningKey>, i64)>,
}

impl KeyRing {
    pub(crate) fn new(first: SigningKey, grace: i64, persist_to: Option<PathBuf>) -> Self {
        Self {
            ring: RwLock::new(Ring {
                current: Arc::new(first),
                retired: Vec::new(),
            }),
            grace,
            persist_to,
        }
    }

    /// The key new tokens are signed with.
    pub(crate) fn current(&self) -> Arc<SigningKey> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).current.clone()
    }

    /// The key with this kid, if it still verifies.
    pub(crate) fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.sweep();
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        std::iter::once(&ring.current)
            .chain(ring.retired.iter().map(|(k, _)| k))
            .find(|k| k.kid == kid)
            .cloned()
    }

    /// The published JWKS (current key first).
    pub(crate) fn jwks(&self) -> serde_json::Value {
        self.sweep();
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<serde_json::Value> = std::iter::once(&ring.current)
            .chain(ring.retired.iter().rev().map(|(k, _)| k))
            .map(|k| k.jwk.clone())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Generates a new current key; the previous ones verify for `grace` seconds more.
    pub(crate) fn rotate(&self) -> Result<String, String> {
        let (key, pem) = SigningKey::generate()?;
        if let Some(path) = &self.persist_to {
            write_key_file(path, &pem)?;
        }
        let kid = key.kid.clone();
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut ring.current, Arc::new(key));
        ring.retired.push((old, now()));
        Ok(kid)
    }

    fn sweep(&self) {
        let at = now();
        let expired = |r: &(Arc<SigningKey>, i64)| r.1 + self.grace < at;
        if self
            .ring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .retired
            .iter()
            .any(expired)
        {
            self.ring
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retired
                .retain(|r| !expired(r));
        }
    }
}

/// Loads the persisted key, or generates and persists one.
pub(crate) fn load_or_generate(dir: &Path) -> Result<SigningKey, String> {
    let path = dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(pem) => SigningKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let (key, pem) = SigningKey::generate()?;
            write_key_file(&path, &pem)?;
            Ok(key)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes the key file (owner-only on Unix) through a temporary file.
fn write_key_file(path: &Path, pem: &str) -> Result<(), String> {
    use std::io::Write;
    let tmp = path.with_extension("pem.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_publish_a_thumbprint_kid() {
        let (key, pem) = SigningKey::generate().unwrap();
        assert_eq!(key.alg, Algorithm::ES256);
        assert_eq!(key.jwk["kid"], key.kid.as_str());
        assert_eq!(key.jwk["kty"], "EC");
        assert_eq!(key.jwk["crv"], "P-256");
        assert_eq!(key.jwk["alg"], "ES256");
        assert_eq!(key.jwk["use"], "sig");
        assert!(key.jwk.get("d").is_none(), "no private material");
        let again = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(again.kid, key.kid);
    }

    #[test]
    fn bad_pems_are_named() {
        assert!(SigningKey::from_pem("hello").is_err());
        let err = SigningKey::from_pem(&pem_encode("EC PRIVATE KEY", b"x")).err().unwrap();
        assert!(err.contains("PKCS#8"));
        assert!(SigningKey::from_pem(&pem_encode("PRIVATE KEY", b"garbage")).is_err());
        assert!(SigningKey::from_pem(&pem_encode("CERTIFICATE", b"garbage")).is_err());
    }

    #[test]
    fn rsa_keys_load_from_pkcs8_and_pkcs1() {
        use aws_lc_rs::encoding::AsDer;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = pair.as_der().unwrap();
        let key = SigningKey::from_pem(&pem_encode("PRIVATE KEY", pkcs8.as_ref())).unwrap();
        assert_eq!(key.alg, Algorithm::RS256);
        assert_eq!(key.jwk["kty"], "RSA");
        let token = key.sign("JWT", &serde_json::json!({"exp": now() + 60})).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
    }

    #[test]
    fn key_files_persist() {
        let dir = std::env::temp_dir().join(format!("smart-auth-keys-{}", crate::util::random_token()));
        let a = load_or_generate(&dir).unwrap();
        let b = load_or_generate(&dir).unwrap();
        assert_eq!(a.kid, b.kid);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
