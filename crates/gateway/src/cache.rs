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

/// How much to cache and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// The bound on the serialized size of everything cached (reads and search pages together).
    pub max_bytes: u64,
    /// How long a read stays fresh, per resource type (types not listed: [`DEFAULT_READ_TTL`]).
    pub read_ttl: HashMap<ResourceType, Duration>,
    /// How long a search page stays fresh.
    pub search_ttl: Duration,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SearchKey {
    account: Arc<str>,
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
}

/// Per-type read TTLs for moka.
struct ReadExpiry {
    ttl: [Duration; ResourceType::ALL.len()],
}

impl Expiry<ReadKey, ReadEntry> for ReadExpiry {
    fn expire_after_create(&self, key: &ReadKey, _value: &ReadEntry, _created_at: Instant) -> Option<Duration> {
        Some(self.ttl[type_index(key.resource_type)])
    }

    fn expire_after_update(
        &self,
        key: &ReadKey,
        _value: &ReadEntry,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.ttl[type_index(key.resource_type)])
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

/// Caches an adapter's reads and search pages (see the module documentation).
pub struct Cached {
    inner: Arc<dyn Adapter>,
    account: Arc<str>,
    reads: Cache<ReadKey, ReadEntry>,
    searches: Cache<SearchKey, PageEntry>,
    generations: [AtomicU64; ResourceType::ALL.len()],
    /// Bumped with every type: the generation of searches without a type.
    any_generation: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Arc<AtomicU64>,
    /// Per evicted resource, how often it was evicted (see [`ReadKey::epoch`]).
    epochs: std::sync::Mutex<HashMap<(ResourceType, String), u64>>,
    /// Bumped by [`Cached::clear`] (and when `epochs` is reset).
    era: AtomicU64,
}

impl Cached {
    /// Wraps `inner`. Reads get three quarters of `max_bytes`, search pages the rest.
    pub fn new(inner: Arc<dyn Adapter>, settings: &CacheSettings) -> Self {
        let evictions = Arc::new(AtomicU64::new(0));
        let read_bytes = settings.max_bytes / 4 * 3;
        let search_bytes = settings.max_bytes - read_bytes;
        let counter = evictions.clone();
        let reads = Cache::builder()
            .max_capacity(read_bytes)
            .weigher(|_: &ReadKey, v: &ReadEntry| weight(v.size))
            .expire_after(ReadExpiry {
                ttl: ResourceType::ALL.map(|t| settings.read_ttl_of(t)),
            })
            .eviction_listener(move |_, _, cause: RemovalCause| {
                if cause.was_evicted() {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        let counter = evictions.clone();
        let searches = Cache::builder()
            .max_capacity(search_bytes)
            .weigher(|_: &SearchKey, v: &PageEntry| weight(v.size))
            .time_to_live(settings.search_ttl)
            .eviction_listener(move |_, _, cause: RemovalCause| {
                if cause.was_evicted() {
                    counter.fetch_add(1, Ordering::Relaxed);
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
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions,
            epochs: Default::default(),
            era: AtomicU64::new(0),
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

    fn count(&self, missed: bool) {
        let counter = if missed { &self.misses } else { &self.hits };
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
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries: self.reads.entry_count() + self.searches.entry_count(),
            weighted_bytes: self.reads.weighted_size() + self.searches.weighted_size(),
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
        let missed = AtomicBool::new(false);
        let result = self
            .reads
            .try_get_with(self.read_key(resource_type, native_id), async {
                missed.store(true, Ordering::Relaxed);
                let resource = self.inner.read(resource_type, native_id).await?;
                let size = serialize(&resource).size;
                Ok::<_, AdapterError>(ReadEntry {
                    resource: Arc::new(resource),
                    size,
                })
            })
            .await;
        self.count(missed.load(Ordering::Relaxed));
        match result {
            Ok(entry) => Ok(Resource::clone(&entry.resource)),
            Err(e) => Err(AdapterError::clone(&e)),
        }
    }

    async fn search(&self, request: &SearchRequest, page: PageRequest) -> Result<Page, AdapterError> {
        let key = SearchKey {
            account: self.account.clone(),
            source: self.inner.source(),
            request: canonical(request),
            cursor: page.cursor.as_ref().map(|c| c.0.clone()),
            size: page.size,
            generation: self.generation(request.resource_type),
        };
        let missed = AtomicBool::new(false);
        let result = self
            .searches
            .try_get_with(key, async {
                missed.store(true, Ordering::Relaxed);
                let page = self.inner.search(request, page).await?;
                self.warm(&page).await;
                let size = page.resources.iter().map(|r| serialize(r).size).sum::<u64>()
                    + page.next.as_ref().map_or(0, |c| c.0.len() as u64);
                Ok::<_, AdapterError>(PageEntry {
                    page: Arc::new(page),
                    size,
                })
            })
            .await;
        self.count(missed.load(Ordering::Relaxed));
        match result {
            Ok(entry) => Ok(Page::clone(&entry.page)),
            Err(e) => Err(AdapterError::clone(&e)),
        }
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
}

/// The caches' figures in the Prometheus text format, one series per source.
pub fn render_metrics(caches: &[Arc<Cached>]) -> String {
    let mut out = String::new();
    type Series = (&'static str, &'static str, &'static str, fn(&CacheStats) -> u64);
    let series: [Series; 5] = [
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
            "Entries removed by the byte bound or their TTL.",
            |s| s.evictions,
        ),
        ("fhir_gateway_cache_entries", "gauge", "Entries held.", |s| s.entries),
        (
            "fhir_gateway_cache_bytes",
            "gauge",
            "Serialized FHIR JSON bytes held (the bound is on this).",
            |s| s.weighted_bytes,
        ),
    ];
    let stats: Vec<(&str, CacheStats)> = caches.iter().map(|c| (c.source(), c.stats())).collect();
    for (name, kind, help, value) in series {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (source, s) in &stats {
            out.push_str(&format!("{name}{{source=\"{source}\"}} {}\n", value(s)));
        }
    }
    out
}
