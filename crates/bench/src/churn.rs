//! Item 10: the gateway's memory under sustained churn at full load (issue P6: "peak RSS ≤ the
//! cache bound + 64 MiB over a 10-minute churn at full load"). The practice runs in a child process
//! (`bench serve-child --cache-mb N`, see `child.rs`) with a cache bound of `--cache-mb` MiB. Its
//! VmRSS is read from `/proc/<pid>/status` right after start-up, before any request. The bench then
//! lists every resource of every type (searches following `next`, as item 7 does) and, for
//! `--churn-secs` seconds (default 600), keeps 32 requests in flight: each of 32 tasks picks its next
//! request at random (xorshift, a fixed seed per task) from a key space several times the bound —
//! every resource by id, the first search page of every type at four page sizes, three searches per
//! DrChrono patient at two page sizes, and walks through every page of each type following the
//! `next` links the gateway signs (so they are always fresh) — so that the cache keeps evicting and
//! refilling. VmRSS is read every second: its maximum, its value at each minute and at the end, with
//! VmHWM; requests, answers other than 2xx and requests with no answer are counted; the cache's own
//! `fhir_gateway_cache_bytes`, evictions, hits and misses come from `/metrics` at the end.
//!
//! Run once, whatever `--runs` says: ten minutes of one run is long enough for a figure, and the
//! per-minute series (in the notes) shows the trend a median of runs would hide.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use serde_json::Value;

use crate::child::{ChildGateway, Memory};
use crate::practice::get_ok;
use crate::report::Row;
use crate::rss::{TYPES, series};
use crate::stats::{Dice, count, mib};
use crate::{Opts, Section};

/// The per-patient searches (`{type}?patient=drchrono-…`).
const PATIENT_SEARCHES: &[&str] = &["Appointment", "DocumentReference", "Encounter"];

/// Page sizes of the first search page of every type.
const PAGE_SIZES: &[u32] = &[10, 25, 50, 100];

/// The page size of the walks through every page of a type.
const WALK_PAGE_SIZE: u32 = 50;

/// Pages a listing or a walk follows at most.
const MAX_PAGES: usize = 200;

/// Requests in flight during the churn ("full load").
const CONCURRENCY: usize = 32;

/// The headroom over start-up the issue allows beyond the cache bound, in MiB.
const HEADROOM_MIB: u64 = 64;

/// The seed of the tasks' random orders (task `i` gets a seed of its own derived from it).
const SEED: u64 = 0x5EED_C4A2_0000_0010;

/// How often the child's memory is read.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

const MIB: f64 = 1024.0 * 1024.0;

/// One request of the key space.
enum Work {
    /// One GET: a read by id or a first search page.
    Get(String),
    /// A search followed through its `next` links to the end.
    Walk(String),
}

/// What the key space holds.
#[derive(Default)]
struct KeySpace {
    reads: usize,
    searches: usize,
    walks: usize,
    /// The bytes of the listing's search pages (`_count=100`): roughly every resource once.
    listed_bytes: u64,
}

/// The churn's counts, shared by the tasks.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    /// Bytes of the answers' bodies.
    bytes: AtomicU64,
    /// Requests with no (complete) answer: connection errors, timeouts.
    failed: AtomicU64,
    /// Answers other than 2xx, by status.
    statuses: Mutex<BTreeMap<u16, u64>>,
    /// The first problem met, for the notes.
    first_problem: Mutex<Option<String>>,
}

impl Tally {
    fn problem(&self, describe: impl FnOnce() -> String) {
        if let Ok(mut first) = self.first_problem.lock()
            && first.is_none()
        {
            *first = Some(describe());
        }
    }

    fn non_2xx(&self) -> BTreeMap<u16, u64> {
        self.statuses.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// What the load tasks share.
struct Shared {
    http: reqwest::Client,
    work: Vec<Work>,
    deadline: Instant,
    stop: AtomicBool,
    tally: Tally,
}

/// The child's memory as sampled during the churn.
struct Sampled {
    /// The highest VmRSS read.
    peak: u64,
    samples: usize,
    /// VmRSS at the end of each full minute.
    per_minute: Vec<u64>,
}

/// The run's figures.
struct Churn {
    start: Memory,
    end: Memory,
    sampled: Sampled,
    elapsed: Duration,
    keys: KeySpace,
    requests: u64,
    bytes: u64,
    failed: u64,
    non_2xx: BTreeMap<u16, u64>,
    first_problem: Option<String>,
    /// `fhir_gateway_cache_bytes` per source, at the end.
    cache_bytes: BTreeMap<String, f64>,
    evictions: f64,
    hits: f64,
    misses: f64,
}

/// Item 10: one churn of `opts.churn_secs` seconds against a child gateway with a cache bound of
/// `opts.cache_mb` MiB (`opts.runs` is ignored: see the module's documentation).
pub async fn run(opts: &Opts) -> Result<Section> {
    let mb = opts.cache_mb;
    let secs = opts.churn_secs;
    eprintln!(
        "  churn for {}: {CONCURRENCY} requests in flight, cache bound {mb} MiB (one run)",
        span(secs)
    );
    let child = tokio::task::spawn_blocking(move || ChildGateway::spawn(mb)).await??;
    let churned = churn(&child, Duration::from_secs(secs)).await;
    tokio::task::spawn_blocking(move || drop(child)).await?;
    Ok(section(&churned?, mb, secs))
}

/// Start-up memory, the listing, the churn, the end figures.
async fn churn(child: &ChildGateway, length: Duration) -> Result<Churn> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = child.status()?;
    eprintln!("    VmRSS after start-up: {}", mib(start.rss as f64));

    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", child.token).parse()?,
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(CONCURRENCY)
        .timeout(Duration::from_secs(30))
        .build()?;
    let fhir = format!("{}/fhir", child.base);
    let (work, keys) = key_space(&http, &fhir).await?;
    if work.is_empty() {
        bail!("the practice lists no resources: nothing to churn");
    }
    eprintln!(
        "    key space: {} reads by id, {} search pages, {} walks through every page of a type ({} listed)",
        keys.reads,
        keys.searches,
        keys.walks,
        mib(keys.listed_bytes as f64)
    );

    let started = Instant::now();
    let shared = Arc::new(Shared {
        http,
        work,
        deadline: started + length,
        stop: AtomicBool::new(false),
        tally: Tally::default(),
    });
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let seed = SEED ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            tokio::spawn(worker(shared.clone(), seed))
        })
        .collect();
    let sampled = sample(child.pid(), started, &shared).await;
    shared.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await?;
    }
    let elapsed = started.elapsed();
    let mut sampled = sampled?;
    let end = child.status()?;
    sampled.peak = sampled.peak.max(end.rss);
    sampled.samples += 1;
    let full_minutes = (length.as_secs() / 60) as usize;
    if sampled.per_minute.len() < full_minutes {
        sampled.per_minute.push(end.rss);
    }
    eprintln!(
        "    end: VmRSS {}, peak {}, VmHWM {}",
        mib(end.rss as f64),
        mib(sampled.peak as f64),
        mib(end.hwm as f64)
    );

    // Let the cache's pending maintenance run before reading its figures.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let metrics = reqwest::get(format!("{}/metrics", child.base)).await?.text().await?;
    let total = |name: &str| -> f64 { series(&metrics, name).values().sum() };
    let tally = &shared.tally;
    Ok(Churn {
        start,
        end,
        sampled,
        elapsed,
        keys,
        requests: tally.requests.load(Ordering::Relaxed),
        bytes: tally.bytes.load(Ordering::Relaxed),
        failed: tally.failed.load(Ordering::Relaxed),
        non_2xx: tally.non_2xx(),
        first_problem: tally.first_problem.lock().ok().and_then(|p| p.clone()),
        cache_bytes: series(&metrics, "fhir_gateway_cache_bytes"),
        evictions: total("fhir_gateway_cache_evictions_total"),
        hits: total("fhir_gateway_cache_hits_total"),
        misses: total("fhir_gateway_cache_misses_total"),
    })
}

/// Lists every resource of every type (following `next`) and builds the key space from them.
async fn key_space(http: &reqwest::Client, fhir: &str) -> Result<(Vec<Work>, KeySpace)> {
    let mut keys = KeySpace::default();
    let mut work = Vec::new();
    let mut patients = Vec::new();
    for t in TYPES {
        let mut next = Some(format!("{fhir}/{t}?_count=100"));
        let mut pages = 0;
        while let Some(url) = next.take() {
            let (body, _) = get_ok(http, &url).await?;
            keys.listed_bytes += body.len() as u64;
            let bundle: Value = serde_json::from_slice(&body)?;
            for e in bundle["entry"].as_array().into_iter().flatten() {
                if let Some(id) = e["resource"]["id"].as_str() {
                    work.push(Work::Get(format!("{fhir}/{t}/{id}")));
                    keys.reads += 1;
                    if *t == "Patient" && id.starts_with("drchrono-") {
                        patients.push(id.to_owned());
                    }
                }
            }
            next = next_link(&bundle);
            pages += 1;
            if pages > MAX_PAGES {
                bail!("{t}: paging does not end");
            }
        }
        for n in PAGE_SIZES {
            work.push(Work::Get(format!("{fhir}/{t}?_count={n}")));
            keys.searches += 1;
        }
        work.push(Work::Walk(format!("{fhir}/{t}?_count={WALK_PAGE_SIZE}")));
        keys.walks += 1;
    }
    for p in &patients {
        for t in PATIENT_SEARCHES {
            work.push(Work::Get(format!("{fhir}/{t}?patient={p}")));
            work.push(Work::Get(format!("{fhir}/{t}?patient={p}&_count=10")));
            keys.searches += 2;
        }
    }
    Ok((work, keys))
}

/// The `next` link of a searchset Bundle.
fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

/// One of the load tasks: random requests of the key space until the deadline (or a stop).
async fn worker(shared: Arc<Shared>, seed: u64) {
    let mut rng = Dice::new(seed);
    let len = shared.work.len();
    while Instant::now() < shared.deadline && !shared.stop.load(Ordering::Relaxed) {
        match &shared.work[rng.below(len)] {
            Work::Get(url) => {
                fetch(&shared, url).await;
            }
            Work::Walk(first) => {
                let mut next = Some(first.clone());
                let mut pages = 0;
                while let Some(url) = next.take() {
                    let Some(body) = fetch(&shared, &url).await else {
                        break;
                    };
                    pages += 1;
                    if pages >= MAX_PAGES || Instant::now() >= shared.deadline {
                        break;
                    }
                    next = match serde_json::from_slice::<Value>(&body) {
                        Ok(bundle) => next_link(&bundle),
                        Err(e) => {
                            shared
                                .tally
                                .problem(|| format!("GET {url}: the answer is not JSON: {e}"));
                            None
                        }
                    };
                }
            }
        }
    }
}

/// One GET, counted; the body of a 2xx.
async fn fetch(shared: &Shared, url: &str) -> Option<Bytes> {
    let tally = &shared.tally;
    tally.requests.fetch_add(1, Ordering::Relaxed);
    let answer = match shared.http.get(url).send().await {
        Ok(a) => a,
        Err(e) => {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            tally.problem(|| format!("GET {url}: {e}"));
            return None;
        }
    };
    let status = answer.status();
    let body = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            tally.problem(|| format!("GET {url}: {status}, body unreadable: {e}"));
            return None;
        }
    };
    tally.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    if status.is_success() {
        return Some(body);
    }
    if let Ok(mut statuses) = tally.statuses.lock() {
        *statuses.entry(status.as_u16()).or_insert(0) += 1;
    }
    tally.problem(|| {
        let shown = &body[..body.len().min(300)];
        format!("GET {url}: {status}: {}", String::from_utf8_lossy(shown))
    });
    None
}

/// Reads the child's VmRSS every second until the deadline (or until the workers stop); prints a
/// progress line each minute.
async fn sample(pid: u32, started: Instant, shared: &Shared) -> Result<Sampled> {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut s = Sampled {
        peak: 0,
        samples: 0,
        per_minute: Vec::new(),
    };
    let mut next_minute = started + Duration::from_secs(60);
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= shared.deadline {
            return Ok(s);
        }
        let m = Memory::of(pid)?;
        s.peak = s.peak.max(m.rss);
        s.samples += 1;
        if now >= next_minute {
            s.per_minute.push(m.rss);
            next_minute += Duration::from_secs(60);
            let tally = &shared.tally;
            let requests = tally.requests.load(Ordering::Relaxed);
            let non_2xx: u64 = tally.non_2xx().values().sum();
            eprintln!(
                "    minute {}: VmRSS {}, peak so far {}, VmHWM {}; {} requests ({} req/s), {} non-2xx, {} unanswered",
                s.per_minute.len(),
                mib(m.rss as f64),
                mib(s.peak as f64),
                mib(m.hwm as f64),
                count(requests as f64),
                count(requests as f64 / started.elapsed().as_secs_f64()),
                count(non_2xx as f64),
                count(tally.failed.load(Ordering::Relaxed) as f64),
            );
        }
    }
}

/// The item's rows and notes.
fn section(c: &Churn, mb: u64, secs: u64) -> Section {
    let mut section = Section::default();
    let length = span(secs);
    let what = format!(
        "Gateway process under churn: {CONCURRENCY} requests in flight for {length}, cache bound {mb} MiB \
         (shared by the sources); random reads by id ({}), search pages ({}) and walks through every page \
         of a type ({}); one run",
        c.keys.reads, c.keys.searches, c.keys.walks
    );
    let start = c.start.rss as f64;
    let end = c.end.rss as f64;
    let peak = c.sampled.peak as f64;
    let hwm = c.end.hwm as f64;
    let allowed = (mb + HEADROOM_MIB) as f64 * MIB;
    let met = peak - start <= allowed;
    section.rows.push(
        Row::new(
            10,
            what.clone(),
            format!("Peak VmRSS over the {length} churn (read every second); VmHWM at the end"),
        )
        .gateway(format!("{} (VmHWM {})", mib(peak), mib(hwm)))
        .baseline(format!("{} after start-up", mib(start)))
        .comparison(format!("{} over start-up (bound {mb} MiB)", signed_mib(peak - start)))
        .target(format!(
            "≤ bound + {HEADROOM_MIB} MiB over start-up (+{} MiB): {}",
            mb + HEADROOM_MIB,
            if met { "met" } else { "not met" }
        )),
    );
    if met && hwm - start > allowed {
        section.notes.push(format!(
            "item 10: VmHWM ({}) is {} over start-up, past the bound + {HEADROOM_MIB} MiB, while the VmRSS read \
             every second stayed within it: a peak between reads, or while listing the resources",
            mib(hwm),
            signed_mib(hwm - start)
        ));
    }

    match c.sampled.per_minute.first() {
        Some(&minute_1) if secs > 60 => {
            let minute_1 = minute_1 as f64;
            let minutes = (c.elapsed.as_secs_f64() - 60.0) / 60.0;
            section.rows.push(
                Row::new(
                    10,
                    what.clone(),
                    "VmRSS growth from minute 1 to the end (flat: no leak)",
                )
                .gateway(format!("{} at the end", mib(end)))
                .baseline(format!("{} at minute 1", mib(minute_1)))
                .comparison(format!(
                    "{} in {minutes:.1} min ({}/min)",
                    signed_mib(end - minute_1),
                    signed_mib((end - minute_1) / minutes)
                )),
            );
        }
        _ => section
            .notes
            .push("item 10: the churn lasted a minute or less: no growth from minute 1 to the end".into()),
    }

    let non_2xx: u64 = c.non_2xx.values().sum();
    let statuses = c
        .non_2xx
        .iter()
        .map(|(s, n)| format!("{s} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let seconds = c.elapsed.as_secs_f64();
    section.rows.push(
        Row::new(
            10,
            what.clone(),
            "requests/s; answers other than 2xx; requests with no answer",
        )
        .gateway(format!("{} req/s", count(c.requests as f64 / seconds)))
        .baseline(format!(
            "{} requests in {seconds:.0} s, {CONCURRENCY} at a time; {} of FHIR JSON served",
            count(c.requests as f64),
            mib(c.bytes as f64)
        ))
        .comparison(if non_2xx == 0 {
            format!("0 non-2xx, {} unanswered", count(c.failed as f64))
        } else {
            format!(
                "{} non-2xx ({statuses}), {} unanswered",
                count(non_2xx as f64),
                count(c.failed as f64)
            )
        }),
    );
    if let Some(first) = &c.first_problem {
        section
            .notes
            .push(format!("item 10: first failed request of the churn: {first}"));
    }

    let cached: f64 = c.cache_bytes.values().sum();
    let per_source = c
        .cache_bytes
        .iter()
        .map(|(s, b)| format!("{s} {}", mib(*b)))
        .collect::<Vec<_>>()
        .join(", ");
    let lookups = c.hits + c.misses;
    let hit_ratio = if lookups > 0.0 {
        format!("{:.0}%", 100.0 * c.hits / lookups)
    } else {
        "n/a".to_owned()
    };
    section.rows.push(
        Row::new(
            10,
            what,
            "`fhir_gateway_cache_bytes` at the end (sum; per source); evictions; hit ratio",
        )
        .gateway(format!("{} ({per_source})", mib(cached)))
        .baseline(format!(
            "{mb} MiB bound; the resources listed weigh {}",
            mib(c.keys.listed_bytes as f64)
        ))
        .comparison(format!(
            "{} evictions; {hit_ratio} hits ({} hits, {} misses)",
            count(c.evictions),
            count(c.hits),
            count(c.misses)
        )),
    );
    let bound = mb as f64 * MIB;
    if cached > bound {
        section.notes.push(format!(
            "item 10: the caches report {} held at the end of the churn, over their bound of {mb} MiB",
            mib(cached)
        ));
    }
    if (c.keys.listed_bytes as f64) < 2.0 * bound {
        section.notes.push(format!(
            "item 10: the resources listed weigh {}, less than twice the cache bound of {mb} MiB: the cache \
             may not be churning (raise the dataset or lower --cache-mb)",
            mib(c.keys.listed_bytes as f64)
        ));
    }

    let per_minute = c
        .sampled
        .per_minute
        .iter()
        .map(|b| format!("{:.0}", *b as f64 / MIB))
        .collect::<Vec<_>>()
        .join(", ");
    section.notes.push(format!(
        "item 10: child VmRSS per minute of the churn (MiB): {}; start-up {:.1}, peak {:.1}, end {:.1}, \
         VmHWM {:.1} ({} reads, one a second)",
        if per_minute.is_empty() {
            "none (shorter than a minute)"
        } else {
            per_minute.as_str()
        },
        start / MIB,
        peak / MIB,
        end / MIB,
        hwm / MIB,
        c.sampled.samples
    ));
    section
}

/// `10 min` for whole minutes, else `90 s`.
fn span(secs: u64) -> String {
    if secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// A signed size in MiB (`+1.5 MiB`, `-0.3 MiB`).
fn signed_mib(bytes: f64) -> String {
    if bytes >= 0.0 {
        format!("+{}", mib(bytes))
    } else {
        mib(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_signs() {
        assert_eq!(span(600), "10 min");
        assert_eq!(span(90), "90 s");
        assert_eq!(signed_mib(1.5 * MIB), "+1.5 MiB");
        assert_eq!(signed_mib(-0.5 * MIB), "-0.5 MiB");
    }
}
