//! [`DrChronoAdapter`]: the [`Adapter`] over one DrChrono account.
//!
//! Reads go to `/api/{endpoint}/{id}`; searches are planned by [`plan`] (what DrChrono can filter
//! on is pushed down, the gateway filters the rest) and walked with [`cursor::Cursor`]
//! continuations. Every vendor object goes through [`crate::wire`] and [`crate::map`]; one that
//! does not is an [`AdapterError::Unmappable`], never silently dropped.

mod cursor;
mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter::vault::TokenVault;
use adapter::{
    Adapter, AdapterError, Capabilities, Continuation, Interaction, MapCtx, Page, PageRequest, Resource,
    ResourceCapability, ResourceType, SearchRequest, SourceName, VendorHealth, WebhookReceiver, systems,
};
use chrono::Utc;
use chrono_tz::Tz;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use self::cursor::{Cursor, Stream};
use self::plan::{ListQuery, Plan, PlanCtx, numeric};
use crate::client::{DrChronoClient, VENDOR, unmappable};
use crate::config::{ConfigError, DrChronoConfig};
use crate::map::{self, DrCtx, ids};
use crate::webhook::DrChronoWebhooks;
use crate::wire;

/// Vendor calls one `search` call makes at most while it finds only empty pages.
const MAX_CALLS_PER_SEARCH: usize = 6;

/// Concurrent vendor calls for the records of one page (`_id` reads, notes' appointments).
const CONCURRENT_READS: usize = 4;

/// Longest list of doctors walked for their time zones (pages of 250).
const MAX_DOCTOR_PAGES: usize = 40;

/// Pages of 50 verbose appointments listed for one patient's notes before the rest are read one by
/// one.
const MAX_PATIENT_APPOINTMENT_PAGES: usize = 4;

/// How soon a failed reload of the doctors' time zones is tried again while stale zones are used.
const ZONE_RETRY: Duration = Duration::from_secs(60);

/// The DrChrono source.
///
/// Built with [`DrChronoAdapter::new`], which validates the configuration and makes no request:
/// the access token is fetched on the first call (and [`Adapter::check`] is the start-up probe).
pub struct DrChronoAdapter {
    client: DrChronoClient,
    account: String,
    default_tz: Tz,
    page_size: u32,
    zone_refresh: Duration,
    capabilities: Capabilities,
    zones: Mutex<Option<ZoneCache>>,
    /// Present when the configuration has a webhook secret token.
    webhooks: Option<DrChronoWebhooks>,
}

impl std::fmt::Debug for DrChronoAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrChronoAdapter")
            .field("account", &self.account)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The doctors' time zones (`/api/doctors` `timezone`), reloaded after `expires`.
struct ZoneCache {
    zones: Arc<HashMap<i64, Tz>>,
    expires: Instant,
}

impl DrChronoAdapter {
    /// Validates `config` and builds the adapter. No request is made here.
    pub fn new(config: DrChronoConfig) -> Result<Self, ConfigError> {
        let client = DrChronoClient::new(&config)?;
        let webhooks = config
            .webhook_secret
            .clone()
            .map(|secret| DrChronoWebhooks::new(secret, config.account.clone()));
        Ok(Self {
            client,
            account: config.account,
            default_tz: config.default_timezone,
            page_size: config.page_size,
            zone_refresh: config.doctor_refresh_interval,
            capabilities: capabilities(),
            zones: Mutex::new(None),
            webhooks,
        })
    }

    /// Keeps the account's tokens in `vault`. DrChrono rotates the refresh token on each refresh,
    /// so a deployment that restarts (or runs several replicas) keeps the newest one there; see
    /// [`DrChronoClient::with_token_vault`].
    pub fn with_token_vault(mut self, vault: Arc<dyn TokenVault>) -> Self {
        self.client = self.client.with_token_vault(vault);
        self
    }

    /// Counts DrChrono's hourly budget (per account) in `shared` too: replicas sharing the account
    /// together never exceed it.
    pub fn with_shared_budgets(mut self, shared: Arc<dyn adapter::resilience::SharedBudgets>) -> Self {
        let account = self.account.clone();
        self.client = self.client.with_shared_budgets(shared, &account);
        self
    }

    /// The mapping context: now, the fallback zone, and every doctor's zone.
    async fn ctx(&self) -> Result<DrCtx, AdapterError> {
        let zones = self.doctor_zones().await?;
        Ok(DrCtx {
            base: MapCtx::new(Utc::now(), self.default_tz),
            doctor_tz: (*zones).clone(),
        })
    }

    /// The doctors' zones, from the cache while it is fresh. A failed reload keeps serving the
    /// stale zones (and retries a minute later); with nothing cached the failure is returned.
    async fn doctor_zones(&self) -> Result<Arc<HashMap<i64, Tz>>, AdapterError> {
        let mut cache = self.zones.lock().await;
        if let Some(c) = cache.as_ref()
            && Instant::now() < c.expires
        {
            return Ok(c.zones.clone());
        }
        match self.load_doctor_zones().await {
            Ok(zones) => {
                let zones = Arc::new(zones);
                *cache = Some(ZoneCache {
                    zones: zones.clone(),
                    expires: Instant::now() + self.zone_refresh,
                });
                Ok(zones)
            }
            Err(error) => match cache.as_mut() {
                Some(stale) => {
                    tracing::warn!(%error, "reloading DrChrono doctors failed; using the cached time zones");
                    stale.expires = Instant::now() + ZONE_RETRY.min(self.zone_refresh);
                    Ok(stale.zones.clone())
                }
                None => Err(error),
            },
        }
    }

    async fn load_doctor_zones(&self) -> Result<HashMap<i64, Tz>, AdapterError> {
        let mut zones = HashMap::new();
        let mut url = format!("{}?page_size={}", Stream::Doctors.path(), crate::config::MAX_PAGE_SIZE);
        for _ in 0..MAX_DOCTOR_PAGES {
            let page = self.client.get_page(&url).await?;
            // A doctor record that cannot be read only loses its zone here (the default applies);
            // serving it as a Practitioner reports the problem.
            for value in page.results {
                if let Ok(doctor) = serde_json::from_value::<wire::Doctor>(value)
                    && let Some(tz) = map::doctor_timezone(&doctor)
                {
                    zones.insert(doctor.id, tz);
                }
            }
            match page.next {
                Some(next) => url = next,
                None => break,
            }
        }
        Ok(zones)
    }

    /// Every zone DrChrono timestamps of this account can be in.
    fn zone_list(&self, ctx: &DrCtx) -> Vec<Tz> {
        let mut zones: Vec<Tz> = ctx.doctor_tz.values().copied().collect();
        zones.push(self.default_tz);
        zones.sort_by_key(|tz| tz.name());
        zones.dedup();
        zones
    }

    /// Fetches the vendor record behind a native id; ids no DrChrono record can have are
    /// [`AdapterError::NotFound`] without a request, deleted records [`AdapterError::Gone`].
    async fn fetch_record(&self, resource_type: ResourceType, native: &str) -> Result<Record, AdapterError> {
        let not_found = || AdapterError::NotFound {
            resource_type,
            id: native.to_owned(),
        };
        let gone = || AdapterError::Gone {
            resource_type,
            id: native.to_owned(),
        };
        match resource_type {
            ResourceType::Patient => {
                let id = numeric(native).ok_or_else(not_found)?;
                let value = self.fetch(&format!("api/patients/{id}"), not_found).await?;
                Ok(Record::Patient(Box::new(decode(value, "patient")?)))
            }
            ResourceType::Practitioner => {
                let id = numeric(native).ok_or_else(not_found)?;
                let value = self.fetch(&format!("api/doctors/{id}"), not_found).await?;
                Ok(Record::Doctor(decode(value, "doctor")?))
            }
            ResourceType::Location => {
                let location = ids::parse_location(native).ok_or_else(not_found)?;
                let office_id = match location {
                    ids::LocationId::Office(id) | ids::LocationId::ExamRoom { office: id, .. } => id,
                };
                let value = self.fetch(&format!("api/offices/{office_id}"), not_found).await?;
                let office: wire::Office = decode(value, "office")?;
                match location {
                    ids::LocationId::Office(_) => Ok(Record::Office(office)),
                    ids::LocationId::ExamRoom { index, .. } => {
                        let room = office
                            .exam_rooms
                            .iter()
                            .find(|r| r.index == index)
                            .cloned()
                            .ok_or_else(not_found)?;
                        Ok(Record::ExamRoom(office, room))
                    }
                }
            }
            ResourceType::Appointment => {
                let path = object_path("api/appointments", native).ok_or_else(not_found)?;
                let value = self.fetch(&path, not_found).await?;
                let appointment: wire::Appointment = decode(value, "appointment")?;
                if appointment.deleted_flag {
                    return Err(gone());
                }
                Ok(Record::Appointment(Box::new(appointment)))
            }
            ResourceType::DocumentReference => match ids::parse_document(native).ok_or_else(not_found)? {
                ids::DocumentId::ClinicalNote(note_id) => {
                    let note = self.find_note(&note_id).await?.ok_or_else(not_found)?;
                    if note.archived {
                        return Err(gone());
                    }
                    let appointment = self.appointment_of_note(&note.appointment).await?;
                    Ok(Record::ClinicalNote(note, appointment.map(Box::new)))
                }
                ids::DocumentId::Document(id) => {
                    let value = self.fetch(&format!("api/documents/{id}"), not_found).await?;
                    let document: wire::Document = decode(value, "document")?;
                    if document.archived {
                        return Err(gone());
                    }
                    Ok(Record::Document(document))
                }
            },
            ResourceType::Encounter | ResourceType::Schedule | ResourceType::Slot => Err(AdapterError::Unsupported {
                what: format!("{resource_type} at DrChrono"),
            }),
        }
    }

    /// GETs one object; 404 becomes `missing()`.
    async fn fetch(&self, path: &str, missing: impl FnOnce() -> AdapterError) -> Result<Value, AdapterError> {
        self.client.get_json(path).await?.ok_or_else(missing)
    }

    /// The clinical note named `note-{key}`: `key` is the note's own id, or (for notes DrChrono
    /// sends without one) its appointment's id, found through the notes of that appointment's day.
    async fn find_note(&self, key: &str) -> Result<Option<wire::ClinicalNote>, AdapterError> {
        let Some(path) = object_path("api/clinical_notes", key) else {
            return Ok(None);
        };
        if let Some(value) = self.client.get_json(&format!("{path}?verbose=true")).await? {
            return decode(value, "clinical note").map(Some);
        }
        let Some(appointment_path) = object_path("api/appointments", key) else {
            return Ok(None);
        };
        let Some(value) = self.client.get_json(&appointment_path).await? else {
            return Ok(None);
        };
        let appointment: wire::Appointment = decode(value, "appointment")?;
        let (Some(day), Some(patient)) = (appointment.scheduled_time.get(..10), appointment.patient) else {
            return Ok(None);
        };
        let mut url = ListQuery::notes_of_day(day, patient);
        for _ in 0..MAX_DOCTOR_PAGES {
            let page = self.client.get_page(&url).await?;
            for value in page.results {
                let note: wire::ClinicalNote = decode(value, "clinical note")?;
                if note.appointment == key && note.id.is_none() {
                    return Ok(Some(note));
                }
            }
            match page.next {
                Some(next) => url = next,
                None => break,
            }
        }
        Ok(None)
    }

    /// The appointment a clinical note belongs to, by the note's `appointment` (`None` when
    /// DrChrono no longer has it), verbose: its `clinical_note` carries the note's lock state,
    /// update time and PDF.
    async fn appointment_of_note(&self, appointment: &str) -> Result<Option<wire::Appointment>, AdapterError> {
        let Some(path) = object_path("api/appointments", appointment) else {
            return Ok(None);
        };
        match self.client.get_json(&format!("{path}?verbose=true")).await? {
            Some(value) => decode(value, "appointment").map(Some),
            None => Ok(None),
        }
    }

    /// The appointments of `notes`, in order, verbose (see [`Self::appointment_of_note`]). A
    /// patient with two or more of these notes has their appointments listed (one call for up to 50),
    /// the rest — and any the list missed — are read one by one.
    async fn appointments_of_notes(
        &self,
        notes: &[wire::ClinicalNote],
    ) -> Result<Vec<Option<wire::Appointment>>, AdapterError> {
        let mut per_patient: HashMap<i64, usize> = HashMap::new();
        for patient in notes.iter().filter_map(|n| n.patient) {
            *per_patient.entry(patient).or_default() += 1;
        }
        let listed: Vec<i64> = per_patient
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(p, _)| p)
            .collect();
        let mut known: HashMap<String, wire::Appointment> = HashMap::new();
        for patient in listed {
            let mut url = ListQuery::appointments_of_patient(patient);
            for _ in 0..MAX_PATIENT_APPOINTMENT_PAGES {
                let page = self.client.get_page(&url).await?;
                for value in page.results {
                    let appointment: wire::Appointment = decode(value, "appointment")?;
                    known.insert(appointment.id.clone(), appointment);
                }
                match page.next {
                    Some(next) => url = next,
                    None => break,
                }
            }
        }
        let keys: Vec<(String, Option<wire::Appointment>)> = notes
            .iter()
            .map(|n| (n.appointment.clone(), known.get(&n.appointment).cloned()))
            .collect();
        stream::iter(keys)
            .map(|(key, listed)| async move {
                match listed {
                    Some(appointment) => Ok(Some(appointment)),
                    None => self.appointment_of_note(&key).await,
                }
            })
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await
    }

    /// `_id` searches: each id read directly; unknown and deleted ids are no match.
    async fn search_ids(
        &self,
        resource_type: ResourceType,
        natives: Vec<String>,
        ctx: &DrCtx,
    ) -> Result<Page, AdapterError> {
        let found: Vec<Option<Resource>> = stream::iter(natives)
            .map(|native| async move {
                let record = match self.fetch_record(resource_type, &native).await {
                    Ok(record) => record,
                    Err(AdapterError::NotFound { .. } | AdapterError::Gone { .. }) => return Ok(None),
                    Err(error) => return Err(error),
                };
                match map_record(record, resource_type, &native, ctx) {
                    Ok(resource) => Ok(Some(resource)),
                    Err(AdapterError::NotFound { .. }) => Ok(None),
                    Err(error) => Err(error),
                }
            })
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        Ok(Page {
            resources: found.into_iter().flatten().collect(),
            next: None,
        })
    }

    /// Walks `lists` from `cursor`: one DrChrono page, or a few when they come back empty.
    async fn walk(&self, lists: &[ListQuery], cursor: Option<Continuation>, ctx: &DrCtx) -> Result<Page, AdapterError> {
        let expired = || AdapterError::ContinuationExpired { vendor: VENDOR };
        let Some(first) = lists.first() else {
            return Ok(Page::default());
        };
        let mut at = match cursor {
            None => Cursor {
                stream: first.stream,
                window: first.first_window(),
                next: None,
            },
            Some(continuation) => {
                let c = Cursor::decode(&continuation)?;
                let list = lists.iter().find(|q| q.stream == c.stream).ok_or_else(expired)?;
                if !list.owns_window(c.window) {
                    return Err(expired());
                }
                if let Some(next) = &c.next {
                    self.check_continuation(next, c.stream)?;
                }
                c
            }
        };
        let mut resources = Vec::new();
        let mut calls = 0;
        loop {
            calls += 1;
            let index = lists.iter().position(|q| q.stream == at.stream).ok_or_else(expired)?;
            let list = &lists[index];
            let url = match at.next.take() {
                Some(next) => next,
                None => list.first_page(at.window),
            };
            let page = self.client.get_page(&url).await?;
            self.map_records(list.stream, page.results, ctx, &mut resources).await?;
            let following = if let Some(next) = page.next {
                Some(Cursor {
                    stream: list.stream,
                    window: at.window,
                    next: Some(next),
                })
            } else if let Some(window) = at.window.and_then(|w| list.next_window(w)) {
                Some(Cursor {
                    stream: list.stream,
                    window: Some(window),
                    next: None,
                })
            } else {
                lists.get(index + 1).map(|q| Cursor {
                    stream: q.stream,
                    window: q.first_window(),
                    next: None,
                })
            };
            match following {
                None => {
                    return Ok(Page { resources, next: None });
                }
                Some(c) if !resources.is_empty() || calls >= MAX_CALLS_PER_SEARCH => {
                    return Ok(Page {
                        resources,
                        next: Some(c.encode()),
                    });
                }
                Some(c) => at = c,
            }
        }
    }

    /// A continuation's DrChrono link must be an absolute URL on the configured origin, on the
    /// list the continuation says it walks.
    fn check_continuation(&self, next: &str, stream: Stream) -> Result<(), AdapterError> {
        let url = self
            .client
            .resolve(next)
            .map_err(|_| AdapterError::ContinuationExpired { vendor: VENDOR })?;
        let list = format!("{}{}", self.client.base_url().path(), stream.path());
        if url::Url::parse(next).is_err() || !url.path().starts_with(&list) {
            tracing::warn!(list = stream.path(), "refused a DrChrono continuation outside the API");
            return Err(AdapterError::ContinuationExpired { vendor: VENDOR });
        }
        Ok(())
    }

    /// Maps one page of `stream` records into `out`, leaving out what FHIR does not show: breaks,
    /// deleted appointments, archived notes and documents.
    async fn map_records(
        &self,
        stream: Stream,
        records: Vec<Value>,
        ctx: &DrCtx,
        out: &mut Vec<Resource>,
    ) -> Result<(), AdapterError> {
        match stream {
            Stream::Patients => {
                for value in records {
                    let patient: wire::Patient = decode(value, "patient")?;
                    let mapped = map::patient(&patient, ctx).map_err(mapping("patient"))?;
                    out.push(Resource::Patient(Box::new(mapped)));
                }
            }
            Stream::Doctors => {
                for value in records {
                    let doctor: wire::Doctor = decode(value, "doctor")?;
                    let mapped = map::practitioner(&doctor, ctx).map_err(mapping("doctor"))?;
                    out.push(Resource::Practitioner(Box::new(mapped)));
                }
            }
            Stream::Offices => {
                for value in records {
                    let office: wire::Office = decode(value, "office")?;
                    let mapped = map::office_locations(&office, ctx).map_err(mapping("office"))?;
                    out.extend(mapped.into_iter().map(|l| Resource::Location(Box::new(l))));
                }
            }
            Stream::Appointments => {
                for value in records {
                    let appointment: wire::Appointment = decode(value, "appointment")?;
                    if appointment.deleted_flag {
                        continue;
                    }
                    if let Some(mapped) = map::appointment(&appointment, ctx).map_err(mapping("appointment"))? {
                        out.push(Resource::Appointment(Box::new(mapped)));
                    }
                }
            }
            Stream::ClinicalNotes => {
                let mut notes = Vec::with_capacity(records.len());
                for value in records {
                    let note: wire::ClinicalNote = decode(value, "clinical note")?;
                    if !note.archived {
                        notes.push(note);
                    }
                }
                let appointments = self.appointments_of_notes(&notes).await?;
                for (note, appointment) in notes.iter().zip(&appointments) {
                    let mapped =
                        map::clinical_note(note, appointment.as_ref(), ctx).map_err(mapping("clinical note"))?;
                    out.push(Resource::DocumentReference(Box::new(mapped)));
                }
            }
            Stream::Documents => {
                for value in records {
                    let document: wire::Document = decode(value, "document")?;
                    if document.archived {
                        continue;
                    }
                    let mapped = map::document(&document, ctx).map_err(mapping("document"))?;
                    out.push(Resource::DocumentReference(Box::new(mapped)));
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Adapter for DrChronoAdapter {
    fn source(&self) -> SourceName {
        ids::SOURCE
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        self.webhooks.as_ref().map(|w| w as &dyn WebhookReceiver)
    }

    fn health(&self) -> Option<VendorHealth> {
        Some(self.client.health())
    }

    async fn read(&self, resource_type: ResourceType, native_id: &str) -> Result<Resource, AdapterError> {
        if !self.capabilities.supports(resource_type, Interaction::Read) {
            return Err(AdapterError::Unsupported {
                what: format!("{resource_type} at DrChrono"),
            });
        }
        let record = self.fetch_record(resource_type, native_id).await?;
        let ctx = self.ctx().await?;
        map_record(record, resource_type, native_id, &ctx)
    }

    async fn search(&self, request: &SearchRequest, page: PageRequest) -> Result<Page, AdapterError> {
        let resource_type = request.resource_type.ok_or_else(|| AdapterError::Unsupported {
            what: "searching across types at DrChrono".into(),
        })?;
        if !self.capabilities.supports(resource_type, Interaction::SearchType) {
            return Err(AdapterError::Unsupported {
                what: format!("searching {resource_type} at DrChrono"),
            });
        }
        let ctx = self.ctx().await?;
        let zones = self.zone_list(&ctx);
        let page_size = match page.size {
            0 => self.page_size,
            n => n.min(self.page_size),
        };
        let planned = plan::plan(
            resource_type,
            request,
            &PlanCtx {
                zones: &zones,
                page_size,
            },
        );
        match planned {
            Plan::Nothing => Ok(Page::default()),
            Plan::Ids(_) if page.cursor.is_some() => Err(AdapterError::ContinuationExpired { vendor: VENDOR }),
            Plan::Ids(natives) => self.search_ids(resource_type, natives, &ctx).await,
            Plan::Lists(lists) => self.walk(&lists, page.cursor, &ctx).await,
        }
    }

    async fn check(&self) -> Result<(), AdapterError> {
        self.client
            .get_page(&format!("{}?page_size=1", Stream::Doctors.path()))
            .await
            .map(|_| ())
    }
}

/// One vendor record a read fetched, ready to be mapped.
enum Record {
    Patient(Box<wire::Patient>),
    Doctor(wire::Doctor),
    Office(wire::Office),
    /// An office and one of its exam rooms.
    ExamRoom(wire::Office, wire::ExamRoom),
    Appointment(Box<wire::Appointment>),
    ClinicalNote(wire::ClinicalNote, Option<Box<wire::Appointment>>),
    Document(wire::Document),
}

/// Maps a fetched record; a break (an appointment slot without a patient) is not found.
fn map_record(
    record: Record,
    resource_type: ResourceType,
    native: &str,
    ctx: &DrCtx,
) -> Result<Resource, AdapterError> {
    Ok(match record {
        Record::Patient(p) => Resource::Patient(Box::new(map::patient(&p, ctx).map_err(mapping("patient"))?)),
        Record::Doctor(d) => Resource::Practitioner(Box::new(map::practitioner(&d, ctx).map_err(mapping("doctor"))?)),
        Record::Office(o) => Resource::Location(Box::new(map::office_location(&o, ctx).map_err(mapping("office"))?)),
        Record::ExamRoom(o, room) => Resource::Location(Box::new(
            map::exam_room_location(&o, &room, ctx).map_err(mapping("exam room"))?,
        )),
        Record::Appointment(a) => match map::appointment(&a, ctx).map_err(mapping("appointment"))? {
            Some(mapped) => Resource::Appointment(Box::new(mapped)),
            None => {
                return Err(AdapterError::NotFound {
                    resource_type,
                    id: native.to_owned(),
                });
            }
        },
        Record::ClinicalNote(n, a) => Resource::DocumentReference(Box::new(
            map::clinical_note(&n, a.as_deref(), ctx).map_err(mapping("clinical note"))?,
        )),
        Record::Document(d) => {
            Resource::DocumentReference(Box::new(map::document(&d, ctx).map_err(mapping("document"))?))
        }
    })
}

/// What the adapter serves: read and search on five types.
fn capabilities() -> Capabilities {
    let types = [
        (ResourceType::Patient, vec![systems::PROFILE_US_CORE_PATIENT]),
        (ResourceType::Practitioner, vec![systems::PROFILE_US_CORE_PRACTITIONER]),
        (ResourceType::Location, vec![systems::PROFILE_US_CORE_LOCATION]),
        (ResourceType::Appointment, vec![]),
        (
            ResourceType::DocumentReference,
            vec![systems::PROFILE_US_CORE_DOCUMENTREFERENCE],
        ),
    ];
    Capabilities {
        resources: types
            .into_iter()
            .map(|(resource_type, profiles)| ResourceCapability {
                resource_type,
                interactions: vec![Interaction::Read, Interaction::SearchType],
                pushdown: plan::pushdown(resource_type),
                profiles,
                operations: vec![],
                patient_writes: vec![],
            })
            .collect(),
    }
}

/// `endpoint/<id>` with the id percent-encoded as one path segment; `None` for ids no DrChrono
/// object can have.
fn object_path(endpoint: &str, native: &str) -> Option<String> {
    let plain = !native.is_empty()
        && native.len() <= 64
        && native != "."
        && native != ".."
        && native
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plain.then(|| format!("{endpoint}/{native}"))
}

/// Deserializes one vendor record; the error names the kind of record, never its content.
fn decode<T: DeserializeOwned>(value: Value, kind: &'static str) -> Result<T, AdapterError> {
    serde_json::from_value(value).map_err(|_| {
        tracing::warn!(kind, "a DrChrono record does not have the documented shape");
        unmappable(format!("a DrChrono {kind} record could not be read"))
    })
}

/// A mapping failure; the error names the kind of record, never its content.
fn mapping(kind: &'static str) -> impl Fn(map::MapError) -> AdapterError {
    move |_| {
        tracing::warn!(kind, "a DrChrono record could not be mapped to FHIR");
        unmappable(format!("a DrChrono {kind} record could not be mapped"))
    }
}
