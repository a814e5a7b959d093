//! The sign-in throttle: failed sign-ins counted per username and per client address; past a
//! threshold each failure doubles a lock-out (one second, two, four … up to a cap). An attempt is
//! counted, under one lock, before its password is checked, so parallel guesses cannot slip past
//! the count, and an attempt while locked out is refused before any Argon2 work. The tables are
//! bounded: the longest-idle counters are forgotten first.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::util::sha256;

/// The first lock-out; each further failure doubles it.
const FIRST_LOCKOUT: Duration = Duration::from_secs(1);
/// A counter idle this long after its lock-out ended is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

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
}

/// A counted sign-in attempt. Dropped without an outcome (its request went away mid-check) it
/// counts as a failure.
pub(crate) struct Attempt<'a> {
    throttle: &'a Throttle,
    user: [u8; 32],
    ip: ClientIp,
    ended: bool,
}

impl Attempt<'_> {
    /// The password was right: the username's failures are forgotten (the address's are not).
    pub(crate) fn succeeded(mut self) {
        self.end(Outcome::Succeeded);
    }

    /// The password was wrong.
    pub(crate) fn failed(mut self) {
        self.end(Outcome::Failed);
    }

    /// No password was checked.
    pub(crate) fn not_checked(mut self) {
        self.end(Outcome::NotChecked);
    }

    fn end(&mut self, outcome: Outcome) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.throttle.end(&self.user, self.ip, outcome, Instant::now());
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.end(Outcome::Failed);
    }
}

/// The throttle's key for a username.
fn user_key(username: &str) -> [u8; 32] {
    sha256(username.to_lowercase().as_bytes())
}

impl Throttle {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            tables: Mutex::new(Tables {
                users: Table::new(limits.user_failures, limits.max_lockout, limits.max_entries),
                ips: Table::new(limits.ip_failures, limits.max_lockout, limits.max_entries),
            }),
        }
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a sign-in attempt of `username` from `ip` before its password is checked, or refuses
    /// it while either is locked out.
    pub(crate) fn begin(&self, username: &str, ip: ClientIp) -> Result<Attempt<'_>, Locked> {
        let user = user_key(username);
        self.begin_at(user, ip, Instant::now())?;
        Ok(Attempt {
            throttle: self,
            user,
            ip,
            ended: false,
        })
    }

    fn begin_at(&self, user: [u8; 32], ip: ClientIp, now: Instant) -> Result<(), Locked> {
        let mut tables = self.tables();
        let by_user = tables.users.locked_for(&user, now);
        let by_ip = tables.ips.locked_for(&ip, now);
        let wait = by_user.into_iter().chain(by_ip).max();
        if let Some(wait) = wait {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(Locked {
                retry_after: secs.max(1),
            });
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

    #[test]
    fn a_dropped_attempt_counts_as_a_failure() {
        let t = throttle(1, 100, 100);
        drop(t.begin("dr", ip(1)).unwrap());
        assert!(t.begin("dr", ip(1)).is_err());
        let t = throttle(1, 100, 100);
        t.begin("dr", ip(1)).unwrap().succeeded();
        t.begin("dr", ip(1)).unwrap().not_checked();
        assert!(t.begin("dr", ip(1)).is_ok());
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
