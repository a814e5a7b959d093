//! Item 9: what the audit trail costs. The same cached `Patient/{id}` read under `wrk` against two
//! practices that differ only in `audit.enabled` (both keep their state in a SQLite store), run
//! alternately; the audit events the first writes per second while loaded (read from its
//! `/metrics`), whether any was lost, and how fast the store appends batches of events alone.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::load::{cached_patient, load};
use crate::practice::{Cache, Practice};
use crate::report::Row;
use crate::stats::{count, median, millis, ms, ratio};
use crate::wrk::WrkReport;
use crate::{Opts, Section};

const CONNECTIONS: u32 = 32;

pub async fn run(opts: &Opts) -> Result<Section> {
    let (dir_on, dir_off) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let on = Practice::start_stored(Cache::Demo, dir_on.path(), true).await?;
    let off = Practice::start_stored(Cache::Demo, dir_off.path(), false).await?;
    let mut section = Section::default();
    let result = compare(&on, &off, opts, &mut section).await;
    on.stop();
    off.stop();
    result?;
    append_rate(dir_on.path(), &mut section).await?;
    Ok(section)
}

/// A counter or gauge of the gateway's `/metrics` (no labels).
async fn metric(p: &Practice, name: &str) -> Result<f64> {
    let text = p.http.get(format!("{}/metrics", p.base)).send().await?.text().await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("{name} is not in /metrics"))
}

async fn compare(on: &Practice, off: &Practice, opts: &Opts, section: &mut Section) -> Result<()> {
    let path = cached_patient(on).await?;
    cached_patient(off).await?;
    let (url_on, url_off) = (on.fhir(&path), off.fhir(&path));
    eprintln!("  cached `{path}`, {CONNECTIONS} connections, audit on vs off");
    load(&url_on, CONNECTIONS, 1, on.wrk_token()).await?;
    load(&url_off, CONNECTIONS, 1, off.wrk_token()).await?;
    let mut with: Vec<WrkReport> = Vec::new();
    let mut without: Vec<WrkReport> = Vec::new();
    let mut written_per_sec: Vec<f64> = Vec::new();
    for run in 0..opts.runs {
        let measure_on = async {
            let before = metric(on, "fhir_gateway_audit_events_total").await?;
            let t = Instant::now();
            let report = load(&url_on, CONNECTIONS, opts.duration, on.wrk_token()).await?;
            let after = metric(on, "fhir_gateway_audit_events_total").await?;
            anyhow::Ok((report, (after - before) / t.elapsed().as_secs_f64()))
        };
        if run % 2 == 0 {
            let (report, rate) = measure_on.await?;
            with.push(report);
            written_per_sec.push(rate);
            without.push(load(&url_off, CONNECTIONS, opts.duration, off.wrk_token()).await?);
        } else {
            without.push(load(&url_off, CONNECTIONS, opts.duration, off.wrk_token()).await?);
            let (report, rate) = measure_on.await?;
            with.push(report);
            written_per_sec.push(rate);
        }
        eprintln!(
            "    run {}: audit on {} req/s ({} events written/s) | off {} req/s",
            run + 1,
            count(with[run].requests_per_sec),
            count(written_per_sec[run]),
            count(without[run].requests_per_sec)
        );
    }
    // Every request is an event: the queue drains, and nothing was lost.
    let drained = Instant::now();
    while metric(on, "fhir_gateway_audit_queue").await? > 0.0 {
        if drained.elapsed() > Duration::from_secs(60) {
            section
                .notes
                .push("the audit queue had not drained 60 s after the load".to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_time = drained.elapsed();
    let text = on.http.get(format!("{}/metrics", on.base)).send().await?.text().await?;
    let lost: f64 = text
        .lines()
        .filter(|l| l.starts_with("fhir_gateway_audit_events_lost_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let failures = metric(on, "fhir_gateway_audit_write_failures_total").await?;

    let per_run = |f: &dyn Fn(&WrkReport) -> f64| -> (f64, f64, f64) {
        let a: Vec<f64> = with.iter().map(f).collect();
        let b: Vec<f64> = without.iter().map(f).collect();
        let r: Vec<f64> = a.iter().zip(&b).map(|(a, b)| a / b).collect();
        (median(&a), median(&b), median(&r))
    };
    let what = format!("Cached `Patient/{{id}}` read, {CONNECTIONS} connections, audit trail on (SQLite)");
    let (a, b, r) = per_run(&|r| r.requests_per_sec);
    section.rows.push(
        Row::new(9, what.clone(), "req/s")
            .gateway(count(a))
            .baseline(format!("{} (audit off)", count(b)))
            .comparison(ratio(r))
            .target("≥ 0.90×"),
    );
    let (a, b, r) = per_run(&|r| ms(&r.p99));
    section.rows.push(
        Row::new(9, what, "p99 latency")
            .gateway(millis(a))
            .baseline(format!("{} (audit off)", millis(b)))
            .comparison(ratio(r)),
    );
    section.rows.push(
        Row::new(9, "Audit events written while loaded", "events/s")
            .gateway(count(median(&written_per_sec)))
            .baseline(format!(
                "lost {lost:.0}, failed writes {failures:.0}, queue drained {:.1} s after the load",
                drain_time.as_secs_f64()
            )),
    );
    Ok(())
}

/// The store alone: `audit_append` of batches of 1 000 events (the writer's largest) to a fresh
/// SQLite file, for 3 s.
async fn append_rate(dir: &std::path::Path, section: &mut Section) -> Result<()> {
    let store = store::Store::open(&store::StoreSettings::sqlite(dir.join("append.db"))).await?;
    let row = |i: i64| store::AuditRow {
        id: 0,
        recorded_ms: 1_800_000_000_000 + i,
        type_code: "rest".into(),
        subtype: "read".into(),
        action: "R".into(),
        outcome: "0".into(),
        client_id: Some("bench".into()),
        user_ref: Some("Practitioner/drchrono-1".into()),
        patient: Some(format!("Patient/drchrono-{}", i % 500)),
        entity: Some(format!("Patient/drchrono-{}", i % 500)),
        ip: Some("127.0.0.1".into()),
        // What the gateway stores beside the columns for a read (its AuditEvent is built when read).
        resource: format!("{{\"m\":\"GET\",\"p\":\"/fhir/Patient/drchrono-{}\"}}", i % 500),
    };
    let start = Instant::now();
    let mut written = 0i64;
    while start.elapsed() < Duration::from_secs(3) {
        let batch: Vec<store::AuditRow> = (written..written + 1000).map(row).collect();
        written += i64::try_from(store.audit_append(&batch).await?)?;
    }
    let rate = written as f64 / start.elapsed().as_secs_f64();
    section.rows.push(
        Row::new(
            9,
            "The store alone: audit events (reads) appended in batches of 1 000 (SQLite)",
            "events/s",
        )
        .gateway(count(rate)),
    );
    store.close().await;
    Ok(())
}
