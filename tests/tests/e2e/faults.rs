//! Fault injection end to end: the real gateway in front of the DrChrono, Zoom and Noa simulators,
//! with the simulators' fault knobs turned at run time — server errors, 429 bursts, latency
//! spikes and vendor timeouts, malformed and truncated bodies, dropped connections, a vendor that
//! is down, and vendor tokens expiring in the middle of a paging walk.
//!
//! Every answer is checked the same way: a 2xx is valid FHIR and says what a fault-free practice
//! says (a read: the same resource; a search: the same matches, or — lenient federated searches
//! only — the matches of the sources that answered plus an OperationOutcome entry naming each one
//! that did not); anything else is a 4xx/5xx with a valid OperationOutcome and a status from the
//! scenario's short list. No request may outlive [`DEADLINE`], and the gateway must still answer
//! `/fhir/metadata` and `/metrics` afterwards.
//!
//! Each scenario runs on its own practice, so one scenario's failures cannot open another's circuit
//! breakers. The expected answers are what the practice says before the faults are turned on (which
//! also warms it: tokens, doctors, and the EHR links of Zoom objects; a failing EHR no longer
//! unlinks those, see `a_failing_ehr_does_not_silently_drop_linked_zoom_notes`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter::Adapter;
use adapter_drchrono::{DrChronoAdapter, DrChronoConfig};
use adapter_zoom::{ZoomAdapter, ZoomConfig};
use e2e::{Env, anchor, assert_valid_fhir, entries, ids, link};
use gateway::demo::{drchrono_for_sim, zoom_for_sim};
use gateway::run::{GatewayOptions, spawn};
use gateway::sources::GatewayResolver;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig, Faults};
use vendor_sim::noa::NoaSimConfig;
use vendor_sim::zoom::{EhrRefs, ZoomSim, ZoomSimConfig};

/// The longest any one request may take, whatever the faults.
const DEADLINE: Duration = Duration::from_secs(30);

/// The sources a federated answer can name.
const SOURCES: [&str; 3] = ["drchrono", "zoom", "noa"];

// --- practices ---------------------------------------------------------------------------------

fn loopback() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

/// DrChrono and Zoom (the small practice, seed 7, no cache) behind a gateway, with the adapters'
/// settings adjusted.
async fn federated(dr: impl FnOnce(&mut DrChronoConfig), zoom: impl FnOnce(&mut ZoomConfig)) -> Env {
    let sim_config = DrChronoSimConfig::small(7, anchor());
    let tz = sim_config.timezone.parse().unwrap_or(chrono_tz::Tz::UTC);
    let sim = DrChronoSim::new(sim_config)
        .spawn(loopback())
        .await
        .expect("DrChrono simulator starts");
    let zoom_sim = ZoomSim::new(ZoomSimConfig::small(
        7,
        anchor(),
        EhrRefs::from_drchrono(&sim.dataset()),
    ))
    .spawn(loopback())
    .await
    .expect("Zoom simulator starts");
    let resolver = GatewayResolver::new(Duration::from_secs(600));
    let mut dr_config = drchrono_for_sim(&sim).expect("DrChrono simulator URL");
    dr(&mut dr_config);
    let mut zoom_config = zoom_for_sim(&zoom_sim).expect("Zoom simulator URL");
    zoom(&mut zoom_config);
    let adapters: Vec<Arc<dyn Adapter>> = vec![
        Arc::new(DrChronoAdapter::new(dr_config).expect("DrChrono settings are valid")),
        Arc::new(
            ZoomAdapter::new(zoom_config)
                .expect("Zoom settings are valid")
                .with_resolver(resolver.clone()),
        ),
    ];
    let mut options = GatewayOptions::new(tz);
    options.resolver = Some(resolver);
    let gw = spawn(loopback(), adapters, options).await.expect("gateway starts");
    Env {
        sim,
        zoom: Some(zoom_sim),
        noa: None,
        gw,
        http: reqwest::Client::new(),
    }
}

async fn drchrono_and_zoom() -> Env {
    federated(|_| {}, |_| {}).await
}

/// DrChrono, Zoom and Noa (no cache).
async fn three_vendors() -> Env {
    Env::start_with_noa(NoaSimConfig::small, |_| {}).await
}

/// Sets the same faults on every simulator the practice runs.
fn set_faults_everywhere(env: &Env, faults: &Faults) {
    env.sim.set_faults(faults.clone());
    if let Some(zoom) = &env.zoom {
        zoom.set_faults(faults.clone());
    }
    if let Some(noa) = &env.noa {
        noa.set_faults(faults.clone());
    }
}

// --- one request -------------------------------------------------------------------------------

/// Where requests go: the gateway's base URL and a client (cheap to clone into tasks), and the
/// practice's origins, so that answers of two practices can be compared.
#[derive(Clone)]
struct Gw {
    base: String,
    http: reqwest::Client,
    origins: Vec<(String, &'static str)>,
}

impl Gw {
    fn of(env: &Env) -> Gw {
        let mut origins = vec![
            (env.gw.base_url.clone(), "{gateway}"),
            (env.sim.base_url(), "{drchrono}"),
        ];
        if let Some(zoom) = &env.zoom {
            origins.push((zoom.base_url(), "{zoom}"));
        }
        if let Some(noa) = &env.noa {
            origins.push((noa.base_url(), "{noa}"));
        }
        Gw {
            base: env.gw.base_url.clone(),
            http: env.http.clone(),
            origins,
        }
    }

    /// `value` with what differs from one practice to the next taken out: this practice's origins
    /// (replaced by their names) and `meta.lastUpdated` (some vendor records are stamped at start).
    fn neutral(&self, value: &Value) -> Value {
        let mut text = value.to_string();
        for (origin, name) in &self.origins {
            text = text.replace(origin.trim_end_matches('/'), name);
        }
        let mut neutral: Value = serde_json::from_str(&text).unwrap_or_else(|_| value.clone());
        if let Some(meta) = neutral.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("lastUpdated");
        }
        neutral
    }
}

/// One answer of the gateway.
struct Answer {
    path: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    elapsed: Duration,
}

impl Answer {
    /// The diagnostics of every issue of the searchset's OperationOutcome entries.
    fn warnings(&self) -> Vec<String> {
        entries(&self.body, "outcome")
            .iter()
            .flat_map(|o| o["issue"].as_array().cloned().unwrap_or_default())
            .map(|issue| issue["diagnostics"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// The sources the OperationOutcome entry names as missing ("results from source 'zoom' are
    /// missing: …").
    fn failed_sources(&self) -> BTreeSet<&'static str> {
        self.warnings()
            .iter()
            .flat_map(|d| {
                SOURCES
                    .into_iter()
                    .filter(move |s| d.contains(&format!("source '{s}'")))
            })
            .collect()
    }

    /// The warnings about resources that could not be included ("Patient/drchrono-1 could not be
    /// included: …").
    fn failed_includes(&self) -> Vec<String> {
        self.warnings()
            .into_iter()
            .filter(|d| d.contains("could not be included"))
            .collect()
    }
}

/// GETs `path` (relative to the gateway, or a paging link), within [`DEADLINE`], and checks what
/// every answer must be whatever the faults: FHIR JSON; valid FHIR when 2xx; a valid
/// OperationOutcome when 4xx/5xx; `Retry-After` on a 429.
async fn get(gw: &Gw, path: &str, headers: &[(&str, &str)]) -> Answer {
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        format!("{}{path}", gw.base)
    };
    let mut request = gw.http.get(&url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let started = Instant::now();
    let call = async {
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, bytes))
    };
    let (status, headers, bytes) = match tokio::time::timeout(DEADLINE, call).await {
        Err(_) => panic!("GET {path} {headers:?}: no answer within {DEADLINE:?}"),
        Ok(Err(e)) => panic!("GET {path} {headers:?}: the gateway did not answer: {e}"),
        Ok(Ok(answer)) => answer,
    };
    let elapsed = started.elapsed();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "GET {path}: HTTP {status} with a body that is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(
        content_type.starts_with("application/fhir+json"),
        "GET {path}: HTTP {status} as {content_type:?}"
    );
    if status.is_success() {
        assert_valid_fhir(&body);
    } else {
        assert!(
            status.is_client_error() || status.is_server_error(),
            "GET {path}: HTTP {status}"
        );
        assert_eq!(
            body["resourceType"], "OperationOutcome",
            "GET {path}: HTTP {status}: {body}"
        );
        assert!(
            body["issue"].as_array().is_some_and(|i| !i.is_empty()),
            "GET {path}: an OperationOutcome without issues: {body}"
        );
        assert_valid_fhir(&body);
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(
                headers.contains_key("retry-after"),
                "GET {path}: a 429 without Retry-After"
            );
        }
    }
    Answer {
        path: path.to_owned(),
        status,
        headers,
        body,
        elapsed,
    }
}

/// The gateway is still up and well: metadata, and metrics.
async fn still_serving(env: &Env) {
    let metadata = get(&Gw::of(env), "/fhir/metadata", &[]).await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert_eq!(metadata.body["resourceType"], "CapabilityStatement");
    let metrics = tokio::time::timeout(DEADLINE, env.http.get(format!("{}/metrics", env.gw.base_url)).send())
        .await
        .expect("/metrics answers in time")
        .expect("/metrics answers");
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.expect("metrics text");
    assert!(text.contains("fhir_gateway_http_requests_total"), "{text}");
}

// --- the workload --------------------------------------------------------------------------------

/// What a fault-free practice answers to a request.
#[derive(Clone, Debug)]
enum Truth {
    /// The resource a read returns.
    Read(Value),
    /// The ids of a search's first page of matches, in order (all of them when it federates),
    /// and the `Type/id`s it includes.
    Search {
        matches: Vec<String>,
        included: Vec<String>,
    },
}

#[derive(Clone, Debug)]
struct Probe {
    path: String,
    strict: bool,
    truth: Truth,
}

impl Probe {
    fn is_read(&self) -> bool {
        matches!(self.truth, Truth::Read(_))
    }

    fn federated(&self) -> bool {
        match &self.truth {
            Truth::Read(_) => false,
            Truth::Search { matches, .. } => sources_of(matches).len() > 1,
        }
    }
}

/// `Type/id` of each resource.
fn type_ids(resources: &[Value]) -> Vec<String> {
    resources
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or("?"),
                r["id"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn source_of(id: &str) -> &str {
    SOURCES
        .into_iter()
        .find(|s| id.starts_with(&format!("{s}-")))
        .unwrap_or("?")
}

fn sources_of(ids: &[String]) -> BTreeSet<&str> {
    ids.iter().map(|id| source_of(id)).collect()
}

/// The DrChrono patient with the most Zoom notes who also has DrChrono notes.
fn shared_patient(env: &Env) -> i64 {
    let zoom = env.zoom().dataset();
    let dr = env.sim.dataset();
    let mut best = (0, 0);
    for p in &dr.patients {
        let zoom_notes = zoom
            .clinical_notes
            .iter()
            .filter(|n| {
                n.ehr_context
                    .as_ref()
                    .and_then(|c| c.patient_id.as_deref())
                    .is_some_and(|id| id.rsplit('/').next() == Some(p.id.to_string().as_str()))
            })
            .count();
        let dr_notes = dr.clinical_notes.iter().filter(|n| n.patient == p.id).count();
        if dr_notes > 0 && zoom_notes > best.1 {
            best = (p.id, zoom_notes);
        }
    }
    assert!(best.1 > 0, "the shared seed links Zoom notes to DrChrono patients");
    best.0
}

/// Reads and searches over every source of `clean` (a practice without faults), with what each
/// answers: single-source searches, lenient and strict federated searches (DocumentReference and
/// Appointment over DrChrono and Zoom, and Noa when it runs), and reads of each source's resources.
async fn workload(clean: &Env) -> Vec<Probe> {
    let gw = Gw::of(clean);
    let patient = shared_patient(clean);
    let (from, to) = (anchor() - chrono::Days::new(14), anchor() + chrono::Days::new(14));
    let searches = [
        "/fhir/Patient?_count=8".to_owned(),
        "/fhir/Practitioner".to_owned(),
        format!(
            "/fhir/DocumentReference?patient=drchrono-{patient}&_count=200\
             &_include=DocumentReference:subject&_include=DocumentReference:author"
        ),
        format!("/fhir/Appointment?date=ge{from}&date=le{to}&_count=300"),
    ];
    let mut probes = Vec::new();
    let mut read_ids = Vec::new();
    for path in searches {
        let answer = get(&gw, &path, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        assert!(entries(&answer.body, "outcome").is_empty(), "{path}: {}", answer.body);
        let found = ids(&entries(&answer.body, "match"));
        assert!(!found.is_empty(), "{path} finds something");
        // A federated answer missing a source is compared with the truth less that source's
        // matches: exact only when every match fits in one page.
        assert!(
            sources_of(&found).len() == 1 || link(&answer.body, "next").is_none(),
            "{path} fits in one page"
        );
        let resource_type = path["/fhir/".len()..].split('?').next().unwrap_or("").to_owned();
        // Two of each source's resources to read.
        for source in sources_of(&found) {
            for id in found.iter().filter(|id| source_of(id) == source).take(2) {
                read_ids.push(format!("{resource_type}/{id}"));
            }
        }
        let truth = Truth::Search {
            matches: found.clone(),
            included: type_ids(&entries(&answer.body, "include")),
        };
        if sources_of(&found).len() > 1 {
            probes.push(Probe {
                path: path.clone(),
                strict: true,
                truth: truth.clone(),
            });
        }
        probes.push(Probe {
            path,
            strict: false,
            truth,
        });
    }
    if clean.noa.is_some() {
        let path = "/fhir/Encounter?_count=100".to_owned();
        let answer = get(&gw, &path, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        let found = ids(&entries(&answer.body, "match"));
        read_ids.extend(found.iter().take(2).map(|id| format!("Encounter/{id}")));
        probes.push(Probe {
            path,
            strict: false,
            truth: Truth::Search {
                matches: found,
                included: Vec::new(),
            },
        });
    }
    read_ids.sort();
    read_ids.dedup();
    for id in read_ids {
        let path = format!("/fhir/{id}");
        let answer = get(&gw, &path, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        probes.push(Probe {
            path,
            strict: false,
            truth: Truth::Read(gw.neutral(&answer.body)),
        });
    }
    let federated = probes.iter().filter(|p| p.federated()).count();
    assert!(federated >= 4, "the workload federates: {probes:#?}");
    probes
}

/// What a run of probes gave.
#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, usize>,
    reads: usize,
    reads_ok: usize,
    /// Searches answered 200 with a warning (a source or an include missing, and named).
    partial: usize,
    elapsed: Vec<Duration>,
}

impl Tally {
    fn total(&self) -> usize {
        self.statuses.values().sum()
    }

    fn ok(&self) -> usize {
        self.statuses.get(&200).copied().unwrap_or(0)
    }

    fn read_success(&self) -> f64 {
        self.reads_ok as f64 / self.reads.max(1) as f64
    }

    fn median(&self) -> Duration {
        let mut all = self.elapsed.clone();
        all.sort();
        all.get(all.len() / 2).copied().unwrap_or_default()
    }

    fn slowest(&self) -> Duration {
        self.elapsed.iter().max().copied().unwrap_or_default()
    }
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "statuses {:?}, reads {}/{} ok, {} partial, median {:?}, slowest {:?}, in all {:?}",
            self.statuses,
            self.reads_ok,
            self.reads,
            self.partial,
            self.median(),
            self.slowest(),
            self.elapsed.iter().sum::<Duration>()
        )
    }
}

/// Sends one probe and checks its answer against the truth; `allowed` are the error statuses the
/// scenario's faults may cause.
async fn probe(gw: &Gw, probe: &Probe, allowed: &[StatusCode]) -> Answer {
    let headers: &[(&str, &str)] = if probe.strict {
        &[("Prefer", "handling=strict")]
    } else {
        &[]
    };
    let answer = get(gw, &probe.path, headers).await;
    let what = format!("GET {}{}", probe.path, if probe.strict { " (strict)" } else { "" });
    if answer.status != StatusCode::OK {
        assert!(
            allowed.contains(&answer.status),
            "{what}: HTTP {} is not one of {allowed:?}: {}",
            answer.status,
            answer.body
        );
        return answer;
    }
    match &probe.truth {
        Truth::Read(resource) => assert_eq!(
            &gw.neutral(&answer.body),
            resource,
            "{what}: another resource than without faults"
        ),
        Truth::Search {
            matches: truth,
            included,
        } => {
            let got = ids(&entries(&answer.body, "match"));
            let failed = answer.failed_sources();
            let failed_includes = answer.failed_includes();
            let outcome = || answer.warnings().join(" | ");
            if probe.strict || !probe.federated() {
                assert!(
                    failed.is_empty() && failed_includes.is_empty(),
                    "{what}: a partial answer where an error was due: {}",
                    outcome()
                );
            }
            // Every warning names a source that failed or a resource that could not be included
            // (nothing else can go wrong with these searches).
            assert_eq!(
                answer.warnings().len(),
                failed_includes.len() + answer.warnings().iter().filter(|d| d.contains("source '")).count(),
                "{what}: a warning naming neither a source nor an include: {}",
                outcome()
            );
            let unique: BTreeSet<&String> = got.iter().collect();
            assert_eq!(unique.len(), got.len(), "{what}: a match twice: {got:?}");
            // Per source: everything the fault-free practice found, in its order; from a source
            // named as failed, what it gave before it failed (nothing, or a first part).
            for source in sources_of(truth).union(&sources_of(&got)) {
                let want: Vec<&String> = truth.iter().filter(|id| source_of(id) == *source).collect();
                let have: Vec<&String> = got.iter().filter(|id| source_of(id) == *source).collect();
                if failed.contains(source) {
                    assert!(
                        want.starts_with(&have),
                        "{what}: {source} is named as failed but gave {have:?} of {want:?}: {}",
                        outcome()
                    );
                } else {
                    assert_eq!(
                        have,
                        want,
                        "{what}: {source}'s matches differ from the fault-free ones: {}",
                        outcome()
                    );
                }
            }
            // Includes: what the fault-free practice included; one left out is named (or was
            // referenced only by matches of a failed source).
            let got_included = type_ids(&entries(&answer.body, "include"));
            for id in &got_included {
                assert!(
                    included.contains(id),
                    "{what}: {id} included without faults? {included:?}"
                );
            }
            for id in included.iter().filter(|id| !got_included.contains(id)) {
                assert!(
                    failed_includes.iter().any(|d| d.contains(id.as_str())) || !failed.is_empty(),
                    "{what}: {id} silently left out of the includes: {}",
                    outcome()
                );
            }
        }
    }
    answer
}

/// Runs every probe `rounds` times, one after the other (so the simulators' seeded dice see the
/// same sequence each run), and tallies the answers.
async fn run(env: &Env, probes: &[Probe], rounds: usize, allowed: &[StatusCode]) -> Tally {
    let gw = Gw::of(env);
    let mut tally = Tally::default();
    for _ in 0..rounds {
        for p in probes {
            let answer = probe(&gw, p, allowed).await;
            record(&mut tally, p, &answer);
        }
    }
    tally
}

/// Runs every probe at once.
async fn run_concurrently(env: &Env, probes: &[Probe], allowed: &[StatusCode]) -> Tally {
    let gw = Gw::of(env);
    let allowed: Arc<[StatusCode]> = allowed.into();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, p) in probes.iter().enumerate() {
        let (gw, p, allowed) = (gw.clone(), p.clone(), allowed.clone());
        tasks.spawn(async move { (i, probe(&gw, &p, &allowed).await) });
    }
    let mut answers: Vec<(usize, Answer)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(answer) => answers.push(answer),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    answers.sort_by_key(|(i, _)| *i);
    let mut tally = Tally::default();
    for (i, answer) in &answers {
        record(&mut tally, &probes[*i], answer);
    }
    tally
}

fn record(tally: &mut Tally, probe: &Probe, answer: &Answer) {
    *tally.statuses.entry(answer.status.as_u16()).or_insert(0) += 1;
    if probe.is_read() {
        tally.reads += 1;
        if answer.status == StatusCode::OK {
            tally.reads_ok += 1;
        }
    }
    if answer.status == StatusCode::OK && !answer.warnings().is_empty() {
        tally.partial += 1;
    }
    tally.elapsed.push(answer.elapsed);
}

/// Walks a search to its end with strict handling, calling `between` before each next page and
/// asking again for a page that failed with one of `retry` (a paging link carries its whole
/// position, so the same link must give the same page). Returns the matches and how many pages
/// were asked again.
async fn walk(gw: &Gw, first: &str, between: &dyn Fn(), retry: &[StatusCode]) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    let mut again = 0;
    let mut next = Some(first.to_owned());
    let mut pages = 0;
    while let Some(url) = next {
        let mut tries = 0;
        let answer = loop {
            let answer = get(gw, &url, &[("Prefer", "handling=strict")]).await;
            if answer.status == StatusCode::OK {
                break answer;
            }
            assert!(
                retry.contains(&answer.status),
                "{url} (page {pages} of {first}): HTTP {}: {}",
                answer.status,
                answer.body
            );
            tries += 1;
            again += 1;
            assert!(tries < 10, "{url}: the page fails again and again: {}", answer.body);
        };
        assert!(answer.warnings().is_empty(), "{url}: {:?}", answer.warnings());
        found.extend(ids(&entries(&answer.body, "match")));
        next = link(&answer.body, "next");
        pages += 1;
        assert!(pages < 100, "{first}: paging does not end");
        between();
    }
    assert!(pages > 2, "{first}: several pages");
    (found, again)
}

// --- scenarios -----------------------------------------------------------------------------------

/// A probe of the workload by kind: a read of `source`'s resource, or a federated search.
fn read_of<'p>(probes: &'p [Probe], source: &str) -> &'p Probe {
    probes
        .iter()
        .find(|p| p.is_read() && p.path.contains(&format!("/{source}-")))
        .unwrap_or_else(|| panic!("the workload reads a {source} resource"))
}

fn federated_search(probes: &[Probe], strict: bool) -> &Probe {
    probes
        .iter()
        .find(|p| p.federated() && p.strict == strict && p.path.contains("DocumentReference"))
        .unwrap_or_else(|| panic!("the workload has a federated DocumentReference search"))
}

/// One vendor failing for good: a lenient federated search answers 200 with the other sources'
/// matches and an OperationOutcome entry naming the failed one; the strict one and a read of the
/// failed vendor's resource answer `status`; a read of a healthy vendor's resource is served.
async fn one_vendor_failing(env: &Env, probes: &[Probe], failed: &str, healthy: &str, status: StatusCode) {
    let gw = Gw::of(env);
    let allowed = [status];
    let (lenient, strict, read, other) = tokio::join!(
        probe(&gw, federated_search(probes, false), &allowed),
        probe(&gw, federated_search(probes, true), &allowed),
        probe(&gw, read_of(probes, failed), &allowed),
        probe(&gw, read_of(probes, healthy), &allowed),
    );
    assert_eq!(lenient.status, StatusCode::OK, "{}: {}", lenient.path, lenient.body);
    assert_eq!(
        lenient.failed_sources(),
        BTreeSet::from([source_name(failed)]),
        "{}: {}",
        lenient.path,
        lenient.body
    );
    assert!(
        ids(&entries(&lenient.body, "match"))
            .iter()
            .any(|id| source_of(id) == healthy),
        "{}: the healthy source's matches are there: {}",
        lenient.path,
        lenient.body
    );
    assert_eq!(strict.status, status, "{} (strict): {}", strict.path, strict.body);
    assert_eq!(read.status, status, "{}: {}", read.path, read.body);
    if status == StatusCode::TOO_MANY_REQUESTS {
        for answer in [&strict, &read] {
            let retry_after = answer.headers.get("retry-after").and_then(|v| v.to_str().ok());
            assert!(
                retry_after.and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= 1),
                "{}: Retry-After {retry_after:?}",
                answer.path
            );
        }
    }
    assert_eq!(other.status, StatusCode::OK, "{}: {}", other.path, other.body);
}

fn source_name(source: &str) -> &'static str {
    SOURCES.into_iter().find(|s| *s == source).unwrap_or("?")
}

#[tokio::test]
async fn thirty_percent_server_errors() {
    let env = three_vendors().await;
    let probes = workload(&env).await;
    let gw = Gw::of(&env);
    let walked = "/fhir/Appointment?_count=10";
    let (truth, _) = walk(&gw, walked, &|| {}, &[]).await;
    assert_eq!(
        sources_of(&truth),
        BTreeSet::from(["drchrono", "zoom"]),
        "{walked} federates"
    );
    set_faults_everywhere(
        &env,
        &Faults {
            error_rate: 0.3,
            ..Faults::default()
        },
    );
    // A vendor's 500, 502 or 503 is the gateway's 503 (the vendor is unavailable), never a 5xx of
    // its own making; a lenient federated search carries on without the failed source.
    let tally = run(&env, &probes, 2, &[StatusCode::SERVICE_UNAVAILABLE]).await;
    eprintln!("30% vendor 5xx: {tally:?}");
    // Retries of 502 and 503 (the simulators' 503 asks for `Retry-After: 1`) but not of 500 (not
    // known to be transient, so not retried): a read fails on a 500 or on four retryable failures
    // in a row, about one in eight.
    assert!(tally.read_success() >= 0.75, "{tally:?}");
    // A strict walk across DrChrono and Zoom, each failed page asked again: exactly the matches of
    // the walk without faults.
    let started = Instant::now();
    let (found, again) = walk(&gw, walked, &|| {}, &[StatusCode::SERVICE_UNAVAILABLE]).await;
    eprintln!(
        "30% vendor 5xx: {walked} walked in {:?} with {again} pages asked again",
        started.elapsed()
    );
    assert_eq!(found, truth, "{walked}: another walk under faults");

    // One vendor down for good (every answer a 5xx): the others still serve.
    set_faults_everywhere(&env, &Faults::default());
    env.zoom().set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    one_vendor_failing(&env, &probes, "zoom", "drchrono", StatusCode::SERVICE_UNAVAILABLE).await;
    still_serving(&env).await;
}

#[tokio::test]
async fn rate_limit_answers_and_bursts() {
    let env = drchrono_and_zoom().await;
    let probes = workload(&env).await;
    let gw = Gw::of(&env);
    let limited = [StatusCode::TOO_MANY_REQUESTS];
    // One request in five answered 429 (Retry-After: 1) by each vendor: answered after a retry,
    // or 429 with Retry-After, never anything else.
    set_faults_everywhere(
        &env,
        &Faults {
            rate_limit_rate: 0.2,
            ..Faults::default()
        },
    );
    let tally = run(&env, &probes, 1, &limited).await;
    eprintln!("20% vendor 429: {tally:?}");
    // Retried after the Retry-After: a read fails only on four 429s in a row.
    assert!(tally.read_success() >= 0.9, "{tally:?}");
    set_faults_everywhere(&env, &Faults::default());

    // A burst of two 429s: the read waits out both Retry-Afters and is served.
    env.sim.set_rate_limit_burst(2);
    let read = probe(&gw, read_of(&probes, "drchrono"), &limited).await;
    assert_eq!(read.status, StatusCode::OK, "{}: {}", read.path, read.body);
    assert!(
        read.elapsed >= Duration::from_secs(2),
        "Retry-After was honoured: {:?}",
        read.elapsed
    );
    assert_eq!(env.sim.faults().rate_limit_burst, 0);
    // The same during a federated search, lenient and strict.
    for strict in [false, true] {
        env.zoom().set_rate_limit_burst(2);
        let search = probe(&gw, federated_search(&probes, strict), &limited).await;
        assert_eq!(search.status, StatusCode::OK, "{}: {}", search.path, search.body);
        assert!(search.failed_sources().is_empty(), "{}: {}", search.path, search.body);
    }

    // A burst longer than the retries: 429 with Retry-After, and the other vendor still serves.
    env.zoom().set_rate_limit_burst(1000);
    one_vendor_failing(&env, &probes, "zoom", "drchrono", StatusCode::TOO_MANY_REQUESTS).await;
    env.zoom().set_rate_limit_burst(0);
    still_serving(&env).await;
}

#[tokio::test]
async fn latency_spikes_and_vendor_timeouts() {
    let env = drchrono_and_zoom().await;
    let probes = workload(&env).await;
    // Three vendor calls in ten held 2 s longer: slower, never failed.
    set_faults_everywhere(
        &env,
        &Faults {
            latency: Duration::from_millis(20),
            spike_rate: 0.3,
            spike_latency: Duration::from_secs(2),
            ..Faults::default()
        },
    );
    let tally = run_concurrently(&env, &probes, &[]).await;
    eprintln!("2 s spikes: {tally:?}");
    assert_eq!(tally.ok(), tally.total(), "{tally:?}");
    assert!(tally.median() < Duration::from_secs(5), "{tally:?}");
    assert!(tally.slowest() < Duration::from_secs(15), "{tally:?}");
    still_serving(&env).await;

    // A vendor slower than its adapter's timeout: 504, and the others still serve.
    let env = federated(
        |dr| dr.request_timeout = Duration::from_millis(500),
        |zoom| zoom.request_timeout = Duration::from_millis(500),
    )
    .await;
    env.zoom().set_faults(Faults {
        spike_rate: 1.0,
        spike_latency: Duration::from_secs(3),
        ..Faults::default()
    });
    let started = Instant::now();
    one_vendor_failing(&env, &probes, "zoom", "drchrono", StatusCode::GATEWAY_TIMEOUT).await;
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    still_serving(&env).await;
}

#[tokio::test]
async fn malformed_and_truncated_vendor_bodies() {
    let env = drchrono_and_zoom().await;
    let probes = workload(&env).await;
    // A vendor body that cannot be read is a 502 (bad gateway), never a 500 or a wrong resource.
    set_faults_everywhere(
        &env,
        &Faults {
            malformed_rate: 0.15,
            truncated_rate: 0.15,
            ..Faults::default()
        },
    );
    let tally = run(&env, &probes, 1, &[StatusCode::BAD_GATEWAY]).await;
    eprintln!("15% malformed + 15% truncated: {tally:?}");
    set_faults_everywhere(&env, &Faults::default());

    env.zoom().set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    one_vendor_failing(&env, &probes, "zoom", "drchrono", StatusCode::BAD_GATEWAY).await;
    env.zoom().set_faults(Faults {
        truncated_rate: 1.0,
        ..Faults::default()
    });
    one_vendor_failing(&env, &probes, "zoom", "drchrono", StatusCode::BAD_GATEWAY).await;
    still_serving(&env).await;
}

#[tokio::test]
async fn dropped_connections_and_a_vendor_that_is_down() {
    let env = three_vendors().await;
    let probes = workload(&env).await;
    // A connection closed under the request is the vendor being unavailable (503).
    set_faults_everywhere(
        &env,
        &Faults {
            drop_rate: 0.3,
            ..Faults::default()
        },
    );
    let tally = run(&env, &probes, 1, &[StatusCode::SERVICE_UNAVAILABLE]).await;
    eprintln!("30% dropped connections: {tally:?}");
    // Retried (the reads are idempotent): a read fails only on four drops in a row.
    assert!(tally.read_success() >= 0.9, "{tally:?}");
    set_faults_everywhere(&env, &Faults::default());

    env.zoom().set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    one_vendor_failing(&env, &probes, "zoom", "drchrono", StatusCode::SERVICE_UNAVAILABLE).await;
    // Zoom gone altogether (connections refused).
    env.zoom().shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    one_vendor_failing(&env, &probes, "zoom", "drchrono", StatusCode::SERVICE_UNAVAILABLE).await;
    still_serving(&env).await;
}

#[tokio::test]
async fn vendor_tokens_expiring_mid_pagination() {
    let env = three_vendors().await;
    let gw = Gw::of(&env);
    let expire = || {
        env.sim.expire_access_tokens();
        env.zoom().expire_access_tokens();
        env.noa().expire_access_tokens();
    };
    let grants = || {
        (
            env.sim.token_grants(),
            env.zoom().token_grants(),
            env.noa().token_grants(),
        )
    };
    for first in [
        "/fhir/Patient?_count=4",
        "/fhir/DocumentReference?_count=10",
        "/fhir/Appointment?_count=20",
    ] {
        let (truth, _) = walk(&gw, first, &|| {}, &[]).await;
        let before = grants();
        let (walked, _) = walk(&gw, first, &expire, &[]).await;
        let unique: BTreeSet<&String> = walked.iter().collect();
        assert_eq!(unique.len(), walked.len(), "{first}: a match twice");
        assert_eq!(walked, truth, "{first}: another walk once tokens expire between pages");
        let after = grants();
        assert!(after.0 > before.0, "{first}: DrChrono tokens were refreshed");
        if first.contains("DocumentReference") {
            assert!(
                after.1 > before.1 && after.2 > before.2,
                "{first}: Zoom and Noa tokens too"
            );
            assert_eq!(
                sources_of(&walked),
                BTreeSet::from(SOURCES),
                "{first} federates the three vendors"
            );
        }
        if first.contains("Patient") {
            assert_eq!(walked.len(), env.sim.dataset().patients.len(), "{first}: every patient");
        }
    }
    still_serving(&env).await;
}

/// A lenient federated search while the EHR (DrChrono) fails: Zoom's notes for the patient must be
/// there, or Zoom named as failed too — never silently missing.
///
/// The Zoom adapter confirms each note's EHR patient through `GatewayResolver::exists`, which
/// answers an error (not `false`) when the EHR read fails; the adapter then keeps the literal
/// `Patient/drchrono-…` its EHR context names, so the gateway's own `patient=` filter still
/// matches the note. (A logical subject there used to make the notes vanish from the Bundle with no
/// warning about Zoom.)
#[tokio::test]
async fn a_failing_ehr_does_not_silently_drop_linked_zoom_notes() {
    let env = drchrono_and_zoom().await;
    let gw = Gw::of(&env);
    let patient = shared_patient(&env);
    let path = format!("/fhir/DocumentReference?patient=drchrono-{patient}&_count=200");
    let zoom_notes = |answer: &Answer| -> Vec<String> {
        ids(&entries(&answer.body, "match"))
            .into_iter()
            .filter(|id| source_of(id) == "zoom")
            .collect()
    };
    // The same search on a twin practice without faults.
    let twin = drchrono_and_zoom().await;
    let truth = zoom_notes(&get(&Gw::of(&twin), &path, &[]).await);
    assert!(!truth.is_empty());

    env.sim.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    let answer = get(&gw, &path, &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.failed_sources().contains("drchrono"), "{}", answer.body);
    assert!(
        answer.failed_sources().contains("zoom") || zoom_notes(&answer) == truth,
        "Zoom's notes for the patient are silently missing: {:?} of {truth:?}; warnings: {:?}",
        zoom_notes(&answer),
        answer.warnings()
    );
}
