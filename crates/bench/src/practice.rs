//! The system under test: the demo practice (DrChrono, Zoom and Noa simulators + the gateway behind
//! SMART on FHIR), its bearer token, a static server for baselines, and direct vendor access.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapter::Adapter;
use adapter_drchrono::DrChronoAdapter;
use adapter_noa::NoaAdapter;
use adapter_zoom::ZoomAdapter;
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use chrono::NaiveDate;
use gateway::cache::CacheSettings;
use gateway::demo::{
    Demo, PracticeConfig, demo_sim_config, drchrono_for_sim, noa_for_sim, start_practice, zoom_for_sim,
};
use gateway::run::GatewayOptions;
use gateway::sources::{GatewayResolver, Sources};
use serde_json::Value;
use vendor_sim::drchrono::{DrChronoSimConfig, Faults};
use vendor_sim::noa::NoaSimConfig;
use vendor_sim::zoom::{EhrRefs, RateLimits, ZoomSimConfig};

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The demo's DrChrono practice for today, without the simulated hourly rate limit (500 calls an
/// hour would throttle the benchmark itself, not the gateway).
pub fn drchrono_config() -> DrChronoSimConfig {
    DrChronoSimConfig {
        hourly_rate_limit: u32::MAX,
        ..demo_sim_config()
    }
}

/// The demo's Zoom account without the simulated per-second rate limits, its `next_page_token`s
/// kept 10 minutes instead of the doc's 15 (the simulator keeps each token's list, in the same
/// process as the gateway whose memory item 7 and 10 measure; longer than the 5 minutes a cached
/// DocumentReference page, which holds such a token, stays fresh).
fn zoom_config(seed: u64, anchor: NaiveDate, ehr: EhrRefs) -> ZoomSimConfig {
    ZoomSimConfig {
        rate_limits: RateLimits {
            light: 0,
            medium: 0,
            heavy: 0,
        },
        next_page_token_ttl: Duration::from_secs(600),
        ..ZoomSimConfig::demo(seed, anchor, ehr)
    }
}

/// How the gateway's cache is set up for a practice.
#[derive(Debug, Clone)]
pub enum Cache {
    /// The demo's cache (`CacheSettings::default()`).
    Demo,
    /// The demo's cache with another byte bound.
    Bound(u64),
    /// No cache: every read and search calls the vendors.
    Off,
}

/// A running demo practice and a token for it.
pub struct Practice {
    pub demo: Demo,
    /// `http://127.0.0.1:PORT` of the gateway.
    pub base: String,
    /// A `demo-backend` access token (`system/*.rs`); empty when SMART is off.
    pub token: String,
    /// A client that sends the token.
    pub http: reqwest::Client,
}

impl Practice {
    /// Starts the demo practice (`start_practice` with SMART on) with the cache as asked.
    pub async fn start(cache: Cache) -> Result<Practice> {
        Self::start_with(cache, true).await
    }

    /// The same practice with SMART on FHIR off (no token gate): for diagnosis only.
    pub async fn start_open(cache: Cache) -> Result<Practice> {
        Self::start_with(cache, false).await
    }

    /// The demo practice keeping its state in a SQLite store under `dir`, with the audit trail on
    /// or off.
    pub async fn start_stored(cache: Cache, dir: &std::path::Path, audit: bool) -> Result<Practice> {
        let settings = store::StoreSettings::sqlite(dir.join("gateway.db"))
            .with_sealing_key(store::SealingKey::generate().map_err(anyhow::Error::msg)?);
        let store = store::Store::open(&settings).await?;
        Self::start_configured(cache, true, move |o| {
            o.store = Some(store);
            o.audit.enabled = audit;
        })
        .await
    }

    async fn start_with(cache: Cache, auth: bool) -> Result<Practice> {
        Self::start_configured(cache, auth, |_| {}).await
    }

    pub async fn start_configured(
        cache: Cache,
        auth: bool,
        tweak: impl FnOnce(&mut GatewayOptions),
    ) -> Result<Practice> {
        let practice = PracticeConfig {
            drchrono: drchrono_config(),
            zoom: Some(zoom_config),
            noa: Some(NoaSimConfig::demo),
            auth,
        };
        let demo = start_practice(loopback(), practice, |o: &mut GatewayOptions| {
            o.cache = match cache {
                Cache::Demo => Some(CacheSettings::default()),
                Cache::Bound(max_bytes) => Some(CacheSettings {
                    max_bytes,
                    ..CacheSettings::default()
                }),
                Cache::Off => None,
            };
            tweak(o);
        })
        .await
        .map_err(|e| anyhow!("the practice does not start: {e}"))?;
        let base = demo.gateway.base_url.clone();
        let mut headers = reqwest::header::HeaderMap::new();
        let token = if auth {
            let token = bearer_token(&base).await?;
            headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
            token
        } else {
            String::new()
        };
        let http = reqwest::Client::builder().default_headers(headers).build()?;
        Ok(Practice {
            demo,
            base,
            token,
            http,
        })
    }

    /// `{base}/fhir/{path}`.
    pub fn fhir(&self, path: &str) -> String {
        format!("{}/fhir/{}", self.base, path.trim_start_matches('/'))
    }

    /// GETs a FHIR path; the body and content type of a 200.
    pub async fn get(&self, path: &str) -> Result<(Bytes, String)> {
        get_ok(&self.http, &self.fhir(path)).await
    }

    /// GETs a FHIR path as JSON.
    pub async fn json(&self, path: &str) -> Result<Value> {
        let (body, _) = self.get(path).await?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// The token for `wrk`, if the gateway wants one.
    pub fn wrk_token(&self) -> Option<&str> {
        (!self.token.is_empty()).then_some(self.token.as_str())
    }

    /// Sets the latency of each simulator (no other fault).
    pub fn set_latency(&self, dr: Duration, zoom: Duration, noa: Duration) {
        self.demo.sim.set_faults(Faults {
            latency: dr,
            ..Faults::default()
        });
        self.demo.zoom.set_faults(vendor_sim::zoom::Faults {
            latency: zoom,
            ..Default::default()
        });
        if let Some(n) = &self.demo.noa {
            n.set_faults(vendor_sim::noa::Faults {
                latency: noa,
                ..Default::default()
            });
        }
    }

    /// Stops the gateway and the simulators.
    pub fn stop(&self) {
        self.demo.gateway.stop();
        self.demo.sim.shutdown();
        self.demo.zoom.shutdown();
        if let Some(n) = &self.demo.noa {
            n.shutdown();
        }
    }

    /// A DrChrono access token of its own (authorization-code grant at the simulator's OAuth
    /// endpoints), and its refresh token — leaving the gateway adapter's refresh token alone
    /// (refresh tokens rotate).
    pub async fn drchrono_tokens(&self) -> Result<(String, String)> {
        let sim = &self.demo.sim;
        let c = sim.config();
        let plain = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let authorize = plain
            .get(format!("{}/o/authorize", sim.base_url()))
            .query(&[
                ("client_id", c.client_id.as_str()),
                ("redirect_uri", c.redirect_uri.as_str()),
                ("response_type", "code"),
            ])
            .send()
            .await?;
        let location = authorize
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .context("the DrChrono simulator's /o/authorize gave no Location")?;
        let code = url::Url::parse(location)?
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .context("no code in the authorization redirect")?;
        let grant: Value = plain
            .post(format!("{}/o/token/", sim.base_url()))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", c.redirect_uri.as_str()),
                ("client_id", c.client_id.as_str()),
                ("client_secret", c.client_secret.as_str()),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let access = grant["access_token"].as_str().context("no access_token")?.to_owned();
        let refresh = grant["refresh_token"].as_str().context("no refresh_token")?.to_owned();
        Ok((access, refresh))
    }

    /// The three adapters built as `run.rs` builds them (DrChrono with a refresh token of its own),
    /// with a resolver bound to them: for calling `Adapter::search` directly.
    pub async fn standalone_adapters(&self) -> Result<Vec<Arc<dyn Adapter>>> {
        let (_, refresh) = self.drchrono_tokens().await?;
        let mut dr = drchrono_for_sim(&self.demo.sim).map_err(|e| anyhow!(e))?;
        dr.refresh_token = refresh.into();
        let resolver = GatewayResolver::new(Duration::from_secs(600));
        let mut adapters: Vec<Arc<dyn Adapter>> = vec![Arc::new(DrChronoAdapter::new(dr)?)];
        adapters.push(Arc::new(
            ZoomAdapter::new(zoom_for_sim(&self.demo.zoom).map_err(|e| anyhow!(e))?)?.with_resolver(resolver.clone()),
        ));
        if let Some(noa) = &self.demo.noa {
            // Callbacks are only handed to Noa for new sessions; nothing here creates one.
            let secret = "benchbenchbenchbenchbenchbenchbenchbench";
            let callback = format!("http://127.0.0.1:9/webhooks/noa/{secret}");
            adapters.push(Arc::new(
                NoaAdapter::new(noa_for_sim(noa, secret, callback).map_err(|e| anyhow!(e))?)?
                    .with_resolver(resolver.clone()),
            ));
        }
        resolver.bind(Sources::new(adapters.clone()));
        Ok(adapters)
    }
}

/// A `demo-backend` token (client credentials, `client_secret_basic`, scope `system/*.rs`).
pub async fn bearer_token(base: &str) -> Result<String> {
    let answer = reqwest::Client::new()
        .post(format!("{base}/auth/token"))
        .basic_auth("demo-backend", Some("demo-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "system/*.rs")])
        .send()
        .await
        .context("the token endpoint does not answer")?;
    let status = answer.status();
    let body: Value = answer.json().await.context("the token endpoint's answer is not JSON")?;
    match body["access_token"].as_str() {
        Some(t) => Ok(t.to_owned()),
        None => bail!("no token from {base}/auth/token ({status}): {body}"),
    }
}

/// GETs `url`; the body and content type of a 200, else an error with the status.
pub async fn get_ok(http: &reqwest::Client, url: &str) -> Result<(Bytes, String)> {
    let resp = http.get(url).send().await.with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok((body, content_type))
}

/// A plain axum server on its own port (same process, same runtime) answering every GET with
/// `body` and `content_type`: the physical limit of serving those bytes over loopback.
pub struct StaticServer {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl StaticServer {
    pub async fn start(body: Bytes, content_type: String) -> Result<StaticServer> {
        let listener = tokio::net::TcpListener::bind(loopback()).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let handler = move || {
            let body = body.clone();
            let content_type = content_type.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, content_type)], body) }
        };
        let router = axum::Router::new().fallback(axum::routing::get(handler));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(StaticServer { base, task })
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
