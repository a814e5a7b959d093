//! The authorization server's memory kept in the gateway's store, so that it survives a restart and
//! is shared by replicas.
//!
//! The in-memory [`Store`](crate::store::Store) stays the working set: every check runs there,
//! with its bounds. Once a store is attached:
//! - every change is journaled ([`Journal`](crate::store::Journal)) and written after the request's
//!   critical section ([`SmartAuth::flush`]): codes, refresh families and refresh tokens as records
//!   (keyed by SHA-256, never the token itself), revocations as events;
//! - before a code, a refresh token or a launch is used, its stored record is loaded into memory
//!   (the store is the authority: another replica may have issued or used it);
//! - the contested steps are decided by the store, not by memory: a code's redemption and a refresh
//!   token's use are compare-and-swaps on the record's version, a client assertion's `jti` and a
//!   launch are claimed by an insert or a delete that only one replica can win;
//! - revocations are loaded at start and followed while running (every replica hears of one within
//!   a second), so the token verifier refuses a revoked token everywhere.
//!
//! The sign-in throttle's counters are records too (`auth.throttle`, written by the `throttle`
//! module itself, compare-and-swap on every attempt). Login transactions (the pages between
//! `/auth/authorize` and the code) stay in each process's memory.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast::error::RecvError;

use crate::store::{CodeRecord, Family, LaunchContext, RefreshRecord};
use crate::token::OAuthError;
use crate::{AuthError, SmartAuth};

/// Record kinds and the revocation topic.
pub(crate) const REVOKED: &str = "auth.revoked";
const CODE: &str = "auth.code";
const FAMILY: &str = "auth.family";
/// A revoked family's id, kept for the refresh lifetime: a replica that wrote the family again
/// after another revoked it (the two racing with one refresh token) does not bring it back.
const FAMILY_REVOKED: &str = "auth.family-revoked";
const REFRESH: &str = "auth.refresh";
const LAUNCH: &str = "auth.launch";
const ASSERTION: &str = "auth.assertion";

/// Kept past a token's expiry, as in memory (longer than the verifiers' clock leeway).
const LEEWAY: i64 = 120;

/// Records to write: key, and the encoded value with its expiry (`None`: delete).
type Rows = Vec<(String, Option<(Vec<u8>, i64)>)>;

fn hex(hash: &[u8; 32]) -> String {
    data_encoding::HEXLOWER.encode(hash)
}

fn store_failed(what: &str, e: &store::StoreError) -> OAuthError {
    tracing::error!(error = %e, "authorization store: {what} failed");
    OAuthError::unavailable()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

/// `exp jti`
fn revocation_payload(jti: &str, exp: i64) -> String {
    format!("{exp} {jti}")
}

fn parse_revocation(payload: &str) -> Option<(String, i64)> {
    let (exp, jti) = payload.split_once(' ')?;
    Some((jti.to_owned(), exp.parse().ok()?))
}

impl SmartAuth {
    /// Keeps the authorization server's memory in `store` from now on: loads the revocations it
    /// holds and follows new ones (from any replica). Call once, before serving.
    pub async fn attach_store(&self, db: store::Store) -> Result<(), AuthError> {
        if self.inner.durable.set(db.clone()).is_err() {
            return Err(AuthError::Store("a store is already attached".to_owned()));
        }
        let mut feed = db.follow();
        let revoked = db.events(REVOKED).await.map_err(|e| AuthError::Store(e.to_string()))?;
        {
            let mut memory = self.store();
            memory.journal.on = true;
            for event in &revoked {
                if let Some((jti, exp)) = parse_revocation(&event.payload) {
                    memory.revoked.insert(jti, exp);
                }
            }
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let event = match feed.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "authorization store: revocation feed lagged; reloading");
                        let Some(inner) = weak.upgrade() else { return };
                        let auth = SmartAuth { inner };
                        if let Some(db) = auth.durable()
                            && let Ok(all) = db.events(REVOKED).await
                        {
                            for event in all {
                                auth.apply_revocation(&event.payload);
                            }
                        }
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                if event.topic != REVOKED {
                    continue;
                }
                let Some(inner) = weak.upgrade() else { return };
                SmartAuth { inner }.apply_revocation(&event.payload);
            }
        });
        self.attach_keys(&db).await?;
        Ok(())
    }

    /// The attached store.
    pub(crate) fn durable(&self) -> Option<&store::Store> {
        self.inner.durable.get()
    }

    /// A revocation heard from the store (this replica's own come back too, harmlessly).
    fn apply_revocation(&self, payload: &str) {
        let Some((jti, exp)) = parse_revocation(payload) else {
            return;
        };
        let fresh = {
            let mut memory = self.store();
            memory.revoked.insert(jti.clone(), exp).is_none()
        };
        if fresh {
            self.forget_verified(std::slice::from_ref(&jti));
        }
    }

    /// Writes what the journal holds: revocations first (they must reach every replica), then the
    /// codes, families and refresh tokens changed (or deleted). A failure is logged; the records
    /// stay correct in this process's memory.
    pub(crate) async fn flush(&self) -> Result<(), OAuthError> {
        let Some(db) = self.durable() else { return Ok(()) };
        let (journal, codes, families, refresh) = {
            let mut memory = self.store();
            let journal = memory.journal.take();
            let codes: Rows = journal
                .codes
                .iter()
                .map(|h| (hex(h), memory.codes.get(h).map(|c| (encode(c), c.keep_until))))
                .collect();
            let families: Rows = journal
                .families
                .iter()
                .map(|id| (id.clone(), memory.families.get(id).map(|f| (encode(f), f.expires_at))))
                .collect();
            let refresh: Rows = journal
                .refresh
                .iter()
                .map(|h| (hex(h), memory.refresh.get(h).map(|r| (encode(r), r.expires_at))))
                .collect();
            (journal, codes, families, refresh)
        };
        let mut failed = None;
        for (jti, exp) in &journal.revoked {
            if let Err(e) = db.publish(REVOKED, &revocation_payload(jti, *exp), exp + LEEWAY).await {
                failed = Some(store_failed("publishing a revocation", &e));
            }
        }
        let tombstone_until = crate::util::now() + self.inner.refresh_ttl;
        for (id, row) in &families {
            if row.is_none()
                && let Err(e) = db.record_put(FAMILY_REVOKED, id, b"", tombstone_until).await
            {
                failed = Some(store_failed("recording a revoked family", &e));
            }
        }
        for (kind, rows) in [(CODE, codes), (FAMILY, families), (REFRESH, refresh)] {
            for (key, row) in rows {
                let done = match row {
                    Some((value, expires_at)) => db.record_put(kind, &key, &value, expires_at).await,
                    None => db.record_delete(kind, &key).await.map(|_| ()),
                };
                if let Err(e) = done {
                    failed = Some(store_failed("writing a record", &e));
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Loads a code's stored record into memory (or drops it from memory when the store has none);
    /// returns the record's version.
    pub(crate) async fn hydrate_code(&self, hash: &[u8; 32]) -> Result<Option<i64>, OAuthError> {
        let Some(db) = self.durable() else { return Ok(None) };
        let record = db
            .record_get(CODE, &hex(hash))
            .await
            .map_err(|e| store_failed("reading a code", &e))?;
        let mut memory = self.store();
        match record.and_then(|r| decode::<CodeRecord>(&r.value).map(|c| (c, r.version))) {
            Some((code, version)) => {
                memory.codes.insert(*hash, code);
                Ok(Some(version))
            }
            None => {
                memory.codes.remove(hash);
                Ok(None)
            }
        }
    }

    /// Loads a refresh token's stored record and its family into memory (or drops them when the
    /// store has none); returns the refresh record's version.
    pub(crate) async fn hydrate_refresh(&self, hash: &[u8; 32]) -> Result<Option<i64>, OAuthError> {
        let Some(db) = self.durable() else { return Ok(None) };
        let record = db
            .record_get(REFRESH, &hex(hash))
            .await
            .map_err(|e| store_failed("reading a refresh token", &e))?;
        let Some((refresh, version)) = record.and_then(|r| decode::<RefreshRecord>(&r.value).map(|d| (d, r.version)))
        else {
            self.store().refresh.remove(hash);
            return Ok(None);
        };
        let revoked = db
            .record_get(FAMILY_REVOKED, &refresh.family)
            .await
            .map_err(|e| store_failed("reading a refresh family", &e))?
            .is_some();
        let family = match revoked {
            true => None,
            false => db
                .record_get(FAMILY, &refresh.family)
                .await
                .map_err(|e| store_failed("reading a refresh family", &e))?
                .and_then(|r| decode::<Family>(&r.value)),
        };
        let mut memory = self.store();
        match family {
            Some(f) => {
                memory.families.insert(refresh.family.clone(), f);
            }
            None => {
                memory.families.remove(&refresh.family);
            }
        }
        memory.refresh.insert(*hash, refresh);
        Ok(Some(version))
    }

    /// Writes the in-memory code record over the stored one if nobody changed it since `version`
    /// was read; false when another replica did first.
    pub(crate) async fn claim_code(&self, hash: &[u8; 32], version: Option<i64>) -> Result<bool, OAuthError> {
        let (Some(db), Some(version)) = (self.durable(), version) else {
            return Ok(true);
        };
        let Some((value, keep)) = self.store().codes.get(hash).map(|c| (encode(c), c.keep_until)) else {
            return Ok(true);
        };
        db.record_replace(CODE, &hex(hash), version, &value, keep)
            .await
            .map_err(|e| store_failed("redeeming a code", &e))
    }

    /// Marks the stored refresh record as memory has it (used) if nobody changed it since
    /// `version` was read; false when another replica used it first.
    pub(crate) async fn claim_refresh(&self, hash: &[u8; 32], version: Option<i64>) -> Result<bool, OAuthError> {
        let (Some(db), Some(version)) = (self.durable(), version) else {
            return Ok(true);
        };
        let Some((value, exp)) = self.store().refresh.get(hash).map(|r| (encode(r), r.expires_at)) else {
            return Ok(true);
        };
        db.record_replace(REFRESH, &hex(hash), version, &value, exp)
            .await
            .map_err(|e| store_failed("using a refresh token", &e))
    }

    /// Claims a client assertion's `jti` in the store; false when it was already used (at any
    /// replica).
    pub(crate) async fn claim_assertion(&self, client_id: &str, jti: &str, exp: i64) -> Result<bool, OAuthError> {
        let Some(db) = self.durable() else { return Ok(true) };
        let key = format!("{client_id}\n{jti}");
        db.record_insert(ASSERTION, &key, b"", exp + LEEWAY)
            .await
            .map_err(|e| store_failed("recording a client assertion", &e))
    }

    /// Stores a new launch context.
    pub(crate) async fn store_launch(&self, id: &str, ctx: &LaunchContext, expires_at: i64) -> Result<(), OAuthError> {
        let Some(db) = self.durable() else { return Ok(()) };
        db.record_put(LAUNCH, id, &encode(ctx), expires_at)
            .await
            .map_err(|e| store_failed("storing a launch context", &e))
    }

    /// Takes a launch context from the store (single use: only one taker wins), into memory for
    /// the caller's `take_launch`. Without a store, memory alone decides.
    pub(crate) async fn hydrate_launch(&self, id: &str) -> Result<(), OAuthError> {
        let Some(db) = self.durable() else { return Ok(()) };
        let record = db
            .record_get(LAUNCH, id)
            .await
            .map_err(|e| store_failed("reading a launch context", &e))?;
        let won = match &record {
            Some(_) => db
                .record_delete(LAUNCH, id)
                .await
                .map_err(|e| store_failed("taking a launch context", &e))?,
            None => false,
        };
        let mut memory = self.store();
        memory.launches.remove(id);
        if won
            && let Some(r) = record
            && let Some(ctx) = decode::<LaunchContext>(&r.value)
        {
            memory.launches.insert(id.to_owned(), (ctx, r.expires_at));
        }
        Ok(())
    }
}

/// The signing keys kept in the store (see the `keys` module): loaded when the store is attached,
/// read again on every `auth.keys` event (and every minute, in case one was missed), rotated on
/// demand and on the `key_rotation` schedule.
impl SmartAuth {
    /// How often the stored keys are read again (seconds) without a rotation schedule; with one, half
    /// its period when that is shorter (at least a second).
    const KEYS_RELOAD_SECS: i64 = 60;
    /// The longest a rotation holds its lease.
    const ROTATION_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
    /// How long a rotation on demand, or the storing of the first key, waits for another rotation.
    const ROTATION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    fn keys_failed(e: ::store::StoreError) -> AuthError {
        AuthError::Store(format!("signing keys: {e}"))
    }

    /// At [`SmartAuth::attach_store`]: unless a key is configured (`signing_key_pem`, which stays
    /// current and is not stored), stores this process's key when the store holds none (the first
    /// replica's key becomes everyone's, and survives a restart), then signs with the store's
    /// current key and verifies with its retired ones. Follows `auth.keys` events and starts the
    /// rotation schedule. A store without an encryption key keeps no keys (a warning says so).
    async fn attach_keys(&self, db: &::store::Store) -> Result<(), AuthError> {
        if self.inner.keys.pinned() {
            tracing::info!("signing key: the configured key signs; it is not kept in the store");
            return Ok(());
        }
        match self.store_first_key(db).await {
            Ok(()) => {}
            Err(::store::StoreError::NoKey) => {
                tracing::warn!(
                    "signing keys: the store has no encryption key, so they are not kept there \
                     (a restart or another replica signs with another key)"
                );
                return Ok(());
            }
            Err(e) => return Err(Self::keys_failed(e)),
        }
        let created_at = self.reload_keys(db, false).await?;
        self.inner.keys.set_stored();
        self.follow_keys(db);
        self.schedule_keys();
        if let Some(created_at) = created_at
            && let Err(e) = self.rotate_if_due(db, created_at).await
        {
            tracing::warn!(error = %e, "signing key: the scheduled rotation failed; it is tried again later");
        }
        Ok(())
    }

    /// Stores the current key when the store holds none, under the rotation lease (so replicas
    /// starting together agree on one key; without the lease after a while, it goes ahead).
    async fn store_first_key(&self, db: &::store::Store) -> Result<(), ::store::StoreError> {
        let leased = db
            .lease_wait(
                crate::keys::ROTATION_LEASE,
                Self::ROTATION_LEASE_TTL,
                Self::ROTATION_WAIT,
            )
            .await?;
        let stored = crate::keys::store_first(db, &self.inner.keys.current()).await;
        if leased {
            let _ = db.lease_release(crate::keys::ROTATION_LEASE).await;
        }
        if stored? {
            tracing::info!(kid = %self.inner.keys.current().kid, "signing key: stored as the current key");
        }
        Ok(())
    }

    /// Reads the stored keys into the ring (`KeyRing::adopt_stored`); returns the current key's
    /// creation time.
    async fn reload_keys(&self, db: &::store::Store, keep_unlisted: bool) -> Result<Option<i64>, AuthError> {
        let stored = crate::keys::stored_keys(db).await.map_err(Self::keys_failed)?;
        let before = self.inner.keys.current().kid.clone();
        let created_at = self
            .inner
            .keys
            .adopt_stored(&stored, keep_unlisted)
            .map_err(AuthError::Key)?;
        let after = self.inner.keys.current();
        if after.kid != before {
            tracing::info!(kid = %after.kid, "signing key: signing with the store's current key");
        }
        Ok(created_at)
    }

    /// Rotates the signing key for every replica: a new key becomes the store's current one, the
    /// previous one is retired (it verifies, and stays in the JWKS, until `access_token_ttl` after
    /// now), `auth.keys` is published, and this process signs with the new key at once (the other
    /// replicas within a second). Returns the new kid. Needs an attached store keeping the keys (no
    /// `signing_key_pem`, and the store's encryption key).
    pub async fn rotate_key_stored(&self) -> Result<String, AuthError> {
        let Some(db) = self.durable().cloned() else {
            return Err(AuthError::Key(
                "no store is attached (SmartAuth::attach_store): rotate_key rotates in this process".to_owned(),
            ));
        };
        if !self.inner.keys.is_stored() {
            return Err(AuthError::Key(
                "the signing keys are not kept in the store (a configured signing_key_pem, or a store \
                 without an encryption key)"
                    .to_owned(),
            ));
        }
        let keep = self.inner.keys.grace().max(crate::keys::RETIRED_KEEP);
        let kid = Self::rotate_under_lease(&db, keep).await?;
        self.reload_keys(&db, true).await?;
        tracing::info!(kid = %kid, "signing key rotated");
        Ok(kid)
    }

    /// Rotates the signing key kept in `db` without a running server (`fhir-gateway keys rotate`):
    /// generates a key, makes it the store's current one, retires the previous one (its record is
    /// kept a day, the longest access-token lifetime the gateway allows) and publishes `auth.keys`,
    /// on which every running replica signs with the new key within a second (one started later
    /// loads it). Returns the new kid. `db` needs its encryption key; waits up to 10 s for a rotation
    /// in progress.
    pub async fn rotate_stored_key(db: &::store::Store) -> Result<String, AuthError> {
        let kid = Self::rotate_under_lease(db, crate::keys::RETIRED_KEEP).await?;
        tracing::info!(kid = %kid, "signing key rotated in the store");
        Ok(kid)
    }

    async fn rotate_under_lease(db: &::store::Store, keep: i64) -> Result<String, AuthError> {
        let leased = db
            .lease_wait(
                crate::keys::ROTATION_LEASE,
                Self::ROTATION_LEASE_TTL,
                Self::ROTATION_WAIT,
            )
            .await
            .map_err(Self::keys_failed)?;
        if !leased {
            return Err(AuthError::Store(
                "signing keys: another rotation is in progress; try again".to_owned(),
            ));
        }
        let rotated = crate::keys::rotate_stored(db, keep).await;
        let _ = db.lease_release(crate::keys::ROTATION_LEASE).await;
        rotated
    }

    /// Rotates when the current key (created at `created_at`) is older than `key_rotation`: the
    /// replica that takes the rotation lease checks again, rotates and releases it; the others
    /// hear of the new key. Returns the new kid when this replica rotated.
    async fn rotate_if_due(&self, db: &::store::Store, created_at: i64) -> Result<Option<String>, AuthError> {
        let Some(every) = self.inner.keys.rotate_every() else {
            return Ok(None);
        };
        if crate::util::now() - created_at < every {
            return Ok(None);
        }
        let leased = db
            .lease_acquire(crate::keys::ROTATION_LEASE, Self::ROTATION_LEASE_TTL)
            .await
            .map_err(Self::keys_failed)?;
        if !leased {
            return Ok(None);
        }
        let rotated = self.rotate_if_still_due(db, every).await;
        let _ = db.lease_release(crate::keys::ROTATION_LEASE).await;
        let rotated = rotated?;
        if let Some(kid) = &rotated {
            self.reload_keys(db, true).await?;
            tracing::info!(kid = %kid, "signing key rotated on schedule");
        }
        Ok(rotated)
    }

    /// Under the lease: rotates when the store's current key is still older than `every` seconds.
    async fn rotate_if_still_due(&self, db: &::store::Store, every: i64) -> Result<Option<String>, AuthError> {
        let stored = crate::keys::stored_keys(db).await.map_err(Self::keys_failed)?;
        let due = crate::keys::current_of(&stored).is_some_and(|(_, k)| crate::util::now() - k.created_at >= every);
        if !due {
            return Ok(None);
        }
        let keep = self.inner.keys.grace().max(crate::keys::RETIRED_KEEP);
        crate::keys::rotate_stored(db, keep).await.map(Some)
    }

    /// Reads the stored keys again on every `auth.keys` event (and when the feed lagged).
    fn follow_keys(&self, db: &::store::Store) {
        let mut feed = db.follow();
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                match feed.recv().await {
                    Ok(event) if event.topic != crate::keys::KEYS_TOPIC => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                let auth = SmartAuth { inner };
                let Some(db) = auth.durable().cloned() else { return };
                if let Err(e) = auth.reload_keys(&db, true).await {
                    tracing::warn!(error = %e, "signing keys: reading them again failed; retried later");
                }
            }
        });
    }

    /// Every `KEYS_RELOAD_SECS` (or half the rotation period): reads the stored keys again
    /// and rotates when the current one is due.
    fn schedule_keys(&self) {
        let every = self
            .inner
            .keys
            .rotate_every()
            .map_or(Self::KEYS_RELOAD_SECS, |p| (p / 2).clamp(1, Self::KEYS_RELOAD_SECS));
        let period = std::time::Duration::from_secs(u64::try_from(every).unwrap_or(1));
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { return };
                SmartAuth { inner }.key_upkeep().await;
            }
        });
    }

    async fn key_upkeep(&self) {
        let Some(db) = self.durable().cloned() else { return };
        let created_at = match self.reload_keys(&db, true).await {
            Ok(Some(created_at)) => created_at,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "signing keys: reading them again failed; retried later");
                return;
            }
        };
        if let Err(e) = self.rotate_if_due(&db, created_at).await {
            tracing::warn!(error = %e, "signing key: the scheduled rotation failed; it is tried again later");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_payloads_round_trip() {
        assert_eq!(
            parse_revocation(&revocation_payload("a b", 17)),
            Some(("a b".to_owned(), 17))
        );
        assert_eq!(parse_revocation("x"), None);
        assert_eq!(parse_revocation("notanumber jti"), None);
    }
}
