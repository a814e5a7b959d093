//! Reads and searches: `GET /fhir/{type}/{id}`, `GET /fhir/{type}` and `POST /fhir/{type}/_search`.

use adapter::{Interaction, ResourceType};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use chrono::Utc;

use super::request::{FhirRequest, first};
use super::response::render;
use super::{AppState, Shared};
use crate::access::Caller;
use crate::bundle::{self, Link};
use crate::conditional;
use crate::engine::{Engine, RequestCtx};
use crate::error::GatewayError;
use crate::paging::Cursor;
use crate::query::{self, ParsedSearch};

/// `GET /fhir/{type}/{id}`, with `_summary` and `_elements` and the HTTP validators.
pub(super) async fn read(
    State(state): State<Shared>,
    Path((ty, id)): Path<(String, String)>,
    req: FhirRequest,
    caller: Caller,
) -> Result<Response, GatewayError> {
    query::check_limits(&req.pairs, &state.request_limits)?;
    req.negotiate()?;
    let t = req.resource_type(&ty)?;
    if !adapter::id::is_valid_fhir_id(&id) {
        return Err(GatewayError::BadRequest(format!("'{id}' is not a valid FHIR id")));
    }
    state.policy.authorize(&caller, Interaction::Read, t)?;
    let (resource, stale) = crate::cache::noting_stale(state.engine.read(t, &id, req.ctx(&caller))).await;
    let resource = resource?;
    let summary = req.first("_summary").map(query::summary_param).transpose()?;
    let elements = req.first("_elements").map(query::parse_elements).unwrap_or_default();
    let pretty = req.pretty();
    // The cached document as the vendor gave it: its bytes and tag, computed when it was cached.
    if let Some(doc) = resource.doc()
        && !pretty
        && !bundle::subsets(summary, &elements)
    {
        return Ok(conditional::read_response(
            doc.bytes().clone(),
            doc.etag(),
            &req.headers,
            doc.last_modified(),
            &stale,
        ));
    }
    let body = resource.into_json();
    let last_modified = crate::doc::last_updated(&body).map(conditional::LastModified::new);
    let body = bundle::subset(body, summary, &elements);
    let bytes = render(&body, pretty);
    let etag = conditional::etag_header(&conditional::weak_etag(&bytes));
    Ok(conditional::read_response(
        bytes.into(),
        &etag,
        &req.headers,
        last_modified.as_ref(),
        &stale,
    ))
}

/// `GET /fhir/{type}`.
pub(super) async fn search_get(
    State(state): State<Shared>,
    Path(ty): Path<String>,
    req: FhirRequest,
    caller: Caller,
) -> Result<Response, GatewayError> {
    run_search(&state, &ty, req, caller).await
}

/// `POST /fhir/{type}/_search`: the form's parameters after the URL's.
pub(super) async fn search_post(
    State(state): State<Shared>,
    Path(ty): Path<String>,
    mut req: FhirRequest,
    caller: Caller,
    body: Bytes,
) -> Result<Response, GatewayError> {
    if !body.is_empty() {
        let ct = req
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(GatewayError::UnsupportedMediaType(
                "POST _search takes an application/x-www-form-urlencoded body".into(),
            ));
        }
        req.pairs.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    run_search(&state, &ty, req, caller).await
}

async fn run_search(state: &AppState, ty: &str, req: FhirRequest, caller: Caller) -> Result<Response, GatewayError> {
    // The client's own parameters, before any work (the policy's compartment filter comes later).
    query::check_limits(&req.pairs, &state.request_limits)?;
    req.negotiate()?;
    let t = req.resource_type(ty)?;
    state.policy.authorize(&caller, Interaction::SearchType, t)?;
    let strict = req.strict();
    let pretty = req.pretty();
    let pairs = req.pairs;
    let now = Utc::now().timestamp();

    // A paging link carries the whole search; everything else in the URL is ignored.
    let (search, position, page_pairs) = match first(&pairs, "_cursor") {
        Some(token) => {
            let cursor = state.codec.decode(token, now)?;
            if cursor.t != t.as_str() {
                return Err(GatewayError::BadParameter {
                    name: "_cursor".into(),
                    message: "the paging link belongs to a search on another type".into(),
                });
            }
            // The caller's compartment is forced on every page, whoever minted the link.
            let mut q = cursor.q.clone();
            q.extend(state.policy.search_filter(&caller, t));
            let search = parse(state, t, &q, strict)?;
            (search, cursor.pos, cursor.q)
        }
        None => {
            let mut pairs = pairs;
            pairs.extend(state.policy.search_filter(&caller, t));
            let search = parse(state, t, &pairs, strict)?;
            let pos = state.engine.start(t, Engine::needs_all(&search));
            let q = search.canonical.clone();
            (search, pos, q)
        }
    };
    let ctx = RequestCtx {
        caller: &caller,
        policy: state.policy.as_ref(),
        strict,
    };
    // A page every caller who may ask sees alike is served as it was rendered (`pages.rs`).
    let shared_view = search.result.include.is_empty()
        && search.result.revinclude.is_empty()
        && !caller.patient_facing()
        && state.policy.sees_all(&caller, t);
    let page_key = match &state.pages {
        Some(pages) if shared_view => Some((pages, pages.key(t, &page_pairs, &position, pretty))),
        _ => None,
    };
    if let Some((pages, key)) = &page_key
        && let Some(bytes) = pages.get(key).await
    {
        return Ok(super::response::fhir_bytes(StatusCode::OK, bytes));
    }
    let (page, stale) = crate::cache::noting_stale(state.engine.search(&search, position, ctx)).await;
    let mut page = page?;
    let whole = stale.is_empty() && page.issues.is_empty();
    let mut links = vec![Link {
        relation: "self",
        url: self_url(&state.fhir_base, t, &page_pairs),
    }];
    if let Some(next) = page.next.take() {
        let token = state.codec.encode(&Cursor {
            t: t.as_str().to_owned(),
            q: page_pairs.clone(),
            iat: now,
            pos: next,
        });
        links.push(Link {
            relation: "next",
            url: format!("{}/{}?_cursor={}", state.fhir_base, t, token),
        });
    }
    let mut issues = search.warnings.clone();
    issues.append(&mut page.issues);
    issues.extend(stale.iter().map(conditional::stale_issue));
    let body = bundle::render_searchset(
        bundle::Searchset {
            base_url: &state.fhir_base,
            matches: page.matches,
            included: page.included,
            total: page.total,
            links: &links,
            issues: &issues,
            summary: search.result.summary,
            elements: &search.result.elements,
        },
        pretty,
    );
    let body = axum::body::Bytes::from(body);
    if let Some((pages, key)) = page_key
        && whole
    {
        pages.put(key, body.clone()).await;
    }
    let mut response = super::response::fhir_bytes(StatusCode::OK, body);
    conditional::mark_stale(&mut response, &stale);
    Ok(response)
}

fn parse(
    state: &AppState,
    t: ResourceType,
    pairs: &[(String, String)],
    strict: bool,
) -> Result<ParsedSearch, GatewayError> {
    query::parse(t, pairs, strict, state.limits, state.engine.tz, &state.fhir_base)
}

fn self_url(base: &str, t: ResourceType, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return format!("{base}/{t}");
    }
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{base}/{t}?{q}")
}
