//! `[limits]` through the router: bodies, URLs, headers and search parameters over their bounds are
//! answered with an OperationOutcome (413, 414, 431, 400) naming the parameter, before any vendor
//! call; within them everything works as before, paging links included.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use adapter::search::SearchRequest;
use adapter::{
    Adapter, AdapterError, Capabilities, Interaction, Page, PageRequest, Resource, ResourceCapability, ResourceType,
};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono_tz::Tz;
use gateway::access::OpenAccess;
use gateway::query::Limits;
use gateway::run::{GatewayOptions, state};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Ten patients; counts every call that reaches it.
struct Counting {
    calls: AtomicU64,
    caps: Capabilities,
}

fn patient(i: usize) -> Resource {
    let v = json!({"resourceType": "Patient", "id": format!("alpha-{i}"), "name": [{"family": "Smith"}]});
    fhirbolt::json::from_str(&v.to_string(), None).expect("a valid Patient")
}

#[async_trait::async_trait]
impl Adapter for Counting {
    fn source(&self) -> &'static str {
        "alpha"
    }

    fn account(&self) -> &str {
        "acct"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn read(&self, resource_type: ResourceType, native_id: &str) -> Result<Resource, AdapterError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match native_id.parse::<usize>() {
            Ok(i) if resource_type == ResourceType::Patient && i < 10 => Ok(patient(i)),
            _ => Err(AdapterError::NotFound {
                resource_type,
                id: native_id.to_owned(),
            }),
        }
    }

    async fn search(&self, _request: &SearchRequest, _page: PageRequest) -> Result<Page, AdapterError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Page {
            resources: (0..10).map(patient).collect(),
            next: None,
        })
    }

    async fn check(&self) -> Result<(), AdapterError> {
        Ok(())
    }

    async fn create(&self, _resource: Resource) -> Result<Resource, AdapterError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(AdapterError::Unsupported {
            what: "creating patients".into(),
        })
    }
}

const SMALL: Limits = Limits {
    max_body_bytes: 2048,
    max_search_body_bytes: 256,
    max_query_bytes: 300,
    max_header_bytes: 1024,
    max_params: 6,
    max_value_len: 40,
    max_sort_keys: 2,
    max_includes: 1,
    max_elements: 3,
};

fn harness() -> (axum::Router, Arc<Counting>) {
    let source = Arc::new(Counting {
        calls: AtomicU64::new(0),
        caps: Capabilities {
            resources: vec![ResourceCapability {
                resource_type: ResourceType::Patient,
                interactions: vec![
                    Interaction::Read,
                    Interaction::SearchType,
                    Interaction::Create,
                    Interaction::Update,
                ],
                pushdown: vec![],
                profiles: vec![],
                operations: vec![],
                patient_writes: vec![],
            }],
        },
    });
    let mut options = GatewayOptions::new(Tz::UTC);
    options.request_limits = SMALL;
    let sources: Vec<Arc<dyn Adapter>> = vec![source.clone()];
    let st = state(sources, &options, "http://gw.test", Arc::new(OpenAccess));
    (gateway::app::app(st), source)
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.expect("the router answers");
    let status = resp.status();
    let fhir = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/fhir+json"));
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("a body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        assert!(fhir, "{status}: an error is an application/fhir+json OperationOutcome");
        assert_eq!(body["resourceType"], "OperationOutcome", "{status}: {body}");
    }
    (status, body)
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    call(app, Request::get(uri).body(Body::empty()).expect("a request")).await
}

fn form(uri: &str, body: String) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("a request")
}

#[tokio::test]
async fn search_parameters_over_the_limits_are_400s_naming_the_parameter() {
    let (app, source) = harness();
    let secret = "x".repeat(41);
    let cases = [
        (
            "/fhir/Patient?a=1&b=2&c=3&d=4&e=5&f=6&g=7".to_owned(),
            None,
            "too-costly",
        ),
        (format!("/fhir/Patient?family={secret}"), Some("family"), "too-long"),
        (
            "/fhir/Patient?_sort=family,given,birthdate".to_owned(),
            Some("_sort"),
            "too-costly",
        ),
        (
            "/fhir/Patient?_revinclude=Appointment:patient&_revinclude=Appointment:patient".to_owned(),
            Some("_revinclude"),
            "too-costly",
        ),
        (
            "/fhir/Patient?_elements=id,name,gender,birthDate".to_owned(),
            Some("_elements"),
            "too-costly",
        ),
        // Reads take `_elements` too.
        (
            "/fhir/Patient/alpha-1?_elements=id,name,gender,birthDate".to_owned(),
            Some("_elements"),
            "too-costly",
        ),
    ];
    for (uri, name, code) in cases {
        let (status, body) = get(&app, &uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let issue = &body["issue"][0];
        assert_eq!(issue["code"], code, "{uri}: {body}");
        match name {
            Some(n) => assert_eq!(issue["expression"][0], n, "{uri}: {body}"),
            None => assert!(issue.get("expression").is_none(), "{uri}: {body}"),
        }
        assert!(!body.to_string().contains(&secret), "values are never echoed: {body}");
    }
    // The same through POST _search: the form's parameters count with the URL's.
    let (status, body) = call(
        &app,
        form("/fhir/Patient/_search?_sort=family", "_sort=given,birthdate".into()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["issue"][0]["expression"][0], "_sort");
    assert_eq!(source.calls.load(Ordering::SeqCst), 0, "no vendor was called");
}

#[tokio::test]
async fn a_long_url_is_414_and_large_headers_are_431() {
    let (app, source) = harness();
    let (status, body) = get(&app, &format!("/fhir/Patient?family={}", "y".repeat(400))).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG, "{body}");
    assert_eq!(body["issue"][0]["code"], "too-long");
    let (status, body) = call(
        &app,
        Request::get("/fhir/Patient")
            .header("x-padding", "z".repeat(2000))
            .body(Body::empty())
            .expect("a request"),
    )
    .await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "{body}");
    assert_eq!(body["issue"][0]["code"], "too-long");
    assert!(!body.to_string().contains("zzzz"));
    assert_eq!(source.calls.load(Ordering::SeqCst), 0, "no vendor was called");
}

#[tokio::test]
async fn bodies_over_their_route_limit_are_413_outcomes() {
    let (app, source) = harness();
    // `_search` takes at most 256 bytes of form…
    let (status, body) = call(
        &app,
        form("/fhir/Patient/_search", format!("family={}", "a".repeat(300))),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["issue"][0]["code"], "too-long");
    // …a resource body up to 2048: 600 bytes pass the limit, 3000 do not.
    let resource =
        |padding: usize| json!({"resourceType": "Patient", "name": [{"family": "p".repeat(padding)}]}).to_string();
    let create = |body: String| {
        Request::post("/fhir/Patient")
            .header("content-type", "application/fhir+json")
            .body(Body::from(body))
            .expect("a request")
    };
    let (status, body) = call(&app, create(resource(600))).await;
    assert_ne!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let calls = source.calls.load(Ordering::SeqCst);
    let (status, body) = call(&app, create(resource(3000))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["issue"][0]["code"], "too-long");
    let (status, body) = call(
        &app,
        Request::put("/fhir/Patient/alpha-1")
            .header("content-type", "application/fhir+json")
            .body(Body::from(resource(3000)))
            .expect("a request"),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(
        source.calls.load(Ordering::SeqCst),
        calls,
        "nothing over a limit reached the source"
    );
}

#[tokio::test]
async fn within_the_limits_searches_and_paging_links_work() {
    let (app, _) = harness();
    let (status, body) = get(&app, "/fhir/Patient?family=smith&_sort=family&_count=3").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entry"].as_array().map(Vec::len), Some(3));
    let (status, body) = call(&app, form("/fhir/Patient/_search", "family=smith&_count=3".into())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A paging link is longer than `max_value_len` and may be longer than `max_query_bytes`: it is
    // the gateway's own, checked by its signature.
    let mut next = Some("/fhir/Patient?family=smith&_count=3".to_owned());
    let mut seen = 0;
    while let Some(uri) = next {
        let (status, body) = get(&app, &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        seen += body["entry"].as_array().map_or(0, Vec::len);
        next = body["link"].as_array().and_then(|links| {
            links
                .iter()
                .find(|l| l["relation"] == "next")
                .and_then(|l| l["url"].as_str())
                .map(|u| u.trim_start_matches("http://gw.test").to_owned())
        });
        if let Some(u) = &next {
            assert!(u.len() > SMALL.max_value_len, "the link is long enough to matter: {u}");
        }
    }
    assert_eq!(seen, 10, "every match, across every page");
}
