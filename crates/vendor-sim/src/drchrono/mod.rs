//! Simulator of the DrChrono API v4, written from the vendor doc (`drchrono-api-v4.md`).
//!
//! It serves a deterministic synthetic practice over real HTTP with the vendor's OAuth flow,
//! paginated and filtered `GET` endpoints, the `verbose` parameter, the hourly rate limit,
//! 302 redirects, injectable faults, and webhooks (the `msg` verification, then hooks carrying
//! `X-drchrono-event` and `X-drchrono-signature`; see [`SimHandle::fire_webhook`]).
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig};
//! let anchor = chrono::NaiveDate::from_ymd_opt(2025, 3, 14).unwrap();
//! let sim = DrChronoSim::new(DrChronoSimConfig::small(42, anchor));
//! let handle = sim.spawn("127.0.0.1:0".parse().unwrap()).await?;
//! println!("DrChrono at {}", handle.base_url());
//! # Ok(()) }
//! ```

mod api;
mod data;
mod gate;
mod oauth;
mod webhooks;
pub mod wire;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use chrono::NaiveDate;
use tokio::sync::watch;

pub use self::data::{APPOINTMENT_STATUSES, Dataset, ETHNICITIES, LANGUAGES, RACES};
pub use self::webhooks::{DeliveryOutcome, VERIFICATION, WebhookDelivery, verification_token};
use crate::faults::FaultDice;
pub use crate::faults::Faults;

/// Origin written into file URLs until the simulator knows the address it serves on.
const PLACEHOLDER_ORIGIN: &str = "http://localhost";

/// Everything that shapes a simulated DrChrono account.
#[derive(Clone, Debug)]
pub struct DrChronoSimConfig {
    /// Same seed ⇒ byte-identical dataset.
    pub seed: u64,
    /// "Today" of the synthetic practice (its clock stands at noon that day). Appointments span
    /// about `anchor - 120 days ..= anchor + 90 days`.
    pub anchor: NaiveDate,
    pub patients: usize,
    pub doctors: usize,
    /// Offices in total; when there are three or more, the last one is archived.
    pub offices: usize,
    pub appointments: usize,
    /// Upper bound: notes are only written for past, non-break appointments.
    pub clinical_notes: usize,
    pub documents: usize,
    /// IANA time zone written into the doctors' `timezone`; zone-less timestamps are local to it.
    pub timezone: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    /// A refresh token that is valid from the start (until it is used: tokens rotate).
    pub initial_refresh_token: String,
    /// Lifetime of access tokens; the doc says 172800 s.
    pub access_token_ttl: Duration,
    /// Requests allowed per wall-clock hour before 429; the doc says 500.
    pub hourly_rate_limit: u32,
    /// `(path prefix, target)`: a request whose path starts with the prefix gets a 302 whose
    /// `Location` is the target followed by the rest of the path and the query.
    pub redirects: Vec<(String, String)>,
    pub faults: Faults,
    /// The webhook's callback URL (none: hooks are logged as not configured).
    pub webhook_url: Option<String>,
    /// The webhook's secret token: HMAC key of the `msg` verification and the value of every
    /// hook's `X-drchrono-signature`.
    pub webhook_secret: String,
}

impl DrChronoSimConfig {
    /// A practice big enough for demos and load: 240 patients, 6 doctors, 4 offices (3 active,
    /// each with 2–4 exam rooms), 1200 appointments, 320 clinical notes, 240 documents.
    pub fn demo(seed: u64, anchor: NaiveDate) -> Self {
        Self {
            patients: 240,
            doctors: 6,
            offices: 4,
            appointments: 1200,
            clinical_notes: 320,
            documents: 240,
            ..Self::small(seed, anchor)
        }
    }

    /// A small practice for fast tests: 30 patients, 3 doctors, 3 offices (2 active),
    /// 120 appointments, up to 40 clinical notes, 30 documents.
    pub fn small(seed: u64, anchor: NaiveDate) -> Self {
        Self {
            seed,
            anchor,
            patients: 30,
            doctors: 3,
            offices: 3,
            appointments: 120,
            clinical_notes: 40,
            documents: 30,
            timezone: "America/New_York".into(),
            client_id: "drchrono-sim-client".into(),
            client_secret: "drchrono-sim-secret".into(),
            redirect_uri: "http://localhost/callback".into(),
            initial_refresh_token: format!("sim-refresh-{seed:016x}"),
            access_token_ttl: Duration::from_secs(172_800),
            hourly_rate_limit: 500,
            redirects: Vec::new(),
            faults: Faults::default(),
            webhook_url: None,
            webhook_secret: "drchrono-sim-webhook-secret".into(),
        }
    }
}

/// State shared by the router and every [`SimHandle`].
pub(crate) struct Shared {
    config: DrChronoSimConfig,
    timezone: chrono_tz::Tz,
    dataset: RwLock<Arc<Dataset>>,
    /// `http://host:port` once bound.
    origin: RwLock<Option<String>>,
    tokens: Mutex<oauth::TokenStore>,
    faults: Mutex<(Faults, FaultDice)>,
    rate: Mutex<gate::RateWindow>,
    hits: Mutex<BTreeMap<String, u64>>,
    /// `/api` requests by path and query parameter names (see `gate::shape_of`).
    hit_shapes: Mutex<BTreeMap<String, u64>>,
    token_grants: AtomicU64,
    webhooks: webhooks::Webhooks,
}

impl Shared {
    fn dataset(&self) -> Arc<Dataset> {
        read(&self.dataset).clone()
    }

    fn faults(&self) -> Faults {
        lock(&self.faults).0.clone()
    }
}

pub(crate) use crate::lock;

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

fn write<T>(lock: &RwLock<T>, value: T) {
    *lock.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = value;
}

/// A DrChrono API v4 simulator with its generated dataset.
pub struct DrChronoSim {
    shared: Arc<Shared>,
}

impl DrChronoSim {
    /// Generates the dataset. Counts of zero doctors or offices are raised to one.
    pub fn new(config: DrChronoSimConfig) -> Self {
        let dataset = data::generate(&config, PLACEHOLDER_ORIGIN);
        let timezone = config.timezone.parse().unwrap_or(chrono_tz::UTC);
        let tokens = oauth::TokenStore::new(&config.initial_refresh_token);
        let dice = FaultDice::new(config.seed);
        let rate = gate::RateWindow::new(config.hourly_rate_limit);
        let faults = config.faults.clone();
        let webhooks = webhooks::Webhooks::new(&config);
        Self {
            shared: Arc::new(Shared {
                config,
                timezone,
                dataset: RwLock::new(Arc::new(dataset)),
                origin: RwLock::new(None),
                tokens: Mutex::new(tokens),
                faults: Mutex::new((faults, dice)),
                rate: Mutex::new(rate),
                hits: Mutex::new(BTreeMap::new()),
                hit_shapes: Mutex::new(BTreeMap::new()),
                token_grants: AtomicU64::new(0),
                webhooks,
            }),
        }
    }

    /// The generated dataset. Before [`DrChronoSim::spawn`], file URLs use the origin
    /// `http://localhost`; `spawn` rewrites them to the bound address.
    pub fn dataset(&self) -> Arc<Dataset> {
        self.shared.dataset()
    }

    /// All routes, for in-process use (`tower::ServiceExt::oneshot`).
    pub fn router(&self) -> Router {
        router(self.shared.clone())
    }

    /// Binds `addr` (use `127.0.0.1:0` in tests) and serves in a background tokio task.
    pub async fn spawn(self, addr: SocketAddr) -> std::io::Result<SimHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let mut local = listener.local_addr()?;
        if local.ip().is_unspecified() {
            local.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let origin = format!("http://{local}");
        let mut dataset = (*self.shared.dataset()).clone();
        dataset.rebase_media(PLACEHOLDER_ORIGIN, &origin);
        write(&self.shared.dataset, Arc::new(dataset));
        write(&self.shared.origin, Some(origin.clone()));

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
                tracing::warn!(%error, "drchrono simulator stopped");
            }
        });
        Ok(SimHandle {
            shared: self.shared,
            origin,
            stop: Arc::new(stop),
        })
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let app = Router::new()
        .route("/o/authorize", get(oauth::authorize))
        .route("/o/authorize/", get(oauth::authorize))
        .route("/o/token/", post(oauth::token))
        .route("/o/revoke_token/", post(oauth::revoke))
        .route("/media/{kind}/{file}", get(api::media))
        .merge(api::routes());
    app.fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), gate::gate))
        .with_state(shared)
}

/// Control of a running simulator. Clones share it.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    origin: String,
    stop: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.origin)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DrChronoSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrChronoSim")
            .field("seed", &self.shared.config.seed)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.origin.clone()
    }

    /// The truth the simulator serves (file URLs carry [`SimHandle::base_url`]).
    pub fn dataset(&self) -> Arc<Dataset> {
        self.shared.dataset()
    }

    /// The configuration the simulator was built from (faults and the rate limit as they were
    /// at start; see [`SimHandle::set_faults`]).
    pub fn config(&self) -> &DrChronoSimConfig {
        &self.shared.config
    }

    /// `/api` requests received (including refused, redirected and faulted ones).
    pub fn hits(&self) -> u64 {
        lock(&self.shared.hits).values().sum()
    }

    /// `/api` requests received whose path starts with `path_prefix`.
    pub fn hits_for(&self, path_prefix: &str) -> u64 {
        lock(&self.shared.hits)
            .iter()
            .filter(|(path, _)| path.starts_with(path_prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// `/api` requests received, by path (without the query).
    pub fn hits_by_path(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.hits).clone()
    }

    /// `/api` requests received, by path and the names of their query parameters, sorted
    /// (`/api/appointments?date&verbose`).
    pub fn hits_by_shape(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.hit_shapes).clone()
    }

    pub fn reset_hits(&self) {
        lock(&self.shared.hits).clear();
        lock(&self.shared.hit_shapes).clear();
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

    /// Changes the hourly limit; requests already counted this hour stay counted.
    pub fn set_hourly_rate_limit(&self, limit: u32) {
        lock(&self.shared.rate).set_limit(limit);
    }

    /// Every access token issued so far becomes invalid (the next API call with it gets 401).
    /// Refresh tokens stay valid.
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.tokens).expire_access_tokens();
    }

    /// Successful `/o/token/` grants (authorization code and refresh) so far.
    pub fn token_grants(&self) -> u64 {
        self.shared.token_grants.load(Ordering::SeqCst)
    }

    /// Points the webhook at another callback URL (or nowhere). Hooks go only to a URL that passed
    /// [`SimHandle::verify_webhook_url`].
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.shared.webhooks.set_url(url);
    }

    /// The "Verify webhook" button: `GET {callback}?msg=<random>`, passed when the answer is a 200
    /// JSON whose `secret_token` is the hex HMAC-SHA256 of `msg` keyed with the secret token.
    /// Logged as a [`VERIFICATION`].
    pub fn verify_webhook_url(&self) -> impl Future<Output = bool> + Send + '_ {
        self.shared.webhooks.verify()
    }

    /// Queues a hook for `event` (`APPOINTMENT_CREATE`, `CLINICAL_NOTE_LOCK`, `PING`, …):
    /// `POST {callback}` with `X-drchrono-event`, `X-drchrono-signature` (the secret token) and
    /// `X-drchrono-delivery`, body `{"receiver": {"id", "callback_url"}, "object": object}`.
    /// Not sent (but logged) when the callback URL is not verified.
    pub fn fire_webhook(&self, event: &str, object: serde_json::Value) {
        self.shared.webhooks.fire(event, object);
    }

    /// Moves an appointment to `status` at `at` (the practice's local time), as the front desk does
    /// in DrChrono's scheduler (check-in, in session, complete, no-show …): `status`, `updated_at`
    /// and a new `status_transitions` entry change, and an `APPOINTMENT_MODIFY` hook carries the
    /// appointment. `None` (and no hook) when there is no such appointment.
    pub fn set_appointment_status(
        &self,
        id: &str,
        status: &str,
        at: chrono::NaiveDateTime,
    ) -> Option<wire::Appointment> {
        let changed = self.change(|dataset| {
            let appointment = dataset.appointments.iter_mut().find(|a| a.id == id)?;
            let stamp = data::fmt_ts(at);
            appointment.status_transitions.push(wire::StatusTransition {
                appointment: appointment.id.clone(),
                from_status: std::mem::replace(&mut appointment.status, status.to_owned()),
                to_status: status.to_owned(),
                datetime: stamp.clone(),
            });
            appointment.updated_at = stamp;
            Some(appointment.clone())
        })?;
        self.fire_webhook("APPOINTMENT_MODIFY", serde_json::to_value(&changed).unwrap_or_default());
        Some(changed)
    }

    /// Changes a patient's cell phone at `at` (the practice's local time), as a patient updating
    /// their details at check-in does: `cell_phone` and `updated_at` change, and a `PATIENT_MODIFY`
    /// hook carries the patient. `None` (and no hook) when there is no such patient.
    pub fn set_patient_cell_phone(
        &self,
        id: i64,
        cell_phone: &str,
        at: chrono::NaiveDateTime,
    ) -> Option<wire::Patient> {
        let changed = self.change(|dataset| {
            let patient = dataset.patients.iter_mut().find(|p| p.id == id)?;
            patient.cell_phone = cell_phone.to_owned();
            patient.updated_at = data::fmt_ts(at);
            Some(patient.clone())
        })?;
        self.fire_webhook("PATIENT_MODIFY", serde_json::to_value(&changed).unwrap_or_default());
        Some(changed)
    }

    /// Applies `edit` to a copy of the dataset and serves the copy from then on (readers holding
    /// the old one keep it); changes are serialised by the dataset's write lock.
    fn change<T>(&self, edit: impl FnOnce(&mut Dataset) -> Option<T>) -> Option<T> {
        let mut guard = self
            .shared
            .dataset
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut dataset = Dataset::clone(&guard);
        let out = edit(&mut dataset)?;
        *guard = Arc::new(dataset);
        Some(out)
    }

    /// Every verification and hook so far (the newest 10 000), oldest first.
    pub fn webhook_log(&self) -> Vec<WebhookDelivery> {
        self.shared.webhooks.log()
    }

    pub fn clear_webhook_log(&self) {
        self.shared.webhooks.clear_log();
    }

    /// Waits until every fired hook is delivered or given up on; `false` on timeout.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        self.shared.webhooks.wait_idle(timeout).await
    }

    /// Stops accepting connections and ends the server task once in-flight requests finish; stops
    /// webhook delivery once the queued hooks are sent.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.shared.webhooks.close();
    }
}
