//! [`ZoomAdapter`]: the [`Adapter`] over one Zoom account.
//!
//! Reads go to the object's Zoom endpoint; searches are planned by [`plan`] (what Zoom can filter
//! on is pushed down, the gateway filters the rest) and walked with [`cursor::Cursor`]
//! continuations carrying Zoom's `next_page_token`. Every Zoom object goes through
//! [`crate::wire`] and [`crate::map`]; one that does not is an [`AdapterError::Unmappable`],
//! never silently dropped. EHR references (`ehr_context`) are checked with the gateway's
//! [`Resolver`] before mapping, so no link is made to a resource the EHR says is missing (one
//! whose EHR is failing stays linked: Zoom names it, only the check could not be made).
//!
//! Writes: a note's DocumentReference can be completed (`docStatus` preliminary → final); a
//! visit's Appointment can be created, rescheduled, have its reason changed, or be cancelled;
//! `$admit` admits the patient from the waiting room and `$invite` sends the visit invitation.
//! A change Zoom cannot store is refused whole as [`AdapterError::Unprocessable`] before any
//! call that changes something.

mod cursor;
mod plan;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter::fhir::resources::{Parameters, ParametersParameter, ParametersParameterValue};
use adapter::fhir::types::Reference;
use adapter::{
    Adapter, AdapterError, Capabilities, Interaction, MapCtx, OperationDef, OperationParam, OperationTarget, Page,
    PageRequest, ParamUse, Performer, Resolver, Resource, ResourceCapability, ResourceType, SearchRequest, SourceName,
    VendorHealth, WebhookReceiver, systems,
};
use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;
use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use self::cursor::{Cursor, Stream};
use self::plan::{Days as DayRange, ListQuery, Plan, PlanCtx};
use crate::client::{Reply, VENDOR, ZoomClient, unmappable};
use crate::config::{ConfigError, ZoomConfig};
use crate::map::codes::VisitStatus;
use crate::map::ids::{self, ZoomId};
use crate::map::{self, MapError, VisitChange, ZoomCtx};
use crate::webhook::ZoomWebhooks;
use crate::wire;

/// Zoom pages one `search` call reads at most while they map to nothing.
const MAX_CALLS_PER_SEARCH: usize = 4;

/// Concurrent Zoom calls for the records of one page (reads by id, availability, owners).
const CONCURRENT_CALLS: usize = 4;

/// Longest list walked whole (providers for note owners, the waiting room), in pages.
const MAX_LIST_PAGES: usize = 20;

/// How long the providers (the owners of notes) are kept before they are listed again.
const PROVIDER_REFRESH: Duration = Duration::from_secs(5 * 60);

/// Largest page of providers for a Schedule search (one availability call each).
const SCHEDULE_PAGE: u32 = 50;

/// Largest page of providers for a Slot search (a provider has hundreds of slots a month).
const SLOT_PAGE: u32 = 5;

/// Largest page of visits for a Patient search (two calls per patient on the page).
const PATIENT_PAGE: u32 = 100;

/// The `$admit` operation on Appointment.
pub const OPERATION_ADMIT: &str = "admit";

/// The `$invite` operation on Appointment.
pub const OPERATION_INVITE: &str = "invite";

/// `$admit`: no input; answers the Appointment, now in progress.
const ADMIT_PARAMS: &[OperationParam] = &[OperationParam::new(
    "return",
    ParamUse::Out,
    1,
    Some(1),
    "Appointment",
    "The visit after admitting the patient (status in progress)",
)];

/// `$invite`: channels and an optional message in; the invitation out.
const INVITE_PARAMS: &[OperationParam] = &[
    OperationParam::new("channel", ParamUse::In, 1, Some(2), "code", "email | sms"),
    OperationParam::new(
        "message",
        ParamUse::In,
        0,
        Some(1),
        "string",
        "A message to the patient",
    ),
    OperationParam::new(
        "invitation",
        ParamUse::Out,
        0,
        Some(1),
        "string",
        "Zoom's invitation id",
    ),
    OperationParam::new(
        "status",
        ParamUse::Out,
        1,
        Some(1),
        "code",
        "The invitation's status at Zoom (sent)",
    ),
    OperationParam::new("channel", ParamUse::Out, 1, Some(2), "code", "The channels used"),
    OperationParam::new("sent", ParamUse::Out, 0, Some(1), "dateTime", "When Zoom sent it"),
    OperationParam::new("appointment", ParamUse::Out, 1, Some(1), "Reference", "The visit"),
];

/// The Zoom source.
///
/// Built with [`ZoomAdapter::new`], which validates the configuration and makes no request: the
/// access token is fetched on the first call ([`Adapter::check`] is the start-up probe).
pub struct ZoomAdapter {
    client: ZoomClient,
    account: String,
    ehr_source: String,
    default_tz: Tz,
    page_size: u32,
    capabilities: Capabilities,
    resolver: Option<Arc<dyn Resolver>>,
    webhooks: ZoomWebhooks,
    providers: Mutex<Option<ProviderCache>>,
}

impl std::fmt::Debug for ZoomAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoomAdapter")
            .field("account", &self.account)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The account's providers by Zoom user id (notes name their owner by user id).
struct ProviderCache {
    by_user: Arc<HashMap<String, wire::Provider>>,
    expires: Instant,
}

impl ZoomAdapter {
    /// Validates `config` and builds the adapter. No request is made here.
    pub fn new(config: ZoomConfig) -> Result<Self, ConfigError> {
        let client = ZoomClient::new(&config)?;
        let webhooks = ZoomWebhooks::new(
            config.webhook_secret.clone(),
            config.account.clone(),
            config.account_id.clone(),
        );
        Ok(Self {
            client,
            account: config.account,
            ehr_source: config.ehr_source,
            default_tz: config.default_timezone,
            page_size: config.page_size,
            capabilities: capabilities(),
            resolver: None,
            webhooks,
            providers: Mutex::new(None),
        })
    }

    /// Checks the EHR references of notes, visits and patients (`ehr_context`) with `resolver`
    /// before mapping them: references it confirms, or cannot check because their source fails,
    /// become literal links; those it says are missing stay logical. Without a resolver every EHR
    /// reference stays logical.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The HTTP client (its rate-limit observations, for metrics).
    pub fn client(&self) -> &ZoomClient {
        &self.client
    }

    /// The mapping context, with the EHR references among `references` that exist.
    /// With `patients` (a search by patient: `Patient/{id}`), the EHR patients' appointments are
    /// listed to confirm the references ([`adapter::linkable_for_patients`]).
    async fn ctx(&self, references: Vec<String>, patients: &[String]) -> ZoomCtx {
        let mut ctx = ZoomCtx::new(MapCtx::new(Utc::now(), self.default_tz));
        ctx.ehr_source = self.ehr_source.clone();
        ctx.resolved = self.resolve(references, patients).await;
        ctx
    }

    /// Which `Type/id` references may be literal links ([`adapter::linkable`]).
    async fn resolve(&self, references: Vec<String>, patients: &[String]) -> HashSet<String> {
        let Some(resolver) = &self.resolver else {
            return HashSet::new();
        };
        let ehr = format!("Patient/{}-", self.ehr_source);
        let ehr_patients: Vec<String> = patients.iter().filter(|p| p.starts_with(&ehr)).cloned().collect();
        if ehr_patients.is_empty() {
            adapter::linkable(resolver.as_ref(), references).await
        } else {
            adapter::linkable_for_patients(resolver.as_ref(), &ehr_patients, references).await
        }
    }

    // ---- fetching Zoom objects -------------------------------------------------------------

    async fn fetch<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, String)],
        kind: &'static str,
    ) -> Result<Option<T>, AdapterError> {
        match self.client.get(path, query).await? {
            Some(value) => decode(value, kind).map(Some),
            None => Ok(None),
        }
    }

    async fn note(&self, note_id: &str) -> Result<Option<wire::ClinicalNote>, AdapterError> {
        self.fetch(&["clinical_notes", "notes", note_id], &[], "clinical note")
            .await
    }

    async fn visit(&self, visit_id: &str) -> Result<Option<wire::Visit>, AdapterError> {
        self.fetch(&["healthcare", "visits", visit_id], &[], "visit").await
    }

    async fn patient(&self, patient_id: &str) -> Result<Option<wire::Patient>, AdapterError> {
        self.fetch(&["healthcare", "patients", patient_id], &[], "patient")
            .await
    }

    async fn provider(&self, provider_id: &str) -> Result<Option<wire::Provider>, AdapterError> {
        self.fetch(&["healthcare", "providers", provider_id], &[], "provider")
            .await
    }

    /// A provider's availability; with `days`, the slots of those days are computed.
    async fn availability(
        &self,
        provider_id: &str,
        days: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<Option<wire::Availability>, AdapterError> {
        let query: Vec<(&str, String)> = days
            .map(|(from, to)| vec![("from", from.to_string()), ("to", to.to_string())])
            .unwrap_or_default();
        self.fetch(
            &["healthcare", "providers", provider_id, "availability"],
            &query,
            "availability",
        )
        .await
    }

    /// A provider and their availability (`None` when either is missing).
    async fn provider_availability(
        &self,
        provider_id: &str,
        days: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<Option<(wire::Provider, wire::Availability)>, AdapterError> {
        let Some(provider) = self.provider(provider_id).await? else {
            return Ok(None);
        };
        Ok(self.availability(provider_id, days).await?.map(|a| (provider, a)))
    }

    /// Every patient in the waiting room, by visit id.
    async fn waiting_room(&self) -> Result<HashMap<String, wire::WaitingRoomEntry>, AdapterError> {
        let mut out = HashMap::new();
        let mut token: Option<String> = None;
        let query = [("page_size", crate::config::MAX_PAGE_SIZE.to_string())];
        for _ in 0..MAX_LIST_PAGES {
            let value = self
                .client
                .get_page(&["healthcare", "waiting_room"], &query, token.as_deref())
                .await?
                .ok_or_else(|| unmappable("Zoom does not know the waiting room"))?;
            let room: wire::WaitingRoom = decode(value, "waiting room")?;
            for entry in room.patients {
                if !entry.visit_id.trim().is_empty() {
                    out.insert(entry.visit_id.clone(), entry);
                }
            }
            match next_token(&room.next_page_token, token.as_deref())? {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok(out)
    }

    /// The account's providers by Zoom user id, from the cache while it is fresh. A failed reload
    /// keeps the stale list; with nothing cached the failure is returned.
    async fn providers_by_user(&self) -> Result<Arc<HashMap<String, wire::Provider>>, AdapterError> {
        let mut cache = self.providers.lock().await;
        if let Some(c) = cache.as_ref()
            && Instant::now() < c.expires
        {
            return Ok(c.by_user.clone());
        }
        match self.load_providers().await {
            Ok(map) => {
                let map = Arc::new(map);
                *cache = Some(ProviderCache {
                    by_user: map.clone(),
                    expires: Instant::now() + PROVIDER_REFRESH,
                });
                Ok(map)
            }
            Err(error) => match cache.as_mut() {
                Some(stale) => {
                    tracing::warn!(%error, "listing Zoom providers failed; using the cached list");
                    stale.expires = Instant::now() + Duration::from_secs(60);
                    Ok(stale.by_user.clone())
                }
                None => Err(error),
            },
        }
    }

    async fn load_providers(&self) -> Result<HashMap<String, wire::Provider>, AdapterError> {
        let mut out = HashMap::new();
        let mut token: Option<String> = None;
        let query = [("page_size", crate::config::MAX_PAGE_SIZE.to_string())];
        for _ in 0..MAX_LIST_PAGES {
            let value = self
                .client
                .get_page(Stream::Providers.path(), &query, token.as_deref())
                .await?
                .ok_or_else(|| unmappable("Zoom does not know the provider list"))?;
            let list: wire::ProviderList = decode(value, "provider list")?;
            for provider in list.providers {
                if !provider.user_id.trim().is_empty() {
                    out.insert(provider.user_id.clone(), provider);
                }
            }
            match next_token(&list.next_page_token, token.as_deref())? {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok(out)
    }

    // ---- mapping ---------------------------------------------------------------------------

    /// Maps notes, with their owners' providers and resolved EHR references.
    async fn map_notes(
        &self,
        notes: Vec<wire::ClinicalNote>,
        patients: &[String],
    ) -> Result<Vec<Resource>, AdapterError> {
        // A note's author is its EHR provider; only notes without one need their owner.
        let needs_owner = notes
            .iter()
            .any(|n| n.ehr_context.as_ref().is_none_or(|c| c.provider_id.trim().is_empty()));
        let owners = if needs_owner {
            match self.providers_by_user().await {
                Ok(map) => map,
                Err(error) => {
                    // The author stays a logical reference by Zoom user id.
                    tracing::warn!(%error, "Zoom providers could not be listed; note owners stay logical");
                    Arc::new(HashMap::new())
                }
            }
        } else {
            Arc::new(HashMap::new())
        };
        let references = notes
            .iter()
            .flat_map(|n| map::ehr_references(n, &self.ehr_source))
            .collect();
        let ctx = self.ctx(references, patients).await;
        notes
            .iter()
            .map(|n| {
                let owner = owners.get(n.note_owner_user_id.trim());
                map::clinical_note_with_owner(n, owner, &ctx)
                    .map(|d| Resource::DocumentReference(Box::new(d)))
                    .map_err(mapping("clinical note"))
            })
            .collect()
    }

    async fn visits_ctx(&self, visits: &[wire::Visit], patients: &[String]) -> ZoomCtx {
        let references = visits
            .iter()
            .flat_map(|v| map::visit_ehr_references(v, &self.ehr_source))
            .collect();
        self.ctx(references, patients).await
    }

    async fn map_appointments(
        &self,
        visits: &[wire::Visit],
        patients: &[String],
    ) -> Result<Vec<Resource>, AdapterError> {
        let ctx = self.visits_ctx(visits, patients).await;
        visits
            .iter()
            .map(|v| {
                map::visit_appointment(v, &ctx)
                    .map(|a| Resource::Appointment(Box::new(a)))
                    .map_err(mapping("visit"))
            })
            .collect()
    }

    /// The Encounters of the visits that started. The waiting room is only read when a visit may
    /// be in it without saying when the patient joined.
    async fn map_encounters(&self, visits: &[wire::Visit]) -> Result<Vec<Resource>, AdapterError> {
        let needs_room = visits.iter().any(|v| {
            matches!(
                VisitStatus::from_wire(&v.status),
                Some(VisitStatus::Scheduled | VisitStatus::Waiting)
            ) && v.patient_joined_at.trim().is_empty()
        });
        let room = if needs_room {
            self.waiting_room().await?
        } else {
            HashMap::new()
        };
        let ctx = self.visits_ctx(visits, &[]).await;
        let mut out = Vec::new();
        for v in visits {
            let entry = room.get(v.id.trim());
            if let Some(e) = map::visit_encounter(v, entry, &ctx).map_err(mapping("visit"))? {
                out.push(Resource::Encounter(Box::new(e)));
            }
        }
        Ok(out)
    }

    async fn map_patients(&self, patients: &[wire::Patient]) -> Result<Vec<Resource>, AdapterError> {
        let references = patients
            .iter()
            .flat_map(|p| map::patient_ehr_references(p, &self.ehr_source))
            .collect();
        let ctx = self.ctx(references, &[]).await;
        patients
            .iter()
            .map(|p| {
                map::patient(p, &ctx)
                    .map(|p| Resource::Patient(Box::new(p)))
                    .map_err(mapping("patient"))
            })
            .collect()
    }

    async fn plain_ctx(&self) -> ZoomCtx {
        self.ctx(Vec::new(), &[]).await
    }

    // ---- reads -----------------------------------------------------------------------------

    /// Reads one resource by its parsed id; `NotFound` when Zoom has no such object.
    async fn read_id(&self, id: &ZoomId) -> Result<Resource, AdapterError> {
        let not_found = || AdapterError::NotFound {
            resource_type: id.resource_type(),
            id: id.native(),
        };
        match id {
            ZoomId::Note(note_id) => {
                let note = self.note(note_id).await?.ok_or_else(not_found)?;
                self.map_notes(vec![note], &[]).await?.pop().ok_or_else(not_found)
            }
            ZoomId::Appointment(visit_id) => {
                let visit = self.visit(visit_id).await?.ok_or_else(not_found)?;
                self.map_appointments(&[visit], &[]).await?.pop().ok_or_else(not_found)
            }
            ZoomId::Encounter(visit_id) => {
                let visit = self.visit(visit_id).await?.ok_or_else(not_found)?;
                self.map_encounters(&[visit]).await?.pop().ok_or_else(not_found)
            }
            ZoomId::Patient(patient_id) => {
                let patient = self.patient(patient_id).await?.ok_or_else(not_found)?;
                self.map_patients(&[patient]).await?.pop().ok_or_else(not_found)
            }
            ZoomId::Practitioner(provider_id) => {
                let provider = self.provider(provider_id).await?.ok_or_else(not_found)?;
                let ctx = self.plain_ctx().await;
                let mapped = map::provider(&provider, &ctx).map_err(mapping("provider"))?;
                Ok(Resource::Practitioner(Box::new(mapped)))
            }
            ZoomId::Schedule(provider_id) => {
                let (provider, availability) = self
                    .provider_availability(provider_id, None)
                    .await?
                    .ok_or_else(not_found)?;
                let ctx = self.plain_ctx().await;
                let mapped = map::schedule(&provider, &availability, &ctx).map_err(mapping("availability"))?;
                Ok(Resource::Schedule(Box::new(mapped)))
            }
            ZoomId::Slot { provider, start } => {
                // The slot's UTC day, a day wider each way: the availability's days are local.
                let day = chrono::DateTime::from_timestamp(*start, 0)
                    .ok_or_else(not_found)?
                    .date_naive();
                let days = (day.pred_opt().unwrap_or(day), day.succ_opt().unwrap_or(day));
                let (p, availability) = self
                    .provider_availability(provider, Some(days))
                    .await?
                    .ok_or_else(not_found)?;
                let ctx = self.plain_ctx().await;
                let wanted = id.fhir_id().map_err(|_| not_found())?;
                let slots = map::slots(&p, &availability, &ctx).map_err(mapping("availability"))?;
                slots
                    .into_iter()
                    .find(|s| s.id.as_ref().and_then(|i| i.value.as_deref()) == Some(wanted.as_str()))
                    .map(|s| Resource::Slot(Box::new(s)))
                    .ok_or_else(not_found)
            }
        }
    }

    /// `_id` searches: each id read; unknown ids are no match.
    async fn search_ids(&self, ids: Vec<ZoomId>) -> Result<Page, AdapterError> {
        let found: Vec<Option<Resource>> = stream::iter(ids)
            .map(|id| async move {
                match self.read_id(&id).await {
                    Ok(resource) => Ok(Some(resource)),
                    Err(AdapterError::NotFound { .. } | AdapterError::Gone { .. }) => Ok(None),
                    Err(error) => Err(error),
                }
            })
            .buffered(CONCURRENT_CALLS)
            .try_collect()
            .await?;
        Ok(Page {
            resources: found.into_iter().flatten().collect(),
            next: None,
        })
    }

    /// The slots of `providers` on `days` (providers Zoom does not know have none).
    async fn provider_slots(
        &self,
        providers: Vec<wire::Provider>,
        days: DayRange,
    ) -> Result<Vec<Resource>, AdapterError> {
        let ctx = self.plain_ctx().await;
        let per_provider: Vec<Vec<Resource>> = stream::iter(providers)
            .map(|provider| {
                let ctx = &ctx;
                async move {
                    let mut out = Vec::new();
                    for chunk in days.chunks() {
                        let Some(availability) = self.availability(provider.id.trim(), Some(chunk)).await? else {
                            return Ok(Vec::new());
                        };
                        let slots = map::slots(&provider, &availability, ctx).map_err(mapping("availability"))?;
                        out.extend(slots.into_iter().map(|s| Resource::Slot(Box::new(s))));
                    }
                    Ok::<_, AdapterError>(out)
                }
            })
            .buffered(CONCURRENT_CALLS)
            .try_collect()
            .await?;
        Ok(per_provider.into_iter().flatten().collect())
    }

    async fn provider_schedules(&self, providers: Vec<wire::Provider>) -> Result<Vec<Resource>, AdapterError> {
        let ctx = self.plain_ctx().await;
        let schedules: Vec<Option<Resource>> = stream::iter(providers)
            .map(|provider| {
                let ctx = &ctx;
                async move {
                    let Some(availability) = self.availability(provider.id.trim(), None).await? else {
                        return Ok(None);
                    };
                    let mapped = map::schedule(&provider, &availability, ctx).map_err(mapping("availability"))?;
                    Ok::<_, AdapterError>(Some(Resource::Schedule(Box::new(mapped))))
                }
            })
            .buffered(CONCURRENT_CALLS)
            .try_collect()
            .await?;
        Ok(schedules.into_iter().flatten().collect())
    }

    /// Walks `q` from `cursor`: one Zoom page, or a few when they map to nothing.
    async fn walk(&self, resource_type: ResourceType, q: &ListQuery, page: PageRequest) -> Result<Page, AdapterError> {
        let mut token = match &page.cursor {
            Some(continuation) => Some(Cursor::decode(continuation, q.stream)?.token),
            None => None,
        };
        let wanted = match page.size {
            0 => self.page_size,
            n => n.min(self.page_size),
        };
        let size = match resource_type {
            ResourceType::Schedule => wanted.min(SCHEDULE_PAGE),
            ResourceType::Slot => wanted.min(SLOT_PAGE),
            ResourceType::Patient => wanted.min(PATIENT_PAGE),
            _ => wanted,
        };
        let mut query = q.params.clone();
        query.push(("page_size", size.to_string()));
        if let Some(provider) = &q.owner_provider {
            // Notes of a Zoom provider: its Zoom user owns them.
            match self.provider(provider).await? {
                Some(p) if !p.user_id.trim().is_empty() => {
                    query.push(("note_owner_user_id", p.user_id.trim().to_owned()))
                }
                _ => return Ok(Page::default()),
            }
        }
        let mut resources = Vec::new();
        for call in 1..=MAX_CALLS_PER_SEARCH {
            let value = match self.client.get_page(q.stream.path(), &query, token.as_deref()).await {
                Ok(Some(value)) => value,
                Ok(None) => return Err(unmappable("Zoom does not know a list endpoint")),
                // The owner named by `author` is no Zoom user (any more): no notes.
                Err(AdapterError::InvalidRequest { .. }) if q.owner_provider.is_some() && token.is_none() => {
                    return Ok(Page::default());
                }
                Err(error) => return Err(error),
            };
            let next = self.map_list(resource_type, q, value, &mut resources).await?;
            match next_token(&next, token.as_deref())? {
                None => return Ok(Page { resources, next: None }),
                Some(next) if !resources.is_empty() || call == MAX_CALLS_PER_SEARCH => {
                    let cursor = Cursor {
                        stream: q.stream,
                        token: next,
                    };
                    return Ok(Page {
                        resources,
                        next: Some(cursor.encode()),
                    });
                }
                Some(next) => token = Some(next),
            }
        }
        Ok(Page { resources, next: None })
    }

    /// Maps one Zoom page of `q`'s list into `out`; returns the page's `next_page_token`.
    async fn map_list(
        &self,
        resource_type: ResourceType,
        q: &ListQuery,
        value: Value,
        out: &mut Vec<Resource>,
    ) -> Result<String, AdapterError> {
        match (q.stream, resource_type) {
            (Stream::Notes, _) => {
                let mut list: wire::NoteList = decode(value, "clinical note list")?;
                if let Some(patients) = &q.subjects {
                    list.notes
                        .retain(|n| map::note_patient(n, &self.ehr_source).is_some_and(|p| patients.contains(&p)));
                }
                out.extend(
                    self.map_notes(list.notes, q.subjects.as_deref().unwrap_or_default())
                        .await?,
                );
                Ok(list.next_page_token)
            }
            (Stream::Visits, ResourceType::Encounter) => {
                let list: wire::VisitList = decode(value, "visit list")?;
                out.extend(self.map_encounters(&list.visits).await?);
                Ok(list.next_page_token)
            }
            (Stream::Visits, _) => {
                let mut list: wire::VisitList = decode(value, "visit list")?;
                if let Some(patients) = &q.subjects {
                    list.visits.retain(|v| {
                        map::visit_patients(v, &self.ehr_source)
                            .iter()
                            .any(|p| patients.contains(p))
                    });
                }
                out.extend(
                    self.map_appointments(&list.visits, q.subjects.as_deref().unwrap_or_default())
                        .await?,
                );
                Ok(list.next_page_token)
            }
            (Stream::Providers, ResourceType::Schedule) => {
                let list: wire::ProviderList = decode(value, "provider list")?;
                out.extend(self.provider_schedules(list.providers).await?);
                Ok(list.next_page_token)
            }
            (Stream::Providers, ResourceType::Slot) => {
                let list: wire::ProviderList = decode(value, "provider list")?;
                let days = q.days.ok_or_else(|| unmappable("a slot search without days"))?;
                out.extend(self.provider_slots(list.providers, days).await?);
                Ok(list.next_page_token)
            }
            (Stream::Providers, _) => {
                let list: wire::ProviderList = decode(value, "provider list")?;
                let ctx = self.plain_ctx().await;
                for p in &list.providers {
                    let mapped = map::provider(p, &ctx).map_err(mapping("provider"))?;
                    out.push(Resource::Practitioner(Box::new(mapped)));
                }
                Ok(list.next_page_token)
            }
        }
    }

    // ---- writes ----------------------------------------------------------------------------

    async fn update_note(&self, note_id: &str, native: &str, wanted: Resource) -> Result<Resource, AdapterError> {
        let not_found = || AdapterError::NotFound {
            resource_type: ResourceType::DocumentReference,
            id: native.to_owned(),
        };
        let Resource::DocumentReference(wanted) = wanted else {
            return Err(AdapterError::InvalidRequest {
                detail: "the resource is not a DocumentReference".into(),
            });
        };
        let note = self.note(note_id).await?.ok_or_else(not_found)?;
        let current = match self.map_notes(vec![note], &[]).await?.pop() {
            Some(Resource::DocumentReference(d)) => d,
            _ => return Err(not_found()),
        };
        let patch = map::note_patch(&current, &wanted).map_err(mapping("clinical note"))?;
        if patch.is_empty() {
            return Ok(Resource::DocumentReference(current));
        }
        let body = serde_json::to_value(&patch).map_err(|_| unmappable("a note change could not be written"))?;
        if self
            .client
            .write(Method::PATCH, &["clinical_notes", "notes", note_id], Some(&body))
            .await?
            == Reply::NotFound
        {
            return Err(not_found());
        }
        self.read_id(&ZoomId::Note(note_id.to_owned())).await
    }

    async fn update_visit(&self, visit_id: &str, wanted: Resource) -> Result<Resource, AdapterError> {
        let not_found = || AdapterError::NotFound {
            resource_type: ResourceType::Appointment,
            id: visit_id.to_owned(),
        };
        let Resource::Appointment(wanted) = wanted else {
            return Err(AdapterError::InvalidRequest {
                detail: "the resource is not an Appointment".into(),
            });
        };
        let visit = self.visit(visit_id).await?.ok_or_else(not_found)?;
        let ctx = self.visits_ctx(std::slice::from_ref(&visit), &[]).await;
        let reply = match map::visit_patch(&visit, &wanted, &ctx).map_err(mapping("visit"))? {
            VisitChange::None => {
                let mapped = map::visit_appointment(&visit, &ctx).map_err(mapping("visit"))?;
                return Ok(Resource::Appointment(Box::new(mapped)));
            }
            VisitChange::Patch(patch) => {
                let body =
                    serde_json::to_value(&patch).map_err(|_| unmappable("a visit change could not be written"))?;
                self.client
                    .write(Method::PATCH, &["healthcare", "visits", visit_id], Some(&body))
                    .await?
            }
            VisitChange::Cancel => {
                self.client
                    .write(Method::DELETE, &["healthcare", "visits", visit_id], None)
                    .await?
            }
        };
        if reply == Reply::NotFound {
            return Err(not_found());
        }
        self.read_id(&ZoomId::Appointment(visit_id.to_owned())).await
    }

    async fn create_visit(&self, resource: Resource) -> Result<Resource, AdapterError> {
        let Resource::Appointment(appointment) = resource else {
            return Err(AdapterError::Unsupported {
                what: "creating anything but an Appointment at Zoom".into(),
            });
        };
        let ctx = self.plain_ctx().await;
        let body = map::create_visit(&appointment, &ctx).map_err(mapping("visit"))?;
        let body = serde_json::to_value(&body).map_err(|_| unmappable("a new visit could not be written"))?;
        let visit: wire::Visit = match self
            .client
            .write(Method::POST, &["healthcare", "visits"], Some(&body))
            .await?
        {
            Reply::Json(value) => decode(value, "visit")?,
            Reply::NoContent => return Err(unmappable("Zoom created a visit without answering it")),
            Reply::NotFound => {
                return Err(AdapterError::Unprocessable {
                    element: "participant".into(),
                    detail: "Zoom does not know the visit's patient or provider".into(),
                });
            }
        };
        self.map_appointments(std::slice::from_ref(&visit), &[])
            .await?
            .pop()
            .ok_or_else(|| unmappable("Zoom answered a new visit that cannot be mapped"))
    }

    /// `$admit`: admits the visit's patient from the waiting room; answers the updated
    /// Appointment.
    async fn admit(&self, visit_id: &str) -> Result<Resource, AdapterError> {
        let not_found = || AdapterError::NotFound {
            resource_type: ResourceType::Appointment,
            id: visit_id.to_owned(),
        };
        let visit = self.visit(visit_id).await?.ok_or_else(not_found)?;
        if VisitStatus::from_wire(&visit.status) != Some(VisitStatus::Waiting) {
            return Err(AdapterError::Unprocessable {
                element: "status".into(),
                detail: "only a patient in the waiting room (status arrived) can be admitted".into(),
            });
        }
        let patient = visit.patient_id.trim();
        if patient.is_empty() {
            return Err(unmappable("a waiting Zoom visit names no patient"));
        }
        let body = serde_json::json!({ "visit_id": visit_id });
        let path = ["healthcare", "waiting_room", patient, "admit"];
        match self.client.write(Method::POST, &path, Some(&body)).await? {
            Reply::NotFound => Err(not_found()),
            Reply::Json(value) if value.get("id").and_then(Value::as_str) == Some(visit_id) => {
                let visit: wire::Visit = decode(value, "visit")?;
                self.map_appointments(std::slice::from_ref(&visit), &[])
                    .await?
                    .pop()
                    .ok_or_else(not_found)
            }
            Reply::Json(_) | Reply::NoContent => self.read_id(&ZoomId::Appointment(visit_id.to_owned())).await,
        }
    }

    /// `$invite`: sends the visit invitation to the patient by the channels asked for (`channel`
    /// = `email` | `sms`, repeatable; optional `message`). Answers a `Parameters` saying what
    /// was sent.
    async fn invite(&self, visit_id: &str, input: Option<Resource>) -> Result<Resource, AdapterError> {
        let not_found = || AdapterError::NotFound {
            resource_type: ResourceType::Appointment,
            id: visit_id.to_owned(),
        };
        let (channels, message) = invite_input(input)?;
        let visit = self.visit(visit_id).await?.ok_or_else(not_found)?;
        if VisitStatus::from_wire(&visit.status).is_none_or(VisitStatus::is_final) {
            return Err(AdapterError::Unprocessable {
                element: "status".into(),
                detail: "a visit that is over cannot be invited to".into(),
            });
        }
        let patient = visit.patient_id.trim();
        if patient.is_empty() {
            return Err(unmappable("a Zoom visit names no patient"));
        }
        let invite = wire::Invite {
            visit_id: Some(visit_id.to_owned()),
            channels: channels.clone(),
            message,
        };
        let body = serde_json::to_value(&invite).map_err(|_| unmappable("an invitation could not be written"))?;
        let path = ["healthcare", "patients", patient, "invite"];
        let answer = match self.client.write(Method::POST, &path, Some(&body)).await? {
            Reply::NotFound => return Err(not_found()),
            Reply::Json(value) => value,
            Reply::NoContent => Value::Null,
        };
        invite_outcome(visit_id, &channels, &answer, self.default_tz)
    }
}

#[async_trait::async_trait]
impl Adapter for ZoomAdapter {
    fn source(&self) -> SourceName {
        ids::SOURCE
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn read(&self, resource_type: ResourceType, native_id: &str) -> Result<Resource, AdapterError> {
        if !self.capabilities.supports(resource_type, Interaction::Read) {
            return Err(AdapterError::Unsupported {
                what: format!("{resource_type} at Zoom"),
            });
        }
        let id = ZoomId::parse(resource_type, native_id).ok_or_else(|| AdapterError::NotFound {
            resource_type,
            id: native_id.to_owned(),
        })?;
        self.read_id(&id).await
    }

    async fn search(&self, request: &SearchRequest, page: PageRequest) -> Result<Page, AdapterError> {
        let resource_type = request.resource_type.ok_or_else(|| AdapterError::Unsupported {
            what: "searching across types at Zoom".into(),
        })?;
        if !self.capabilities.supports(resource_type, Interaction::SearchType) {
            return Err(AdapterError::Unsupported {
                what: format!("searching {resource_type} at Zoom"),
            });
        }
        let ctx = PlanCtx {
            today: Utc::now().date_naive(),
        };
        let expired = || AdapterError::ContinuationExpired { vendor: VENDOR };
        match plan::plan(resource_type, request, ctx) {
            Plan::Nothing => Ok(Page::default()),
            Plan::Ids(_) | Plan::Slots { .. } if page.cursor.is_some() => Err(expired()),
            Plan::Ids(ids) => self.search_ids(ids).await,
            Plan::Slots { providers, days } => {
                let found: Vec<Option<wire::Provider>> = stream::iter(providers)
                    .map(|p| async move { self.provider(&p).await })
                    .buffered(CONCURRENT_CALLS)
                    .try_collect()
                    .await?;
                let resources = self.provider_slots(found.into_iter().flatten().collect(), days).await?;
                Ok(Page { resources, next: None })
            }
            Plan::List(q) => self.walk(resource_type, &q, page).await,
        }
    }

    async fn check(&self) -> Result<(), AdapterError> {
        let query = [("page_size", "1".to_owned())];
        self.client
            .get_page(Stream::Providers.path(), &query, None)
            .await?
            .map(|_| ())
            .ok_or_else(|| unmappable("Zoom does not know the provider list"))
    }

    async fn create(&self, resource: Resource) -> Result<Resource, AdapterError> {
        self.create_visit(resource).await
    }

    async fn update(
        &self,
        resource_type: ResourceType,
        native_id: &str,
        resource: Resource,
    ) -> Result<Resource, AdapterError> {
        if !self.capabilities.supports(resource_type, Interaction::Update) {
            return Err(AdapterError::Unsupported {
                what: format!("updating {resource_type} at Zoom"),
            });
        }
        let not_found = || AdapterError::NotFound {
            resource_type,
            id: native_id.to_owned(),
        };
        match ZoomId::parse(resource_type, native_id).ok_or_else(not_found)? {
            ZoomId::Note(note_id) => self.update_note(&note_id, native_id, resource).await,
            ZoomId::Appointment(visit_id) => self.update_visit(&visit_id, resource).await,
            _ => Err(AdapterError::Unsupported {
                what: format!("updating {resource_type} at Zoom"),
            }),
        }
    }

    async fn operation(
        &self,
        resource_type: ResourceType,
        native_id: &str,
        name: &str,
        input: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        let declared = self
            .capabilities
            .resource(resource_type)
            .is_some_and(|r| r.operations.iter().any(|o| o.name == name));
        if !declared {
            return Err(AdapterError::Unsupported {
                what: format!("${name} on {resource_type} at Zoom"),
            });
        }
        let Some(ZoomId::Appointment(visit_id)) = ZoomId::parse(resource_type, native_id) else {
            return Err(AdapterError::NotFound {
                resource_type,
                id: native_id.to_owned(),
            });
        };
        match name {
            OPERATION_ADMIT => self.admit(&visit_id).await,
            OPERATION_INVITE => self.invite(&visit_id, input).await,
            _ => Err(AdapterError::Unsupported {
                what: format!("${name} at Zoom"),
            }),
        }
    }

    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        Some(&self.webhooks)
    }

    fn health(&self) -> Option<VendorHealth> {
        Some(self.client.health())
    }
}

/// The channels and message of an `$invite` input.
fn invite_input(input: Option<Resource>) -> Result<(Vec<String>, Option<String>), AdapterError> {
    let invalid = |detail: &str| AdapterError::InvalidRequest { detail: detail.into() };
    let parameters = match input {
        Some(Resource::Parameters(p)) => p.parameter,
        Some(_) => return Err(invalid("$invite takes a Parameters resource")),
        None => Vec::new(),
    };
    let mut channels: Vec<String> = Vec::new();
    let mut message = None;
    for p in parameters {
        let name = p.name.value.as_deref().unwrap_or_default();
        let text = match &p.value {
            Some(ParametersParameterValue::Code(c)) => c.value.clone(),
            Some(ParametersParameterValue::String(s)) => s.value.clone(),
            _ => None,
        };
        match name {
            "channel" => {
                let channel = text.ok_or_else(|| invalid("channel must be a code: email or sms"))?;
                if !matches!(channel.as_str(), "email" | "sms") {
                    return Err(invalid("channel must be email or sms"));
                }
                if !channels.contains(&channel) {
                    channels.push(channel);
                }
            }
            "message" => {
                let text = text.ok_or_else(|| invalid("message must be a string"))?;
                if message.replace(text).is_some() {
                    return Err(invalid("message may be given once"));
                }
            }
            _ => return Err(invalid("$invite takes only channel and message parameters")),
        }
    }
    if channels.is_empty() {
        return Err(invalid("$invite needs at least one channel: email or sms"));
    }
    Ok((channels, message))
}

/// The `Parameters` answered by `$invite`: the invitation's id and status, the channels, when it
/// was sent and the Appointment. Never the message or a join URL.
fn invite_outcome(visit_id: &str, channels: &[String], answer: &Value, tz: Tz) -> Result<Resource, AdapterError> {
    let text = |key: &str| {
        answer
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let param = |name: &str, value: ParametersParameterValue| ParametersParameter {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    };
    let mut out = Vec::new();
    if let Some(id) = text("id") {
        out.push(param("invitation", ParametersParameterValue::String(id.into())));
    }
    let status = text("status").unwrap_or("sent");
    if !status
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(unmappable("Zoom answered an invitation with an unreadable status"));
    }
    out.push(param("status", ParametersParameterValue::Code(status.into())));
    for channel in channels {
        out.push(param(
            "channel",
            ParametersParameterValue::Code(channel.as_str().into()),
        ));
    }
    if let Some(sent) = text("sent_at").and_then(|s| map::time::parse_timestamp(s, tz)) {
        out.push(param(
            "sent",
            ParametersParameterValue::DateTime(map::time::fhir_instant(&sent).into()),
        ));
    }
    let appointment =
        ids::fhir_id(&ids::appointment(visit_id)).map_err(|_| unmappable("a visit id cannot be a FHIR id"))?;
    out.push(param(
        "appointment",
        ParametersParameterValue::Reference(Box::new(Reference {
            reference: Some(format!("Appointment/{appointment}").into()),
            ..Default::default()
        })),
    ));
    Ok(Resource::Parameters(Box::new(Parameters {
        parameter: out,
        ..Default::default()
    })))
}

/// A page's `next_page_token`: `None` at the end; the same token again is a vendor loop.
fn next_token(next: &str, current: Option<&str>) -> Result<Option<String>, AdapterError> {
    let next = next.trim();
    if next.is_empty() {
        return Ok(None);
    }
    if Some(next) == current {
        return Err(unmappable("a Zoom page names itself as the next page"));
    }
    Ok(Some(next.to_owned()))
}

/// What the adapter serves.
fn capabilities() -> Capabilities {
    use Interaction::{Create, Patch, Read, SearchType, Update};
    let types = [
        (
            ResourceType::DocumentReference,
            vec![Read, SearchType, Update, Patch],
            vec![systems::PROFILE_US_CORE_DOCUMENTREFERENCE],
            vec![],
        ),
        (
            ResourceType::Appointment,
            vec![Read, SearchType, Create, Update, Patch],
            vec![],
            vec![
                OperationDef {
                    name: OPERATION_ADMIT,
                    description: "Admit the patient from the Zoom waiting room into the visit",
                    affects_state: true,
                    target: OperationTarget::Own,
                    asynchronous: false,
                    parameters: ADMIT_PARAMS,
                    performer: Performer::Provider,
                },
                OperationDef {
                    name: OPERATION_INVITE,
                    description: "Send the patient the visit invitation by email and/or SMS (parameter `channel`: email | sms, repeatable; optional `message`)",
                    affects_state: true,
                    target: OperationTarget::Own,
                    asynchronous: false,
                    parameters: INVITE_PARAMS,
                    performer: Performer::Provider,
                },
            ],
        ),
        (ResourceType::Encounter, vec![Read, SearchType], vec![], vec![]),
        // Read only at the gateway: Zoom has no patient list, so a Patient search has to walk the
        // visits and check every patient (two calls each), which exhausts Zoom's rate limits on the
        // first unfiltered search. Zoom patients are reached by id, from their visits'
        // participants, and through their `seealso` links from the EHR's patients.
        (
            ResourceType::Patient,
            vec![Read],
            vec![systems::PROFILE_US_CORE_PATIENT],
            vec![],
        ),
        (
            ResourceType::Practitioner,
            vec![Read, SearchType],
            vec![systems::PROFILE_US_CORE_PRACTITIONER],
            vec![],
        ),
        (ResourceType::Schedule, vec![Read, SearchType], vec![], vec![]),
        (ResourceType::Slot, vec![Read, SearchType], vec![], vec![]),
    ];
    Capabilities {
        resources: types
            .into_iter()
            .map(
                |(resource_type, interactions, profiles, operations)| ResourceCapability {
                    resource_type,
                    interactions,
                    pushdown: plan::pushdown(resource_type),
                    profiles,
                    operations,
                    // A patient may book, reschedule or cancel their own visit; completing a
                    // clinical note (or any other write) is the provider's.
                    patient_writes: if resource_type == ResourceType::Appointment {
                        vec![Create, Update, Patch]
                    } else {
                        vec![]
                    },
                },
            )
            .collect(),
    }
}

/// Deserializes one Zoom object; the error names the kind of object, never its content.
fn decode<T: DeserializeOwned>(value: Value, kind: &'static str) -> Result<T, AdapterError> {
    serde_json::from_value(value).map_err(|_| {
        tracing::warn!(kind, "a Zoom object does not have the documented shape");
        unmappable(format!("a Zoom {kind} could not be read"))
    })
}

/// A mapping failure: a write Zoom cannot store is [`AdapterError::Unprocessable`] naming the
/// element; anything Zoom sent that cannot be mapped is unmappable, naming the kind of object,
/// never its content.
fn mapping(kind: &'static str) -> impl Fn(MapError) -> AdapterError {
    move |error| match error {
        MapError::Unprocessable { element, reason } => AdapterError::Unprocessable {
            element,
            detail: reason.to_owned(),
        },
        other => {
            tracing::warn!(kind, error = %other, "a Zoom object could not be mapped to FHIR");
            unmappable(format!("a Zoom {kind} could not be mapped"))
        }
    }
}
