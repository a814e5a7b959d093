//! Item 7: the memory of a gateway whose cache is full at its bound. The practice runs in a child
//! process (`bench serve-child --cache-mb N`, see `child.rs`), filled over HTTP; its VmRSS and VmHWM
//! come from `/proc/<pid>/status`, the cache's own weight from `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use futures::StreamExt;
use serde_json::Value;

use crate::child::{ChildGateway, Memory};
use crate::practice::get_ok;
use crate::report::Row;
use crate::stats::{count, median, mib};
use crate::{Opts, Section};

/// The types read and searched to fill the cache.
pub(crate) const TYPES: &[&str] = &[
    "Patient",
    "Practitioner",
    "Location",
    "Appointment",
    "Encounter",
    "DocumentReference",
    "Schedule",
    "Slot",
];

/// Requests in flight while filling.
const CONCURRENCY: usize = 8;

/// One run's figures.
struct Filled {
    before: Memory,
    after: Memory,
    /// `fhir_gateway_cache_bytes` per source.
    cache_bytes: BTreeMap<String, f64>,
    evictions: f64,
    /// FHIR JSON bytes the gateway answered while filling, and the requests.
    served: u64,
    requests: u64,
}

pub async fn run(opts: &Opts) -> Result<Section> {
    let mb = opts.cache_mb;
    let what = format!(
        "Gateway process memory, cache bound {mb} MiB (shared by the sources), after reading and searching every type"
    );
    eprintln!("  {what}");
    let mut runs = Vec::new();
    for run in 0..opts.runs {
        let child = tokio::task::spawn_blocking(move || ChildGateway::spawn(mb)).await??;
        let filled = fill(&child).await;
        tokio::task::spawn_blocking(move || drop(child)).await?;
        let f = filled?;
        eprintln!(
            "    run {}: VmRSS {} → {}, VmHWM {}, cache {} ({} evictions), {} requests, {} served",
            run + 1,
            mib(f.before.rss as f64),
            mib(f.after.rss as f64),
            mib(f.after.hwm as f64),
            f.cache_bytes
                .iter()
                .map(|(s, b)| format!("{s} {}", mib(*b)))
                .collect::<Vec<_>>()
                .join(", "),
            count(f.evictions),
            count(f.requests as f64),
            mib(f.served as f64),
        );
        runs.push(f);
    }
    let med = |f: &dyn Fn(&Filled) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let mut section = Section::default();
    section.rows.push(
        Row::new(7, what.clone(), "VmRSS after start-up")
            .gateway(mib(med(&|f| f.before.rss as f64)))
            .baseline(format!("bound {mb} MiB")),
    );
    section.rows.push(
        Row::new(7, what.clone(), "VmRSS after filling / VmHWM (peak)")
            .gateway(format!(
                "{} / {}",
                mib(med(&|f| f.after.rss as f64)),
                mib(med(&|f| f.after.hwm as f64))
            ))
            .comparison(format!(
                "+{} over start-up",
                mib(med(&|f| f.after.rss as f64 - f.before.rss as f64))
            )),
    );
    let sources: Vec<String> = runs
        .first()
        .map(|f| f.cache_bytes.keys().cloned().collect())
        .unwrap_or_default();
    let per_source = sources
        .iter()
        .map(|s| format!("{s} {}", mib(med(&|f| f.cache_bytes.get(s).copied().unwrap_or(0.0)))))
        .collect::<Vec<_>>()
        .join(", ");
    let total = med(&|f| f.cache_bytes.values().sum());
    let bound = (mb * 1024 * 1024) as f64;
    if total > bound {
        section.notes.push(format!(
            "item 7: the caches report {:.2} MiB held, over their bound of {mb} MiB (1 s after filling)",
            total / (1024.0 * 1024.0)
        ));
    }
    section.rows.push(
        Row::new(7, what, "`fhir_gateway_cache_bytes` (sum; per source)")
            .gateway(format!("{} ({per_source})", mib(total)))
            .baseline(format!("{mb} MiB bound for all {} sources", sources.len()))
            .comparison(format!(
                "{} evictions; {} of FHIR JSON served in {} requests",
                count(med(&|f| f.evictions)),
                mib(med(&|f| f.served as f64)),
                count(med(&|f| f.requests as f64))
            )),
    );
    Ok(section)
}

/// Reads and searches everything the practice has, then takes the figures.
async fn fill(child: &ChildGateway) -> Result<Filled> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = child.status()?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", child.token).parse()?,
    );
    let http = reqwest::Client::builder().default_headers(headers).build()?;
    let fhir = format!("{}/fhir", child.base);
    let served = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let get = |url: String| {
        let http = http.clone();
        let served = served.clone();
        let requests = requests.clone();
        async move {
            let result = get_ok(&http, &url).await;
            requests.fetch_add(1, Ordering::Relaxed);
            if let Ok((body, _)) = &result {
                served.fetch_add(body.len() as u64, Ordering::Relaxed);
            }
            result
        }
    };

    // Every resource of every type by search (following `next`), then each by id.
    let mut ids = Vec::new();
    let mut patients = Vec::new();
    for t in TYPES {
        let mut next = Some(format!("{fhir}/{t}?_count=100"));
        let mut pages = 0;
        while let Some(url) = next.take() {
            let (body, _) = get(url).await?;
            let bundle: Value = serde_json::from_slice(&body)?;
            for e in bundle["entry"].as_array().into_iter().flatten() {
                if let Some(id) = e["resource"]["id"].as_str() {
                    ids.push(format!("{t}/{id}"));
                    if *t == "Patient" && id.starts_with("drchrono-") {
                        patients.push(id.to_owned());
                    }
                }
            }
            next = bundle["link"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["relation"] == "next")
                .and_then(|l| l["url"].as_str())
                .map(str::to_owned);
            pages += 1;
            if pages > 200 {
                bail!("{t}: paging does not end");
            }
        }
    }
    let mut urls: Vec<String> = ids.iter().map(|id| format!("{fhir}/{id}")).collect();
    // Search pages per patient, for the search side of the cache.
    for p in &patients {
        urls.push(format!("{fhir}/Appointment?patient={p}"));
        urls.push(format!("{fhir}/DocumentReference?patient={p}"));
        urls.push(format!("{fhir}/Encounter?patient={p}"));
    }
    let failures: Vec<String> = futures::stream::iter(urls)
        .map(get)
        .buffer_unordered(CONCURRENCY)
        .filter_map(|r| async move { r.err().map(|e| e.to_string()) })
        .collect()
        .await;
    if !failures.is_empty() {
        eprintln!(
            "    {} requests failed while filling (first: {})",
            failures.len(),
            failures[0]
        );
    }
    // Let the cache's pending maintenance (evictions past the bound) run.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = child.status()?;
    let metrics = reqwest::get(format!("{}/metrics", child.base)).await?.text().await?;
    let cache_bytes = series(&metrics, "fhir_gateway_cache_bytes");
    let evictions = series(&metrics, "fhir_gateway_cache_evictions_total").values().sum();
    Ok(Filled {
        before,
        after,
        cache_bytes,
        evictions,
        served: served.load(Ordering::Relaxed),
        requests: requests.load(Ordering::Relaxed),
    })
}

/// `name{source="x"} value` lines of a Prometheus text page, by source.
pub(crate) fn series(text: &str, name: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let Some(rest) = rest.strip_prefix('{') else { continue };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let source = labels
            .split(',')
            .find_map(|l| l.strip_prefix("source=\""))
            .map(|s| s.trim_end_matches('"').to_owned())
            .unwrap_or_default();
        if let Ok(v) = value.trim().parse::<f64>() {
            *out.entry(source).or_insert(0.0) += v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_series_by_source() {
        let text = "# HELP fhir_gateway_cache_bytes x\n# TYPE fhir_gateway_cache_bytes gauge\n\
                    fhir_gateway_cache_bytes{source=\"drchrono\"} 123\n\
                    fhir_gateway_cache_bytes{source=\"zoom\"} 4.5e3\n\
                    fhir_gateway_cache_bytes_other{source=\"zoom\"} 9\n";
        let s = series(text, "fhir_gateway_cache_bytes");
        assert_eq!(s.len(), 2);
        assert_eq!(s["drchrono"], 123.0);
        assert_eq!(s["zoom"], 4500.0);
    }
}
