//! Items 3, 4 and 5: what the gateway adds to vendor calls — a cold read against a direct call to
//! the DrChrono simulator, a federated search against each adapter called directly, and 200
//! concurrent cold reads against the simulator's hit counter.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter::search::SearchRequest;
use adapter::{Adapter, PageRequest, ResourceType};
use anyhow::{Context, Result, anyhow, bail};
use gateway::query::CountLimits;
use serde_json::Value;

use crate::practice::{Cache, Practice, get_ok};
use crate::report::Row;
use crate::stats::{delta_ms, median, median_ms, millis, ratio};
use crate::{Opts, Section};

/// DrChrono's added latency for the cold read (item 3).
const COLD_LATENCY: Duration = Duration::from_millis(20);
/// Sequential reads per run (each through the gateway and directly).
const COLD_READS: usize = 30;
/// Every vendor's added latency for the federated search (item 4).
const FEDERATED_LATENCY: Duration = Duration::from_millis(50);
/// Searches per run (through the gateway, and on each adapter directly).
const FEDERATED_SEARCHES: usize = 7;
/// Concurrent identical reads (item 5).
const CONCURRENT_READS: usize = 200;
/// DrChrono's added latency while they run, so that they overlap the one vendor call.
const SINGLE_FLIGHT_LATENCY: Duration = Duration::from_millis(50);

/// Item 3: sequential cold `Patient` reads through a cache-less gateway against direct GETs of
/// `/api/patients/{id}`, DrChrono at +20 ms.
pub async fn cold(opts: &Opts) -> Result<Section> {
    let p = Practice::start(Cache::Off).await?;
    let result = cold_on(&p, opts).await;
    p.stop();
    result
}

async fn cold_on(p: &Practice, opts: &Opts) -> Result<Section> {
    let (access, _) = p.drchrono_tokens().await?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {access}").parse()?);
    let direct = reqwest::Client::builder().default_headers(headers).build()?;
    let sim = p.demo.sim.base_url();
    let ids: Vec<i64> = p.demo.sim.dataset().patients.iter().map(|p| p.id).collect();
    if ids.is_empty() {
        bail!("the practice has no patient");
    }
    p.set_latency(COLD_LATENCY, Duration::ZERO, Duration::ZERO);
    // Warm: connections, the adapter's OAuth token and doctors' time zones.
    for id in ids.iter().take(2) {
        p.get(&format!("Patient/drchrono-{id}")).await?;
        get_ok(&direct, &format!("{sim}/api/patients/{id}")).await?;
    }
    let what = format!(
        "Cold `Patient/{{id}}` read, cache off, DrChrono +{} ms, 1 connection, sequential ({COLD_READS}/run)",
        COLD_LATENCY.as_millis()
    );
    eprintln!("  {what}");
    let (mut gw, mut dr, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..opts.runs {
        let (mut g, mut d) = (Vec::new(), Vec::new());
        for k in 0..COLD_READS {
            let id = ids[(run * COLD_READS + k) % ids.len()];
            let t = Instant::now();
            p.get(&format!("Patient/drchrono-{id}")).await?;
            g.push(t.elapsed());
            let t = Instant::now();
            get_ok(&direct, &format!("{sim}/api/patients/{id}")).await?;
            d.push(t.elapsed());
        }
        let (mg, md) = (median_ms(&g), median_ms(&d));
        eprintln!(
            "    run {}: gateway {} direct {} (Δ {})",
            run + 1,
            millis(mg),
            millis(md),
            delta_ms(mg - md)
        );
        gw.push(mg);
        dr.push(md);
        diff.push(mg - md);
    }
    p.set_latency(Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut section = Section::default();
    section.rows.push(
        Row::new(3, what, "median latency")
            .gateway(millis(median(&gw)))
            .baseline(format!("{} (direct GET /api/patients/{{id}})", millis(median(&dr))))
            .comparison(delta_ms(median(&diff)))
            .target("≤ +1 ms"),
    );
    Ok(section)
}

/// Item 4: a search every vendor answers, each at +50 ms, through the gateway (cache off) against
/// each adapter's `Adapter::search` called directly for the same request.
pub async fn federated(opts: &Opts) -> Result<Section> {
    let p = Practice::start(Cache::Off).await?;
    let result = federated_on(&p, opts).await;
    p.stop();
    result
}

async fn federated_on(p: &Practice, opts: &Opts) -> Result<Section> {
    let patient = patient_in_every_source(p).await?;
    let query = format!("patient=drchrono-{patient}&_count=100");
    let adapters = p.standalone_adapters().await?;
    let tz = p.demo.sim.config().timezone.parse().unwrap_or(chrono_tz::UTC);
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let limits = CountLimits { default: 50, max: 500 };
    let parsed = gateway::query::parse(ResourceType::DocumentReference, &pairs, false, limits, tz, &p.base)
        .map_err(|e| anyhow!("the search does not parse: {e:?}"))?;
    let request = parsed.request;
    let plain = format!("DocumentReference?{query}");
    // The same search when the whole result is needed: the engine gathers the sources concurrently.
    let gathered = format!("DocumentReference?{query}&_total=accurate");

    p.set_latency(FEDERATED_LATENCY, FEDERATED_LATENCY, FEDERATED_LATENCY);
    // Warm: tokens, the resolvers' memos, the Zoom providers and DrChrono doctors.
    let expected = crate::load::matches(&p.json(&plain).await?);
    p.json(&gathered).await?;
    let mut per_source = BTreeMap::new();
    for a in &adapters {
        let (_, n) = vendor_search(a, &request).await?;
        per_source.insert(a.source().to_string(), n);
    }
    let what = format!(
        "Federated `DocumentReference?patient=drchrono-{patient}&_count=100` ({expected} matches; the adapters return {} resources), cache off, every vendor +{} ms",
        per_source
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        FEDERATED_LATENCY.as_millis()
    );
    eprintln!("  {what}");

    let mut gw = Vec::new();
    let mut gw_gathered = Vec::new();
    let mut vendors: HashMap<String, Vec<f64>> = HashMap::new();
    let mut ratios = Vec::new();
    let mut ratios_gathered = Vec::new();
    let mut slowest_names = Vec::new();
    for run in 0..opts.runs {
        let (mut g, mut gg) = (Vec::new(), Vec::new());
        let mut v: HashMap<String, Vec<Duration>> = HashMap::new();
        for _ in 0..FEDERATED_SEARCHES {
            let t = Instant::now();
            let bundle = p.json(&plain).await?;
            g.push(t.elapsed());
            if crate::load::matches(&bundle) != expected {
                bail!("the federated search's result changed during the run");
            }
            let t = Instant::now();
            p.json(&gathered).await?;
            gg.push(t.elapsed());
            for a in &adapters {
                let (d, _) = vendor_search(a, &request).await?;
                v.entry(a.source().to_string()).or_default().push(d);
            }
        }
        let (mg, mgg) = (median_ms(&g), median_ms(&gg));
        let medians: BTreeMap<String, f64> = v.iter().map(|(s, d)| (s.clone(), median_ms(d))).collect();
        let (slowest, slowest_ms) = medians
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(s, m)| (s.clone(), *m))
            .context("no vendor")?;
        eprintln!(
            "    run {}: gateway {} (gathering: {}) | {} | slowest {slowest}: {:.2}× / {:.2}×",
            run + 1,
            millis(mg),
            millis(mgg),
            medians
                .iter()
                .map(|(s, m)| format!("{s} {}", millis(*m)))
                .collect::<Vec<_>>()
                .join(", "),
            mg / slowest_ms,
            mgg / slowest_ms,
        );
        gw.push(mg);
        gw_gathered.push(mgg);
        ratios.push(mg / slowest_ms);
        ratios_gathered.push(mgg / slowest_ms);
        slowest_names.push(slowest);
        for (s, m) in medians {
            vendors.entry(s).or_default().push(m);
        }
    }
    p.set_latency(Duration::ZERO, Duration::ZERO, Duration::ZERO);

    let mut vendor_medians: Vec<(String, f64)> = vendors.iter().map(|(s, m)| (s.clone(), median(m))).collect();
    vendor_medians.sort_by(|a, b| a.0.cmp(&b.0));
    let slowest = vendor_medians
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .context("no vendor")?;
    let mut section = Section::default();
    section.rows.push(
        Row::new(4, what.clone(), "median latency ÷ slowest vendor")
            .gateway(millis(median(&gw)))
            .baseline(format!(
                "{} (slowest: {}, `Adapter::search`)",
                millis(slowest.1),
                slowest.0
            ))
            .comparison(ratio(median(&ratios)))
            .target("≤ 1.10×"),
    );
    section.rows.push(
        Row::new(
            4,
            "The same search with `_total=accurate` (the engine then gathers the sources concurrently)",
            "median latency ÷ slowest vendor",
        )
        .gateway(millis(median(&gw_gathered)))
        .baseline(format!("{} (slowest: {})", millis(slowest.1), slowest.0))
        .comparison(ratio(median(&ratios_gathered)))
        .target("≤ 1.10×"),
    );
    section.rows.push(
        Row::new(
            4,
            "Per vendor, `Adapter::search` in-process (every page)",
            "median latency",
        )
        .baseline(
            vendor_medians
                .iter()
                .map(|(s, m)| format!("{s} {}", millis(*m)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    );
    if slowest_names.iter().any(|s| *s != slowest.0) {
        section.notes.push(format!(
            "item 4: the slowest vendor differed between runs ({}); each run's ratio uses its own slowest",
            slowest_names.join(", ")
        ));
    }
    Ok(section)
}

/// One search on one adapter, every vendor page (as the engine asks: pages of 250 when the search
/// has parameters).
async fn vendor_search(a: &Arc<dyn Adapter>, request: &SearchRequest) -> Result<(Duration, usize)> {
    let t = Instant::now();
    let mut cursor = None;
    let mut n = 0;
    loop {
        let page = a
            .search(request, PageRequest { cursor, size: 250 })
            .await
            .map_err(|e| anyhow!("{}: {e}", a.source()))?;
        n += page.resources.len();
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok((t.elapsed(), n)),
        }
    }
}

/// A DrChrono patient with DocumentReferences from DrChrono, Zoom and Noa (candidates first from
/// the Zoom notes and Noa sessions that name a patient, checked through the gateway).
async fn patient_in_every_source(p: &Practice) -> Result<i64> {
    let dr = p.demo.sim.dataset();
    let mut score: HashMap<i64, (usize, usize)> = HashMap::new();
    for note in &p.demo.zoom.dataset().clinical_notes {
        if let Some(id) = note
            .ehr_context
            .as_ref()
            .and_then(|c| c.patient_id.as_deref())
            .and_then(|s| s.trim_start_matches("Patient/").parse::<i64>().ok())
        {
            score.entry(id).or_default().0 += 1;
        }
    }
    let appointment_patient: HashMap<&str, i64> = dr
        .appointments
        .iter()
        .filter_map(|a| Some((a.id.as_str(), a.patient?)))
        .collect();
    if let Some(noa) = &p.demo.noa {
        for s in &noa.dataset().sessions {
            let from_metadata = s
                .metadata
                .as_ref()
                .and_then(|m| m.get("patientId"))
                .and_then(|v| v.parse::<i64>().ok());
            if let Some(id) = from_metadata.or_else(|| appointment_patient.get(s.episode_id.as_str()).copied()) {
                score.entry(id).or_default().1 += 1;
            }
        }
    }
    let mut candidates: Vec<(i64, (usize, usize))> = score.into_iter().filter(|(_, (z, n))| *z > 0 && *n > 0).collect();
    candidates.sort_by_key(|(id, (z, n))| (std::cmp::Reverse((*z).min(*n)), *id));
    for (id, _) in candidates.iter().take(40) {
        let bundle: Value = p
            .json(&format!("DocumentReference?patient=drchrono-{id}&_count=100"))
            .await?;
        let sources: std::collections::BTreeSet<&str> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["resource"]["id"].as_str())
            .filter_map(|id| id.split('-').next())
            .collect();
        if ["drchrono", "zoom", "noa"].iter().all(|s| sources.contains(s)) {
            return Ok(*id);
        }
    }
    bail!("no patient has DocumentReferences from DrChrono, Zoom and Noa")
}

/// Item 5: 200 concurrent identical reads of a Patient never read before (cache on); the DrChrono
/// simulator counts the calls to `/api/patients/{id}`.
pub async fn single_flight(opts: &Opts) -> Result<Section> {
    let p = Practice::start(Cache::Demo).await?;
    let result = single_flight_on(&p, opts).await;
    p.stop();
    result
}

async fn single_flight_on(p: &Practice, opts: &Opts) -> Result<Section> {
    let ids: Vec<i64> = p.demo.sim.dataset().patients.iter().map(|p| p.id).collect();
    let what = format!(
        "{CONCURRENT_READS} concurrent identical cold reads of one `Patient` (cache on, fresh id per run, DrChrono +{} ms)",
        SINGLE_FLIGHT_LATENCY.as_millis()
    );
    eprintln!("  {what}");
    // Open the connections first so that the reads leave together.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", p.token).parse()?);
    let http = reqwest::Client::builder().default_headers(headers).build()?;
    let healthz = format!("{}/healthz", p.base);
    futures::future::join_all((0..CONCURRENT_READS).map(|_| http.get(&healthz).send())).await;
    p.set_latency(SINGLE_FLIGHT_LATENCY, Duration::ZERO, Duration::ZERO);
    let mut calls = Vec::new();
    let mut ok = Vec::new();
    for run in 0..opts.runs {
        let id = *ids
            .get(ids.len().saturating_sub(1 + run))
            .context("not enough patients for the runs")?;
        let path = format!("/api/patients/{id}");
        let before = p.demo.sim.hits_for(&path);
        let url = p.fhir(&format!("Patient/drchrono-{id}"));
        let statuses = futures::future::join_all((0..CONCURRENT_READS).map(|_| {
            let http = &http;
            let url = &url;
            async move {
                match http.get(url).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        }))
        .await;
        let n = p.demo.sim.hits_for(&path) - before;
        let good = statuses.iter().filter(|s| **s).count();
        eprintln!(
            "    run {}: {n} upstream call(s), {good}/{CONCURRENT_READS} answered 200",
            run + 1
        );
        calls.push(n);
        ok.push(good);
    }
    p.set_latency(Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut section = Section::default();
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    section.rows.push(
        Row::new(5, what, "upstream `GET /api/patients/{id}` per run")
            .gateway(list(&calls))
            .baseline(format!("{CONCURRENT_READS} (one per read, without single-flight)"))
            .comparison(format!(
                "{} of {} answered 200",
                list(&ok.iter().map(|x| *x as u64).collect::<Vec<_>>()),
                CONCURRENT_READS
            ))
            .target("exactly 1"),
    );
    Ok(section)
}
