//! Item 8: a flood of wrong client secrets at the token endpoint, and what it does to the gateway's
//! memory and to legitimate logins. The practice runs in a child process (`serve-child`, see
//! `child.rs`; SMART on FHIR on), so its VmRSS is its own.
//!
//! Per run: the median time of five legitimate logins of each kind, one at a time, without a flood
//! (the baseline); then 3 000 `POST /auth/token` client_credentials requests with wrong secrets,
//! half for `demo-backend` and half for unknown client ids, over 400 concurrent connections, while
//! the child's VmRSS is sampled every 50 ms and the same logins run again, each kind in its own
//! loop, one attempt at a time (50 ms apart), from a client of their own, until the flood ends.
//!
//! The logins: (a) a `demo-backend` token (client_credentials, `client_secret_basic`, scope
//! `system/*.rs`); (b) `patient.demo`'s authorization-code sign-in for the public app `demo-app`
//! (PKCE S256): the login page, the login form (one Argon2 check), the consent page, the code, the
//! token. A login answered 503 (every password-check slot taken) or 429 (a sign-in lock-out) is
//! retried after its `Retry-After` (100 ms without one; also after a transport error) until it
//! succeeds, for at most 30 s; its time to success and the 503s it met are recorded.
//!
//! What the server does with them (smart-auth): every wrong secret, and every unknown client id
//! (`burn_verification`), costs one Argon2 check through the bounded pool (`password.rs`: about one
//! slot per CPU, a short queue, then 503 + `Retry-After: 1`). `demo-backend`'s right secret is
//! checked with Argon2 once and then recognised by its SHA-256 (`token.rs`, `verified_secret`; the
//! child's own start-up token already did that), so the legitimate backend token needs no slot. The
//! sign-in lock-out (`throttle.rs`) counts only failed logins at `POST /auth/authorize/login`, per
//! username and per client address; the token endpoint never touches it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::child::{ChildGateway, Memory};
use crate::report::Row;
use crate::stats::{count, median, median_ms, mib, millis, ms, ratio};
use crate::{Opts, Section};

/// Requests in the flood.
const FLOOD_REQUESTS: usize = 3_000;
/// Flood requests in flight (and connections).
const FLOOD_CONCURRENCY: usize = 400;
/// Legitimate logins of each kind for the baseline.
const BASELINE_LOGINS: usize = 5;
/// The longest a legitimate login may take, retries included.
const LOGIN_CAP: Duration = Duration::from_secs(30);
/// The wait before a retry when the answer names none (or after a transport error).
const DEFAULT_RETRY: Duration = Duration::from_millis(100);
/// How often the child's VmRSS is read during the flood.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// The pause between two legitimate logins of one kind during the flood.
const PAUSE: Duration = Duration::from_millis(50);
/// The demo app's redirect URI, on a loopback port nothing listens on: the flow reads `code` from
/// the redirect's `Location` and never follows it.
const REDIRECT: &str = "http://127.0.0.1:49999/callback";
const USER: &str = "patient.demo";
const PASSWORD: &str = "demo-password";
const USER_SCOPE: &str = "openid fhirUser patient/*.rs";

/// A kind of legitimate login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `demo-backend`: client_credentials with its secret.
    Backend,
    /// `patient.demo` through the login form (authorization code + PKCE, public client).
    SignIn,
}

const KINDS: [Kind; 2] = [Kind::Backend, Kind::SignIn];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Backend => "backend token",
            Kind::SignIn => "user sign-in",
        }
    }
}

/// One legitimate login, retries included.
#[derive(Debug, Default)]
struct Login {
    /// From the first request to the token (or to giving up).
    elapsed: Duration,
    /// 503 answers met (every password-check slot taken, or another capacity limit).
    busy: u32,
    /// 429 answers met (a sign-in lock-out).
    locked: u32,
    /// Transport errors met.
    errors: u32,
    /// Why it did not succeed.
    failure: Option<String>,
}

/// Logins by kind.
#[derive(Debug, Default)]
struct Logins {
    backend: Vec<Login>,
    user: Vec<Login>,
}

impl Logins {
    fn of(&self, kind: Kind) -> &[Login] {
        match kind {
            Kind::Backend => &self.backend,
            Kind::SignIn => &self.user,
        }
    }

    fn of_mut(&mut self, kind: Kind) -> &mut Vec<Login> {
        match kind {
            Kind::Backend => &mut self.backend,
            Kind::SignIn => &mut self.user,
        }
    }
}

/// The times to success of the logins that succeeded.
fn successes(logins: &[Login]) -> Vec<Duration> {
    logins
        .iter()
        .filter(|l| l.failure.is_none())
        .map(|l| l.elapsed)
        .collect()
}

/// The flood's answers.
#[derive(Debug, Default)]
struct Flood {
    elapsed: Duration,
    /// Answers by HTTP status.
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer, and the first such error.
    errors: u64,
    first_error: Option<String>,
}

/// One run's figures.
struct Run {
    baseline: Logins,
    during: Logins,
    flood: Flood,
    /// Just before the flood.
    before: Memory,
    /// The highest VmRSS sampled during the flood, and the samples taken.
    peak_rss: u64,
    samples: usize,
    /// Right after the flood and the logins running beside it.
    after: Memory,
}

pub async fn run(opts: &Opts) -> Result<Section> {
    let what = format!(
        "Token endpoint flood: {} `POST /auth/token` client_credentials with wrong secrets (half `demo-backend`, \
         half unknown client ids) over {FLOOD_CONCURRENCY} connections; gateway in a child process",
        count(FLOOD_REQUESTS as f64)
    );
    eprintln!("  {what}");
    let mut runs = Vec::new();
    for run in 0..opts.runs {
        let mb = opts.cache_mb;
        let child = tokio::task::spawn_blocking(move || ChildGateway::spawn(mb)).await??;
        let result = one_run(&child).await;
        tokio::task::spawn_blocking(move || drop(child)).await?;
        let r = result?;
        let kind_line = |kind: Kind| {
            let during = r.during.of(kind);
            format!(
                "{} {} → {} ({} attempts, {} 503s)",
                kind.name(),
                millis(median_ms(&successes(r.baseline.of(kind)))),
                millis(median_ms(&successes(during))),
                during.len(),
                during.iter().map(|l| u64::from(l.busy)).sum::<u64>()
            )
        };
        eprintln!(
            "    run {}: flood {:.2} s ({} req/s): {}; VmRSS {} → peak {} ({} samples), VmHWM {}; {}; {}",
            run + 1,
            r.flood.elapsed.as_secs_f64(),
            count(FLOOD_REQUESTS as f64 / r.flood.elapsed.as_secs_f64()),
            statuses(&r.flood.statuses, r.flood.errors),
            mib(r.before.rss as f64),
            mib(r.peak_rss as f64),
            r.samples,
            mib(r.after.hwm as f64),
            kind_line(Kind::Backend),
            kind_line(Kind::SignIn),
        );
        runs.push(r);
    }
    Ok(section(&what, &runs))
}

/// The baseline, then the flood with the sampler and the legitimate logins beside it.
async fn one_run(child: &ChildGateway) -> Result<Run> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let legit = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    let mut baseline = Logins::default();
    for kind in KINDS {
        for _ in 0..BASELINE_LOGINS {
            let l = login(kind, &legit, &child.base).await;
            baseline.of_mut(kind).push(l);
        }
    }

    let before = child.status()?;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_rss(child.pid(), done.clone()));
    let loops: Vec<_> = KINDS
        .iter()
        .map(|&kind| {
            let http = legit.clone();
            let base = child.base.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    out.push(login(kind, &http, &base).await);
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                    tokio::time::sleep(PAUSE).await;
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                }
                out
            })
        })
        .collect();
    let flood = flood(&child.base).await;
    done.store(true, Ordering::Release);
    let mut during = Logins::default();
    for (kind, handle) in KINDS.into_iter().zip(loops) {
        *during.of_mut(kind) = handle.await?;
    }
    let (peak_rss, samples) = sampler.await?;
    let after = child.status()?;
    Ok(Run {
        baseline,
        during,
        flood: flood?,
        before,
        peak_rss,
        samples,
        after,
    })
}

/// The highest VmRSS of `pid`, read every 50 ms until `done` (once more after it), and the reads.
async fn sample_rss(pid: u32, done: Arc<AtomicBool>) -> (u64, usize) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut peak, mut samples) = (0u64, 0usize);
    loop {
        tick.tick().await;
        let finished = done.load(Ordering::Acquire);
        if let Ok(m) = Memory::of(pid) {
            peak = peak.max(m.rss);
            samples += 1;
        }
        if finished {
            return (peak, samples);
        }
    }
}

/// 3 000 token requests with wrong secrets, 400 at a time, each on a connection of the flood's own
/// client; the answers by status.
async fn flood(base: &str) -> Result<Flood> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(FLOOD_CONCURRENCY)
        .timeout(Duration::from_secs(60))
        .build()?;
    let http = &http;
    let url = format!("{base}/auth/token");
    let url = url.as_str();
    let started = Instant::now();
    let answers: Vec<Result<StatusCode, String>> = futures::stream::iter(0..FLOOD_REQUESTS)
        .map(move |i| async move {
            let (id, secret) = if i % 2 == 0 {
                ("demo-backend".to_owned(), format!("wrong-secret-{i}"))
            } else {
                (format!("flood-client-{i}"), format!("secret-{i}"))
            };
            let sent = http
                .post(url)
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials"), ("scope", "system/*.rs")])
                .send()
                .await;
            match sent {
                Ok(r) => {
                    let status = r.status();
                    // Read the body so the connection can carry the next request.
                    let _ = r.bytes().await;
                    Ok(status)
                }
                Err(e) => Err(e.to_string()),
            }
        })
        .buffer_unordered(FLOOD_CONCURRENCY)
        .collect()
        .await;
    let mut flood = Flood {
        elapsed: started.elapsed(),
        ..Flood::default()
    };
    for answer in answers {
        match answer {
            Ok(status) => *flood.statuses.entry(status.as_u16()).or_insert(0) += 1,
            Err(e) => {
                flood.errors += 1;
                flood.first_error.get_or_insert(e);
            }
        }
    }
    Ok(flood)
}

/// One legitimate login of `kind`, retried through 503s and 429s for at most 30 s.
async fn login(kind: Kind, http: &reqwest::Client, base: &str) -> Login {
    let started = Instant::now();
    let deadline = started + LOGIN_CAP;
    let mut login = Login::default();
    let result = match kind {
        Kind::Backend => backend_token(http, base, deadline, &mut login).await,
        Kind::SignIn => sign_in(http, base, deadline, &mut login).await,
    }
    .map(drop);
    login.elapsed = started.elapsed();
    login.failure = result.err();
    login
}

/// Sends what `make` builds until the answer is neither 503 nor 429, waiting for each such
/// answer's `Retry-After` (or 100 ms; also after a transport error); gives up when the next try
/// would start after `deadline`.
async fn send_retrying(
    make: impl Fn() -> reqwest::RequestBuilder,
    deadline: Instant,
    login: &mut Login,
) -> Result<reqwest::Response, String> {
    let mut last_error = None;
    loop {
        let wait = match make().send().await {
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE || r.status() == StatusCode::TOO_MANY_REQUESTS => {
                if r.status() == StatusCode::SERVICE_UNAVAILABLE {
                    login.busy += 1;
                } else {
                    login.locked += 1;
                }
                let wait = retry_after(&r);
                let _ = r.bytes().await;
                wait
            }
            Ok(r) => return Ok(r),
            Err(e) => {
                login.errors += 1;
                last_error = Some(e.to_string());
                DEFAULT_RETRY
            }
        };
        if Instant::now() + wait > deadline {
            return Err(format!(
                "no success within {} s ({} 503s, {} 429s, {} transport errors{})",
                LOGIN_CAP.as_secs(),
                login.busy,
                login.locked,
                login.errors,
                last_error.map(|e| format!("; last: {e}")).unwrap_or_default()
            ));
        }
        tokio::time::sleep(wait).await;
    }
}

/// `Retry-After` in seconds, else 100 ms.
fn retry_after(r: &reqwest::Response) -> Duration {
    r.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY, Duration::from_secs)
}

/// A `demo-backend` token: client_credentials, `client_secret_basic`, `system/*.rs`.
async fn backend_token(
    http: &reqwest::Client,
    base: &str,
    deadline: Instant,
    login: &mut Login,
) -> Result<Value, String> {
    let url = format!("{base}/auth/token");
    let r = send_retrying(
        || {
            http.post(&url)
                .basic_auth("demo-backend", Some("demo-secret"))
                .form(&[("grant_type", "client_credentials"), ("scope", "system/*.rs")])
        },
        deadline,
        login,
    )
    .await?;
    token_answer(r).await
}

/// A token endpoint's answer that carries an access token: its JSON.
async fn token_answer(r: reqwest::Response) -> Result<Value, String> {
    let status = r.status();
    let text = r
        .text()
        .await
        .map_err(|e| format!("the token endpoint's answer ({status}): {e}"))?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status == StatusCode::OK && body["access_token"].is_string() {
        Ok(body)
    } else {
        Err(format!("the token endpoint answered {status}: {}", snippet(&text)))
    }
}

/// `patient.demo`'s sign-in for `demo-app`, as a browser without JavaScript would: the
/// authorization request (PKCE S256), the login form, the consent page (Allow), then the code
/// exchanged for a token.
async fn sign_in(http: &reqwest::Client, base: &str, deadline: Instant, login: &mut Login) -> Result<Value, String> {
    let verifier = format!("{}{}", random_hex(), random_hex());
    let challenge = BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()));
    let state = random_hex();
    let fhir = format!("{base}/fhir");
    let mut authorize = url::Url::parse(&format!("{base}/auth/authorize")).map_err(|e| e.to_string())?;
    authorize.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "demo-app"),
        ("redirect_uri", REDIRECT),
        ("scope", USER_SCOPE),
        ("state", state.as_str()),
        ("aud", fhir.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    let authorize = authorize.to_string();

    // The login page.
    let r = send_retrying(|| http.get(&authorize), deadline, login).await?;
    let page = html(r, "the authorization request").await?;
    if !page.contains("id=\"login\"") {
        return Err(format!("no login page: {}", snippet(&page)));
    }
    let (action, tx) = form(&page).ok_or_else(|| format!("no login form: {}", snippet(&page)))?;

    // The password (a 503 or 429 answers the login page again, for the same transaction).
    let r = send_retrying(
        || {
            http.post(&action)
                .form(&[("tx", tx.as_str()), ("username", USER), ("password", PASSWORD)])
        },
        deadline,
        login,
    )
    .await?;
    let page = html(r, "the login").await?;
    if !page.contains("id=\"allow\"") {
        return Err(format!("no consent page after signing in: {}", snippet(&page)));
    }
    let (action, tx) = form(&page).ok_or_else(|| format!("no consent form: {}", snippet(&page)))?;

    // Allow: a redirect with the code.
    let r = send_retrying(
        || http.post(&action).form(&[("tx", tx.as_str()), ("decision", "allow")]),
        deadline,
        login,
    )
    .await?;
    let status = r.status();
    let location = r
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("the consent was answered {status} without a redirect"))?;
    let redirect = url::Url::parse(&location).map_err(|e| format!("the redirect `{location}`: {e}"))?;
    let param = |name: &str| {
        redirect
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("state").as_deref() != Some(state.as_str()) {
        return Err(format!("the redirect does not carry the state: {location}"));
    }
    let code = param("code").ok_or_else(|| format!("no code on the redirect: {location}"))?;

    // The token (a public client: no secret, no Argon2).
    let token_url = format!("{base}/auth/token");
    let r = send_retrying(
        || {
            http.post(&token_url).form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", "demo-app"),
                ("code_verifier", verifier.as_str()),
            ])
        },
        deadline,
        login,
    )
    .await?;
    token_answer(r).await
}

/// `patient.demo`'s access token for `demo-app` (`patient/*.rs`, signed in through the login and
/// consent pages) and the patient it is for.
pub async fn patient_token(base: &str) -> anyhow::Result<(String, String)> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut login = Login::default();
    let body = sign_in(&http, base, Instant::now() + LOGIN_CAP, &mut login)
        .await
        .map_err(|e| anyhow::anyhow!("signing in patient.demo: {e}"))?;
    match (body["access_token"].as_str(), body["patient"].as_str()) {
        (Some(token), Some(patient)) => Ok((token.to_owned(), patient.to_owned())),
        _ => anyhow::bail!("the token answer names no access token or patient"),
    }
}

/// The HTML of a 200.
async fn html(r: reqwest::Response, what: &str) -> Result<String, String> {
    let status = r.status();
    let text = r.text().await.map_err(|e| format!("{what}: {e}"))?;
    if status != StatusCode::OK {
        return Err(format!("{what} was answered {status}: {}", snippet(&text)));
    }
    Ok(text)
}

/// A page's form: its action and hidden transaction id.
fn form(html: &str) -> Option<(String, String)> {
    let action = between(html, "action=\"", "\"")?;
    let tx = between(html, "name=\"tx\" value=\"", "\"")?;
    Some((unescape(action), unescape(tx)))
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = from + text[from..].find(end)?;
    Some(&text[from..to])
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The first 200 characters of an answer, on one line.
fn snippet(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// 32 hex digits, different on every call.
fn random_hex() -> String {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let digest = Sha256::digest(format!("{nanos}-{seq}-{}", std::process::id()).as_bytes());
    HEXLOWER.encode(&digest[..16])
}

/// `401: 1 234, 503: 1 766` (and the requests that got no answer).
fn statuses(by_status: &BTreeMap<u16, u64>, errors: u64) -> String {
    let mut parts: Vec<String> = by_status
        .iter()
        .map(|(s, n)| format!("{s}: {}", count(*n as f64)))
        .collect();
    if errors > 0 {
        parts.push(format!("no answer: {}", count(errors as f64)));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The item's rows and notes.
fn section(what: &str, runs: &[Run]) -> Section {
    let mut section = Section::default();
    let med = |f: &dyn Fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let n = runs.len();

    let secs = med(&|r| r.flood.elapsed.as_secs_f64());
    let rate = med(&|r| FLOOD_REQUESTS as f64 / r.flood.elapsed.as_secs_f64());
    section.rows.push(
        Row::new(8, what, "flood duration; requests/s")
            .gateway(format!("{secs:.2} s; {} req/s", count(rate)))
            .baseline(format!(
                "{} requests, {FLOOD_CONCURRENCY} at a time",
                count(FLOOD_REQUESTS as f64)
            )),
    );

    let mut total: BTreeMap<u16, u64> = BTreeMap::new();
    for r in runs {
        for (s, k) in &r.flood.statuses {
            *total.entry(*s).or_insert(0) += k;
        }
    }
    let errors: u64 = runs.iter().map(|r| r.flood.errors).sum();
    let sent = (n * FLOOD_REQUESTS) as f64;
    let share = |s: u16| 100.0 * total.get(&s).copied().unwrap_or(0) as f64 / sent;
    section.rows.push(
        Row::new(8, what, "flood answers by status (all runs)")
            .gateway(statuses(&total, errors))
            .baseline(format!("{n} × {} requests", count(FLOOD_REQUESTS as f64)))
            .comparison(format!(
                "{:.1}% refused as wrong (401), {:.1}% as busy (503)",
                share(401),
                share(503)
            ))
            .target("401, or 503 + Retry-After when the Argon2 pool is full"),
    );
    let others: Vec<String> = total
        .iter()
        .filter(|(s, _)| !matches!(**s, 401 | 503))
        .map(|(s, k)| format!("{s} ×{k}"))
        .collect();
    if !others.is_empty() {
        section.notes.push(format!(
            "item 8: the flood got answers other than 401 and 503: {}",
            others.join(", ")
        ));
    }
    if errors > 0 {
        let first = runs
            .iter()
            .find_map(|r| r.flood.first_error.clone())
            .unwrap_or_default();
        section.notes.push(format!(
            "item 8: {errors} flood requests got no answer (first: {first})"
        ));
    }

    let before = med(&|r| r.before.rss as f64);
    let peak = med(&|r| r.peak_rss as f64);
    let hwm = med(&|r| r.after.hwm as f64);
    let hwm_before = med(&|r| r.before.hwm as f64);
    section.rows.push(
        Row::new(
            8,
            what,
            "child VmRSS: peak during the flood (read every 50 ms) vs just before; VmHWM after",
        )
        .gateway(format!(
            "{} (VmHWM {}, was {} before the flood; VmRSS after: {})",
            mib(peak),
            mib(hwm),
            mib(hwm_before),
            mib(med(&|r| r.after.rss as f64))
        ))
        .baseline(format!("{} before", mib(before)))
        .comparison(format!(
            "{} (+{})",
            ratio(med(&|r| r.peak_rss as f64 / r.before.rss as f64)),
            mib(med(&|r| r.peak_rss as f64 - r.before.rss as f64))
        )),
    );
    if runs.iter().any(|r| r.samples < 2) {
        section
            .notes
            .push("item 8: fewer than two VmRSS samples in a run's flood: the peak may be missed (see VmHWM)".into());
    }

    for kind in KINDS {
        let measure = match kind {
            Kind::Backend => {
                "legitimate `demo-backend` token (client_credentials, secret): median time to success during the flood vs without"
            }
            Kind::SignIn => {
                "legitimate `patient.demo` sign-in (login form → consent → code → token): median time to success during the flood vs without"
            }
        };
        let during_all: Vec<&Login> = runs.iter().flat_map(|r| r.during.of(kind)).collect();
        let baseline_all: Vec<&Login> = runs.iter().flat_map(|r| r.baseline.of(kind)).collect();
        let busy: u64 = during_all.iter().map(|l| u64::from(l.busy)).sum();
        let max = during_all
            .iter()
            .filter(|l| l.failure.is_none())
            .map(|l| ms(&l.elapsed))
            .fold(f64::NAN, f64::max);
        let with_busy = during_all.iter().filter(|l| l.busy > 0).count();
        let during = med(&|r| median_ms(&successes(r.during.of(kind))));
        let baseline = med(&|r| median_ms(&successes(r.baseline.of(kind))));
        let ratios = med(&|r| median_ms(&successes(r.during.of(kind))) / median_ms(&successes(r.baseline.of(kind))));
        section.rows.push(
            Row::new(8, what, measure)
                .gateway(format!(
                    "{} (max {}; {} attempts, {busy} 503s met by {with_busy} of them)",
                    millis(during),
                    millis(max),
                    during_all.len()
                ))
                .baseline(format!("{} (no flood, {BASELINE_LOGINS} a run)", millis(baseline)))
                .comparison(ratio(ratios)),
        );
        for (when, logins) in [("without the flood", &baseline_all), ("during the flood", &during_all)] {
            let failed: Vec<&&Login> = logins.iter().filter(|l| l.failure.is_some()).collect();
            if let Some(first) = failed.first() {
                section.notes.push(format!(
                    "item 8: {} of {} legitimate {}s {when} did not succeed (first: {})",
                    failed.len(),
                    logins.len(),
                    kind.name(),
                    first.failure.as_deref().unwrap_or_default()
                ));
            }
            let locked: u64 = logins.iter().map(|l| u64::from(l.locked)).sum();
            if locked > 0 {
                section.notes.push(format!(
                    "item 8: legitimate {}s {when} met {locked} sign-in lock-outs (429)",
                    kind.name()
                ));
            }
            let errors: u64 = logins.iter().map(|l| u64::from(l.errors)).sum();
            if errors > 0 {
                section.notes.push(format!(
                    "item 8: legitimate {}s {when} met {errors} transport errors (retried)",
                    kind.name()
                ));
            }
        }
        let baseline_busy: u64 = baseline_all.iter().map(|l| u64::from(l.busy)).sum();
        if baseline_busy > 0 {
            section.notes.push(format!(
                "item 8: the baseline {}s (no flood) met {baseline_busy} 503s",
                kind.name()
            ));
        }
    }
    section
}
