//! An opt-in caching decorator over the adapter contract.
//!
//! [`Cached`] wraps one adapter (in the gateway: `Cached(Metered(adapter))`, so vendor-call metrics
//! count only misses) and remembers reads and search pages for a while:
//!
//! - reads are keyed by account, source, type and native id and live for a per-type TTL;
//! - search pages are keyed by account, source, the canonical request, the page cursor and size, and
//!   the type's current *generation*: bumping the generation makes every cached page of the type
//!   unreachable at once (they age out or are pushed out by the byte bound);
//! - concurrent identical misses make exactly one inner call; errors are never cached;
//! - entries are weighed by their serialized FHIR JSON size and the whole cache stays under
//!   [`CacheSettings::max_bytes`].
//!
//! Writes through the decorator and vendor change events ([`Cached::apply`]) evict what they change.
//! The access policy is applied by the handlers after the cache (ARCHITECTURE.md invariant 3), and
//! every key carries [`Adapter::account`], so an entry is never shared between accounts.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adapter::search::SearchRequest;
use adapter::{
    Adapter, AdapterError, Capabilities, ChangeEvent, FhirId, Page, PageRequest, Resource, ResourceType, SourceName,
    WebhookReceiver,
};
use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::ops::compute::{CompResult, Op};

/// How much to cache and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// The bound on the serialized size of everything cached (reads and search pages together).
    pub max_bytes: u64,
    /// How long a read stays fresh, per resource type (types not listed: [`DEFAULT_READ_TTL`]).
    pub read_ttl: HashMap<ResourceType, Duration>,
    /// How long a search page stays fresh.
    pub search_ttl: Duration,
    /// How long past its TTL an entry is still served when the vendor fails (stale-if-error);
    /// zero serves nothing stale.
    pub stale_if_error: Duration,
}

/// The read TTL of a type missing from [`CacheSettings::read_ttl`].
pub const DEFAULT_READ_TTL: Duration = Duration::from_secs(60);

impl Default for CacheSettings {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(m * 60);
        let read_ttl = HashMap::from([
            (ResourceType::Patient, min(10)),
            (ResourceType::Practitioner, min(10)),
            (ResourceType::Location, min(10)),
            (ResourceType::Appointment, min(2)),
            (ResourceType::Encounter, min(2)),
            (ResourceType::DocumentReference, min(5)),
            (ResourceType::Schedule, min(1)),
            (ResourceType::Slot, min(1)),
        ]);
        Self {
            max_bytes: 64 * 1024 * 1024,
            read_ttl,
            search_ttl: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(300),
        }
    }
}

impl CacheSettings {
    /// The TTL of reads of `resource_type`.
    pub fn read_ttl_of(&self, resource_type: ResourceType) -> Duration {
        self.read_ttl.get(&resource_type).copied().unwrap_or(DEFAULT_READ_TTL)
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Calls answered without an inner call (including callers that waited for a concurrent miss).
    pub hits: u64,
    /// Calls that went to the inner adapter.
    pub misses: u64,
    /// Entries removed by the byte bound or their TTL.
    pub evictions: u64,
    /// Entries held (approximate until pending maintenance has run).
    pub entries: u64,
    /// The weighed size of the entries held, in bytes of serialized FHIR JSON.
    pub weighted_bytes: u64,
    /// Answers served past their TTL because the vendor failed (stale-if-error).
    pub stale: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ReadKey {
    account: Arc<str>,
    source: SourceName,
    resource_type: ResourceType,
    native_id: String,
    /// How many times this resource was evicted (and the cache cleared): a read that was already
    /// on its way to the vendor when the eviction came stores its answer under the old epoch, where
    /// no later read looks.
    epoch: (u64, u64),
}

/// Evicted resources remembered for their epochs before the whole read cache is cleared instead.
const MAX_EPOCHS: usize = 100_000;

#[derive(Debug, Clone)]
struct ReadEntry {
    resource: Arc<Resource>,
    size: u64,
    /// When the vendor answered: fresh for the type's TTL, then kept for `stale_if_error`.
    fetched: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SearchKey {
    account: Arc<str>,
    resource_type: Option<ResourceType>,
    source: SourceName,
    request: String,
    cursor: Option<String>,
    size: u32,
    generation: u64,
}

#[derive(Debug, Clone)]
struct PageEntry {
    page: Arc<Page>,
    size: u64,
    fetched: Instant,
}

/// Cache entries know when the vendor gave them.
trait Fetched {
    fn fetched(&self) -> Instant;
}

impl Fetched for ReadEntry {
    fn fetched(&self) -> Instant {
        self.fetched
    }
}

impl Fetched for PageEntry {
    fn fetched(&self) -> Instant {
        self.fetched
    }
}

/// Per-type read lifetimes for moka: the TTL plus the stale-if-error window.
struct ReadExpiry {
    keep: [Duration; ResourceType::ALL.len()],
}

impl Expiry<ReadKey, ReadEntry> for ReadExpiry {
    fn expire_after_create(&self, key: &ReadKey, _value: &ReadEntry, _created_at: Instant) -> Option<Duration> {
        Some(self.keep[type_index(key.resource_type)])
    }

    fn expire_after_update(
        &self,
        key: &ReadKey,
        _value: &ReadEntry,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.keep[type_index(key.resource_type)])
    }
}

fn type_index(resource_type: ResourceType) -> usize {
    ResourceType::ALL
        .iter()
        .position(|t| *t == resource_type)
        .unwrap_or_default()
}

fn weight(size: u64) -> u32 {
    u32::try_from(size).unwrap_or(u32::MAX).max(1)
}

/// The serialized FHIR JSON of a resource, with the type and id it names.
struct Serialized {
    size: u64,
    resource_type: Option<ResourceType>,
    id: Option<String>,
}

fn serialize(resource: &Resource) -> Serialized {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "resourceType")]
        resource_type: Option<String>,
        id: Option<String>,
    }
    let Ok(bytes) = fhirbolt::json::to_vec(resource, None) else {
        return Serialized {
            size: 1,
            resource_type: None,
            id: None,
        };
    };
    let head: Option<Head> = serde_json::from_slice(&bytes).ok();
    let (resource_type, id) = head.map_or((None, None), |h| {
        (h.resource_type.and_then(|t| t.parse::<ResourceType>().ok()), h.id)
    });
    Serialized {
        size: bytes.len() as u64,
        resource_type,
        id,
    }
}

/// A stable text for a search: the type and the parameters sorted by name (values kept in order,
/// repeated parameters kept in their order).
fn canonical(request: &SearchRequest) -> String {
    let mut params: Vec<_> = request.params.iter().collect();
    params.sort_by(|a, b| a.name.cmp(&b.name));
    format!("{:?}|{:?}", request.resource_type, params)
}

/// An answer served from the cache past its TTL because the vendor failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleNote {
    /// The source whose vendor failed.
    pub source: SourceName,
    /// How old the answer is (since the vendor gave it).
    pub age: Duration,
    /// The vendor's failure, as the client would have seen it.
    pub failure: String,
}

tokio::task_local! {
    static STALE_NOTES: std::cell::RefCell<Vec<StaleNote>>;
}

/// Runs `work` and returns what it produced with the stale answers the caches served it (reads and
/// search pages served past their TTL because a vendor failed). Outside this scope nothing is noted.
pub async fn noting_stale<F: std::future::Future>(work: F) -> (F::Output, Vec<StaleNote>) {
    STALE_NOTES
        .scope(std::cell::RefCell::new(Vec::new()), async move {
            let out = work.await;
            let notes = STALE_NOTES.with(|n| n.take());
            (out, notes)
        })
        .await
}

fn note_stale(note: StaleNote) {
    let _ = STALE_NOTES.try_with(|n| n.borrow_mut().push(note));
}

/// A vendor failure a stale copy may stand in for: the vendor is down, slow, throttling, sending
/// unreadable answers or refusing the gateway's credentials — not a missing or refused resource.
fn vendor_failed(error: &AdapterError) -> bool {
    error.is_transient() || matches!(error, AdapterError::Unmappable { .. } | AdapterError::VendorAuth { .. })
}

/// Caches an adapter's reads and search pages (see the module documentation).
pub struct Cached {
    inner: Arc<dyn Adapter>,
    account: Arc<str>,
    reads: Cache<ReadKey, ReadEntry>,
    searches: Cache<SearchKey, PageEntry>,
    generations: [AtomicU64; ResourceType::ALL.len()],
    /// Bumped with every type: the generation of searches without a type.
    any_generation: AtomicU64,
    /// Hits, misses, evictions and stale answers per resource type (the last slot: searches
    /// without a type).
    counters: Arc<[TypeCounters; SLOTS]>,
    /// Per evicted resource, how often it was evicted (see [`ReadKey::epoch`]).
    epochs: std::sync::Mutex<HashMap<(ResourceType, String), u64>>,
    /// Bumped by [`Cached::clear`] (and when `epochs` is reset).
    era: AtomicU64,
    read_ttl: [Duration; ResourceType::ALL.len()],
    search_ttl: Duration,
    stale_if_error: Duration,
}

const SLOTS: usize = ResourceType::ALL.len() + 1;

fn slot(resource_type: Option<ResourceType>) -> usize {
    resource_type.map_or(SLOTS - 1, type_index)
}

fn slot_label(slot: usize) -> &'static str {
    ResourceType::ALL.get(slot).map_or("*", |t| t.as_str())
}

#[derive(Debug, Default)]
struct TypeCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    stale: AtomicU64,
}

impl Cached {
    /// Wraps `inner`. Reads get three quarters of `max_bytes`, search pages the rest.
    pub fn new(inner: Arc<dyn Adapter>, settings: &CacheSettings) -> Self {
        let counters: Arc<[TypeCounters; SLOTS]> = Arc::new(Default::default());
        let read_bytes = settings.max_bytes / 4 * 3;
        let search_bytes = settings.max_bytes - read_bytes;
        let counter = counters.clone();
        let reads = Cache::builder()
            .max_capacity(read_bytes)
            .weigher(|_: &ReadKey, v: &ReadEntry| weight(v.size))
            .expire_after(ReadExpiry {
                keep: ResourceType::ALL.map(|t| settings.read_ttl_of(t).saturating_add(settings.stale_if_error)),
            })
            .eviction_listener(move |k: Arc<ReadKey>, _, cause: RemovalCause| {
                if cause.was_evicted() {
                    counter[slot(Some(k.resource_type))]
                        .evictions
                        .fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        let counter = counters.clone();
        let searches = Cache::builder()
            .max_capacity(search_bytes)
            .weigher(|_: &SearchKey, v: &PageEntry| weight(v.size))
            .time_to_live(settings.search_ttl.saturating_add(settings.stale_if_error))
            .eviction_listener(move |k: Arc<SearchKey>, _, cause: RemovalCause| {
                if cause.was_evicted() {
                    counter[slot(k.resource_type)].evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        Self {
            account: Arc::from(inner.account()),
            inner,
            reads,
            searches,
            generations: Default::default(),
            any_generation: AtomicU64::new(0),
            counters,
            epochs: Default::default(),
            era: AtomicU64::new(0),
            read_ttl: ResourceType::ALL.map(|t| settings.read_ttl_of(t)),
            search_ttl: settings.search_ttl,
            stale_if_error: settings.stale_if_error,
        }
    }

    fn epochs(&self) -> std::sync::MutexGuard<'_, HashMap<(ResourceType, String), u64>> {
        self.epochs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read_key(&self, resource_type: ResourceType, native_id: &str) -> ReadKey {
        let era = self.era.load(Ordering::Acquire);
        let epoch = self
            .epochs()
            .get(&(resource_type, native_id.to_owned()))
            .copied()
            .unwrap_or(0);
        ReadKey {
            account: self.account.clone(),
            source: self.inner.source(),
            resource_type,
            native_id: native_id.to_owned(),
            epoch: (era, epoch),
        }
    }

    fn generation(&self, resource_type: Option<ResourceType>) -> u64 {
        match resource_type {
            Some(t) => self.generations[type_index(t)].load(Ordering::Acquire),
            None => self.any_generation.load(Ordering::Acquire),
        }
    }

    /// Makes every cached search page of `resource_type` unreachable.
    fn bump(&self, resource_type: ResourceType) {
        self.generations[type_index(resource_type)].fetch_add(1, Ordering::AcqRel);
        self.any_generation.fetch_add(1, Ordering::AcqRel);
    }

    fn bump_all(&self) {
        for g in &self.generations {
            g.fetch_add(1, Ordering::AcqRel);
        }
        self.any_generation.fetch_add(1, Ordering::AcqRel);
    }

    async fn evict(&self, resource_type: ResourceType, native_id: &str) {
        let old = self.read_key(resource_type, native_id);
        // A new epoch first, so a read already under way cannot store the old version where later
        // reads look; then the entry under the old epoch goes.
        let reset = {
            let mut epochs = self.epochs();
            if epochs.len() >= MAX_EPOCHS {
                epochs.clear();
                self.era.fetch_add(1, Ordering::AcqRel);
                true
            } else {
                *epochs.entry((resource_type, native_id.to_owned())).or_insert(0) += 1;
                false
            }
        };
        if reset {
            self.reads.invalidate_all();
        } else {
            self.reads.invalidate(&old).await;
        }
        self.bump(resource_type);
    }

    fn count(&self, slot: usize, missed: bool) {
        let c = &self.counters[slot];
        let counter = if missed { &c.misses } else { &c.hits };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Applies a vendor change event: evicts the resource's read and its type's search pages, when
    /// the event belongs to this cache's source and account (anything else changes nothing).
    pub async fn apply(&self, event: &ChangeEvent) {
        if event.source != self.inner.source() || event.account != *self.account {
            return;
        }
        self.evict(event.resource_type, &event.native_id).await;
    }

    /// Forgets everything (e.g. when change events were lost).
    pub fn clear(&self) {
        self.era.fetch_add(1, Ordering::AcqRel);
        self.bump_all();
        self.reads.invalidate_all();
        self.searches.invalidate_all();
    }

    /// Runs moka's pending maintenance (evictions, counts); for tests and before reading stats.
    pub async fn run_pending_tasks(&self) {
        self.reads.run_pending_tasks().await;
        self.searches.run_pending_tasks().await;
    }

    /// The cache's counters.
    pub fn stats(&self) -> CacheStats {
        let sum = |f: fn(&TypeCounters) -> &AtomicU64| {
            self.counters.iter().map(|c| f(c).load(Ordering::Relaxed)).sum::<u64>()
        };
        CacheStats {
            hits: sum(|c| &c.hits),
            misses: sum(|c| &c.misses),
            evictions: sum(|c| &c.evictions),
            entries: self.reads.entry_count() + self.searches.entry_count(),
            weighted_bytes: self.reads.weighted_size() + self.searches.weighted_size(),
            stale: sum(|c| &c.stale),
        }
    }

    /// The counters per resource type (`*`: searches without a type), with the entries and bytes
    /// held for each (counted by walking the cache: meant for a metrics scrape, not a hot path).
    pub fn stats_by_type(&self) -> Vec<(&'static str, CacheStats)> {
        let mut held = [(0u64, 0u64); SLOTS];
        for (key, entry) in self.reads.iter() {
            let h = &mut held[slot(Some(key.resource_type))];
            h.0 += 1;
            h.1 += entry.size;
        }
        for (key, entry) in self.searches.iter() {
            let h = &mut held[slot(key.resource_type)];
            h.0 += 1;
            h.1 += entry.size;
        }
        (0..SLOTS)
            .filter_map(|i| {
                let c = &self.counters[i];
                let s = CacheStats {
                    hits: c.hits.load(Ordering::Relaxed),
                    misses: c.misses.load(Ordering::Relaxed),
                    evictions: c.evictions.load(Ordering::Relaxed),
                    entries: held[i].0,
                    weighted_bytes: held[i].1,
                    stale: c.stale.load(Ordering::Relaxed),
                };
                (s != CacheStats::default()).then_some((slot_label(i), s))
            })
            .collect()
    }

    /// One cached answer: a fresh entry as it is; a missing one fetched once however many callers
    /// ask at the same time; an entry past its TTL fetched again (one caller at a time per key),
    /// and served stale instead when the vendor fails and it is within the stale-if-error window.
    async fn lookup<K, V, F, Fut>(
        &self,
        cache: &Cache<K, V>,
        (key, slot): (K, usize),
        ttl: Duration,
        fetch: F,
    ) -> Result<V, AdapterError>
    where
        K: std::hash::Hash + Eq + Send + Sync + Clone + 'static,
        V: Fetched + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, AdapterError>>,
    {
        let missed = AtomicBool::new(false);
        let Some(current) = cache.get(&key).await else {
            let result = cache
                .try_get_with(key, async {
                    missed.store(true, Ordering::Relaxed);
                    fetch().await
                })
                .await;
            self.count(slot, missed.load(Ordering::Relaxed));
            return result.map_err(|e| AdapterError::clone(&e));
        };
        if current.fetched().elapsed() < ttl {
            self.count(slot, false);
            return Ok(current);
        }
        let keep = ttl.saturating_add(self.stale_if_error);
        let failure = std::sync::Mutex::new(None::<AdapterError>);
        let (missed_ref, failure_ref) = (&missed, &failure);
        let result = cache
            .entry(key.clone())
            .and_try_compute_with(|held| async move {
                if let Some(held) = &held
                    && held.value().fetched().elapsed() < ttl
                {
                    // Another caller refreshed it while this one waited.
                    return Ok(Op::Nop);
                }
                missed_ref.store(true, Ordering::Relaxed);
                match fetch().await {
                    Ok(value) => Ok(Op::Put(value)),
                    Err(e)
                        if vendor_failed(&e) && held.as_ref().is_some_and(|h| h.value().fetched().elapsed() < keep) =>
                    {
                        *failure_ref.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        Ok(Op::Nop)
                    }
                    Err(e) => Err(e),
                }
            })
            .await;
        self.count(slot, missed.load(Ordering::Relaxed));
        match result {
            Ok(CompResult::Inserted(e) | CompResult::ReplacedWith(e) | CompResult::Unchanged(e)) => {
                let value = e.into_value();
                if let Some(failure) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
                    self.counters[slot].stale.fetch_add(1, Ordering::Relaxed);
                    note_stale(StaleNote {
                        source: self.inner.source(),
                        age: value.fetched().elapsed(),
                        failure: failure.to_string(),
                    });
                }
                Ok(value)
            }
            // Only reached if the entry vanished and nothing was stored: nothing to serve.
            Ok(CompResult::StillNone(_) | CompResult::Removed(_)) => Err(AdapterError::Unavailable {
                vendor: self.inner.source(),
                detail: "the cached answer expired while the vendor was failing".into(),
            }),
            Err(e) => {
                if !vendor_failed(&e) {
                    // Gone or refused now: the old copy must not be served later either.
                    cache.invalidate(&key).await;
                }
                Err(e)
            }
        }
    }

    /// Remembers the resources of a page as reads, unless already cached.
    async fn warm(&self, page: &Page) {
        for resource in &page.resources {
            let s = serialize(resource);
            let (Some(resource_type), Some(id)) = (s.resource_type, s.id) else {
                continue;
            };
            let Ok(fid) = FhirId::parse(&id) else {
                continue;
            };
            if fid.source() != self.inner.source() {
                continue;
            }
            let entry = ReadEntry {
                resource: Arc::new(resource.clone()),
                size: s.size,
                fetched: Instant::now(),
            };
            self.reads
                .entry(self.read_key(resource_type, fid.native()))
                .or_insert(entry)
                .await;
        }
    }
}

#[async_trait::async_trait]
impl Adapter for Cached {
    fn source(&self) -> SourceName {
        self.inner.source()
    }

    fn account(&self) -> &str {
        self.inner.account()
    }

    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }

    async fn read(&self, resource_type: ResourceType, native_id: &str) -> Result<Resource, AdapterError> {
        let key = self.read_key(resource_type, native_id);
        let ttl = self.read_ttl[type_index(resource_type)];
        let entry = self
            .lookup(&self.reads, (key, slot(Some(resource_type))), ttl, || async {
                let resource = self.inner.read(resource_type, native_id).await?;
                let size = serialize(&resource).size;
                Ok(ReadEntry {
                    resource: Arc::new(resource),
                    size,
                    fetched: Instant::now(),
                })
            })
            .await?;
        Ok(Resource::clone(&entry.resource))
    }

    async fn search(&self, request: &SearchRequest, page: PageRequest) -> Result<Page, AdapterError> {
        let key = SearchKey {
            account: self.account.clone(),
            resource_type: request.resource_type,
            source: self.inner.source(),
            request: canonical(request),
            cursor: page.cursor.as_ref().map(|c| c.0.clone()),
            size: page.size,
            generation: self.generation(request.resource_type),
        };
        let entry = self
            .lookup(
                &self.searches,
                (key, slot(request.resource_type)),
                self.search_ttl,
                || async {
                    let page = self.inner.search(request, page).await?;
                    self.warm(&page).await;
                    let size = page.resources.iter().map(|r| serialize(r).size).sum::<u64>()
                        + page.next.as_ref().map_or(0, |c| c.0.len() as u64);
                    Ok(PageEntry {
                        page: Arc::new(page),
                        size,
                        fetched: Instant::now(),
                    })
                },
            )
            .await?;
        Ok(Page::clone(&entry.page))
    }

    async fn check(&self) -> Result<(), AdapterError> {
        self.inner.check().await
    }

    async fn create(&self, resource: Resource) -> Result<Resource, AdapterError> {
        let resource_type = serialize(&resource).resource_type;
        let result = self.inner.create(resource).await;
        match resource_type {
            Some(t) => self.bump(t),
            None => self.bump_all(),
        }
        result
    }

    async fn update(
        &self,
        resource_type: ResourceType,
        native_id: &str,
        resource: Resource,
    ) -> Result<Resource, AdapterError> {
        let result = self.inner.update(resource_type, native_id, resource).await;
        // Also on failure: the vendor may have applied part of it.
        self.evict(resource_type, native_id).await;
        result
    }

    async fn operation(
        &self,
        resource_type: ResourceType,
        native_id: &str,
        name: &str,
        input: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        let result = self.inner.operation(resource_type, native_id, name, input).await;
        self.evict(resource_type, native_id).await;
        result
    }

    async fn operation_on(
        &self,
        target_id: &FhirId,
        target: &Resource,
        name: &str,
        input: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        let result = self.inner.operation_on(target_id, target, name, input).await;
        // What it creates or changes at this source is not declared: every search may have changed.
        self.bump_all();
        result
    }

    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        self.inner.webhooks()
    }

    fn health(&self) -> Option<adapter::VendorHealth> {
        self.inner.health()
    }
}

/// The caches' figures in the Prometheus text format, one series per source and resource type
/// (`type="*"`: searches without a type).
pub fn render_metrics(caches: &[Arc<Cached>]) -> String {
    let mut out = String::new();
    type Series = (&'static str, &'static str, &'static str, fn(&CacheStats) -> u64);
    let series: [Series; 6] = [
        (
            "fhir_gateway_cache_hits_total",
            "counter",
            "Reads and searches answered from the cache.",
            |s| s.hits,
        ),
        (
            "fhir_gateway_cache_misses_total",
            "counter",
            "Reads and searches that called the vendor.",
            |s| s.misses,
        ),
        (
            "fhir_gateway_cache_evictions_total",
            "counter",
            "Entries removed by the byte bound or their lifetime.",
            |s| s.evictions,
        ),
        (
            "fhir_gateway_cache_stale_total",
            "counter",
            "Answers served past their TTL because the vendor failed (stale-if-error).",
            |s| s.stale,
        ),
        ("fhir_gateway_cache_entries", "gauge", "Entries held.", |s| s.entries),
        (
            "fhir_gateway_cache_bytes",
            "gauge",
            "Serialized FHIR JSON bytes held (the bound is on the sum).",
            |s| s.weighted_bytes,
        ),
    ];
    let stats: Vec<(&str, Vec<(&str, CacheStats)>)> = caches.iter().map(|c| (c.source(), c.stats_by_type())).collect();
    for (name, kind, help, value) in series {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (source, by_type) in &stats {
            for (t, s) in by_type {
                out.push_str(&format!("{name}{{source=\"{source}\",type=\"{t}\"}} {}\n", value(s)));
            }
        }
    }
    out
}
