//! `/metrics` carries each vendor client's resilience figures, through the metering and caching
//! decorators, for the sources that report them.

use std::sync::Arc;
use std::time::Duration;

use adapter::search::SearchRequest;
use adapter::{
    Adapter, AdapterError, BreakerState, BudgetStatus, Capabilities, Page, PageRequest, Resource, ResourceType,
    VendorHealth,
};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use gateway::access::OpenAccess;
use gateway::app::app;
use gateway::cache::CacheSettings;
use gateway::run::{GatewayOptions, state};
use tower::ServiceExt;

/// A source that serves nothing and reports `health`.
struct Reporting {
    source: &'static str,
    health: Option<VendorHealth>,
    caps: Capabilities,
}

#[async_trait::async_trait]
impl Adapter for Reporting {
    fn source(&self) -> &'static str {
        self.source
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

    fn health(&self) -> Option<VendorHealth> {
        self.health.clone()
    }
}

async fn metrics_text(cache: bool) -> String {
    let drchrono = Reporting {
        source: "drchrono",
        health: Some(VendorHealth {
            breaker: BreakerState::Open,
            retries: 12,
            breaker_rejections: 3,
            budget_waits: 1,
            budget_rejections: 0,
            budgets: vec![BudgetStatus {
                label: "hourly".into(),
                limit: 500,
                window: Duration::from_secs(3600),
                remaining: 431,
            }],
        }),
        caps: Capabilities { resources: vec![] },
    };
    let silent = Reporting {
        source: "memory",
        health: None,
        caps: Capabilities { resources: vec![] },
    };
    let mut options = GatewayOptions::new(chrono_tz::Tz::UTC);
    if cache {
        options.cache = Some(CacheSettings::default());
    }
    let st = state(
        vec![Arc::new(drchrono), Arc::new(silent)],
        &options,
        "http://gw.test",
        Arc::new(OpenAccess),
    );
    let response = app(st)
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn metrics_carry_the_vendor_breaker_retries_and_budgets() {
    for cache in [false, true] {
        let text = metrics_text(cache).await;
        for line in [
            "# TYPE fhir_gateway_vendor_breaker_state gauge",
            "fhir_gateway_vendor_breaker_state{source=\"drchrono\"} 2",
            "fhir_gateway_vendor_retries_total{source=\"drchrono\"} 12",
            "fhir_gateway_vendor_breaker_rejections_total{source=\"drchrono\"} 3",
            "fhir_gateway_vendor_budget_waits_total{source=\"drchrono\"} 1",
            "fhir_gateway_vendor_budget_rejections_total{source=\"drchrono\"} 0",
            "fhir_gateway_vendor_budget_remaining{source=\"drchrono\",label=\"hourly\"} 431",
            "fhir_gateway_vendor_budget_limit{source=\"drchrono\",label=\"hourly\"} 500",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "cache {cache}: {line} missing in\n{text}"
            );
        }
        let health_series = ["breaker_", "retries_", "budget_"].map(|s| format!("fhir_gateway_vendor_{s}"));
        assert!(
            !text
                .lines()
                .any(|l| health_series.iter().any(|s| l.starts_with(s.as_str())) && l.contains("source=\"memory\"")),
            "a source without a vendor client reports nothing"
        );
    }
}
