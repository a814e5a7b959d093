//! How an adapter's calls to its vendor are faring: the circuit breaker, retries and client-side
//! rate budgets (see `resilience` behind the `client` feature). Plain data the gateway publishes in
//! `/metrics`.

use std::time::Duration;

/// The circuit breaker in front of a vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// The cooldown is over: one call at a time is let through as a probe.
    HalfOpen,
    /// Calls are refused without reaching the vendor until the cooldown is over.
    Open,
}

impl BreakerState {
    /// The state as a gauge value: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(&self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// One client-side rate budget: `limit` calls per wall-clock `window`.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetStatus {
    /// The budget's name (`hourly`, `light`, …).
    pub label: String,
    pub limit: u32,
    pub window: Duration,
    /// Calls left in the current window (0 while the vendor asked to wait).
    pub remaining: u32,
}

/// The resilience figures of one vendor client since it was built.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorHealth {
    pub breaker: BreakerState,
    /// Attempts repeated after a transient failure.
    pub retries: u64,
    /// Calls refused because the breaker was open.
    pub breaker_rejections: u64,
    /// Calls that waited for the next window of a rate budget.
    pub budget_waits: u64,
    /// Calls refused because a rate budget was used up for longer than they could wait.
    pub budget_rejections: u64,
    pub budgets: Vec<BudgetStatus>,
}
