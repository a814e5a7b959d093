//! End-to-end harness: the real DrChrono simulator and the real gateway (with the real DrChrono
//! adapter) on loopback ports, and an HTTP client that talks to them like any FHIR client.

pub mod webdriver;

use std::net::SocketAddr;
use std::sync::Arc;

use adapter_drchrono::{DrChronoAdapter, DrChronoConfig};
use chrono::NaiveDate;
use gateway::demo::{PracticeConfig, drchrono_for_sim, start_practice};
use gateway::run::{GatewayOptions, RunningGateway, spawn};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig, SimHandle};
use vendor_sim::noa::{NoaSimConfig, NoaSimHandle};
use vendor_sim::zoom::{EhrRefs, ZoomSimConfig, ZoomSimHandle};

/// The fixed "today" of the test practice, so the tests are deterministic.
pub fn anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 15).unwrap_or_default()
}

/// A running simulator (or two) + gateway.
pub struct Env {
    pub sim: SimHandle,
    /// The Zoom simulator, when the practice runs one ([`Env::start_with_zoom`]).
    pub zoom: Option<ZoomSimHandle>,
    /// The Noa simulator, when the practice runs one ([`Env::start_with_noa`]).
    pub noa: Option<NoaSimHandle>,
    pub gw: RunningGateway,
    pub http: reqwest::Client,
}

/// A response: status, headers, JSON body (`Null` when the body is not JSON).
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

impl Env {
    /// The small test practice with default settings.
    pub async fn start() -> Env {
        Self::start_with(DrChronoSimConfig::small(7, anchor()), |_| {}, |_| {}).await
    }

    /// A practice and gateway with adjusted settings.
    pub async fn start_with(
        sim_config: DrChronoSimConfig,
        adapter: impl FnOnce(&mut DrChronoConfig),
        options: impl FnOnce(&mut GatewayOptions),
    ) -> Env {
        let tz = sim_config.timezone.parse().unwrap_or(chrono_tz::Tz::UTC);
        let sim = DrChronoSim::new(sim_config)
            .spawn(loopback())
            .await
            .expect("simulator starts");
        let mut config = drchrono_for_sim(&sim).expect("simulator URL");
        adapter(&mut config);
        let dr = DrChronoAdapter::new(config).expect("adapter config is valid");
        let mut opts = GatewayOptions::new(tz);
        options(&mut opts);
        let gw = spawn(loopback(), vec![Arc::new(dr)], opts)
            .await
            .expect("gateway starts");
        Env {
            sim,
            zoom: None,
            noa: None,
            gw,
            http: reqwest::Client::new(),
        }
    }

    /// The small practice with DrChrono and Zoom (Zoom's webhooks delivered to the gateway).
    pub async fn start_with_zoom(
        zoom: fn(u64, NaiveDate, EhrRefs) -> ZoomSimConfig,
        options: impl FnOnce(&mut GatewayOptions),
    ) -> Env {
        Self::start_practice(zoom, None, options).await
    }

    /// The small practice with DrChrono, Zoom and Noa (both vendors' webhooks delivered to the
    /// gateway).
    pub async fn start_with_noa(
        noa: fn(u64, NaiveDate, vendor_sim::noa::EhrRefs) -> NoaSimConfig,
        options: impl FnOnce(&mut GatewayOptions),
    ) -> Env {
        Self::start_practice(ZoomSimConfig::small, Some(noa), options).await
    }

    /// The small practice (DrChrono, Zoom, Noa) behind SMART on FHIR with the demo clients and users.
    pub async fn start_secured() -> Env {
        Self::start_secured_with(|_| {}).await
    }

    /// [`Env::start_secured`] with adjusted settings (the demo SMART settings are in `options.auth`).
    pub async fn start_secured_with(options: impl FnOnce(&mut GatewayOptions)) -> Env {
        Self::start_practice_with(ZoomSimConfig::small, Some(NoaSimConfig::small), true, options).await
    }

    async fn start_practice(
        zoom: fn(u64, NaiveDate, EhrRefs) -> ZoomSimConfig,
        noa: Option<fn(u64, NaiveDate, vendor_sim::noa::EhrRefs) -> NoaSimConfig>,
        options: impl FnOnce(&mut GatewayOptions),
    ) -> Env {
        Self::start_practice_with(zoom, noa, false, options).await
    }

    async fn start_practice_with(
        zoom: fn(u64, NaiveDate, EhrRefs) -> ZoomSimConfig,
        noa: Option<fn(u64, NaiveDate, vendor_sim::noa::EhrRefs) -> NoaSimConfig>,
        auth: bool,
        options: impl FnOnce(&mut GatewayOptions),
    ) -> Env {
        let practice = PracticeConfig {
            drchrono: DrChronoSimConfig::small(7, anchor()),
            zoom: Some(zoom),
            noa,
            auth,
        };
        let demo = start_practice(loopback(), practice, options)
            .await
            .expect("practice starts");
        Env {
            sim: demo.sim,
            zoom: Some(demo.zoom),
            noa: demo.noa,
            gw: demo.gateway,
            http: reqwest::Client::new(),
        }
    }

    /// The Noa simulator (panics when the practice has none: a test bug).
    pub fn noa(&self) -> &NoaSimHandle {
        self.noa.as_ref().expect("this practice runs the Noa simulator")
    }

    /// The Zoom simulator (panics when the practice has none: a test bug).
    pub fn zoom(&self) -> &ZoomSimHandle {
        self.zoom.as_ref().expect("this practice runs the Zoom simulator")
    }

    /// Sends a JSON body.
    pub async fn send_json(&self, method: reqwest::Method, path: &str, content_type: &str, body: &Value) -> Resp {
        let resp = self
            .http
            .request(method, format!("{}{}", self.gw.base_url, path))
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .expect("the gateway answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("a body");
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// `{base}/fhir`.
    /// The gateway's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.gw.base_url))
            .send()
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("/metrics is text")
    }

    pub fn fhir(&self) -> String {
        self.gw.fhir_base().to_owned()
    }

    /// GET a path relative to the gateway root (`/fhir/Patient?...`) or an absolute URL.
    pub async fn get(&self, path_or_url: &str) -> Resp {
        self.request(reqwest::Method::GET, path_or_url, &[]).await
    }

    pub async fn request(&self, method: reqwest::Method, path_or_url: &str, headers: &[(&str, &str)]) -> Resp {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{}", self.gw.base_url, path_or_url)
        };
        let mut req = self.http.request(method, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("the gateway answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("a body");
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// Follows `next` links from a first search URL; returns every page's bodies.
    pub async fn pages(&self, first: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(url) = next {
            let r = self.get(&url).await;
            assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
            next = link(&r.body, "next");
            out.push(r.body);
            assert!(out.len() < 500, "paging does not end");
        }
        out
    }

    /// Every match of a search, following `next` to the end.
    pub async fn all(&self, first: &str) -> Vec<Value> {
        self.pages(first)
            .await
            .iter()
            .flat_map(|b| entries(b, "match"))
            .collect()
    }
}

/// A Bundle link by relation.
pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"].as_array()?.iter().find(|l| l["relation"] == relation)?["url"]
        .as_str()
        .map(str::to_owned)
}

/// The resources of a Bundle's entries in one search mode.
pub fn entries(bundle: &Value, mode: &str) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|x| x["search"]["mode"] == mode)
                .map(|x| x["resource"].clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The ids of resources.
pub fn ids(resources: &[Value]) -> Vec<String> {
    resources
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect()
}

/// Sorted ids, for set comparisons.
pub fn id_set(resources: &[Value]) -> Vec<String> {
    let mut v = ids(resources);
    v.sort();
    v
}

/// Checks what fhirbolt's parser checks (structure, known elements, types) and what it does not:
/// ids, dates and instants against the FHIR regular expressions.
pub fn assert_valid_fhir(resource: &Value) {
    let text = resource.to_string();
    let parsed: Result<fhirbolt::model::r4::Resource, _> = fhirbolt::json::from_str(&text, None);
    assert!(
        parsed.is_ok(),
        "fhirbolt refuses the resource: {:?}\n{text}",
        parsed.err()
    );
    check_primitives(resource, "");
}

fn check_primitives(v: &Value, path: &str) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let p = format!("{path}.{k}");
                if let Value::String(s) = child {
                    check_string(k, s, &p);
                }
                check_primitives(child, &p);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| check_primitives(i, path)),
        _ => {}
    }
}

fn check_string(key: &str, s: &str, path: &str) {
    let is_digit = |c: char| c.is_ascii_digit();
    match key {
        "id" if !path.contains("extension") => {
            assert!(adapter::id::is_valid_fhir_id(s), "{path}: '{s}' is not a FHIR id");
        }
        "lastUpdated" | "start" | "end" | "created" | "date" | "birthDate" | "issued" => {
            // date: YYYY(-MM(-DD)?)?; dateTime/instant with time must carry a zone.
            let ok_date = s.len() >= 4 && s[..4].chars().all(is_digit);
            assert!(ok_date, "{path}: '{s}' is not a FHIR date");
            if s.contains('T') {
                let zoned = s.ends_with('Z') || s[s.len().saturating_sub(6)..].starts_with(['+', '-']);
                assert!(zoned, "{path}: '{s}' has a time but no zone");
                assert!(
                    chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                    "{path}: '{s}' is not a valid instant"
                );
            } else if s.len() == 10 {
                assert!(
                    NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
                    "{path}: '{s}' is not a valid date"
                );
            }
        }
        _ => {}
    }
}

/// Lower-cases and splits on spaces and hyphens, for computing expected name matches.
pub fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split([' ', '-'])
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}
