//! Item 11 `clinic-day`: a clinic's afternoon of traffic, replayed at `--speed` times real time
//! (default 10×) for `--sim-minutes` simulated minutes (default 60), against the demo practice
//! with its cache on and its state in a SQLite store. The question it answers: does the gateway
//! stay inside DrChrono's 500 calls an hour while every answer after a vendor's webhook is fresh?
//!
//! The simulated clock starts at the practice's "now" (noon of the demo's anchor day at DrChrono,
//! the Zoom account's own clock at Zoom). Everything is seeded, so two runs ask the same things:
//!
//! - **20 EHR pollers** ask `Appointment?date={today}` every 60 simulated seconds (staggered),
//!   following `next` links;
//! - **50 app users** each open a patient's chart every 10–30 simulated minutes: `Patient/{id}`,
//!   `Appointment?patient={id}` and `DocumentReference?patient={id}&category=clinical-note`; four
//!   picks in five are patients seen today, the fifth anyone in the practice;
//! - **the day's visits**: every DrChrono appointment of the window moves through Arrived (10
//!   minutes before, a third of the patients also updating their cell phone at check-in), In
//!   Session (at its time) and Complete (at its end), each an `APPOINTMENT_MODIFY` /
//!   `PATIENT_MODIFY` webhook; two minutes after each visit the provider searches the patient's
//!   notes. Every Zoom visit of the window: the patient joins (5 minutes before), is admitted, and
//!   the visit ends, each with Zoom's webhooks.
//!
//! Every change is checked: the changed resource is read through the gateway just before the
//! change (as an open chart would), the change is made at the simulator, and once the simulator has
//! delivered its webhook the resource is read again — an answer with the ETag from before the
//! change is **stale**; for an appointment, its entry in the pollers' search is compared with that
//! read too. The gateway's cache lifetimes are divided by the speed, so that they mean the same
//! simulated time.
//!
//! Printed: vendor calls per simulated hour by vendor (DrChrono against its 500), requests and
//! errors, the cache's hit rate (`/metrics`), changes checked and stale answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use gateway::cache::CacheSettings;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::practice::{Cache, Practice};
use crate::report::Row;
use crate::rss::series;
use crate::stats::{Dice, count};
use crate::{Opts, Section};

/// DrChrono's hourly allowance per account (the vendor doc).
const DRCHRONO_HOURLY: f64 = 500.0;
const POLLERS: usize = 20;
const APP_USERS: usize = 50;
/// How long to wait for a simulator's webhooks to be delivered, in real time.
const WEBHOOK_WAIT: Duration = Duration::from_secs(10);

/// The simulated clock: simulated time since the start, and the real instant of a simulated one.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    speed: u32,
}

impl Clock {
    fn elapsed(&self) -> Duration {
        self.start.elapsed() * self.speed
    }

    async fn sleep_until(&self, sim: Duration) {
        let real = self.start + sim / self.speed;
        tokio::time::sleep_until(real.into()).await;
    }
}

/// What every task counts.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
    changes: AtomicU64,
    checked: AtomicU64,
    stale: AtomicU64,
    /// Changes the simulator could not make or deliver (not counted as checked).
    unchecked: AtomicU64,
}

/// A change a simulator makes at a simulated time.
#[derive(Clone, Debug)]
enum Change {
    /// A DrChrono appointment's status; `phone` also changes the patient's cell phone.
    DrChronoStatus {
        appointment: String,
        patient: i64,
        status: &'static str,
        phone: bool,
    },
    /// A Zoom visit's step.
    ZoomVisit { visit: String, step: ZoomStep },
    /// Not a change: the provider searches the patient's notes after a visit.
    NoteSearch { patient: i64 },
}

#[derive(Clone, Copy, Debug)]
enum ZoomStep {
    Joins,
    Admit,
    End,
}

struct Day {
    p: Practice,
    clock: Clock,
    /// The practice's local "now" at DrChrono and the Zoom account's clock, at the start.
    drchrono_start: NaiveDateTime,
    zoom_start: DateTime<Utc>,
    today: String,
    tally: Tally,
}

impl Day {
    /// GETs a FHIR path as JSON, counting it; `None` (and an error counted) on anything but a 200.
    async fn get(&self, path: &str) -> Option<(Value, Option<String>)> {
        self.tally.requests.fetch_add(1, Ordering::Relaxed);
        let answer = self.p.http.get(self.p.fhir(path)).send().await;
        let ok = match answer {
            Ok(r) if r.status().is_success() => {
                let etag = r
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                r.json::<Value>().await.ok().map(|v| (v, etag))
            }
            _ => None,
        };
        if ok.is_none() {
            self.tally.errors.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// A search and every page after it; the entries' resources.
    async fn search_all(&self, path: &str) -> Option<Vec<Value>> {
        let mut out = Vec::new();
        let (mut bundle, _) = self.get(path).await?;
        for _ in 0..50 {
            if let Some(entries) = bundle["entry"].as_array() {
                out.extend(entries.iter().map(|e| e["resource"].clone()));
            }
            let next = bundle["link"]
                .as_array()
                .and_then(|links| links.iter().find(|l| l["relation"] == "next"))
                .and_then(|l| l["url"].as_str())
                .and_then(|u| u.split_once("/fhir/").map(|(_, rest)| rest.to_owned()));
            match next {
                Some(next) => bundle = self.get(&next).await?.0,
                None => break,
            }
        }
        Some(out)
    }

    fn pollers_query(&self) -> String {
        format!("Appointment?date={}&_count=100", self.today)
    }

    /// Makes one change and checks what the gateway answers once its webhook is in.
    async fn change(&self, change: Change) {
        let at_drchrono = self.drchrono_start + TimeDelta::from_std(self.clock.elapsed()).unwrap_or_default();
        let (path, search_check) = match &change {
            Change::NoteSearch { patient } => {
                self.get(&format!(
                    "DocumentReference?patient=drchrono-{patient}&category=clinical-note"
                ))
                .await;
                return;
            }
            Change::DrChronoStatus { appointment, .. } => (format!("Appointment/drchrono-{appointment}"), true),
            Change::ZoomVisit { visit, .. } => match adapter::id::fhir_id("zoom", visit) {
                Ok(id) => (format!("Appointment/{id}"), true),
                Err(_) => {
                    self.tally.unchecked.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
        };
        let patient_path = match &change {
            Change::DrChronoStatus {
                patient, phone: true, ..
            } => Some(format!("Patient/drchrono-{patient}")),
            _ => None,
        };
        // The chart is open: what the gateway says before the change.
        let before = self.get(&path).await.and_then(|(_, etag)| etag);
        let patient_before = match &patient_path {
            Some(p) => self.get(p).await.and_then(|(_, etag)| etag),
            None => None,
        };
        let demo = &self.p.demo;
        let made = match &change {
            Change::DrChronoStatus {
                appointment,
                patient,
                status,
                phone,
            } => {
                let mut made = demo
                    .sim
                    .set_appointment_status(appointment, status, at_drchrono)
                    .is_some();
                if *phone {
                    let number = format!(
                        "(555) 01{:02}-{:04}",
                        patient % 100,
                        self.clock.elapsed().as_secs() % 10_000
                    );
                    made &= demo
                        .sim
                        .set_patient_cell_phone(*patient, &number, at_drchrono)
                        .is_some();
                }
                made && demo.sim.wait_for_webhooks(WEBHOOK_WAIT).await
            }
            Change::ZoomVisit { visit, step } => {
                let zoom = &demo.zoom;
                zoom.set_clock(self.zoom_start + TimeDelta::from_std(self.clock.elapsed()).unwrap_or_default());
                let done = match step {
                    ZoomStep::Joins => zoom.patient_joins(visit).is_ok(),
                    ZoomStep::Admit => zoom.admit(visit).is_ok(),
                    ZoomStep::End => zoom.end_visit(visit).is_ok(),
                };
                done && zoom.wait_for_webhooks(WEBHOOK_WAIT).await
            }
            Change::NoteSearch { .. } => false,
        };
        self.tally.changes.fetch_add(1, Ordering::Relaxed);
        let Some(before) = before.filter(|_| made) else {
            self.tally.unchecked.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // The webhook is in: nothing the gateway answers now may be the version from before.
        self.tally.checked.fetch_add(1, Ordering::Relaxed);
        let after = self.get(&path).await;
        let mut stale = match &after {
            Some((_, Some(etag))) => *etag == before,
            _ => false,
        };
        if let (Some(patient_path), Some(patient_before)) = (&patient_path, patient_before) {
            self.tally.checked.fetch_add(1, Ordering::Relaxed);
            if let Some((_, Some(etag))) = self.get(patient_path).await
                && etag == patient_before
            {
                self.tally.stale.fetch_add(1, Ordering::Relaxed);
                eprintln!("    stale: {patient_path} after its webhook");
            }
        }
        if search_check && let Some((read, _)) = &after {
            let id = read["id"].as_str().unwrap_or_default();
            if let Some(entries) = self.search_all(&self.pollers_query()).await
                && let Some(entry) = entries.iter().find(|r| r["id"] == id)
                && entry["meta"] != read["meta"]
            {
                eprintln!("    stale: {path} in the pollers' search after its webhook");
                stale = true;
            }
        }
        if stale {
            self.tally.stale.fetch_add(1, Ordering::Relaxed);
            eprintln!("    stale: {path} after its webhook ({change:?})");
        }
    }
}

/// The day's changes, by simulated time since the start.
fn schedule(day: &Day, window: Duration) -> (Vec<(Duration, Change)>, Vec<i64>) {
    let demo = &day.p.demo;
    let drchrono = demo.sim.dataset();
    let mut dice = Dice::new(7);
    let mut events = Vec::new();
    let mut seen_today = Vec::new();
    let since = |t: NaiveDateTime| (t - day.drchrono_start).to_std().ok();
    for a in &drchrono.appointments {
        let Some(patient) = a.patient else { continue };
        let Ok(start) = NaiveDateTime::parse_from_str(&a.scheduled_time, "%Y-%m-%dT%H:%M:%S") else {
            continue;
        };
        if start.date() != day.drchrono_start.date() || a.deleted_flag {
            continue;
        }
        seen_today.push(patient);
        if a.appt_is_break || !matches!(a.status.as_str(), "" | "Confirmed" | "Not Confirmed") {
            continue;
        }
        let end = start + TimeDelta::minutes(a.duration.max(5));
        let phone = dice.between(0, 3) == 0;
        let steps = [
            (start - TimeDelta::minutes(10), "Arrived", phone),
            (start, "In Session", false),
            (end, "Complete", false),
        ];
        for (when, status, phone) in steps {
            if let Some(offset) = since(when).filter(|o| *o < window) {
                events.push((
                    offset,
                    Change::DrChronoStatus {
                        appointment: a.id.clone(),
                        patient,
                        status,
                        phone,
                    },
                ));
            }
        }
        if let Some(offset) = since(end + TimeDelta::minutes(2)).filter(|o| *o < window) {
            events.push((offset, Change::NoteSearch { patient }));
        }
    }
    for v in &demo.zoom.dataset().visits {
        if v.status != vendor_sim::zoom::wire::VisitStatus::Scheduled {
            continue;
        }
        let Ok(start) = DateTime::parse_from_rfc3339(&v.scheduled_time) else {
            continue;
        };
        let start = start.with_timezone(&Utc);
        let end = start + TimeDelta::minutes(v.duration_minutes.max(5));
        let steps = [
            (start - TimeDelta::minutes(5), ZoomStep::Joins),
            (start, ZoomStep::Admit),
            (end, ZoomStep::End),
        ];
        for (when, step) in steps {
            if let Some(offset) = (when - day.zoom_start).to_std().ok().filter(|o| *o < window) {
                events.push((
                    offset,
                    Change::ZoomVisit {
                        visit: v.id.clone(),
                        step,
                    },
                ));
            }
        }
    }
    events.sort_by_key(|(offset, _)| *offset);
    seen_today.sort_unstable();
    seen_today.dedup();
    (events, seen_today)
}

/// The demo cache with every lifetime divided by `speed`.
fn scaled_cache(speed: u32) -> CacheSettings {
    let d = CacheSettings::default();
    CacheSettings {
        read_ttl: d.read_ttl.iter().map(|(t, ttl)| (*t, *ttl / speed)).collect(),
        search_ttl: d.search_ttl / speed,
        search_ttl_by_type: d.search_ttl_by_type.iter().map(|(t, ttl)| (*t, *ttl / speed)).collect(),
        stale_if_error: d.stale_if_error / speed,
        not_found_ttl: d.not_found_ttl / speed,
        announced_ttl: d.announced_ttl / speed,
        ..d
    }
}

/// Vendor calls so far: DrChrono, Zoom, Noa.
fn vendor_calls(p: &Practice) -> [u64; 3] {
    let demo = &p.demo;
    [
        demo.sim.hits(),
        demo.zoom.hits(),
        demo.noa.as_ref().map(|n| n.hits()).unwrap_or(0),
    ]
}

pub async fn run(opts: &Opts) -> Result<Section> {
    let speed = opts.speed.max(1);
    let window = Duration::from_secs(opts.sim_minutes.max(1) * 60);
    eprintln!(
        "  A clinic's {} simulated minutes at {speed}× ({} s real): {POLLERS} pollers, {APP_USERS} app users, the day's visits",
        opts.sim_minutes,
        window.as_secs() / u64::from(speed)
    );
    let dir = tempfile::tempdir()?;
    let settings = store::StoreSettings::sqlite(dir.path().join("gateway.db"))
        .with_sealing_key(store::SealingKey::generate().map_err(anyhow::Error::msg)?);
    let store = store::Store::open(&settings).await?;
    let cache = scaled_cache(speed);
    let p = Practice::start_configured(Cache::Demo, true, move |o| {
        o.store = Some(store);
        o.cache = Some(cache);
    })
    .await?;
    let anchor = p.demo.sim.config().anchor;
    // The simulator's "now": noon of the anchor day, practice time.
    let drchrono_start = anchor.and_hms_opt(12, 0, 0).context("noon of the anchor day")?;
    let zoom_start = p.demo.zoom.now();
    p.demo.sim.reset_hits();
    p.demo.zoom.reset_hits();
    if let Some(n) = &p.demo.noa {
        n.reset_hits();
    }
    let day = Arc::new(Day {
        p,
        clock: Clock {
            start: Instant::now(),
            speed,
        },
        drchrono_start,
        zoom_start,
        today: anchor.format("%Y-%m-%d").to_string(),
        tally: Tally::default(),
    });
    let (events, seen_today) = schedule(&day, window);
    let all_patients: Vec<i64> = day.p.demo.sim.dataset().patients.iter().map(|p| p.id).collect();
    eprintln!(
        "    {} scheduled changes and note searches; {} patients seen today",
        events.len(),
        seen_today.len()
    );

    let mut tasks = JoinSet::new();
    for i in 0..POLLERS {
        let day = day.clone();
        tasks.spawn(async move {
            let mut at = Duration::from_secs(60 * i as u64 / POLLERS as u64);
            while at < window {
                day.clock.sleep_until(at).await;
                day.search_all(&day.pollers_query()).await;
                at += Duration::from_secs(60);
            }
        });
    }
    for i in 0..APP_USERS {
        let day = day.clone();
        let (seen, all) = (seen_today.clone(), all_patients.clone());
        tasks.spawn(async move {
            let mut dice = Dice::new(1000 + i as u64);
            let mut at = Duration::from_secs(dice.between(0, 20 * 60));
            while at < window {
                day.clock.sleep_until(at).await;
                let from = if dice.between(0, 5) == 0 || seen.is_empty() {
                    &all
                } else {
                    &seen
                };
                if let Some(id) = dice.pick(from) {
                    day.get(&format!("Patient/drchrono-{id}")).await;
                    day.get(&format!("Appointment?patient=drchrono-{id}")).await;
                    day.get(&format!(
                        "DocumentReference?patient=drchrono-{id}&category=clinical-note"
                    ))
                    .await;
                }
                at += Duration::from_secs(dice.between(10 * 60, 30 * 60));
            }
        });
    }
    {
        let day = day.clone();
        tasks.spawn(async move {
            let mut changes = JoinSet::new();
            for (at, change) in events {
                day.clock.sleep_until(at).await;
                let day = day.clone();
                changes.spawn(async move { day.change(change).await });
            }
            while changes.join_next().await.is_some() {}
        });
    }
    // Vendor calls at every simulated minute, for the busiest hour.
    let mut per_minute = vec![[0u64; 3]];
    let mut minute = Duration::from_secs(60);
    let trace = std::env::var_os("BENCH_TRACE_SHAPES").is_some();
    let mut shapes_before = day.p.demo.sim.hits_by_shape();
    while minute <= window {
        day.clock.sleep_until(minute).await;
        per_minute.push(vendor_calls(&day.p));
        if trace {
            let now = day.p.demo.sim.hits_by_shape();
            let diff: Vec<String> = now
                .iter()
                .filter_map(|(k, n)| {
                    let d = n - shapes_before.get(k).copied().unwrap_or(0);
                    (d > 0).then(|| format!("{k} {d}"))
                })
                .collect();
            eprintln!("      min {}: {}", minute.as_secs() / 60, diff.join("; "));
            shapes_before = now;
        }
        if minute.as_secs().is_multiple_of(600) {
            let t = &day.tally;
            eprintln!(
                "    {:>3} min: DrChrono {}, Zoom {}, Noa {} calls; {} requests, {} changes, {} stale",
                minute.as_secs() / 60,
                per_minute.last().map(|c| c[0]).unwrap_or(0),
                per_minute.last().map(|c| c[1]).unwrap_or(0),
                per_minute.last().map(|c| c[2]).unwrap_or(0),
                t.requests.load(Ordering::Relaxed),
                t.changes.load(Ordering::Relaxed),
                t.stale.load(Ordering::Relaxed)
            );
        }
        minute += Duration::from_secs(60);
    }
    // Changes under way finish (their checks wait for webhooks); the load stops with the window.
    let finish = tokio::time::timeout(Duration::from_secs(60), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finish.is_err() {
        tasks.abort_all();
    }
    let metrics = reqwest::get(format!("{}/metrics", day.p.base))
        .await
        .context("the gateway's /metrics")?
        .text()
        .await?;
    let hits: f64 = series(&metrics, "fhir_gateway_cache_hits_total").values().sum();
    let misses: f64 = series(&metrics, "fhir_gateway_cache_misses_total").values().sum();
    let failed_hooks = day
        .p
        .demo
        .sim
        .webhook_log()
        .iter()
        .filter(|d| {
            d.event != vendor_sim::drchrono::VERIFICATION
                && d.outcome != vendor_sim::drchrono::DeliveryOutcome::Delivered
        })
        .count()
        + day
            .p
            .demo
            .zoom
            .webhook_log()
            .iter()
            .filter(|d| {
                !matches!(
                    d.outcome,
                    vendor_sim::zoom::DeliveryOutcome::Delivered | vendor_sim::zoom::DeliveryOutcome::Validated
                )
            })
            .count();
    let by_kind = drchrono_calls_by_kind(&day.p.demo.sim.hits_by_shape());
    day.p.stop();

    // The busiest 60 simulated minutes (or the run, scaled to an hour, when it is shorter).
    let minutes = per_minute.len() - 1;
    let span = minutes.min(60);
    let hourly = |vendor: usize| -> f64 {
        let busiest = (span..=minutes)
            .map(|end| per_minute[end][vendor] - per_minute[end - span][vendor])
            .max()
            .unwrap_or(0);
        busiest as f64 * 60.0 / span.max(1) as f64
    };
    let [dr, zoom, noa] = [hourly(0), hourly(1), hourly(2)];
    let t = &day.tally;
    let (requests, errors, stale, checked) = (
        t.requests.load(Ordering::Relaxed),
        t.errors.load(Ordering::Relaxed),
        t.stale.load(Ordering::Relaxed),
        t.checked.load(Ordering::Relaxed),
    );
    let hit_rate = if hits + misses > 0.0 {
        hits / (hits + misses)
    } else {
        0.0
    };
    let per_hour = if span < 60 {
        format!("calls per simulated hour (the {span}-minute run scaled to 60)")
    } else {
        "calls in the busiest simulated hour".to_owned()
    };
    let what = format!("A clinic's day at {speed}× ({POLLERS} pollers, {APP_USERS} app users, the visits' webhooks)");
    let mut section = Section::default();
    section.rows.push(
        Row::new(11, &what, format!("DrChrono {per_hour}"))
            .gateway(count(dr))
            .baseline(format!("{} (DrChrono's allowance)", count(DRCHRONO_HOURLY)))
            .comparison(format!("{:.0} % of the allowance", dr / DRCHRONO_HOURLY * 100.0))
            .target(format!(
                "≤ 500 — {}",
                if dr <= DRCHRONO_HOURLY { "met" } else { "missed" }
            )),
    );
    section
        .rows
        .push(Row::new(11, &what, format!("Zoom and Noa {per_hour}")).gateway(format!(
            "Zoom {}, Noa {}",
            count(zoom),
            count(noa)
        )));
    section.rows.push(
        Row::new(11, &what, "stale answers after a change's webhook (changes checked)")
            .gateway(format!("{stale} of {checked}"))
            .target(format!(
                "0 — {}",
                if stale == 0 && checked > 0 { "met" } else { "missed" }
            )),
    );
    section.rows.push(
        Row::new(11, &what, "gateway requests, errors; cache hit rate").gateway(format!(
            "{} requests, {errors} errors; {:.1} % hits",
            count(requests as f64),
            hit_rate * 100.0
        )),
    );
    let unchecked = t.unchecked.load(Ordering::Relaxed);
    if unchecked > 0 || failed_hooks > 0 {
        section.notes.push(format!(
            "Clinic day: {unchecked} changes could not be made or checked; {failed_hooks} webhooks were not delivered"
        ));
    }
    let series_text: Vec<String> = (1..=minutes)
        .step_by(10)
        .map(|m| format!("{} min {}", m - 1, per_minute[m - 1][0]))
        .collect();
    section.notes.push(format!(
        "Clinic day, DrChrono calls so far by simulated minute: {}; at the end {}",
        series_text.join(", "),
        per_minute[minutes][0]
    ));
    section.notes.push(format!(
        "Clinic day, DrChrono calls by kind over the run: {}",
        by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if errors > 0 && requests == errors {
        return Err(anyhow!("every request failed"));
    }
    Ok(section)
}

/// DrChrono calls by collection and kind, lists with their query's parameter names
/// (`appointments list (date, verbose)`, `patients read`), most first.
fn drchrono_calls_by_kind(hits: &std::collections::BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    for (shape, n) in hits {
        let (path, query) = shape.split_once('?').unwrap_or((shape, ""));
        let mut parts = path.trim_start_matches("/api/").trim_end_matches('/').split('/');
        let collection = parts.next().unwrap_or_default();
        let kind = if parts.next().is_some() {
            "read".to_owned()
        } else if query.is_empty() {
            "list".to_owned()
        } else {
            format!("list ({})", query.replace('&', ", "))
        };
        *kinds.entry(format!("{collection} {kind}")).or_default() += n;
    }
    let mut kinds: Vec<(String, u64)> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    kinds
}
