//! A vendor access token cached until shortly before it expires.
//!
//! [`CachedToken`] is one token with the moment to replace it: [`REFRESH_MARGIN`] before the end
//! of the lifetime the token endpoint named (at most half of it), [`DEFAULT_TOKEN_LIFETIME`] when
//! it named none. [`TokenSlot`] holds one for a client that simply fetches a new token when it
//! needs one (client credentials, a consumer sign-in): concurrent requests share the token, and
//! the callers that arrive while a token is being fetched wait for that fetch and share its
//! result. A vendor whose tokens carry more state (a rotating refresh token) keeps its own lock
//! around a [`CachedToken`].

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Mutex;

use crate::{AdapterError, Secret};

/// Replace a token this long before it expires (at most half its lifetime).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The lifetime assumed when the token endpoint names none (an hour: a shorter guess than the
/// vendor's only costs an early refresh).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The longest lifetime believed (ten years); anything longer is read as this.
const MAX_TOKEN_LIFETIME_SECS: f64 = 10.0 * 365.0 * 86_400.0;

/// The lifetime of a token whose endpoint said `expires_in` seconds: positive and finite, capped at
/// ten years, else [`DEFAULT_TOKEN_LIFETIME`].
pub fn token_lifetime(expires_in: Option<f64>) -> Duration {
    expires_in
        .filter(|s| *s > 0.0 && s.is_finite())
        .map(|s| Duration::from_secs_f64(s.min(MAX_TOKEN_LIFETIME_SECS)))
        .unwrap_or(DEFAULT_TOKEN_LIFETIME)
}

/// One access token and when to replace it. The token prints as `***`.
#[derive(Debug, Clone)]
pub struct CachedToken {
    value: Secret,
    refresh_at: Instant,
}

impl CachedToken {
    /// A token requested at `requested` whose endpoint said it lives `expires_in` seconds.
    pub fn new(value: Secret, requested: Instant, expires_in: Option<f64>) -> Self {
        let lifetime = token_lifetime(expires_in);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        Self {
            value,
            refresh_at: requested + lifetime - margin,
        }
    }

    /// A token stored elsewhere (another process, a restart ago) that is due for replacement at
    /// `refresh_at_unix` (Unix seconds, as [`CachedToken::refresh_at_unix`] gave it). A time in the
    /// past gives a token that is already due; one further ahead than ten years is read as that.
    pub fn until_unix(value: Secret, refresh_at_unix: i64) -> Self {
        let now = Instant::now();
        let ahead = match u64::try_from(refresh_at_unix) {
            Err(_) => Duration::ZERO,
            Ok(secs) => match UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
                Some(at) => at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO),
                None => Duration::MAX,
            },
        };
        let ahead = ahead.min(Duration::from_secs_f64(MAX_TOKEN_LIFETIME_SECS));
        Self {
            value,
            refresh_at: now.checked_add(ahead).unwrap_or(now),
        }
    }

    /// When the token is due for replacement, in Unix seconds (rounded down: a token carried
    /// through these seconds is replaced at most a second early).
    pub fn refresh_at_unix(&self) -> i64 {
        let (wall, now) = (SystemTime::now(), Instant::now());
        let at = match self.refresh_at.checked_duration_since(now) {
            Some(ahead) => wall.checked_add(ahead),
            None => wall.checked_sub(now.duration_since(self.refresh_at)),
        };
        match at.map(|at| at.duration_since(UNIX_EPOCH)) {
            Some(Ok(since_epoch)) => i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
            // Before 1970 (a clock set far back): long due.
            Some(Err(_)) | None => 0,
        }
    }

    /// The token, due for replacement or not.
    pub fn value(&self) -> &Secret {
        &self.value
    }

    /// The token, while it is not yet due for replacement.
    pub fn fresh(&self) -> Option<&Secret> {
        (Instant::now() < self.refresh_at).then_some(&self.value)
    }

    /// The token, while it is not yet due for replacement and is not `rejected` (a token the
    /// vendor refused; when another request already replaced it, the newer one is used).
    pub fn fresh_unless(&self, rejected: &Secret) -> Option<&Secret> {
        self.fresh().filter(|value| *value != rejected)
    }
}

/// What a token endpoint granted: the token and the lifetime it named, in seconds.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub value: Secret,
    pub expires_in: Option<f64>,
}

/// The one cached access token of a client; see the module docs.
#[derive(Debug, Default)]
pub struct TokenSlot {
    token: Mutex<Option<CachedToken>>,
}

impl TokenSlot {
    /// An empty slot: the first request fetches a token.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current token, fetching a new one with `fetch` first when there is none or it is about
    /// to expire.
    pub async fn current<F, Fut>(&self, fetch: F) -> Result<Secret, AdapterError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<IssuedToken, AdapterError>>,
    {
        let mut slot = self.token.lock().await;
        if let Some(value) = slot.as_ref().and_then(CachedToken::fresh) {
            return Ok(value.clone());
        }
        Self::refill(&mut slot, fetch).await
    }

    /// A new token after the vendor refused `rejected`; when another request has already replaced
    /// it, that newer token is used instead of fetching again.
    pub async fn replace_rejected<F, Fut>(&self, rejected: &Secret, fetch: F) -> Result<Secret, AdapterError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<IssuedToken, AdapterError>>,
    {
        let mut slot = self.token.lock().await;
        if let Some(value) = slot.as_ref().and_then(|t| t.fresh_unless(rejected)) {
            return Ok(value.clone());
        }
        Self::refill(&mut slot, fetch).await
    }

    /// Empties the slot, fetches, and keeps what was fetched: a failed fetch leaves no token.
    async fn refill<F, Fut>(slot: &mut Option<CachedToken>, fetch: F) -> Result<Secret, AdapterError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<IssuedToken, AdapterError>>,
    {
        *slot = None;
        let requested = Instant::now();
        let issued = fetch().await?;
        let token = CachedToken::new(issued.value, requested, issued.expires_in);
        let value = token.value.clone();
        *slot = Some(token);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn issued(value: &str, expires_in: Option<f64>) -> Result<IssuedToken, AdapterError> {
        Ok(IssuedToken {
            value: Secret::new(value),
            expires_in,
        })
    }

    #[test]
    fn lifetimes_are_positive_finite_and_bounded() {
        assert_eq!(token_lifetime(Some(7200.0)), Duration::from_secs(7200));
        for unusable in [None, Some(0.0), Some(-5.0), Some(f64::NAN), Some(f64::INFINITY)] {
            assert_eq!(token_lifetime(unusable), DEFAULT_TOKEN_LIFETIME, "{unusable:?}");
        }
        assert_eq!(
            token_lifetime(Some(1e12)),
            Duration::from_secs_f64(MAX_TOKEN_LIFETIME_SECS)
        );
    }

    #[test]
    fn a_token_is_replaced_a_margin_before_it_expires() {
        let now = Instant::now();
        let long = CachedToken::new(Secret::new("a"), now, Some(3600.0));
        assert_eq!(long.refresh_at, now + Duration::from_secs(3540));
        // A short-lived token is replaced half-way through its life.
        let short = CachedToken::new(Secret::new("b"), now, Some(10.0));
        assert_eq!(short.refresh_at, now + Duration::from_secs(5));
        assert!(long.fresh().is_some());
        assert!(long.fresh_unless(&Secret::new("a")).is_none());
        assert!(long.fresh_unless(&Secret::new("z")).is_some());
        let expired = CachedToken::new(Secret::new("c"), now - Duration::from_secs(20), Some(10.0));
        assert!(expired.fresh().is_none());
    }

    #[test]
    fn a_token_round_trips_through_unix_seconds() {
        let token = CachedToken::new(Secret::new("a"), Instant::now(), Some(3600.0));
        let now_unix = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap();
        let at = token.refresh_at_unix();
        assert!((at - (now_unix + 3540)).abs() <= 1, "{at} vs {now_unix}");

        let back = CachedToken::until_unix(token.value().clone(), at);
        assert_eq!(back.value().expose(), "a");
        let drift = if back.refresh_at > token.refresh_at {
            back.refresh_at.duration_since(token.refresh_at)
        } else {
            token.refresh_at.duration_since(back.refresh_at)
        };
        assert!(drift <= Duration::from_secs(1), "{drift:?}");
        assert!(back.fresh().is_some());
        assert!((back.refresh_at_unix() - at).abs() <= 1);

        // A time in the past (or before 1970) is an already-due token; a far future one is capped.
        assert!(
            CachedToken::until_unix(Secret::new("b"), now_unix - 10)
                .fresh()
                .is_none()
        );
        assert!(CachedToken::until_unix(Secret::new("c"), -5).fresh().is_none());
        assert!(CachedToken::until_unix(Secret::new("d"), i64::MAX).fresh().is_some());
        let due = CachedToken::new(Secret::new("e"), Instant::now() - Duration::from_secs(20), Some(10.0));
        assert!((due.refresh_at_unix() - (now_unix - 15)).abs() <= 1);
    }

    #[tokio::test]
    async fn the_slot_fetches_once_and_again_only_for_a_rejected_token() {
        let slot = TokenSlot::new();
        let fetches = AtomicUsize::new(0);
        let fetch = |value: &'static str| {
            let fetches = &fetches;
            move || async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                issued(value, Some(3600.0))
            }
        };
        let first = slot.current(fetch("t1")).await.unwrap();
        assert_eq!(first.expose(), "t1");
        assert_eq!(slot.current(fetch("t2")).await.unwrap().expose(), "t1");
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        let second = slot.replace_rejected(&first, fetch("t2")).await.unwrap();
        assert_eq!(second.expose(), "t2");
        // Another request that was refused the old token gets the new one without a fetch.
        assert_eq!(slot.replace_rejected(&first, fetch("t3")).await.unwrap().expose(), "t2");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_fetch_leaves_no_token() {
        let slot = TokenSlot::new();
        slot.current(|| async { issued("t1", Some(3600.0)) }).await.unwrap();
        let failed = slot
            .replace_rejected(&Secret::new("t1"), || async {
                Err::<IssuedToken, _>(AdapterError::VendorAuth { vendor: "test" })
            })
            .await;
        assert_eq!(failed, Err(AdapterError::VendorAuth { vendor: "test" }));
        assert_eq!(
            slot.current(|| async { issued("t2", None) }).await.unwrap().expose(),
            "t2"
        );
    }
}
