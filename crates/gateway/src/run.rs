//! Wiring: builds the application from settings and adapters, and runs `serve` and `demo`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapter::resilience::ResilienceSettings;
use adapter::{Adapter, ResourceType};
use adapter_drchrono::{DrChronoAdapter, DrChronoConfig};
use adapter_noa::{NoaAdapter, NoaConfig};
use adapter_zoom::{ZoomAdapter, ZoomConfig, ZoomRateLimits};
use chrono::{SecondsFormat, Utc};
use chrono_tz::Tz;
use rand::RngCore;
use tokio::net::TcpListener;
use url::Url;
use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig, SimHandle};
use vendor_sim::noa::{NoaSim, NoaSimConfig, NoaSimHandle};
use vendor_sim::zoom::{EhrRefs, ZoomSim, ZoomSimConfig, ZoomSimHandle};

use crate::access::{AccessPolicy, Caller, OpenAccess, SmartPolicy};
use crate::app::{AppState, app};
use crate::cache::{CacheSettings, Cached};
use crate::config::Settings;
use crate::engine::{Engine, EngineLimits};
use crate::metrics::Metrics;
use crate::openapi;
use crate::paging::CursorCodec;
use crate::query::CountLimits;
use crate::ratelimit::{ClientLimiter, RateLimitSettings};
use crate::sources::{GatewayResolver, Metered, Sources};

/// Everything needed to build the application, independent of where it came from.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Public base URL (without `/fhir`); `None` means `http://{bound address}`.
    pub public_url: Option<Url>,
    pub count: CountLimits,
    pub timezone: Tz,
    pub limits: EngineLimits,
    /// Key that signs paging links.
    pub paging_key: Vec<u8>,
    pub link_ttl: Duration,
    /// The resolver adapters were built with (bound to the sources once they exist).
    pub resolver: Option<Arc<GatewayResolver>>,
    /// SMART on FHIR; `None` serves openly (demo tests, `--insecure-no-auth`). Its base URL is
    /// replaced by the gateway's own when the listener is known.
    pub auth: Option<smart_auth::AuthSettings>,
    /// Cache reads and search pages in front of every source; `None` calls the vendors every time.
    pub cache: Option<CacheSettings>,
    /// The deadline, retries and breaker of the adapters [`start_practice`] builds over the
    /// simulators (their rate budgets stay the simulators' limits); `None` keeps the defaults.
    /// Adapters built elsewhere carry their own settings (`serve`: the `[resilience]` section).
    pub practice_resilience: Option<ResilienceSettings>,
    /// The most one `/fhir` request may take (then 504).
    pub request_deadline: Duration,
    /// How the HTTP server treats connections: header and body read timeouts, the connection cap.
    pub server: ServerLimits,
    /// The per-client rate limit; `None`: unlimited (tests; the demo and `serve` set one).
    pub rate_limit: Option<RateLimitSettings>,
    /// `/metrics` needs a bearer token the gateway accepts.
    pub metrics_require_token: bool,
    /// How much one request may ask for (`[limits]`).
    pub request_limits: crate::query::Limits,
}

/// How the HTTP server treats connections (`[server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// A client must send a request's whole header within this, else its connection is closed
    /// (slow-header clients cannot hold connections); also how long an idle keep-alive connection
    /// stays open.
    pub header_read_timeout: Duration,
    /// Outside `/fhir` (held to the request deadline), the most a request body may take to arrive
    /// (then 408 and the connection is closed).
    pub body_read_timeout: Duration,
    /// Connections served at once; past it the gateway stops accepting (new connections wait in the
    /// listen backlog) until one closes.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    /// 10 s, 30 s, 1024 connections.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

impl GatewayOptions {
    /// Defaults suitable for tests and the demo (a random paging key).
    pub fn new(timezone: Tz) -> Self {
        Self {
            public_url: None,
            count: CountLimits { default: 50, max: 500 },
            timezone,
            limits: EngineLimits::default(),
            paging_key: random_key(),
            link_ttl: Duration::from_secs(1800),
            resolver: None,
            auth: None,
            cache: None,
            practice_resilience: None,
            request_deadline: Duration::from_secs(60),
            server: ServerLimits::default(),
            rate_limit: None,
            metrics_require_token: false,
            request_limits: crate::query::Limits::default(),
        }
    }

    /// From validated settings.
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            public_url: s.public_url.clone(),
            count: CountLimits {
                default: s.default_count,
                max: s.max_count,
            },
            timezone: s.timezone,
            limits: EngineLimits {
                vendor_calls_per_page: s.vendor_calls_per_page,
                max_materialized: s.max_materialized,
                ..EngineLimits::default()
            },
            paging_key: s
                .paging_secret
                .as_ref()
                .map_or_else(random_key, |k| k.expose().as_bytes().to_vec()),
            link_ttl: s.link_ttl,
            resolver: None,
            auth: s.auth.clone(),
            cache: s.cache.clone(),
            practice_resilience: None,
            request_deadline: s.request_deadline,
            server: s.server_limits,
            rate_limit: s.rate_limit,
            metrics_require_token: s.metrics_require_token,
            request_limits: s.limits,
        }
    }
}

fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key
}

/// Builds the shared state for a set of adapters, open or (with `options.auth`) behind SMART on FHIR.
pub fn secured_state(
    adapters: Vec<Arc<dyn Adapter>>,
    options: &GatewayOptions,
    base_url: &str,
) -> Result<Arc<AppState>, String> {
    let Some(settings) = &options.auth else {
        return Ok(state(adapters, options, base_url, Arc::new(OpenAccess)));
    };
    let mut settings = settings.clone();
    settings.base_url = Url::parse(base_url).map_err(|e| format!("setting `server.public_url`: {e}"))?;
    let mut st = build_state(
        adapters,
        options,
        base_url,
        Arc::new(SmartPolicy::new(options.timezone)),
    );
    let patients = Arc::new(EnginePatients {
        engine: st.engine.clone(),
        tz: options.timezone,
    });
    let auth = smart_auth::SmartAuth::new(settings, patients).map_err(|e| match e {
        smart_auth::AuthError::Config { setting, reason } => format!("setting `auth.{setting}`: {reason}"),
        other => format!("setting `auth`: {other}"),
    })?;
    st.auth = Some(auth);
    Ok(Arc::new(st))
}

/// The patient picker's view of the gateway: Patient searches by name and reads, as the server.
struct EnginePatients {
    engine: Engine,
    tz: Tz,
}

#[smart_auth::async_trait]
impl smart_auth::PatientDirectory for EnginePatients {
    async fn search(&self, text: &str, limit: usize) -> Vec<smart_auth::PatientChoice> {
        let limit = limit.clamp(1, 100) as u32;
        let mut pairs = vec![("_count".to_owned(), limit.to_string())];
        if !text.trim().is_empty() {
            pairs.push(("name".to_owned(), text.trim().to_owned()));
        }
        let limits = CountLimits {
            default: limit,
            max: limit,
        };
        let Ok(search) = crate::query::parse(ResourceType::Patient, &pairs, false, limits, self.tz, "") else {
            return Vec::new();
        };
        let start = self.engine.start(ResourceType::Patient, false);
        let Ok(page) = self
            .engine
            .search(&search, start, false, &Caller::Unauthenticated, &OpenAccess)
            .await
        else {
            return Vec::new();
        };
        page.matches.iter().filter_map(patient_choice).collect()
    }

    async fn exists(&self, patient_id: &str) -> bool {
        self.engine
            .read(ResourceType::Patient, patient_id, &Caller::Unauthenticated, &OpenAccess)
            .await
            .is_ok()
    }
}

/// "Family, Given (1970-01-31)" for the picker.
fn patient_choice(p: &serde_json::Value) -> Option<smart_auth::PatientChoice> {
    let id = p.get("id")?.as_str()?.to_owned();
    let name = p.pointer("/name/0");
    let family = name
        .and_then(|n| n.get("family"))
        .and_then(|f| f.as_str())
        .unwrap_or("");
    let given: Vec<&str> = name
        .and_then(|n| n.get("given"))
        .and_then(|g| g.as_array())
        .map(|g| g.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    let mut display = match (family.is_empty(), given.is_empty()) {
        (true, true) => id.clone(),
        (false, true) => family.to_owned(),
        (true, false) => given.join(" "),
        (false, false) => format!("{family}, {}", given.join(" ")),
    };
    if let Some(birth) = p.get("birthDate").and_then(|b| b.as_str()) {
        display.push_str(&format!(" ({birth})"));
    }
    Some(smart_auth::PatientChoice { id, display })
}

/// Builds the shared state for a set of adapters.
pub fn state(
    adapters: Vec<Arc<dyn Adapter>>,
    options: &GatewayOptions,
    base_url: &str,
    policy: Arc<dyn AccessPolicy>,
) -> Arc<AppState> {
    Arc::new(build_state(adapters, options, base_url, policy))
}

fn build_state(
    adapters: Vec<Arc<dyn Adapter>>,
    options: &GatewayOptions,
    base_url: &str,
    policy: Arc<dyn AccessPolicy>,
) -> AppState {
    let metrics = Arc::new(Metrics::default());
    let metered: Vec<Arc<dyn Adapter>> = adapters
        .into_iter()
        .map(|a| Arc::new(Metered::new(a, metrics.clone())) as Arc<dyn Adapter>)
        .collect();
    // Cached(Metered(adapter)): vendor-call metrics count only the misses.
    let caches: Vec<Arc<Cached>> = match &options.cache {
        Some(settings) => {
            // `max_bytes` bounds all the sources' caches together.
            let per_source = CacheSettings {
                max_bytes: (settings.max_bytes / metered.len().max(1) as u64).max(1),
                ..settings.clone()
            };
            metered
                .iter()
                .map(|a| Arc::new(Cached::new(a.clone(), &per_source)))
                .collect()
        }
        None => Vec::new(),
    };
    let sources = if caches.is_empty() {
        Sources::new(metered)
    } else {
        Sources::new(caches.iter().map(|c| c.clone() as Arc<dyn Adapter>).collect())
    };
    if let Some(resolver) = &options.resolver {
        resolver.bind(sources.clone());
    }
    let openapi = openapi::document_json(&sources);
    AppState {
        engine: Engine {
            sources,
            tz: options.timezone,
            limits: options.limits,
        },
        codec: CursorCodec::new(&options.paging_key, options.link_ttl.as_secs() as i64),
        fhir_base: format!("{}/fhir", base_url.trim_end_matches('/')),
        limits: options.count,
        metrics,
        policy,
        started: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        openapi,
        ready_timeout: Duration::from_secs(5),
        request_deadline: options.request_deadline,
        changes: tokio::sync::broadcast::channel(1024).0,
        caches,
        auth: None,
        rate_limit: options.rate_limit.map(|r| Arc::new(ClientLimiter::new(r))),
        metrics_require_token: options.metrics_require_token,
        body_read_timeout: options.server.body_read_timeout,
        request_limits: options.request_limits,
    }
}

/// A gateway listening on a socket.
pub struct RunningGateway {
    /// `http://host:port` (or the configured public URL).
    pub base_url: String,
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningGateway {
    /// The FHIR base (`{base_url}/fhir`).
    pub fn fhir_base(&self) -> &str {
        &self.state.fhir_base
    }

    /// Serves until the task is aborted or the process ends.
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// Binds `listen`, builds the app over `adapters`, and serves in a background task.
pub async fn spawn(
    listen: SocketAddr,
    adapters: Vec<Arc<dyn Adapter>>,
    options: GatewayOptions,
) -> std::io::Result<RunningGateway> {
    serve_on(TcpListener::bind(listen).await?, adapters, options)
}

/// Builds the app over `adapters` and serves it on an already bound listener (so callers can
/// learn the address first, e.g. to point a simulator's webhooks at it).
pub fn serve_on(
    listener: TcpListener,
    adapters: Vec<Arc<dyn Adapter>>,
    options: GatewayOptions,
) -> std::io::Result<RunningGateway> {
    let addr = listener.local_addr()?;
    let base_url = options.public_url.as_ref().map_or_else(
        || format!("http://{addr}"),
        |u| u.as_str().trim_end_matches('/').to_owned(),
    );
    let state = secured_state(adapters, &options, &base_url).map_err(std::io::Error::other)?;
    if !state.caches.is_empty() {
        tokio::spawn(apply_changes(state.changes.subscribe(), state.caches.clone()));
        tokio::spawn(maintain(state.caches.iter().map(Arc::downgrade).collect()));
    }
    if let Some(limiter) = &state.rate_limit {
        tokio::spawn(crate::ratelimit::housekeeping(Arc::downgrade(limiter)));
    }
    let router = app(state.clone());
    // Every request carries its peer's `ConnectInfo<SocketAddr>` (the rate limit's key when there is no
    // token), as with `into_make_service_with_connect_info::<SocketAddr>()`.
    let task = tokio::spawn(serve_connections(
        listener,
        router,
        options.server,
        state.metrics.clone(),
    ));
    Ok(RunningGateway {
        base_url,
        addr,
        state,
        task,
    })
}

/// The HTTP/1.1 server: accepts while fewer than `limits.max_connections` are open (then waits for
/// one to close; the kernel's backlog holds the rest), closes a connection whose client does not send
/// a whole request header within `limits.header_read_timeout`, and hands each request to `router`
/// with its peer's `ConnectInfo<SocketAddr>`. When this task ends (dropped, or aborted by
/// [`RunningGateway::stop`]) the listener closes and every connection finishes the request it is
/// serving, then closes.
async fn serve_connections(listener: TcpListener, router: axum::Router, limits: ServerLimits, metrics: Arc<Metrics>) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt as _;

    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    // Connections watch this; it closes when this task ends.
    let (_stop, stopped) = tokio::sync::watch::channel(());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                continue;
            }
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin (as axum::serve does).
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = router
            .clone()
            .map_request(move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                request
            });
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let mut stopped = stopped.clone();
        let metrics = metrics.clone();
        metrics.connection_opened();
        tokio::spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            let header_timeout = result.as_ref().is_err_and(hyper::Error::is_timeout);
            if let Err(e) = &result {
                tracing::debug!(peer = %peer, error = %e, "connection closed");
            }
            metrics.connection_closed(header_timeout);
        });
    }
}

/// Runs the caches' pending maintenance every second (moka otherwise does it on later accesses), so
/// the byte bound and expiries take effect while the gateway is idle; ends with the caches.
async fn maintain(caches: Vec<std::sync::Weak<Cached>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut alive = false;
        for cache in caches.iter().filter_map(std::sync::Weak::upgrade) {
            alive = true;
            cache.run_pending_tasks().await;
        }
        if !alive {
            return;
        }
    }
}

/// Applies every change event to every cache until the state is gone; when events were lost, forgets
/// everything.
async fn apply_changes(mut changes: tokio::sync::broadcast::Receiver<adapter::ChangeEvent>, caches: Vec<Arc<Cached>>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match changes.recv().await {
            Ok(event) => {
                for cache in &caches {
                    cache.apply(&event).await;
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "change events were lost; clearing the caches");
                for cache in &caches {
                    cache.clear();
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// The demo: the DrChrono, Zoom and Noa simulators in-process (one coherent practice) and a gateway
/// over them, with Zoom's and Noa's webhooks pointed at the gateway.
pub struct Demo {
    pub sim: SimHandle,
    pub zoom: ZoomSimHandle,
    pub noa: Option<NoaSimHandle>,
    pub gateway: RunningGateway,
}

/// The DrChrono adapter configuration that talks to a running simulator, with the simulator's
/// hourly limit as its budget.
pub fn drchrono_for_sim(sim: &SimHandle) -> Result<DrChronoConfig, String> {
    let c = sim.config();
    let base = Url::parse(&sim.base_url()).map_err(|e| format!("simulator URL: {e}"))?;
    let mut config = DrChronoConfig::new(
        c.client_id.clone(),
        c.client_secret.as_str(),
        c.initial_refresh_token.as_str(),
        c.redirect_uri.clone(),
    )
    .with_base_url(base)
    .with_webhook_secret(c.webhook_secret.as_str());
    config.default_timezone = c.timezone.parse().unwrap_or(Tz::UTC);
    config.hourly_limit = c.hourly_rate_limit;
    Ok(config)
}

/// The Zoom adapter configuration that talks to a running Zoom simulator, with the simulator's
/// per-label limits as its budgets.
pub fn zoom_for_sim(sim: &ZoomSimHandle) -> Result<ZoomConfig, String> {
    let c = sim.config();
    let api = Url::parse(&sim.api_base_url()).map_err(|e| format!("Zoom simulator URL: {e}"))?;
    let oauth = Url::parse(&sim.base_url()).map_err(|e| format!("Zoom simulator URL: {e}"))?;
    let mut config = ZoomConfig::new(
        c.account_id.clone(),
        c.client_id.clone(),
        c.client_secret.as_str(),
        c.webhook_secret.as_str(),
    )
    .with_api_base(api)
    .with_oauth_base(oauth);
    config.default_timezone = c.timezone.parse().unwrap_or(Tz::UTC);
    config.rate_limits = ZoomRateLimits {
        light: c.rate_limits.light,
        medium: c.rate_limits.medium,
        heavy: c.rate_limits.heavy,
    };
    Ok(config)
}

/// The Noa adapter configuration that talks to a running Noa simulator, with `webhook_url` as the
/// callback handed to Noa (the path secret is its last segment).
pub fn noa_for_sim(sim: &NoaSimHandle, webhook_secret: &str, webhook_url: String) -> Result<NoaConfig, String> {
    let c = sim.config();
    let api = Url::parse(&format!("{}/", sim.api_base_url().trim_end_matches('/')))
        .map_err(|e| format!("Noa simulator URL: {e}"))?;
    let mut config = NoaConfig::new(c.client_id.clone(), c.client_secret.as_str(), webhook_secret)
        .with_api_base(api)
        .with_webhook_url(webhook_url);
    config.api_version = c.api_version.clone();
    config.default_timezone = c.timezone.parse().unwrap_or(Tz::UTC);
    Ok(config)
}

/// A random URL-safe secret (for the demo's Noa callback path).
fn random_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
}

/// Which simulators an in-process practice runs.
#[derive(Debug, Clone)]
pub struct PracticeConfig {
    pub drchrono: DrChronoSimConfig,
    /// The Zoom account, built from the DrChrono dataset (its `ehr` is filled in here).
    pub zoom: Option<fn(u64, chrono::NaiveDate, EhrRefs) -> ZoomSimConfig>,
    /// The Noa consumer, built from the DrChrono dataset; `None` runs no Noa simulator.
    pub noa: Option<fn(u64, chrono::NaiveDate, vendor_sim::noa::EhrRefs) -> NoaSimConfig>,
    /// Protect the gateway with SMART on FHIR and the demo clients and users
    /// ([`smart_auth::demo_settings`]; the practitioner and patient are the practice's first).
    pub auth: bool,
}

/// The demo's SMART settings: clients `demo-backend`, `demo-jwt`, `demo-app`; users `dr.demo`
/// (the practice's first doctor) and `patient.demo` (its first patient with an appointment). The
/// signing key is kept in `data/auth` under the working directory (created owner-only; the
/// authorization server refuses it if another user owns it or others may access it).
pub fn demo_auth(base_url: &str, dataset: &vendor_sim::drchrono::Dataset) -> Result<smart_auth::AuthSettings, String> {
    let base = Url::parse(base_url).map_err(|e| format!("demo URL: {e}"))?;
    let doctor = dataset.doctors.first().map(|d| d.id).unwrap_or_default();
    let patient = dataset
        .appointments
        .iter()
        .find_map(|a| a.patient)
        .or_else(|| dataset.patients.first().map(|p| p.id))
        .unwrap_or_default();
    Ok(smart_auth::demo_settings(
        base,
        Some(std::path::PathBuf::from("data").join("auth")),
        &format!("Practitioner/drchrono-{doctor}"),
        &format!("Patient/drchrono-{patient}"),
    ))
}

/// Starts the simulated practice and the gateway on `listen`.
pub async fn start_practice(
    listen: SocketAddr,
    practice: PracticeConfig,
    tweak: impl FnOnce(&mut GatewayOptions),
) -> Result<Demo, String> {
    let timezone: Tz = practice.drchrono.timezone.parse().unwrap_or(Tz::UTC);
    let (seed, anchor) = (practice.drchrono.seed, practice.drchrono.anchor);
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let sim = DrChronoSim::new(practice.drchrono)
        .spawn(loopback)
        .await
        .map_err(|e| format!("cannot start the DrChrono simulator: {e}"))?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let gateway_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let resolver = GatewayResolver::new(Duration::from_secs(600));
    let mut options = GatewayOptions::new(timezone);
    options.resolver = Some(resolver.clone());
    if practice.auth {
        options.auth = Some(demo_auth(&format!("http://{gateway_addr}"), &sim.dataset())?);
        // The demo caches; tests opt in through `tweak`.
        options.cache = Some(CacheSettings::default());
    }
    tweak(&mut options);
    let resilience = options.practice_resilience.clone();
    let mut drchrono = drchrono_for_sim(&sim)?;
    if let Some(r) = &resilience {
        drchrono.resilience = r.clone();
    }
    let mut adapters: Vec<Arc<dyn Adapter>> =
        vec![Arc::new(DrChronoAdapter::new(drchrono).map_err(|e| e.to_string())?)];
    let make_zoom = practice.zoom.unwrap_or(ZoomSimConfig::demo);
    let mut zoom_config = make_zoom(seed, anchor, EhrRefs::from_drchrono(&sim.dataset()));
    zoom_config.webhook_url = Some(format!("http://{gateway_addr}/webhooks/zoom"));
    let zoom = ZoomSim::new(zoom_config)
        .spawn(loopback)
        .await
        .map_err(|e| format!("cannot start the Zoom simulator: {e}"))?;
    let mut zoom_adapter = zoom_for_sim(&zoom)?;
    if let Some(r) = &resilience {
        zoom_adapter.resilience = r.clone();
    }
    adapters.push(Arc::new(
        ZoomAdapter::new(zoom_adapter)
            .map_err(|e| e.to_string())?
            .with_resolver(resolver.clone()),
    ));
    let noa = match practice.noa {
        None => None,
        Some(make_noa) => {
            let secret = random_secret();
            let callback = format!("http://{gateway_addr}/webhooks/noa/{secret}");
            let mut noa_config = make_noa(seed, anchor, vendor_sim::noa::EhrRefs::from_drchrono(&sim.dataset()));
            noa_config.default_webhook_url = Some(callback.clone());
            let noa = NoaSim::new(noa_config)
                .spawn(loopback)
                .await
                .map_err(|e| format!("cannot start the Noa simulator: {e}"))?;
            let mut noa_adapter = noa_for_sim(&noa, &secret, callback)?;
            if let Some(r) = &resilience {
                noa_adapter.resilience = r.clone();
            }
            adapters.push(Arc::new(
                NoaAdapter::new(noa_adapter)
                    .map_err(|e| e.to_string())?
                    .with_resolver(resolver.clone()),
            ));
            Some(noa)
        }
    };
    let gateway = serve_on(listener, adapters, options).map_err(|e| format!("cannot serve on {listen}: {e}"))?;
    // DrChrono verifies a webhook URL before it sends anything to it.
    sim.set_webhook_url(Some(format!("http://{gateway_addr}/webhooks/drchrono")));
    if !sim.verify_webhook_url().await {
        return Err("the DrChrono simulator could not verify the gateway's webhook URL".into());
    }
    Ok(Demo {
        sim,
        zoom,
        noa,
        gateway,
    })
}

/// Starts the demo practice (seeded, anchored on `sim_config.anchor`) and the gateway on `listen`.
pub async fn start_demo(listen: SocketAddr, sim_config: DrChronoSimConfig) -> Result<Demo, String> {
    start_practice(
        listen,
        PracticeConfig {
            drchrono: sim_config,
            zoom: Some(ZoomSimConfig::demo),
            noa: Some(NoaSimConfig::demo),
            auth: true,
        },
        // Generous, but there (the benchmarks and tests call `start_practice` without one).
        |options| options.rate_limit = Some(RateLimitSettings::demo()),
    )
    .await
}

/// The demo practice's simulator configuration for today.
pub fn demo_sim_config() -> DrChronoSimConfig {
    DrChronoSimConfig::demo(2026, Utc::now().date_naive())
}

/// Builds the adapters a settings file asks for.
/// The adapters a settings file configures, and the resolver they were built with.
pub struct Configured {
    pub adapters: Vec<Arc<dyn Adapter>>,
    pub resolver: Arc<GatewayResolver>,
}

pub fn adapters_from_settings(settings: &Settings) -> Result<Configured, String> {
    let mut adapters: Vec<Arc<dyn Adapter>> = Vec::new();
    let resolver = GatewayResolver::new(Duration::from_secs(600));
    if let Some(d) = &settings.drchrono {
        adapters.push(Arc::new(DrChronoAdapter::new(d.clone()).map_err(|e| e.to_string())?));
    }
    if let Some(z) = &settings.zoom {
        adapters.push(Arc::new(
            ZoomAdapter::new(z.clone())
                .map_err(|e| e.to_string())?
                .with_resolver(resolver.clone()),
        ));
    }
    if let Some(n) = &settings.noa {
        adapters.push(Arc::new(
            NoaAdapter::new(n.clone())
                .map_err(|e| e.to_string())?
                .with_resolver(resolver.clone()),
        ));
    }
    if adapters.is_empty() {
        return Err(
            "setting `drchrono`: no vendor is configured; add a [drchrono], [zoom] and/or [noa] section".into(),
        );
    }
    Ok(Configured { adapters, resolver })
}

/// The built-in adapters, configured but never connected: their declared capabilities are what the
/// committed OpenAPI document describes (`fhir-gateway openapi`).
pub fn reference_sources() -> Result<Sources, String> {
    let config = DrChronoConfig::new("reference", "reference", "reference", "http://localhost/callback")
        .with_webhook_secret("reference");
    let drchrono = DrChronoAdapter::new(config).map_err(|e| e.to_string())?;
    let zoom = ZoomAdapter::new(ZoomConfig::new("reference", "reference", "reference", "reference"))
        .map_err(|e| e.to_string())?;
    let noa = NoaAdapter::new(
        NoaConfig::new("reference", "reference", "reference-webhook-secret-of-32-characters")
            .with_webhook_url("http://localhost/webhooks/noa/reference"),
    )
    .map_err(|e| e.to_string())?;
    Ok(Sources::new(vec![Arc::new(drchrono), Arc::new(zoom), Arc::new(noa)]))
}
