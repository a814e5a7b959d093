//! The gateway's durable state: one interface, two real backends.
//!
//! - **SQLite**, embedded (the default): one file under the data directory, created and migrated
//!   on first start. One gateway process per file.
//! - **PostgreSQL**, for several replicas sharing one database: what one replica writes, the others
//!   read; [`Store::publish`]ed events reach every replica within a second (`LISTEN`/`NOTIFY`,
//!   with polling behind it).
//!
//! Both run the same versioned migrations (`migrations/sqlite`, `migrations/postgres`: the same
//! tables, each in its dialect) at [`Store::open`]. Queries go through sqlx's `Any` driver with
//! `$n` parameters, which both dialects read.
//!
//! What is kept:
//! - [`records`](Store::record_get): opaque values by kind and key with a version for
//!   compare-and-swap and an expiry (the authorization server's codes, refresh families, launch
//!   contexts, assertion ids);
//! - [`events`](Store::publish): changes every replica must hear of (revocations, cache
//!   evictions), kept until they expire;
//! - [`vendor tokens`](Store::vendor_tokens): sealed with AES-256-GCM ([`SealingKey`]), never
//!   plain text on disk;
//! - [`leases`](Store::lease_acquire): one holder at a time across replicas;
//! - [`audit events`](Store::audit_append): the audit trail, append-only (an `UPDATE` is refused
//!   by a trigger on both backends), searched with keyset paging, swept after its retention.

mod audit;
mod seal;
#[cfg(feature = "test-support")]
pub mod testing;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row};
use tokio::sync::broadcast;

pub use audit::{AuditQuery, AuditRow};
pub use seal::SealingKey;

/// The PostgreSQL notification channel events are announced on.
const CHANNEL: &str = "fhir_gateway_events";

/// How often a replica looks for events when no notification arrived.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// Events are read again this far back (milliseconds): a row committed after a later-numbered one
/// is still seen.
const LOOKBACK_MS: i64 = 5_000;

/// Where the store lives. Prints a PostgreSQL URL without its password.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file (created with its directory when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://user:password@host:port/db`).
    Postgres(String),
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&without_password(url)).finish(),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Which backend a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// What went wrong. Messages never carry a stored value or a password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened or migrated; `setting` names the configuration to look at.
    #[error("{setting}: {reason}")]
    Open { setting: &'static str, reason: String },
    /// A query failed.
    #[error("store {operation}: {reason}")]
    Query { operation: &'static str, reason: String },
    /// A sealed value could not be sealed or opened.
    #[error("store: {0}")]
    Sealed(String),
    /// A secret was to be stored or read without `store.encryption_key_file`.
    #[error("store.encryption_key_file: is required to keep vendor tokens")]
    NoKey,
}

fn query_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::Query {
        operation,
        reason: redact_error(&e),
    }
}

/// A database error without what could carry a secret (a connection URL's password).
fn redact_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => format!("database error: {}", db.message()),
        sqlx::Error::PoolTimedOut => "no connection available in time".to_owned(),
        sqlx::Error::Io(io) => format!("i/o: {io}"),
        sqlx::Error::Tls(_) => "TLS error".to_owned(),
        sqlx::Error::Configuration(_) => "invalid configuration".to_owned(),
        sqlx::Error::Protocol(p) => format!("protocol: {p}"),
        other => other.to_string(),
    }
}

/// One stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub value: Vec<u8>,
    /// Increases with every replacement (for compare-and-swap).
    pub version: i64,
    /// Unix seconds; an expired record reads as absent.
    pub expires_at: i64,
}

/// One published event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub seq: i64,
    pub topic: String,
    pub payload: String,
}

/// A vendor account's OAuth tokens (sealed at rest).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorTokens {
    pub refresh: Option<String>,
    pub access: Option<String>,
    /// Unix seconds at which the access token should be replaced.
    pub access_refresh_at: Option<i64>,
}

impl std::fmt::Debug for VendorTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorTokens")
            .field("refresh", &self.refresh.as_ref().map(|_| "***"))
            .field("access", &self.access.as_ref().map(|_| "***"))
            .field("access_refresh_at", &self.access_refresh_at)
            .finish()
    }
}

/// The stored tokens with their generation (increases with every save).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTokens {
    pub tokens: VendorTokens,
    pub generation: i64,
}

/// What [`Store::open`] needs.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    pub location: Location,
    /// The key vendor tokens are sealed with; without it they cannot be stored.
    pub sealing_key: Option<SealingKey>,
    /// Connections at most (PostgreSQL; SQLite uses a few).
    pub max_connections: u32,
}

impl StoreSettings {
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self {
            location: Location::Sqlite(path.into()),
            sealing_key: None,
            max_connections: 8,
        }
    }

    pub fn postgres(url: impl Into<String>) -> Self {
        Self {
            location: Location::Postgres(url.into()),
            sealing_key: None,
            max_connections: 8,
        }
    }

    pub fn with_sealing_key(mut self, key: SealingKey) -> Self {
        self.sealing_key = Some(key);
        self
    }
}

/// The store. Cheap to clone; clones share the pool and the event feed.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    backend: Backend,
    /// The PostgreSQL URL, for the notification listener.
    pg_url: Option<String>,
    key: Option<SealingKey>,
    /// A random name of this process (lease holder).
    node: String,
    feed: broadcast::Sender<Event>,
    /// Recently delivered event numbers (so each is delivered once), and whether the follower runs.
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    seqs: BTreeSet<i64>,
    following: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

/// The migrations, in order: (version, description, SQLite text, PostgreSQL text).
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "state",
        include_str!("../migrations/sqlite/0001_state.sql"),
        include_str!("../migrations/postgres/0001_state.sql"),
    ),
    (
        2,
        "budgets",
        include_str!("../migrations/sqlite/0002_budgets.sql"),
        include_str!("../migrations/postgres/0002_budgets.sql"),
    ),
    (
        3,
        "audit",
        include_str!("../migrations/sqlite/0003_audit.sql"),
        include_str!("../migrations/postgres/0003_audit.sql"),
    ),
    (
        4,
        "audit chunks",
        include_str!("../migrations/sqlite/0004_audit_chunks.sql"),
        include_str!("../migrations/postgres/0004_audit_chunks.sql"),
    ),
];

fn migrator(backend: Backend) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, sqlite, postgres)| {
            let sql = match backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
            };
            Migration::new(
                *version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn random_name() -> String {
    let mut bytes = [0u8; 12];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    data_encoding::HEXLOWER.encode(&bytes)
}

impl Store {
    /// Opens (creating an SQLite file and its directory when missing) and migrates the store.
    /// Errors name the setting: `store.path`, `store.url` or `store.encryption_key_file`.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, setting, pool, pg_url) = match &settings.location {
            Location::Sqlite(path) => {
                let pool = open_sqlite(path).await?;
                (Backend::Sqlite, "store.path", pool, None)
            }
            Location::Postgres(url) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(StoreError::Open {
                        setting: "store.url",
                        reason: "must be a postgres:// URL".to_owned(),
                    });
                }
                let pool = AnyPoolOptions::new()
                    .max_connections(settings.max_connections.max(2))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await
                    .map_err(|e| StoreError::Open {
                        setting: "store.url",
                        reason: format!("cannot connect: {}", redact_error(&e)),
                    })?;
                (Backend::Postgres, "store.url", pool, Some(url.clone()))
            }
        };
        migrator(backend).run(&pool).await.map_err(|e| StoreError::Open {
            setting,
            reason: format!("migration failed: {e}"),
        })?;
        let (feed, _) = broadcast::channel(1024);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                backend,
                pg_url,
                key: settings.sealing_key.clone(),
                node: random_name(),
                feed,
                seen: Mutex::new(Seen::default()),
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The migrations applied (version numbers), oldest first.
    pub async fn migrations(&self) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version")
            .fetch_all(&self.inner.pool)
            .await
            .map_err(query_error("migrations"))?;
        rows.iter()
            .map(|r| r.try_get::<i64, _>(0).map_err(query_error("migrations")))
            .collect()
    }

    /// Runs one SQL statement as given; returns the rows it changed. For tests only (what the API
    /// never does, such as changing an audit event).
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(sql)
            .execute(&self.inner.pool)
            .await
            .map_err(query_error("execute_raw"))?;
        Ok(done.rows_affected())
    }

    // ---- records ----

    /// The record of `kind`/`key`, unless absent or expired.
    pub async fn record_get(&self, kind: &str, key: &str) -> Result<Option<Record>, StoreError> {
        let row = sqlx::query(
            "SELECT value, version, expires_at FROM records WHERE kind = $1 AND key = $2 AND expires_at > $3",
        )
        .bind(kind)
        .bind(key)
        .bind(now())
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(query_error("record_get"))?;
        row.map(|r| record_of(&r)).transpose()
    }

    /// Stores a new record; false when a live one already has this key (an expired one is
    /// replaced).
    pub async fn record_insert(
        &self,
        kind: &str,
        key: &str,
        value: &[u8],
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO records (kind, key, value, version, expires_at) VALUES ($1, $2, $3, 1, $4) \
             ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, version = records.version + 1, \
             expires_at = excluded.expires_at WHERE records.expires_at <= $5",
        )
        .bind(kind)
        .bind(key)
        .bind(value)
        .bind(expires_at)
        .bind(now())
        .execute(&self.inner.pool)
        .await
        .map_err(query_error("record_insert"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a record whatever was there (a new version of it).
    pub async fn record_put(&self, kind: &str, key: &str, value: &[u8], expires_at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO records (kind, key, value, version, expires_at) VALUES ($1, $2, $3, 1, $4) \
             ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, version = records.version + 1, \
             expires_at = excluded.expires_at",
        )
        .bind(kind)
        .bind(key)
        .bind(value)
        .bind(expires_at)
        .execute(&self.inner.pool)
        .await
        .map_err(query_error("record_put"))?;
        Ok(())
    }

    /// Replaces the record when its version is still `version` (compare-and-swap); false when
    /// another writer replaced or removed it first.
    pub async fn record_replace(
        &self,
        kind: &str,
        key: &str,
        version: i64,
        value: &[u8],
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE records SET value = $1, version = version + 1, expires_at = $2 \
             WHERE kind = $3 AND key = $4 AND version = $5",
        )
        .bind(value)
        .bind(expires_at)
        .bind(kind)
        .bind(key)
        .bind(version)
        .execute(&self.inner.pool)
        .await
        .map_err(query_error("record_replace"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a record; true when there was one.
    pub async fn record_delete(&self, kind: &str, key: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM records WHERE kind = $1 AND key = $2")
            .bind(kind)
            .bind(key)
            .execute(&self.inner.pool)
            .await
            .map_err(query_error("record_delete"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Live records of `kind` (whose key starts with `prefix`).
    pub async fn records(&self, kind: &str, prefix: &str) -> Result<Vec<(String, Record)>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, value, version, expires_at FROM records \
             WHERE kind = $1 AND expires_at > $2 AND substr(key, 1, CAST($3 AS INTEGER)) = $4 ORDER BY key",
        )
        .bind(kind)
        .bind(now())
        .bind(prefix.chars().count() as i64)
        .bind(prefix)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(query_error("records"))?;
        rows.iter()
            .map(|r| {
                let key: String = r.try_get(0).map_err(query_error("records"))?;
                let value: Vec<u8> = r.try_get(1).map_err(query_error("records"))?;
                let version: i64 = r.try_get(2).map_err(query_error("records"))?;
                let expires_at: i64 = r.try_get(3).map_err(query_error("records"))?;
                Ok((
                    key,
                    Record {
                        value,
                        version,
                        expires_at,
                    },
                ))
            })
            .collect()
    }

    /// Drops expired records, events and leases; returns how many rows went.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let t = now();
        let mut gone = 0;
        for sql in [
            "DELETE FROM records WHERE expires_at <= $1",
            "DELETE FROM events WHERE expires_at <= $1",
            // Budget windows are an hour at most: two days is long past.
            "DELETE FROM budgets WHERE created_at <= $1 - 172800",
        ] {
            gone += sqlx::query(sql)
                .bind(t)
                .execute(&self.inner.pool)
                .await
                .map_err(query_error("sweep"))?
                .rows_affected();
        }
        Ok(gone)
    }

    // ---- events ----

    /// Publishes an event every replica hears of (through [`Store::follow`]) until `expires_at`;
    /// returns its number. This process's followers hear of it at once.
    pub async fn publish(&self, topic: &str, payload: &str, expires_at: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO events (topic, payload, created_ms, expires_at) VALUES ($1, $2, $3, $4) RETURNING seq",
        )
        .bind(topic)
        .bind(payload)
        .bind(now_ms())
        .bind(expires_at)
        .fetch_one(&self.inner.pool)
        .await
        .map_err(query_error("publish"))?;
        let seq: i64 = row.try_get(0).map_err(query_error("publish"))?;
        if self.inner.backend == Backend::Postgres {
            // Wakes the other replicas' followers; polling finds the event if this is lost.
            let _ = sqlx::query(&format!("NOTIFY {CHANNEL}"))
                .execute(&self.inner.pool)
                .await;
        }
        self.deliver(vec![Event {
            seq,
            topic: topic.to_owned(),
            payload: payload.to_owned(),
        }]);
        Ok(seq)
    }

    /// Live events of `topic`, oldest first (what a starting process loads).
    pub async fn events(&self, topic: &str) -> Result<Vec<Event>, StoreError> {
        let rows =
            sqlx::query("SELECT seq, topic, payload FROM events WHERE topic = $1 AND expires_at > $2 ORDER BY seq")
                .bind(topic)
                .bind(now())
                .fetch_all(&self.inner.pool)
                .await
                .map_err(query_error("events"))?;
        rows.iter().map(event_of).collect()
    }

    /// Every event published from now on, by any replica (each delivered once per process). The
    /// first call starts the follower task (a `LISTEN` on PostgreSQL, and a poll every half
    /// second on both backends).
    pub fn follow(&self) -> broadcast::Receiver<Event> {
        let receiver = self.inner.feed.subscribe();
        let start = {
            let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
            !std::mem::replace(&mut seen.following, true)
        };
        if start {
            let weak = Arc::downgrade(&self.inner);
            tokio::spawn(follow_events(weak, now_ms() - LOOKBACK_MS));
        }
        receiver
    }

    /// Sends the events not delivered yet to this process's followers.
    fn deliver(&self, events: Vec<Event>) {
        deliver(&self.inner, events);
    }

    // ---- vendor tokens ----

    /// The stored tokens of a vendor account, opened with the sealing key.
    pub async fn vendor_tokens(&self, account: &str) -> Result<Option<StoredTokens>, StoreError> {
        let row = sqlx::query("SELECT sealed, generation FROM vendor_tokens WHERE account = $1")
            .bind(account)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(query_error("vendor_tokens"))?;
        let Some(row) = row else { return Ok(None) };
        let key = self.inner.key.as_ref().ok_or(StoreError::NoKey)?;
        let sealed: Vec<u8> = row.try_get(0).map_err(query_error("vendor_tokens"))?;
        let generation: i64 = row.try_get(1).map_err(query_error("vendor_tokens"))?;
        let plain = key
            .open(&token_context(account), &sealed)
            .map_err(|e| StoreError::Sealed(format!("the tokens of {account}: {e}")))?;
        let tokens = serde_json::from_slice(&plain)
            .map_err(|_| StoreError::Sealed(format!("the tokens of {account} are unreadable")))?;
        Ok(Some(StoredTokens { tokens, generation }))
    }

    /// Seals and stores a vendor account's tokens (durably, before the caller uses them);
    /// returns the new generation.
    pub async fn save_vendor_tokens(&self, account: &str, tokens: &VendorTokens) -> Result<i64, StoreError> {
        let key = self.inner.key.as_ref().ok_or(StoreError::NoKey)?;
        let plain = serde_json::to_vec(tokens).map_err(|e| StoreError::Sealed(e.to_string()))?;
        let sealed = key.seal(&token_context(account), &plain).map_err(StoreError::Sealed)?;
        let row = sqlx::query(
            "INSERT INTO vendor_tokens (account, sealed, generation, updated_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (account) DO UPDATE SET sealed = excluded.sealed, \
             generation = vendor_tokens.generation + 1, updated_at = excluded.updated_at RETURNING generation",
        )
        .bind(account)
        .bind(sealed)
        .bind(now())
        .fetch_one(&self.inner.pool)
        .await
        .map_err(query_error("save_vendor_tokens"))?;
        row.try_get(0).map_err(query_error("save_vendor_tokens"))
    }

    // ---- shared rate budgets ----

    /// Takes one call from budget `name` in window `window` when fewer than `limit` were taken
    /// there (by any replica); false when the window is spent.
    pub async fn budget_take(&self, name: &str, window: i64, limit: u32) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO budgets (name, window_index, used, created_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (name, window_index) DO UPDATE SET used = budgets.used + 1 \
             WHERE budgets.used < $4",
        )
        .bind(name)
        .bind(window)
        .bind(now())
        .bind(i64::from(limit))
        .execute(&self.inner.pool)
        .await
        .map_err(query_error("budget_take"))?;
        Ok(done.rows_affected() == 1 && limit > 0)
    }

    /// Calls taken from budget `name` in window `window`.
    pub async fn budget_used(&self, name: &str, window: i64) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT used FROM budgets WHERE name = $1 AND window_index = $2")
            .bind(name)
            .bind(window)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(query_error("budget_used"))?;
        row.map_or(Ok(0), |r| r.try_get(0).map_err(query_error("budget_used")))
    }

    // ---- sealed records ----

    /// Stores a secret record (a signing key): sealed like vendor tokens, bound to its kind and key.
    pub async fn secret_put(&self, kind: &str, key: &str, plain: &[u8], expires_at: i64) -> Result<(), StoreError> {
        let sealer = self.inner.key.as_ref().ok_or(StoreError::NoKey)?;
        let sealed = sealer
            .seal(&format!("record:{kind}:{key}"), plain)
            .map_err(StoreError::Sealed)?;
        self.record_put(kind, key, &sealed, expires_at).await
    }

    /// A secret record, opened; `None` when absent or expired.
    pub async fn secret_get(&self, kind: &str, key: &str) -> Result<Option<Record>, StoreError> {
        let Some(mut record) = self.record_get(kind, key).await? else {
            return Ok(None);
        };
        let sealer = self.inner.key.as_ref().ok_or(StoreError::NoKey)?;
        record.value = sealer
            .open(&format!("record:{kind}:{key}"), &record.value)
            .map_err(|e| StoreError::Sealed(format!("{kind} {key}: {e}")))?;
        Ok(Some(record))
    }

    // ---- leases ----

    /// Takes the lease `name` for `ttl` when nobody else holds it (or this process already does);
    /// false when another holder has it.
    pub async fn lease_acquire(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        let t = now_ms();
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE leases.until_ms <= $4 OR leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(&self.inner.node)
        .bind(t + ttl.as_millis() as i64)
        .bind(t)
        .execute(&self.inner.pool)
        .await
        .map_err(query_error("lease_acquire"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes the lease, waiting (polling) up to `wait` for another holder to release it or for
    /// its lease to run out.
    pub async fn lease_wait(&self, name: &str, ttl: Duration, wait: Duration) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.lease_acquire(name, ttl).await? {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Gives up a lease this process holds.
    pub async fn lease_release(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(&self.inner.node)
            .execute(&self.inner.pool)
            .await
            .map_err(query_error("lease_release"))?;
        Ok(())
    }

    /// Closes the pool (waits for connections in use).
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }
}

fn token_context(account: &str) -> String {
    format!("vendor-tokens:{account}")
}

fn record_of(r: &AnyRow) -> Result<Record, StoreError> {
    Ok(Record {
        value: r.try_get(0).map_err(query_error("record"))?,
        version: r.try_get(1).map_err(query_error("record"))?,
        expires_at: r.try_get(2).map_err(query_error("record"))?,
    })
}

fn event_of(r: &AnyRow) -> Result<Event, StoreError> {
    Ok(Event {
        seq: r.try_get(0).map_err(query_error("event"))?,
        topic: r.try_get(1).map_err(query_error("event"))?,
        payload: r.try_get(2).map_err(query_error("event"))?,
    })
}

async fn open_sqlite(path: &Path) -> Result<AnyPool, StoreError> {
    let open_error = |reason: String| StoreError::Open {
        setting: "store.path",
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| open_error(format!("cannot create {}: {e}", dir.display())))?;
    }
    let absolute = std::path::absolute(path).map_err(|e| open_error(format!("{}: {e}", path.display())))?;
    let text = absolute
        .to_str()
        .filter(|p| !p.contains('?') && !p.contains('#'))
        .ok_or_else(|| {
            open_error(format!(
                "{} is not a usable path (UTF-8, no '?' or '#')",
                path.display()
            ))
        })?;
    let url = format!("sqlite://{text}?mode=rwc");
    let pool = AnyPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _| {
            Box::pin(async move {
                // WAL: readers do not wait for the writer; FULL: a committed write survives a crash
                // of the machine, not only of the process.
                for pragma in [
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = FULL",
                    "PRAGMA busy_timeout = 10000",
                    "PRAGMA foreign_keys = ON",
                ] {
                    sqlx::query(pragma).execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
        .map_err(|e| open_error(format!("cannot open {}: {}", path.display(), redact_error(&e))))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The file holds the authorization server's state: owner only.
        let _ = std::fs::set_permissions(&absolute, std::fs::Permissions::from_mode(0o600));
    }
    Ok(pool)
}

fn deliver(inner: &Inner, events: Vec<Event>) {
    let mut seen = inner.seen.lock().unwrap_or_else(|e| e.into_inner());
    for event in events {
        if seen.seqs.insert(event.seq) {
            let _ = inner.feed.send(event);
        }
    }
    // Keep the numbers a lookback could return again.
    while seen.seqs.len() > 100_000 {
        seen.seqs.pop_first();
    }
}

/// The follower: wakes on a notification (PostgreSQL) or every [`POLL_EVERY`], and delivers the
/// events created since a little before the last look. Ends when the store is dropped.
async fn follow_events(inner: std::sync::Weak<Inner>, mut since_ms: i64) {
    let mut listener = None;
    loop {
        let Some(strong) = inner.upgrade() else { return };
        if listener.is_none()
            && let Some(url) = &strong.pg_url
        {
            match sqlx::postgres::PgListener::connect(url).await {
                Ok(mut l) => match l.listen(CHANNEL).await {
                    Ok(()) => listener = Some(l),
                    Err(e) => tracing::warn!(error = %redact_error(&e), "store: LISTEN failed; polling"),
                },
                Err(e) => tracing::warn!(error = %redact_error(&e), "store: cannot listen; polling"),
            }
        }
        let started = now_ms();
        match sqlx::query(
            "SELECT seq, topic, payload FROM events WHERE created_ms >= $1 AND expires_at > $2 ORDER BY seq",
        )
        .bind(since_ms - LOOKBACK_MS)
        .bind(now())
        .fetch_all(&strong.pool)
        .await
        {
            Ok(rows) => {
                let events: Vec<Event> = rows.iter().filter_map(|r| event_of(r).ok()).collect();
                deliver(&strong, events);
                since_ms = started;
            }
            Err(e) => tracing::warn!(error = %redact_error(&e), "store: reading events failed"),
        }
        drop(strong);
        match listener.as_mut() {
            Some(l) => {
                // A notification or the poll interval, whichever comes first; a broken listener
                // is reconnected on the next round.
                match tokio::time::timeout(POLL_EVERY, l.try_recv()).await {
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(_)) => listener = None,
                }
            }
            None => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_prints_without_its_password() {
        let shown = format!("{:?}", Location::Postgres("postgres://gw:s3cret@db:5432/gw".into()));
        assert_eq!(shown, "Postgres(\"postgres://gw:***@db:5432/gw\")");
        assert!(format!("{:?}", Location::Postgres("postgres://gw@db/gw".into())).contains("gw@db"));
    }
}
