//! The adapters the gateway federates over, each wrapped in a metering decorator.

use std::sync::Arc;
use std::time::Instant;

use adapter::search::SearchRequest;
use adapter::{
    Adapter, AdapterError, Capabilities, FhirId, Interaction, Page, PageRequest, Resource, ResourceType, SourceName,
};

use crate::cache::Cached;
use crate::doc::{Doc, DocPage};
use crate::metrics::Metrics;

/// Records every vendor call (count, outcome, latency) around an adapter.
pub struct Metered {
    inner: Arc<dyn Adapter>,
    metrics: Arc<Metrics>,
}

impl Metered {
    pub fn new(inner: Arc<dyn Adapter>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn record<T>(&self, op: &str, started: Instant, result: &Result<T, AdapterError>) {
        self.metrics
            .vendor_call(self.inner.source(), op, outcome_label(result), started.elapsed());
    }
}

/// The metrics label of a call's outcome.
pub fn outcome_label<T>(result: &Result<T, AdapterError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(AdapterError::NotFound { .. }) => "not_found",
        Err(AdapterError::Gone { .. }) => "gone",
        Err(AdapterError::RateLimited { .. }) => "rate_limited",
        Err(AdapterError::Unavailable { .. }) => "unavailable",
        Err(AdapterError::Timeout { .. }) => "timeout",
        Err(AdapterError::Unmappable { .. }) => "unmappable",
        Err(AdapterError::VendorAuth { .. }) => "vendor_auth",
        Err(AdapterError::Unsupported { .. }) => "unsupported",
        Err(AdapterError::InvalidRequest { .. }) => "invalid_request",
        Err(AdapterError::ContinuationExpired { .. }) => "continuation_expired",
        Err(AdapterError::Forbidden { .. }) => "forbidden",
        Err(AdapterError::Unprocessable { .. }) => "unprocessable",
        Err(AdapterError::TokenStore { .. }) => "token_store",
    }
}

#[async_trait::async_trait]
impl Adapter for Metered {
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
        let started = Instant::now();
        let r = self.inner.read(resource_type, native_id).await;
        self.record("read", started, &r);
        r
    }

    async fn search(&self, request: &SearchRequest, page: PageRequest) -> Result<Page, AdapterError> {
        let started = Instant::now();
        let r = self.inner.search(request, page).await;
        self.record("search", started, &r);
        r
    }

    async fn check(&self) -> Result<(), AdapterError> {
        let started = Instant::now();
        let r = self.inner.check().await;
        self.record("check", started, &r);
        r
    }

    async fn create(&self, resource: Resource) -> Result<Resource, AdapterError> {
        let started = Instant::now();
        let r = self.inner.create(resource).await;
        self.record("create", started, &r);
        r
    }

    async fn update(
        &self,
        resource_type: ResourceType,
        native_id: &str,
        resource: Resource,
    ) -> Result<Resource, AdapterError> {
        let started = Instant::now();
        let r = self.inner.update(resource_type, native_id, resource).await;
        self.record("update", started, &r);
        r
    }

    async fn operation(
        &self,
        resource_type: ResourceType,
        native_id: &str,
        name: &str,
        input: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        let started = Instant::now();
        let r = self.inner.operation(resource_type, native_id, name, input).await;
        self.record("operation", started, &r);
        r
    }

    async fn operation_on(
        &self,
        target_id: &adapter::FhirId,
        target: &Resource,
        name: &str,
        input: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        let started = Instant::now();
        let r = self.inner.operation_on(target_id, target, name, input).await;
        self.record("operation", started, &r);
        r
    }

    fn webhooks(&self) -> Option<&dyn adapter::WebhookReceiver> {
        self.inner.webhooks()
    }

    fn health(&self) -> Option<adapter::VendorHealth> {
        self.inner.health()
    }
}

/// Every source the gateway serves, in wiring order.
#[derive(Clone, Default)]
pub struct Sources {
    adapters: Vec<Arc<dyn Adapter>>,
    /// The cache each adapter is (the same object as in `adapters`), when caching is on: the
    /// engine reads its documents instead of fhirbolt resources.
    caches: Vec<Option<Arc<Cached>>>,
}

/// How the engine reaches one source: through its cache's shared documents when it has one, else
/// through the adapter, each answer serialised once.
#[derive(Clone, Copy)]
pub struct Docs<'a> {
    adapter: &'a Arc<dyn Adapter>,
    cache: Option<&'a Arc<Cached>>,
}

impl<'a> Docs<'a> {
    pub fn adapter(&self) -> &'a Arc<dyn Adapter> {
        self.adapter
    }

    pub fn source(&self) -> SourceName {
        self.adapter.source()
    }

    pub async fn read(&self, resource_type: ResourceType, native_id: &str) -> Result<Arc<Doc>, AdapterError> {
        match self.cache {
            Some(cache) => cache.read_doc(resource_type, native_id).await,
            None => Doc::from_resource(self.adapter.read(resource_type, native_id).await?, self.source()),
        }
    }

    pub async fn search(&self, request: &SearchRequest, page: PageRequest) -> Result<Arc<DocPage>, AdapterError> {
        match self.cache {
            Some(cache) => cache.search_docs(request, page).await,
            None => Ok(Arc::new(DocPage::from_page(
                self.adapter.search(request, page).await?,
                self.source(),
            )?)),
        }
    }
}

impl Sources {
    pub fn new(adapters: Vec<Arc<dyn Adapter>>) -> Self {
        let caches = vec![None; adapters.len()];
        Self { adapters, caches }
    }

    /// Sources that are caches: the engine shares their documents.
    pub fn cached(caches: &[Arc<Cached>]) -> Self {
        Self {
            adapters: caches.iter().map(|c| c.clone() as Arc<dyn Adapter>).collect(),
            caches: caches.iter().cloned().map(Some).collect(),
        }
    }

    pub fn all(&self) -> &[Arc<dyn Adapter>] {
        &self.adapters
    }

    fn docs_at(&self, i: usize) -> Docs<'_> {
        Docs {
            adapter: &self.adapters[i],
            cache: self.caches.get(i).and_then(Option::as_ref),
        }
    }

    /// The adapter that minted `source`.
    pub fn by_source(&self, source: &str) -> Option<&Arc<dyn Adapter>> {
        self.adapters.iter().find(|a| a.source() == source)
    }

    /// The documents of the source named `source`.
    pub fn docs_by_source(&self, source: &str) -> Option<Docs<'_>> {
        let i = self.adapters.iter().position(|a| a.source() == source)?;
        Some(self.docs_at(i))
    }

    /// The adapters supporting `interaction` on `resource_type`.
    pub fn serving(&self, resource_type: ResourceType, interaction: Interaction) -> Vec<&Arc<dyn Adapter>> {
        self.adapters
            .iter()
            .filter(|a| a.capabilities().supports(resource_type, interaction))
            .collect()
    }

    /// The documents of the sources supporting `interaction` on `resource_type`.
    pub fn docs_serving(&self, resource_type: ResourceType, interaction: Interaction) -> Vec<Docs<'_>> {
        (0..self.adapters.len())
            .filter(|i| self.adapters[*i].capabilities().supports(resource_type, interaction))
            .map(|i| self.docs_at(i))
            .collect()
    }

    /// True when any source serves `resource_type` at all.
    pub fn serves(&self, resource_type: ResourceType) -> bool {
        self.adapters
            .iter()
            .any(|a| a.capabilities().resource(resource_type).is_some())
    }

    /// The adapter for a FHIR id, with the native id, when that adapter reads `resource_type`.
    pub fn for_read(&self, resource_type: ResourceType, id: &str) -> Option<(&Arc<dyn Adapter>, FhirId)> {
        self.docs_for_read(resource_type, id).map(|(d, fid)| (d.adapter, fid))
    }

    /// The documents of the source of a FHIR id, with the native id, when it reads `resource_type`.
    pub fn docs_for_read(&self, resource_type: ResourceType, id: &str) -> Option<(Docs<'_>, FhirId)> {
        let parsed = FhirId::parse(id).ok()?;
        let i = self.adapters.iter().position(|a| a.source() == parsed.source())?;
        self.adapters[i]
            .capabilities()
            .supports(resource_type, Interaction::Read)
            .then(|| (self.docs_at(i), parsed))
    }
}

/// Answers [`adapter::Resolver`] questions through the gateway's own sources, so one adapter can
/// link to another source's resources (a Zoom note to its DrChrono patient) without depending on
/// it. Bound to the sources after they are built; answers (exists or not) are remembered for a
/// while, since each question costs a vendor call. A failing source is passed on as its error and
/// never remembered.
pub struct GatewayResolver {
    sources: std::sync::OnceLock<Sources>,
    known: std::sync::Mutex<std::collections::HashMap<(ResourceType, String), (bool, Instant)>>,
    ttl: std::time::Duration,
}

impl std::fmt::Debug for GatewayResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayResolver")
            .field("bound", &self.sources.get().is_some())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl GatewayResolver {
    pub fn new(ttl: std::time::Duration) -> Arc<Self> {
        Arc::new(Self {
            sources: std::sync::OnceLock::new(),
            known: Default::default(),
            ttl,
        })
    }

    /// Binds the resolver to the gateway's sources (once).
    pub fn bind(&self, sources: Sources) {
        let _ = self.sources.set(sources);
    }

    /// Remembers whether a resource exists (never a failure: those are not answers).
    fn remember(&self, key: (ResourceType, String), found: bool) {
        if let Ok(mut known) = self.known.lock() {
            if known.len() > 100_000 {
                known.clear();
            }
            known.insert(key, (found, Instant::now()));
        }
    }
}

#[async_trait::async_trait]
impl adapter::Resolver for GatewayResolver {
    /// Remembers `true`/`false` answers for the TTL; a failing source's error is returned and not
    /// remembered, so the next question asks it again.
    async fn exists(&self, resource_type: ResourceType, id: &str) -> Result<bool, AdapterError> {
        let key = (resource_type, id.to_owned());
        if let Some((found, at)) = self.known.lock().ok().and_then(|k| k.get(&key).copied())
            && at.elapsed() < self.ttl
        {
            return Ok(found);
        }
        let Some(sources) = self.sources.get() else {
            return Ok(false);
        };
        let Some((docs, fid)) = sources.docs_for_read(resource_type, id) else {
            return Ok(false);
        };
        let found = match docs.read(resource_type, fid.native()).await {
            Ok(_) => true,
            Err(AdapterError::NotFound { .. } | AdapterError::Gone { .. }) => false,
            // A failing source: the caller decides; nothing is remembered, ask again next time.
            Err(error) => return Err(error),
        };
        self.remember(key, found);
        Ok(found)
    }

    /// Reads through the gateway's sources (never from memory: the caller wants the facts); a
    /// failing source's error is returned, and only a successful answer is remembered for
    /// [`Self::exists`].
    async fn read(&self, resource_type: ResourceType, id: &str) -> Result<Option<Resource>, AdapterError> {
        let Some(sources) = self.sources.get() else {
            return Ok(None);
        };
        let Some((adapter, fid)) = sources.for_read(resource_type, id) else {
            return Ok(None);
        };
        let found = match adapter.read(resource_type, fid.native()).await {
            Ok(resource) => Some(resource),
            Err(AdapterError::NotFound { .. } | AdapterError::Gone { .. }) => None,
            // A failing source: returned, not remembered.
            Err(error) => return Err(error),
        };
        self.remember((resource_type, id.to_owned()), found.is_some());
        Ok(found)
    }

    /// Follows the source's pages (through the cache, like any search) until the search ends or
    /// finds more than `max`.
    async fn search(
        &self,
        source: &str,
        request: &SearchRequest,
        max: usize,
    ) -> Result<Option<Vec<Resource>>, AdapterError> {
        let (Some(sources), Some(resource_type)) = (self.sources.get(), request.resource_type) else {
            return Ok(None);
        };
        let Some(adapter) = sources.by_source(source) else {
            return Ok(None);
        };
        if !adapter.capabilities().supports(resource_type, Interaction::SearchType) {
            return Ok(None);
        }
        let mut found = Vec::new();
        let mut cursor = None;
        for _ in 0..RESOLVER_SEARCH_PAGES {
            // The engine's size for filtered searches: a patient's appointments asked by an app and
            // by an adapter confirming its notes' references are one cached page.
            let page = adapter
                .search(
                    request,
                    PageRequest {
                        cursor,
                        size: crate::engine::FULL_VENDOR_PAGE,
                    },
                )
                .await?;
            found.extend(page.resources);
            if found.len() > max {
                return Ok(None);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(Some(found)),
            }
        }
        Ok(None)
    }
}

/// The most vendor pages one [`GatewayResolver`] search follows.
const RESOLVER_SEARCH_PAGES: usize = 20;
