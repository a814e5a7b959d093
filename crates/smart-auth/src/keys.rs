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

/// Loads the persisted key, or generates and persists one. The directory is created owner-only
/// (0700); an existing directory or key file that another user owns, or that group or others may
/// access, is refused (another local user could have planted or read the key).
pub(crate) fn load_or_generate(dir: &Path) -> Result<SigningKey, String> {
    prepare_private_dir(dir)?;
    let path = dir.join(KEY_FILE);
    match std::fs::File::open(&path) {
        Ok(mut file) => {
            use std::io::Read;
            let meta = file
                .metadata()
                .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
            check_private(&path, &meta, "key file", "chmod 600")?;
            let mut pem = String::new();
            file.read_to_string(&mut pem)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            SigningKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, pem) = SigningKey::generate()?;
            write_key_file(&path, &pem)?;
            Ok(key)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Creates `dir` owner-only (0700, parents too) when it does not exist, and checks it when it does.
fn prepare_private_dir(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        Err(e) => return Err(format!("cannot inspect {}: {e}", dir.display())),
    }
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    check_private(dir, &meta, "directory", "chmod 700")
}

/// Refuses a file or directory another user owns or that group or others may access.
#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata, what: &str, fix: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let me = current_uid(path)?;
    if meta.uid() != me {
        return Err(format!(
            "the {what} {} is owned by uid {}, not by this process's user (uid {me}); refusing to use it \
             for the signing key",
            path.display(),
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the {what} {} has mode {mode:04o}: group or others may access it; refusing to use it for \
             the signing key (run {fix} {})",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &std::fs::Metadata, _: &str, _: &str) -> Result<(), String> {
    Ok(())
}

/// The effective uid of this process: from `/proc/self/status`, else the owner of a file it
/// creates in `near` (a file's owner is its creator's uid).
#[cfg(unix)]
fn current_uid(near: &Path) -> Result<u32, String> {
    use std::os::unix::fs::MetadataExt;
    let from_proc: Option<u32> = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|euid| euid.parse().ok())
    });
    if let Some(uid) = from_proc {
        return Ok(uid);
    }
    let dir = if near.is_dir() {
        near
    } else {
        near.parent().unwrap_or(near)
    };
    let probe = dir.join(format!(".owner-probe-{}", crate::util::random_token()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| format!("cannot learn this process's uid (writing in {}): {e}", dir.display()));
    let uid = file.and_then(|f| {
        f.metadata()
            .map(|m| m.uid())
            .map_err(|e| format!("cannot learn this process's uid: {e}"))
    });
    let _ = std::fs::remove_file(&probe);
    uid
}

/// Writes the key file (owner-only on Unix) through a temporary file of its own.
fn write_key_file(path: &Path, pem: &str) -> Result<(), String> {
    use std::io::Write;
    let tmp = path.with_extension(format!("pem.{}.tmp", crate::util::random_token()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let written = file
        .write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display())));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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

    #[cfg(unix)]
    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("smart-auth-{name}-{}", crate::util::random_token()))
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_fresh_data_dir_is_created_owner_only_with_its_parents() {
        let root = scratch("fresh");
        let dir = root.join("data").join("auth");
        load_or_generate(&dir).unwrap();
        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(mode_of(&root), 0o700);
        assert_eq!(mode_of(&dir.join(KEY_FILE)), 0o600);
        let leftovers: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            leftovers,
            vec![KEY_FILE.to_owned()],
            "no temporary or probe files are left"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[cfg(unix)]
    #[test]
    fn a_data_dir_others_may_access_is_refused() {
        let dir = scratch("open-dir");
        std::fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o777);
        let err = load_or_generate(&dir).err().unwrap();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains("0777") && err.contains("group or others"), "{err}");
        assert!(!dir.join(KEY_FILE).exists(), "nothing is written there");
        set_mode(&dir, 0o750);
        assert!(load_or_generate(&dir).is_err(), "group access is refused too");
        set_mode(&dir, 0o700);
        assert!(load_or_generate(&dir).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_may_read_is_refused() {
        let dir = scratch("open-key");
        let first = load_or_generate(&dir).unwrap();
        let key = dir.join(KEY_FILE);
        set_mode(&key, 0o644);
        let err = load_or_generate(&dir).err().unwrap();
        assert!(
            err.contains(&key.display().to_string()) && err.contains("0644"),
            "{err}"
        );
        set_mode(&key, 0o600);
        assert_eq!(load_or_generate(&dir).unwrap().kid, first.kid);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn the_process_uid_owns_what_it_creates() {
        use std::os::unix::fs::MetadataExt;
        let dir = scratch("uid");
        load_or_generate(&dir).unwrap();
        assert_eq!(current_uid(&dir).unwrap(), std::fs::metadata(&dir).unwrap().uid());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
