//! An opt-in caching decorator over the adapter contract.
//!
//! [`Cached`] wraps one adapter (in the gateway: `Cached(Metered(adapter))`, so vendor-call metrics
//! count only misses) and remembers reads and search pages for a while:
//!
//! - reads are keyed by account, source, type and native id and live for a per-type TTL;
//! - search pages are keyed by the type's current *generation* and a SHA-256 digest of a canonical
//!   form of account, source, request, page cursor and size (a fixed-size key, whatever the query);
//!   bumping the generation makes every cached page of the type unreachable at once (they age out or
//!   are pushed out by the byte bound);
//! - concurrent identical misses make exactly one inner call; errors are never cached, except the
//!   vendor saying a read's resource does not exist (not found, gone), remembered for
//!   [`CacheSettings::not_found_ttl`] and evicted like any read;
//! - entries are weighed by their serialized FHIR JSON size plus their key, and the whole cache stays
//!   under [`CacheSettings::max_bytes`].
//!
//! Writes through the decorator and vendor change events ([`Cached::apply`]) evict what they change.
//! The access policy is applied by the handlers after the cache (ARCHITECTURE.md invariant 3), and
//! every key carries [`Adapter::account`], so an entry is never shared between accounts.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adapter::search::{Modifier, Prefix, SearchParam, SearchRequest, SearchValue};
use adapter::{
    Adapter, AdapterError, Capabilities, ChangeEvent, ChangeKind, FhirId, Page, PageRequest, Resource, ResourceType,
    SourceName, WebhookReceiver,
};
use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::ops::compute::{CompResult, Op};
use moka::policy::EvictionPolicy;
use prometheus_client::encoding::EncodeLabelSet;
use sha2::{Digest, Sha256};

use crate::doc::{Doc, DocPage};
use crate::metrics::{Kind, Snapshot};

/// How much to cache and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// The bound on the serialized size of everything cached (reads and search pages together).
    pub max_bytes: u64,
    /// How long a read stays fresh, per resource type (types not listed: [`DEFAULT_READ_TTL`]).
    pub read_ttl: HashMap<ResourceType, Duration>,
    /// How long a search page stays fresh, per resource type (types not listed: `search_ttl`).
    pub search_ttl_by_type: HashMap<ResourceType, Duration>,
    /// How long a search page of a type not in `search_ttl_by_type` (or of no type) stays fresh.
    pub search_ttl: Duration,
    /// How long a read or search page stays fresh when its source's webhooks announce every change
    /// of its type ([`adapter::WebhookReceiver::announces`]): a change evicts it, so the TTL only
    /// bounds how long a lost hook goes unnoticed. Never shorter than the type's own TTLs; zero
    /// treats announced types like the others.
    pub announced_ttl: Duration,
    /// How long past its TTL an entry is still served when the vendor fails (stale-if-error);
    /// zero serves nothing stale.
    pub stale_if_error: Duration,
    /// How long a read the vendor answered "not found" or "gone" is answered so without calling it
    /// again (evicted by change events and writes like any read; never served stale); zero
    /// remembers nothing.
    pub not_found_ttl: Duration,
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
        // Pages of what changes rarely, or of what a clinic's apps ask again and again (a patient's
        // notes), live as long as reads of it; the rest a minute.
        let search_ttl_by_type = HashMap::from([
            (ResourceType::Patient, min(10)),
            (ResourceType::Practitioner, min(10)),
            (ResourceType::Location, min(10)),
            (ResourceType::DocumentReference, min(5)),
        ]);
        Self {
            max_bytes: 64 * 1024 * 1024,
            read_ttl,
            search_ttl_by_type,
            search_ttl: Duration::from_secs(60),
            announced_ttl: Duration::from_secs(60 * 60),
            stale_if_error: Duration::from_secs(300),
            not_found_ttl: Duration::from_secs(30),
        }
    }
}

impl CacheSettings {
    /// The TTL of reads of `resource_type`.
    pub fn read_ttl_of(&self, resource_type: ResourceType) -> Duration {
        self.read_ttl.get(&resource_type).copied().unwrap_or(DEFAULT_READ_TTL)
    }

    /// The TTL of search pages of `resource_type`.
    pub fn search_ttl_of(&self, resource_type: ResourceType) -> Duration {
        self.search_ttl_by_type
            .get(&resource_type)
            .copied()
            .unwrap_or(self.search_ttl)
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

/// What the vendor answered to a read.
#[derive(Debug, Clone)]
enum ReadAnswer {
    Found(Arc<Doc>),
    /// Not found or gone: remembered for [`CacheSettings::not_found_ttl`].
    Absent(AdapterError),
}

#[derive(Debug, Clone)]
struct ReadEntry {
    answer: ReadAnswer,
    size: u64,
    /// When the vendor answered: fresh for the type's TTL, then kept for `stale_if_error` (an absent
    /// answer: fresh for `not_found_ttl`, then gone).
    fetched: Instant,
}

/// A search page's key: fixed-size, however long the query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SearchKey {
    /// The type searched (also in the digest): the metrics slot.
    resource_type: Option<ResourceType>,
    /// The type's generation when the page was asked for: a change bumps it, and every page cached
    /// under the old one becomes unreachable.
    generation: u64,
    /// SHA-256 of the canonical form of account, source, request, cursor and page size
    /// ([`search_digest`]).
    digest: [u8; 32],
}

#[derive(Debug, Clone)]
struct PageEntry {
    page: Arc<DocPage>,
    size: u64,
    fetched: Instant,
}

/// Cache entries know when the vendor gave them.
trait Fetched {
    fn fetched(&self) -> Instant;

    /// The vendor said the resource does not exist: fresh for `not_found_ttl`, never served stale.
    fn absent(&self) -> bool {
        false
    }
}

impl Fetched for ReadEntry {
    fn fetched(&self) -> Instant {
        self.fetched
    }

    fn absent(&self) -> bool {
        matches!(self.answer, ReadAnswer::Absent(_))
    }
}

impl Fetched for PageEntry {
    fn fetched(&self) -> Instant {
        self.fetched
    }
}

/// Per-type read lifetimes for moka: the TTL plus the stale-if-error window; an absent answer
/// lives for `not_found_ttl` only.
struct ReadExpiry {
    keep: [Duration; ResourceType::ALL.len()],
    absent: Duration,
}

impl ReadExpiry {
    fn lifetime(&self, key: &ReadKey, value: &ReadEntry) -> Duration {
        if value.absent() {
            self.absent
        } else {
            self.keep[type_index(key.resource_type)]
        }
    }
}

impl Expiry<ReadKey, ReadEntry> for ReadExpiry {
    fn expire_after_create(&self, key: &ReadKey, value: &ReadEntry, _created_at: Instant) -> Option<Duration> {
        Some(self.lifetime(key, value))
    }

    fn expire_after_update(
        &self,
        key: &ReadKey,
        value: &ReadEntry,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.lifetime(key, value))
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

/// What a read entry weighs: its FHIR JSON and its key (the account is shared, not counted).
fn read_weight(key: &ReadKey, entry: &ReadEntry) -> u64 {
    (std::mem::size_of::<ReadKey>() + key.native_id.len()) as u64 + entry.size
}

/// What a search page weighs: its FHIR JSON and continuation, and its (fixed-size) key.
fn search_weight(_key: &SearchKey, entry: &PageEntry) -> u64 {
    std::mem::size_of::<SearchKey>() as u64 + entry.size
}

/// The type and id a resource (a write's body or answer) names.
struct Head {
    resource_type: Option<ResourceType>,
    id: Option<String>,
}

fn head(resource: &Resource) -> Head {
    #[derive(serde::Deserialize)]
    struct Wire {
        #[serde(rename = "resourceType")]
        resource_type: Option<String>,
        id: Option<String>,
    }
    let wire: Option<Wire> = fhirbolt::json::to_vec(resource, None)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    wire.map_or(
        Head {
            resource_type: None,
            id: None,
        },
        |w| Head {
            resource_type: w.resource_type.and_then(|t| t.parse::<ResourceType>().ok()),
            id: w.id,
        },
    )
}

/// The key of a search page: SHA-256 of its canonical form — account, source, type, the parameters
/// sorted by name and modifier (a repeated parameter's occurrences keep their order, and a
/// parameter's comma-separated values theirs: an adapter may plan its vendor calls in that order),
/// the vendor cursor and the page size. Every field is tagged or length-prefixed, so two different
/// searches never share a form (`name=a,b` is not `name=a&name=b`).
fn search_digest(account: &str, source: &str, request: &SearchRequest, page: &PageRequest) -> [u8; 32] {
    let mut form = Canonical(Sha256::new());
    form.text("fhir-gateway search page v1");
    form.text(account);
    form.text(source);
    form.text(request.resource_type.map_or("*", |t| t.as_str()));
    let mut params: Vec<&SearchParam> = request.params.iter().collect();
    params.sort_by(|a, b| {
        (a.name.as_str(), modifier_code(a.modifier)).cmp(&(b.name.as_str(), modifier_code(b.modifier)))
    });
    form.count(params.len());
    for param in params {
        form.text(&param.name);
        form.text(modifier_code(param.modifier));
        form.count(param.values.len());
        for value in &param.values {
            form.value(value);
        }
    }
    form.optional(page.cursor.as_ref().map(|c| c.0.as_str()));
    form.0.update(page.size.to_be_bytes());
    form.0.finalize().into()
}

fn modifier_code(modifier: Option<Modifier>) -> &'static str {
    match modifier {
        None => "",
        Some(Modifier::Exact) => "exact",
        Some(Modifier::Contains) => "contains",
        Some(Modifier::Missing) => "missing",
        Some(Modifier::Not) => "not",
    }
}

fn prefix_code(prefix: Prefix) -> &'static str {
    match prefix {
        Prefix::Eq => "eq",
        Prefix::Ne => "ne",
        Prefix::Gt => "gt",
        Prefix::Lt => "lt",
        Prefix::Ge => "ge",
        Prefix::Le => "le",
        Prefix::Sa => "sa",
        Prefix::Eb => "eb",
        Prefix::Ap => "ap",
    }
}

/// Writes a search's canonical form into a hash: every text length-prefixed, every choice tagged.
struct Canonical(Sha256);

impl Canonical {
    fn count(&mut self, n: usize) {
        self.0.update((n as u64).to_be_bytes());
    }

    fn text(&mut self, text: &str) {
        self.count(text.len());
        self.0.update(text.as_bytes());
    }

    fn tag(&mut self, tag: u8) {
        self.0.update([tag]);
    }

    fn optional(&mut self, text: Option<&str>) {
        match text {
            None => self.tag(0),
            Some(t) => {
                self.tag(1);
                self.text(t);
            }
        }
    }

    fn instant(&mut self, at: &chrono::DateTime<chrono::Utc>) {
        self.0.update(at.timestamp().to_be_bytes());
        self.0.update(at.timestamp_subsec_nanos().to_be_bytes());
    }

    fn value(&mut self, value: &SearchValue) {
        match value {
            SearchValue::String(s) => {
                self.tag(1);
                self.text(s);
            }
            SearchValue::Token(t) => {
                self.tag(2);
                self.optional(t.system.as_deref());
                self.optional(t.code.as_deref());
            }
            SearchValue::Date(d) => {
                self.tag(3);
                self.text(prefix_code(d.prefix));
                self.instant(&d.range.start);
                self.instant(&d.range.end);
            }
            SearchValue::Reference(r) => {
                self.tag(4);
                self.optional(r.resource_type.map(|t| t.as_str()));
                self.text(&r.id);
            }
            SearchValue::Missing(missing) => {
                self.tag(5);
                self.tag(u8::from(*missing));
            }
        }
    }
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
    /// Per [`slot`]: searches without a type last the plain search TTL.
    search_ttl: [Duration; SLOTS],
    stale_if_error: Duration,
    /// How long a read the vendor answered "not found" or "gone" is remembered (zero: not at all).
    not_found_ttl: Duration,
    /// Told of every resource a write through this cache changed (the other replicas evict it too).
    announce: std::sync::OnceLock<Announce>,
}

/// How a cache tells the other replicas of the gateway's own writes (`replicas::write_announcer`).
pub type Announce = Arc<dyn Fn(ChangeEvent) + Send + Sync>;

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
        // Types whose every change the source announces last at least `announced_ttl`.
        let announced = inner.webhooks().map(|w| w.announces()).unwrap_or(&[]);
        let longer = |t: ResourceType, ttl: Duration| {
            if announced.contains(&t) {
                ttl.max(settings.announced_ttl)
            } else {
                ttl
            }
        };
        let read_ttl = ResourceType::ALL.map(|t| longer(t, settings.read_ttl_of(t)));
        let mut search_ttl = [settings.search_ttl; SLOTS];
        for (i, t) in ResourceType::ALL.into_iter().enumerate() {
            search_ttl[i] = longer(t, settings.search_ttl_of(t));
        }
        let longest_search = search_ttl.iter().copied().max().unwrap_or(settings.search_ttl);
        let read_bytes = settings.max_bytes / 4 * 3;
        let search_bytes = settings.max_bytes - read_bytes;
        let counter = counters.clone();
        let reads = Cache::builder()
            .max_capacity(read_bytes)
            .weigher(|k: &ReadKey, v: &ReadEntry| weight(read_weight(k, v)))
            .expire_after(ReadExpiry {
                keep: read_ttl.map(|ttl| ttl.saturating_add(settings.stale_if_error)),
                absent: settings.not_found_ttl,
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
            .weigher(|k: &SearchKey, v: &PageEntry| weight(search_weight(k, v)))
            // LRU, not TinyLFU: TinyLFU admits a new entry only when it is asked more often than
            // the entries it would push out, so once the cache is full a large page seen for the
            // first time (a practice's 200 patients, listed to confirm references) is refused
            // every time it is fetched, and its vendor call is paid again on each use.
            .eviction_policy(EvictionPolicy::lru())
            .time_to_live(longest_search.saturating_add(settings.stale_if_error))
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
            read_ttl,
            search_ttl,
            stale_if_error: settings.stale_if_error,
            not_found_ttl: settings.not_found_ttl,
            announce: std::sync::OnceLock::new(),
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

    /// Bumped by every change this cache learns of (an eviction, a write, a clear): what a page the
    /// gateway caches above it is keyed by (`pages::PageCache`).
    pub fn changes(&self) -> u64 {
        self.any_generation.load(Ordering::Acquire)
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

    /// From now on, tells `announce` of every resource a write through this cache changes (once;
    /// a second call is ignored).
    pub fn announce_writes_to(&self, announce: Announce) {
        let _ = self.announce.set(announce);
    }

    /// Tells the other replicas (when [`Cached::announce_writes_to`] was called) that a write here
    /// changed `native_id`.
    fn announce_write(&self, resource_type: ResourceType, native_id: &str, kind: ChangeKind) {
        if let Some(announce) = self.announce.get() {
            announce(ChangeEvent {
                source: self.inner.source(),
                account: self.account.to_string(),
                resource_type,
                native_id: native_id.to_owned(),
                kind,
            });
        }
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
            h.1 += read_weight(&key, &entry);
        }
        for (key, entry) in self.searches.iter() {
            let h = &mut held[slot(key.resource_type)];
            h.0 += 1;
            h.1 += search_weight(&key, &entry);
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
        // An absent answer ("not found") is fresh for `not_found_ttl`, anything else for `ttl`.
        let not_found_ttl = self.not_found_ttl;
        let fresh = move |value: &V| {
            let lifetime = if value.absent() { not_found_ttl } else { ttl };
            value.fetched().elapsed() < lifetime
        };
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
        if fresh(&current) {
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
                    && fresh(held.value())
                {
                    // Another caller refreshed it while this one waited.
                    return Ok(Op::Nop);
                }
                missed_ref.store(true, Ordering::Relaxed);
                match fetch().await {
                    Ok(value) => Ok(Op::Put(value)),
                    // An absent answer is never served stale: only a copy of a resource stands in.
                    Err(e)
                        if vendor_failed(&e)
                            && held
                                .as_ref()
                                .is_some_and(|h| !h.value().absent() && h.value().fetched().elapsed() < keep) =>
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

    /// Remembers the resources of a page as reads, unless already cached (a remembered "not found"
    /// is replaced).
    async fn warm(&self, page: &DocPage) {
        for doc in &page.docs {
            let (Some(resource_type), Some(id)) = (doc.resource_type(), doc.id()) else {
                continue;
            };
            let Ok(fid) = FhirId::parse(id) else {
                continue;
            };
            if fid.source() != self.inner.source() {
                continue;
            }
            let entry = ReadEntry {
                answer: ReadAnswer::Found(doc.clone()),
                size: doc.weight(),
                fetched: Instant::now(),
            };
            // A remembered "not found" is replaced: the page shows the resource exists now.
            self.reads
                .entry(self.read_key(resource_type, fid.native()))
                .or_insert_with_if(async move { entry }, |held: &ReadEntry| held.absent())
                .await;
        }
    }

    /// A read as the gateway serves it: the cached document, or the vendor's answer made one.
    pub async fn read_doc(&self, resource_type: ResourceType, native_id: &str) -> Result<Arc<Doc>, AdapterError> {
        let key = self.read_key(resource_type, native_id);
        let ttl = self.read_ttl[type_index(resource_type)];
        let remember_absent = !self.not_found_ttl.is_zero();
        let source = self.inner.source();
        let entry = self
            .lookup(&self.reads, (key, slot(Some(resource_type))), ttl, || async {
                match self.inner.read(resource_type, native_id).await {
                    Ok(resource) => {
                        let doc = Doc::from_resource(resource, source)?;
                        Ok(ReadEntry {
                            size: doc.weight(),
                            answer: ReadAnswer::Found(doc),
                            fetched: Instant::now(),
                        })
                    }
                    // The vendor's "no such resource" is an answer too: remembered briefly, so
                    // reads of ids that do not exist do not spend the vendor's rate budget.
                    Err(e @ (AdapterError::NotFound { .. } | AdapterError::Gone { .. })) if remember_absent => {
                        Ok(ReadEntry {
                            answer: ReadAnswer::Absent(e),
                            size: (std::mem::size_of::<AdapterError>() + native_id.len()) as u64,
                            fetched: Instant::now(),
                        })
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
        match entry.answer {
            ReadAnswer::Found(doc) => Ok(doc),
            ReadAnswer::Absent(e) => Err(e),
        }
    }

    /// A search page as the gateway serves it: shared with the cache, its resources as documents.
    pub async fn search_docs(&self, request: &SearchRequest, page: PageRequest) -> Result<Arc<DocPage>, AdapterError> {
        let key = SearchKey {
            resource_type: request.resource_type,
            generation: self.generation(request.resource_type),
            digest: search_digest(&self.account, self.inner.source(), request, &page),
        };
        let source = self.inner.source();
        let entry = self
            .lookup(
                &self.searches,
                (key, slot(request.resource_type)),
                self.search_ttl[slot(request.resource_type)],
                || async {
                    let page = DocPage::from_page(self.inner.search(request, page).await?, source)?;
                    self.warm(&page).await;
                    let size = page.docs.iter().map(|d| d.weight()).sum::<u64>()
                        + page.next.as_ref().map_or(0, |c| c.0.len() as u64);
                    Ok(PageEntry {
                        page: Arc::new(page),
                        size,
                        fetched: Instant::now(),
                    })
                },
            )
            .await?;
        Ok(entry.page)
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
        self.read_doc(resource_type, native_id)
            .await?
            .to_resource(self.inner.source())
    }

    async fn search(&self, request: &SearchRequest, page: PageRequest) -> Result<Page, AdapterError> {
        self.search_docs(request, page).await?.to_page(self.inner.source())
    }

    async fn check(&self) -> Result<(), AdapterError> {
        self.inner.check().await
    }

    async fn create(&self, resource: Resource) -> Result<Resource, AdapterError> {
        let resource_type = head(&resource).resource_type;
        let result = self.inner.create(resource).await;
        match resource_type {
            Some(t) => self.bump(t),
            None => self.bump_all(),
        }
        if let Ok(created) = &result {
            let s = head(created);
            if let (Some(t), Some(id)) = (s.resource_type, s.id)
                && let Ok(fid) = FhirId::parse(&id)
                && fid.source() == self.inner.source()
            {
                // A "not found" remembered for the new id must not answer the next read.
                if !self.not_found_ttl.is_zero() {
                    self.evict(t, fid.native()).await;
                }
                self.announce_write(t, fid.native(), ChangeKind::Created);
            }
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
        self.announce_write(resource_type, native_id, ChangeKind::Updated);
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
        self.announce_write(resource_type, native_id, ChangeKind::Updated);
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

/// The caches' figures, one series per source and resource type (`type="*"`: searches without a
/// type). Read from the caches at scrape time and encoded like the rest of `/metrics`
/// (`metrics::Snapshot`): a counter family is named without `_total`, its samples with it.
pub fn render_metrics(caches: &[Arc<Cached>]) -> String {
    /// A series' labels.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct Labels {
        source: SourceName,
        r#type: &'static str,
    }
    type Series = (&'static str, Kind, &'static str, fn(&CacheStats) -> u64);
    let series: [Series; 6] = [
        (
            "fhir_gateway_cache_hits",
            Kind::Counter,
            "Reads and searches answered from the cache.",
            |s| s.hits,
        ),
        (
            "fhir_gateway_cache_misses",
            Kind::Counter,
            "Reads and searches that called the vendor.",
            |s| s.misses,
        ),
        (
            "fhir_gateway_cache_evictions",
            Kind::Counter,
            "Entries removed by the byte bound or their lifetime.",
            |s| s.evictions,
        ),
        (
            "fhir_gateway_cache_stale",
            Kind::Counter,
            "Answers served past their TTL because the vendor failed (stale-if-error).",
            |s| s.stale,
        ),
        ("fhir_gateway_cache_entries", Kind::Gauge, "Entries held.", |s| {
            s.entries
        }),
        (
            "fhir_gateway_cache_bytes",
            Kind::Gauge,
            "Bytes held: serialized FHIR JSON and keys (the bound is on the sum).",
            |s| s.weighted_bytes,
        ),
    ];
    let stats: Vec<(SourceName, Vec<(&'static str, CacheStats)>)> =
        caches.iter().map(|c| (c.source(), c.stats_by_type())).collect();
    let mut snapshot = Snapshot::default();
    for (name, kind, help, value) in series {
        let values = stats.iter().flat_map(|(source, by_type)| {
            by_type.iter().map(move |(t, s)| {
                let labels = Labels { source, r#type: t };
                (labels, value(s))
            })
        });
        snapshot.add(name, help, kind, values);
    }
    snapshot.render()
}

#[cfg(test)]
mod tests {
    use adapter::search::{Continuation, TokenValue};

    use super::*;

    fn strings(name: &str, modifier: Option<Modifier>, values: &[&str]) -> SearchParam {
        SearchParam {
            name: name.into(),
            modifier,
            values: values.iter().map(|v| SearchValue::String((*v).into())).collect(),
        }
    }

    fn patients(params: Vec<SearchParam>) -> SearchRequest {
        SearchRequest {
            resource_type: Some(ResourceType::Patient),
            params,
        }
    }

    fn first(size: u32) -> PageRequest {
        PageRequest { cursor: None, size }
    }

    #[test]
    fn reordered_parameters_make_the_same_key() {
        let a = patients(vec![
            strings("family", None, &["x"]),
            strings("given", Some(Modifier::Exact), &["y"]),
            strings("family", Some(Modifier::Contains), &["z"]),
            strings("birthdate", None, &["1970"]),
        ]);
        let b = patients(vec![
            strings("birthdate", None, &["1970"]),
            strings("family", Some(Modifier::Contains), &["z"]),
            strings("given", Some(Modifier::Exact), &["y"]),
            strings("family", None, &["x"]),
        ]);
        assert_eq!(
            search_digest("acct", "mem", &a, &first(50)),
            search_digest("acct", "mem", &b, &first(50))
        );
    }

    #[test]
    fn any_other_difference_makes_another_key() {
        let base = patients(vec![strings("name", None, &["a", "b"])]);
        let with_type = |t: Option<ResourceType>| SearchRequest {
            resource_type: t,
            params: base.params.clone(),
        };
        let token = patients(vec![SearchParam {
            name: "name".into(),
            modifier: None,
            values: vec![
                SearchValue::Token(TokenValue {
                    system: None,
                    code: Some("a".into()),
                }),
                SearchValue::Token(TokenValue {
                    system: None,
                    code: Some("b".into()),
                }),
            ],
        }]);
        let keys = [
            search_digest("acct", "mem", &base, &first(50)),
            search_digest("other", "mem", &base, &first(50)),
            search_digest("acct", "zoom", &base, &first(50)),
            search_digest("acct", "mem", &base, &first(20)),
            search_digest(
                "acct",
                "mem",
                &base,
                &PageRequest {
                    cursor: Some(Continuation("c1".into())),
                    size: 50,
                },
            ),
            search_digest(
                "acct",
                "mem",
                &base,
                &PageRequest {
                    cursor: Some(Continuation("c2".into())),
                    size: 50,
                },
            ),
            // OR is not AND, and no concatenation of texts looks like another.
            search_digest(
                "acct",
                "mem",
                &patients(vec![strings("name", None, &["a"]), strings("name", None, &["b"])]),
                &first(50),
            ),
            search_digest(
                "acct",
                "mem",
                &patients(vec![strings("name", None, &["ab"])]),
                &first(50),
            ),
            search_digest(
                "acct",
                "mem",
                &patients(vec![strings("name", None, &["a,b"])]),
                &first(50),
            ),
            search_digest(
                "acct",
                "mem",
                &patients(vec![strings("name", Some(Modifier::Exact), &["a", "b"])]),
                &first(50),
            ),
            search_digest("acct", "mem", &token, &first(50)),
            search_digest("acct", "mem", &with_type(Some(ResourceType::Practitioner)), &first(50)),
            search_digest("acct", "mem", &with_type(None), &first(50)),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b, "key {i} is shared");
            }
        }
    }

    #[test]
    fn search_keys_are_small_and_weighed() {
        let key_size = std::mem::size_of::<SearchKey>();
        assert!(key_size <= 64, "{key_size}");
        let key = SearchKey {
            resource_type: Some(ResourceType::Patient),
            generation: 0,
            digest: search_digest(
                "acct",
                "mem",
                &patients(vec![strings("name", None, &["x".repeat(10_000).as_str()])]),
                &first(50),
            ),
        };
        let entry = PageEntry {
            page: Arc::new(DocPage::default()),
            size: 100,
            fetched: Instant::now(),
        };
        assert_eq!(
            search_weight(&key, &entry),
            100 + std::mem::size_of::<SearchKey>() as u64
        );
        let read = ReadKey {
            account: Arc::from("acct"),
            source: "mem",
            resource_type: ResourceType::Patient,
            native_id: "12345".into(),
            epoch: (0, 0),
        };
        let absent = ReadEntry {
            answer: ReadAnswer::Absent(AdapterError::NotFound {
                resource_type: ResourceType::Patient,
                id: "12345".into(),
            }),
            size: 0,
            fetched: Instant::now(),
        };
        assert!(absent.absent());
        assert_eq!(read_weight(&read, &absent), (std::mem::size_of::<ReadKey>() + 5) as u64);
    }
}
