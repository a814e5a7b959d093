//! The Noa client over real loopback HTTP: consumer sign-in against the simulator (cached, renewed
//! before expiry and once after a 401), `api-version` on every request, Noa's answers as
//! `AdapterError`s (rate limits, server errors, broken bodies, timeouts, redirects), and never a
//! secret, token or vendor text in an error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter::AdapterError;
use adapter_noa::NoaConfig;
use adapter_noa::client::{NoaClient, Reply};
use adapter_noa::config::Endpoint;
use chrono::NaiveDate;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;
use vendor_sim::noa::{EhrRefs, Faults, NoaSim, NoaSimConfig, NoaSimHandle};

const HOOK: &str = "noa-webhook-path-secret-0123456789abcdef";
const SESSIONS: &str = "/api/v1/consumers/sessions";
const SIGN_IN: &str = "/api/v1/clients/authenticate";

fn anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, 14).unwrap()
}

async fn spawn_sim(tweak: impl FnOnce(&mut NoaSimConfig)) -> NoaSimHandle {
    let mut config = NoaSimConfig::small(11, anchor(), EhrRefs::default());
    tweak(&mut config);
    NoaSim::new(config).spawn("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn config_for(sim: &NoaSimHandle) -> NoaConfig {
    let c = sim.config();
    NoaConfig::new(c.client_id.clone(), c.client_secret.clone(), HOOK)
        .with_api_base(Url::parse(&sim.api_base_url()).unwrap())
}

fn client_for(sim: &NoaSimHandle) -> NoaClient {
    NoaClient::new(&config_for(sim)).unwrap()
}

async fn list(client: &NoaClient) -> Result<Option<serde_json::Value>, AdapterError> {
    client
        .get_page(Endpoint::Sessions, &[("pageSize", "2".into())], None)
        .await
}

#[tokio::test]
async fn the_consumer_token_is_signed_in_for_once_and_cached() {
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    for _ in 0..3 {
        let page = list(&client).await.unwrap().unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
    }
    assert_eq!(sim.token_grants(), 1, "one sign-in for three calls");
    assert_eq!(sim.hits_for(SESSIONS), 3);
}

#[tokio::test]
async fn wrong_credentials_are_a_vendor_auth_error_without_secrets() {
    let sim = spawn_sim(|_| {}).await;
    let mut config = config_for(&sim);
    config.client_secret = "not-the-secret".into();
    let client = NoaClient::new(&config).unwrap();
    let error = list(&client).await.unwrap_err();
    assert_eq!(error, AdapterError::VendorAuth { vendor: "noa" });
    let shown = format!("{error} {error:?} {client:?} {config:?}");
    for secret in ["not-the-secret", &sim.config().client_secret, HOOK] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert_eq!(sim.hits_for(SESSIONS), 0, "no API call without a token");
    assert_eq!(sim.token_grants(), 0);
}

#[tokio::test]
async fn an_expired_token_is_replaced_once_and_the_call_retried() {
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    list(&client).await.unwrap();
    for round in 2..=3 {
        sim.expire_access_tokens();
        sim.reset_hits();
        let page = list(&client).await.unwrap().unwrap();
        assert!(page["items"].is_array());
        assert_eq!(sim.token_grants(), round, "one new sign-in per rejection");
        assert_eq!(sim.hits_for(SESSIONS), 2, "the refused call and its retry");
    }
}

#[tokio::test]
async fn an_expiring_token_is_replaced_before_the_request() {
    let sim = spawn_sim(|c| c.token_ttl = Duration::from_secs(1)).await;
    let client = client_for(&sim);
    list(&client).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sim.reset_hits();
    list(&client).await.unwrap();
    assert_eq!(sim.token_grants(), 2, "the expiring token was replaced");
    assert_eq!(sim.hits_for(SESSIONS), 1, "Noa never saw the stale token");
}

#[tokio::test]
async fn every_request_carries_the_configured_api_version() {
    let sim = spawn_sim(|_| {}).await;
    let mut config = config_for(&sim);
    config.api_version = "2.0".into();
    let client = NoaClient::new(&config).unwrap();
    // The simulator only speaks 1.0: the sign-in is refused (400) as a credentials problem, and
    // nothing else is tried.
    assert_eq!(
        list(&client).await.unwrap_err(),
        AdapterError::VendorAuth { vendor: "noa" }
    );

    let server = tiny_noa(|_| Some(("200 OK", String::new(), r#"{"items":[]}"#.into()))).await;
    let client = tiny_client(&server, Duration::from_secs(5));
    list(&client).await.unwrap();
    client
        .write(Method::PUT, Endpoint::Facility("7"), Some(&json!({"name": "x"})))
        .await
        .unwrap();
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests.len(), 3);
    for request in requests.iter() {
        let line = request.lines().next().unwrap();
        assert!(line.contains("?api-version=1.0"), "{line}");
    }
    assert!(requests[0].starts_with("POST /api/v1/clients/authenticate?api-version=1.0 "));
    assert!(requests[0].contains(r#"{"clientId":"client-1","secret":"secret-1"}"#));
    assert!(
        requests[1]
            .to_ascii_lowercase()
            .contains("authorization: bearer tiny-access")
    );
}

#[tokio::test]
async fn answers_have_their_meaning() {
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    let unknown = "0f8fad5b-d9cb-469f-a165-70867728950e";
    assert_eq!(client.get(Endpoint::SessionStatus(unknown), &[]).await, Ok(None));
    let malformed = client.get(Endpoint::SessionStatus("not-a-uuid"), &[]).await;
    assert!(
        matches!(malformed, Err(AdapterError::InvalidRequest { .. })),
        "{malformed:?}"
    );
    let expired = client.get_page(Endpoint::Sessions, &[], Some("no-such-token")).await;
    assert_eq!(expired, Err(AdapterError::ContinuationExpired { vendor: "noa" }));
    let missing = client
        .write(
            Method::PUT,
            Endpoint::Doctor {
                facility: "1",
                doctor: "2",
            },
            Some(&json!({"name": "Dr"})),
        )
        .await;
    assert_eq!(missing, Ok(Reply::NotFound));
}

#[tokio::test]
async fn simulator_faults_become_transient_or_unmappable_errors() {
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    list(&client).await.unwrap();
    sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let error = list(&client).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    sim.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    assert!(matches!(
        list(&client).await,
        Err(AdapterError::Unmappable { vendor: "noa", .. })
    ));
    sim.set_faults(Faults::default());
    assert!(list(&client).await.is_ok());
}

#[tokio::test]
async fn refusals_rate_limits_and_broken_answers() {
    let server = tiny_noa(|line| {
        let (status, headers, body) = if line.contains("/limited") {
            ("429 Too Many Requests", "retry-after: 7\r\n".to_owned(), "{}")
        } else if line.contains("/down") {
            ("503 Service Unavailable", String::new(), "{}")
        } else if line.contains("/garbage") {
            ("200 OK", String::new(), "{not json")
        } else if line.contains("/moved") {
            ("302 Found", "location: https://elsewhere.example/\r\n".to_owned(), "")
        } else if line.contains("/busy") {
            ("409 Conflict", String::new(), r#"{"detail":"busy"}"#)
        } else if line.contains("/hang") {
            return None;
        } else {
            (
                "401 Unauthorized",
                String::new(),
                r#"{"title":"Unauthorized","detail":"PHI: Jane Doe"}"#,
            )
        };
        Some((status, headers, body.to_owned()))
    })
    .await;
    // Each answer as it maps, once: no retries here (see the test above).
    let client = tiny_client_with(&server, Duration::from_millis(500), |c| c.resilience.max_retries = 0);
    let get = |id: &'static str| {
        let client = &client;
        async move { client.get(Endpoint::SessionStatus(id), &[]).await }
    };
    assert_eq!(
        get("limited").await,
        Err(AdapterError::RateLimited {
            vendor: "noa",
            retry_after: Some(Duration::from_secs(7))
        })
    );
    assert!(matches!(get("down").await, Err(AdapterError::Unavailable { .. })));
    assert!(matches!(get("garbage").await, Err(AdapterError::Unmappable { .. })));
    assert!(matches!(get("moved").await, Err(AdapterError::Unmappable { .. })));
    assert_eq!(server.hits.load(Ordering::SeqCst), 5, "a redirect is not followed");
    assert_eq!(
        client
            .write::<()>(Method::POST, Endpoint::SessionRegenerate("busy"), None)
            .await,
        Ok(Reply::Conflict)
    );
    assert_eq!(get("hang").await, Err(AdapterError::Timeout { vendor: "noa" }));

    // Always 401: one new sign-in, one retry, then the gateway's credentials are at fault.
    let before = server.hits.load(Ordering::SeqCst);
    let error = get("refused").await.unwrap_err();
    assert_eq!(error, AdapterError::VendorAuth { vendor: "noa" });
    assert_eq!(server.hits.load(Ordering::SeqCst) - before, 3, "call, sign-in, retry");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("Jane") && !shown.contains("tiny-access"), "{shown}");
}

/// A loopback HTTP server answering every request with `respond(request line)`, keeping the
/// requests (head and body).
struct TinyServer {
    origin: String,
    hits: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

/// `(status line, extra headers, body)`; `None` = never answer.
type Reply3 = Option<(&'static str, String, String)>;

async fn tiny_server(respond: impl Fn(&str) -> Reply3 + Send + Sync + 'static) -> TinyServer {
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
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, then as much body as content-length says.
                loop {
                    if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if data.len() >= end + 4 + length {
                            break;
                        }
                    }
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&data).into_owned();
                let line = text.lines().next().unwrap_or_default().to_owned();
                h.fetch_add(1, Ordering::SeqCst);
                r.lock().unwrap().push(text);
                match respond(&line) {
                    Some((status, headers, body)) => {
                        let response = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
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

/// A tiny Noa: a working sign-in, and `api` for everything else.
async fn tiny_noa(api: impl Fn(&str) -> Reply3 + Send + Sync + 'static) -> TinyServer {
    tiny_server(move |line| {
        if line.starts_with("POST /api/v1/clients/authenticate") {
            Some((
                "200 OK",
                String::new(),
                r#"{"accessToken":"tiny-access","tokenType":"Bearer","expiresIn":3600}"#.into(),
            ))
        } else {
            api(line)
        }
    })
    .await
}

fn tiny_client(server: &TinyServer, timeout: Duration) -> NoaClient {
    tiny_client_with(server, timeout, |_| {})
}

fn tiny_client_with(server: &TinyServer, timeout: Duration, tweak: impl FnOnce(&mut NoaConfig)) -> NoaClient {
    let mut config = NoaConfig::new("client-1", "secret-1", HOOK)
        .with_api_base(Url::parse(&format!("{}/api/v1", server.origin)).unwrap());
    config.request_timeout = timeout;
    tweak(&mut config);
    NoaClient::new(&config).unwrap()
}

#[tokio::test]
async fn reads_are_retried_on_transient_failures_and_writes_are_not() {
    let server = tiny_noa(|_| Some(("503 Service Unavailable", String::new(), "{}".into()))).await;
    let client = tiny_client_with(&server, Duration::from_secs(5), |c| {
        c.resilience.backoff_base = Duration::from_millis(1);
        c.resilience.backoff_max = Duration::from_millis(5);
    });
    let calls = |server: &TinyServer, verb: &str| {
        let requests = server.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.starts_with(verb) && r.contains("/sessions/"))
            .count()
    };
    let error = client.get(Endpoint::SessionStatus("s1"), &[]).await.unwrap_err();
    assert!(matches!(error, AdapterError::Unavailable { .. }), "{error:?}");
    assert_eq!(calls(&server, "GET"), 4, "the read and three retries");
    let error = client
        .write::<()>(Method::POST, Endpoint::SessionRegenerate("s1"), None)
        .await
        .unwrap_err();
    assert!(matches!(error, AdapterError::Unavailable { .. }), "{error:?}");
    assert_eq!(calls(&server, "POST"), 1, "a write is sent once");
    let health = client.health();
    assert_eq!((health.retries, health.budgets.len()), (3, 0));
}

#[tokio::test]
async fn the_sign_in_path_is_a_setting() {
    let server = tiny_server(|line| {
        if line.starts_with("POST /api/v1/auth/login") {
            Some(("200 OK", String::new(), r#"{"accessToken":"t2","expiresIn":60}"#.into()))
        } else {
            Some(("200 OK", String::new(), r#"{"items":[]}"#.into()))
        }
    })
    .await;
    let mut config = NoaConfig::new("client-1", "secret-1", HOOK)
        .with_api_base(Url::parse(&format!("{}/api/v1/", server.origin)).unwrap());
    config.paths.authenticate = "auth/login".into();
    config.paths.sessions = "v2/sessions".into();
    let client = NoaClient::new(&config).unwrap();
    list(&client).await.unwrap();
    let requests = server.requests.lock().unwrap();
    assert!(requests[0].starts_with("POST /api/v1/auth/login?api-version=1.0 "));
    assert!(requests[1].starts_with("GET /api/v1/v2/sessions?api-version=1.0&pageSize=2 "));
    assert!(!requests.iter().any(|r| r.contains(SIGN_IN)));
}
