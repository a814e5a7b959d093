//! Per-client request rate limits, so one client cannot spend the vendors' budgets for everyone.
//!
//! A keyed GCRA limiter ([`governor`]): a client may send `burst` requests at once, then
//! `per_minute` a minute. The key is the token's `client_id` when the request carries a verified
//! token (the [`Caller`] the token gate put into the extensions — so the limiter runs after it), else
//! the client's address (`ConnectInfo`; IPv6 by its /64, since one host holds a whole /64). Over the
//! limit the answer is 429 with an OperationOutcome, `Retry-After`, and the IETF draft headers
//! (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy: "per-client";q=<burst>;w=<secs>` (the
//! bucket: `burst` requests, refilled in `w` seconds) and `RateLimit: "per-client";r=<left>;t=<secs>`,
//! also on every answer let through. Vendor webhooks are not limited (the vendors send them, signed),
//! nor are the authorization server's routes (they sit outside this layer and throttle sign-ins
//! themselves).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};

use axum::response::{IntoResponse, Response};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::access::Caller;
use crate::app::AppState;
use crate::error::GatewayError;

/// The policy's name in the `RateLimit-Policy` and `RateLimit` headers.
pub const POLICY: &str = "per-client";
/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// How many requests one client may make (`[rate_limit]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Sustained requests per minute.
    pub per_minute: NonZeroU32,
    /// Requests that may come at once (the bucket), refilled at `per_minute`.
    pub burst: NonZeroU32,
}

impl RateLimitSettings {
    /// `None` when either figure is 0.
    pub fn new(per_minute: u32, burst: u32) -> Option<Self> {
        Some(Self {
            per_minute: NonZeroU32::new(per_minute)?,
            burst: NonZeroU32::new(burst)?,
        })
    }

    /// The demo's: generous (100 a second, 1000 at once), but there.
    pub fn demo() -> Self {
        Self::new(6_000, 1_000).unwrap_or_default()
    }
}

impl Default for RateLimitSettings {
    /// 600 a minute, 100 at once.
    fn default() -> Self {
        Self {
            per_minute: NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// Whose bucket a request takes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A verified token's `client_id`, with its user (`fhirUser`) when it has one.
    Client(String),
    /// An unauthenticated caller's address (IPv4, or the /64 of an IPv6 address).
    Ip(IpAddr),
    /// No token and no known address (a request not from the gateway's listener, e.g. in tests).
    Unknown,
}

impl ClientKey {
    /// The key of a request: its token's client, else its peer address.
    pub fn of(request: &Request) -> Self {
        if let Some(Caller::Token(grant)) = request.extensions().get::<Caller>() {
            // Each user of an app has a bucket of their own (one patient cannot spend the
            // budget of everyone using the same app); a backend client has one.
            return Self::Client(match &grant.fhir_user {
                Some(user) => format!("{} {user}", grant.client_id),
                None => grant.client_id.clone(),
            });
        }
        let extensions = request.extensions();
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .or_else(|| extensions.get::<MockConnectInfo<SocketAddr>>().map(|m| m.0));
        match peer {
            Some(addr) => Self::Ip(bucket_address(addr.ip())),
            None => Self::Unknown,
        }
    }

    /// The metrics label: `client` (token) or `ip`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Client(_) => "client",
            Self::Ip(_) | Self::Unknown => "ip",
        }
    }
}

/// IPv4 addresses (and IPv4-mapped IPv6) as they are; IPv6 by its /64.
fn bucket_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(segments))
        }
        v4 => v4,
    }
}

/// The limiter the gateway holds: one GCRA state per [`ClientKey`].
pub struct ClientLimiter {
    limiter: DefaultKeyedRateLimiter<ClientKey, StateInformationMiddleware>,
    burst: u32,
    /// How long one request's share takes to come back.
    interval: Duration,
    policy: HeaderValue,
}

impl std::fmt::Debug for ClientLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLimiter")
            .field("burst", &self.burst)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// What [`ClientLimiter::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let through; this many more may follow at once.
    Allowed { remaining: u32 },
    /// Refused; the next request is let through within this many seconds.
    Refused { retry_after_secs: u64 },
}

impl ClientLimiter {
    pub fn new(settings: RateLimitSettings) -> Self {
        let quota = Quota::per_minute(settings.per_minute).allow_burst(settings.burst);
        let interval = quota.replenish_interval();
        let burst = settings.burst.get();
        let window = ceil_secs(interval.saturating_mul(burst)).max(1);
        let policy = HeaderValue::from_str(&format!("\"{POLICY}\";q={burst};w={window}"))
            .unwrap_or(HeaderValue::from_static("\"per-client\""));
        Self {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            burst,
            interval,
            policy,
        }
    }

    /// Takes one request from `key`'s bucket.
    pub fn check(&self, key: &ClientKey) -> Decision {
        match self.limiter.check_key(key) {
            Ok(snapshot) => Decision::Allowed {
                remaining: snapshot.remaining_burst_capacity(),
            },
            // A refused request finds the bucket empty, and the next share comes back within one
            // interval: that (rounded up, at least 1 s) is when to retry.
            Err(_) => Decision::Refused {
                retry_after_secs: ceil_secs(self.interval).max(1),
            },
        }
    }

    /// Seconds until the bucket is full again with `remaining` left (0 when it is full).
    fn reset_secs(&self, remaining: u32) -> u64 {
        let used = self.burst.saturating_sub(1).saturating_sub(remaining);
        ceil_secs(self.interval.saturating_mul(used))
    }

    /// The `RateLimit-Policy` and `RateLimit` headers of an answer after `decision`.
    pub fn annotate(&self, headers: &mut HeaderMap, decision: Decision) {
        let (remaining, reset) = match decision {
            Decision::Allowed { remaining } => (remaining, self.reset_secs(remaining)),
            Decision::Refused { retry_after_secs } => (0, retry_after_secs),
        };
        headers.insert(RATELIMIT_POLICY, self.policy.clone());
        if let Ok(v) = HeaderValue::from_str(&format!("\"{POLICY}\";r={remaining};t={reset}")) {
            headers.insert(RATELIMIT, v);
        }
    }

    /// Forgets the clients whose buckets are full again (their state is the same as a new one's).
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many clients hold state.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Paths the limiter leaves alone: vendor webhooks (the vendors send them, signed; refusing them would
/// lose change events).
fn exempt(path: &str) -> bool {
    path.starts_with("/webhooks/")
}

/// The middleware: every request (but [`exempt`] ones) takes from its client's bucket; over the limit
/// it is answered 429 at once.
pub async fn limit<N, F>(state: &AppState, request: Request, next: N) -> Response
where
    N: FnOnce(Request) -> F,
    F: std::future::Future<Output = Response>,
{
    let Some(limiter) = &state.rate_limit else {
        return next(request).await;
    };
    if exempt(request.uri().path()) {
        return next(request).await;
    }
    let key = ClientKey::of(&request);
    let decision = limiter.check(&key);
    let mut response = match decision {
        Decision::Allowed { .. } => next(request).await,
        Decision::Refused { retry_after_secs } => {
            state.metrics.rate_limited(key.kind());
            GatewayError::TooManyRequests { retry_after_secs }.into_response()
        }
    };
    // (`Retry-After` comes with the error.)
    limiter.annotate(response.headers_mut(), decision);
    response
}

/// Drops the state of clients gone quiet, every minute, until the limiter is gone.
pub async fn housekeeping(limiter: std::sync::Weak<ClientLimiter>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match limiter.upgrade() {
            Some(l) => l.retain_recent(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_minute: u32, burst: u32) -> RateLimitSettings {
        RateLimitSettings::new(per_minute, burst).unwrap()
    }

    #[test]
    fn a_burst_then_refusals_with_when_to_retry() {
        // One a minute, three at once.
        let limiter = ClientLimiter::new(settings(1, 3));
        let key = ClientKey::Client("app".into());
        let decisions: Vec<Decision> = (0..5).map(|_| limiter.check(&key)).collect();
        assert_eq!(
            decisions,
            vec![
                Decision::Allowed { remaining: 2 },
                Decision::Allowed { remaining: 1 },
                Decision::Allowed { remaining: 0 },
                Decision::Refused { retry_after_secs: 60 },
                Decision::Refused { retry_after_secs: 60 },
            ]
        );
        // Another client has its own bucket.
        assert_eq!(
            limiter.check(&ClientKey::Client("other".into())),
            Decision::Allowed { remaining: 2 }
        );
        assert_eq!(limiter.tracked(), 2);
    }

    #[test]
    fn headers_describe_the_bucket() {
        let limiter = ClientLimiter::new(settings(600, 100));
        let mut headers = HeaderMap::new();
        limiter.annotate(&mut headers, Decision::Allowed { remaining: 99 });
        assert_eq!(headers[&RATELIMIT_POLICY], "\"per-client\";q=100;w=10");
        assert_eq!(headers[&RATELIMIT], "\"per-client\";r=99;t=0");
        limiter.annotate(&mut headers, Decision::Allowed { remaining: 89 });
        assert_eq!(headers[&RATELIMIT], "\"per-client\";r=89;t=1");
        limiter.annotate(&mut headers, Decision::Refused { retry_after_secs: 1 });
        assert_eq!(headers[&RATELIMIT], "\"per-client\";r=0;t=1");
        let same = ClientLimiter::new(settings(600, 600));
        same.annotate(&mut headers, Decision::Allowed { remaining: 0 });
        assert_eq!(headers[&RATELIMIT_POLICY], "\"per-client\";q=600;w=60");
        assert_eq!(headers[&RATELIMIT], "\"per-client\";r=0;t=60");
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket_address(a), bucket_address(b));
        assert_ne!(bucket_address(a), bucket_address(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(bucket_address(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn zero_is_not_a_setting() {
        assert!(RateLimitSettings::new(0, 10).is_none());
        assert!(RateLimitSettings::new(10, 0).is_none());
        assert_eq!(RateLimitSettings::default(), settings(600, 100));
    }
}
