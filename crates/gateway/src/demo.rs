//! The demo (cargo feature `demo`, on by default): the DrChrono, Zoom and Noa simulators in-process,
//! one coherent practice from one seed, and a gateway over them with the demo's SMART clients and
//! users. `cargo run --release` starts it; the tests and the benchmarks build their practices here.
//! A build without the feature links no simulator code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapter::Adapter;
use adapter_drchrono::DrChronoConfig;
use adapter_noa::{NoaAdapter, NoaConfig};
use adapter_zoom::{ZoomAdapter, ZoomConfig, ZoomRateLimits};
use chrono::Utc;
use chrono_tz::Tz;
use rand::RngCore;
use tokio::net::TcpListener;
use url::Url;
use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig, SimHandle};
use vendor_sim::noa::{NoaSim, NoaSimConfig, NoaSimHandle};
use vendor_sim::zoom::{EhrRefs, ZoomSim, ZoomSimConfig, ZoomSimHandle};

use crate::cache::CacheSettings;
use crate::ratelimit::RateLimitSettings;
use crate::run::{GatewayOptions, RunningGateway, serve_on};
use crate::sources::GatewayResolver;

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

/// The demo's SMART settings: clients `demo-backend`, `demo-jwt`, `demo-app`, `demo-auditor`; users `dr.demo`
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
    let mut settings = smart_auth::demo_settings(
        base,
        Some(std::path::PathBuf::from("data").join("auth")),
        &format!("Practitioner/drchrono-{doctor}"),
        &format!("Patient/drchrono-{patient}"),
    );
    // The auditor: the audit trail is reached only by a scope naming AuditEvent.
    settings.clients.push(smart_auth::ClientRegistration {
        client_id: DEMO_AUDITOR.into(),
        name: "Demo auditor".into(),
        auth: smart_auth::ClientAuth::SecretBasic {
            secret_hash: smart_auth::hash_password("demo-secret"),
        },
        redirect_uris: Vec::new(),
        allow_loopback_any_port: false,
        scopes: "system/AuditEvent.rs".into(),
        grant_types: vec![smart_auth::GrantType::ClientCredentials],
    });
    Ok(settings)
}

/// The demo's auditor client (`client_secret_basic`, secret `demo-secret`, `system/AuditEvent.rs`).
pub const DEMO_AUDITOR: &str = "demo-auditor";

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
    let mut adapters: Vec<Arc<dyn Adapter>> = vec![Arc::new(crate::run::drchrono_adapter(
        drchrono,
        options.store.as_ref(),
    )?)];
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
    let gateway = serve_on(listener, adapters, options)
        .await
        .map_err(|e| format!("cannot serve on {listen}: {e}"))?;
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

/// The demo's store: `data/demo/gateway.db` under the working directory, its vendor tokens sealed
/// with `data/demo/store.key` (created, owner-only, on first start).
pub async fn demo_store() -> Result<store::Store, String> {
    let dir = std::path::PathBuf::from("data").join("demo");
    let key_path = dir.join("store.key");
    let key = match store::SealingKey::from_file(&key_path) {
        Ok(key) => key,
        Err(_) if !key_path.exists() => store::SealingKey::create_file(&key_path)
            .or_else(|e| store::SealingKey::from_file(&key_path).map_err(|_| e))
            .map_err(|e| format!("the demo's store key: {e}"))?,
        Err(e) => return Err(format!("the demo's store key: {e}")),
    };
    store::Store::open(&store::StoreSettings::sqlite(dir.join("gateway.db")).with_sealing_key(key))
        .await
        .map_err(|e| format!("the demo's store: {e}"))
}

/// Starts the demo practice (seeded, anchored on `sim_config.anchor`) and the gateway on `listen`,
/// with its state in [`demo_store`].
pub async fn start_demo(listen: SocketAddr, sim_config: DrChronoSimConfig) -> Result<Demo, String> {
    let store = demo_store().await?;
    start_practice(
        listen,
        PracticeConfig {
            drchrono: sim_config,
            zoom: Some(ZoomSimConfig::demo),
            noa: Some(NoaSimConfig::demo),
            auth: true,
        },
        // Generous, but there (the benchmarks and tests call `start_practice` without one).
        |options| {
            options.rate_limit = Some(RateLimitSettings::demo());
            options.store = Some(store);
        },
    )
    .await
}

/// The demo practice's simulator configuration for today.
pub fn demo_sim_config() -> DrChronoSimConfig {
    DrChronoSimConfig::demo(2026, Utc::now().date_naive())
}
