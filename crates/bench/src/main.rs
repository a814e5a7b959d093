//! Benchmarks of the FHIR gateway over loopback.
//!
//! ```sh
//! apt-get install -y wrk                        # the load generator (Debian package `wrk`)
//! cargo run --release -p bench -- all           # every item; about five minutes at the defaults
//! cargo run --release -p bench -- read --runs 5 --duration 10
//! ```
//!
//! The program starts the demo practice itself — the DrChrono, Zoom and Noa simulators and the
//! gateway (`gateway::demo::start_practice`, SMART on FHIR on, the demo's cache on) — gets a
//! `demo-backend` token (client credentials, `system/*.rs`), drives load over loopback and prints
//! ONE markdown table. Every figure is the median of `--runs` runs (default 3), and every
//! comparison is computed within a run (gateway and baseline measured back to back) and then
//! taken as the median of those per-run comparisons. The simulators' own rate limits (DrChrono:
//! 500 calls an hour, Zoom: per second) are lifted so that they never throttle the benchmark.
//!
//! Items (subcommands):
//!
//! 1. `read` — a cached `Patient/{id}` read under `wrk` at 32 and 128 connections (`--duration`
//!    seconds per load run), against a static axum server in the same process and runtime
//!    answering exactly the bytes and `Content-Type` the gateway answered: req/s, p50, p99 and
//!    gateway/static.
//! 2. `search` — the same for a cached Appointment search page of 50 entries at 32 connections.
//! 3. `cold` — sequential single-connection Patient reads through a cache-less gateway with the
//!    DrChrono simulator at +20 ms, against direct `GET /api/patients/{id}` calls to the simulator
//!    with a DrChrono token of the bench's own: medians and gateway − direct.
//! 4. `federated` — `DocumentReference?patient=…` answered by DrChrono, Zoom and Noa, every
//!    simulator at +50 ms, cache off: the gateway's median latency ÷ the slowest adapter's
//!    `Adapter::search` called in-process for the same request (adapters built as `run.rs` builds
//!    them), with the per-vendor medians; also with `_total=accurate`, which makes the engine
//!    gather the sources concurrently.
//! 5. `single-flight` — 200 concurrent identical reads of a never-read Patient (cache on): the
//!    DrChrono simulator's count of `GET /api/patients/{id}` calls.
//! 6. `mapping` — vendor wire JSON (the simulators' demo datasets) → adapter wire type → FHIR →
//!    FHIR JSON, single-threaded, per vendor and type: inputs per second.
//! 7. `rss` — the practice in a child process (`serve-child`, hidden) with a cache bound of
//!    `--cache-mb` MiB, filled by reading and searching every type: VmRSS before and after,
//!    VmHWM, and the cache's own `fhir_gateway_cache_bytes` from `/metrics`.
//! 8. `auth-flood` — the practice in a child process (`serve-child`, SMART on): the median time to
//!    success of five legitimate logins of each kind one at a time (a `demo-backend`
//!    client_credentials token; `patient.demo`'s authorization-code sign-in through the login and
//!    consent pages), then 3 000 `POST /auth/token` client_credentials requests with wrong secrets
//!    (half for `demo-backend`, half for unknown client ids) over 400 connections while the same
//!    logins run again, one at a time per kind: the flood's answers by status and rate, the child's
//!    peak VmRSS (read every 50 ms) against its VmRSS before, VmHWM, and each kind's time to success
//!    during the flood against the baseline, with the 503s it met (a 503 or 429 is retried after its
//!    `Retry-After`, for at most 30 s).
//! 9. `audit` — cached reads with the audit trail on and off (SQLite store): req/s of each and audit
//!    events written per second.
//! 10. `churn` — the practice in a child process with a cache bound of `--cache-mb` MiB, under 32
//!     requests in flight for `--churn-secs` seconds (default 600) over a key space several times the
//!     bound: VmRSS every second (peak, per minute, end) against start-up + bound + 64 MiB.
//! 11. `clinic-day` — a clinic's afternoon replayed at `--speed` (default 10×) for `--sim-minutes`
//!     (default 60): 20 EHR pollers, 50 app users opening charts, every visit's status changes with
//!     the vendors' webhooks and a note search after each visit: DrChrono calls per simulated hour
//!     (≤ 500), stale answers after a change's webhook (0), the cache's hit rate (see `clinic.rs`).
//!
//! `all` runs every item in that order. The header names the machine (CPU model, cores) and the
//! load generator with its version; `wrk` runs as `wrk -t2 -c<conns> -d<secs>s --latency -H
//! "Authorization: Bearer <token>" <url>`. Progress goes to stderr, the table to stdout.

mod audit;
mod child;
mod churn;
mod clinic;
mod flood;
mod load;
mod mapping;
mod practice;
mod report;
mod rss;
mod stats;
mod vendor;
mod wrk;

use std::time::Instant;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::report::Row;

/// The allocator the `fhir-gateway` binary uses, so that the practice measured in-process is the one
/// users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks of the FHIR gateway over loopback (load generator: Debian's `wrk`).
#[derive(Parser, Debug)]
#[command(name = "bench", version, long_about = LONG_ABOUT)]
struct Cli {
    /// Runs per figure; each figure is the median of the runs.
    #[arg(long, default_value_t = 3, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// Seconds per `wrk` load run (items 1 and 2).
    #[arg(long, default_value_t = 5, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    duration: u64,
    /// The gateway's cache bound in MiB for the `rss` item (per source, as `CacheSettings::max_bytes`).
    #[arg(long, default_value_t = 2, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    cache_mb: u64,
    /// Seconds of the `churn` item's load.
    #[arg(long, default_value_t = 600, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    churn_secs: u64,
    /// How many times faster than real time the `clinic-day` item runs its simulated clock.
    #[arg(long, default_value_t = 10, global = true, value_parser = clap::value_parser!(u32).range(1..=100))]
    speed: u32,
    /// Simulated minutes of the `clinic-day` item.
    #[arg(long, default_value_t = 60, global = true, value_parser = clap::value_parser!(u64).range(1..=600))]
    sim_minutes: u64,
    #[command(subcommand)]
    command: Item,
}

const LONG_ABOUT: &str = "Benchmarks of the FHIR gateway over loopback.

Starts the demo practice (DrChrono, Zoom and Noa simulators + the gateway behind SMART on FHIR, cache on) \
in-process, drives load with Debian's `wrk` (apt-get install -y wrk) and prints one markdown table; every \
figure is the median of --runs runs and every comparison is measured within a run.

  1 read           cached Patient read at 32 and 128 connections vs a static server (same bytes)
  2 search         cached Appointment search page (50 entries) at 32 connections vs a static server
  3 cold           cold Patient read (DrChrono +20 ms, cache off) vs a direct call to the simulator
  4 federated      DocumentReference search over three vendors (+50 ms each) vs the slowest adapter
  5 single-flight  200 concurrent cold reads of one Patient: upstream calls
  6 mapping        vendor JSON -> FHIR JSON per vendor and type, one core
  7 rss            peak RSS of a gateway child process with its cache full at --cache-mb
  8 auth-flood     3 000 wrong client secrets at /auth/token over 400 connections (child process):
                   answers by status, peak RSS, legitimate token and sign-in times vs no flood
  9 audit          cached reads with the audit trail on vs off (SQLite store); audit events written/s
 10 churn          --churn-secs (600) of reads and searches over far more than the cache holds (child
                   process, cache bound --cache-mb): VmRSS each second, peak vs start-up + bound + 64 MiB
 11 clinic-day     a clinic's afternoon replayed at --speed (10x) for --sim-minutes (60): 20 EHR pollers,
                   50 app users opening charts, every visit's status changes and webhooks: DrChrono
                   calls per simulated hour (<= 500), stale answers after a webhook (0), cache hit rate

Example: cargo run --release -p bench -- all";

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// Item 1: cached Patient read throughput and latency vs a static server.
    Read,
    /// Item 2: cached Appointment search page (50 entries) vs a static server.
    Search,
    /// Item 3: cold Patient read through the gateway vs directly at the DrChrono simulator.
    Cold,
    /// Item 4: federated search overhead over the slowest vendor.
    Federated,
    /// Item 5: upstream calls for 200 concurrent identical cold reads.
    SingleFlight,
    /// Item 6: mapping throughput per vendor (one core).
    Mapping,
    /// Item 7: RSS of a gateway process with its cache full.
    Rss,
    /// Item 8: a flood of wrong client secrets at the token endpoint: RSS and legitimate logins.
    AuthFlood,
    /// Item 9: cached reads with the audit trail on vs off; audit events written per second.
    Audit,
    /// Item 10: memory over a long churn at full load with the cache evicting.
    Churn,
    /// Item 11: a clinic's day replayed: DrChrono calls per simulated hour, stale answers after webhooks.
    ClinicDay,
    /// Every item, in order.
    All,
    /// (internal) Serves the practice for `rss` and `auth-flood`; prints its base URL and token on stdout.
    #[command(hide = true)]
    ServeChild,
}

/// What the items share.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub runs: usize,
    pub duration: u64,
    pub cache_mb: u64,
    /// `clinic-day`: simulated seconds per real second, and simulated minutes.
    pub churn_secs: u64,
    pub speed: u32,
    pub sim_minutes: u64,
}

/// An item's rows and anything that looked wrong.
#[derive(Debug, Default)]
pub struct Section {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let opts = Opts {
        runs: cli.runs as usize,
        duration: cli.duration,
        cache_mb: cli.cache_mb,
        churn_secs: cli.churn_secs,
        speed: cli.speed,
        sim_minutes: cli.sim_minutes,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if cli.command == Item::ServeChild {
        return runtime.block_on(child::serve_child(opts.cache_mb));
    }
    let items: Vec<Item> = match cli.command {
        Item::All => vec![
            Item::Read,
            Item::Search,
            Item::Cold,
            Item::Federated,
            Item::SingleFlight,
            Item::Mapping,
            Item::Rss,
            Item::AuthFlood,
            Item::Audit,
            Item::Churn,
            Item::ClinicDay,
        ],
        one => vec![one],
    };
    let wrk_version = if items
        .iter()
        .any(|i| matches!(i, Item::Read | Item::Search | Item::Audit))
    {
        match wrk::version() {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        }
    } else {
        wrk::version().unwrap_or_else(|_| format!("wrk (not installed: Debian package `{}`)", wrk::PACKAGE))
    };

    let load_before = load_average();
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for item in items {
        let t = Instant::now();
        eprintln!("== {item:?}");
        let section = match item {
            Item::Read => runtime.block_on(load::read(&opts)),
            Item::Search => runtime.block_on(load::search(&opts)),
            Item::Cold => runtime.block_on(vendor::cold(&opts)),
            Item::Federated => runtime.block_on(vendor::federated(&opts)),
            Item::SingleFlight => runtime.block_on(vendor::single_flight(&opts)),
            // On this thread, nothing else running: one core.
            Item::Mapping => {
                let _context = runtime.enter();
                mapping::run(&opts)
            }
            Item::Rss => runtime.block_on(rss::run(&opts)),
            Item::AuthFlood => runtime.block_on(flood::run(&opts)),
            Item::Audit => runtime.block_on(audit::run(&opts)),
            Item::Churn => runtime.block_on(churn::run(&opts)),
            Item::ClinicDay => runtime.block_on(clinic::run(&opts)),
            Item::All | Item::ServeChild => unreachable!("expanded above"),
        };
        match section {
            Ok(s) => {
                rows.extend(s.rows);
                notes.extend(s.notes);
            }
            Err(e) => {
                eprintln!("   {item:?} failed: {e:#}");
                notes.push(format!("{item:?} failed: {e:#}"));
            }
        }
        eprintln!("   ({:.0} s)", t.elapsed().as_secs_f64());
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));

    println!("{}", header(&opts, &wrk_version));
    println!(
        "- Load average (1/5/15 min, /proc/loadavg) before: {load_before}; after: {} — anything else running on \
         the machine shows up in the figures",
        load_average()
    );
    println!();
    print!("{}", report::table(&rows));
    if !notes.is_empty() {
        println!();
        for n in &notes {
            println!("- {n}");
        }
    }
    println!();
    println!("Total time: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The first three fields of `/proc/loadavg`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Machine, load generator, settings.
fn header(opts: &Opts, wrk_version: &str) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let processors = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let available = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!(
        "## Gateway benchmark\n\n\
         - Machine: {model}, {processors} logical CPUs ({available} available to this process), {}\n\
         - Load generator: {wrk_version}, run as `wrk -t2 -c<conns> -d{}s --latency -H \"Authorization: Bearer …\" <url>`\n\
         - System under test: the demo practice in this process (tokio multi-thread runtime, {available} workers): \
         DrChrono, Zoom and Noa simulators + the gateway with SMART on FHIR and the demo cache; \
         simulators' rate limits lifted\n\
         - Every figure is the median of {} runs; ratios and differences are per run (gateway and baseline back to back), then the median",
        std::env::consts::ARCH,
        opts.duration,
        opts.runs
    )
}
