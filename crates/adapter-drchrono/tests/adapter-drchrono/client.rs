//! The DrChrono client over real loopback HTTP: OAuth refresh and rotation against the simulator,
//! origin pinning of pagination links and redirects, and vendor failures as `AdapterError`s.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapter::AdapterError;
use adapter::vault::{TokenVault, VaultTokens};
use adapter_drchrono::client::DrChronoClient;
use adapter_drchrono::{DrChronoConfig, Secret};
use chrono::NaiveDate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;
use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig, SimHandle};
use vendor_sim::faults::Faults;

fn anchor() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

async fn spawn_sim(tweak: impl FnOnce(&mut DrChronoSimConfig)) -> SimHandle {
    let mut config = DrChronoSimConfig::small(7, anchor());
    tweak(&mut config);
    DrChronoSim::new(config)
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn config_for(sim: &SimHandle) -> DrChronoConfig {
    let c = sim.config();
    DrChronoConfig::new(
        c.client_id.clone(),
        c.client_secret.clone(),
        c.initial_refresh_token.clone(),
        c.redirect_uri.clone(),
    )
    .with_base_url(Url::parse(&sim.base_url()).unwrap())
}

fn client_for(sim: &SimHandle) -> DrChronoClient {
    DrChronoClient::new(&config_for(sim)).unwrap()
}

/// A loopback HTTP server answering every request with `respond(request line)`, counting them.
struct TinyServer {
    origin: String,
    hits: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

/// `(status line, content type, body)`; `None` = never answer.
type Reply = Option<(&'static str, &'static str, String)>;

async fn tiny_server(respond: impl Fn(&str) -> Reply + Send + Sync + 'static) -> TinyServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let respond = Arc::new(respond);
    let (h, r) = (hits.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (h, r, respond) = (h.clone(), r.clone(), respond.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let line = text.lines().next().unwrap_or_default().to_owned();
                h.fetch_add(1, Ordering::SeqCst);
                r.lock().unwrap().push(text);
                match respond(&line) {
                    Some((status, content_type, body)) => {
                        let response = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    TinyServer { origin, hits, requests }
}

/// A tiny server with a working token endpoint and `api` answering `api(request line)`.
async fn tiny_vendor(api: impl Fn(&str) -> Reply + Send + Sync + 'static) -> TinyServer {
    tiny_server(move |line| {
        if line.starts_with("POST /o/token/") {
            Some((
                "200 OK",
                "application/json",
                r#"{"access_token":"tiny-access","refresh_token":"tiny-refresh-2","expires_in":172800}"#.into(),
            ))
        } else {
            api(line)
        }
    })
    .await
}

fn tiny_client(server: &TinyServer, timeout: Duration) -> DrChronoClient {
    let mut config = DrChronoConfig::new("id", "secret", "tiny-refresh-1", "http://localhost/cb")
        .with_base_url(Url::parse(&server.origin).unwrap());
    config.request_timeout = timeout;
    DrChronoClient::new(&config).unwrap()
}

fn is_unmappable(e: &AdapterError) -> bool {
    matches!(e, AdapterError::Unmappable { .. })
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_before_the_request() {
    let sim = spawn_sim(|c| c.access_token_ttl = Duration::from_secs(1)).await;
    let client = client_for(&sim);
    assert!(client.get_json("/api/doctors?page_size=1").await.unwrap().is_some());
    assert_eq!(sim.token_grants(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(client.get_json("/api/doctors?page_size=1").await.unwrap().is_some());
    assert_eq!(sim.token_grants(), 2, "the expired token was refreshed");
    // The refresh happened before the request: the simulator never saw a stale token.
    assert_eq!(sim.hits_for("/api/doctors"), 2);
}

#[tokio::test]
async fn a_401_refreshes_once_and_retries_with_the_rotated_refresh_token() {
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    assert!(client.get_json("/api/offices").await.unwrap().is_some());
    assert_eq!(sim.token_grants(), 1);

    // The simulator accepts each refresh token once: the later grants only work because the
    // rotated token of the previous one is used.
    for round in 2..=3 {
        sim.expire_access_tokens();
        sim.reset_hits();
        let value = client.get_json("/api/offices").await.unwrap();
        assert!(value.is_some());
        assert_eq!(sim.token_grants(), round, "one refresh per rejection");
        assert_eq!(sim.hits_for("/api/offices"), 2, "the request was retried once");
    }
}

/// A token vault in memory, as a durable store would hold it; its saves are counted, and a
/// `failing` one refuses every save. The lock is a one-permit semaphore.
struct MemoryVault {
    tokens: Mutex<Option<VaultTokens>>,
    saves: AtomicUsize,
    failing: bool,
    lock: tokio::sync::Semaphore,
}

impl MemoryVault {
    fn new(failing: bool) -> Arc<Self> {
        Arc::new(Self {
            tokens: Mutex::new(None),
            saves: AtomicUsize::new(0),
            failing,
            lock: tokio::sync::Semaphore::new(1),
        })
    }

    fn stored(&self) -> Option<VaultTokens> {
        self.tokens.lock().unwrap().clone()
    }

    fn saves(&self) -> usize {
        self.saves.load(Ordering::SeqCst)
    }

    /// True when every `acquire` was matched by a `release`.
    fn unlocked(&self) -> bool {
        self.lock.available_permits() == 1
    }
}

#[async_trait::async_trait]
impl TokenVault for MemoryVault {
    async fn load(&self) -> Result<Option<VaultTokens>, AdapterError> {
        Ok(self.stored())
    }

    async fn save(&self, tokens: &VaultTokens) -> Result<(), AdapterError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        if self.failing {
            return Err(AdapterError::TokenStore {
                reason: "the disk is full".into(),
            });
        }
        *self.tokens.lock().unwrap() = Some(tokens.clone());
        Ok(())
    }

    async fn acquire(&self) -> Result<(), AdapterError> {
        self.lock.acquire().await.expect("never closed").forget();
        Ok(())
    }

    async fn release(&self) {
        self.lock.add_permits(1);
    }
}

fn unix_now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

#[tokio::test]
async fn the_vault_keeps_the_rotated_tokens_across_a_restart() {
    let sim = spawn_sim(|_| {}).await;
    let vault = MemoryVault::new(false);
    let first = client_for(&sim).with_token_vault(vault.clone());
    assert!(first.get_json("/api/offices").await.unwrap().is_some());
    assert_eq!((sim.token_grants(), vault.saves()), (1, 1));
    let stored = vault.stored().expect("the grant was saved");
    assert_ne!(
        stored.refresh.expose(),
        sim.config().initial_refresh_token,
        "the rotated token"
    );
    assert!(stored.access.is_some());
    assert!(stored.access_refresh_at.is_some_and(|at| at > unix_now() + 3600));
    drop(first);

    // A restarted gateway with the same configuration: its refresh token is spent at DrChrono.
    let forgetful = client_for(&sim);
    assert_eq!(
        forgetful.get_json("/api/offices").await.unwrap_err(),
        AdapterError::VendorAuth { vendor: "drchrono" }
    );
    // With the vault it adopts the stored access token without a grant...
    let restarted = client_for(&sim).with_token_vault(vault.clone());
    assert!(restarted.get_json("/api/offices").await.unwrap().is_some());
    assert_eq!(sim.token_grants(), 1, "the stored access token was used");
    // ...and once DrChrono rejects it, refreshes with the stored refresh token and saves again.
    sim.expire_access_tokens();
    assert!(restarted.get_json("/api/offices").await.unwrap().is_some());
    assert_eq!((sim.token_grants(), vault.saves()), (2, 2));
    let rotated = vault.stored().unwrap();
    assert_ne!(rotated.refresh, stored.refresh);
    assert_ne!(rotated.access, stored.access);
    assert!(vault.unlocked());
}

#[tokio::test]
async fn a_refused_stored_refresh_token_falls_back_to_the_configured_one() {
    let sim = spawn_sim(|_| {}).await;
    let vault = MemoryVault::new(false);
    *vault.tokens.lock().unwrap() = Some(VaultTokens {
        refresh: Secret::new("revoked-refresh-token"),
        access: None,
        access_refresh_at: None,
    });
    let client = client_for(&sim).with_token_vault(vault.clone());
    assert!(client.get_json("/api/offices").await.unwrap().is_some());
    assert_eq!((sim.token_grants(), vault.saves()), (1, 1));
    let stored = vault.stored().unwrap().refresh;
    assert!(![sim.config().initial_refresh_token.as_str(), "revoked-refresh-token"].contains(&stored.expose()));
    assert!(vault.unlocked());
}

#[tokio::test]
async fn a_failed_save_keeps_the_tokens_in_memory() {
    let sim = spawn_sim(|_| {}).await;
    let vault = MemoryVault::new(true);
    let client = client_for(&sim).with_token_vault(vault.clone());
    assert!(client.get_json("/api/offices").await.unwrap().is_some());
    assert_eq!((sim.token_grants(), vault.saves()), (1, 1));
    assert_eq!(vault.stored(), None);
    // The rotated refresh token lives on in memory: the next refresh uses it and saves again.
    sim.expire_access_tokens();
    assert!(client.get_json("/api/offices").await.unwrap().is_some());
    assert_eq!((sim.token_grants(), vault.saves()), (2, 2));
    assert!(vault.unlocked());
}

#[tokio::test]
async fn concurrent_requests_share_one_refresh() {
    let sim = spawn_sim(|_| {}).await;
    let client = Arc::new(client_for(&sim));
    client.get_json("/api/doctors").await.unwrap();
    sim.expire_access_tokens();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_json("/api/doctors").await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().unwrap().is_some());
    }
    assert_eq!(sim.token_grants(), 2, "eight rejected requests, one refresh");
}

#[tokio::test]
async fn a_refused_refresh_token_is_a_vendor_auth_error_without_secrets() {
    let sim = spawn_sim(|_| {}).await;
    let mut config = config_for(&sim);
    config.refresh_token = Secret::new("not-a-valid-refresh-token");
    let client = DrChronoClient::new(&config).unwrap();
    let error = client.get_json("/api/doctors").await.unwrap_err();
    assert_eq!(error, AdapterError::VendorAuth { vendor: "drchrono" });
    let shown = format!("{error} {error:?} {client:?}");
    for secret in ["not-a-valid-refresh-token", &sim.config().client_secret] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert_eq!(sim.hits(), 0, "no API call without a token");
}

#[tokio::test]
async fn a_next_link_on_a_foreign_origin_is_refused_and_never_contacted() {
    let foreign = tiny_server(|_| Some(("200 OK", "application/json", "{}".into()))).await;
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    // Without the fault the link is followed.
    let page = client.get_page("/api/patients?page_size=5").await.unwrap();
    let next = page.next.expect("30 patients make more than one page");
    assert!(next.starts_with(&sim.base_url()));
    assert_eq!(client.get_page(&next).await.unwrap().results.len(), 5);

    sim.set_faults(Faults {
        foreign_next_origin: Some(foreign.origin.clone()),
        ..Faults::default()
    });
    let error = client.get_page("/api/patients?page_size=5").await.unwrap_err();
    assert!(is_unmappable(&error), "{error:?}");
    assert!(!error.to_string().contains(&foreign.origin));
    // A forged continuation is refused before anything is sent.
    let forged = format!("{}/api/patients?page=2", foreign.origin);
    assert!(is_unmappable(&client.get_page(&forged).await.unwrap_err()));
    assert_eq!(foreign.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_same_origin_redirect_is_followed_with_the_token() {
    let sim = spawn_sim(|c| {
        c.redirects = vec![("/api/moved/".into(), "/api/".into())];
    })
    .await;
    let client = client_for(&sim);
    let page = client.get_page("/api/moved/doctors?page_size=2").await.unwrap();
    assert_eq!(page.results.len(), 2);
    // The simulator checks the bearer token on the target only: the token went along.
    assert_eq!(sim.hits_for("/api/moved/"), 1);
    assert_eq!(sim.hits_for("/api/doctors"), 1);
    let id = sim.dataset().doctors[0].id;
    let doctor = client.get_json(&format!("/api/moved/doctors/{id}")).await.unwrap();
    let direct = client.get_json(&format!("/api/doctors/{id}")).await.unwrap();
    assert!(doctor.is_some());
    assert_eq!(doctor, direct);
}

#[tokio::test]
async fn a_redirect_to_a_foreign_origin_is_refused() {
    let foreign = tiny_server(|_| Some(("200 OK", "application/json", "[]".into()))).await;
    let target = format!("{}/api/", foreign.origin);
    let sim = spawn_sim(move |c| c.redirects = vec![("/api/away/".into(), target)]).await;
    let client = client_for(&sim);
    let error = client.get_json("/api/away/doctors").await.unwrap_err();
    assert!(is_unmappable(&error), "{error:?}");
    assert_eq!(foreign.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn redirect_loops_end() {
    let sim = spawn_sim(|c| c.redirects = vec![("/api/loop".into(), "/api/loop".into())]).await;
    let error = client_for(&sim).get_json("/api/loop").await.unwrap_err();
    assert!(is_unmappable(&error), "{error:?}");
    assert_eq!(sim.hits_for("/api/loop"), 6, "the request and five hops");
}

#[tokio::test]
async fn the_rate_limit_is_reported_with_its_retry_after() {
    let sim = spawn_sim(|c| c.hourly_rate_limit = 2).await;
    let client = client_for(&sim);
    client.get_json("/api/doctors").await.unwrap();
    client.get_json("/api/doctors").await.unwrap();
    match client.get_json("/api/doctors").await.unwrap_err() {
        AdapterError::RateLimited {
            vendor,
            retry_after: Some(wait),
        } => {
            assert_eq!(vendor, "drchrono");
            assert!(wait > Duration::ZERO && wait <= Duration::from_secs(3600));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn malformed_and_truncated_bodies_are_unmappable() {
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    let patient = format!("/api/patients/{}", sim.dataset().patients[0].id);
    for faults in [
        Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
        Faults {
            truncated_rate: 1.0,
            ..Faults::default()
        },
    ] {
        sim.set_faults(faults);
        let error = client.get_page("/api/patients").await.unwrap_err();
        assert!(is_unmappable(&error), "{error:?}");
        let error = client.get_json(&patient).await.unwrap_err();
        assert!(is_unmappable(&error), "{error:?}");
    }
}

#[tokio::test]
async fn server_errors_are_unavailable() {
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..3 {
        let error = client.get_json("/api/doctors").await.unwrap_err();
        assert!(matches!(error, AdapterError::Unavailable { .. }), "{error:?}");
        assert!(error.is_transient());
    }
}

#[tokio::test]
async fn missing_objects_are_none_and_bad_requests_invalid() {
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    assert_eq!(client.get_json("/api/patients/999999").await.unwrap(), None);
    // Appointments cannot be listed without since/date/date_range: DrChrono answers 400.
    let error = client.get_page("/api/appointments").await.unwrap_err();
    assert!(matches!(error, AdapterError::InvalidRequest { .. }), "{error:?}");
    // A page past the end of a list has expired.
    let error = client
        .get_page(&format!("{}/api/doctors?page=99", sim.base_url()))
        .await
        .unwrap_err();
    assert_eq!(error, AdapterError::ContinuationExpired { vendor: "drchrono" });
}

#[tokio::test]
async fn pages_in_results_or_data_shape_are_read() {
    let server = tiny_vendor(|line| {
        let body = if line.contains("/api/a") {
            r#"{"next": null, "previous": null, "results": [{"id": 1}, {"id": 2}]}"#
        } else {
            r#"{"next": "/api/b?page=2", "previous": null, "data": [{"id": 3}]}"#
        };
        Some(("200 OK", "application/json", body.into()))
    })
    .await;
    let client = tiny_client(&server, Duration::from_secs(5));
    let a = client.get_page("/api/a").await.unwrap();
    assert_eq!((a.results.len(), a.next), (2, None));
    let b = client.get_page("/api/b").await.unwrap();
    assert_eq!(b.results, vec![serde_json::json!({"id": 3})]);
    assert_eq!(
        b.next.as_deref(),
        Some(format!("{}/api/b?page=2", server.origin).as_str())
    );
    // The token request is form-encoded and carries the refresh-token grant.
    let requests = server.requests.lock().unwrap();
    let token = requests.iter().find(|r| r.starts_with("POST /o/token/")).unwrap();
    assert!(token.contains("application/x-www-form-urlencoded"), "{token}");
    let api = requests.iter().find(|r| r.starts_with("GET /api/a")).unwrap();
    assert!(api.to_ascii_lowercase().contains("authorization: bearer tiny-access"));
}

#[tokio::test]
async fn a_silent_vendor_times_out_and_a_closed_port_is_unavailable() {
    let server = tiny_vendor(|_| None).await;
    let client = tiny_client(&server, Duration::from_millis(300));
    assert_eq!(
        client.get_json("/api/doctors").await.unwrap_err(),
        AdapterError::Timeout { vendor: "drchrono" }
    );

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = DrChronoConfig::new("id", "secret", "refresh", "http://localhost/cb")
        .with_base_url(Url::parse(&origin).unwrap());
    let error = DrChronoClient::new(&config)
        .unwrap()
        .get_json("/api/doctors")
        .await
        .unwrap_err();
    assert!(matches!(error, AdapterError::Unavailable { .. }), "{error:?}");
}

#[tokio::test]
async fn a_refused_fresh_token_is_a_vendor_auth_error() {
    let server = tiny_vendor(|_| Some(("401 Unauthorized", "application/json", r#"{"detail":"no"}"#.into()))).await;
    let client = tiny_client(&server, Duration::from_secs(5));
    assert_eq!(
        client.get_json("/api/doctors").await.unwrap_err(),
        AdapterError::VendorAuth { vendor: "drchrono" }
    );
    let requests = server.requests.lock().unwrap();
    let tokens = requests.iter().filter(|r| r.starts_with("POST")).count();
    let gets = requests.iter().filter(|r| r.starts_with("GET")).count();
    assert_eq!((tokens, gets), (2, 2), "one refresh and one retry, no more");
}

#[tokio::test]
async fn server_errors_of_gets_are_retried_and_the_breaker_opens() {
    let server = tiny_vendor(|_| Some(("503 Service Unavailable", "text/html", "<h1>down</h1>".into()))).await;
    let gets = |server: &TinyServer| {
        let requests = server.requests.lock().unwrap();
        requests.iter().filter(|r| r.starts_with("GET /api/doctors")).count()
    };
    let mut config = DrChronoConfig::new("id", "secret", "tiny-refresh-1", "http://localhost/cb")
        .with_base_url(Url::parse(&server.origin).unwrap());
    config.resilience.backoff_base = Duration::from_millis(1);
    config.resilience.backoff_max = Duration::from_millis(5);
    config.resilience.breaker_failures = 2;
    let client = DrChronoClient::new(&config).unwrap();
    let error = client.get_json("/api/doctors").await.unwrap_err();
    assert!(matches!(error, AdapterError::Unavailable { .. }), "{error:?}");
    assert_eq!(gets(&server), 4, "the request and three retries");
    assert_eq!(client.health().retries, 3);
    client.get_json("/api/doctors").await.unwrap_err();
    assert_eq!(client.health().breaker, adapter::BreakerState::Open);
    // Open: refused without reaching DrChrono.
    let error = client.get_json("/api/doctors").await.unwrap_err();
    assert!(matches!(error, AdapterError::Unavailable { .. }), "{error:?}");
    assert_eq!(gets(&server), 8);
    assert_eq!(client.health().breaker_rejections, 1);
}

#[tokio::test]
async fn the_token_request_is_not_retried() {
    let server = tiny_server(|line| {
        if line.starts_with("POST /o/token/") {
            Some(("503 Service Unavailable", "application/json", "{}".into()))
        } else {
            Some(("200 OK", "application/json", "{}".into()))
        }
    })
    .await;
    let client = tiny_client(&server, Duration::from_secs(5));
    let error = client.get_json("/api/doctors").await.unwrap_err();
    assert!(matches!(error, AdapterError::Unavailable { .. }), "{error:?}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_hourly_budget_refuses_before_drchrono_does() {
    // Keep clear of the top of the hour, where the budget's window turns.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if 3600 - secs % 3600 < 3 {
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let sim = spawn_sim(|_| {}).await;
    let mut config = config_for(&sim);
    config.hourly_limit = 2;
    config.resilience.deadline = Duration::from_secs(1);
    let client = DrChronoClient::new(&config).unwrap();
    client.get_json("/api/doctors").await.unwrap();
    client.get_json("/api/offices").await.unwrap();
    let budget = &client.health().budgets[0];
    assert_eq!(
        (budget.label.as_str(), budget.limit, budget.remaining),
        ("hourly", 2, 0)
    );
    match client.get_json("/api/doctors").await.unwrap_err() {
        AdapterError::RateLimited {
            vendor: "drchrono",
            retry_after: Some(wait),
        } => assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(3600)),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.hits(), 2, "the third call never reached DrChrono");
    assert_eq!(client.health().budget_rejections, 1);
}
