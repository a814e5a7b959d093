//! The FHIR REST semantics of the gateway, driven through the router with in-memory sources
//! that implement the adapter contract (paging by offset, optional failure). The vendor adapters
//! themselves are exercised end to end in `tests/` at the workspace root.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use adapter::search::SearchRequest;
use adapter::{
    Adapter, AdapterError, Capabilities, Continuation, Interaction, Page, PageRequest, Resource, ResourceCapability,
    ResourceType,
};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono_tz::Tz;
use gateway::access::OpenAccess;
use gateway::paging::{Cursor, CursorCodec, Position, SourcePos};
use gateway::run::{GatewayOptions, state};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Memory {
    source: &'static str,
    resources: std::sync::Mutex<Vec<Value>>,
    page: usize,
    fail: Option<AdapterError>,
    calls: AtomicU64,
    caps: Capabilities,
    hook: Hook,
}

/// A test webhook receiver: accepts calls carrying `x-test-signature: good`.
struct Hook;

impl adapter::WebhookReceiver for Hook {
    fn receive(&self, r: &adapter::WebhookRequest<'_>) -> Result<adapter::WebhookResponse, adapter::WebhookError> {
        if !r.headers.iter().any(|(k, v)| k == "x-test-signature" && v == "good") {
            return Err(adapter::WebhookError::Unauthorized("bad signature"));
        }
        Ok(adapter::WebhookResponse {
            status: 200,
            body: None,
            events: vec![adapter::ChangeEvent {
                source: "alpha",
                account: "memory".into(),
                resource_type: ResourceType::Patient,
                native_id: "1".into(),
                kind: adapter::ChangeKind::Updated,
            }],
        })
    }
}

impl Memory {
    fn new(source: &'static str, resources: Vec<Value>, page: usize) -> Self {
        let types: std::collections::BTreeSet<ResourceType> = resources
            .iter()
            .filter_map(|r| r["resourceType"].as_str()?.parse().ok())
            .chain([ResourceType::Patient, ResourceType::Appointment])
            .collect();
        let caps = Capabilities {
            resources: types
                .into_iter()
                .map(|t| ResourceCapability {
                    resource_type: t,
                    interactions: vec![
                        Interaction::Read,
                        Interaction::SearchType,
                        Interaction::Create,
                        Interaction::Update,
                        Interaction::Patch,
                    ],
                    pushdown: vec![],
                    profiles: vec![],
                    operations: vec![adapter::OperationDef {
                        name: "touch",
                        description: "Touch it",
                        affects_state: true,
                        target: adapter::OperationTarget::Own,
                        asynchronous: false,
                        performer: adapter::Performer::Provider,
                        parameters: &[],
                    }],
                    patient_writes: vec![Interaction::Create, Interaction::Update, Interaction::Patch],
                })
                .collect(),
        };
        Self {
            source,
            resources: std::sync::Mutex::new(resources),
            page,
            fail: None,
            calls: AtomicU64::new(0),
            caps,
            hook: Hook,
        }
    }

    fn failing(mut self, e: AdapterError) -> Self {
        self.fail = Some(e);
        self
    }
}

fn to_resource(v: &Value) -> Resource {
    fhirbolt::json::from_str(&v.to_string(), None).unwrap()
}

#[async_trait::async_trait]
impl Adapter for Memory {
    fn source(&self) -> &'static str {
        self.source
    }
    fn account(&self) -> &str {
        "memory"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    async fn read(&self, t: ResourceType, native: &str) -> Result<Resource, AdapterError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        let id = format!("{}-{native}", self.source);
        self.resources
            .lock()
            .unwrap()
            .iter()
            .find(|r| r["resourceType"] == t.as_str() && r["id"] == id.as_str())
            .map(to_resource)
            .ok_or(AdapterError::NotFound {
                resource_type: t,
                id: native.into(),
            })
    }
    async fn search(&self, req: &SearchRequest, page: PageRequest) -> Result<Page, AdapterError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        let t = req.resource_type.unwrap();
        let all = self.resources.lock().unwrap().clone();
        let of_type: Vec<&Value> = all.iter().filter(|r| r["resourceType"] == t.as_str()).collect();
        let start: usize = page.cursor.map_or(0, |c| c.0.parse().unwrap());
        let end = (start + self.page).min(of_type.len());
        Ok(Page {
            resources: of_type[start..end].iter().map(|v| to_resource(v)).collect(),
            next: (end < of_type.len()).then(|| Continuation(end.to_string())),
        })
    }
    async fn check(&self) -> Result<(), AdapterError> {
        Ok(())
    }
    async fn create(&self, resource: Resource) -> Result<Resource, AdapterError> {
        let mut v = gateway::engine::to_json(resource).unwrap();
        if v["resourceType"] != "Appointment" {
            return Err(AdapterError::Unsupported {
                what: "only appointments".into(),
            });
        }
        let mut store = self.resources.lock().unwrap();
        v["id"] = json!(format!("{}-new{}", self.source, store.len()));
        store.push(v.clone());
        Ok(to_resource(&v))
    }
    async fn update(&self, t: ResourceType, native: &str, resource: Resource) -> Result<Resource, AdapterError> {
        let wanted = gateway::engine::to_json(resource).unwrap();
        let id = format!("{}-{native}", self.source);
        let mut store = self.resources.lock().unwrap();
        let current = store
            .iter_mut()
            .find(|r| r["resourceType"] == t.as_str() && r["id"] == id.as_str())
            .unwrap();
        // Only `gender` can be stored by this source.
        for (k, v) in wanted.as_object().unwrap() {
            if k != "gender" && k != "meta" && current.get(k) != Some(v) {
                return Err(AdapterError::Unprocessable {
                    element: format!("{t}.{k}"),
                    detail: "not storable".into(),
                });
            }
        }
        if current
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k != "gender" && k != "meta" && wanted.get(k).is_none())
        {
            return Err(AdapterError::Unprocessable {
                element: t.as_str().into(),
                detail: "removed elements".into(),
            });
        }
        current["gender"] = wanted["gender"].clone();
        Ok(to_resource(current))
    }
    async fn operation(
        &self,
        t: ResourceType,
        native: &str,
        name: &str,
        input: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        assert_eq!(name, "touch");
        let _ = input;
        self.read(t, native).await
    }
    fn webhooks(&self) -> Option<&dyn adapter::WebhookReceiver> {
        Some(&self.hook)
    }
}

fn patient(source: &str, n: usize, family: &str, birth: &str) -> Value {
    json!({"resourceType": "Patient", "id": format!("{source}-{n}"), "name": [{"family": family, "given": [format!("G{n}")]}],
           "gender": if n.is_multiple_of(2) { "female" } else { "male" }, "birthDate": birth,
           "meta": {"lastUpdated": "2024-01-01T00:00:00Z"}})
}

fn patients(source: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            patient(
                source,
                i,
                if i % 3 == 0 { "Smith" } else { "Jones" },
                &format!("19{:02}-01-01", 40 + i % 50),
            )
        })
        .collect()
}

struct Harness {
    app: axum::Router,
    key: Vec<u8>,
}

fn harness(sources: Vec<Arc<dyn Adapter>>) -> Harness {
    let mut options = GatewayOptions::new(Tz::UTC);
    options.count.default = 7;
    options.limits.vendor_calls_per_page = 3;
    let key = options.paging_key.clone();
    let st = state(sources, &options, "http://gw.test", Arc::new(OpenAccess));
    Harness {
        app: gateway::app::app(st),
        key,
    }
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body, headers)
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let (s, b, _) = call(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    (s, b)
}

fn ids(bundle: &Value, mode: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|x| x["search"]["mode"] == mode)
                .map(|x| x["resource"]["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn next(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .map(|l| {
            l["url"]
                .as_str()
                .unwrap()
                .strip_prefix("http://gw.test")
                .unwrap()
                .to_owned()
        })
}

async fn walk(app: &axum::Router, first: &str) -> (Vec<String>, usize) {
    let mut all = Vec::new();
    let mut url = Some(first.to_owned());
    let mut pages = 0;
    while let Some(u) = url {
        let (s, b) = get(app, &u).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        if pages > 0 && !first.contains("_sort") {
            assert!(
                b.get("total").is_none(),
                "a later page must not claim a total: {}",
                b["total"]
            );
        }
        all.extend(ids(&b, "match"));
        url = next(&b);
        pages += 1;
        assert!(pages < 200);
    }
    (all, pages)
}

#[tokio::test]
async fn paging_to_the_end_returns_every_match_exactly_once_across_sources() {
    let a = Arc::new(Memory::new("alpha", patients("alpha", 40), 6));
    let b = Arc::new(Memory::new("beta", patients("beta", 25), 4));
    let h = harness(vec![a, b]);
    let (all, pages) = walk(&h.app, "/fhir/Patient?family=smith&_count=5").await;
    let mut expected: Vec<String> = (0..40).filter(|i| i % 3 == 0).map(|i| format!("alpha-{i}")).collect();
    expected.extend((0..25).filter(|i| i % 3 == 0).map(|i| format!("beta-{i}")));
    assert_eq!(all, expected);
    assert!(pages >= 5);
    // Unfiltered, default _count.
    let (all, _) = walk(&h.app, "/fhir/Patient").await;
    assert_eq!(all.len(), 65);
    let unique: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), 65);
}

#[tokio::test]
async fn sorted_searches_merge_sources_and_page_by_offset() {
    let a = Arc::new(Memory::new("alpha", patients("alpha", 12), 5));
    let b = Arc::new(Memory::new("beta", patients("beta", 9), 5));
    let h = harness(vec![a, b]);
    let (s, first) = get(&h.app, "/fhir/Patient?_sort=-birthdate,_id&_count=4").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(first["total"], 21);
    let (all, _) = walk(&h.app, "/fhir/Patient?_sort=-birthdate,_id&_count=4").await;
    assert_eq!(all.len(), 21);
    let births: Vec<String> = {
        let (_, b) = get(&h.app, "/fhir/Patient?_sort=-birthdate&_count=100").await;
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["birthDate"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut sorted = births.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(births, sorted);
}

#[tokio::test]
async fn a_failing_source_is_reported_leniently_and_fails_strictly() {
    let ok = Arc::new(Memory::new("alpha", patients("alpha", 5), 10));
    let bad = Arc::new(
        Memory::new("beta", patients("beta", 5), 10).failing(AdapterError::Unavailable {
            vendor: "beta",
            detail: "connection refused".into(),
        }),
    );
    let h = harness(vec![ok, bad]);
    let (s, b) = get(&h.app, "/fhir/Patient").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&b, "match").len(), 5);
    let outcome = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .unwrap();
    assert!(
        outcome["resource"]["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("beta")
    );
    let (s, b, _) = call(
        &h.app,
        Request::get("/fhir/Patient")
            .header("Prefer", "handling=strict")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b["resourceType"], "OperationOutcome");
}

#[tokio::test]
async fn every_page_after_a_source_failed_says_its_results_are_missing() {
    let bad = Arc::new(
        Memory::new("beta", patients("beta", 5), 10).failing(AdapterError::Unavailable {
            vendor: "beta",
            detail: "connection refused".into(),
        }),
    );
    let h = harness(vec![
        Arc::new(Memory::new("alpha", patients("alpha", 2), 10)),
        bad,
        Arc::new(Memory::new("gamma", patients("gamma", 12), 10)),
    ]);
    let mut url = "/fhir/Patient?_count=5".to_owned();
    let mut pages = 0;
    let mut matches = 0;
    loop {
        let (s, b) = get(&h.app, &url).await;
        assert_eq!(s, StatusCode::OK);
        pages += 1;
        matches += ids(&b, "match").len();
        let outcome: Vec<&Value> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] == "outcome")
            .collect();
        assert_eq!(outcome.len(), 1, "page {pages} names the failed source: {b}");
        let said = outcome[0]["resource"]["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(said.contains("'beta'"), "{said}");
        match next(&b) {
            Some(n) => url = n,
            None => break,
        }
    }
    assert_eq!((pages, matches), (3, 14));
}

#[tokio::test]
async fn vendor_failures_map_to_statuses() {
    for (e, status) in [
        (
            AdapterError::Unavailable {
                vendor: "alpha",
                detail: "down".into(),
            },
            503,
        ),
        (AdapterError::Timeout { vendor: "alpha" }, 504),
        (
            AdapterError::Unmappable {
                vendor: "alpha",
                detail: "bad json".into(),
            },
            502,
        ),
        (
            AdapterError::RateLimited {
                vendor: "alpha",
                retry_after: Some(std::time::Duration::from_secs(42)),
            },
            429,
        ),
    ] {
        let h = harness(vec![Arc::new(
            Memory::new("alpha", patients("alpha", 3), 10).failing(e),
        )]);
        let (s, b, headers) = call(&h.app, Request::get("/fhir/Patient").body(Body::empty()).unwrap()).await;
        assert_eq!(s.as_u16(), status, "{b}");
        assert_eq!(b["resourceType"], "OperationOutcome");
        if status == 429 {
            assert_eq!(headers["retry-after"], "42");
        }
        let (s, _) = get(&h.app, "/fhir/Patient/alpha-1").await;
        assert_eq!(s.as_u16(), status);
    }
}

#[tokio::test]
async fn forged_and_expired_links() {
    let h = harness(vec![Arc::new(Memory::new("alpha", patients("alpha", 30), 10))]);
    let (_, b) = get(&h.app, "/fhir/Patient?_count=5").await;
    let link = next(&b).unwrap();
    let forged = link.replace("_cursor=", "_cursor=x");
    let (s, o) = get(&h.app, &forged).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(o["resourceType"], "OperationOutcome");
    // A link signed with the right key but issued long ago.
    let old = CursorCodec::new(&h.key, 1800).encode(&Cursor {
        t: "Patient".into(),
        q: vec![("_count".into(), "5".into())],
        iat: chrono::Utc::now().timestamp() - 7200,
        pos: Position::Stream {
            sources: vec![SourcePos {
                src: "alpha".into(),
                cont: None,
                skip: 5,
                done: false,
                failed: false,
            }],
        },
    });
    let (s, o) = get(&h.app, &format!("/fhir/Patient?_cursor={old}")).await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(o["issue"][0]["code"], "expired");
    // A valid link for another type.
    let (s, _) = get(&h.app, &link.replace("/fhir/Patient?", "/fhir/Practitioner?")).await;
    assert!(s == StatusCode::BAD_REQUEST || s == StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn http_errors_are_operation_outcomes() {
    let h = harness(vec![Arc::new(Memory::new("alpha", patients("alpha", 3), 10))]);
    for (method, uri, status) in [
        ("GET", "/fhir/Patient/alpha-99", 404),
        ("GET", "/fhir/Patient/nosuchsource-1", 404),
        ("GET", "/fhir/Observation", 404),
        ("GET", "/fhir/Observation/x-1", 404),
        ("GET", "/fhir/Patient?birthdate=notadate", 400),
        ("GET", "/fhir/Patient?_count=abc", 400),
        ("DELETE", "/fhir/Patient/alpha-1", 405),
        ("PUT", "/fhir/Patient/alpha-1", 415),
        ("POST", "/fhir/Patient", 415),
        ("GET", "/fhir/Patient?_format=xml", 406),
        ("GET", "/nothing/here", 404),
        ("GET", "/fhir/Patient/%FF%FE", 400),
        ("GET", "/fhir/Patient/a%20b", 400),
    ] {
        let (s, b, headers) = call(
            &h.app,
            Request::builder().method(method).uri(uri).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(s.as_u16(), status, "{method} {uri}: {b}");
        assert_eq!(b["resourceType"], "OperationOutcome", "{method} {uri}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/fhir+json")
        );
        if status == 405 {
            assert!(headers.contains_key("allow"));
        }
    }
    let (s, _, _) = call(
        &h.app,
        Request::get("/fhir/Patient")
            .header("Accept", "application/fhir+xml")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn post_search_equals_get_and_result_parameters_work() {
    let h = harness(vec![Arc::new(Memory::new("alpha", patients("alpha", 20), 6))]);
    let (_, g) = get(&h.app, "/fhir/Patient?family=jones&gender=male&_count=50").await;
    let (s, p, _) = call(
        &h.app,
        Request::post("/fhir/Patient/_search")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("family=jones&gender=male&_count=50"))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&g, "match"), ids(&p, "match"));
    assert!(!ids(&g, "match").is_empty());
    let (_, c) = get(&h.app, "/fhir/Patient?family=jones&_summary=count").await;
    assert_eq!(
        c["total"].as_u64().unwrap() as usize,
        (0..20).filter(|i| i % 3 != 0).count()
    );
    assert!(c.get("entry").is_none());
    let (_, e) = get(&h.app, "/fhir/Patient?_elements=gender&_count=1").await;
    let r = &e["entry"][0]["resource"];
    assert!(r.get("gender").is_some() && r.get("name").is_none());
    assert_eq!(r["meta"]["tag"][0]["code"], "SUBSETTED");
    let (_, lenient) = get(&h.app, "/fhir/Patient?shoe=9&_count=1").await;
    assert!(
        lenient["entry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["search"]["mode"] == "outcome")
    );
    let (s, _, _) = call(
        &h.app,
        Request::get("/fhir/Patient?shoe=9")
            .header("Prefer", "handling=strict")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, pretty, _) = call(
        &h.app,
        Request::get("/fhir/Patient/alpha-1?_pretty=true")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pretty["id"], "alpha-1");
}

#[tokio::test]
async fn includes_and_revincludes() {
    let mut resources = patients("alpha", 4);
    for i in 0..6 {
        resources.push(
            json!({"resourceType": "Appointment", "id": format!("alpha-a{i}"), "status": "booked",
            "start": format!("2024-03-0{}T10:00:00Z", i + 1), "participant": [
                {"actor": {"reference": format!("Patient/alpha-{}", i % 3)}, "status": "accepted"}]}),
        );
    }
    let h = harness(vec![Arc::new(Memory::new("alpha", resources, 4))]);
    let (s, b) = get(
        &h.app,
        "/fhir/Appointment?date=ge2024-03-02&_include=Appointment:patient&_count=50",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ids(&b, "match").len(), 5);
    let mut inc = ids(&b, "include");
    inc.sort();
    assert_eq!(inc, vec!["alpha-0", "alpha-1", "alpha-2"]);
    let (_, r) = get(&h.app, "/fhir/Patient?_id=alpha-1&_revinclude=Appointment:patient").await;
    assert_eq!(ids(&r, "match"), vec!["alpha-1"]);
    assert_eq!(r["total"], 1, "a result that fits in the first page has a total");
    let mut rev = ids(&r, "include");
    rev.sort();
    assert_eq!(rev, vec!["alpha-a1", "alpha-a4"]);
    let (_, m) = get(&h.app, "/fhir/metadata").await;
    let appt = m["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == "Appointment")
        .unwrap();
    assert_eq!(appt["searchInclude"], json!(["Appointment:patient"]));
}

fn with_caller(app: axum::Router, caller: gateway::access::Caller) -> axum::Router {
    app.layer(axum::Extension(caller))
}

#[tokio::test]
async fn writes_go_to_the_owning_source() {
    let h = harness(vec![Arc::new(Memory::new("alpha", patients("alpha", 3), 10))]);
    let put = |uri: &str, body: Value| {
        Request::put(uri)
            .header("content-type", "application/fhir+json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    // Update a storable element.
    let (_, mut p) = get(&h.app, "/fhir/Patient/alpha-1").await;
    p["gender"] = json!("other");
    let (s, b, _) = call(&h.app, put("/fhir/Patient/alpha-1", p.clone())).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(get(&h.app, "/fhir/Patient/alpha-1").await.1["gender"], "other");
    // A change the source cannot store: 422 naming the element, nothing applied.
    p["birthDate"] = json!("2001-01-01");
    p["gender"] = json!("female");
    let (s, b, _) = call(&h.app, put("/fhir/Patient/alpha-1", p.clone())).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        b["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("Patient.birthDate")
    );
    assert_eq!(get(&h.app, "/fhir/Patient/alpha-1").await.1["gender"], "other");
    // Id mismatch, wrong type, not JSON, wrong media type.
    let (s, _, _) = call(&h.app, put("/fhir/Patient/alpha-2", p.clone())).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = call(
        &h.app,
        put(
            "/fhir/Patient/alpha-1",
            json!({"resourceType": "Practitioner", "id": "alpha-1"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, b, _) = call(
        &h.app,
        Request::put("/fhir/Patient/alpha-1")
            .header("content-type", "text/plain")
            .body(Body::from("x"))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(b["resourceType"], "OperationOutcome");
    let (s, _, _) = call(
        &h.app,
        put(
            "/fhir/Patient/alpha-99",
            json!({"resourceType": "Patient", "id": "alpha-99"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // JSON Patch.
    let patch = |uri: &str, body: Value| {
        Request::patch(uri)
            .header("content-type", "application/json-patch+json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (s, b, _) = call(
        &h.app,
        patch(
            "/fhir/Patient/alpha-2",
            json!([{"op": "replace", "path": "/gender", "value": "unknown"}]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["gender"], "unknown");
    let (s, b, _) = call(
        &h.app,
        patch("/fhir/Patient/alpha-2", json!([{"op": "remove", "path": "/name"}])),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, _, _) = call(
        &h.app,
        patch(
            "/fhir/Patient/alpha-2",
            json!([{"op": "test", "path": "/gender", "value": "male"}]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _, _) = call(
        &h.app,
        patch(
            "/fhir/Patient/alpha-2",
            json!([{"op": "replace", "path": "/id", "value": "alpha-3"}]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // A patch's work is bounded: at most 100 operations, and no operation may make the resource
    // grow past the depth or size bounds (`copy` doubles a document per pair of operations).
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"op": "replace", "path": "/gender", "value": "male"}))
        .collect();
    let (s, b, _) = call(&h.app, patch("/fhir/Patient/alpha-2", Value::Array(many))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["issue"][0]["code"], "too-costly");
    let mut doubling = vec![json!({"op": "add", "path": "/o", "value": {"a": "x".repeat(4000)}})];
    for i in 0..40 {
        doubling.push(json!({"op": "copy", "from": "/o", "path": format!("/p{i}")}));
        doubling.push(json!({"op": "copy", "from": format!("/p{i}"), "path": format!("/o/p{i}")}));
    }
    let (s, b, _) = call(&h.app, patch("/fhir/Patient/alpha-2", Value::Array(doubling))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["issue"][0]["code"], "too-costly");
    let mut deep = json!("x");
    for _ in 0..40 {
        deep = json!({ "a": deep });
    }
    let (s, b, _) = call(
        &h.app,
        patch(
            "/fhir/Patient/alpha-2",
            json!([{"op": "add", "path": "/deep", "value": deep}]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _, _) = call(&h.app, patch("/fhir/Patient/alpha-2", json!({"not": "a patch"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Create: 201 with Location; a type the source refuses → its answer.
    let appt = json!({"resourceType": "Appointment", "status": "booked", "participant": [{"status": "accepted", "actor": {"reference": "Patient/alpha-1"}}]});
    let (s, b, headers) = call(
        &h.app,
        Request::post("/fhir/Appointment")
            .header("content-type", "application/fhir+json")
            .body(Body::from(appt.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("http://gw.test/fhir/Appointment/{id}"));
    assert_eq!(get(&h.app, &format!("/fhir/Appointment/{id}")).await.0, StatusCode::OK);
    let (s, _, _) = call(
        &h.app,
        Request::post("/fhir/Patient")
            .header("content-type", "application/fhir+json")
            .body(Body::from(json!({"resourceType": "Patient"}).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Operations.
    let (s, b, _) = call(
        &h.app,
        Request::post("/fhir/Patient/alpha-1/$touch")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["id"], "alpha-1");
    let (s, _, _) = call(
        &h.app,
        Request::post("/fhir/Patient/alpha-1/$explode")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = call(
        &h.app,
        Request::post("/fhir/Patient/alpha-1/$touch")
            .header("content-type", "application/fhir+json")
            .body(Body::from(json!({"resourceType": "Patient"}).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // The CapabilityStatement declares the writes and the operation.
    let (_, m) = get(&h.app, "/fhir/metadata").await;
    let patient = m["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == "Patient")
        .unwrap()
        .clone();
    let codes: Vec<&str> = patient["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["read", "search-type", "create", "update", "patch"]);
    assert_eq!(patient["operation"][0]["name"], "touch");
}

#[tokio::test]
async fn read_only_sources_refuse_writes_with_allow() {
    struct ReadOnly(Memory);
    #[async_trait::async_trait]
    impl Adapter for ReadOnly {
        fn source(&self) -> &'static str {
            self.0.source
        }
        fn account(&self) -> &str {
            "ro"
        }
        fn capabilities(&self) -> &Capabilities {
            &self.0.caps
        }
        async fn read(&self, t: ResourceType, n: &str) -> Result<Resource, AdapterError> {
            self.0.read(t, n).await
        }
        async fn search(&self, r: &SearchRequest, p: PageRequest) -> Result<Page, AdapterError> {
            self.0.search(r, p).await
        }
        async fn check(&self) -> Result<(), AdapterError> {
            Ok(())
        }
    }
    let mut m = Memory::new("alpha", patients("alpha", 2), 10);
    for r in &mut m.caps.resources {
        r.interactions = vec![Interaction::Read, Interaction::SearchType];
    }
    let h = harness(vec![Arc::new(ReadOnly(m))]);
    let (s, b, headers) = call(
        &h.app,
        Request::put("/fhir/Patient/alpha-1")
            .header("content-type", "application/fhir+json")
            .body(Body::from(
                json!({"resourceType": "Patient", "id": "alpha-1"}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{b}");
    assert_eq!(headers["allow"], "GET");
    let (s, _, headers) = call(
        &h.app,
        Request::delete("/fhir/Patient/alpha-1").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET");
    let (s, _, _) = call(
        &h.app,
        Request::post("/fhir/Patient")
            .header("content-type", "application/fhir+json")
            .body(Body::from(json!({"resourceType": "Patient"}).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn provider_only_data_never_reaches_patient_callers() {
    let appt = json!({"resourceType": "Appointment", "id": "alpha-v1", "status": "booked",
        "extension": [{"url": adapter::systems::EXT_PROVIDER_JOIN_URL, "valueUrl": "https://zoom.test/s/host-key"}],
        "participant": [{"status": "accepted", "actor": {"reference": "Patient/alpha-1"}}]});
    let mut resources = patients("alpha", 2);
    resources.push(appt);
    let source: Arc<dyn Adapter> = Arc::new(Memory::new("alpha", resources, 10));
    let h = harness(vec![source.clone()]);
    let patient_app = with_caller(h.app.clone(), gateway::access::Caller::patient("alpha-1"));
    for uri in [
        "/fhir/Appointment/alpha-v1",
        "/fhir/Appointment?_id=alpha-v1",
        "/fhir/Patient?_id=alpha-1&_revinclude=Appointment:patient",
    ] {
        let (s, b) = get(&patient_app, uri).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            !b.to_string().contains("host-key"),
            "{uri} leaked the provider URL to a patient"
        );
        let (_, b) = get(
            &with_caller(
                h.app.clone(),
                gateway::access::Caller::token("ehr", "user/*.rs", None, None),
            ),
            uri,
        )
        .await;
        assert!(
            b.to_string().contains("host-key"),
            "{uri}: practitioners see the provider URL"
        );
    }
}

#[tokio::test]
async fn webhooks_are_verified_by_the_source_and_published() {
    let mut options = GatewayOptions::new(Tz::UTC);
    options.count.default = 7;
    let st = state(
        vec![Arc::new(Memory::new("alpha", patients("alpha", 2), 10))],
        &options,
        "http://gw.test",
        Arc::new(OpenAccess),
    );
    let mut changes = st.changes.subscribe();
    let app = gateway::app::app(st);
    let (s, _, _) = call(
        &app,
        Request::post("/webhooks/alpha")
            .header("x-test-signature", "forged")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(changes.try_recv().is_err(), "a forged call publishes nothing");
    let (s, _, _) = call(
        &app,
        Request::post("/webhooks/alpha")
            .header("x-test-signature", "good")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let event = changes.try_recv().unwrap();
    assert_eq!(
        (event.resource_type, event.native_id.as_str()),
        (ResourceType::Patient, "1")
    );
    let (s, _, _) = call(&app, Request::post("/webhooks/nosuch").body(Body::from("{}")).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, metrics, _) = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    let _ = metrics;
}

/// A source that performs an operation on other sources' Appointments (as Noa's `$start-scribe`
/// does on the EHR's) and an asynchronous one on its own Encounters.
struct Scribe {
    caps: Capabilities,
    seen: std::sync::Mutex<Vec<(String, String)>>,
}

const START_PARAMS: &[adapter::OperationParam] = &[adapter::OperationParam::new(
    "encounter",
    adapter::ParamUse::Out,
    1,
    Some(1),
    "Reference",
    "The session",
)];

impl Scribe {
    fn new() -> Self {
        let op = |name, target, asynchronous| adapter::OperationDef {
            name,
            description: "Scribe things",
            affects_state: true,
            target,
            asynchronous,
            parameters: START_PARAMS,
            performer: adapter::Performer::Provider,
        };
        Self {
            caps: Capabilities {
                resources: vec![
                    ResourceCapability {
                        resource_type: ResourceType::Appointment,
                        interactions: vec![],
                        pushdown: vec![],
                        profiles: vec![],
                        operations: vec![op("start", adapter::OperationTarget::AnySource, false)],
                        patient_writes: vec![],
                    },
                    ResourceCapability {
                        resource_type: ResourceType::Encounter,
                        interactions: vec![Interaction::Read],
                        pushdown: vec![],
                        profiles: vec![],
                        operations: vec![op("redo", adapter::OperationTarget::Own, true)],
                        patient_writes: vec![],
                    },
                ],
            },
            seen: Default::default(),
        }
    }
}

fn parameters(reference: &str, name: &str) -> Resource {
    to_resource(&json!({"resourceType": "Parameters", "parameter": [
        {"name": name, "valueReference": {"reference": reference}}]}))
}

#[async_trait::async_trait]
impl Adapter for Scribe {
    fn source(&self) -> &'static str {
        "scribe"
    }
    fn account(&self) -> &str {
        "scribe"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    async fn read(&self, t: ResourceType, native: &str) -> Result<Resource, AdapterError> {
        if t == ResourceType::Encounter && native == "1" {
            return Ok(to_resource(
                &json!({"resourceType": "Encounter", "id": "scribe-1", "status": "finished", "class": {"code": "AMB"}}),
            ));
        }
        Err(AdapterError::NotFound {
            resource_type: t,
            id: native.into(),
        })
    }
    async fn search(&self, _: &SearchRequest, _: PageRequest) -> Result<Page, AdapterError> {
        Ok(Page::default())
    }
    async fn check(&self) -> Result<(), AdapterError> {
        Ok(())
    }
    async fn operation(
        &self,
        _: ResourceType,
        native: &str,
        name: &str,
        _: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        assert_eq!((native, name), ("1", "redo"));
        Ok(parameters("Encounter/scribe-1", "follow"))
    }
    async fn operation_on(
        &self,
        target_id: &adapter::FhirId,
        target: &Resource,
        name: &str,
        _: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        let Resource::Appointment(a) = target else {
            panic!("the target is handed over as read");
        };
        let id = a.id.as_ref().and_then(|i| i.value.clone()).unwrap_or_default();
        self.seen.lock().unwrap().push((target_id.to_string(), id));
        assert_eq!(name, "start");
        Ok(parameters("Encounter/scribe-1", "encounter"))
    }
}

#[tokio::test]
async fn operations_on_other_sources_and_asynchronous_ones() {
    let appointment = json!({"resourceType": "Appointment", "id": "alpha-9", "status": "booked",
        "participant": [{"status": "accepted", "actor": {"reference": "Patient/alpha-1"}}]});
    let alpha = Arc::new(Memory::new(
        "alpha",
        vec![patient("alpha", 1, "Smith", "1970-01-01"), appointment],
        10,
    ));
    let scribe = Arc::new(Scribe::new());
    let h = harness(vec![alpha, scribe.clone()]);
    let post = |uri: &str| Request::post(uri).body(Body::empty()).unwrap();

    // Another source's Appointment: the declaring source runs it, with the target as read.
    let (s, b, _) = call(&h.app, post("/fhir/Appointment/alpha-9/$start")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["parameter"][0]["valueReference"]["reference"], "Encounter/scribe-1");
    assert_eq!(
        *scribe.seen.lock().unwrap(),
        [("alpha-9".to_owned(), "alpha-9".to_owned())]
    );
    // A missing target is 404 and the operation never runs.
    let (s, _, _) = call(&h.app, post("/fhir/Appointment/alpha-404/$start")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(scribe.seen.lock().unwrap().len(), 1);
    // Not declared for that type → 404.
    let (s, _, _) = call(&h.app, post("/fhir/Patient/alpha-1/$start")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Asynchronous: 202 with Content-Location from `follow`.
    let (s, b, headers) = call(&h.app, post("/fhir/Encounter/scribe-1/$redo")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(headers["content-location"], "http://gw.test/fhir/Encounter/scribe-1");
    assert_eq!(b["resourceType"], "Parameters");

    // Definitions: served, listed, and referenced by the CapabilityStatement.
    let (s, d) = get(&h.app, "/fhir/OperationDefinition/Appointment-start").await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["code"], "start");
    assert_eq!(d["parameter"][0]["name"], "encounter");
    let (s, list) = get(&h.app, "/fhir/OperationDefinition").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["total"], 4, "touch on Patient and Appointment, start, redo");
    assert_eq!(
        get(&h.app, "/fhir/OperationDefinition/Patient-nothing").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, m) = get(&h.app, "/fhir/metadata").await;
    let resources = m["rest"][0]["resource"].as_array().unwrap();
    let appt = resources.iter().find(|x| x["type"] == "Appointment").unwrap();
    let start = appt["operation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "start")
        .unwrap();
    assert_eq!(
        start["definition"],
        "http://gw.test/fhir/OperationDefinition/Appointment-start"
    );
    assert!(resources.iter().any(|x| x["type"] == "OperationDefinition"));
}

/// A practice of two patients with appointments and notes, behind the SMART policy.
fn smart_harness() -> axum::Router {
    let mut resources = patients("alpha", 3);
    for (id, patient) in [("a1", "alpha-1"), ("a2", "alpha-2"), ("a3", "alpha-1")] {
        resources.push(
            json!({"resourceType": "Appointment", "id": format!("alpha-{id}"), "status": "booked",
            "participant": [{"status": "accepted", "actor": {"reference": format!("Patient/{patient}")}},
                            {"status": "accepted", "actor": {"reference": "Practitioner/alpha-doc"}}]}),
        );
    }
    for (id, patient, category) in [
        ("n1", "alpha-1", "clinical-note"),
        ("n2", "alpha-1", "other"),
        ("n3", "alpha-2", "clinical-note"),
    ] {
        resources.push(
            json!({"resourceType": "DocumentReference", "id": format!("alpha-{id}"), "status": "current",
            "subject": {"reference": format!("Patient/{patient}")},
            "category": [{"coding": [{"system": "urn:test", "code": category}]}],
            "content": [{"attachment": {"contentType": "text/plain"}}]}),
        );
    }
    resources.push(json!({"resourceType": "Practitioner", "id": "alpha-doc"}));
    let source: Arc<dyn Adapter> = Arc::new(Memory::new("alpha", resources, 10));
    let options = GatewayOptions::new(Tz::UTC);
    let st = state(
        vec![source],
        &options,
        "http://gw.test",
        Arc::new(gateway::access::SmartPolicy::new(Tz::UTC)),
    );
    gateway::app::app(st)
}

fn as_caller(app: &axum::Router, scopes: &str, patient: Option<&str>) -> axum::Router {
    with_caller(
        app.clone(),
        gateway::access::Caller::token("app", scopes, patient, None),
    )
}

#[tokio::test]
async fn patient_tokens_see_only_their_compartment() {
    let app = smart_harness();
    let me = as_caller(&app, "patient/*.rs", Some("alpha-1"));
    assert_eq!(get(&me, "/fhir/Patient/alpha-1").await.0, StatusCode::OK);
    // Another patient by id: as missing.
    let (s, b) = get(&me, "/fhir/Patient/alpha-2").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert_eq!(get(&me, "/fhir/Appointment/alpha-a2").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&me, "/fhir/DocumentReference/alpha-n3").await.0,
        StatusCode::NOT_FOUND
    );
    // Searches are forced to the compartment; asking for another patient finds nothing.
    let (s, b) = get(&me, "/fhir/Appointment").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&b, "match"), ["alpha-a1", "alpha-a3"]);
    let (_, b) = get(&me, "/fhir/Appointment?patient=alpha-2").await;
    assert!(ids(&b, "match").is_empty(), "{b}");
    let (_, b) = get(&me, "/fhir/Patient").await;
    assert_eq!(ids(&b, "match"), ["alpha-1"]);
    // Includes never pull in another patient; non-compartment resources come along.
    let (_, b) = get(
        &me,
        "/fhir/Appointment?_include=Appointment:patient&_include=Appointment:practitioner",
    )
    .await;
    let mut included = ids(&b, "include");
    included.sort();
    assert_eq!(included, ["alpha-1", "alpha-doc"]);
    let (_, b) = get(&me, "/fhir/Patient?_id=alpha-2&_revinclude=Appointment:patient").await;
    assert!(ids(&b, "match").is_empty() && ids(&b, "include").is_empty(), "{b}");
    let (_, b) = get(&me, "/fhir/Patient?_revinclude=Appointment:patient").await;
    assert_eq!(ids(&b, "include"), ["alpha-a1", "alpha-a3"]);
    // Writes need write scopes.
    let (s, _, _) = call(
        &me,
        Request::post("/fhir/Patient/alpha-1/$touch")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // patient/ scopes without a patient in context grant nothing.
    let lost = as_caller(&app, "patient/*.rs", None);
    assert_eq!(get(&lost, "/fhir/Patient/alpha-1").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn each_interaction_needs_a_matching_scope() {
    let app = smart_harness();
    let reader = as_caller(&app, "system/Patient.r", None);
    assert_eq!(get(&reader, "/fhir/Patient/alpha-2").await.0, StatusCode::OK);
    let (s, b) = get(&reader, "/fhir/Patient?name=x").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "read is not search: {b}");
    assert_eq!(b["issue"][0]["code"], "forbidden");
    assert_eq!(get(&reader, "/fhir/Appointment").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&reader, "/fhir/Appointment/alpha-a1").await.0,
        StatusCode::FORBIDDEN
    );
    // v1 scopes work the same.
    let v1 = as_caller(&app, "user/*.read", None);
    let (s, b) = get(&v1, "/fhir/Appointment").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&b, "match").len(), 3);
    // No token at all is refused by the policy too (the auth layer answers 401 before this).
    assert_eq!(get(&app, "/fhir/Patient/alpha-1").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn constrained_scopes_show_only_matching_resources() {
    let app = smart_harness();
    let notes = as_caller(
        &app,
        "patient/DocumentReference.rs?category=clinical-note patient/Patient.rs",
        Some("alpha-1"),
    );
    let (s, b) = get(&notes, "/fhir/DocumentReference").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ids(&b, "match"), ["alpha-n1"]);
    assert_eq!(
        get(&notes, "/fhir/DocumentReference/alpha-n2").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&notes, "/fhir/DocumentReference/alpha-n3").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&notes, "/fhir/Appointment").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn patient_tokens_write_only_into_their_compartment() {
    let app = smart_harness();
    let me = as_caller(&app, "patient/*.cruds", Some("alpha-1"));
    let create = |patient: &str| {
        Request::post("/fhir/Appointment")
            .header("content-type", "application/fhir+json")
            .body(Body::from(
                json!({"resourceType": "Appointment", "status": "booked",
                    "participant": [{"status": "accepted", "actor": {"reference": format!("Patient/{patient}")}}]})
                .to_string(),
            ))
            .unwrap()
    };
    let (s, b, _) = call(&me, create("alpha-2")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b, _) = call(&me, create("alpha-1")).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}
