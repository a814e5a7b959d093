//! The Zoom client over real loopback HTTP: Server-to-Server OAuth against the simulator (Basic
//! credentials, caching, refresh before expiry and after a 401), Zoom's error codes as
//! `AdapterError`s, rate limits, broken bodies, and redirects pinned to the configured origins.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter::AdapterError;
use adapter_zoom::client::{Reply, ZoomClient};
use adapter_zoom::{ZoomConfig, ZoomRateLimits};
use chrono::NaiveDate;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;
use vendor_sim::zoom::{EhrRefs, Faults, RateLimits, ZoomSim, ZoomSimConfig, ZoomSimHandle};

fn anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, 14).unwrap()
}

async fn spawn_sim(tweak: impl FnOnce(&mut ZoomSimConfig)) -> ZoomSimHandle {
    let mut config = ZoomSimConfig::small(11, anchor(), EhrRefs::default());
    tweak(&mut config);
    ZoomSim::new(config)
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn config_for(sim: &ZoomSimHandle) -> ZoomConfig {
    let c = sim.config();
    ZoomConfig::new(
        c.account_id.clone(),
        c.client_id.clone(),
        c.client_secret.clone(),
        c.webhook_secret.clone(),
    )
    .with_api_base(Url::parse(&sim.api_base_url()).unwrap())
    .with_oauth_base(Url::parse(&sim.base_url()).unwrap())
}

fn client_for(sim: &ZoomSimHandle) -> ZoomClient {
    ZoomClient::new(&config_for(sim)).unwrap()
}

const PROVIDERS: &[&str] = &["healthcare", "providers"];

/// A loopback HTTP server answering every request with `respond(request line)`, keeping the
/// request heads.
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

/// A tiny Zoom: a working token endpoint, and `api` for everything else.
async fn tiny_zoom(api: impl Fn(&str) -> Reply3 + Send + Sync + 'static) -> TinyServer {
    tiny_server(move |line| {
        if line.starts_with("POST /oauth/token") {
            Some((
                "200 OK",
                String::new(),
                r#"{"access_token":"tiny-access","token_type":"bearer","expires_in":3599}"#.into(),
            ))
        } else {
            api(line)
        }
    })
    .await
}

fn tiny_client(server: &TinyServer, timeout: Duration) -> ZoomClient {
    let mut config = ZoomConfig::new("acct-1", "client-1", "secret-1", "hook-1")
        .with_api_base(Url::parse(&format!("{}/v2", server.origin)).unwrap())
        .with_oauth_base(Url::parse(&server.origin).unwrap());
    config.request_timeout = timeout;
    ZoomClient::new(&config).unwrap()
}

#[tokio::test]
async fn the_token_is_fetched_with_basic_credentials_and_cached() {
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    for _ in 0..3 {
        let page = client.get_page(PROVIDERS, &[], None).await.unwrap().unwrap();
        assert!(page["providers"].as_array().is_some_and(|p| !p.is_empty()));
    }
    assert_eq!(sim.token_grants(), 1, "one token for three calls");
    assert_eq!(sim.hits_for("/v2/healthcare/providers"), 3);

    // The grant as Zoom documents it: query parameters and HTTP Basic client credentials.
    let server = tiny_zoom(|_| Some(("200 OK", String::new(), "{}".into()))).await;
    let client = tiny_client(&server, Duration::from_secs(5));
    client.get(&["users", "me"], &[]).await.unwrap();
    let requests = server.requests.lock().unwrap();
    let token = requests.iter().find(|r| r.starts_with("POST /oauth/token")).unwrap();
    assert!(
        token.starts_with("POST /oauth/token?grant_type=account_credentials&account_id=acct-1 "),
        "{token}"
    );
    let basic = data_encoding::BASE64.encode(b"client-1:secret-1");
    assert!(
        token
            .to_ascii_lowercase()
            .contains(&format!("authorization: basic {}", basic.to_ascii_lowercase())),
        "{token}"
    );
    let api = requests.iter().find(|r| r.starts_with("GET /v2/users/me")).unwrap();
    assert!(api.to_ascii_lowercase().contains("authorization: bearer tiny-access"));
}

#[tokio::test]
async fn wrong_credentials_are_a_vendor_auth_error_without_secrets() {
    let sim = spawn_sim(|_| {}).await;
    let mut config = config_for(&sim);
    config.client_secret = "not-the-secret".into();
    let client = ZoomClient::new(&config).unwrap();
    let error = client.get(PROVIDERS, &[]).await.unwrap_err();
    assert_eq!(error, AdapterError::VendorAuth { vendor: "zoom" });
    let shown = format!("{error} {error:?} {client:?} {config:?}");
    for secret in ["not-the-secret", &sim.config().client_secret] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert_eq!(sim.hits(), 0, "no API call without a token");
    assert_eq!(sim.token_grants(), 0);
}

#[tokio::test]
async fn an_expiring_token_is_replaced_before_the_request() {
    let sim = spawn_sim(|c| c.token_ttl = Duration::from_secs(1)).await;
    let client = client_for(&sim);
    client.get_page(PROVIDERS, &[], None).await.unwrap();
    assert_eq!(sim.token_grants(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.get_page(PROVIDERS, &[], None).await.unwrap();
    assert_eq!(sim.token_grants(), 2, "the expired token was replaced");
    assert_eq!(
        sim.hits_for("/v2/healthcare/providers"),
        2,
        "Zoom never saw the stale token"
    );
}

#[tokio::test]
async fn a_401_fetches_one_new_token_and_retries_once() {
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    client.get_page(PROVIDERS, &[], None).await.unwrap();
    for round in 2..=3 {
        sim.expire_access_tokens();
        sim.reset_hits();
        client.get_page(PROVIDERS, &[], None).await.unwrap();
        assert_eq!(sim.token_grants(), round, "one new token per rejection");
        assert_eq!(sim.hits_for("/v2/healthcare/providers"), 2, "the call was retried once");
    }

    // A token refused even when fresh: one new token, one retry, then VendorAuth.
    let server = tiny_zoom(|_| {
        Some((
            "401 Unauthorized",
            String::new(),
            r#"{"code":124,"message":"Invalid access token."}"#.into(),
        ))
    })
    .await;
    let client = tiny_client(&server, Duration::from_secs(5));
    assert_eq!(
        client.get(PROVIDERS, &[]).await.unwrap_err(),
        AdapterError::VendorAuth { vendor: "zoom" }
    );
    let requests = server.requests.lock().unwrap();
    let tokens = requests.iter().filter(|r| r.starts_with("POST /oauth/token")).count();
    let gets = requests.iter().filter(|r| r.starts_with("GET")).count();
    assert_eq!((tokens, gets), (2, 2));
}

#[tokio::test]
async fn concurrent_requests_share_one_new_token() {
    let sim = spawn_sim(|_| {}).await;
    let client = Arc::new(client_for(&sim));
    client.get_page(PROVIDERS, &[], None).await.unwrap();
    sim.expire_access_tokens();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_page(PROVIDERS, &[], None).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().unwrap().is_some());
    }
    assert_eq!(sim.token_grants(), 2, "eight rejected calls, one new token");
}

#[tokio::test]
async fn zoom_error_codes_become_adapter_errors() {
    let sim = spawn_sim(|c| c.next_page_token_ttl = Duration::from_secs(1)).await;
    let client = client_for(&sim);
    let data = sim.dataset();
    let note = &data.clinical_notes[0];
    let path = ["clinical_notes", "notes", note.note_id.as_str()];

    // 404 / 30009, and the Healthcare API's 404s: not found.
    assert_eq!(
        client
            .get(&["clinical_notes", "notes", "no-such-note"], &[])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client.get(&["healthcare", "visits", "visit_nope"], &[]).await.unwrap(),
        None
    );
    assert_eq!(
        client.get(&["healthcare", "patients", "pat_nope"], &[]).await.unwrap(),
        None
    );
    let patch = client
        .write(
            Method::PATCH,
            &["clinical_notes", "notes", "nope"],
            Some(&json!({"is_note_completed": true})),
        )
        .await
        .unwrap();
    assert_eq!(patch, Reply::NotFound);

    // 30007: forbidden, without Zoom's wording.
    sim.set_denied_note_owners([note.note_owner_user_id.clone()]);
    let error = client.get(&path, &[]).await.unwrap_err();
    assert!(matches!(error, AdapterError::Forbidden { .. }), "{error:?}");
    assert!(!error.to_string().to_ascii_lowercase().contains("admin"), "{error}");
    sim.set_denied_note_owners(Vec::<String>::new());

    // 30001: the feature is off.
    sim.set_clinical_notes_enabled(false);
    let error = client.get(&path, &[]).await.unwrap_err();
    assert!(matches!(error, AdapterError::Forbidden { .. }), "{error:?}");
    sim.set_clinical_notes_enabled(true);

    // 30008: the owner filter names nobody.
    let error = client
        .get_page(
            &["clinical_notes", "notes"],
            &[("note_owner_user_id", "nobody".into())],
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, AdapterError::InvalidRequest { .. }), "{error:?}");

    // 30011: a transient failure; nothing changed.
    sim.fail_next_note_updates(1);
    let error = client
        .write(
            Method::PATCH,
            &path,
            Some(&json!({"is_note_completed": !note.is_note_completed})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, AdapterError::Unavailable { .. }) && error.is_transient(),
        "{error:?}"
    );
    assert_eq!(
        sim.dataset().note(&note.note_id).unwrap().is_note_completed,
        note.is_note_completed
    );

    // An expired next_page_token (400 / 300): the continuation has expired.
    let first = client
        .get_page(&["clinical_notes", "notes"], &[("page_size", "5".into())], None)
        .await
        .unwrap()
        .unwrap();
    let token = first["next_page_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    assert!(
        client
            .get_page(&["clinical_notes", "notes"], &[], Some(&token))
            .await
            .is_ok()
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        client
            .get_page(&["clinical_notes", "notes"], &[], Some(&token))
            .await
            .unwrap_err(),
        AdapterError::ContinuationExpired { vendor: "zoom" }
    );
    // A refused filter without a token is the request's fault.
    let error = client
        .get_page(&["healthcare", "visits"], &[("status", "lost".into())], None)
        .await
        .unwrap_err();
    assert!(matches!(error, AdapterError::InvalidRequest { .. }), "{error:?}");
}

#[tokio::test]
async fn the_rate_limit_is_reported_with_its_retry_after_and_labels_are_tracked() {
    let sim = spawn_sim(|_| {}).await;
    // Zoom's 429 as the caller sees it: not retried (Zoom's `Retry-After: 1` would be waited out).
    let mut config = config_for(&sim);
    config.resilience.max_retries = 0;
    let client = ZoomClient::new(&config).unwrap();
    client.get(&["healthcare", "visits", "visit_nope"], &[]).await.unwrap();
    let light = client
        .rate_limits()
        .into_iter()
        .find(|r| r.category == "Light")
        .unwrap();
    assert_eq!((light.kind.as_deref(), light.limit), (Some("QPS"), Some(80)));

    sim.set_rate_limits(RateLimits {
        light: 1,
        medium: 1,
        heavy: 1,
    });
    let mut limited = None;
    for _ in 0..4 {
        if let Err(error) = client.get(&["healthcare", "visits", "visit_nope"], &[]).await {
            limited = Some(error);
            break;
        }
    }
    match limited {
        Some(AdapterError::RateLimited { vendor, retry_after }) => {
            assert_eq!(vendor, "zoom");
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
        }
        other => panic!("{other:?}"),
    }
    let light = client
        .rate_limits()
        .into_iter()
        .find(|r| r.category == "Light")
        .unwrap();
    assert_eq!((light.limit, light.remaining), (Some(1), Some(0)));
}

#[tokio::test]
async fn malformed_truncated_and_failing_answers() {
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    let visit = sim.dataset().visits[0].id.clone();
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
        let error = client.get_page(PROVIDERS, &[], None).await.unwrap_err();
        assert!(matches!(error, AdapterError::Unmappable { .. }), "{error:?}");
        let error = client.get(&["healthcare", "visits", &visit], &[]).await.unwrap_err();
        assert!(matches!(error, AdapterError::Unmappable { .. }), "{error:?}");
    }
    sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..3 {
        let error = client.get(PROVIDERS, &[]).await.unwrap_err();
        assert!(
            matches!(error, AdapterError::Unavailable { .. }) && error.is_transient(),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn a_silent_zoom_times_out_and_a_closed_port_is_unavailable() {
    let server = tiny_zoom(|_| None).await;
    let client = tiny_client(&server, Duration::from_millis(300));
    assert_eq!(
        client.get(PROVIDERS, &[]).await.unwrap_err(),
        AdapterError::Timeout { vendor: "zoom" }
    );

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = ZoomConfig::new("a", "b", "c", "d")
        .with_api_base(Url::parse(&format!("{origin}/v2")).unwrap())
        .with_oauth_base(Url::parse(&origin).unwrap());
    let error = ZoomClient::new(&config).unwrap().get(PROVIDERS, &[]).await.unwrap_err();
    assert!(matches!(error, AdapterError::Unavailable { .. }), "{error:?}");
}

#[tokio::test]
async fn redirects_are_followed_only_on_the_configured_origin() {
    let foreign = tiny_server(|_| Some(("200 OK", String::new(), "{}".into()))).await;
    let away = format!("location: {}/v2/stolen\r\n", foreign.origin);
    let server = tiny_zoom(move |line| {
        if line.starts_with("GET /v2/moved ") {
            Some(("302 Found", "location: /v2/here\r\n".into(), String::new()))
        } else if line.starts_with("GET /v2/here ") {
            Some(("200 OK", String::new(), r#"{"ok":true}"#.into()))
        } else if line.starts_with("GET /v2/away ") || line.starts_with("PATCH /v2/moved") {
            Some(("302 Found", away.clone(), String::new()))
        } else {
            Some(("404 Not Found", String::new(), r#"{"code":404}"#.into()))
        }
    })
    .await;
    let client = tiny_client(&server, Duration::from_secs(5));
    assert_eq!(client.get(&["moved"], &[]).await.unwrap(), Some(json!({"ok": true})));
    let error = client.get(&["away"], &[]).await.unwrap_err();
    assert!(matches!(error, AdapterError::Unmappable { .. }), "{error:?}");
    assert!(!error.to_string().contains(&foreign.origin));
    let error = client
        .write(Method::PATCH, &["moved"], Some(&json!({})))
        .await
        .unwrap_err();
    assert!(matches!(error, AdapterError::Unmappable { .. }), "{error:?}");
    assert_eq!(
        foreign.hits.load(Ordering::SeqCst),
        0,
        "the foreign origin was never contacted"
    );
}

#[tokio::test]
async fn the_label_budget_keeps_calls_under_zoom_s_limit() {
    let sim = spawn_sim(|c| {
        c.rate_limits = RateLimits {
            light: 1,
            medium: 1,
            heavy: 1,
        }
    })
    .await;
    let mut config = config_for(&sim);
    config.rate_limits = ZoomRateLimits {
        light: 1,
        medium: 1,
        heavy: 1,
    };
    let client = ZoomClient::new(&config).unwrap();
    // Start early in a wall-clock second, so each budget wait ends at a window's start.
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    if into > 50 {
        tokio::time::sleep(Duration::from_millis(u64::from(1050 - into))).await;
    }
    for _ in 0..3 {
        client.get(&["healthcare", "visits", "visit_nope"], &[]).await.unwrap();
    }
    let health = client.health();
    assert_eq!((health.budget_waits, health.retries), (2, 0));
    assert_eq!(sim.hits(), 3, "Zoom never answered 429");
    let labels: Vec<(String, u32)> = health.budgets.into_iter().map(|b| (b.label, b.limit)).collect();
    assert_eq!(labels, [("light".into(), 1), ("medium".into(), 1), ("heavy".into(), 1)]);
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out() {
    let sim = spawn_sim(|_| {}).await;
    let client = client_for(&sim);
    client.get(&["healthcare", "visits", "visit_nope"], &[]).await.unwrap();
    sim.set_rate_limits(RateLimits {
        light: 1,
        medium: 1,
        heavy: 1,
    });
    // Zoom's per-second limit answers `Retry-After: 1`: the read waits and then succeeds.
    for _ in 0..3 {
        client.get(&["healthcare", "visits", "visit_nope"], &[]).await.unwrap();
    }
    assert!(client.health().retries >= 1);
}
