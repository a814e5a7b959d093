//! Resilience toward one vendor: a deadline over the whole call, retries of transient failures
//! with jittered exponential backoff and `Retry-After`, a circuit breaker, and client-side rate
//! budgets that keep the gateway under the vendor's documented limits.
//!
//! A vendor client routes every HTTP attempt through its [`Guard`]:
//!
//! ```no_run
//! # async fn demo(http: reqwest::Client) -> Result<(), adapter::AdapterError> {
//! use adapter::resilience::{Guard, RateBudget, ResilienceSettings};
//! use std::time::Duration;
//!
//! let settings = ResilienceSettings {
//!     budgets: vec![RateBudget::new("hourly", 500, Duration::from_secs(3600))],
//!     ..ResilienceSettings::default()
//! };
//! let guard = Guard::new("drchrono", settings);
//! let response = guard
//!     .send(true, Some("hourly"), || http.get("https://drchrono.com/api/doctors").send())
//!     .await?;
//! # let _ = response; Ok(()) }
//! ```
//!
//! The guard never reads or logs URLs, queries, bodies or headers beyond the status and
//! `Retry-After`.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use rand::Rng;
use reqwest::{Response, StatusCode};
use tokio::time::Instant;

use crate::AdapterError;
use crate::health::{BreakerState, BudgetStatus, VendorHealth};
use crate::http::{retry_after_header, transport_error};

/// The most retries a setting may ask for.
const MAX_RETRIES: u32 = 10;

/// The longest deadline, backoff, `Retry-After` wait, cooldown or budget window a setting may ask for.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// How calls to one vendor are bounded, retried and rationed.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceSettings {
    /// The longest one call may take, retries and budget waits included (default 20 s).
    pub deadline: Duration,
    /// Retries of a transient failure of an idempotent call (default 3).
    pub max_retries: u32,
    /// The first backoff ceiling; it doubles with each retry (default 100 ms).
    pub backoff_base: Duration,
    /// The highest backoff ceiling (default 2 s).
    pub backoff_max: Duration,
    /// The longest `Retry-After` waited for; a longer one is answered at once (default 5 s).
    pub max_retry_after: Duration,
    /// Consecutive failed calls that open the breaker (default 5; 0 = no breaker).
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before it lets a probe through (default 30 s).
    pub breaker_cooldown: Duration,
    /// The client-side rate budgets, by label.
    pub budgets: Vec<RateBudget>,
}

impl Default for ResilienceSettings {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(20),
            max_retries: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(5),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            budgets: Vec::new(),
        }
    }
}

impl ResilienceSettings {
    /// Checks every setting; the message starts with the bad field's name.
    pub fn validate(&self) -> Result<(), String> {
        let bounded = |name: &str, value: Duration| {
            if value > MAX_DURATION {
                Err(format!("`{name}` must be at most 24 hours"))
            } else {
                Ok(())
            }
        };
        if self.deadline.is_zero() {
            return Err("`deadline` must be positive".into());
        }
        bounded("deadline", self.deadline)?;
        if self.max_retries > MAX_RETRIES {
            return Err(format!("`max_retries` must be at most {MAX_RETRIES}"));
        }
        if self.backoff_base.is_zero() {
            return Err("`backoff_base` must be positive".into());
        }
        if self.backoff_base > self.backoff_max {
            return Err("`backoff_base` must not exceed `backoff_max`".into());
        }
        bounded("backoff_max", self.backoff_max)?;
        bounded("max_retry_after", self.max_retry_after)?;
        if self.breaker_failures > 0 && self.breaker_cooldown.is_zero() {
            return Err("`breaker_cooldown` must be positive when the breaker is on".into());
        }
        bounded("breaker_cooldown", self.breaker_cooldown)?;
        for (i, budget) in self.budgets.iter().enumerate() {
            let label = budget.label.trim();
            if label.is_empty() {
                return Err(format!("`budgets[{i}].label` is empty"));
            }
            if budget.window.is_zero() {
                return Err(format!("`budgets.{label}.window` must be positive"));
            }
            bounded("budgets.window", budget.window)?;
            if self.budgets[..i].iter().any(|b| b.label == budget.label) {
                return Err(format!("`budgets.{label}` is given twice"));
            }
        }
        Ok(())
    }
}

/// `limit` calls per `window`, the window aligned on the wall clock (unix time / window): as
/// DrChrono's hourly limit, which "resets at the top of each hour", and Zoom's per-second labels.
/// A limit of 0 is no limit.
#[derive(Debug, Clone, PartialEq)]
pub struct RateBudget {
    pub label: String,
    pub limit: u32,
    pub window: Duration,
}

impl RateBudget {
    pub fn new(label: impl Into<String>, limit: u32, window: Duration) -> Self {
        Self {
            label: label.into(),
            limit,
            window,
        }
    }
}

/// Rate budgets counted together by several processes (replicas of one gateway sharing one vendor
/// account): a call is taken from the shared count as well as from the process's own.
#[async_trait::async_trait]
pub trait SharedBudgets: Send + Sync + std::fmt::Debug {
    /// Takes one call from the budget `name` in its window number `window` (unix time / window
    /// length) when fewer than `limit` were taken there; false when the window is spent.
    async fn take(&self, name: &str, window: i64, limit: u32) -> Result<bool, AdapterError>;
}

/// The resilience of one vendor client: breaker, budgets and counters, shared by all its calls.
#[derive(Debug)]
pub struct Guard {
    vendor: &'static str,
    settings: ResilienceSettings,
    state: Mutex<State>,
    /// Budgets also counted across replicas, under `{scope}:{label}`.
    shared: Option<(Arc<dyn SharedBudgets>, String)>,
}

#[derive(Debug)]
struct State {
    breaker: Breaker,
    budgets: Vec<Budget>,
    retries: u64,
    breaker_rejections: u64,
    budget_waits: u64,
    budget_rejections: u64,
}

#[derive(Debug, Clone, Copy)]
enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is in flight; everything else is refused.
    Probing,
}

/// One budget's use of its current window.
#[derive(Debug)]
struct Budget {
    label: String,
    limit: u32,
    window: Duration,
    window_index: u128,
    used: u32,
    /// The vendor answered 429 with a `Retry-After` ending then.
    blocked_until: Option<SystemTime>,
}

impl Budget {
    /// The index of the window `now` is in, and how far into it.
    fn position(&self, now: SystemTime) -> (u128, Duration) {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let window = self.window.as_nanos().max(1);
        let into = u64::try_from(since % window).unwrap_or(u64::MAX);
        (since / window, Duration::from_nanos(into))
    }

    /// Takes one call; `Err(wait)` until one may be free.
    fn take(&mut self, now: SystemTime) -> Result<(), Duration> {
        if let Some(until) = self.blocked_until {
            match until.duration_since(now) {
                Ok(wait) if !wait.is_zero() => return Err(wait),
                _ => self.blocked_until = None,
            }
        }
        let (index, into) = self.position(now);
        if index != self.window_index {
            self.window_index = index;
            self.used = 0;
        }
        if self.used < self.limit {
            self.used += 1;
            Ok(())
        } else {
            Err(self.window.saturating_sub(into))
        }
    }

    fn block(&mut self, now: SystemTime, wait: Duration) {
        let until = now.checked_add(wait).unwrap_or(now);
        if self.blocked_until.is_none_or(|current| current < until) {
            self.blocked_until = Some(until);
        }
    }

    fn status(&self, now: SystemTime) -> BudgetStatus {
        let blocked = self.blocked_until.is_some_and(|until| until > now);
        let remaining = if blocked {
            0
        } else if self.position(now).0 != self.window_index {
            self.limit
        } else {
            self.limit.saturating_sub(self.used)
        };
        BudgetStatus {
            label: self.label.clone(),
            limit: self.limit,
            window: self.window,
            remaining,
        }
    }
}

/// A call admitted by the breaker; when dropped (finished or cancelled) it reports the call's
/// verdict: `Some(true)` failed, `Some(false)` succeeded, `None` never reached the vendor.
struct Permit<'a> {
    guard: &'a Guard,
    probe: bool,
    failed: Option<bool>,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.guard.settle(self.probe, self.failed);
    }
}

impl Guard {
    /// A guard for `vendor` (the name in errors). Budgets with a limit of 0 are left out.
    pub fn new(vendor: &'static str, settings: ResilienceSettings) -> Guard {
        let budgets = settings
            .budgets
            .iter()
            .filter(|b| b.limit > 0 && !b.window.is_zero())
            .map(|b| Budget {
                label: b.label.clone(),
                limit: b.limit,
                window: b.window,
                window_index: 0,
                used: 0,
                blocked_until: None,
            })
            .collect();
        Guard {
            vendor,
            settings,
            state: Mutex::new(State {
                breaker: Breaker::Closed { failures: 0 },
                budgets,
                retries: 0,
                breaker_rejections: 0,
                budget_waits: 0,
                budget_rejections: 0,
            }),
            shared: None,
        }
    }

    /// Counts the budgets in `shared` as well, under `{scope}:{label}` (the scope names the vendor
    /// account, which is what the vendor's limit applies to).
    pub fn with_shared_budgets(mut self, shared: Arc<dyn SharedBudgets>, scope: impl Into<String>) -> Self {
        self.shared = Some((shared, scope.into()));
        self
    }

    /// The settings the guard was built with.
    pub fn settings(&self) -> &ResilienceSettings {
        &self.settings
    }

    /// Sends one request through the breaker, the budget named `budget` (none when `None` or
    /// unknown) and, when `idempotent`, retries of transient failures (connect errors, timeouts,
    /// dropped connections, 429, 502, 503, 504). `attempt` builds and sends the request once.
    ///
    /// Returns the last response, whatever its status, for the caller to map; a transport failure
    /// as its [`AdapterError`]; [`AdapterError::Unavailable`] while the breaker is open;
    /// [`AdapterError::RateLimited`] when the budget cannot be waited for within the deadline; and
    /// [`AdapterError::Timeout`] when the deadline passes.
    pub async fn send<F, Fut>(
        &self,
        idempotent: bool,
        budget: Option<&str>,
        mut attempt: F,
    ) -> Result<Response, AdapterError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Response, reqwest::Error>>,
    {
        let deadline = after(Instant::now(), self.settings.deadline);
        let mut permit = self.admit()?;
        let budget = budget.and_then(|label| self.lock().budgets.iter().position(|b| b.label == label));
        let outcome = tokio::time::timeout_at(
            deadline,
            self.attempts(idempotent, budget, deadline, &mut attempt, &mut permit.failed),
        )
        .await;
        match outcome {
            Ok(result) => result,
            Err(_) => {
                permit.failed = Some(true);
                Err(AdapterError::Timeout { vendor: self.vendor })
            }
        }
    }

    /// The breaker, the counters and the budgets as they are now.
    pub fn health(&self) -> VendorHealth {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let state = self.lock();
        let breaker = if self.settings.breaker_failures == 0 {
            BreakerState::Closed
        } else {
            match state.breaker {
                Breaker::Closed { .. } => BreakerState::Closed,
                Breaker::Probing => BreakerState::HalfOpen,
                Breaker::Open { until } if now >= until => BreakerState::HalfOpen,
                Breaker::Open { .. } => BreakerState::Open,
            }
        };
        VendorHealth {
            breaker,
            retries: state.retries,
            breaker_rejections: state.breaker_rejections,
            budget_waits: state.budget_waits,
            budget_rejections: state.budget_rejections,
            budgets: state.budgets.iter().map(|b| b.status(wall)).collect(),
        }
    }

    /// The attempts of one call, each after taking from the budget; records in `failed` the
    /// verdict of the last attempt that reached the vendor.
    async fn attempts<F, Fut>(
        &self,
        idempotent: bool,
        budget: Option<usize>,
        deadline: Instant,
        attempt: &mut F,
        failed: &mut Option<bool>,
    ) -> Result<Response, AdapterError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Response, reqwest::Error>>,
    {
        let mut retry = 0;
        loop {
            if let Some(index) = budget {
                self.take_budget(index, deadline).await?;
            }
            let outcome = attempt().await;
            let (transient, retry_after) = match &outcome {
                Ok(response) => {
                    let status = response.status();
                    *failed = Some(status.is_server_error());
                    let retry_after = retry_after_header(response.headers(), Utc::now());
                    if status == StatusCode::TOO_MANY_REQUESTS
                        && let (Some(index), Some(wait)) = (budget, retry_after)
                    {
                        self.lock().budgets[index].block(SystemTime::now(), wait);
                    }
                    (matches!(status.as_u16(), 429 | 502 | 503 | 504), retry_after)
                }
                Err(error) => {
                    *failed = Some(true);
                    (is_transient(error), None)
                }
            };
            if !transient || !idempotent || retry >= self.settings.max_retries {
                return self.finish(outcome);
            }
            if retry_after.is_some_and(|wait| wait > self.settings.max_retry_after) {
                return self.finish(outcome);
            }
            let delay = self.backoff(retry).max(retry_after.unwrap_or_default());
            if after(Instant::now(), delay) >= deadline {
                return self.finish(outcome);
            }
            drop(outcome);
            retry += 1;
            self.lock().retries += 1;
            tokio::time::sleep(delay).await;
        }
    }

    fn finish(&self, outcome: Result<Response, reqwest::Error>) -> Result<Response, AdapterError> {
        outcome.map_err(|e| transport_error(self.vendor, &e))
    }

    /// Takes one call from budget `index`, waiting for the next window when that fits before the
    /// deadline.
    async fn take_budget(&self, index: usize, deadline: Instant) -> Result<(), AdapterError> {
        let mut waited = false;
        loop {
            let now = SystemTime::now();
            let taken = self.lock().budgets[index].take(now);
            let taken = match (taken, &self.shared) {
                (Ok(()), Some((shared, scope))) => self.take_shared(shared.as_ref(), scope, index, now).await,
                (taken, _) => taken,
            };
            let Err(wait) = taken else {
                return Ok(());
            };
            if after(Instant::now(), wait) >= deadline {
                self.lock().budget_rejections += 1;
                return Err(AdapterError::RateLimited {
                    vendor: self.vendor,
                    retry_after: Some(wait),
                });
            }
            if !waited {
                waited = true;
                self.lock().budget_waits += 1;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes the call from the shared count of budget `index` too; `Err(wait)` until its next
    /// window when the replicas together have spent it. When the shared count cannot be reached,
    /// the process's own budget alone decides (and the failure is logged).
    async fn take_shared(
        &self,
        shared: &dyn SharedBudgets,
        scope: &str,
        index: usize,
        now: SystemTime,
    ) -> Result<(), Duration> {
        let (label, limit, window, position) = {
            let state = self.lock();
            let b = &state.budgets[index];
            (b.label.clone(), b.limit, b.window, b.position(now))
        };
        let (window_index, into) = position;
        let name = format!("{scope}:{label}");
        match shared
            .take(&name, i64::try_from(window_index).unwrap_or(i64::MAX), limit)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                // Not a call after all: give the process's own count its slot back.
                let mut state = self.lock();
                let budget = &mut state.budgets[index];
                budget.used = budget.used.saturating_sub(1);
                Err(window.saturating_sub(into))
            }
            Err(e) => {
                tracing::warn!(vendor = self.vendor, error = %e, "the shared rate budget is unreachable; counting this process's calls only");
                Ok(())
            }
        }
    }

    /// The backoff before retry `retry` (0-based): full jitter under `backoff_base · 2^retry`,
    /// capped at `backoff_max`.
    fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .settings
            .backoff_base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.settings.backoff_max);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// Lets a call through the breaker, or refuses it while the breaker is open (or a probe is in
    /// flight).
    fn admit(&self) -> Result<Permit<'_>, AdapterError> {
        let mut probe = false;
        if self.settings.breaker_failures > 0 {
            let mut state = self.lock();
            match state.breaker {
                Breaker::Closed { .. } => {}
                Breaker::Open { until } if Instant::now() >= until => {
                    state.breaker = Breaker::Probing;
                    probe = true;
                }
                Breaker::Open { .. } | Breaker::Probing => {
                    state.breaker_rejections += 1;
                    return Err(AdapterError::Unavailable {
                        vendor: self.vendor,
                        detail: "temporarily not called after repeated failures".into(),
                    });
                }
            }
        }
        Ok(Permit {
            guard: self,
            probe,
            failed: None,
        })
    }

    /// The breaker after a call: a probe's success closes it and its failure re-opens it; a call
    /// that failed counts toward opening it, one that succeeded resets the count.
    fn settle(&self, probe: bool, failed: Option<bool>) {
        let threshold = self.settings.breaker_failures;
        if threshold == 0 {
            return;
        }
        let now = Instant::now();
        let reopened = Breaker::Open {
            until: after(now, self.settings.breaker_cooldown),
        };
        let mut state = self.lock();
        state.breaker = match (state.breaker, probe, failed) {
            (_, true, Some(false)) => Breaker::Closed { failures: 0 },
            (_, true, Some(true)) => reopened,
            // The probe never reached the vendor (cancelled, or out of budget): the next call probes.
            (_, true, None) => Breaker::Open { until: now },
            (Breaker::Closed { .. }, false, Some(false)) => Breaker::Closed { failures: 0 },
            (Breaker::Closed { failures }, false, Some(true)) => {
                let failures = failures.saturating_add(1);
                if failures >= threshold {
                    reopened
                } else {
                    Breaker::Closed { failures }
                }
            }
            (current, false, _) => current,
        };
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// True for failures worth another attempt: no connection, no answer in time, or a connection
/// dropped before an answer.
fn is_transient(error: &reqwest::Error) -> bool {
    if error.is_builder() || error.is_redirect() || error.is_status() || error.is_body() || error.is_decode() {
        return false;
    }
    error.is_connect() || error.is_timeout() || error.is_request()
}

/// `now + wait`, saturating far in the future.
fn after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .or_else(|| now.checked_add(MAX_DURATION))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{HeaderMap, HeaderValue, StatusCode as AxumStatus};
    use axum::response::IntoResponse;

    use super::*;

    /// One scripted answer of the test server.
    #[derive(Clone)]
    struct Reply {
        status: u16,
        retry_after: Option<String>,
        delay: Duration,
    }

    fn status(status: u16) -> Reply {
        Reply {
            status,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }

    fn with_retry_after(status: u16, value: &str) -> Reply {
        Reply {
            retry_after: Some(value.to_owned()),
            ..self::status(status)
        }
    }

    /// A server on loopback answering with `script` in order, then 200; counts what reaches it.
    struct Server {
        url: String,
        hits: Arc<AtomicUsize>,
    }

    async fn serve(script: Vec<Reply>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let (script, counter) = (script.clone(), counter.clone());
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let reply = script.lock().unwrap().pop_front().unwrap_or(self::status(200));
                tokio::time::sleep(reply.delay).await;
                let mut headers = HeaderMap::new();
                if let Some(value) = &reply.retry_after {
                    headers.insert("retry-after", HeaderValue::from_str(value).unwrap());
                }
                (AxumStatus::from_u16(reply.status).unwrap(), headers, "{}").into_response()
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { url, hits }
    }

    impl Server {
        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    fn fast() -> ResilienceSettings {
        ResilienceSettings {
            deadline: Duration::from_secs(5),
            max_retries: 3,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(5),
            breaker_failures: 0,
            breaker_cooldown: Duration::from_millis(50),
            budgets: Vec::new(),
        }
    }

    async fn get(guard: &Guard, url: &str) -> Result<u16, AdapterError> {
        get_in(guard, url, None).await
    }

    async fn get_in(guard: &Guard, url: &str, budget: Option<&str>) -> Result<u16, AdapterError> {
        let http = reqwest::Client::new();
        guard
            .send(true, budget, || http.get(url).send())
            .await
            .map(|r| r.status().as_u16())
    }

    /// Sleeps into a fresh window when less than `margin` of the current one is left.
    async fn fresh_window(window: Duration, margin: Duration) {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let left = Duration::from_nanos((window.as_nanos() - since % window.as_nanos()) as u64);
        if left < margin {
            tokio::time::sleep(left + Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn transient_statuses_are_retried_until_success() {
        let server = serve(vec![status(503), status(502), status(504)]).await;
        let guard = Guard::new("v", fast());
        assert_eq!(get(&guard, &server.url).await, Ok(200));
        assert_eq!(server.hits(), 4);
        assert_eq!(guard.health().retries, 3);
    }

    #[tokio::test]
    async fn retries_stop_when_used_up_and_the_last_answer_is_returned() {
        let server = serve(vec![status(503); 5]).await;
        let guard = Guard::new("v", fast());
        assert_eq!(get(&guard, &server.url).await, Ok(503));
        assert_eq!(server.hits(), 4);
    }

    #[tokio::test]
    async fn a_500_and_other_statuses_are_not_retried() {
        for code in [500, 404, 400, 401] {
            let server = serve(vec![status(code)]).await;
            let guard = Guard::new("v", fast());
            assert_eq!(get(&guard, &server.url).await, Ok(code));
            assert_eq!(server.hits(), 1, "{code}");
            assert_eq!(guard.health().retries, 0);
        }
    }

    #[tokio::test]
    async fn a_call_that_is_not_idempotent_is_never_retried() {
        let server = serve(vec![status(503)]).await;
        let guard = Guard::new("v", fast());
        let http = reqwest::Client::new();
        let response = guard.send(false, None, || http.post(&server.url).send()).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(server.hits(), 1);
    }

    #[tokio::test]
    async fn retry_after_in_seconds_is_waited_for() {
        let server = serve(vec![with_retry_after(429, "1")]).await;
        let guard = Guard::new("v", fast());
        let started = Instant::now();
        assert_eq!(get(&guard, &server.url).await, Ok(200));
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn retry_after_as_an_http_date_is_waited_for() {
        let when = Utc::now() + chrono::Duration::seconds(2);
        let date = when.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let server = serve(vec![with_retry_after(503, &date)]).await;
        let guard = Guard::new("v", fast());
        let started = Instant::now();
        assert_eq!(get(&guard, &server.url).await, Ok(200));
        // The date has whole seconds: at least one of the two is left.
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_longest_wait_is_answered_at_once() {
        let far = (Utc::now() + chrono::Duration::hours(1))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        for value in ["60", far.as_str()] {
            let server = serve(vec![with_retry_after(429, value)]).await;
            let guard = Guard::new("v", fast());
            let started = Instant::now();
            assert_eq!(get(&guard, &server.url).await, Ok(429));
            assert!(started.elapsed() < Duration::from_millis(500));
            assert_eq!(server.hits(), 1, "{value}");
        }
    }

    #[tokio::test]
    async fn a_retry_that_would_pass_the_deadline_is_not_made() {
        let server = serve(vec![with_retry_after(503, "1")]).await;
        let guard = Guard::new(
            "v",
            ResilienceSettings {
                deadline: Duration::from_millis(300),
                ..fast()
            },
        );
        let started = Instant::now();
        assert_eq!(get(&guard, &server.url).await, Ok(503));
        assert!(started.elapsed() < Duration::from_millis(250));
        assert_eq!(server.hits(), 1);
    }

    #[tokio::test]
    async fn the_deadline_bounds_the_whole_call() {
        let slow = Reply {
            delay: Duration::from_secs(2),
            ..status(200)
        };
        let server = serve(vec![slow]).await;
        let guard = Guard::new(
            "v",
            ResilienceSettings {
                deadline: Duration::from_millis(100),
                breaker_failures: 1,
                ..fast()
            },
        );
        let started = Instant::now();
        assert_eq!(
            get(&guard, &server.url).await,
            Err(AdapterError::Timeout { vendor: "v" })
        );
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            guard.health().breaker,
            BreakerState::Open,
            "a deadline hit is a failure"
        );
    }

    #[tokio::test]
    async fn connection_failures_are_retried_and_mapped() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let guard = Guard::new("v", fast());
        let error = get(&guard, &url).await.unwrap_err();
        assert!(
            matches!(error, AdapterError::Unavailable { vendor: "v", .. }),
            "{error:?}"
        );
        assert_eq!(guard.health().retries, 3);
    }

    #[tokio::test]
    async fn the_breaker_opens_rejects_without_calling_and_a_probe_closes_it() {
        let server = serve(vec![status(500), status(503)]).await;
        let guard = Guard::new(
            "v",
            ResilienceSettings {
                max_retries: 0,
                breaker_failures: 2,
                ..fast()
            },
        );
        assert_eq!(get(&guard, &server.url).await, Ok(500));
        assert_eq!(guard.health().breaker, BreakerState::Closed);
        assert_eq!(get(&guard, &server.url).await, Ok(503));
        assert_eq!(guard.health().breaker, BreakerState::Open);
        let error = get(&guard, &server.url).await.unwrap_err();
        assert_eq!(
            error,
            AdapterError::Unavailable {
                vendor: "v",
                detail: "temporarily not called after repeated failures".into()
            }
        );
        assert_eq!(server.hits(), 2, "a rejected call does not reach the vendor");
        assert_eq!(guard.health().breaker_rejections, 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(guard.health().breaker, BreakerState::HalfOpen);
        assert_eq!(get(&guard, &server.url).await, Ok(200));
        assert_eq!(guard.health().breaker, BreakerState::Closed);
        assert_eq!(server.hits(), 3);
    }

    #[tokio::test]
    async fn a_success_resets_the_count_and_4xx_are_not_failures() {
        let server = serve(vec![status(500), status(404), status(429), status(500)]).await;
        let guard = Guard::new(
            "v",
            ResilienceSettings {
                max_retries: 0,
                breaker_failures: 2,
                ..fast()
            },
        );
        for expected in [500, 404, 429, 500] {
            assert_eq!(get(&guard, &server.url).await, Ok(expected));
        }
        assert_eq!(guard.health().breaker, BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_failed_probe_reopens_and_only_one_probe_runs_at_a_time() {
        let slow_ok = Reply {
            delay: Duration::from_millis(150),
            ..status(200)
        };
        let server = serve(vec![status(502), status(502), slow_ok]).await;
        let guard = Guard::new(
            "v",
            ResilienceSettings {
                max_retries: 0,
                breaker_failures: 1,
                ..fast()
            },
        );
        assert_eq!(get(&guard, &server.url).await, Ok(502));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(get(&guard, &server.url).await, Ok(502), "the probe fails");
        assert_eq!(guard.health().breaker, BreakerState::Open);
        assert!(get(&guard, &server.url).await.is_err(), "open again for a cooldown");
        tokio::time::sleep(Duration::from_millis(60)).await;
        let (probe, other) = tokio::join!(get(&guard, &server.url), async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            get(&guard, &server.url).await
        });
        assert_eq!(probe, Ok(200));
        assert!(
            matches!(other, Err(AdapterError::Unavailable { .. })),
            "refused while the probe runs: {other:?}"
        );
        assert_eq!(server.hits(), 3);
        assert_eq!(guard.health().breaker, BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_cancelled_probe_lets_the_next_call_probe() {
        let server = serve(vec![
            status(500),
            Reply {
                delay: Duration::from_secs(5),
                ..status(200)
            },
        ])
        .await;
        let guard = Guard::new(
            "v",
            ResilienceSettings {
                max_retries: 0,
                breaker_failures: 1,
                ..fast()
            },
        );
        assert_eq!(get(&guard, &server.url).await, Ok(500));
        tokio::time::sleep(Duration::from_millis(60)).await;
        let cancelled = tokio::time::timeout(Duration::from_millis(50), get(&guard, &server.url)).await;
        assert!(cancelled.is_err());
        assert_eq!(get(&guard, &server.url).await, Ok(200));
        assert_eq!(guard.health().breaker, BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_used_up_budget_waits_for_the_next_window() {
        let window = Duration::from_millis(200);
        let server = serve(Vec::new()).await;
        let guard = Guard::new(
            "v",
            ResilienceSettings {
                budgets: vec![RateBudget::new("b", 2, window)],
                ..fast()
            },
        );
        fresh_window(window, Duration::from_millis(150)).await;
        assert_eq!(get_in(&guard, &server.url, Some("b")).await, Ok(200));
        assert_eq!(get_in(&guard, &server.url, Some("b")).await, Ok(200));
        let health = guard.health();
        assert_eq!(health.budgets[0].remaining, 0);
        assert_eq!(health.budget_waits, 0);
        let started = Instant::now();
        assert_eq!(get_in(&guard, &server.url, Some("b")).await, Ok(200));
        assert!(started.elapsed() >= Duration::from_millis(5), "{:?}", started.elapsed());
        let health = guard.health();
        assert_eq!((health.budget_waits, health.budget_rejections), (1, 0));
        assert_eq!(server.hits(), 3);
        // Another label, or none, is not rationed.
        assert_eq!(get_in(&guard, &server.url, Some("other")).await, Ok(200));
        assert_eq!(get_in(&guard, &server.url, None).await, Ok(200));
        assert_eq!(guard.health().budget_waits, 1);
    }

    #[tokio::test]
    async fn a_budget_wait_beyond_the_deadline_is_refused_without_calling() {
        let window = Duration::from_secs(60);
        let server = serve(Vec::new()).await;
        let guard = Guard::new(
            "v",
            ResilienceSettings {
                deadline: Duration::from_millis(200),
                budgets: vec![RateBudget::new("b", 1, window)],
                ..fast()
            },
        );
        fresh_window(window, Duration::from_secs(2)).await;
        assert_eq!(get_in(&guard, &server.url, Some("b")).await, Ok(200));
        let error = get_in(&guard, &server.url, Some("b")).await.unwrap_err();
        let AdapterError::RateLimited {
            vendor: "v",
            retry_after: Some(wait),
        } = error
        else {
            panic!("{error:?}")
        };
        assert!(wait > Duration::from_millis(200) && wait <= window, "{wait:?}");
        assert_eq!(server.hits(), 1);
        let health = guard.health();
        assert_eq!((health.budget_waits, health.budget_rejections), (0, 1));
        assert_eq!(
            health.budgets,
            vec![BudgetStatus {
                label: "b".into(),
                limit: 1,
                window,
                remaining: 0
            }]
        );
    }

    #[tokio::test]
    async fn a_429_exhausts_the_budget_until_its_retry_after() {
        let server = serve(vec![with_retry_after(429, "30")]).await;
        let guard = Guard::new(
            "v",
            ResilienceSettings {
                budgets: vec![RateBudget::new("b", 100, Duration::from_secs(3600))],
                ..fast()
            },
        );
        assert_eq!(get_in(&guard, &server.url, Some("b")).await, Ok(429));
        assert_eq!(guard.health().budgets[0].remaining, 0);
        let error = get_in(&guard, &server.url, Some("b")).await.unwrap_err();
        assert!(
            matches!(error, AdapterError::RateLimited { retry_after: Some(wait), .. } if wait > Duration::from_secs(25)),
            "{error:?}"
        );
        assert_eq!(server.hits(), 1);
    }

    #[test]
    fn budgets_count_per_wall_clock_window() {
        let mut budget = Budget {
            label: "hourly".into(),
            limit: 2,
            window: Duration::from_secs(3600),
            window_index: 0,
            used: 0,
            blocked_until: None,
        };
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        let t = 7200 + 3000;
        assert_eq!(budget.take(at(t)), Ok(()));
        assert_eq!(budget.take(at(t + 1)), Ok(()));
        assert_eq!(budget.take(at(t + 2)), Err(Duration::from_secs(598)));
        assert_eq!(budget.status(at(t + 2)).remaining, 0);
        assert_eq!(budget.status(at(10_800)).remaining, 2);
        assert_eq!(budget.take(at(10_800)), Ok(()));
        budget.block(at(10_800), Duration::from_secs(10));
        assert_eq!(budget.take(at(10_801)), Err(Duration::from_secs(9)));
        assert_eq!(budget.take(at(10_810)), Ok(()));
    }

    #[test]
    fn the_backoff_is_jittered_under_a_doubling_ceiling() {
        let guard = Guard::new(
            "v",
            ResilienceSettings {
                backoff_base: Duration::from_millis(100),
                backoff_max: Duration::from_millis(300),
                ..fast()
            },
        );
        for _ in 0..200 {
            assert!(guard.backoff(0) <= Duration::from_millis(100));
            assert!(guard.backoff(1) <= Duration::from_millis(200));
            assert!(guard.backoff(5) <= Duration::from_millis(300));
            assert!(guard.backoff(40) <= Duration::from_millis(300));
        }
        let spread: std::collections::BTreeSet<Duration> = (0..20).map(|_| guard.backoff(2)).collect();
        assert!(spread.len() > 1, "jittered");
    }

    #[test]
    fn defaults_are_valid_and_each_bad_setting_is_named() {
        assert_eq!(ResilienceSettings::default().validate(), Ok(()));
        assert_eq!(
            ResilienceSettings {
                breaker_failures: 0,
                breaker_cooldown: Duration::ZERO,
                ..ResilienceSettings::default()
            }
            .validate(),
            Ok(())
        );
        type Breaks = fn(&mut ResilienceSettings);
        let cases: [(&str, Breaks); 8] = [
            ("deadline", |s| s.deadline = Duration::ZERO),
            ("deadline", |s| s.deadline = Duration::from_secs(100_000)),
            ("max_retries", |s| s.max_retries = 11),
            ("backoff_base", |s| s.backoff_base = Duration::ZERO),
            ("backoff_base", |s| s.backoff_base = Duration::from_secs(3)),
            ("breaker_cooldown", |s| s.breaker_cooldown = Duration::ZERO),
            ("budgets.b.window", |s| {
                s.budgets = vec![RateBudget::new("b", 1, Duration::ZERO)]
            }),
            ("budgets.b", |s| {
                s.budgets = vec![
                    RateBudget::new("b", 1, Duration::from_secs(1)),
                    RateBudget::new("b", 2, Duration::from_secs(1)),
                ]
            }),
        ];
        for (field, break_it) in cases {
            let mut settings = ResilienceSettings::default();
            break_it(&mut settings);
            let message = settings.validate().unwrap_err();
            assert!(message.starts_with(&format!("`{field}")), "{field}: {message}");
        }
    }

    #[test]
    fn breaker_states_are_gauges() {
        assert_eq!(
            [BreakerState::Closed, BreakerState::HalfOpen, BreakerState::Open].map(|s| s.as_gauge()),
            [0, 1, 2]
        );
    }
}
