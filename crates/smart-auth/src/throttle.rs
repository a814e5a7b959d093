//! The sign-in throttle: failed sign-ins counted per username and per client address; past a
//! threshold each failure doubles a lock-out (one second, two, four … up to a cap). An attempt is
//! counted, under one lock, before its password is checked, so parallel guesses cannot slip past
//! the count, and an attempt while locked out is refused before any Argon2 work. The tables are
//! bounded: the longest-idle counters are forgotten first.
//!
//! With a store attached ([`SmartAuth::attach_store`](crate::SmartAuth::attach_store)) the counters
//! are also records there, so replicas share them and a restart keeps them: kind `auth.throttle`,
//! key `user:<SHA-256 hex of the lower-cased username>` or `ip:<address bucket>`, a small JSON value
//! ([`Stored`]: failures, the last failure, the attempts being checked) expiring when memory would
//! forget the counter. The store decides:
//! - an attempt reads both records and is refused while either is locked out; otherwise it is
//!   added to each as being checked (an id with a deadline, should its replica die mid-check) by a
//!   compare-and-swap on the record's version, read again and retried a bounded number of times
//!   when another replica changed it first, and refused there too when that change locked it out;
//! - its outcome (a failure counted, the username's failures forgotten on success, nothing but the
//!   attempt taken back when no password was checked) is written the same way, from a task of its
//!   own, before the sign-in is answered;
//! - memory keeps counting as well and takes the counters the store returns. When the store fails
//!   (or does not answer in time) the attempt is decided, or its outcome kept, by memory alone, with
//!   a warning that names neither the username nor the address.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::store::{Record, Store as Db, StoreError};
use serde::{Deserialize, Serialize};

use crate::util::sha256;

/// The first lock-out; each further failure doubles it.
const FIRST_LOCKOUT: Duration = Duration::from_secs(1);
/// A counter idle this long after its lock-out ended is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// The stored counters' record kind.
const KIND: &str = "auth.throttle";
/// An attempt being checked counts in the stored counters at most this long (its replica may stop
/// mid-check): longer than any password check (at most 10 s waiting for a slot, then Argon2).
const CHECK_DEADLINE: Duration = Duration::from_secs(60);
/// Compare-and-swap rounds on one stored counter before giving up.
const MAX_ROUNDS: u32 = 16;
/// How long the throttle waits for the store before deciding in memory.
const STORE_WAIT: Duration = Duration::from_secs(5);
/// An attempt that could not be counted in the store because other attempts kept changing the
/// counter first is refused this long.
const CONTENDED: Locked = Locked { retry_after: 1 };

/// A client address as the throttle and the per-address bounds count it: IPv4 (an IPv4-mapped IPv6
/// address counts as its IPv4 address), IPv6 by /64 (one subscriber's usual allocation), or unknown
/// (no connection information: every such request shares one key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientIp(Option<IpAddr>);

impl ClientIp {
    pub(crate) fn of(addr: Option<SocketAddr>) -> Self {
        Self(addr.map(|a| match a.ip() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
        }))
    }

    /// The peer of a request served with
    /// `axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())` (or
    /// given by axum's `MockConnectInfo` in tests); unknown without either.
    pub(crate) fn from_extensions(extensions: &http::Extensions) -> Self {
        Self::of(peer_addr(extensions))
    }

    /// The key of its stored counter: `ip:192.0.2.7`, `ip:2001:db8:1:2::/64`, `ip:unknown`.
    fn store_key(self) -> String {
        match self.0 {
            Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
            Some(IpAddr::V6(v6)) => format!("ip:{v6}/64"),
            None => "ip:unknown".to_owned(),
        }
    }
}

/// The peer of a request served with
/// `axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())` (or given by
/// axum's `MockConnectInfo` in tests), as the connection gave it.
pub(crate) fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    use axum::extract::connect_info::{ConnectInfo, MockConnectInfo};
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| extensions.get::<MockConnectInfo<SocketAddr>>().map(|m| m.0))
}

/// The throttle's settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Failures per username before the first lock-out.
    pub(crate) user_failures: u32,
    /// Failures per client address before the first lock-out.
    pub(crate) ip_failures: u32,
    /// The longest lock-out.
    pub(crate) max_lockout: Duration,
    /// Counters kept per table.
    pub(crate) max_entries: usize,
}

impl Limits {
    /// A username counter's threshold and longest lock-out.
    fn per_user(&self) -> (u32, Duration) {
        (self.user_failures.max(1), self.max_lockout)
    }

    /// An address counter's threshold and longest lock-out.
    fn per_ip(&self) -> (u32, Duration) {
        (self.ip_failures.max(1), self.max_lockout)
    }
}

/// The lock-out after `failures` failures: none below `threshold`, then one second doubling with
/// each failure, at most `cap`.
pub(crate) fn backoff(failures: u32, threshold: u32, cap: Duration) -> Duration {
    if failures < threshold {
        return Duration::ZERO;
    }
    let doublings = (failures - threshold).min(31);
    FIRST_LOCKOUT.saturating_mul(1u32 << doublings).min(cap)
}

/// The sign-in is refused until the lock-out ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Locked {
    /// Whole seconds to wait (at least one).
    pub(crate) retry_after: u64,
}

/// Refused for `wait`, rounded up to whole seconds.
fn locked(wait: Duration) -> Locked {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Locked {
        retry_after: secs.max(1),
    }
}

#[derive(Clone, Copy, Debug)]
struct Counter {
    /// Failures counted (not reset by time; forgotten with the counter).
    failures: u32,
    /// Attempts being checked now: counted as failures until they end.
    pending: u32,
    /// The last failure (or the first attempt).
    last: Instant,
}

impl Counter {
    /// When the lock-out of the failures so far ends.
    fn locked_until(&self, threshold: u32, cap: Duration) -> Instant {
        self.last + backoff(self.failures, threshold, cap)
    }

    fn forgotten(&self, now: Instant, threshold: u32, cap: Duration) -> bool {
        self.pending == 0 && now >= self.locked_until(threshold, cap) + FORGET_AFTER
    }
}

/// Counters by key, bounded.
struct Table<K> {
    counters: HashMap<K, Counter>,
    threshold: u32,
    /// The longest lock-out.
    cap: Duration,
    max_entries: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(threshold: u32, cap: Duration, max_entries: usize) -> Self {
        Self {
            counters: HashMap::new(),
            threshold: threshold.max(1),
            cap,
            max_entries: max_entries.max(1),
        }
    }

    /// How long `key` must still wait, if it is locked out: by its failures' lock-out, or because
    /// the attempts being checked now would reach the threshold.
    fn locked_for(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let (threshold, cap) = (self.threshold, self.cap);
        let counter = self.counters.get(key)?;
        if counter.forgotten(now, threshold, cap) {
            self.counters.remove(key);
            return None;
        }
        let until = counter.locked_until(threshold, cap);
        if until > now {
            return Some(until - now);
        }
        (counter.pending > 0 && counter.failures.saturating_add(counter.pending) >= threshold).then_some(FIRST_LOCKOUT)
    }

    /// Counts an attempt about to be checked.
    fn begin(&mut self, key: K, now: Instant) {
        if !self.counters.contains_key(&key) && self.counters.len() >= self.max_entries {
            self.make_room(now);
        }
        let counter = self.counters.entry(key).or_insert(Counter {
            failures: 0,
            pending: 0,
            last: now,
        });
        counter.pending = counter.pending.saturating_add(1);
    }

    /// Ends an attempt: a failure is counted, a success on a username resets it, an attempt that
    /// was never checked leaves no trace.
    fn end(&mut self, key: &K, now: Instant, outcome: Outcome, reset_on_success: bool) {
        let Some(counter) = self.counters.get_mut(key) else {
            if outcome == Outcome::Failed {
                // Forgotten meanwhile (the table was full): the failure still counts.
                if self.counters.len() >= self.max_entries {
                    self.make_room(now);
                }
                self.counters.insert(
                    key.clone(),
                    Counter {
                        failures: 1,
                        pending: 0,
                        last: now,
                    },
                );
            }
            return;
        };
        counter.pending = counter.pending.saturating_sub(1);
        match outcome {
            Outcome::Failed => {
                counter.failures = counter.failures.saturating_add(1);
                counter.last = now;
            }
            Outcome::Succeeded if reset_on_success => counter.failures = 0,
            Outcome::Succeeded | Outcome::NotChecked => {}
        }
        if counter.failures == 0 && counter.pending == 0 {
            self.counters.remove(key);
        }
    }

    /// Takes the failures and the last failure of `key` as the store has them (this process's
    /// attempts being checked stay counted): memory follows what every replica counted, and so
    /// decides with it when the store cannot be reached.
    fn adopt(&mut self, key: &K, failures: u32, last: Instant, now: Instant) {
        if failures == 0 {
            let idle = match self.counters.get_mut(key) {
                Some(counter) => {
                    counter.failures = 0;
                    counter.pending == 0
                }
                None => false,
            };
            if idle {
                self.counters.remove(key);
            }
            return;
        }
        if !self.counters.contains_key(key) && self.counters.len() >= self.max_entries {
            self.make_room(now);
        }
        let counter = self.counters.entry(key.clone()).or_insert(Counter {
            failures,
            pending: 0,
            last,
        });
        counter.failures = failures;
        counter.last = last;
    }

    /// Drops the forgotten counters, then, if still full, the longest-idle one (counters below the
    /// threshold before those of locked-out keys).
    fn make_room(&mut self, now: Instant) {
        let (threshold, cap) = (self.threshold, self.cap);
        self.counters.retain(|_, c| !c.forgotten(now, threshold, cap));
        if self.counters.len() < self.max_entries {
            return;
        }
        let victim = self
            .counters
            .iter()
            .min_by_key(|(_, c)| (c.failures.saturating_add(c.pending) >= threshold, c.last))
            .map(|(k, _)| k.clone());
        if let Some(victim) = victim {
            self.counters.remove(&victim);
        }
    }
}

/// How a counted attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeeded,
    Failed,
    /// No password was checked (the server was busy).
    NotChecked,
}

struct Tables {
    /// By the SHA-256 of the lowercased username (a fixed-size key, whatever the form sent).
    users: Table<[u8; 32]>,
    ips: Table<ClientIp>,
}

/// Failed sign-ins per username and per client address.
pub(crate) struct Throttle {
    tables: Mutex<Tables>,
    limits: Limits,
}

/// A counted sign-in attempt. Dropped without an outcome (its request went away mid-check) it
/// counts as a failure.
pub(crate) struct Attempt<'a> {
    throttle: &'a Throttle,
    user: [u8; 32],
    ip: ClientIp,
    /// Its part in the stored counters, with a store attached.
    ticket: Option<Ticket>,
    ended: bool,
}

impl Attempt<'_> {
    /// The password was right: the username's failures are forgotten (the address's are not).
    pub(crate) async fn succeeded(mut self) {
        self.end(Outcome::Succeeded).await;
    }

    /// The password was wrong.
    pub(crate) async fn failed(mut self) {
        self.end(Outcome::Failed).await;
    }

    /// No password was checked.
    pub(crate) async fn not_checked(mut self) {
        self.end(Outcome::NotChecked).await;
    }

    /// Ends the attempt in memory, then in the store: the outcome is written (by a task of its own,
    /// which a request going away cannot cut short) before the caller answers, so the next attempt,
    /// at any replica, is checked against it.
    async fn end(&mut self, outcome: Outcome) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.throttle.end(&self.user, self.ip, outcome, Instant::now());
        let Some(task) = self.ticket.take().and_then(|ticket| ticket.spawn_end(outcome)) else {
            return;
        };
        match tokio::time::timeout(STORE_WAIT, task).await {
            Ok(Ok((by_user, by_ip))) => self
                .throttle
                .adopt(&self.user, self.ip, by_user.as_ref(), by_ip.as_ref()),
            Ok(Err(_)) => {}
            Err(_) => tracing::warn!(
                "sign-in throttle: the store did not answer in time; the outcome is written when it does \
                 (until then the attempt counts as being checked)"
            ),
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.throttle.end(&self.user, self.ip, Outcome::Failed, Instant::now());
        if let Some(ticket) = self.ticket.take() {
            // Nobody waits for it: the task writes the failure on its own.
            let _detached = ticket.spawn_end(Outcome::Failed);
        }
    }
}

/// The throttle's key for a username.
fn user_key(username: &str) -> [u8; 32] {
    sha256(username.to_lowercase().as_bytes())
}

/// Unix milliseconds now (the stored counters' clock, shared by the replicas).
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A counter as the store keeps it (JSON): what the in-memory [`Counter`] holds, on the wall clock,
/// with the attempts being checked at every replica. Never a username or an address (the record's
/// key names the counter).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct Stored {
    /// Failures counted (not reset by time; forgotten with the record).
    failures: u32,
    /// The last failure (or the first attempt), Unix milliseconds.
    last_ms: i64,
    /// Attempts being checked now, counted as failures until they end: each one's id and the
    /// deadline (Unix milliseconds) after which it no longer counts.
    pending: Vec<(u64, i64)>,
}

impl Stored {
    /// The counter `record` holds (an empty one when there is none or it is unreadable), without
    /// the attempts past their deadline.
    fn of(record: Option<&Record>, now: i64) -> Self {
        let mut counter: Self = record
            .and_then(|r| serde_json::from_slice(&r.value).ok())
            .unwrap_or_default();
        counter.pending.retain(|&(_, deadline)| deadline > now);
        counter
    }

    fn is_empty(&self) -> bool {
        self.failures == 0 && self.pending.is_empty()
    }

    /// When the lock-out of the failures so far ends (Unix milliseconds); `None` below the
    /// threshold (so a replica whose clock is ahead locks nobody out by it).
    fn locked_until(&self, (threshold, cap): (u32, Duration)) -> Option<i64> {
        let lockout = backoff(self.failures, threshold, cap);
        (!lockout.is_zero()).then(|| self.last_ms.saturating_add(millis(lockout)))
    }

    /// How long the counter's key must still wait, if it is locked out (as [`Table::locked_for`]).
    fn locked_for(&self, now: i64, limit: (u32, Duration)) -> Option<Duration> {
        if let Some(until) = self.locked_until(limit)
            && until > now
        {
            return Some(Duration::from_millis(u64::try_from(until - now).unwrap_or(0)));
        }
        let checking = u32::try_from(self.pending.len()).unwrap_or(u32::MAX);
        (checking > 0 && self.failures.saturating_add(checking) >= limit.0).then_some(FIRST_LOCKOUT)
    }

    /// Counts attempt `id` as being checked.
    fn begin(&mut self, id: u64, now: i64) {
        if self.is_empty() {
            self.last_ms = now;
        }
        self.pending.push((id, now.saturating_add(millis(CHECK_DEADLINE))));
    }

    /// Ends attempt `id` as [`Table::end`] does (a failure is counted even when the attempt was
    /// not, or no longer, counted as being checked); false when that changes nothing.
    fn end(&mut self, id: u64, now: i64, outcome: Outcome, reset_on_success: bool) -> bool {
        let before = self.pending.len();
        self.pending.retain(|&(pending, _)| pending != id);
        let mut changed = self.pending.len() != before;
        match outcome {
            Outcome::Failed => {
                self.failures = self.failures.saturating_add(1);
                self.last_ms = now;
                changed = true;
            }
            Outcome::Succeeded if reset_on_success && self.failures > 0 => {
                self.failures = 0;
                changed = true;
            }
            Outcome::Succeeded | Outcome::NotChecked => {}
        }
        changed
    }

    /// When the record expires (Unix seconds): when memory would forget the counter (`FORGET_AFTER`
    /// after its lock-out ended, nothing being checked); at once when it counts nothing.
    fn expires_at(&self, now: i64, limit: (u32, Duration)) -> i64 {
        if self.is_empty() {
            return now.div_euclid(1000);
        }
        let forget = self
            .locked_until(limit)
            .unwrap_or(self.last_ms)
            .saturating_add(millis(FORGET_AFTER));
        let checked = self
            .pending
            .iter()
            .map(|&(_, deadline)| deadline)
            .max()
            .unwrap_or(i64::MIN);
        forget.max(checked).div_euclid(1000) + 1
    }
}

/// What a change to a stored counter decided on the counter as read.
enum Change<T> {
    /// Write the changed counter, then answer `T`.
    Write(T),
    /// Leave the record as it is and answer `T`.
    Keep(T),
}

/// Applies `change` to the stored counter `key` by compare-and-swap on the record's version (an
/// insert when there is none; one that loses the race is read again and replaced), reading it again
/// when another replica changed it first, at most [`MAX_ROUNDS`] times (`None` after). `known` is the
/// record as just read, when it was. Returns `change`'s answer and the counter as stored.
async fn update<T>(
    db: &Db,
    key: &str,
    mut known: Option<Option<Record>>,
    limit: (u32, Duration),
    mut change: impl FnMut(&mut Stored, i64) -> Change<T>,
) -> Result<Option<(T, Stored)>, StoreError> {
    for round in 0..MAX_ROUNDS {
        if round > 0 {
            // Apart, so that the replicas racing do not meet again at once.
            let pause = Duration::from_millis(1 + rand::random::<u64>() % 8);
            tokio::time::sleep(pause).await;
        }
        let record = match known.take() {
            Some(record) => record,
            None => db.record_get(KIND, key).await?,
        };
        let now = now_ms();
        let mut counter = Stored::of(record.as_ref(), now);
        let answer = match change(&mut counter, now) {
            Change::Keep(answer) => return Ok(Some((answer, counter))),
            Change::Write(answer) => answer,
        };
        let value = serde_json::to_vec(&counter).unwrap_or_default();
        let expires_at = counter.expires_at(now, limit);
        let written = match &record {
            Some(r) => db.record_replace(KIND, key, r.version, &value, expires_at).await?,
            None if counter.is_empty() => true,
            None => db.record_insert(KIND, key, &value, expires_at).await?,
        };
        if written {
            return Ok(Some((answer, counter)));
        }
    }
    Ok(None)
}

/// Counts attempt `id` as being checked, unless the counter locks it out (then how long).
fn count_attempt(id: u64, limit: (u32, Duration)) -> impl FnMut(&mut Stored, i64) -> Change<Option<Duration>> {
    move |counter: &mut Stored, now: i64| match counter.locked_for(now, limit) {
        Some(wait) => Change::Keep(Some(wait)),
        None => {
            counter.begin(id, now);
            Change::Write(None)
        }
    }
}

/// An attempt's part in the stored counters.
struct Ticket {
    db: Db,
    /// The attempt's id among the records' attempts being checked.
    id: u64,
    /// The username's record key: `user:<SHA-256 hex>`.
    user: String,
    /// The address's record key: `ip:<bucket>`.
    ip: String,
    limits: Limits,
}

impl Ticket {
    /// Ends the attempt in both stored counters (taken from those being checked, `outcome` applied);
    /// each counter as stored after, `None` (logged) when the store failed or stayed contended.
    async fn end(&self, outcome: Outcome) -> (Option<Stored>, Option<Stored>) {
        let by_user = self.end_in(&self.user, self.limits.per_user(), outcome, true).await;
        let by_ip = self.end_in(&self.ip, self.limits.per_ip(), outcome, false).await;
        (by_user, by_ip)
    }

    async fn end_in(&self, key: &str, limit: (u32, Duration), outcome: Outcome, reset: bool) -> Option<Stored> {
        let id = self.id;
        let ended = update(&self.db, key, None, limit, move |counter: &mut Stored, now: i64| {
            if counter.end(id, now, outcome, reset) {
                Change::Write(())
            } else {
                Change::Keep(())
            }
        })
        .await;
        match ended {
            Ok(Some(((), counter))) => Some(counter),
            Ok(None) => {
                tracing::warn!(
                    "sign-in throttle: a stored counter kept changing under this write; the attempt's outcome \
                     is kept in this process's memory only"
                );
                None
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "sign-in throttle: the store failed; the attempt's outcome is kept in this process's memory only"
                );
                None
            }
        }
    }

    /// Ends the attempt in the store from a task of its own (which a request going away does not
    /// stop); `None` (logged) outside a runtime.
    fn spawn_end(self, outcome: Outcome) -> Option<tokio::task::JoinHandle<(Option<Stored>, Option<Stored>)>> {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Some(runtime.spawn(async move { self.end(outcome).await })),
            Err(_) => {
                tracing::warn!(
                    "sign-in throttle: no runtime to write an attempt's outcome to the store; kept in memory only"
                );
                None
            }
        }
    }
}

impl Throttle {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            tables: Mutex::new(Tables {
                users: Table::new(limits.user_failures, limits.max_lockout, limits.max_entries),
                ips: Table::new(limits.ip_failures, limits.max_lockout, limits.max_entries),
            }),
            limits,
        }
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a sign-in attempt of `username` from `ip` before its password is checked, or refuses
    /// it while either is locked out. With `db` (the attached store) the stored counters decide and
    /// count, shared by every replica; when the store fails, this process's memory does (logged).
    pub(crate) async fn begin(&self, username: &str, ip: ClientIp, db: Option<&Db>) -> Result<Attempt<'_>, Locked> {
        let user = user_key(username);
        let ticket = match db {
            None => {
                self.begin_at(user, ip, Instant::now())?;
                None
            }
            Some(db) => {
                let ticket = Ticket {
                    db: db.clone(),
                    id: rand::random(),
                    user: format!("user:{}", data_encoding::HEXLOWER.encode(&user)),
                    ip: ip.store_key(),
                    limits: self.limits,
                };
                let failed = match tokio::time::timeout(STORE_WAIT, self.begin_stored(&ticket, user, ip)).await {
                    Ok(Ok(Ok(()))) => None,
                    Ok(Ok(Err(locked))) => return Err(locked),
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some("no answer in time".to_owned()),
                };
                match failed {
                    None => self.count(user, ip, Instant::now()),
                    Some(error) => {
                        tracing::warn!(
                            %error,
                            "sign-in throttle: the store failed; this attempt is decided and counted in this \
                             process's memory only"
                        );
                        if let Err(locked) = self.begin_at(user, ip, Instant::now()) {
                            // What the store may hold of this attempt is taken back, without waiting.
                            let _detached = ticket.spawn_end(Outcome::NotChecked);
                            return Err(locked);
                        }
                    }
                }
                Some(ticket)
            }
        };
        Ok(Attempt {
            throttle: self,
            user,
            ip,
            ticket,
            ended: false,
        })
    }

    /// The store's part of [`Throttle::begin`]: reads both counters (memory takes them), refuses
    /// while either is locked out, else counts the attempt as being checked in the username's, then
    /// the address's, each by compare-and-swap (refused when another replica's attempt locked it
    /// meanwhile, or when the counter kept changing). Refused at the address, the attempt is taken
    /// back from the username's. On an error the attempt may be left counted in the username's:
    /// its ticket takes it back when the attempt ends.
    async fn begin_stored(
        &self,
        ticket: &Ticket,
        user: [u8; 32],
        ip: ClientIp,
    ) -> Result<Result<(), Locked>, StoreError> {
        let db = &ticket.db;
        let (per_user, per_ip) = (self.limits.per_user(), self.limits.per_ip());
        let user_record = db.record_get(KIND, &ticket.user).await?;
        let ip_record = db.record_get(KIND, &ticket.ip).await?;
        let now = now_ms();
        let by_user = Stored::of(user_record.as_ref(), now);
        let by_ip = Stored::of(ip_record.as_ref(), now);
        self.adopt(&user, ip, Some(&by_user), Some(&by_ip));
        let wait = by_user
            .locked_for(now, per_user)
            .into_iter()
            .chain(by_ip.locked_for(now, per_ip))
            .max();
        if let Some(wait) = wait {
            return Ok(Err(locked(wait)));
        }
        let counted = update(
            db,
            &ticket.user,
            Some(user_record),
            per_user,
            count_attempt(ticket.id, per_user),
        )
        .await?;
        let Some((wait, by_user)) = counted else {
            tracing::warn!("sign-in throttle: a stored counter kept changing; the attempt is refused for a second");
            return Ok(Err(CONTENDED));
        };
        self.adopt(&user, ip, Some(&by_user), None);
        if let Some(wait) = wait {
            return Ok(Err(locked(wait)));
        }
        let counted = update(
            db,
            &ticket.ip,
            Some(ip_record),
            per_ip,
            count_attempt(ticket.id, per_ip),
        )
        .await?;
        let refused = match counted {
            Some((None, by_ip)) => {
                self.adopt(&user, ip, None, Some(&by_ip));
                return Ok(Ok(()));
            }
            Some((Some(wait), by_ip)) => {
                self.adopt(&user, ip, None, Some(&by_ip));
                locked(wait)
            }
            None => {
                tracing::warn!("sign-in throttle: a stored counter kept changing; the attempt is refused for a second");
                CONTENDED
            }
        };
        // Refused at the address: the username's counter gives the attempt back.
        ticket.end_in(&ticket.user, per_user, Outcome::NotChecked, true).await;
        Ok(Err(refused))
    }

    /// Memory takes the stored counters given (see [`Table::adopt`]).
    fn adopt(&self, user: &[u8; 32], ip: ClientIp, by_user: Option<&Stored>, by_ip: Option<&Stored>) {
        let (now, wall) = (Instant::now(), now_ms());
        // A time on another replica's clock ahead of this one's counts as now.
        let at = |ms: i64| {
            let ago = u64::try_from(wall.saturating_sub(ms)).unwrap_or(0);
            now.checked_sub(Duration::from_millis(ago)).unwrap_or(now)
        };
        let mut tables = self.tables();
        if let Some(counter) = by_user {
            tables.users.adopt(user, counter.failures, at(counter.last_ms), now);
        }
        if let Some(counter) = by_ip {
            tables.ips.adopt(&ip, counter.failures, at(counter.last_ms), now);
        }
    }

    /// Counts in memory, as being checked, an attempt the store let through.
    fn count(&self, user: [u8; 32], ip: ClientIp, now: Instant) {
        let mut tables = self.tables();
        tables.users.begin(user, now);
        tables.ips.begin(ip, now);
    }

    fn begin_at(&self, user: [u8; 32], ip: ClientIp, now: Instant) -> Result<(), Locked> {
        let mut tables = self.tables();
        let by_user = tables.users.locked_for(&user, now);
        let by_ip = tables.ips.locked_for(&ip, now);
        let wait = by_user.into_iter().chain(by_ip).max();
        if let Some(wait) = wait {
            return Err(locked(wait));
        }
        tables.users.begin(user, now);
        tables.ips.begin(ip, now);
        Ok(())
    }

    fn end(&self, user: &[u8; 32], ip: ClientIp, outcome: Outcome, now: Instant) {
        let mut tables = self.tables();
        tables.users.end(user, now, outcome, true);
        tables.ips.end(&ip, now, outcome, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(user_failures: u32, ip_failures: u32, max_entries: usize) -> Throttle {
        Throttle::new(Limits {
            user_failures,
            ip_failures,
            max_lockout: Duration::from_secs(15 * 60),
            max_entries,
        })
    }

    fn ip(last: u8) -> ClientIp {
        ClientIp::of(Some(SocketAddr::from(([192, 0, 2, last], 4000))))
    }

    #[test]
    fn the_backoff_doubles_from_one_second_up_to_the_cap() {
        let cap = Duration::from_secs(15 * 60);
        let secs = |f| backoff(f, 5, cap).as_secs();
        assert_eq!([secs(0), secs(4)], [0, 0]);
        assert_eq!([secs(5), secs(6), secs(7), secs(8)], [1, 2, 4, 8]);
        assert_eq!(secs(14), 512);
        assert_eq!(secs(15), 900, "capped at 15 minutes");
        assert_eq!(secs(u32::MAX), 900, "no overflow");
    }

    #[test]
    fn addresses_are_keyed_by_ipv4_or_ipv6_slash_64() {
        let v6 = |s: &str| ClientIp::of(Some(SocketAddr::new(s.parse().unwrap(), 1)));
        assert_eq!(v6("2001:db8:1:2:aaaa::1"), v6("2001:db8:1:2:bbbb::2"));
        assert_ne!(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"));
        assert_eq!(v6("::ffff:192.0.2.7"), ip(7));
        assert_ne!(ip(7), ip(8));
        assert_eq!(ClientIp::from_extensions(&http::Extensions::new()), ClientIp(None));
    }

    #[test]
    fn failures_lock_a_username_out_and_each_one_doubles_it() {
        let t = throttle(3, 100, 100);
        let user = user_key("Dr.Demo");
        assert_eq!(user, user_key("dr.demo"), "usernames are compared without case");
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(t.begin_at(user, ip(1), t0).is_ok(), "attempt {i}");
            t.end(&user, ip(1), Outcome::Failed, t0);
        }
        // The third failure locks for one second, from any address.
        assert_eq!(t.begin_at(user, ip(2), t0), Err(Locked { retry_after: 1 }));
        let t1 = t0 + Duration::from_secs(1);
        assert!(t.begin_at(user, ip(2), t1).is_ok());
        t.end(&user, ip(2), Outcome::Failed, t1);
        assert_eq!(t.begin_at(user, ip(3), t1), Err(Locked { retry_after: 2 }));
        let t2 = t1 + Duration::from_secs(2);
        assert!(t.begin_at(user, ip(3), t2).is_ok());
        t.end(&user, ip(3), Outcome::Failed, t2);
        assert_eq!(
            t.begin_at(user, ip(3), t2 + Duration::from_millis(500)),
            Err(Locked { retry_after: 4 }),
            "rounded up"
        );
        // Another user is not locked; a success resets the username.
        assert!(t.begin_at(user_key("other"), ip(4), t2).is_ok());
        t.end(&user_key("other"), ip(4), Outcome::NotChecked, t2);
        let t3 = t2 + Duration::from_secs(4);
        assert!(t.begin_at(user, ip(3), t3).is_ok());
        t.end(&user, ip(3), Outcome::Succeeded, t3);
        assert!(!t.tables().users.counters.contains_key(&user));
        assert!(t.begin_at(user, ip(3), t3).is_ok());
    }

    #[test]
    fn parallel_attempts_are_counted_before_they_are_checked() {
        let t = throttle(5, 100, 100);
        let user = user_key("dr");
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(t.begin_at(user, ip(1), t0).is_ok());
        }
        // Five guesses are being checked: a sixth must wait for them.
        assert_eq!(t.begin_at(user, ip(1), t0), Err(Locked { retry_after: 1 }));
        for _ in 0..5 {
            t.end(&user, ip(1), Outcome::Failed, t0);
        }
        assert_eq!(t.begin_at(user, ip(1), t0), Err(Locked { retry_after: 1 }));
        // Unchecked attempts (a busy server) leave no trace.
        let other = user_key("nurse");
        assert!(t.begin_at(other, ip(9), t0).is_ok());
        t.end(&other, ip(9), Outcome::NotChecked, t0);
        assert!(!t.tables().users.counters.contains_key(&other));
        assert!(!t.tables().ips.counters.contains_key(&ip(9)));
    }

    #[test]
    fn an_address_is_locked_out_across_usernames_and_a_success_does_not_reset_it() {
        let t = throttle(100, 3, 100);
        let t0 = Instant::now();
        for name in ["a", "b", "c"] {
            assert!(t.begin_at(user_key(name), ip(1), t0).is_ok());
            t.end(&user_key(name), ip(1), Outcome::Failed, t0);
        }
        assert_eq!(t.begin_at(user_key("d"), ip(1), t0), Err(Locked { retry_after: 1 }));
        assert!(
            t.begin_at(user_key("d"), ip(2), t0).is_ok(),
            "another address is not locked"
        );
        t.end(&user_key("d"), ip(2), Outcome::Succeeded, t0);
        let t1 = t0 + Duration::from_secs(1);
        assert!(t.begin_at(user_key("mine"), ip(1), t1).is_ok());
        t.end(&user_key("mine"), ip(1), Outcome::Succeeded, t1);
        assert_eq!(t.tables().ips.counters[&ip(1)].failures, 3);
    }

    #[tokio::test]
    async fn a_dropped_attempt_counts_as_a_failure() {
        let t = throttle(1, 100, 100);
        drop(t.begin("dr", ip(1), None).await.unwrap());
        assert!(t.begin("dr", ip(1), None).await.is_err());
        let t = throttle(1, 100, 100);
        t.begin("dr", ip(1), None).await.unwrap().succeeded().await;
        t.begin("dr", ip(1), None).await.unwrap().not_checked().await;
        assert!(t.begin("dr", ip(1), None).await.is_ok());
    }

    #[test]
    fn stored_counters_lock_out_as_memory_does() {
        let limit = (3, Duration::from_secs(15 * 60));
        let t0 = 1_700_000_000_000;
        let mut c = Stored::default();
        for id in 0..3 {
            assert_eq!(c.locked_for(t0, limit), None, "attempt {id}");
            c.begin(id, t0);
        }
        // Three being checked: a fourth waits for them.
        assert_eq!(c.locked_for(t0, limit), Some(FIRST_LOCKOUT));
        for id in 0..3 {
            assert!(c.end(id, t0, Outcome::Failed, true));
        }
        assert!(c.pending.is_empty());
        assert_eq!(c.failures, 3);
        assert_eq!(c.locked_for(t0 + 400, limit), Some(Duration::from_millis(600)));
        assert_eq!(locked(Duration::from_millis(600)), Locked { retry_after: 1 });
        assert_eq!(c.locked_for(t0 + 1000, limit), None);
        c.begin(7, t0 + 1000);
        assert!(c.end(7, t0 + 1000, Outcome::Failed, true));
        assert_eq!(c.locked_for(t0 + 1000, limit), Some(Duration::from_secs(2)), "doubled");
        // Expires an hour after the lock-out ends (Unix seconds).
        assert_eq!(c.expires_at(t0 + 1000, limit), (t0 + 3000 + 3_600_000) / 1000 + 1);
        // A success resets a username, not an address; an unchecked attempt leaves no trace.
        let mut address = c.clone();
        assert!(!address.end(8, t0, Outcome::Succeeded, false));
        assert_eq!(address.failures, 4);
        assert!(c.end(9, t0, Outcome::Succeeded, true));
        assert!(c.is_empty());
        assert_eq!(c.expires_at(t0, limit), t0 / 1000, "an empty counter expires at once");
        c.begin(10, t0);
        assert!(c.end(10, t0, Outcome::NotChecked, true));
        assert!(c.is_empty());
        assert!(!c.end(11, t0, Outcome::NotChecked, true), "nothing to write");
    }

    #[test]
    fn stored_counters_survive_their_replicas_and_clocks() {
        let limit = (2, Duration::from_secs(60));
        let t0 = 1_700_000_000_000;
        // An attempt whose replica stopped mid-check stops counting after its deadline.
        let mut c = Stored::default();
        c.begin(1, t0);
        c.begin(2, t0);
        assert_eq!(c.locked_for(t0, limit), Some(FIRST_LOCKOUT));
        let record = Record {
            value: serde_json::to_vec(&c).unwrap(),
            version: 3,
            expires_at: c.expires_at(t0, limit),
        };
        assert_eq!(Stored::of(Some(&record), t0 + 1), c);
        let later = t0 + millis(CHECK_DEADLINE) + 1;
        assert_eq!(Stored::of(Some(&record), later).locked_for(later, limit), None);
        assert!(record.expires_at * 1000 >= t0 + millis(CHECK_DEADLINE));
        // A failure stamped by a replica whose clock is ahead locks out nobody below the threshold.
        let mut ahead = Stored::default();
        assert!(ahead.end(5, t0 + 30_000, Outcome::Failed, true));
        assert_eq!(ahead.locked_for(t0, limit), None);
        // Unreadable or absent: an empty counter.
        let garbage = Record {
            value: b"not json".to_vec(),
            version: 1,
            expires_at: 0,
        };
        assert_eq!(Stored::of(Some(&garbage), t0), Stored::default());
        assert_eq!(Stored::of(None, t0), Stored::default());
    }

    #[test]
    fn stored_counters_are_keyed_without_the_username_or_the_port() {
        assert_eq!(ip(7).store_key(), "ip:192.0.2.7");
        let v6 = ClientIp::of(Some(SocketAddr::new("2001:db8:1:2:aaaa::1".parse().unwrap(), 9)));
        assert_eq!(v6.store_key(), "ip:2001:db8:1:2::/64");
        assert_eq!(ClientIp::of(None).store_key(), "ip:unknown");
        let mut c = Stored::default();
        c.begin(1, 5);
        let json = String::from_utf8(serde_json::to_vec(&c).unwrap()).unwrap();
        assert!(
            json.starts_with("{\"failures\":0,\"last_ms\":5,\"pending\":[[1,"),
            "{json}"
        );
    }

    #[test]
    fn memory_takes_the_stored_counters() {
        let t = throttle(2, 100, 100);
        let user = user_key("dr");
        let stored = Stored {
            failures: 2,
            last_ms: now_ms(),
            pending: Vec::new(),
        };
        t.adopt(&user, ip(1), Some(&stored), None);
        assert!(
            t.begin_at(user, ip(1), Instant::now()).is_err(),
            "locked out by another replica's failures"
        );
        t.adopt(&user, ip(1), Some(&Stored::default()), None);
        assert!(
            !t.tables().users.counters.contains_key(&user),
            "reset by another replica's success"
        );
        assert!(t.begin_at(user, ip(1), Instant::now()).is_ok());
        // This process's attempt being checked stays counted.
        t.adopt(&user, ip(1), Some(&Stored::default()), None);
        assert_eq!(t.tables().users.counters[&user].pending, 1);
    }

    #[test]
    fn the_tables_are_bounded_and_forget_the_idle_first() {
        let t = throttle(2, 1000, 3);
        let t0 = Instant::now();
        // "locked" is locked out; "a" and "b" have one failure each.
        for (name, failures) in [("locked", 2), ("a", 1), ("b", 1)] {
            for _ in 0..failures {
                t.begin_at(user_key(name), ip(1), t0).unwrap();
                t.end(&user_key(name), ip(1), Outcome::Failed, t0);
            }
        }
        let later = t0 + Duration::from_millis(10);
        t.begin_at(user_key("c"), ip(1), later).unwrap();
        t.end(&user_key("c"), ip(1), Outcome::Failed, later);
        {
            let tables = t.tables();
            let users = &tables.users.counters;
            assert_eq!(users.len(), 3);
            assert!(
                users.contains_key(&user_key("locked")),
                "a locked-out name is kept over idle ones"
            );
            assert!(users.contains_key(&user_key("c")));
        }
        // Counters idle for long after their lock-out are forgotten.
        let t = throttle(1, 1000, 10);
        t.begin_at(user_key("x"), ip(1), t0).unwrap();
        t.end(&user_key("x"), ip(1), Outcome::Failed, t0);
        assert!(t.begin_at(user_key("x"), ip(1), t0).is_err());
        let much_later = t0 + FORGET_AFTER + Duration::from_secs(2);
        assert!(t.begin_at(user_key("x"), ip(1), much_later).is_ok());
    }
}
