//! `GatewayResolver`: a missing resource and a failing source are different answers, and a failure
//! is never remembered.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use adapter::search::SearchRequest;
use adapter::{
    Adapter, AdapterError, Capabilities, Interaction, Page, PageRequest, Resolver, Resource, ResourceCapability,
    ResourceType,
};
use gateway::sources::{GatewayResolver, Sources};
use serde_json::json;

/// Patients by native id, readable unless `fail`; counts the reads.
struct Flaky {
    patients: HashSet<&'static str>,
    fail: AtomicBool,
    reads: AtomicU64,
    caps: Capabilities,
}

#[async_trait::async_trait]
impl Adapter for Flaky {
    fn source(&self) -> &'static str {
        "mem"
    }

    fn account(&self) -> &str {
        "acct"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn read(&self, resource_type: ResourceType, native_id: &str) -> Result<Resource, AdapterError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(AdapterError::Unavailable {
                vendor: "mem",
                detail: "down".into(),
            });
        }
        if resource_type != ResourceType::Patient || !self.patients.contains(native_id) {
            return Err(AdapterError::NotFound {
                resource_type,
                id: native_id.to_owned(),
            });
        }
        let v = json!({"resourceType": "Patient", "id": format!("mem-{native_id}")});
        Ok(fhirbolt::json::from_str(&v.to_string(), None).expect("a valid Patient"))
    }

    async fn search(&self, _request: &SearchRequest, _page: PageRequest) -> Result<Page, AdapterError> {
        Ok(Page {
            resources: vec![],
            next: None,
        })
    }

    async fn check(&self) -> Result<(), AdapterError> {
        Ok(())
    }
}

fn resolver() -> (Arc<GatewayResolver>, Arc<Flaky>) {
    let flaky = Arc::new(Flaky {
        patients: HashSet::from(["1"]),
        fail: AtomicBool::new(false),
        reads: AtomicU64::new(0),
        caps: Capabilities {
            resources: vec![ResourceCapability {
                resource_type: ResourceType::Patient,
                interactions: vec![Interaction::Read],
                pushdown: vec![],
                profiles: vec![],
                operations: vec![],
                patient_writes: vec![],
            }],
        },
    });
    let resolver = GatewayResolver::new(Duration::from_secs(600));
    resolver.bind(Sources::new(vec![flaky.clone() as Arc<dyn Adapter>]));
    (resolver, flaky)
}

#[tokio::test]
async fn a_failing_source_is_an_error_and_is_asked_again() {
    let (resolver, flaky) = resolver();
    flaky.fail.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        assert!(matches!(
            resolver.exists(ResourceType::Patient, "mem-1").await,
            Err(AdapterError::Unavailable { .. })
        ));
        assert!(matches!(
            resolver.read(ResourceType::Patient, "mem-1").await,
            Err(AdapterError::Unavailable { .. })
        ));
    }
    assert_eq!(flaky.reads.load(Ordering::SeqCst), 4, "a failure is not remembered");

    flaky.fail.store(false, Ordering::SeqCst);
    assert_eq!(resolver.exists(ResourceType::Patient, "mem-1").await, Ok(true));
    assert!(matches!(
        resolver.read(ResourceType::Patient, "mem-1").await,
        Ok(Some(Resource::Patient(_)))
    ));
}

#[tokio::test]
async fn missing_and_unknown_resources_are_answers_and_are_remembered() {
    let (resolver, flaky) = resolver();
    assert_eq!(resolver.exists(ResourceType::Patient, "mem-2").await, Ok(false));
    assert_eq!(resolver.read(ResourceType::Patient, "mem-2").await, Ok(None));
    assert_eq!(resolver.exists(ResourceType::Patient, "mem-1").await, Ok(true));
    let reads = flaky.reads.load(Ordering::SeqCst);
    // Remembered: a later failure of the source does not change these answers.
    flaky.fail.store(true, Ordering::SeqCst);
    assert_eq!(resolver.exists(ResourceType::Patient, "mem-2").await, Ok(false));
    assert_eq!(resolver.exists(ResourceType::Patient, "mem-1").await, Ok(true));
    assert_eq!(flaky.reads.load(Ordering::SeqCst), reads);
    // No source serves these ids (unknown source, a type it does not read, not an id).
    assert_eq!(resolver.exists(ResourceType::Patient, "other-1").await, Ok(false));
    assert_eq!(resolver.exists(ResourceType::Encounter, "mem-1").await, Ok(false));
    assert_eq!(resolver.read(ResourceType::Patient, "not an id").await, Ok(None));
}
