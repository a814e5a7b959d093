//! Items 1 and 2: cached reads and a cached search page under `wrk` load, against a static server
//! answering the same bytes.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::practice::{Cache, Practice, StaticServer, get_ok};
use crate::report::Row;
use crate::stats::{count, median, millis, ms, ratio};
use crate::wrk::{self, WrkReport};
use crate::{Opts, Section};

/// Item 1: a cached `Patient/{id}` read at 32 and 128 connections.
pub async fn read(opts: &Opts) -> Result<Section> {
    let mut section = Section::default();
    let p = Practice::start(Cache::Demo).await?;
    let result = read_on(&p, opts, &mut section).await;
    p.stop();
    result?;
    // Diagnosis: the same at 32 connections without the token gate (the demo has it on).
    let p = Practice::start_open(Cache::Demo).await?;
    let result = read_diagnostic(&p, opts, &mut section).await;
    p.stop();
    result?;
    Ok(section)
}

pub(crate) async fn cached_patient(p: &Practice) -> Result<String> {
    let dataset = p.demo.sim.dataset();
    let patient = dataset.patients.first().context("the practice has no patient")?;
    let path = format!("Patient/drchrono-{}", patient.id);
    // Warm the cache (the first read is the miss).
    for _ in 0..3 {
        p.get(&path).await?;
    }
    Ok(path)
}

async fn read_on(p: &Practice, opts: &Opts, section: &mut Section) -> Result<()> {
    let path = cached_patient(p).await?;
    for connections in [32, 128] {
        let what = format!("Cached `Patient/{{id}}` read, {connections} connections");
        let t = Target {
            path: &path,
            what: &what,
            item: 1,
            connections,
            token: None,
            target: Some("≥ 0.80×"),
        };
        compare(p, t, opts, section).await?;
    }
    // P3: a patient reading their own record — the compartment check and redaction applied.
    let (token, patient) = crate::flood::patient_token(&p.base).await?;
    let path = format!("Patient/{patient}");
    let t = Target {
        path: &path,
        what: "Cached `Patient/{id}` read by the patient (patient-context token: compartment check and redaction), 32 connections",
        item: 1,
        connections: 32,
        token: Some(&token),
        target: Some("≥ 0.60×"),
    };
    compare(p, t, opts, section).await
}

async fn read_diagnostic(p: &Practice, opts: &Opts, section: &mut Section) -> Result<()> {
    let path = cached_patient(p).await?;
    let what = "Diagnosis: the same read, 32 connections, SMART **off** (no bearer verification)";
    let t = Target {
        path: &path,
        what,
        item: 1,
        connections: 32,
        token: None,
        target: None,
    };
    compare(p, t, opts, section).await
}

/// Item 2: a cached first page of 50 Appointments at 32 connections.
pub async fn search(opts: &Opts) -> Result<Section> {
    let p = Practice::start(Cache::Demo).await?;
    let result = search_on(&p, opts).await;
    p.stop();
    result
}

async fn search_on(p: &Practice, opts: &Opts) -> Result<Section> {
    let anchor = p.demo.sim.config().anchor;
    let month = anchor + chrono::Days::new(30);
    // The coming month's appointments (a window DrChrono filters on, well over 50 of them), else
    // the first page of all.
    let candidates = [
        format!("Appointment?date=ge{anchor}&date=lt{month}&_count=50"),
        "Appointment?_count=50".to_owned(),
    ];
    let mut chosen = None;
    for path in &candidates {
        let bundle = p.json(path).await?;
        if matches(&bundle) == 50 {
            chosen = Some(path.clone());
            break;
        }
    }
    let Some(path) = chosen else {
        bail!("no Appointment search gives a full page of 50 ({candidates:?})");
    };
    let mut section = Section::default();
    let what = format!("Cached search page, 50 Appointments (`{path}`), 32 connections");
    let t = Target {
        path: &path,
        what: &what,
        item: 2,
        connections: 32,
        token: None,
        target: Some("≥ 0.50×"),
    };
    compare(p, t, opts, &mut section).await?;
    Ok(section)
}

/// What one comparison loads.
struct Target<'a> {
    path: &'a str,
    what: &'a str,
    item: u8,
    connections: u32,
    /// The bearer token (`None`: the practice's backend token, if it has one).
    token: Option<&'a str>,
    /// The target ratio; `None` for a diagnostic (only req/s).
    target: Option<&'static str>,
}

/// Loads the gateway's `path` and a static server serving the same bytes, `opts.runs` times each,
/// alternating, and adds the rows: req/s, p50 and p99 with gateway/static ratios per run (only
/// req/s for a diagnostic).
async fn compare(p: &Practice, t: Target<'_>, opts: &Opts, section: &mut Section) -> Result<()> {
    let Target {
        path,
        what,
        item,
        connections,
        token,
        target,
    } = t;
    let token = token.or(p.wrk_token());
    let (body, content_type) = match token {
        Some(token) => {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
            let http = reqwest::Client::builder().default_headers(headers).build()?;
            get_ok(&http, &p.fhir(path)).await?
        }
        None => p.get(path).await?,
    };
    let server = StaticServer::start(body.clone(), content_type.clone()).await?;
    let gateway_url = p.fhir(path);
    let static_url = format!("{}/fhir/{path}", server.base);
    // The baseline answers exactly what the gateway answered.
    let (static_body, static_type) = get_ok(&reqwest::Client::new(), &static_url).await?;
    if static_body != body || static_type != content_type {
        bail!("the static server does not answer the gateway's bytes");
    }
    let what = format!("{what} ({:.1} KB body)", body.len() as f64 / 1024.0);
    eprintln!("  {what}");

    // A short warm-up of both (connections, allocator, caches).
    let warm = Duration::from_secs(1).as_secs();
    load(&gateway_url, connections, warm, token).await?;
    load(&static_url, connections, warm, None).await?;

    let mut gw: Vec<WrkReport> = Vec::new();
    let mut st: Vec<WrkReport> = Vec::new();
    for run in 0..opts.runs {
        // Alternate which goes first, so drift (thermal, the Noa clock's webhooks) hits both.
        if run % 2 == 0 {
            gw.push(load(&gateway_url, connections, opts.duration, token).await?);
            st.push(load(&static_url, connections, opts.duration, None).await?);
        } else {
            st.push(load(&static_url, connections, opts.duration, None).await?);
            gw.push(load(&gateway_url, connections, opts.duration, token).await?);
        }
        let (g, s) = (&gw[run], &st[run]);
        eprintln!(
            "    run {}: gateway {} req/s p50 {} p99 {} | static {} req/s p50 {} p99 {}",
            run + 1,
            count(g.requests_per_sec),
            millis(ms(&g.p50)),
            millis(ms(&g.p99)),
            count(s.requests_per_sec),
            millis(ms(&s.p50)),
            millis(ms(&s.p99)),
        );
    }
    drop(server);

    for (name, reports) in [("gateway", &gw), ("static server", &st)] {
        let failed: u64 = reports.iter().map(|r| r.non_2xx).sum();
        let errors: u64 = reports.iter().map(|r| r.socket_errors).sum();
        if failed + errors > 0 {
            section.notes.push(format!(
                "{what}: the {name} had {failed} non-2xx answers and {errors} socket errors over the runs"
            ));
        }
    }

    let rps = |r: &WrkReport| r.requests_per_sec;
    let p50 = |r: &WrkReport| ms(&r.p50);
    let p99 = |r: &WrkReport| ms(&r.p99);
    let per_run = |f: &dyn Fn(&WrkReport) -> f64| -> (f64, f64, f64) {
        let g: Vec<f64> = gw.iter().map(f).collect();
        let s: Vec<f64> = st.iter().map(f).collect();
        let r: Vec<f64> = g.iter().zip(&s).map(|(g, s)| g / s).collect();
        (median(&g), median(&s), median(&r))
    };
    let (g, s, r) = per_run(&rps);
    let row = Row::new(item, what.clone(), "req/s")
        .gateway(count(g))
        .baseline(format!("{} (static)", count(s)))
        .comparison(ratio(r));
    let Some(target) = target else {
        section.rows.push(row);
        return Ok(());
    };
    section.rows.push(row.target(target));
    let (g, s, r) = per_run(&p50);
    section.rows.push(
        Row::new(item, what.clone(), "p50 latency")
            .gateway(millis(g))
            .baseline(format!("{} (static)", millis(s)))
            .comparison(ratio(r)),
    );
    let (g, s, r) = per_run(&p99);
    section.rows.push(
        Row::new(item, what, "p99 latency")
            .gateway(millis(g))
            .baseline(format!("{} (static)", millis(s)))
            .comparison(ratio(r)),
    );
    Ok(())
}

/// One `wrk` run (on a blocking thread: the servers keep the runtime's workers).
pub(crate) async fn load(url: &str, connections: u32, seconds: u64, token: Option<&str>) -> Result<WrkReport> {
    let url = url.to_owned();
    let token = token.map(str::to_owned);
    tokio::task::spawn_blocking(move || wrk::run(&url, connections, seconds, token.as_deref())).await?
}

/// The number of `match` entries of a searchset Bundle.
pub fn matches(bundle: &Value) -> usize {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().filter(|x| x["search"]["mode"] == "match").count())
        .unwrap_or(0)
}
