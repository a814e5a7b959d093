//! The caching decorator over an in-memory adapter that counts its calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter::search::{SearchParam, SearchRequest, SearchValue};
use adapter::{
    Adapter, AdapterError, Capabilities, ChangeEvent, ChangeKind, Page, PageRequest, Resource, ResourceType,
};
use gateway::cache::{CacheSettings, Cached, noting_stale};
use serde_json::json;

/// Patients by native id; versions bump on every update.
struct Counting {
    patients: Mutex<HashMap<String, u64>>,
    /// Padding added to every patient's name, to make resources large.
    padding: usize,
    reads: AtomicU64,
    searches: AtomicU64,
    fail: AtomicBool,
    /// Whether its webhooks announce every change of a Patient.
    announcing: AtomicBool,
    caps: Capabilities,
}

/// A webhook receiver that announces every Patient change (and receives nothing here).
struct PatientHooks;

impl adapter::WebhookReceiver for PatientHooks {
    fn receive(
        &self,
        _request: &adapter::WebhookRequest<'_>,
    ) -> Result<adapter::WebhookResponse, adapter::WebhookError> {
        Err(adapter::WebhookError::Malformed("not in these tests"))
    }

    fn announces(&self) -> &'static [ResourceType] {
        &[ResourceType::Patient]
    }
}

impl Counting {
    fn new(ids: &[&str]) -> Arc<Self> {
        Self::padded(ids, 0)
    }

    fn padded(ids: &[&str], padding: usize) -> Arc<Self> {
        Arc::new(Self {
            patients: Mutex::new(ids.iter().map(|id| ((*id).to_owned(), 1)).collect()),
            padding,
            reads: AtomicU64::new(0),
            searches: AtomicU64::new(0),
            fail: AtomicBool::new(false),
            announcing: AtomicBool::new(false),
            caps: Capabilities { resources: vec![] },
        })
    }

    fn patient(&self, id: &str, version: u64) -> Resource {
        let v = json!({
            "resourceType": "Patient",
            "id": format!("mem-{id}"),
            "meta": {"versionId": version.to_string()},
            "name": [{"family": format!("Family{}", "x".repeat(self.padding))}],
        });
        fhirbolt::json::from_str(&v.to_string(), None).expect("a valid Patient")
    }

    /// Changes a patient at the "vendor" (as a webhook would report).
    fn touch(&self, id: &str) {
        if let Some(v) = self.patients.lock().expect("lock").get_mut(id) {
            *v += 1;
        }
    }

    fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    fn searches(&self) -> u64 {
        self.searches.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Adapter for Counting {
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
        // The vendor answers with the state as it was when the request reached it.
        let version = self.patients.lock().expect("lock").get(native_id).copied();
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(AdapterError::Unavailable {
                vendor: "mem",
                detail: "down".into(),
            });
        }
        match (resource_type, version) {
            (ResourceType::Patient, Some(v)) => Ok(self.patient(native_id, v)),
            _ => Err(AdapterError::NotFound {
                resource_type,
                id: native_id.to_owned(),
            }),
        }
    }

    async fn search(&self, _request: &SearchRequest, _page: PageRequest) -> Result<Page, AdapterError> {
        self.searches.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(AdapterError::Timeout { vendor: "mem" });
        }
        let mut all: Vec<(String, u64)> = self
            .patients
            .lock()
            .expect("lock")
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        all.sort();
        Ok(Page {
            resources: all.iter().map(|(id, v)| self.patient(id, *v)).collect(),
            next: None,
        })
    }

    async fn check(&self) -> Result<(), AdapterError> {
        Ok(())
    }

    fn webhooks(&self) -> Option<&dyn adapter::WebhookReceiver> {
        self.announcing
            .load(Ordering::SeqCst)
            .then_some(&PatientHooks as &dyn adapter::WebhookReceiver)
    }

    async fn update(
        &self,
        resource_type: ResourceType,
        native_id: &str,
        _resource: Resource,
    ) -> Result<Resource, AdapterError> {
        self.touch(native_id);
        self.read(resource_type, native_id).await
    }
}

fn version(resource: &Resource) -> String {
    let bytes = fhirbolt::json::to_vec(resource, None).expect("serializes");
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    v["meta"]["versionId"].as_str().unwrap_or_default().to_owned()
}

fn event(source: &'static str, account: &str, id: &str) -> ChangeEvent {
    ChangeEvent {
        source,
        account: account.into(),
        resource_type: ResourceType::Patient,
        native_id: id.into(),
        kind: ChangeKind::Updated,
    }
}

fn patients_named(name: &str) -> SearchRequest {
    SearchRequest {
        resource_type: Some(ResourceType::Patient),
        params: vec![SearchParam {
            name: "name".into(),
            modifier: None,
            values: vec![SearchValue::String(name.into())],
        }],
    }
}

fn first_page() -> PageRequest {
    PageRequest { cursor: None, size: 50 }
}

fn cached(inner: &Arc<Counting>) -> Cached {
    Cached::new(inner.clone(), &CacheSettings::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cold_reads_make_one_inner_call() {
    let inner = Counting::new(&["1"]);
    let cache = cached(&inner);
    let reads = (0..200).map(|_| cache.read(ResourceType::Patient, "1"));
    let results = futures::future::join_all(reads).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(inner.reads(), 1);
    assert!(cache.read(ResourceType::Patient, "1").await.is_ok());
    assert_eq!(inner.reads(), 1, "the second read is a hit");
    let stats = cache.stats();
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.hits, 200);
}

#[tokio::test]
async fn errors_are_not_cached() {
    let inner = Counting::new(&["1"]);
    // With `not_found_ttl` zero even the vendor's "not found" is an error like any other.
    let settings = CacheSettings {
        not_found_ttl: Duration::ZERO,
        ..CacheSettings::default()
    };
    let cache = Cached::new(inner.clone(), &settings);
    inner.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        cache.read(ResourceType::Patient, "1").await,
        Err(AdapterError::Unavailable { .. })
    ));
    assert!(matches!(
        cache.read(ResourceType::Patient, "2").await,
        Err(AdapterError::Unavailable { .. })
    ));
    inner.fail.store(false, Ordering::SeqCst);
    assert!(cache.read(ResourceType::Patient, "1").await.is_ok());
    assert_eq!(inner.reads(), 3, "the read after an error calls again");
    assert!(matches!(
        cache.read(ResourceType::Patient, "2").await,
        Err(AdapterError::NotFound { .. })
    ));
    assert!(matches!(
        cache.read(ResourceType::Patient, "2").await,
        Err(AdapterError::NotFound { .. })
    ));
    assert_eq!(inner.reads(), 5, "not-found is an error too: not cached");
}

#[tokio::test]
async fn a_missing_id_is_asked_once_until_a_change_event_evicts_it() {
    let inner = Counting::new(&["1"]);
    let cache = cached(&inner);
    for _ in 0..2 {
        assert!(matches!(
            cache.read(ResourceType::Patient, "404").await,
            Err(AdapterError::NotFound { .. })
        ));
    }
    assert_eq!(inner.reads(), 1, "the vendor's not-found is remembered");
    // The resource appears at the vendor: remembered until a webhook says so.
    inner.patients.lock().expect("lock").insert("404".into(), 1);
    assert!(matches!(
        cache.read(ResourceType::Patient, "404").await,
        Err(AdapterError::NotFound { .. })
    ));
    assert_eq!(inner.reads(), 1);
    cache.apply(&event("mem", "acct", "404")).await;
    let found = cache
        .read(ResourceType::Patient, "404")
        .await
        .expect("read after the event");
    assert_eq!(version(&found), "1");
    assert_eq!(inner.reads(), 2);
    // Errors that are not the vendor's answer about the resource are still never remembered.
    inner.fail.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        assert!(matches!(
            cache.read(ResourceType::Patient, "405").await,
            Err(AdapterError::Unavailable { .. })
        ));
    }
    assert_eq!(inner.reads(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_of_a_missing_id_make_one_inner_call() {
    let inner = Counting::new(&["1"]);
    let cache = cached(&inner);
    let reads = (0..100).map(|_| cache.read(ResourceType::Patient, "404"));
    let results = futures::future::join_all(reads).await;
    assert!(results.iter().all(|r| matches!(r, Err(AdapterError::NotFound { .. }))));
    assert_eq!(inner.reads(), 1);
}

#[tokio::test]
async fn a_remembered_not_found_expires_and_is_never_served_stale() {
    let inner = Counting::new(&["1"]);
    let settings = CacheSettings {
        not_found_ttl: Duration::from_millis(100),
        ..CacheSettings::default()
    };
    let cache = Cached::new(inner.clone(), &settings);
    assert!(cache.read(ResourceType::Patient, "404").await.is_err());
    assert!(cache.read(ResourceType::Patient, "404").await.is_err());
    assert_eq!(inner.reads(), 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    inner.fail.store(true, Ordering::SeqCst);
    assert!(
        matches!(
            cache.read(ResourceType::Patient, "404").await,
            Err(AdapterError::Unavailable { .. })
        ),
        "past its lifetime a not-found stands in for nothing (stale_if_error is for resources)"
    );
    inner.fail.store(false, Ordering::SeqCst);
    inner.patients.lock().expect("lock").insert("404".into(), 1);
    assert!(cache.read(ResourceType::Patient, "404").await.is_ok());
    assert_eq!(inner.reads(), 3);
}

#[tokio::test]
async fn a_search_showing_the_resource_replaces_a_remembered_not_found() {
    let inner = Counting::new(&["1"]);
    let cache = cached(&inner);
    assert!(cache.read(ResourceType::Patient, "2").await.is_err());
    inner.patients.lock().expect("lock").insert("2".into(), 1);
    cache.search(&patients_named("a"), first_page()).await.expect("search");
    let found = cache
        .read(ResourceType::Patient, "2")
        .await
        .expect("warmed by the page");
    assert_eq!(version(&found), "1");
    assert_eq!(inner.reads(), 1, "only the first read reached the vendor");
}

#[tokio::test]
async fn a_change_event_evicts_the_read() {
    let inner = Counting::new(&["1"]);
    let cache = cached(&inner);
    assert_eq!(
        version(&cache.read(ResourceType::Patient, "1").await.expect("read")),
        "1"
    );
    inner.touch("1");
    assert_eq!(
        version(&cache.read(ResourceType::Patient, "1").await.expect("read")),
        "1",
        "cached until told"
    );
    cache.apply(&event("mem", "acct", "1")).await;
    assert_eq!(
        version(&cache.read(ResourceType::Patient, "1").await.expect("read")),
        "2"
    );
    assert_eq!(inner.reads(), 2);
}

#[tokio::test]
async fn an_update_through_the_cache_evicts() {
    let inner = Counting::new(&["1"]);
    let cache = cached(&inner);
    let before = cache.read(ResourceType::Patient, "1").await.expect("read");
    assert_eq!(version(&before), "1");
    let updated = cache.update(ResourceType::Patient, "1", before).await.expect("update");
    assert_eq!(version(&updated), "2");
    let reads = inner.reads();
    assert_eq!(
        version(&cache.read(ResourceType::Patient, "1").await.expect("read")),
        "2"
    );
    assert_eq!(inner.reads(), reads + 1, "the read after the update misses");
}

/// Writes through the cache are told to the other replicas (`announce_writes_to`): what changed,
/// at which source and account.
#[tokio::test]
async fn writes_are_announced_for_the_other_replicas() {
    let inner = Counting::new(&["1"]);
    let cache = cached(&inner);
    let told = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = told.clone();
    cache.announce_writes_to(Arc::new(move |e: ChangeEvent| sink.lock().unwrap().push(e)));
    let before = cache.read(ResourceType::Patient, "1").await.expect("read");
    assert!(told.lock().unwrap().is_empty(), "a read announces nothing");
    cache.update(ResourceType::Patient, "1", before).await.expect("update");
    let told = told.lock().unwrap().clone();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].native_id, "1");
    assert_eq!(told[0].resource_type, ResourceType::Patient);
    assert_eq!(told[0].source, inner.source());
    assert_eq!(told[0].kind, ChangeKind::Updated);
}

#[tokio::test]
async fn search_pages_are_cached_and_warm_reads() {
    let inner = Counting::new(&["1", "2"]);
    let cache = cached(&inner);
    let page = cache.search(&patients_named("a"), first_page()).await.expect("search");
    assert_eq!(page.resources.len(), 2);
    let again = cache.search(&patients_named("a"), first_page()).await.expect("search");
    assert_eq!(again.resources.len(), 2);
    assert_eq!(inner.searches(), 1, "the identical search is a hit");
    cache.search(&patients_named("b"), first_page()).await.expect("search");
    assert_eq!(inner.searches(), 2, "another request misses");
    cache
        .search(&patients_named("a"), PageRequest { cursor: None, size: 10 })
        .await
        .expect("search");
    assert_eq!(inner.searches(), 3, "another page size misses");
    assert!(cache.read(ResourceType::Patient, "1").await.is_ok());
    assert!(cache.read(ResourceType::Patient, "2").await.is_ok());
    assert_eq!(inner.reads(), 0, "reads after a search are warm");
}

#[tokio::test]
async fn parameter_order_does_not_matter() {
    let inner = Counting::new(&["1"]);
    let cache = cached(&inner);
    let param = |name: &str, value: &str| SearchParam {
        name: name.into(),
        modifier: None,
        values: vec![SearchValue::String(value.into())],
    };
    let ab = SearchRequest {
        resource_type: Some(ResourceType::Patient),
        params: vec![param("family", "x"), param("given", "y")],
    };
    let ba = SearchRequest {
        resource_type: Some(ResourceType::Patient),
        params: vec![param("given", "y"), param("family", "x")],
    };
    cache.search(&ab, first_page()).await.expect("search");
    cache.search(&ba, first_page()).await.expect("search");
    assert_eq!(inner.searches(), 1);
}

#[tokio::test]
async fn a_change_event_for_the_type_makes_searches_miss() {
    let inner = Counting::new(&["1"]);
    let cache = cached(&inner);
    cache.search(&patients_named("a"), first_page()).await.expect("search");
    cache.apply(&event("mem", "acct", "1")).await;
    cache.search(&patients_named("a"), first_page()).await.expect("search");
    assert_eq!(inner.searches(), 2);
}

#[tokio::test]
async fn events_of_other_accounts_or_sources_evict_nothing() {
    let inner = Counting::new(&["1"]);
    let cache = cached(&inner);
    cache.read(ResourceType::Patient, "1").await.expect("read");
    cache.search(&patients_named("a"), first_page()).await.expect("search");
    cache.apply(&event("mem", "other-account", "1")).await;
    cache.apply(&event("other", "acct", "1")).await;
    cache.read(ResourceType::Patient, "1").await.expect("read");
    cache.search(&patients_named("a"), first_page()).await.expect("search");
    assert_eq!(inner.reads(), 1);
    assert_eq!(inner.searches(), 1);
}

#[tokio::test]
async fn clear_forgets_everything() {
    let inner = Counting::new(&["1"]);
    let cache = cached(&inner);
    cache.read(ResourceType::Patient, "1").await.expect("read");
    cache.search(&patients_named("a"), first_page()).await.expect("search");
    cache.clear();
    cache.read(ResourceType::Patient, "1").await.expect("read");
    cache.search(&patients_named("a"), first_page()).await.expect("search");
    assert_eq!(inner.reads(), 2);
    assert_eq!(inner.searches(), 2);
}

#[tokio::test]
async fn the_byte_bound_holds() {
    let ids: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let inner = Counting::padded(&refs, 4_000);
    let settings = CacheSettings {
        max_bytes: 64 * 1024,
        ..CacheSettings::default()
    };
    let cache = Cached::new(inner.clone(), &settings);
    for id in &ids {
        cache.read(ResourceType::Patient, id).await.expect("read");
    }
    cache.run_pending_tasks().await;
    let stats = cache.stats();
    assert!(stats.weighted_bytes <= settings.max_bytes, "{stats:?}");
    assert!(stats.weighted_bytes > 0, "{stats:?}");
    assert!(stats.evictions > 0, "{stats:?}");
    assert!(stats.entries < 200, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_in_flight_during_an_eviction_never_caches_the_old_version() {
    let inner = Counting::new(&["1"]);
    let cache = Arc::new(cached(&inner));
    let in_flight = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.read(ResourceType::Patient, "1").await })
    };
    // The read has reached the vendor (version 1) when the change happens and is announced.
    tokio::time::sleep(Duration::from_millis(5)).await;
    inner.touch("1");
    cache.apply(&event("mem", "acct", "1")).await;
    let old = in_flight.await.expect("join").expect("read");
    assert_eq!(
        version(&old),
        "1",
        "the read that was under way answers what the vendor said"
    );
    let after = cache.read(ResourceType::Patient, "1").await.expect("read");
    assert_eq!(version(&after), "2", "nothing read after the event is the old version");
    assert_eq!(inner.reads(), 2);
}

fn short_lived(stale_if_error: Duration) -> CacheSettings {
    let mut settings = CacheSettings::default();
    settings
        .read_ttl
        .insert(ResourceType::Patient, Duration::from_millis(100));
    settings.search_ttl = Duration::from_millis(100);
    settings.search_ttl_by_type.clear();
    settings.stale_if_error = stale_if_error;
    settings
}

#[tokio::test]
async fn a_failing_vendor_gets_the_stale_copy_within_the_window_and_says_so() {
    let inner = Counting::new(&["1"]);
    let cache = Cached::new(inner.clone(), &short_lived(Duration::from_secs(30)));
    let (first, notes) = noting_stale(cache.read(ResourceType::Patient, "1")).await;
    assert!(first.is_ok() && notes.is_empty());
    tokio::time::sleep(Duration::from_millis(150)).await;
    inner.fail.store(true, Ordering::SeqCst);
    let (stale, notes) = noting_stale(cache.read(ResourceType::Patient, "1")).await;
    assert_eq!(version(&stale.expect("the stale copy")), "1");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].source, "mem");
    assert!(notes[0].age >= Duration::from_millis(150), "{notes:?}");
    assert!(notes[0].failure.contains("mem"), "{notes:?}");
    assert_eq!(inner.reads(), 2, "the stale entry was refreshed first");
    assert_eq!(cache.stats().stale, 1);
    // Back up: the next read is fresh again and noted as nothing.
    inner.fail.store(false, Ordering::SeqCst);
    inner.touch("1");
    let (fresh, notes) = noting_stale(cache.read(ResourceType::Patient, "1")).await;
    assert_eq!(version(&fresh.expect("read")), "2");
    assert!(notes.is_empty());
}

#[tokio::test]
async fn past_the_window_or_when_the_resource_is_gone_nothing_stale_is_served() {
    let inner = Counting::new(&["1", "2"]);
    let cache = Cached::new(inner.clone(), &short_lived(Duration::from_millis(100)));
    cache.read(ResourceType::Patient, "1").await.expect("read");
    cache.read(ResourceType::Patient, "2").await.expect("read");
    tokio::time::sleep(Duration::from_millis(250)).await;
    inner.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        cache.read(ResourceType::Patient, "1").await,
        Err(AdapterError::Unavailable { .. })
    ));
    // Within the window, but the vendor says the resource is gone: the old copy is forgotten.
    let cache = Cached::new(inner.clone(), &short_lived(Duration::from_secs(30)));
    inner.fail.store(false, Ordering::SeqCst);
    cache.read(ResourceType::Patient, "2").await.expect("read");
    tokio::time::sleep(Duration::from_millis(150)).await;
    inner.patients.lock().expect("lock").remove("2");
    assert!(matches!(
        cache.read(ResourceType::Patient, "2").await,
        Err(AdapterError::NotFound { .. })
    ));
    inner.fail.store(true, Ordering::SeqCst);
    assert!(
        matches!(
            cache.read(ResourceType::Patient, "2").await,
            Err(AdapterError::NotFound { .. })
        ),
        "a resource the vendor said is gone is never served stale: its not-found is (briefly) remembered"
    );
    assert_eq!(inner.reads(), 5, "the remembered not-found made no vendor call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_a_stale_entry_make_one_inner_call() {
    let inner = Counting::new(&["1"]);
    let cache = Cached::new(inner.clone(), &short_lived(Duration::from_secs(30)));
    cache.read(ResourceType::Patient, "1").await.expect("read");
    tokio::time::sleep(Duration::from_millis(150)).await;
    inner.touch("1");
    let reads = (0..100).map(|_| cache.read(ResourceType::Patient, "1"));
    let results = futures::future::join_all(reads).await;
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|r| version(r) == "2")));
    assert_eq!(inner.reads(), 2, "one refresh for a hundred callers");
}

#[tokio::test]
async fn stale_search_pages_are_served_when_the_vendor_fails() {
    let inner = Counting::new(&["1", "2"]);
    let cache = Cached::new(inner.clone(), &short_lived(Duration::from_secs(30)));
    let page = cache.search(&patients_named("x"), first_page()).await.expect("search");
    tokio::time::sleep(Duration::from_millis(150)).await;
    inner.fail.store(true, Ordering::SeqCst);
    let (again, notes) = noting_stale(cache.search(&patients_named("x"), first_page())).await;
    assert_eq!(again.expect("stale page").resources.len(), page.resources.len());
    assert_eq!(notes.len(), 1);
    assert_eq!(inner.searches(), 2);
    let by_type = cache.stats_by_type();
    let patient = by_type.iter().find(|(t, _)| *t == "Patient").expect("Patient stats");
    assert_eq!(patient.1.stale, 1, "{by_type:?}");
    assert!(patient.1.weighted_bytes > 0, "{by_type:?}");
}

#[tokio::test]
async fn types_the_source_announces_in_full_live_the_announced_ttl_and_events_still_evict_them() {
    let mut settings = short_lived(Duration::ZERO);
    settings.announced_ttl = Duration::from_secs(3600);
    let request = SearchRequest {
        resource_type: Some(ResourceType::Patient),
        params: vec![],
    };
    let page = || PageRequest { cursor: None, size: 10 };

    // Without webhooks the short TTLs hold.
    let plain = Counting::new(&["1"]);
    let cache = Cached::new(plain.clone(), &settings);
    cache.read(ResourceType::Patient, "1").await.expect("read");
    cache.search(&request, page()).await.expect("search");
    tokio::time::sleep(Duration::from_millis(150)).await;
    cache.read(ResourceType::Patient, "1").await.expect("read");
    cache.search(&request, page()).await.expect("search");
    assert_eq!((plain.reads(), plain.searches.load(Ordering::SeqCst)), (2, 2));

    // With webhooks announcing every Patient change, past the short TTLs nothing is asked again…
    let announced = Counting::new(&["1"]);
    announced.announcing.store(true, Ordering::SeqCst);
    let cache = Cached::new(announced.clone(), &settings);
    cache.read(ResourceType::Patient, "1").await.expect("read");
    cache.search(&request, page()).await.expect("search");
    tokio::time::sleep(Duration::from_millis(150)).await;
    cache.read(ResourceType::Patient, "1").await.expect("read");
    cache.search(&request, page()).await.expect("search");
    assert_eq!((announced.reads(), announced.searches.load(Ordering::SeqCst)), (1, 1));

    // …until a change event names the patient.
    announced.touch("1");
    cache.apply(&event("mem", "acct", "1")).await;
    let after = cache.read(ResourceType::Patient, "1").await.expect("read");
    assert_eq!(version(&after), "2");
    cache.search(&request, page()).await.expect("search");
    assert_eq!(announced.searches.load(Ordering::SeqCst), 2);

    // `announced_ttl` zero: announced types are like the others.
    settings.announced_ttl = Duration::ZERO;
    let off = Counting::new(&["1"]);
    off.announcing.store(true, Ordering::SeqCst);
    let cache = Cached::new(off.clone(), &settings);
    cache.read(ResourceType::Patient, "1").await.expect("read");
    tokio::time::sleep(Duration::from_millis(150)).await;
    cache.read(ResourceType::Patient, "1").await.expect("read");
    assert_eq!(off.reads(), 2);
}
