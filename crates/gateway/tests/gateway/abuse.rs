//! Bounds on what one client can make the gateway do: the per-client rate limit (429 with
//! `Retry-After` and the `RateLimit` headers), the `method` label of the request metrics, `/metrics`
//! behind a token, the body read timeout outside `/fhir`, and, over loopback, the header read timeout
//! and the connection cap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter::search::SearchRequest;
use adapter::{Adapter, AdapterError, Capabilities, Page, PageRequest, Resource, ResourceType};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use gateway::access::OpenAccess;
use gateway::app::{AppState, app};
use gateway::ratelimit::RateLimitSettings;
use gateway::run::{GatewayOptions, ServerLimits, secured_state, spawn, state};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// A source that serves nothing.
struct Nothing {
    caps: Capabilities,
}

impl Nothing {
    fn adapter() -> Arc<dyn Adapter> {
        Arc::new(Self {
            caps: Capabilities { resources: vec![] },
        })
    }
}

#[async_trait::async_trait]
impl Adapter for Nothing {
    fn source(&self) -> &'static str {
        "nothing"
    }

    fn account(&self) -> &str {
        "acct"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn read(&self, resource_type: ResourceType, native_id: &str) -> Result<Resource, AdapterError> {
        Err(AdapterError::NotFound {
            resource_type,
            id: native_id.to_owned(),
        })
    }

    async fn search(&self, _request: &SearchRequest, _page: PageRequest) -> Result<Page, AdapterError> {
        Err(AdapterError::Unsupported { what: "search".into() })
    }

    async fn check(&self) -> Result<(), AdapterError> {
        Ok(())
    }
}

fn options(tweak: impl FnOnce(&mut GatewayOptions)) -> GatewayOptions {
    let mut options = GatewayOptions::new(chrono_tz::Tz::UTC);
    tweak(&mut options);
    options
}

fn open_state(tweak: impl FnOnce(&mut GatewayOptions)) -> Arc<AppState> {
    state(
        vec![Nothing::adapter()],
        &options(tweak),
        "http://gw.test",
        Arc::new(OpenAccess),
    )
}

/// Two backend clients, `alpha` and `beta` (secret `<id>-secret`, `system/*.rs`).
fn smart_state(tweak: impl FnOnce(&mut GatewayOptions)) -> Arc<AppState> {
    use smart_auth::{AuthSettings, ClientAuth, ClientRegistration, GrantType};
    let mut settings = AuthSettings::new(url::Url::parse("http://gw.test").unwrap());
    settings.clients = ["alpha", "beta"]
        .into_iter()
        .map(|id| ClientRegistration {
            client_id: id.into(),
            name: id.into(),
            auth: ClientAuth::SecretBasic {
                secret_hash: smart_auth::hash_password(&format!("{id}-secret")),
            },
            redirect_uris: Vec::new(),
            allow_loopback_any_port: false,
            scopes: "system/*.rs".into(),
            grant_types: vec![GrantType::ClientCredentials],
        })
        .collect();
    let options = options(|o| {
        o.auth = Some(settings);
        tweak(o);
    });
    secured_state(vec![Nothing::adapter()], &options, "http://gw.test").unwrap()
}

fn peer(last: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last], 40_000))
}

/// `method path` from `from` (as the listener would tag it), with an optional bearer token.
async fn call(st: &Arc<AppState>, method: Method, path: &str, from: SocketAddr, token: Option<&str>) -> Response {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut request = request.body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(from));
    app(st.clone()).oneshot(request).await.unwrap()
}

async fn body_text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn header_of<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// A client-credentials token from the gateway's own token endpoint.
async fn token(st: &Arc<AppState>, client: &str) -> String {
    let basic = data_encoding::BASE64.encode(format!("{client}:{client}-secret").as_bytes());
    let request = Request::post("/auth/token")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("grant_type=client_credentials&scope=system%2F*.rs"))
        .unwrap();
    let response = app(st.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = serde_json::from_str(&body_text(response).await).unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn metrics_text(st: &Arc<AppState>, token: Option<&str>) -> String {
    let response = call(st, Method::GET, "/metrics", peer(250), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    body_text(response).await
}

#[tokio::test]
async fn a_burst_over_the_quota_is_answered_429_with_headers_and_an_outcome() {
    // One a minute, three at once.
    let st = open_state(|o| o.rate_limit = RateLimitSettings::new(1, 3));
    for left in [2, 1, 0] {
        let r = call(&st, Method::GET, "/healthz", peer(1), None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header_of(&r, "ratelimit-policy"), "\"per-client\";q=3;w=180");
        assert_eq!(
            header_of(&r, "ratelimit"),
            format!("\"per-client\";r={left};t={}", 60 * (2 - left))
        );
        assert_eq!(header_of(&r, "retry-after"), "");
    }
    // Over the quota, on any limited route: 429, when to retry, and an OperationOutcome.
    for path in ["/healthz", "/fhir/metadata", "/fhir/Patient"] {
        let r = call(&st, Method::GET, path, peer(1), None).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(header_of(&r, "retry-after"), "60");
        assert_eq!(header_of(&r, "ratelimit-policy"), "\"per-client\";q=3;w=180");
        assert_eq!(header_of(&r, "ratelimit"), "\"per-client\";r=0;t=60");
        assert!(header_of(&r, "content-type").starts_with("application/fhir+json"));
        let outcome: Value = serde_json::from_str(&body_text(r).await).unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["code"], "throttled");
        assert_eq!(outcome["issue"][0]["severity"], "error");
    }
    // Another address has its own bucket; vendor webhooks are never limited.
    let r = call(&st, Method::GET, "/fhir/metadata", peer(2), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_of(&r, "ratelimit"), "\"per-client\";r=2;t=0");
    let r = call(&st, Method::POST, "/webhooks/elsewhere", peer(1), None).await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "answered by the webhook route, not the limiter"
    );
    assert_eq!(header_of(&r, "ratelimit"), "");
    // The refusals are counted.
    let text = metrics_text(&st, None).await;
    for line in [
        "fhir_gateway_rate_limited_total{key=\"ip\"} 3",
        "fhir_gateway_rate_limited_total{key=\"client\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn without_a_rate_limit_nothing_is_refused() {
    let st = open_state(|o| o.rate_limit = None);
    for _ in 0..20 {
        let r = call(&st, Method::GET, "/healthz", peer(1), None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header_of(&r, "ratelimit"), "");
    }
}

#[tokio::test]
async fn a_token_s_client_has_one_bucket_wherever_it_calls_from() {
    let st = smart_state(|o| o.rate_limit = RateLimitSettings::new(1, 2));
    let alpha = token(&st, "alpha").await;
    let beta = token(&st, "beta").await;
    // `/fhir/Patient` is served by no source (404), but it is behind the token gate and the limit.
    for _ in 0..2 {
        let r = call(&st, Method::GET, "/fhir/Patient", peer(1), Some(&alpha)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    for from in [peer(1), peer(2)] {
        let r = call(&st, Method::GET, "/fhir/Patient", from, Some(&alpha)).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "alpha from {from}");
        assert_eq!(header_of(&r, "retry-after"), "60");
    }
    // Another client, from the same address, and the address itself without a token, are not held
    // back by alpha's bucket.
    let r = call(&st, Method::GET, "/fhir/Patient", peer(1), Some(&beta)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(header_of(&r, "ratelimit"), "\"per-client\";r=1;t=0");
    let r = call(&st, Method::GET, "/fhir/metadata", peer(1), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A request without a valid token is refused by the gate before it costs anyone's quota.
    let r = call(&st, Method::GET, "/fhir/Patient", peer(1), Some("not-a-token")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let text = metrics_text(&st, None).await;
    assert!(
        text.lines()
            .any(|l| l == "fhir_gateway_rate_limited_total{key=\"client\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_methods_are_counted_as_other() {
    let st = open_state(|_| {});
    for method in ["BREW", "PROPFIND", "X-ANYTHING-AT-ALL"] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let _ = call(&st, method, "/healthz", peer(1), None).await;
    }
    let _ = call(&st, Method::GET, "/healthz", peer(1), None).await;
    let text = metrics_text(&st, None).await;
    let methods: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("fhir_gateway_http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    let expected: std::collections::BTreeSet<&str> = ["GET", "OTHER"].into_iter().collect();
    assert_eq!(methods, expected);
    assert!(
        text.lines().any(
            |l| l.starts_with("fhir_gateway_http_requests_total{method=\"OTHER\",route=\"/healthz\"")
                && l.ends_with(" 3")
        ),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let st = smart_state(|o| o.metrics_require_token = true);
    for token in [None, Some("not-a-token")] {
        let r = call(&st, Method::GET, "/metrics", peer(1), token).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(header_of(&r, "www-authenticate").starts_with("Bearer"));
        assert!(header_of(&r, "content-type").starts_with("application/fhir+json"));
        let outcome: Value = serde_json::from_str(&body_text(r).await).unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }
    let alpha = token(&st, "alpha").await;
    let text = metrics_text(&st, Some(&alpha)).await;
    assert!(text.contains("# TYPE fhir_gateway_http_requests_total counter"));
    // Only /metrics: the health checks stay open.
    let r = call(&st, Method::GET, "/healthz", peer(1), None).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Off (the default), /metrics is open even with SMART on.
    let st = smart_state(|_| {});
    metrics_text(&st, None).await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_408_outside_fhir() {
    let st = open_state(|o| o.server.body_read_timeout = Duration::from_millis(300));
    let started = Instant::now();
    // A body that never ends (a client sending nothing after its headers).
    let never = futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
    let mut request = Request::post("/webhooks/elsewhere")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(never))
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(peer(1)));
    let r = tokio::time::timeout(Duration::from_secs(10), app(st.clone()).oneshot(request))
        .await
        .expect("answered within the body timeout")
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(header_of(&r, "connection"), "close");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // A body that arrives is read as before.
    let request = Request::post("/webhooks/elsewhere")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let r = app(st).oneshot(request).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// Reads until the server closes the connection (or resets it); what was read.
async fn read_until_closed(stream: &mut tokio::net::tcp::OwnedReadHalf) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_sending_its_header_too_slowly_is_disconnected() {
    let gw = spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        vec![Nothing::adapter()],
        options(|o| {
            o.server = ServerLimits {
                header_read_timeout: Duration::from_secs(1),
                ..ServerLimits::default()
            }
        }),
    )
    .await
    .unwrap();
    // A client that sends its request at once is served.
    let (mut rd, mut wr) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    wr.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut rd).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // One sending a byte every 200 ms (its header would take about 12 s) is cut off after 1 s.
    let (mut rd, mut wr) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    let slow = tokio::spawn(async move {
        let header = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: 0123456789012345678901234\r\n\r\n";
        for byte in header {
            if wr.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(8), read_until_closed(&mut rd))
        .await
        .expect("the server closes the connection");
    let took = started.elapsed();
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(6),
        "{took:?}"
    );
    slow.abort();
    // Counted (the connection task records the close right after it).
    let mut counted = false;
    for _ in 0..50 {
        if gw
            .state
            .metrics
            .render()
            .lines()
            .any(|l| l == "fhir_gateway_http_header_timeouts_total 1")
        {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(counted, "{}", gw.state.metrics.render());
    gw.stop();
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_for_a_free_connection() {
    let gw = spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        vec![Nothing::adapter()],
        options(|o| {
            o.server = ServerLimits {
                header_read_timeout: Duration::from_secs(1),
                max_connections: 1,
                ..ServerLimits::default()
            }
        }),
    )
    .await
    .unwrap();
    // The one connection, idle: it is closed by the header timeout after 1 s.
    let idle = TcpStream::connect(gw.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (mut rd, mut wr) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    wr.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(8), read_until_closed(&mut rd))
        .await
        .expect("served once the first connection is gone");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "served only after the first connection closed: {:?}",
        started.elapsed()
    );
    drop(idle);
    gw.stop();
}
