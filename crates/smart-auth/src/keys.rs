//! The gateway's own signing keys: load, generate, persist, rotate, publish.
//!
//! Without a store, the first key is the configured one (`signing_key_pem`), else the one in
//! `data_dir` (generated there on first start), else one generated in memory; [`KeyRing::rotate`]
//! replaces it in this process.
//!
//! With a store attached (and no configured key), the keys live in the store as sealed records
//! ([`STORED_KIND`], key = kid, value = [`StoredKey`]): exactly one current key (no `retired_at`;
//! should a race leave two, the newest `created_at` wins, then the greater kid) and the retired ones,
//! kept until their tokens have expired. Every replica signs with the store's current key and
//! verifies with the retired ones; a rotation ([`rotate_stored`]) writes the new key, retires the
//! previous one and publishes [`KEYS_TOPIC`], on which every replica reads the keys again. A
//! configured `signing_key_pem` is never stored: it stays the signing key (every replica must be
//! configured with the same one).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::AuthError;
use crate::util::{now, pem_decode, pem_encode};

/// The file a generated key is kept in, under `data_dir`.
pub(crate) const KEY_FILE: &str = "smart-signing-key.pem";

/// The record kind of the signing keys kept in the store (sealed; the key is the kid).
pub(crate) const STORED_KIND: &str = "auth.signing-key";
/// The event announcing a new current key (payload: its kid): every replica reads the keys again.
pub(crate) const KEYS_TOPIC: &str = "auth.keys";
/// The lease a rotation (and the storing of the first key) holds, so that two do not interleave.
pub(crate) const ROTATION_LEASE: &str = "auth.key-rotation";
/// A current key's record does not expire (9999-12-31T23:59:59Z).
const FAR_FUTURE: i64 = 253_402_300_799;
/// How long a retired key's record is kept (past its retirement) when the rotating side does not
/// know the access-token lifetime (`fhir-gateway keys rotate`): the longest the gateway allows, one
/// day, and a second.
pub(crate) const RETIRED_KEEP: i64 = 86_400 + 1;
/// Kept past a retired key's grace, and the lifetime of a [`KEYS_TOPIC`] event (the verifiers'
/// clock leeway).
const LEEWAY: i64 = 120;

/// One signing key.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    /// The public JWK (kid, kty, alg, use=sig and the key material).
    pub(crate) jwk: serde_json::Value,
    /// The private key as PEM (what the store keeps).
    pem: String,
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
            if let Ok(k) = Self::from_encoding_key(key, alg, pem.to_owned()) {
                return Ok(k);
            }
        }
        Err("not an ES256/ES384 (PKCS#8) or RSA private key".to_owned())
    }

    /// A new ES256 key and its PKCS#8 PEM.
    pub(crate) fn generate() -> Result<(Self, String), String> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| "key generation failed")?;
        let der = pair.to_pkcs8v1().map_err(|_| "key export failed")?;
        let pem = pem_encode("PRIVATE KEY", der.as_ref());
        let key = Self::from_encoding_key(EncodingKey::from_ec_der(der.as_ref()), Algorithm::ES256, pem.clone())?;
        Ok((key, pem))
    }

    fn from_encoding_key(encoding: EncodingKey, alg: Algorithm, pem: String) -> Result<Self, String> {
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
            pem,
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
    /// The key was configured (`signing_key_pem`): it is never replaced by the store's.
    pinned: bool,
    /// The rotation period in seconds (`key_rotation`), when the keys are kept in the store.
    rotate_every: Option<i64>,
    /// The keys are kept in the attached store (set when it is attached).
    stored: AtomicBool,
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
            pinned: false,
            rotate_every: None,
            stored: AtomicBool::new(false),
        }
    }

    /// `pinned`: the first key was configured and stays current even with a store attached;
    /// `rotate_every`: the rotation period (seconds) once the keys are kept in a store.
    pub(crate) fn with_policy(mut self, pinned: bool, rotate_every: Option<i64>) -> Self {
        self.pinned = pinned;
        self.rotate_every = rotate_every;
        self
    }

    /// True when the key was configured (`signing_key_pem`): the store does not keep it.
    pub(crate) fn pinned(&self) -> bool {
        self.pinned
    }

    /// The rotation period in seconds, if any.
    pub(crate) fn rotate_every(&self) -> Option<i64> {
        self.rotate_every
    }

    /// How long a retired key keeps verifying, in seconds.
    pub(crate) fn grace(&self) -> i64 {
        self.grace
    }

    /// True once the keys are kept in the attached store.
    pub(crate) fn is_stored(&self) -> bool {
        self.stored.load(Ordering::Acquire)
    }

    /// Marks the keys as kept in the store.
    pub(crate) fn set_stored(&self) {
        self.stored.store(true, Ordering::Release);
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

    /// Makes the store's keys ([`stored_keys`]) the ring's: its current key signs, its retired ones
    /// verify until `grace` after their retirement (a current key that lost a race counts as retired
    /// when the winner was made). With `keep_unlisted`, keys the ring holds that the store does not
    /// list stay as retired ones (the current one from now), so no token this process signed stops
    /// verifying early; without it (when a store is attached, before serving) they are dropped.
    /// Returns the current key's creation time, or `None` when the store has no current key (the
    /// ring is left as it is).
    pub(crate) fn adopt_stored(
        &self,
        stored: &[(String, StoredKey)],
        keep_unlisted: bool,
    ) -> Result<Option<i64>, String> {
        let Some((current_kid, current)) = current_of(stored) else {
            return Ok(None);
        };
        let at = now();
        let current_key = self
            .parse_known(current_kid, &current.pem)
            .map_err(|e| format!("the stored current key {current_kid}: {e}"))?;
        let mut retired: Vec<(Arc<SigningKey>, i64)> = Vec::new();
        for (kid, key) in stored {
            if kid == current_kid {
                continue;
            }
            let since = key.retired_at.unwrap_or(current.created_at);
            if since + self.grace < at {
                continue;
            }
            match self.parse_known(kid, &key.pem) {
                Ok(k) => retired.push((k, since)),
                Err(e) => tracing::warn!(kid = %kid, error = %e, "signing keys: an unusable stored key is ignored"),
            }
        }
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        if keep_unlisted {
            let previous: Vec<(Arc<SigningKey>, i64)> = std::iter::once((ring.current.clone(), at))
                .chain(ring.retired.iter().cloned())
                .collect();
            for (key, since) in previous {
                if key.kid != current_key.kid && !retired.iter().any(|(r, _)| r.kid == key.kid) {
                    retired.push((key, since));
                }
            }
        }
        retired.sort_by(|a, b| (a.1, &a.0.kid).cmp(&(b.1, &b.0.kid)));
        ring.current = current_key;
        ring.retired = retired;
        Ok(Some(current.created_at))
    }

    /// The key of `pem`, reusing the ring's when it already holds `kid`.
    fn parse_known(&self, kid: &str, pem: &str) -> Result<Arc<SigningKey>, String> {
        let known = {
            let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
            std::iter::once(&ring.current)
                .chain(ring.retired.iter().map(|(k, _)| k))
                .find(|k| k.kid == kid)
                .cloned()
        };
        if let Some(key) = known {
            return Ok(key);
        }
        let key = SigningKey::from_pem(pem)?;
        if key.kid != kid {
            return Err(format!("the key's thumbprint is {}", key.kid));
        }
        Ok(Arc::new(key))
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

/// A signing key as the store keeps it (the value of a [`STORED_KIND`] record, sealed).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredKey {
    /// The private key, PKCS#8 PEM.
    pub(crate) pem: String,
    /// Unix seconds.
    pub(crate) created_at: i64,
    /// When it stopped being the current key; `None` for the current one.
    #[serde(default)]
    pub(crate) retired_at: Option<i64>,
}

/// The keys the store holds, opened (a listing returns them sealed, so each is read again; one
/// that expired in between is skipped, an unreadable one ignored).
pub(crate) async fn stored_keys(db: &::store::Store) -> Result<Vec<(String, StoredKey)>, ::store::StoreError> {
    let mut keys = Vec::new();
    for (kid, _) in db.records(STORED_KIND, "").await? {
        let Some(record) = db.secret_get(STORED_KIND, &kid).await? else {
            continue;
        };
        match serde_json::from_slice::<StoredKey>(&record.value) {
            Ok(key) => keys.push((kid, key)),
            Err(e) => tracing::warn!(kid = %kid, error = %e, "signing keys: an unreadable stored key is ignored"),
        }
    }
    Ok(keys)
}

/// The current key of a stored set: the newest `created_at` (then the greatest kid) not retired.
pub(crate) fn current_of(keys: &[(String, StoredKey)]) -> Option<&(String, StoredKey)> {
    keys.iter()
        .filter(|(_, k)| k.retired_at.is_none())
        .max_by(|a, b| (a.1.created_at, &a.0).cmp(&(b.1.created_at, &b.0)))
}

async fn put_stored(
    db: &::store::Store,
    kid: &str,
    key: &StoredKey,
    expires_at: i64,
) -> Result<(), ::store::StoreError> {
    let value = serde_json::to_vec(key).map_err(|e| ::store::StoreError::Sealed(e.to_string()))?;
    db.secret_put(STORED_KIND, kid, &value, expires_at).await
}

/// Stores `key` as the current key when the store has none (and announces it); true when it did.
pub(crate) async fn store_first(db: &::store::Store, key: &SigningKey) -> Result<bool, ::store::StoreError> {
    if current_of(&stored_keys(db).await?).is_some() {
        return Ok(false);
    }
    let at = now();
    let stored = StoredKey {
        pem: key.pem.clone(),
        created_at: at,
        retired_at: None,
    };
    put_stored(db, &key.kid, &stored, FAR_FUTURE).await?;
    // Replicas that read the store before this write catch up.
    let _ = db.publish(KEYS_TOPIC, &key.kid, at + LEEWAY).await;
    Ok(true)
}

/// Generates a key and makes it the store's current one: it is written first (created now, or a
/// second after the newest current key when that is later, so it is the newest), then the previous
/// current keys (those older than it: of two rotations racing, the newer key stays current) are
/// retired as of its creation, their records kept `keep` seconds (and the leeway) more, then
/// [`KEYS_TOPIC`] is published. Returns the new kid. The caller holds [`ROTATION_LEASE`].
pub(crate) async fn rotate_stored(db: &::store::Store, keep: i64) -> Result<String, AuthError> {
    let failed = |e: ::store::StoreError| AuthError::Store(e.to_string());
    let newest = current_of(&stored_keys(db).await.map_err(failed)?).map(|(_, k)| k.created_at);
    let at = newest.map_or_else(now, |t| now().max(t + 1));
    let (key, pem) = SigningKey::generate().map_err(AuthError::Key)?;
    let new = StoredKey {
        pem,
        created_at: at,
        retired_at: None,
    };
    put_stored(db, &key.kid, &new, FAR_FUTURE).await.map_err(failed)?;
    for (kid, mut old) in stored_keys(db).await.map_err(failed)? {
        let older = (old.created_at, &kid) < (at, &key.kid);
        if old.retired_at.is_none() && older {
            old.retired_at = Some(at);
            put_stored(db, &kid, &old, at + keep + LEEWAY).await.map_err(failed)?;
        }
    }
    db.publish(KEYS_TOPIC, &key.kid, at + LEEWAY).await.map_err(failed)?;
    Ok(key.kid)
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

    fn stored(key: &SigningKey, created_at: i64, retired_at: Option<i64>) -> (String, StoredKey) {
        let stored = StoredKey {
            pem: key.pem.clone(),
            created_at,
            retired_at,
        };
        (key.kid.clone(), stored)
    }

    #[test]
    fn the_newest_unretired_stored_key_is_current() {
        let (a, _) = SigningKey::generate().unwrap();
        let (b, _) = SigningKey::generate().unwrap();
        let (c, _) = SigningKey::generate().unwrap();
        let t = now();
        let keys = vec![
            stored(&a, t - 10, None),
            stored(&b, t - 5, None),
            stored(&c, t, Some(t)),
        ];
        assert_eq!(current_of(&keys).map(|(kid, _)| kid.as_str()), Some(b.kid.as_str()));
        assert!(current_of(&keys[2..]).is_none());
        let round = serde_json::to_vec(&keys[0].1).unwrap();
        let back: StoredKey = serde_json::from_slice(&round).unwrap();
        assert_eq!((back.created_at, back.retired_at), (t - 10, None));
    }

    #[test]
    fn a_ring_adopts_the_stored_keys() {
        let (local, _) = SigningKey::generate().unwrap();
        let local_kid = local.kid.clone();
        let ring = KeyRing::new(local, 60, None);
        let (a, _) = SigningKey::generate().unwrap();
        let (b, _) = SigningKey::generate().unwrap();
        let (gone, _) = SigningKey::generate().unwrap();
        let t = now();
        let keys = vec![
            stored(&a, t - 30, Some(t - 10)),
            stored(&b, t - 10, None),
            stored(&gone, t - 500, Some(t - 400)),
        ];
        // At attach: the local key is dropped, the long-retired one is not loaded.
        assert_eq!(ring.adopt_stored(&keys, false).unwrap(), Some(t - 10));
        assert_eq!(ring.current().kid, b.kid);
        let kids: Vec<String> = ring.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kids, [b.kid.clone(), a.kid.clone()]);
        assert!(ring.find(&local_kid).is_none());
        assert!(ring.find(&gone.kid).is_none());
        // A reload after an in-process rotation keeps the key the store does not know.
        let rotated = ring.rotate().unwrap();
        assert_eq!(ring.adopt_stored(&keys, true).unwrap(), Some(t - 10));
        assert_eq!(ring.current().kid, b.kid);
        assert!(ring.find(&rotated).is_some());
        assert!(ring.find(&a.kid).is_some());
        // No current key in the store: the ring stays as it is.
        assert_eq!(ring.adopt_stored(&keys[..1], false).unwrap(), None);
        assert_eq!(ring.current().kid, b.kid);
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
