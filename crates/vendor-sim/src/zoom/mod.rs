//! Simulator of Zoom's clinical notes API and Healthcare (telehealth) API, written from the
//! vendor docs (`zoom-clinical-notes-api.md`, `zoom-healthcare-api.md`).
//!
//! It serves a deterministic synthetic account over real HTTP: Server-to-Server OAuth
//! (`POST /oauth/token`), the clinical notes endpoints exactly as the doc has them, the
//! Healthcare endpoints (visits, patients and invitations, waiting room, providers and their
//! availability), Zoom-style paging with expiring `next_page_token`s, per-label rate limits,
//! injectable faults, and signed webhooks (with the `endpoint.url_validation` handshake) for
//! note and visit events that tests trigger deterministically through [`ZoomSimHandle`].
//!
//! The account is coherent with an EHR described by [`EhrRefs`] (usually the DrChrono
//! simulator's dataset, see [`EhrRefs::from_drchrono`]): notes' `ehr_context` point at its
//! patients, doctors and appointments; healthcare patients and providers mirror some of its
//! patients and all of its doctors; some visits are scheduled for its appointments.
//!
//! # Beyond the docs
//!
//! The Healthcare doc shows only a few keys per object. The simulator's own choices:
//! - ids: visits `visit_…`, patients `pat_…`, providers `prov_…` (and each provider's Zoom
//!   `user_id`, the `note_owner_user_id` of its notes), invitations `inv_…`;
//! - EHR links reuse the notes' `ehr_context` shape on visits (`appointment_id`, `patient_id`,
//!   `provider_id`), patients (`patient_id`) and providers (`provider_id`);
//! - visits also carry `meeting_number`, `meeting_id` (the UUID a note of the visit carries),
//!   `meeting_settings` and `data_retention` (the doc's HIPAA settings, defaulting to its
//!   values), `updated_at` and the lifecycle times `patient_joined_at`, `started_at`,
//!   `ended_at`, `cancelled_at`;
//! - creating answers 201 with the object, `PATCH` and `DELETE` answer 204, admitting answers
//!   200 with the visit, notifying 204, inviting 201 with the invitation;
//! - an expired or unknown `next_page_token` answers 400 with code 300 (the notes doc names no
//!   code for it);
//! - rate-limit labels of the Healthcare endpoints (the doc gives none): single-object reads and
//!   updates LIGHT, lists and creates MEDIUM, messages to patients (invite, notify) HEAVY;
//! - a no-show fires `healthcare.visit.ended` with `status: "no_show"` in its object.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use vendor_sim::zoom::{EhrRefs, ZoomSim, ZoomSimConfig};
//! let anchor = chrono::NaiveDate::from_ymd_opt(2025, 3, 14).unwrap();
//! let sim = ZoomSim::new(ZoomSimConfig::small(42, anchor, EhrRefs::default()));
//! let handle = sim.spawn("127.0.0.1:0".parse().unwrap()).await?;
//! println!("Zoom at {}", handle.base_url());
//! # Ok(()) }
//! ```

mod api;
mod content;
mod data;
mod gate;
mod healthcare;
mod notes;
mod oauth;
mod ops;
mod paging;
mod webhooks;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use chrono::{DateTime, NaiveDate, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use self::data::Dataset;
pub use self::ops::{NewNote, SimError};
pub use self::webhooks::{DeliveryOutcome, WebhookDelivery};
use self::wire::{ClinicalNote, Visit, VisitStatus};
use crate::faults::FaultDice;
pub use crate::faults::Faults;

/// A patient of the EHR the Zoom account works with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EhrPatient {
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    pub email: String,
    pub phone: String,
}

/// A doctor of the EHR.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EhrDoctor {
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
}

/// An appointment of the EHR that took (or will take) place.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EhrAppointment {
    pub id: String,
    pub patient: i64,
    pub doctor: i64,
    /// Zone-less local time (`2025-03-14T09:30:00`) in [`ZoomSimConfig::timezone`].
    pub scheduled_time: String,
    /// Minutes.
    pub duration: i64,
}

/// What the simulator knows of the EHR: plain data, so any EHR (or none) can be described.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EhrRefs {
    pub patients: Vec<EhrPatient>,
    pub doctors: Vec<EhrDoctor>,
    pub appointments: Vec<EhrAppointment>,
}

impl EhrRefs {
    /// The DrChrono simulator's practice: every patient (phone: cell, else home, else office)
    /// and doctor, and the appointments a Zoom meeting can belong to — those with a patient that
    /// are neither breaks, deleted, cancelled, rescheduled nor no-shows.
    pub fn from_drchrono(dataset: &crate::drchrono::Dataset) -> Self {
        let patients = dataset
            .patients
            .iter()
            .map(|p| EhrPatient {
                id: p.id,
                first_name: p.first_name.clone(),
                last_name: p.last_name.clone(),
                date_of_birth: p.date_of_birth.clone(),
                email: p.email.clone(),
                phone: [&p.cell_phone, &p.home_phone, &p.office_phone]
                    .into_iter()
                    .find(|phone| !phone.is_empty())
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        let doctors = dataset
            .doctors
            .iter()
            .map(|d| EhrDoctor {
                id: d.id,
                first_name: d.first_name.clone(),
                last_name: d.last_name.clone(),
                email: d.email.clone(),
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
                    scheduled_time: a.scheduled_time.clone(),
                    duration: a.duration,
                })
            })
            .collect();
        Self {
            patients,
            doctors,
            appointments,
        }
    }
}

/// Requests per second allowed for each of Zoom's rate-limit labels. Zero means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub light: u32,
    pub medium: u32,
    pub heavy: u32,
}

impl Default for RateLimits {
    /// Zoom's per-second limits for Business and higher plans: 80 / 60 / 40.
    fn default() -> Self {
        Self {
            light: 80,
            medium: 60,
            heavy: 40,
        }
    }
}

/// Everything that shapes a simulated Zoom account.
#[derive(Clone, Debug)]
pub struct ZoomSimConfig {
    /// Same seed and same `ehr` ⇒ identical dataset.
    pub seed: u64,
    /// "Today" of the synthetic account; its clock starts at noon that day in `timezone`.
    pub anchor: NaiveDate,
    pub ehr: EhrRefs,
    /// IANA zone of the EHR's zone-less times and of the providers' availability.
    pub timezone: String,
    /// Clinical notes to generate.
    pub notes: usize,
    /// Visits to generate (every status is represented when there are at least six).
    pub visits: usize,
    /// Healthcare patients: most mirror EHR patients, about one in ten exists only in Zoom.
    pub patients: usize,
    pub account_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Where events are POSTed; `None` records them as not delivered.
    pub webhook_url: Option<String>,
    /// The app's "secret token": key of the `x-zm-signature` HMAC and of the URL validation.
    pub webhook_secret: String,
    /// Extra attempts after a failed delivery.
    pub webhook_retries: u32,
    pub webhook_retry_delay: Duration,
    pub webhook_timeout: Duration,
    /// Lifetime of access tokens (Zoom: one hour).
    pub token_ttl: Duration,
    /// Lifetime of each `next_page_token` (the doc: 15 minutes).
    pub next_page_token_ttl: Duration,
    pub rate_limits: RateLimits,
    /// `foreign_next_origin` does not apply (Zoom pages by token, not URL) and is ignored.
    pub faults: Faults,
}

impl ZoomSimConfig {
    /// An account big enough for demos and load: 320 notes, 160 visits in every status,
    /// 60 patients, a provider per EHR doctor plus one, each with availability.
    pub fn demo(seed: u64, anchor: NaiveDate, ehr: EhrRefs) -> Self {
        Self {
            notes: 320,
            visits: 160,
            patients: 60,
            ..Self::small(seed, anchor, ehr)
        }
    }

    /// A small account for fast tests: 40 notes, 20 visits in every status, 16 patients.
    pub fn small(seed: u64, anchor: NaiveDate, ehr: EhrRefs) -> Self {
        Self {
            seed,
            anchor,
            ehr,
            timezone: "America/New_York".into(),
            notes: 40,
            visits: 20,
            patients: 16,
            account_id: "zoomSimAcct-Q7x2Lm".into(),
            client_id: "zoom-sim-client".into(),
            client_secret: "zoom-sim-secret".into(),
            webhook_url: None,
            webhook_secret: "zoom-sim-webhook-secret".into(),
            webhook_retries: 2,
            webhook_retry_delay: Duration::from_millis(200),
            webhook_timeout: Duration::from_secs(5),
            token_ttl: Duration::from_secs(3600),
            next_page_token_ttl: Duration::from_secs(15 * 60),
            rate_limits: RateLimits::default(),
            faults: Faults::default(),
        }
    }
}

/// The account's clock: it starts at noon on the anchor date and runs in real time; tests can
/// move it.
struct SimClock {
    base: DateTime<Utc>,
    started: Instant,
}

impl SimClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::TimeDelta::from_std(self.started.elapsed()).unwrap_or_default();
        self.base.checked_add_signed(elapsed).unwrap_or(self.base)
    }
}

/// Knobs that make the notes API answer its documented errors.
#[derive(Debug)]
pub(crate) struct Controls {
    /// Account-wide Clinical Notes feature (off ⇒ 30001).
    pub(crate) notes_feature: bool,
    /// Owners whose notes this app may not access (⇒ 30007).
    pub(crate) denied_users: BTreeSet<String>,
    /// Next `PATCH`es of notes that fail with 30011.
    pub(crate) failing_note_updates: u32,
}

/// State shared by the router and every [`ZoomSimHandle`].
pub(crate) struct Shared {
    pub(crate) config: ZoomSimConfig,
    state: RwLock<Dataset>,
    origin: RwLock<Option<String>>,
    pub(crate) tokens: Mutex<oauth::TokenStore>,
    pub(crate) pages: Mutex<paging::PageStore>,
    pub(crate) faults: Mutex<(Faults, FaultDice)>,
    pub(crate) rate: Mutex<gate::RateWindows>,
    pub(crate) hits: Mutex<BTreeMap<String, u64>>,
    pub(crate) token_grants: AtomicU64,
    clock: Mutex<SimClock>,
    pub(crate) controls: Mutex<Controls>,
    /// Ids of objects created after start-up (deterministic for a given sequence of calls).
    pub(crate) ids: Mutex<ChaCha20Rng>,
    pub(crate) webhooks: webhooks::Webhooks,
}

impl Shared {
    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, Dataset> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, Dataset> {
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn snapshot(&self) -> Arc<Dataset> {
        Arc::new(self.read_state().clone())
    }

    pub(crate) fn faults(&self) -> Faults {
        lock(&self.faults).0.clone()
    }

    /// The account's current time.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        lock(&self.clock).now()
    }
}

pub(crate) use crate::lock;

/// A Zoom clinical notes + Healthcare API simulator with its generated dataset.
pub struct ZoomSim {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ZoomSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoomSim")
            .field("seed", &self.shared.config.seed)
            .finish_non_exhaustive()
    }
}

impl ZoomSim {
    /// Generates the dataset. An unknown `timezone` falls back to UTC.
    pub fn new(config: ZoomSimConfig) -> Self {
        let tz: chrono_tz::Tz = config.timezone.parse().unwrap_or(chrono_tz::UTC);
        let dataset = data::generate(&config, tz);
        let clock = SimClock {
            base: data::synthetic_now(config.anchor, tz),
            started: Instant::now(),
        };
        let webhooks = webhooks::Webhooks::new(&config);
        let faults = config.faults.clone();
        let dice = FaultDice::new(config.seed ^ 0x200d);
        let rate = gate::RateWindows::new(config.rate_limits);
        let ids = ChaCha20Rng::seed_from_u64(config.seed ^ 0x0001_d50f_2003);
        Self {
            shared: Arc::new(Shared {
                config,
                state: RwLock::new(dataset),
                origin: RwLock::new(None),
                tokens: Mutex::new(oauth::TokenStore::default()),
                pages: Mutex::new(paging::PageStore::default()),
                faults: Mutex::new((faults, dice)),
                rate: Mutex::new(rate),
                hits: Mutex::new(BTreeMap::new()),
                token_grants: AtomicU64::new(0),
                clock: Mutex::new(clock),
                controls: Mutex::new(Controls {
                    notes_feature: true,
                    denied_users: BTreeSet::new(),
                    failing_note_updates: 0,
                }),
                ids: Mutex::new(ids),
                webhooks,
            }),
        }
    }

    /// The generated dataset.
    pub fn dataset(&self) -> Arc<Dataset> {
        self.shared.snapshot()
    }

    /// All routes, for in-process use (`tower::ServiceExt::oneshot`). Webhooks are delivered
    /// from a task spawned on the current tokio runtime when the first event fires.
    pub fn router(&self) -> Router {
        router(self.shared.clone())
    }

    /// Binds `addr` (use `127.0.0.1:0` in tests) and serves in a background tokio task.
    pub async fn spawn(self, addr: SocketAddr) -> std::io::Result<ZoomSimHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let mut local = listener.local_addr()?;
        if local.ip().is_unspecified() {
            local.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let origin = format!("http://{local}");
        *self.shared.origin.write().unwrap_or_else(|p| p.into_inner()) = Some(origin.clone());
        self.shared.webhooks.start();

        let (stop, mut stopped) = watch::channel(false);
        let app = router(self.shared.clone());
        tokio::spawn(async move {
            let shutdown = async move {
                // Only `shutdown()` stops the server: dropping every handle leaves it running
                // until the runtime ends.
                if stopped.wait_for(|stop| *stop).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::warn!(%error, "zoom simulator stopped");
            }
        });
        Ok(ZoomSimHandle {
            shared: self.shared,
            origin,
            stop: Arc::new(stop),
        })
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth/token", post(oauth::token))
        .merge(notes::routes())
        .merge(healthcare::routes())
        .merge(ops::control_routes())
        .fallback(gate::not_found)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), gate::gate))
        .with_state(shared)
}

/// Control of a running simulator. Clones share it.
#[derive(Clone)]
pub struct ZoomSimHandle {
    shared: Arc<Shared>,
    origin: String,
    stop: Arc<watch::Sender<bool>>,
}

/// The handle under the name the DrChrono simulator uses.
pub type SimHandle = ZoomSimHandle;

impl std::fmt::Debug for ZoomSimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoomSimHandle")
            .field("base_url", &self.origin)
            .finish_non_exhaustive()
    }
}

impl ZoomSimHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash. The API is under `/v2`, OAuth at
    /// `/oauth/token`.
    pub fn base_url(&self) -> String {
        self.origin.clone()
    }

    /// `{base_url}/v2`: what Zoom calls `https://api.zoom.us/v2`.
    pub fn api_base_url(&self) -> String {
        format!("{}/v2", self.origin)
    }

    /// A snapshot of the current state, including changes made through the API and the
    /// lifecycle triggers.
    pub fn dataset(&self) -> Arc<Dataset> {
        self.shared.snapshot()
    }

    /// The configuration the simulator was built from (faults, rate limits and the webhook URL
    /// as they were at start).
    pub fn config(&self) -> &ZoomSimConfig {
        &self.shared.config
    }

    /// `/v2` requests received (including refused and faulted ones).
    pub fn hits(&self) -> u64 {
        lock(&self.shared.hits).values().sum()
    }

    /// `/v2` requests received whose path starts with `path_prefix` (e.g. `/v2/clinical_notes`).
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

    /// Replaces the per-second limits; the current second's counts stay.
    pub fn set_rate_limits(&self, limits: RateLimits) {
        lock(&self.shared.rate).set_limits(limits);
    }

    /// Every access token issued so far expires now (the next API call with it gets 401
    /// "Access token is expired.").
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.tokens).expire_all();
    }

    /// Successful `/oauth/token` grants so far.
    pub fn token_grants(&self) -> u64 {
        self.shared.token_grants.load(Ordering::SeqCst)
    }

    /// Points webhooks at another URL (or nowhere). A new URL is validated before its first
    /// event.
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.shared.webhooks.set_url(url);
    }

    /// Every delivery attempt so far (URL validations and events), oldest first (the last
    /// 10,000).
    pub fn webhook_log(&self) -> Vec<WebhookDelivery> {
        self.shared.webhooks.log()
    }

    pub fn clear_webhook_log(&self) {
        self.shared.webhooks.clear_log();
    }

    /// Waits until every event fired so far has been delivered or given up on; `false` on
    /// timeout.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        self.shared.webhooks.wait_idle(timeout).await
    }

    /// The account's clock (noon of the anchor day at start, running in real time).
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.now()
    }

    /// Moves the account's clock forward (or back, with a negative delta); a move past the
    /// representable range is ignored.
    pub fn advance_clock(&self, delta: chrono::TimeDelta) {
        let mut clock = lock(&self.shared.clock);
        if let Some(moved) = clock.base.checked_add_signed(delta) {
            clock.base = moved;
        }
    }

    /// Sets the account's clock; it runs on from there.
    pub fn set_clock(&self, now: DateTime<Utc>) {
        let mut clock = lock(&self.shared.clock);
        clock.base = now;
        clock.started = Instant::now();
    }

    /// Turns the account's Clinical Notes feature off or on (off ⇒ 30001 on every notes call).
    pub fn set_clinical_notes_enabled(&self, enabled: bool) {
        lock(&self.shared.controls).notes_feature = enabled;
    }

    /// Notes owned by these users become inaccessible to the app (⇒ 30007); replaces the
    /// previous set.
    pub fn set_denied_note_owners<I, S>(&self, user_ids: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        lock(&self.shared.controls).denied_users = user_ids.into_iter().map(Into::into).collect();
    }

    /// The next `n` `PATCH`es of notes fail with 500 / 30011 and change nothing.
    pub fn fail_next_note_updates(&self, n: u32) {
        lock(&self.shared.controls).failing_note_updates = n;
    }

    /// Creates a note (fires `clinical_notes.note_created`).
    pub fn create_note(&self, note: NewNote) -> Result<ClinicalNote, SimError> {
        self.shared.create_note(note)
    }

    /// Marks a note completed (fires `clinical_notes.note_completed`; a note already completed
    /// is returned unchanged and fires nothing).
    pub fn complete_note(&self, note_id: &str) -> Result<ClinicalNote, SimError> {
        self.shared.set_note_completed(note_id, true, None)
    }

    /// Replaces a note's content as its owner editing it would (fires
    /// `clinical_notes.note_updated`).
    pub fn update_note_content(&self, note_id: &str, content: &str) -> Result<ClinicalNote, SimError> {
        self.shared.update_note_content(note_id, content)
    }

    /// The patient joins: scheduled → waiting (fires `healthcare.patient.waiting`).
    pub fn patient_joins(&self, visit_id: &str) -> Result<Visit, SimError> {
        self.shared.transition_visit(visit_id, VisitStatus::Waiting)
    }

    /// The provider admits the patient: waiting → in_progress (fires
    /// `healthcare.patient.admitted` then `healthcare.visit.started`). A visit without a
    /// waiting room may also start straight from scheduled.
    pub fn admit(&self, visit_id: &str) -> Result<Visit, SimError> {
        self.shared.transition_visit(visit_id, VisitStatus::InProgress)
    }

    /// The visit ends: in_progress → completed (fires `healthcare.visit.ended`).
    pub fn end_visit(&self, visit_id: &str) -> Result<Visit, SimError> {
        self.shared.transition_visit(visit_id, VisitStatus::Completed)
    }

    /// The patient never came: scheduled or waiting → no_show (fires `healthcare.visit.ended`
    /// with status `no_show`).
    pub fn mark_no_show(&self, visit_id: &str) -> Result<Visit, SimError> {
        self.shared.transition_visit(visit_id, VisitStatus::NoShow)
    }

    /// scheduled or waiting → cancelled (fires `healthcare.visit.cancelled`).
    pub fn cancel_visit(&self, visit_id: &str) -> Result<Visit, SimError> {
        self.shared.transition_visit(visit_id, VisitStatus::Cancelled)
    }

    /// Stops accepting connections, ends the server task once in-flight requests finish, and
    /// stops webhook delivery once the queued events are sent.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.shared.webhooks.close();
    }
}
