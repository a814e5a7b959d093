//! Simulator of the Noa Notes Integration API (ambient clinical documentation: a doctor records
//! a visit in Noa's recorder, Noa transcribes it and writes a structured summary that the
//! doctor verifies).
//!
//! Noa's public document (`noa-notes-integration-api.md`) names the operations and request
//! fields only; the paths, response shapes, status codes, lifecycle and webhook payload this
//! simulator serves are the ones `docs/noa-api.md` states, which is the contract shared with
//! `crates/adapter-noa`. Over real HTTP it serves:
//!
//! - sign-in (`POST /api/v1/clients/authenticate`) issuing expiring consumer tokens, and session
//!   tokens (from session creation) that authorise only their session's `/api/v1/sessions/{id}`
//!   calls;
//! - sessions (create, idempotent resume, status, summary, recover, regenerate, the list),
//!   facilities and doctors (create/update by external id);
//! - a session lifecycle on a simulated clock, drawn from the seed when each session is created,
//!   with webhooks posted on every status change except to New;
//! - a deterministic dataset coherent with an EHR described by [`EhrRefs`] (usually the DrChrono
//!   simulator's, see [`EhrRefs::from_drchrono`]): every session is for one of its appointments;
//! - injectable faults (latency and spikes, 5xx, 429, malformed and truncated bodies, dropped
//!   connections) on `/api/v1/*` except the sign-in, as for the other simulators' OAuth endpoints;
//! - control routes for tests and demos (no auth): `POST /_sim/sessions/{id}/approve`
//!   (`{"empty": false}`), `POST /_sim/sessions/{id}/start-recording`,
//!   `POST /_sim/clock/advance` (`{"seconds": N}`), `GET /_sim/clock`; and a bare HTML page at
//!   each session's `recorderUrl`/`summaryUrl`.
//!
//! # Beyond the docs
//!
//! Choices that neither Noa's document nor `docs/noa-api.md` make:
//! - every `/api/v1` request needs `?api-version=` equal to [`NoaSimConfig::api_version`]; the
//!   400 answers are ASP.NET API versioning's problems (`…/problems#unspecified`,
//!   `…#unsupported`), checked before the bearer token;
//! - a valid token used outside its scope (a session token on `/consumers/*`, a consumer token or
//!   another session's token on `/sessions/{id}/*`) is answered 403; an unknown or expired one
//!   401 with `WWW-Authenticate: Bearer`;
//! - validation failures are ASP.NET's validation problem: `title` "One or more validation errors
//!   occurred." and `errors` (field → messages); every problem carries a W3C-style `traceId`;
//! - a blank `facilityId` counts as null; a repeated template section title is refused (400); an
//!   empty template falls back to the default sections; the summary text is English whatever
//!   the `language`;
//! - `webhookUrl` must be an absolute http(s) URL (400 otherwise);
//! - while a recover or regenerate runs, the summary stays readable with its old content and
//!   `doctorApproved: false`; they never end Failed;
//! - the list's page tokens remember the filters and the position of the last item (keyset),
//!   so pages never repeat an item; they expire after an hour of real time;
//! - `metadata` values must be strings (400 otherwise);
//! - a method a path does not take is answered 405 with problem details;
//! - timestamps are to the second.
//!
//! The clock starts at noon on [`NoaSimConfig::anchor`] in [`NoaSimConfig::timezone`]. It stands
//! still unless [`NoaSimHandle::advance_clock`] moves it, or runs [`NoaSimConfig::clock_speed`]
//! times real time. Tokens expire on real time.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use vendor_sim::noa::{EhrRefs, NoaSim, NoaSimConfig};
//! let anchor = chrono::NaiveDate::from_ymd_opt(2025, 3, 14).unwrap();
//! let sim = NoaSim::new(NoaSimConfig::small(42, anchor, EhrRefs::default()));
//! let handle = sim.spawn("127.0.0.1:0".parse().unwrap()).await?;
//! println!("Noa at {}", handle.api_base_url());
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod content;
mod control;
mod data;
mod gate;
mod lifecycle;
mod webhooks;
pub mod wire;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use chrono::{DateTime, NaiveDate, TimeDelta, Timelike, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use self::data::Dataset;
pub use self::lifecycle::SimError;
use self::lifecycle::{Change, State, uuid};
pub use self::webhooks::{DeliveryOutcome, WebhookDelivery};
use self::wire::{SessionDetails, WebhookEvent};
use crate::faults::FaultDice;
pub use crate::faults::Faults;

/// A doctor of the EHR.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EhrDoctor {
    pub id: i64,
    pub name: String,
}

/// An office (Noa: facility) of the EHR.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EhrOffice {
    pub id: i64,
    pub name: String,
}

/// An appointment of the EHR a recording can belong to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EhrAppointment {
    pub id: String,
    pub patient: i64,
    pub doctor: i64,
    pub office: i64,
    /// Zone-less local time (`2025-03-14T09:30:00`) in [`NoaSimConfig::timezone`].
    pub scheduled_time: String,
    /// Minutes.
    pub duration: i64,
}

/// What the simulator knows of the EHR. When it has no appointments the simulator makes up a
/// small EHR of its own (doctors 900001-900003, offices 700001-700002).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EhrRefs {
    pub doctors: Vec<EhrDoctor>,
    pub offices: Vec<EhrOffice>,
    pub appointments: Vec<EhrAppointment>,
}

impl EhrRefs {
    /// The DrChrono simulator's practice: every doctor (`First Last`) and office, and the
    /// appointments a recording can belong to — those with a patient that are neither breaks,
    /// deleted, cancelled, rescheduled nor no-shows (as [`crate::zoom::EhrRefs::from_drchrono`]).
    pub fn from_drchrono(dataset: &crate::drchrono::Dataset) -> Self {
        let doctors = dataset
            .doctors
            .iter()
            .map(|d| EhrDoctor {
                id: d.id,
                name: format!("{} {}", d.first_name.trim(), d.last_name.trim())
                    .trim()
                    .to_owned(),
            })
            .collect();
        let offices = dataset
            .offices
            .iter()
            .map(|o| EhrOffice {
                id: o.id,
                name: o.name.clone(),
            })
            .collect();
        let appointments = dataset
            .appointments
            .iter()
            .filter(|a| {
                !a.appt_is_break
                    && !a.deleted_flag
                    && !matches!(a.status.as_str(), "Cancelled" | "Rescheduled" | "No Show")
            })
            .filter_map(|a| {
                Some(EhrAppointment {
                    id: a.id.clone(),
                    patient: a.patient?,
                    doctor: a.doctor,
                    office: a.office,
                    scheduled_time: a.scheduled_time.clone(),
                    duration: a.duration,
                })
            })
            .collect();
        Self {
            doctors,
            offices,
            appointments,
        }
    }
}

/// Everything that shapes a simulated Noa consumer.
#[derive(Clone, Debug)]
pub struct NoaSimConfig {
    /// Same seed and same `ehr` ⇒ identical dataset.
    pub seed: u64,
    /// "Today": the clock starts at noon that day in `timezone`.
    pub anchor: NaiveDate,
    pub ehr: EhrRefs,
    /// The client's id (a UUID) for sign-in.
    pub client_id: String,
    pub client_secret: String,
    /// The consumer (a UUID) every session belongs to.
    pub consumer_id: String,
    /// The only `api-version` accepted (`1.0`).
    pub api_version: String,
    /// Lifetime of consumer tokens (3600 s), real time.
    pub token_ttl: Duration,
    /// `expiresIn` of sessions and their tokens (7200 s): tokens expire on real time, sessions'
    /// `expiresAt` is on the simulated clock.
    pub session_ttl: Duration,
    /// The consumer's default webhook URL (sessions without `webhookUrl`).
    pub default_webhook_url: Option<String>,
    /// Sessions to generate.
    pub sessions: usize,
    /// Chances that a new session's plan ends Interrupted, Failed or Expired.
    pub interrupted_rate: f64,
    pub failed_rate: f64,
    pub expired_rate: f64,
    /// Summarized → Verified automatically after this much simulated time; `None`: only by
    /// [`NoaSimHandle::approve`] (or `POST /_sim/sessions/{id}/approve`).
    pub auto_approve_after: Option<TimeDelta>,
    /// `Some(f)`: the clock runs at `f` times real time and a background task applies the
    /// lifecycle steps as they fall due; `None`: it only moves by
    /// [`NoaSimHandle::advance_clock`].
    pub clock_speed: Option<f64>,
    pub faults: Faults,
    /// IANA zone of the EHR's zone-less times.
    pub timezone: String,
}

impl NoaSimConfig {
    /// A consumer for demos: 150 sessions, a clock running ten times real time, a few planned
    /// errors, and summaries verified twenty simulated minutes after they are written.
    pub fn demo(seed: u64, anchor: NaiveDate, ehr: EhrRefs) -> Self {
        Self {
            sessions: 150,
            interrupted_rate: 0.04,
            failed_rate: 0.04,
            expired_rate: 0.04,
            auto_approve_after: Some(TimeDelta::minutes(20)),
            clock_speed: Some(10.0),
            ..Self::small(seed, anchor, ehr)
        }
    }

    /// A small consumer for fast tests: 24 sessions (every status at least once), a clock that
    /// stands still, no planned errors, no automatic approval.
    pub fn small(seed: u64, anchor: NaiveDate, ehr: EhrRefs) -> Self {
        Self {
            seed,
            anchor,
            ehr,
            client_id: uuid(&mut ChaCha20Rng::seed_from_u64(seed ^ 0x0c11_e470_0000_0001)),
            client_secret: "noa-sim-secret".into(),
            consumer_id: uuid(&mut ChaCha20Rng::seed_from_u64(seed ^ 0x0c05_0e70_0000_0002)),
            api_version: "1.0".into(),
            token_ttl: Duration::from_secs(3600),
            session_ttl: Duration::from_secs(7200),
            default_webhook_url: None,
            sessions: 24,
            interrupted_rate: 0.0,
            failed_rate: 0.0,
            expired_rate: 0.0,
            auto_approve_after: None,
            clock_speed: None,
            faults: Faults::default(),
            timezone: "America/New_York".into(),
        }
    }
}

/// The simulated clock: `base` plus real time since `started` times `speed` (0: stands still).
struct SimClock {
    base: DateTime<Utc>,
    started: Instant,
    speed: f64,
}

impl SimClock {
    fn now(&self) -> DateTime<Utc> {
        let now = if self.speed > 0.0 {
            let millis = self.started.elapsed().as_secs_f64() * self.speed * 1000.0;
            self.base
                .checked_add_signed(TimeDelta::milliseconds(millis as i64))
                .unwrap_or(self.base)
        } else {
            self.base
        };
        now.with_nanosecond(0).unwrap_or(now)
    }
}

/// State shared by the router, the background tasks and every [`NoaSimHandle`].
pub(crate) struct Shared {
    pub(crate) config: NoaSimConfig,
    pub(crate) state: Mutex<State>,
    origin: RwLock<String>,
    pub(crate) tokens: Mutex<auth::TokenStore>,
    pub(crate) pages: Mutex<api::PageStore>,
    pub(crate) faults: Mutex<(Faults, FaultDice)>,
    pub(crate) hits: Mutex<BTreeMap<String, u64>>,
    pub(crate) token_grants: AtomicU64,
    clock: Mutex<SimClock>,
    /// Ids and plans of sessions created after start-up, and event ids (deterministic for a
    /// given sequence of calls).
    pub(crate) ids: Mutex<ChaCha20Rng>,
    pub(crate) webhooks: webhooks::Webhooks,
}

impl Shared {
    pub(crate) fn faults(&self) -> Faults {
        lock(&self.faults).0.clone()
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        lock(&self.clock).now()
    }

    /// `http://host:port` (`http://localhost` until bound).
    pub(crate) fn origin(&self) -> String {
        self.origin.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn auto_approve(&self) -> Option<TimeDelta> {
        self.config.auto_approve_after
    }

    /// Applies every lifecycle step due by now and queues their webhooks.
    pub(crate) fn run_due(&self) {
        let now = self.now();
        let mut state = lock(&self.state);
        let changes = state.run_due(now, self.auto_approve());
        self.publish(changes);
    }

    /// Queues the webhooks of `changes` (call with the state locked, so they queue in order).
    pub(crate) fn publish(&self, changes: Vec<Change>) {
        for change in changes {
            if change.to == wire::SessionStatus::New {
                continue;
            }
            let event = WebhookEvent {
                event_id: uuid(&mut *lock(&self.ids)),
                session_id: change.session_id,
                episode_id: change.episode_id,
                doctor_id: change.doctor_id,
                facility_id: change.facility_id,
                status: change.to,
                previous_status: change.from,
                occurred_at: data::ts(change.at),
            };
            let url = change
                .webhook_url
                .or_else(|| self.config.default_webhook_url.clone())
                .filter(|u| !u.trim().is_empty());
            self.webhooks.fire(url, event);
        }
    }

    fn dataset(&self) -> Dataset {
        self.run_due();
        lock(&self.state).dataset()
    }
}

pub(crate) use crate::lock;

/// A Noa Notes Integration API simulator with its generated dataset.
pub struct NoaSim {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NoaSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoaSim")
            .field("seed", &self.shared.config.seed)
            .finish_non_exhaustive()
    }
}

impl NoaSim {
    /// Generates the dataset. An unknown `timezone` falls back to UTC.
    pub fn new(config: NoaSimConfig) -> Self {
        let tz: chrono_tz::Tz = config.timezone.parse().unwrap_or(chrono_tz::UTC);
        let start = data::synthetic_now(config.anchor, tz);
        let state = data::generate(&config, tz, start);
        let clock = SimClock {
            base: start,
            started: Instant::now(),
            speed: config.clock_speed.filter(|s| s.is_finite() && *s > 0.0).unwrap_or(0.0),
        };
        let faults = config.faults.clone();
        let dice = FaultDice::new(config.seed ^ 0x0a0a);
        let ids = ChaCha20Rng::seed_from_u64(config.seed ^ 0x00a0_1d50_2003);
        Self {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(state),
                origin: RwLock::new("http://localhost".into()),
                tokens: Mutex::new(auth::TokenStore::default()),
                pages: Mutex::new(api::PageStore::default()),
                faults: Mutex::new((faults, dice)),
                hits: Mutex::new(BTreeMap::new()),
                token_grants: AtomicU64::new(0),
                clock: Mutex::new(clock),
                ids: Mutex::new(ids),
                webhooks: webhooks::Webhooks::new(),
            }),
        }
    }

    /// The generated dataset.
    pub fn dataset(&self) -> Dataset {
        self.shared.dataset()
    }

    /// All routes, for in-process use. Webhooks are delivered from a task spawned on the current
    /// tokio runtime when the first one is queued; URLs in answers use `http://localhost`.
    pub fn router(&self) -> Router {
        router(self.shared.clone())
    }

    /// Binds `addr` (use `127.0.0.1:0` in tests) and serves in a background tokio task; with a
    /// `clock_speed`, another task applies the lifecycle as the clock runs.
    pub async fn spawn(self, addr: SocketAddr) -> std::io::Result<NoaSimHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let mut local = listener.local_addr()?;
        if local.ip().is_unspecified() {
            local.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let origin = format!("http://{local}");
        *self.shared.origin.write().unwrap_or_else(|p| p.into_inner()) = origin.clone();
        self.shared.webhooks.start();

        let (stop, stopped) = watch::channel(false);
        let app = router(self.shared.clone());
        let mut server_stopped = stopped.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                // Only `shutdown()` stops the server: dropping every handle leaves it running
                // until the runtime ends.
                if server_stopped.wait_for(|stop| *stop).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::warn!(%error, "noa simulator stopped");
            }
        });
        if lock(&self.shared.clock).speed > 0.0 {
            let shared = Arc::downgrade(&self.shared);
            let mut ticker_stopped = stopped;
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tokio::select! {
                        _ = interval.tick() => {}
                        _ = ticker_stopped.wait_for(|stop| *stop) => break,
                    }
                    let Some(shared) = shared.upgrade() else {
                        break;
                    };
                    shared.run_due();
                }
            });
        }
        Ok(NoaSimHandle {
            shared: self.shared,
            origin,
            stop: Arc::new(stop),
        })
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(control::routes())
        .fallback(gate::not_found)
        .method_not_allowed_fallback(gate::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), gate::gate))
        .with_state(shared)
}

/// Control of a running simulator. Clones share it.
#[derive(Clone)]
pub struct NoaSimHandle {
    shared: Arc<Shared>,
    origin: String,
    stop: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for NoaSimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoaSimHandle")
            .field("base_url", &self.origin)
            .finish_non_exhaustive()
    }
}

impl NoaSimHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.origin.clone()
    }

    /// `{base_url}/api/v1`: what Noa calls `https://integration.notes.{country}.noa.ai/api/v1`.
    pub fn api_base_url(&self) -> String {
        format!("{}/api/v1", self.origin)
    }

    /// The configuration the simulator was built from (faults as they were at start).
    pub fn config(&self) -> &NoaSimConfig {
        &self.shared.config
    }

    /// A snapshot of the current state (after applying the lifecycle steps due).
    pub fn dataset(&self) -> Dataset {
        self.shared.dataset()
    }

    /// `/api/v1` requests received (including refused and faulted ones).
    pub fn hits(&self) -> u64 {
        lock(&self.shared.hits).values().sum()
    }

    /// `/api/v1` requests whose path (without query) starts with `path_prefix`, e.g.
    /// `/api/v1/consumers/sessions`.
    pub fn hits_for(&self, path_prefix: &str) -> u64 {
        lock(&self.shared.hits)
            .iter()
            .filter(|(path, _)| path.starts_with(path_prefix))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn reset_hits(&self) {
        lock(&self.shared.hits).clear();
    }

    /// Replaces the fault knobs for the following requests.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared.faults).0 = faults;
    }

    /// The fault knobs as they are now (a 429 burst counts down as requests use it).
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).0.clone()
    }

    /// The next `n` API requests are answered 429 (see [`Faults::rate_limit_burst`]); the other
    /// knobs stay as they are.
    pub fn set_rate_limit_burst(&self, n: u32) {
        lock(&self.shared.faults).0.rate_limit_burst = n;
    }

    /// Every consumer and session token issued so far expires now (401 from then on).
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.tokens).expire_all();
    }

    /// Successful sign-ins so far.
    pub fn token_grants(&self) -> u64 {
        self.shared.token_grants.load(Ordering::SeqCst)
    }

    /// The simulated clock (whole seconds).
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.now()
    }

    /// Moves the clock by `delta` and applies every lifecycle step due by then, in time order,
    /// queuing their webhooks. A move past the representable range is ignored; a negative
    /// delta moves the clock back and applies nothing.
    pub fn advance_clock(&self, delta: TimeDelta) {
        self.shared.advance_clock(delta);
    }

    /// The doctor verifies the summary: Summarized → Verified, or EmptySummaryVerified (every
    /// section's content becomes `""`) when `empty`.
    pub fn approve(&self, session_id: &str, empty: bool) -> Result<SessionDetails, SimError> {
        self.shared.approve(session_id, empty)
    }

    /// The doctor starts recording now: New → Recording (the rest of the plan follows from now).
    pub fn start_recording(&self, session_id: &str) -> Result<SessionDetails, SimError> {
        self.shared.start_recording(session_id)
    }

    /// Every delivery so far, oldest first (the last 10,000).
    pub fn webhook_log(&self) -> Vec<WebhookDelivery> {
        self.shared.webhooks.log()
    }

    pub fn clear_webhook_log(&self) {
        self.shared.webhooks.clear_log();
    }

    /// Waits until every queued webhook has been delivered or given up on; `false` on timeout.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        self.shared.webhooks.wait_idle(timeout).await
    }

    /// Stops accepting connections, stops the clock task, and stops webhook delivery once the
    /// queued ones are sent.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.shared.webhooks.close();
    }
}

impl Shared {
    pub(crate) fn advance_clock(&self, delta: TimeDelta) {
        {
            let mut clock = lock(&self.clock);
            if let Some(moved) = clock.base.checked_add_signed(delta) {
                clock.base = moved;
            }
        }
        self.run_due();
    }

    pub(crate) fn approve(&self, session_id: &str, empty: bool) -> Result<SessionDetails, SimError> {
        self.run_due();
        let now = self.now();
        let mut state = lock(&self.state);
        let session = state.session_mut(&session_id.to_ascii_lowercase())?;
        let change = session.approve(empty, now)?;
        let details = session.details.clone();
        self.publish(vec![change]);
        Ok(details)
    }

    pub(crate) fn start_recording(&self, session_id: &str) -> Result<SessionDetails, SimError> {
        self.run_due();
        let now = self.now();
        let mut state = lock(&self.state);
        let session = state.session_mut(&session_id.to_ascii_lowercase())?;
        let change = session.start_recording(now, self.auto_approve())?;
        let details = session.details.clone();
        self.publish(vec![change]);
        Ok(details)
    }
}
