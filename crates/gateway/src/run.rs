//! Wiring: builds the application from settings and adapters and serves it (`serve`; the demo's
//! practice is in [`crate::demo`], built on these pieces).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapter::Adapter;
use adapter::resilience::ResilienceSettings;
use adapter_drchrono::{DrChronoAdapter, DrChronoConfig};
use adapter_noa::{NoaAdapter, NoaConfig};
use adapter_zoom::{ZoomAdapter, ZoomConfig};
use chrono::{SecondsFormat, Utc};
use chrono_tz::Tz;
use rand::RngCore;
use tokio::net::TcpListener;
use url::Url;

use crate::access::{AccessPolicy, OpenAccess, SmartPolicy};
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
    /// The gateway's durable state (`[store]`), opened by the caller; `None` keeps everything in
    /// memory (tests). With it, the authorization server's memory and DrChrono's tokens survive a
    /// restart and are shared by replicas.
    pub store: Option<store::Store>,
    /// The audit trail (`[audit]`): kept in `store`, so only with one.
    pub audit: crate::audit::AuditSettings,
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
            store: None,
            audit: crate::audit::AuditSettings::default(),
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
            store: None,
            audit: s.audit.clone(),
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
    let patients = Arc::new(crate::picker::EnginePatients {
        engine: st.engine.clone(),
        tz: options.timezone,
    });
    let auth = smart_auth::SmartAuth::new(settings, patients).map_err(|e| match e {
        smart_auth::AuthError::Config { setting, reason } => format!("setting `auth.{setting}`: {reason}"),
        other => format!("setting `auth`: {other}"),
    })?;
    if let Some(auditor) = &st.auditor {
        auth.set_audit(auditor.clone());
    }
    st.auth = Some(auth);
    Ok(Arc::new(st))
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
            // `max_bytes` bounds all the sources' caches and the rendered pages together.
            let per_source = CacheSettings {
                max_bytes: ((settings.max_bytes - page_bytes(settings)) / metered.len().max(1) as u64).max(1),
                ..settings.clone()
            };
            metered
                .iter()
                .map(|a| Arc::new(Cached::new(a.clone(), &per_source)))
                .collect()
        }
        None => Vec::new(),
    };
    if let Some(store) = &options.store {
        let announce = crate::replicas::write_announcer(store);
        for cache in &caches {
            cache.announce_writes_to(announce.clone());
        }
    }
    let pages =
        options.cache.as_ref().filter(|_| !caches.is_empty()).map(|settings| {
            crate::pages::PageCache::new(caches.clone(), page_bytes(settings), settings.search_ttl / 2)
        });
    let sources = if caches.is_empty() {
        Sources::new(metered)
    } else {
        Sources::cached(&caches)
    };
    if let Some(resolver) = &options.resolver {
        resolver.bind(sources.clone());
    }
    let openapi = openapi::document_json(&sources);
    let auditor = match &options.store {
        Some(store) if options.audit.enabled => Some(crate::audit::Auditor::start(
            store.clone(),
            &options.audit,
            metrics.clone(),
        )),
        _ => None,
    };
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
        store: options.store.clone(),
        auditor,
        caches,
        pages,
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
    serve_on(TcpListener::bind(listen).await?, adapters, options).await
}

/// Builds the app over `adapters` and serves it on an already bound listener (so callers can
/// learn the address first, e.g. to point a simulator's webhooks at it).
pub async fn serve_on(
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
    if let Some(store) = &options.store {
        tokio::spawn(crate::replicas::sweep_expired(store.clone()));
        tokio::spawn(crate::replicas::follow_changes(
            store.clone(),
            state.changes.clone(),
            state.engine.sources.clone(),
        ));
    }
    if let (Some(auth), Some(store)) = (&state.auth, &options.store) {
        auth.attach_store(store.clone())
            .await
            .map_err(|e| std::io::Error::other(format!("setting `store`: {e}")))?;
    }
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
/// The share of the cache bound that rendered search pages get (an eighth).
fn page_bytes(settings: &CacheSettings) -> u64 {
    settings.max_bytes / 8
}

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

/// Builds the adapters a settings file asks for.
/// The adapters a settings file configures, and the resolver they were built with.
pub struct Configured {
    pub adapters: Vec<Arc<dyn Adapter>>,
    pub resolver: Arc<GatewayResolver>,
}

pub fn adapters_from_settings(settings: &Settings, store: Option<&store::Store>) -> Result<Configured, String> {
    let mut adapters: Vec<Arc<dyn Adapter>> = Vec::new();
    let resolver = GatewayResolver::new(Duration::from_secs(600));
    if let Some(d) = &settings.drchrono {
        adapters.push(Arc::new(drchrono_adapter(d.clone(), store)?));
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

/// The DrChrono adapter, keeping its rotating tokens in `store` when there is one.
pub fn drchrono_adapter(config: DrChronoConfig, store: Option<&store::Store>) -> Result<DrChronoAdapter, String> {
    let client_id = config.client_id.clone();
    let adapter = DrChronoAdapter::new(config).map_err(|e| e.to_string())?;
    Ok(match store {
        Some(store) => adapter
            .with_token_vault(Arc::new(crate::vault::StoreVault::new(
                store.clone(),
                "drchrono",
                &client_id,
            )))
            .with_shared_budgets(crate::replicas::shared_budgets(store)),
        None => adapter,
    })
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
