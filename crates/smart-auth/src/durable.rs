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
//! Login transactions (the pages between `/auth/authorize` and the code) and sign-in throttling
//! stay in each process's memory.

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
