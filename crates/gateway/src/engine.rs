//! Runs reads and searches across the sources: federation, filtering, sorting, paging, includes.

use std::collections::BTreeSet;

use adapter::search::{ReferenceValue, SearchParam, SearchRequest, SearchValue};
use std::sync::Arc;

use adapter::{AdapterError, Continuation, Interaction, PageRequest, Resource, ResourceType};
use chrono_tz::Tz;
use futures::StreamExt;
use serde_json::Value;

use crate::access::{AccessPolicy, Caller};
use crate::doc::{Doc, Served};
use crate::error::{GatewayError, Issue, IssueCode, Severity};
use crate::paging::{Position, SourcePos};
use crate::params;
use crate::query::{ParsedSearch, Summary, Total};
use crate::sources::Sources;

/// The vendor page size asked for when the gateway filters what a vendor returns (and by the
/// resolver's confirming searches, so that both share cached pages): a full page, 250 records at
/// DrChrono (adapters clamp it to their vendor's largest).
pub const FULL_VENDOR_PAGE: u32 = 250;

/// Limits that keep one request from turning into unbounded vendor traffic.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Vendor calls one gateway page may make while filtering (then it returns a shorter page).
    pub vendor_calls_per_page: usize,
    /// Most matches a search may gather when it must see them all (`_sort`, `_total=accurate`,
    /// `_summary=count`, `_revinclude`).
    pub max_materialized: usize,
    /// Concurrent reads when resolving `_include`.
    pub include_concurrency: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        Self {
            vendor_calls_per_page: 20,
            max_materialized: 10_000,
            include_concurrency: 8,
        }
    }
}

/// What a search page produced.
#[derive(Debug, Default)]
pub struct SearchPage {
    pub matches: Vec<Served>,
    pub included: Vec<Served>,
    /// Where the next page starts, if there is one.
    pub next: Option<Position>,
    /// The number of matches, when known.
    pub total: Option<usize>,
    /// Warnings for the Bundle's OperationOutcome entry.
    pub issues: Vec<Issue>,
}

/// The search and read engine.
#[derive(Clone)]
pub struct Engine {
    pub sources: Sources,
    pub tz: Tz,
    pub limits: EngineLimits,
}

/// What one request brings to every engine and write call besides its own arguments: who is asking,
/// the policy that decides what they may see, and how a failing source counts.
#[derive(Clone, Copy)]
pub struct RequestCtx<'a> {
    /// The caller the token gate established.
    pub caller: &'a Caller,
    /// The access policy consulted for [`Self::caller`], after fetching and after the cache.
    pub policy: &'a dyn AccessPolicy,
    /// `Prefer: handling=strict`: a failing source fails the request instead of becoming a warning
    /// in the Bundle.
    pub strict: bool,
}

/// Serialises a fhirbolt resource to its FHIR JSON.
pub fn to_json(resource: Resource) -> Result<Value, GatewayError> {
    fhirbolt::json::to_json_value(resource, None)
        .map_err(|_| GatewayError::Internal("a resource could not be serialised".into()))
}

impl Engine {
    /// Reads one resource; anything the caller may not see is a 404 like a missing one.
    pub async fn read(
        &self,
        resource_type: ResourceType,
        id: &str,
        ctx: RequestCtx<'_>,
    ) -> Result<Served, GatewayError> {
        let RequestCtx { caller, policy, .. } = ctx;
        let not_found = || GatewayError::NotFound(format!("{resource_type}/{id} is not known"));
        let (docs, fhir_id) = self.sources.docs_for_read(resource_type, id).ok_or_else(not_found)?;
        // What is known of this record before its content can be checked against the caller's
        // grant (deleted, refused, unmappable) is told only to a caller who may see every record
        // of the type; to anyone else it is as missing as another patient's record.
        let hide = |e: GatewayError| {
            let record_specific = matches!(
                e,
                GatewayError::Gone(_)
                    | GatewayError::Internal(_)
                    | GatewayError::Adapter(AdapterError::Unmappable { .. } | AdapterError::Forbidden { .. })
            );
            if record_specific && !policy.sees_all(caller, resource_type) {
                not_found()
            } else {
                e
            }
        };
        let doc = match docs.read(resource_type, fhir_id.native()).await {
            Ok(doc) => doc,
            Err(AdapterError::NotFound { .. }) => return Err(not_found()),
            Err(AdapterError::Gone { .. }) => {
                return Err(hide(GatewayError::Gone(format!(
                    "{resource_type}/{id} has been deleted"
                ))));
            }
            Err(e) => return Err(hide(e.into())),
        };
        let same = doc.resource_type() == Some(resource_type) && doc.id() == Some(id);
        if !same {
            return Err(hide(GatewayError::Adapter(AdapterError::Unmappable {
                vendor: docs.source(),
                detail: "the vendor answered a read with a different resource".into(),
            })));
        }
        if !policy.visible(caller, doc.json()) {
            return Err(not_found());
        }
        Ok(serve(doc, ctx))
    }

    fn matches(&self, request: &SearchRequest, resource_type: ResourceType, json: &Value) -> bool {
        json.get("resourceType").and_then(Value::as_str) == Some(resource_type.as_str())
            && request
                .params
                .iter()
                .all(|p| params::find(resource_type, &p.name).is_some_and(|def| params::matches(def, p, json, self.tz)))
    }

    /// The first position of a search over every source serving the type.
    pub fn start(&self, resource_type: ResourceType, needs_all: bool) -> Position {
        if needs_all {
            return Position::Offset { offset: 0 };
        }
        let sources = self
            .sources
            .serving(resource_type, Interaction::SearchType)
            .into_iter()
            .map(|a| SourcePos {
                src: a.source().to_owned(),
                cont: None,
                skip: 0,
                done: false,
                failed: false,
            })
            .collect();
        Position::Stream { sources }
    }

    /// True when the search must see every match before answering.
    pub fn needs_all(search: &ParsedSearch) -> bool {
        !search.result.sort.is_empty()
            || search.result.total == Total::Accurate
            || search.result.summary == Some(Summary::Count)
            || search.result.count == 0
    }

    /// Runs one page of a search from `pos`.
    pub async fn search(
        &self,
        search: &ParsedSearch,
        pos: Position,
        ctx: RequestCtx<'_>,
    ) -> Result<SearchPage, GatewayError> {
        let mut page = SearchPage::default();
        let count = search.result.count as usize;
        match pos {
            Position::Stream { mut sources } => {
                let first_page = sources.iter().all(|s| s.cont.is_none() && s.skip == 0 && !s.done);
                page.matches = self.stream(search, &mut sources, count, ctx, &mut page.issues).await?;
                if sources.iter().all(|s| s.done) {
                    if first_page && page.issues.is_empty() {
                        // Everything fit in the first page: the total is known for free.
                        page.total = Some(page.matches.len());
                    }
                } else {
                    page.next = Some(Position::Stream { sources });
                }
            }
            Position::Offset { offset } => {
                let mut all = self
                    .collect_all(search.resource_type, &search.request, ctx, &mut page.issues)
                    .await?;
                self.sort(search, &mut all);
                page.total = Some(all.len());
                let end = (offset + count).min(all.len());
                if offset < end {
                    page.matches = all.drain(offset..end).collect();
                }
                if end < page.total.unwrap_or(0) && count > 0 {
                    page.next = Some(Position::Offset { offset: end });
                }
            }
        }
        if search.result.summary != Some(Summary::Count) {
            page.included = self.includes(search, &page.matches, ctx, &mut page.issues).await?;
        }
        Ok(page)
    }

    async fn stream(
        &self,
        search: &ParsedSearch,
        sources: &mut [SourcePos],
        count: usize,
        ctx: RequestCtx<'_>,
        issues: &mut Vec<Issue>,
    ) -> Result<Vec<Served>, GatewayError> {
        let RequestCtx { caller, policy, strict } = ctx;
        let mut out = Vec::new();
        let mut calls = 0;
        // When the gateway filters, sparse matches would otherwise cost a vendor call per few
        // resources: ask for full vendor pages. (The size must only depend on the search, since a
        // paging link re-reads the same vendor page and skips what it consumed.)
        let size = if search.request.params.is_empty() {
            (count as u32).clamp(10, FULL_VENDOR_PAGE)
        } else {
            FULL_VENDOR_PAGE
        };
        // With one source there is nothing to federate: its failure is the answer.
        let single = sources.len() == 1;
        for sp in sources.iter().filter(|sp| sp.failed) {
            issues.push(Issue::new(
                Severity::Warning,
                IssueCode::Incomplete,
                format!(
                    "results from source '{}' are missing: it failed on an earlier page of this search",
                    sp.src
                ),
            ));
        }
        // Every source's current vendor page is asked for at once, so a federated page costs the
        // slowest vendor, not the sum of them; later vendor pages of a source follow one by one.
        let mut adapters = Vec::with_capacity(sources.len());
        for sp in sources.iter() {
            let Some(adapter) = self.sources.docs_by_source(&sp.src) else {
                return Err(GatewayError::BadParameter {
                    name: "_cursor".into(),
                    message: "the paging link names a source this server does not have".into(),
                });
            };
            adapters.push(adapter);
        }
        let budget = self.limits.vendor_calls_per_page;
        let mut prefetched: Vec<Option<Result<Arc<crate::doc::DocPage>, AdapterError>>> =
            futures::future::join_all(sources.iter().zip(&adapters).enumerate().map(|(i, (sp, adapter))| {
                let request = PageRequest {
                    cursor: sp.cont.clone().map(Continuation),
                    size,
                };
                async move {
                    if sp.done || i >= budget {
                        return None;
                    }
                    Some(adapter.search(&search.request, request).await)
                }
            }))
            .await;
        for ((sp, adapter), prefetched) in sources.iter_mut().zip(&adapters).zip(prefetched.iter_mut()) {
            while !sp.done && out.len() < count {
                if calls >= self.limits.vendor_calls_per_page {
                    return Ok(out);
                }
                calls += 1;
                let answer = match prefetched.take() {
                    Some(answer) => answer,
                    None => {
                        let request = PageRequest {
                            cursor: sp.cont.clone().map(Continuation),
                            size,
                        };
                        adapter.search(&search.request, request).await
                    }
                };
                let vendor_page = match answer {
                    Ok(p) => p,
                    // A continuation that expired cannot be resumed: answering with the other
                    // sources alone would be a wrong page, so the whole page is gone (410).
                    Err(e @ AdapterError::ContinuationExpired { .. }) => return Err(e.into()),
                    Err(e) if strict || single => return Err(e.into()),
                    Err(e) => {
                        issues.push(source_failed(adapter.source(), &e));
                        sp.done = true;
                        sp.failed = true;
                        break;
                    }
                };
                let len = vendor_page.docs.len();
                let mut consumed = sp.skip.min(len);
                for doc in vendor_page.docs.iter().skip(sp.skip) {
                    consumed += 1;
                    let json = doc.json();
                    if self.matches(&search.request, search.resource_type, json) && policy.visible(caller, json) {
                        out.push(serve(doc.clone(), ctx));
                        if out.len() == count {
                            break;
                        }
                    }
                }
                if consumed < len {
                    sp.skip = consumed;
                } else {
                    sp.cont = vendor_page.next.clone().map(|c| c.0);
                    sp.skip = 0;
                    sp.done = sp.cont.is_none();
                }
            }
        }
        Ok(out)
    }

    /// Gathers every match of `request` from every source (concurrently), up to the limit.
    pub async fn collect_all(
        &self,
        resource_type: ResourceType,
        request: &SearchRequest,
        ctx: RequestCtx<'_>,
        issues: &mut Vec<Issue>,
    ) -> Result<Vec<Served>, GatewayError> {
        let RequestCtx { caller, policy, strict } = ctx;
        let adapters = self.sources.docs_serving(resource_type, Interaction::SearchType);
        let single = adapters.len() == 1;
        let max = self.limits.max_materialized;
        let per_source = futures::future::join_all(adapters.into_iter().map(|adapter| async move {
            let mut out = Vec::new();
            let mut cursor = None;
            loop {
                let page = adapter
                    .search(
                        request,
                        PageRequest {
                            cursor: cursor.take(),
                            size: FULL_VENDOR_PAGE,
                        },
                    )
                    .await?;
                for doc in &page.docs {
                    let json = doc.json();
                    if self.matches(request, resource_type, json) && policy.visible(caller, json) {
                        out.push(serve(doc.clone(), ctx));
                    }
                }
                if out.len() > max {
                    return Ok::<_, AdapterError>((adapter.source(), out));
                }
                match &page.next {
                    Some(next) => cursor = Some(next.clone()),
                    None => return Ok((adapter.source(), out)),
                }
            }
        }))
        .await;
        let mut all = Vec::new();
        for (i, result) in per_source.into_iter().enumerate() {
            match result {
                Ok((_, items)) => all.extend(items),
                Err(e) if strict || single => return Err(e.into()),
                Err(e) => {
                    let name = self
                        .sources
                        .serving(resource_type, Interaction::SearchType)
                        .get(i)
                        .map(|a| a.source())
                        .unwrap_or("?");
                    issues.push(source_failed(name, &e));
                }
            }
            if all.len() > max {
                return Err(GatewayError::BadRequest(format!(
                    "this search matches more than {max} resources, too many to sort, count or include against; narrow it"
                )));
            }
        }
        Ok(all)
    }

    fn sort(&self, search: &ParsedSearch, items: &mut Vec<Served>) {
        if search.result.sort.is_empty() {
            return;
        }
        let defs: Vec<_> = search
            .result
            .sort
            .iter()
            .filter_map(|s| params::find(search.resource_type, s.param).map(|d| (d, s.descending)))
            .collect();
        let mut keyed: Vec<(Vec<params::SortKey>, Served)> = std::mem::take(items)
            .into_iter()
            .map(|v| {
                (
                    defs.iter()
                        .map(|(d, _)| params::sort_key(d, v.json(), self.tz))
                        .collect(),
                    v,
                )
            })
            .collect();
        keyed.sort_by(|(a, av), (b, bv)| {
            for (i, (_, desc)) in defs.iter().enumerate() {
                let ord = match (&a[i], &b[i]) {
                    // Missing values go last whatever the direction.
                    (params::SortKey::Missing, params::SortKey::Missing) => std::cmp::Ordering::Equal,
                    (params::SortKey::Missing, _) => std::cmp::Ordering::Greater,
                    (_, params::SortKey::Missing) => std::cmp::Ordering::Less,
                    (x, y) if *desc => y.cmp(x),
                    (x, y) => x.cmp(y),
                };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            // A stable tie-break so pages never overlap.
            av.json()
                .get("id")
                .and_then(Value::as_str)
                .cmp(&bv.json().get("id").and_then(Value::as_str))
        });
        items.extend(keyed.into_iter().map(|(_, v)| v));
    }

    async fn includes(
        &self,
        search: &ParsedSearch,
        matches: &[Served],
        ctx: RequestCtx<'_>,
        issues: &mut Vec<Issue>,
    ) -> Result<Vec<Served>, GatewayError> {
        let RequestCtx { caller, policy, strict } = ctx;
        let have: BTreeSet<(String, String)> = matches.iter().filter_map(type_and_id).collect();
        let mut wanted: BTreeSet<(ResourceType, String)> = BTreeSet::new();
        for (src, name, target) in &search.result.include {
            let Some(def) = params::find(*src, name) else {
                continue;
            };
            for m in matches.iter().map(Served::json) {
                for path in def.paths {
                    for elem in params::select(m, path) {
                        let Some(reference) = elem.get("reference").and_then(Value::as_str) else {
                            continue;
                        };
                        if let Some((ty, id)) = params::parse_reference(reference)
                            && ty == target.as_str()
                            && !have.contains(&(ty.to_owned(), id.to_owned()))
                        {
                            wanted.insert((*target, id.to_owned()));
                        }
                    }
                }
            }
        }
        let reads = futures::stream::iter(wanted.into_iter().map(|(ty, id)| async move {
            let r = self.read(ty, &id, ctx).await;
            (ty, id, r)
        }))
        .buffered(self.limits.include_concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
        let mut out = Vec::new();
        for (ty, id, r) in reads {
            match r {
                Ok(v) => out.push(v),
                Err(GatewayError::NotFound(_) | GatewayError::Gone(_)) => {}
                Err(e) if strict => return Err(e),
                Err(e) => issues.push(
                    Issue::new(
                        Severity::Warning,
                        IssueCode::Incomplete,
                        format!("{ty}/{id} could not be included: {e}"),
                    )
                    .at("_include"),
                ),
            }
        }
        let mut seen: BTreeSet<(String, String)> = have;
        seen.extend(out.iter().filter_map(type_and_id));
        for (src, name, _target) in &search.result.revinclude {
            let refs: Vec<SearchValue> = matches
                .iter()
                .filter_map(|m| m.json().get("id").and_then(Value::as_str))
                .map(|id| {
                    SearchValue::Reference(ReferenceValue {
                        resource_type: Some(search.resource_type),
                        id: id.to_owned(),
                    })
                })
                .collect();
            if refs.is_empty() {
                continue;
            }
            let mut params = vec![SearchParam {
                name: (*name).to_owned(),
                modifier: None,
                values: refs,
            }];
            // A patient-context caller's revincludes are narrowed to the compartment at the vendor
            // too, so nobody else's records are fetched (and paid for) only to be filtered out.
            let forced = policy.search_filter(caller, *src);
            if !forced.is_empty() {
                let limits = crate::query::CountLimits { default: 1, max: 1 };
                let parsed = crate::query::parse(*src, &forced, true, limits, self.tz, "")?;
                params.extend(parsed.request.params);
            }
            let request = SearchRequest {
                resource_type: Some(*src),
                params,
            };
            let found = self.collect_all(*src, &request, ctx, issues).await?;
            for v in found {
                if let Some(key) = type_and_id(&v)
                    && seen.insert(key)
                {
                    out.push(v);
                }
            }
        }
        Ok(out)
    }
}

fn type_and_id(v: &Served) -> Option<(String, String)> {
    let v = v.json();
    Some((
        v.get("resourceType")?.as_str()?.to_owned(),
        v.get("id")?.as_str()?.to_owned(),
    ))
}

/// A cached document as `ctx`'s caller receives it: shared as it is, or a redacted copy.
fn serve(doc: Arc<Doc>, ctx: RequestCtx<'_>) -> Served {
    if ctx.policy.redacts(ctx.caller, &doc) {
        let mut json = doc.json().clone();
        ctx.policy.redact(ctx.caller, &mut json);
        Served::Owned(json)
    } else {
        Served::Shared(doc)
    }
}

fn source_failed(source: &str, e: &AdapterError) -> Issue {
    Issue::new(
        Severity::Warning,
        IssueCode::Incomplete,
        format!("results from source '{source}' are missing: {e}"),
    )
}
