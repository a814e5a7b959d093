//! [`NoaAdapter`]: the [`Adapter`] over one Noa Notes consumer.
//!
//! A Noa session is one visit: its Encounter (`noa-{sessionId}`, read from the session's status)
//! and, from the first summary on, its summary's DocumentReference (same id). Searches walk Noa's
//! session list one vendor page per adapter page, with what Noa can filter on pushed down
//! ([`plan`]) and the patient checked in the adapter before any summary is fetched. The EHR facts
//! of a session (its patient, and which EHR resources exist) come from the gateway's
//! [`Resolver`]. When the EHR fails, a session whose patient must be read from its episode's
//! Appointment cannot be mapped, and the call fails ([`ehr_failure`]) rather than answer it
//! without its subject; a reference the EHR could not check stays literal (the session names it).
//!
//! Summaries the doctor verified no longer change unless recovered or regenerated: they are kept
//! in a bounded memo (filled by reads, searches and the verification webhook) and served from it
//! while the session stays verified; `$regenerate`, `$recover` and their webhooks drop them.
//!
//! Operations: `$regenerate` and `$recover` on a summary's DocumentReference (asynchronous: Noa
//! answers 202 and announces completion by webhook), and `$start-scribe` on an EHR Appointment
//! (any source's: the configured EHR's), which registers the facility and doctor at Noa and
//! creates (or resumes) the session.

pub(crate) mod cursor;
pub(crate) mod memo;
pub(crate) mod plan;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use adapter::fhir::resources::{Parameters, ParametersParameter, ParametersParameterValue};
use adapter::fhir::types::Reference;
use adapter::search::{ReferenceValue, SearchParam, SearchValue};
use adapter::{
    Adapter, AdapterError, Capabilities, FhirId, Interaction, MapCtx, OperationDef, OperationParam, OperationTarget,
    Page, PageRequest, ParamUse, Performer, Resolver, Resource, ResourceCapability, ResourceType, SearchRequest,
    SourceName, VendorHealth, WebhookReceiver, systems,
};
use chrono::Utc;
use chrono_tz::Tz;
use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use self::memo::{EpisodeMemo, SummaryMemo};
use self::plan::{ListQuery, Plan};
use crate::client::{NoaClient, Reply, VENDOR, unmappable};
use crate::config::{ConfigError, Endpoint, NoaConfig};
use crate::map::codes::SessionStatus;
use crate::map::scribe::{self, LocationStep, ScribeTarget};
use crate::map::{self, MapError, NoaCtx, ids};
use crate::webhook::NoaWebhooks;
use crate::wire;

/// Concurrent Noa calls for the records of one page (summaries, reads by id).
const CONCURRENT_CALLS: usize = 4;

/// Concurrent questions to the resolver.
const CONCURRENT_RESOLVES: usize = 8;

/// The most appointments of one patient [`NoaAdapter::patients_episodes`] takes from the EHR in
/// bulk (four DrChrono pages).
const BULK_APPOINTMENTS: usize = 1000;

/// The `$start-scribe` operation on (EHR) Appointments.
pub const OPERATION_START_SCRIBE: &str = "start-scribe";

/// The `$regenerate` operation on a summary's DocumentReference.
pub const OPERATION_REGENERATE: &str = "regenerate";

/// The `$recover` operation on a summary's DocumentReference.
pub const OPERATION_RECOVER: &str = "recover";

/// The metadata key holding the gateway id of the Appointment a session was started for.
pub const APPOINTMENT_METADATA_KEY: &str = "appointment";

const TEMPLATE_PARTS: &[OperationParam] = &[
    OperationParam::new(
        "title",
        ParamUse::In,
        1,
        Some(1),
        "string",
        "The section's title (unique within the template)",
    ),
    OperationParam::new(
        "instruction",
        ParamUse::In,
        0,
        Some(1),
        "string",
        "What Noa should write in the section",
    ),
];

/// `$start-scribe`: what the session is for, in; the session, out.
const START_SCRIBE_PARAMS: &[OperationParam] = &[
    OperationParam::new(
        "language",
        ParamUse::In,
        0,
        Some(1),
        "code",
        "The visit's language (Noa's list: en-US pl-PL pt-BR pt-PT es-MX es-ES es-AR es-CO es-CL es-PE it-IT de-DE cs-CZ tr-TR); default the gateway's setting, else the consumer's",
    ),
    OperationParam::new(
        "visitType",
        ParamUse::In,
        0,
        Some(1),
        "code",
        "FirstVisit | FollowUpVisit",
    ),
    OperationParam::new(
        "speciality",
        ParamUse::In,
        0,
        Some(1),
        "string",
        "The doctor's speciality (psychiatrist, ...)",
    ),
    OperationParam {
        name: "template",
        direction: ParamUse::In,
        min: 0,
        max: None,
        fhir_type: None,
        documentation: "One section of the summary template, in order (default: the consumer's template)",
        parts: TEMPLATE_PARTS,
    },
    OperationParam::new(
        "encounter",
        ParamUse::Out,
        1,
        Some(1),
        "Reference",
        "The session's Encounter (Encounter/noa-{sessionId}), which follows the session's status",
    ),
    OperationParam::new("sessionId", ParamUse::Out, 1, Some(1), "string", "Noa's session id"),
    OperationParam::new(
        "sessionToken",
        ParamUse::Out,
        0,
        Some(1),
        "string",
        "The token the recorder widget uses for this session",
    ),
    OperationParam::new("consumerId", ParamUse::Out, 0, Some(1), "string", "Noa's consumer id"),
    OperationParam::new(
        "expiresIn",
        ParamUse::Out,
        0,
        Some(1),
        "integer",
        "Seconds the session token lives",
    ),
    OperationParam::new(
        "expires",
        ParamUse::Out,
        0,
        Some(1),
        "instant",
        "When the session token expires",
    ),
    OperationParam::new(
        "recorderUrl",
        ParamUse::Out,
        0,
        Some(1),
        "url",
        "Where the doctor opens the Noa Notes recorder",
    ),
    OperationParam::new(
        "summaryUrl",
        ParamUse::Out,
        0,
        Some(1),
        "url",
        "Where the doctor edits and confirms the summary",
    ),
    OperationParam::new("status", ParamUse::Out, 0, Some(1), "code", "The session's Noa status"),
    OperationParam::new(
        "resumed",
        ParamUse::Out,
        1,
        Some(1),
        "boolean",
        "True when Noa answered an existing live session for this appointment, doctor and facility",
    ),
];

/// `$regenerate` / `$recover`: no input; Noa's answer out.
const SUMMARY_OPERATION_PARAMS: &[OperationParam] = &[
    OperationParam::new(
        "status",
        ParamUse::Out,
        1,
        Some(1),
        "code",
        "The session's Noa status (Analyzing)",
    ),
    OperationParam::new(
        "operation",
        ParamUse::Out,
        1,
        Some(1),
        "code",
        "Noa's name of the operation (Recover | Regenerate)",
    ),
    OperationParam::new(
        "follow",
        ParamUse::Out,
        1,
        Some(1),
        "Reference",
        "The session's Encounter: its status extension shows Summarized when the new summary is ready",
    ),
    OperationParam::new(
        "documentReference",
        ParamUse::Out,
        1,
        Some(1),
        "Reference",
        "The summary, preliminary until the doctor verifies it again",
    ),
];

/// The Noa source.
///
/// Built with [`NoaAdapter::new`], which validates the configuration and makes no request: Noa is
/// signed in to on the first call ([`Adapter::check`] is the start-up probe).
pub struct NoaAdapter {
    client: Arc<NoaClient>,
    account: String,
    ehr_source: String,
    patient_metadata_key: String,
    default_tz: Tz,
    page_size: u32,
    default_language: Option<String>,
    webhook_url: Option<String>,
    capabilities: Capabilities,
    resolver: Option<Arc<dyn Resolver>>,
    webhooks: NoaWebhooks,
    summaries: Arc<SummaryMemo>,
    episodes: EpisodeMemo,
}

impl std::fmt::Debug for NoaAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoaAdapter")
            .field("account", &self.account)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl NoaAdapter {
    /// Validates `config` and builds the adapter. No request is made here.
    pub fn new(config: NoaConfig) -> Result<Self, ConfigError> {
        let client = Arc::new(NoaClient::new(&config)?);
        let summaries = Arc::new(SummaryMemo::new());
        let webhooks = NoaWebhooks::new(
            &config.webhook_secret,
            config.client_id.clone(),
            client.clone(),
            summaries.clone(),
        );
        Ok(Self {
            client,
            account: config.client_id,
            ehr_source: config.ehr_source,
            patient_metadata_key: config.patient_metadata_key,
            default_tz: config.default_timezone,
            page_size: config.page_size,
            default_language: config.default_language,
            webhook_url: config.webhook_url,
            capabilities: capabilities(),
            resolver: None,
            webhooks,
            summaries,
            episodes: EpisodeMemo::new(),
        })
    }

    /// Follows the sessions' EHR facts through `resolver`: which EHR resources exist (those, and
    /// those it cannot check because the EHR fails, become literal references), the patient of an
    /// episode whose session names none, and the Appointment, Practitioner and Locations
    /// `$start-scribe` needs. When the EHR fails to answer for an episode's patient or for
    /// `$start-scribe`, the call fails with a transient error. Without a resolver every EHR
    /// reference stays logical, a session without a patient in its metadata has no subject, and
    /// `$start-scribe` is refused.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The HTTP client.
    pub fn client(&self) -> &NoaClient {
        &self.client
    }

    /// True when the verified summary of `session_id` is kept (and reads will not fetch it).
    pub fn has_memoized_summary(&self, session_id: &str) -> bool {
        self.summaries.contains(session_id)
    }

    // ---- fetching Noa objects --------------------------------------------------------------

    /// A session's details; `None` when Noa does not know it (or the id is no session id).
    async fn session(&self, session_id: &str) -> Result<Option<wire::Session>, AdapterError> {
        if !ids::is_session_id(session_id) {
            return Ok(None);
        }
        match self.client.get(Endpoint::SessionStatus(session_id), &[]).await? {
            Some(value) => decode::<wire::Session>(value, "session").map(Some),
            None => Ok(None),
        }
    }

    /// A session's summary: `None` when its status has none or Noa has none. A verified summary is
    /// served from the memo while the session stays verified, and kept there once fetched.
    async fn summary(&self, session: &wire::Session) -> Result<Option<wire::Summary>, AdapterError> {
        let id = session.session_id.trim();
        let Some(status) = SessionStatus::from_wire(&session.status) else {
            return Ok(None);
        };
        if !status.may_have_summary() {
            self.summaries.forget_if_kept(id);
            return Ok(None);
        }
        if status.is_verified() {
            if let Some(kept) = self.summaries.get(id) {
                return Ok(Some(kept));
            }
        } else {
            self.summaries.forget_if_kept(id);
        }
        let epoch = self.summaries.epoch();
        let Some(value) = self.client.get(Endpoint::SessionSummary(id), &[]).await? else {
            return Ok(None);
        };
        let summary: wire::Summary = decode(value, "summary")?;
        if status.is_verified() {
            self.summaries.store(id, &summary, epoch);
        }
        Ok(Some(summary))
    }

    // ---- EHR facts ---------------------------------------------------------------------------

    /// The mapping context of `sessions`: their episodes' patients and the EHR references that
    /// exist. Fails when an episode's patient cannot be read because the EHR fails.
    async fn ctx(&self, sessions: &[wire::Session]) -> Result<NoaCtx, AdapterError> {
        let mut ctx = self.base_ctx();
        ctx.episode_patients = self.episode_patients(sessions, &ctx).await?;
        let references = sessions.iter().flat_map(|s| map::session_references(s, &ctx)).collect();
        ctx.resolved = self.resolve(references).await;
        Ok(ctx)
    }

    fn base_ctx(&self) -> NoaCtx {
        let mut ctx = NoaCtx::new(MapCtx::new(Utc::now(), self.default_tz));
        ctx.ehr_source = self.ehr_source.clone();
        ctx.patient_metadata_key = self.patient_metadata_key.clone();
        ctx
    }

    /// The EHR patient of each episode of `sessions` whose metadata names none: from the memo,
    /// else from the episode's Appointment read through the resolver. An Appointment the EHR
    /// does not know (or one without an EHR patient) gives no patient; an EHR failing to answer
    /// fails the whole call (nothing is remembered then), since the session's subject, and so
    /// whether it matches a `patient=` search, would silently be lost.
    async fn episode_patients(
        &self,
        sessions: &[wire::Session],
        ctx: &NoaCtx,
    ) -> Result<HashMap<String, String>, AdapterError> {
        let mut out = HashMap::new();
        let mut wanted: Vec<String> = Vec::new();
        for s in sessions {
            let episode = s.episode_id.trim();
            if episode.is_empty() || s.metadata_text(&ctx.patient_metadata_key).is_some() {
                continue;
            }
            match self.episodes.get(episode) {
                Some(patient) => {
                    out.insert(episode.to_owned(), patient);
                }
                None if !wanted.iter().any(|w| w == episode) => wanted.push(episode.to_owned()),
                None => {}
            }
        }
        let Some(resolver) = &self.resolver else {
            return Ok(out);
        };
        let found: Vec<Option<(String, String)>> = stream::iter(wanted)
            .map(|episode| {
                let resolver = resolver.clone();
                async move {
                    let Ok(id) = adapter::id::fhir_id(&self.ehr_source, &episode) else {
                        return Ok(None);
                    };
                    let appointment = resolver
                        .read(ResourceType::Appointment, &id)
                        .await
                        .map_err(|error| ehr_failure(error, &self.ehr_source, "a session's episode"))?;
                    Ok(appointment
                        .and_then(|a| appointment_patient(&a, &self.ehr_source))
                        .map(|patient| (episode, patient)))
                }
            })
            .buffer_unordered(CONCURRENT_RESOLVES)
            .try_collect()
            .await?;
        for (episode, patient) in found.into_iter().flatten() {
            self.episodes.insert(&episode, &patient);
            out.insert(episode, patient);
        }
        Ok(out)
    }

    /// The episodes (EHR appointment ids) of `patients` (EHR native ids), each with its patient, when asking the EHR for
    /// each patient's appointments — one search each, every page of it — costs fewer calls than
    /// reading the unknown episodes of `sessions` one by one; remembered like those reads. `None`
    /// when it would not (or the EHR cannot search appointments, or a patient has more than
    /// [`BULK_APPOINTMENTS`]): the episodes are then read one at a time.
    async fn patients_episodes(
        &self,
        patients: &[String],
        sessions: &[wire::Session],
        ctx: &NoaCtx,
    ) -> Result<Option<HashMap<String, String>>, AdapterError> {
        let Some(resolver) = &self.resolver else {
            return Ok(None);
        };
        let unknown: HashSet<&str> = sessions
            .iter()
            .filter(|s| s.metadata_text(&ctx.patient_metadata_key).is_none())
            .map(|s| s.episode_id.trim())
            .filter(|e| !e.is_empty() && self.episodes.get(e).is_none())
            .collect();
        if unknown.len() <= patients.len() {
            return Ok(None);
        }
        let mut theirs = HashMap::new();
        for patient in patients {
            let Ok(id) = adapter::id::fhir_id(&self.ehr_source, patient) else {
                continue;
            };
            let request = SearchRequest {
                resource_type: Some(ResourceType::Appointment),
                params: vec![SearchParam {
                    name: "patient".into(),
                    modifier: None,
                    values: vec![SearchValue::Reference(ReferenceValue {
                        resource_type: Some(ResourceType::Patient),
                        id,
                    })],
                }],
            };
            let found = resolver
                .search(&self.ehr_source, &request, BULK_APPOINTMENTS)
                .await
                .map_err(|error| ehr_failure(error, &self.ehr_source, "a patient's appointments"))?;
            let Some(appointments) = found else {
                return Ok(None);
            };
            for appointment in &appointments {
                let Resource::Appointment(a) = appointment else {
                    continue;
                };
                let native =
                    a.id.as_ref()
                        .and_then(|id| id.value.as_deref())
                        .and_then(|id| FhirId::parse(id).ok())
                        .filter(|id| id.source() == self.ehr_source)
                        .map(|id| id.native().to_owned());
                if let (Some(native), Some(owner)) = (native, appointment_patient(appointment, &self.ehr_source)) {
                    self.episodes.insert(&native, &owner);
                    if owner == *patient {
                        theirs.insert(native, owner);
                    }
                }
            }
        }
        Ok(Some(theirs))
    }

    /// Which `Type/id` references may be literal links ([`adapter::linkable`]).
    async fn resolve(&self, references: Vec<String>) -> HashSet<String> {
        match &self.resolver {
            Some(resolver) => adapter::linkable(resolver.as_ref(), references).await,
            None => HashSet::new(),
        }
    }

    // ---- mapping -----------------------------------------------------------------------------

    fn encounters(&self, sessions: &[wire::Session], ctx: &NoaCtx) -> Result<Vec<Resource>, AdapterError> {
        sessions
            .iter()
            .map(|s| {
                map::session_encounter(s, ctx)
                    .map(|e| Resource::Encounter(Box::new(e)))
                    .map_err(mapping("session"))
            })
            .collect()
    }

    /// The DocumentReferences of the sessions that have a summary (fetched concurrently, in order).
    async fn documents(&self, sessions: &[wire::Session], ctx: &NoaCtx) -> Result<Vec<Resource>, AdapterError> {
        let summaries: Vec<Option<wire::Summary>> = stream::iter(sessions.iter().cloned())
            .map(|s| async move { self.summary(&s).await })
            .buffered(CONCURRENT_CALLS)
            .try_collect()
            .await?;
        sessions
            .iter()
            .zip(summaries)
            .filter_map(|(s, summary)| summary.map(|summary| (s, summary)))
            .map(|(s, summary)| {
                map::summary_document(s, &summary, ctx)
                    .map(|d| Resource::DocumentReference(Box::new(d)))
                    .map_err(mapping("summary"))
            })
            .collect()
    }

    // ---- reads and searches ------------------------------------------------------------------

    /// One session's Encounter or DocumentReference; `None` when there is none.
    async fn read_session(
        &self,
        resource_type: ResourceType,
        session_id: &str,
    ) -> Result<Option<Resource>, AdapterError> {
        let Some(session) = self.session(session_id).await? else {
            return Ok(None);
        };
        let sessions = [session];
        let ctx = self.ctx(&sessions).await?;
        let mut out = match resource_type {
            ResourceType::Encounter => self.encounters(&sessions, &ctx)?,
            _ => self.documents(&sessions, &ctx).await?,
        };
        Ok(out.pop())
    }

    /// `_id`/`identifier`/`encounter` searches: each session read; unknown ones are no match.
    async fn search_ids(&self, resource_type: ResourceType, ids: Vec<String>) -> Result<Page, AdapterError> {
        let found: Vec<Option<Resource>> = stream::iter(ids)
            .map(|id| async move { self.read_session(resource_type, &id).await })
            .buffered(CONCURRENT_CALLS)
            .try_collect()
            .await?;
        Ok(Page {
            resources: found.into_iter().flatten().collect(),
            next: None,
        })
    }

    /// One page of the session list for `q`, mapped; the continuation is Noa's `nextPageToken`.
    async fn walk(&self, resource_type: ResourceType, q: &ListQuery, page: PageRequest) -> Result<Page, AdapterError> {
        let token = page.cursor.as_ref().map(cursor::decode).transpose()?;
        let size = match page.size {
            0 => self.page_size,
            n => n.min(self.page_size),
        };
        let mut query = q.params.clone();
        query.push(("pageSize", size.to_string()));
        let value = self
            .client
            .get_page(Endpoint::Sessions, &query, token.as_deref())
            .await?
            .ok_or_else(|| unmappable("Noa does not know the session list"))?;
        let list: wire::SessionList = decode(value, "session list")?;
        let next = list.next_page_token.trim();
        let next = if next.is_empty() {
            None
        } else if Some(next) == token.as_deref() {
            return Err(unmappable("a Noa page names itself as the next page"));
        } else {
            Some(cursor::encode(next))
        };

        let mut sessions = list.items;
        let mut ctx = self.base_ctx();
        let mut theirs_found = None;
        if let Some(patients) = &q.patients
            && let Some(theirs) = self.patients_episodes(patients, &sessions, &ctx).await?
        {
            // Every appointment of the patients is known: a session whose episode is none of them
            // (and whose metadata names no patient) is someone else's, and is not read for.
            sessions.retain(|s| {
                let episode = s.episode_id.trim();
                episode.is_empty()
                    || s.metadata_text(&ctx.patient_metadata_key).is_some()
                    || theirs.contains_key(episode)
                    || self.episodes.get(episode).is_some()
            });
            theirs_found = Some(theirs);
        }
        ctx.episode_patients = self.episode_patients(&sessions, &ctx).await?;
        if let Some(patients) = &q.patients {
            sessions.retain(|s| ctx.patient_of(s).is_some_and(|p| patients.contains(&p)));
        }
        if resource_type == ResourceType::DocumentReference {
            sessions.retain(|s| SessionStatus::from_wire(&s.status).is_some_and(SessionStatus::may_have_summary));
        }
        let references: Vec<String> = sessions.iter().flat_map(|s| map::session_references(s, &ctx)).collect();
        ctx.resolved = match (&q.patients, &self.resolver) {
            // The patients' appointments were just listed: they, and each patient that has one,
            // exist; the rest is asked as usual.
            (Some(_), Some(_)) if let Some(theirs) = &theirs_found => {
                let ehr = &self.ehr_source;
                let confirmed: HashSet<String> = theirs
                    .iter()
                    .flat_map(|(episode, patient)| {
                        [
                            adapter::ehr::literal("Appointment", ehr, episode),
                            adapter::ehr::literal("Patient", ehr, patient),
                        ]
                    })
                    .flatten()
                    .collect();
                let (known, rest): (Vec<String>, Vec<String>) =
                    references.into_iter().partition(|r: &String| confirmed.contains(r));
                let mut resolved = self.resolve(rest).await;
                resolved.extend(known);
                resolved
            }
            (Some(patients), Some(resolver)) => {
                let patients: Vec<String> = patients
                    .iter()
                    .filter_map(|p| adapter::ehr::literal("Patient", &self.ehr_source, p))
                    .collect();
                adapter::linkable_for_patients(resolver.as_ref(), &patients, references).await
            }
            _ => self.resolve(references).await,
        };
        let resources = match resource_type {
            ResourceType::Encounter => self.encounters(&sessions, &ctx)?,
            _ => self.documents(&sessions, &ctx).await?,
        };
        Ok(Page { resources, next })
    }

    // ---- operations --------------------------------------------------------------------------

    /// `$regenerate` / `$recover`: asks Noa to write the summary again (or bring back the first
    /// one). Noa answers 202; the summary is preliminary until the doctor verifies it again.
    async fn summary_operation(
        &self,
        session_id: &str,
        name: &str,
        input: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        let not_found = || AdapterError::NotFound {
            resource_type: ResourceType::DocumentReference,
            id: session_id.to_owned(),
        };
        match input {
            None => {}
            Some(Resource::Parameters(p)) if p.parameter.is_empty() => {}
            Some(_) => {
                return Err(AdapterError::InvalidRequest {
                    detail: format!("${name} takes no parameters"),
                });
            }
        }
        if !ids::is_session_id(session_id) {
            return Err(not_found());
        }
        let endpoint = if name == OPERATION_REGENERATE {
            Endpoint::SessionRegenerate(session_id)
        } else {
            Endpoint::SessionRecover(session_id)
        };
        let reply = self.client.write::<()>(Method::POST, endpoint, None).await;
        // Whatever Noa did, the kept summary may be outdated now.
        self.summaries.forget(session_id);
        let answer: wire::SessionOperation = match reply? {
            Reply::Ok { body: Some(body), .. } => decode(body, "operation answer")?,
            Reply::Ok { body: None, .. } => wire::SessionOperation::default(),
            Reply::NotFound => return Err(not_found()),
            Reply::Conflict => {
                return Err(AdapterError::Unprocessable {
                    element: "DocumentReference.docStatus".into(),
                    detail: "Noa has no summary to regenerate yet, or a recovery or regeneration is already running"
                        .into(),
                });
            }
        };
        summary_operation_outcome(session_id, name, &answer)
    }

    /// `$start-scribe` on an EHR Appointment: registers the facility and the doctor at Noa, then
    /// creates the session (or Noa resumes the live one).
    async fn start_scribe(
        &self,
        target_id: &FhirId,
        target: &Resource,
        input: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        let input = scribe::scribe_input(input)?;
        let t = scribe::scribe_target(target_id, target, &self.ehr_source)?;
        let resolver = self.resolver.as_ref().ok_or_else(|| AdapterError::Unsupported {
            what: "$start-scribe without access to the EHR's resources".into(),
        })?;
        let doctor_name = self.doctor_name(resolver.as_ref(), &t).await?;
        let (facility, facility_name) = self.facility(resolver.as_ref(), &t).await?;
        let doctor = t.practitioner.native().to_owned();

        self.upsert_facility(&facility, &facility_name).await?;
        self.upsert_doctor(&facility, &doctor, &doctor_name).await?;

        let body = wire::CreateSession {
            episode_id: t.appointment.clone(),
            doctor_id: doctor,
            facility_id: Some(facility),
            webhook_url: self.webhook_url.clone(),
            template: input.template,
            visit_type: input.visit_type.map(|v| v.wire().to_owned()),
            metadata: BTreeMap::from([
                (self.patient_metadata_key.clone(), t.patient.clone()),
                (APPOINTMENT_METADATA_KEY.to_owned(), target_id.to_string()),
            ]),
            language: input.language.or_else(|| self.default_language.clone()),
            speciality: input.speciality,
        };
        let (status, body) = match self.client.write(Method::POST, Endpoint::Sessions, Some(&body)).await? {
            Reply::Ok {
                status,
                body: Some(body),
            } => (status, body),
            Reply::Ok { body: None, .. } => return Err(unmappable("Noa created a session without answering it")),
            Reply::NotFound => {
                return Err(AdapterError::Unprocessable {
                    element: "Appointment.participant".into(),
                    detail: "Noa does not know the appointment's doctor at its facility".into(),
                });
            }
            Reply::Conflict => {
                return Err(AdapterError::Unprocessable {
                    element: "Appointment".into(),
                    detail: "Noa refused a session for this appointment".into(),
                });
            }
        };
        let created: wire::SessionCreated = decode(body, "session")?;
        // The appointment's patient is known now; no need to read the appointment for it later.
        self.episodes.insert(&t.appointment, &t.patient);
        scribe::scribe_outcome(&created, status == 200, Utc::now(), self.default_tz)
    }

    /// The doctor's name: the Practitioner's, else the appointment's display of it. The EHR
    /// failing to answer fails the operation (it may be retried), rather than register the doctor
    /// under a display name.
    async fn doctor_name(&self, resolver: &dyn Resolver, t: &ScribeTarget) -> Result<String, AdapterError> {
        let read = resolver
            .read(ResourceType::Practitioner, &t.practitioner.to_string())
            .await
            .map_err(|error| ehr_failure(error, &self.ehr_source, "the appointment's practitioner"))?;
        let name = match read {
            Some(Resource::Practitioner(p)) => scribe::practitioner_name(&p),
            _ => None,
        };
        name.or_else(|| t.practitioner_display.clone())
            .ok_or_else(|| AdapterError::Unprocessable {
                element: "Appointment.participant".into(),
                detail: "the appointment's practitioner cannot be read for a name Noa needs".into(),
            })
    }

    /// The facility (an office) of the appointment: its first Location that can be read, or the
    /// Location that one is part of (an exam room's office); native id and name. The EHR failing
    /// to answer fails the operation (it may be retried).
    async fn facility(&self, resolver: &dyn Resolver, t: &ScribeTarget) -> Result<(String, String), AdapterError> {
        let failed = |error| ehr_failure(error, &self.ehr_source, "the appointment's location");
        for (location, display) in &t.locations {
            let read = resolver
                .read(ResourceType::Location, &location.to_string())
                .await
                .map_err(failed)?;
            let Some(Resource::Location(l)) = read else {
                continue;
            };
            match scribe::location_step(&l, &self.ehr_source) {
                LocationStep::Facility { name } => {
                    let name = name
                        .or_else(|| display.clone())
                        .unwrap_or_else(|| format!("Location {}", location.native()));
                    return Ok((location.native().to_owned(), name));
                }
                LocationStep::PartOf { id, display } => {
                    let name = match resolver
                        .read(ResourceType::Location, &id.to_string())
                        .await
                        .map_err(failed)?
                    {
                        Some(Resource::Location(office)) => match scribe::location_step(&office, &self.ehr_source) {
                            LocationStep::Facility { name } => name,
                            LocationStep::PartOf { .. } => None,
                        },
                        _ => None,
                    };
                    let name = name.or(display).unwrap_or_else(|| format!("Location {}", id.native()));
                    return Ok((id.native().to_owned(), name));
                }
            }
        }
        Err(AdapterError::Unprocessable {
            element: "Appointment.participant".into(),
            detail: "the appointment's Location cannot be read for the facility Noa needs".into(),
        })
    }

    /// `PUT consumers/facilities/{id} {"name"}`: creates or renames the facility.
    async fn upsert_facility(&self, facility: &str, name: &str) -> Result<(), AdapterError> {
        let body = wire::Named { name: name.to_owned() };
        match self
            .client
            .write(Method::PUT, Endpoint::Facility(facility), Some(&body))
            .await?
        {
            Reply::Ok { .. } => Ok(()),
            Reply::NotFound | Reply::Conflict => Err(unmappable("Noa refused to register the facility")),
        }
    }

    /// `PUT …/doctors/{id} {"name"}`, and when Noa does not know the doctor there,
    /// `POST …/doctors {"name", "externalDoctorId"}` (a 409 then means another call registered
    /// them meanwhile).
    async fn upsert_doctor(&self, facility: &str, doctor: &str, name: &str) -> Result<(), AdapterError> {
        let body = wire::Named { name: name.to_owned() };
        let endpoint = Endpoint::Doctor { facility, doctor };
        match self.client.write(Method::PUT, endpoint, Some(&body)).await? {
            Reply::Ok { .. } => return Ok(()),
            Reply::NotFound => {}
            Reply::Conflict => return Err(unmappable("Noa refused to rename the doctor")),
        }
        let body = wire::NewDoctor {
            name: name.to_owned(),
            external_doctor_id: doctor.to_owned(),
        };
        match self
            .client
            .write(Method::POST, Endpoint::FacilityDoctors(facility), Some(&body))
            .await?
        {
            Reply::Ok { .. } | Reply::Conflict => Ok(()),
            Reply::NotFound => Err(unmappable("Noa lost the facility while registering the doctor")),
        }
    }
}

#[async_trait::async_trait]
impl Adapter for NoaAdapter {
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
                what: format!("{resource_type} at Noa"),
            });
        }
        self.read_session(resource_type, native_id)
            .await?
            .ok_or_else(|| AdapterError::NotFound {
                resource_type,
                id: native_id.to_owned(),
            })
    }

    async fn search(&self, request: &SearchRequest, page: PageRequest) -> Result<Page, AdapterError> {
        let resource_type = request.resource_type.ok_or_else(|| AdapterError::Unsupported {
            what: "searching across types at Noa".into(),
        })?;
        if !self.capabilities.supports(resource_type, Interaction::SearchType) {
            return Err(AdapterError::Unsupported {
                what: format!("searching {resource_type} at Noa"),
            });
        }
        match plan::plan(resource_type, request, &self.ehr_source) {
            Plan::Nothing => Ok(Page::default()),
            Plan::Ids(_) if page.cursor.is_some() => Err(AdapterError::ContinuationExpired { vendor: VENDOR }),
            Plan::Ids(ids) => self.search_ids(resource_type, ids).await,
            Plan::List(q) => self.walk(resource_type, &q, page).await,
        }
    }

    async fn check(&self) -> Result<(), AdapterError> {
        self.client.sign_in().await?;
        let query = [("pageSize", "1".to_owned())];
        self.client
            .get_page(Endpoint::Sessions, &query, None)
            .await?
            .map(|_| ())
            .ok_or_else(|| unmappable("Noa does not know the session list"))
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
            .and_then(|r| r.operations.iter().find(|o| o.name == name))
            .is_some_and(|o| o.target == OperationTarget::Own);
        if !declared {
            return Err(AdapterError::Unsupported {
                what: format!("${name} on {resource_type} at Noa"),
            });
        }
        self.summary_operation(native_id, name, input).await
    }

    async fn operation_on(
        &self,
        target_id: &FhirId,
        target: &Resource,
        name: &str,
        input: Option<Resource>,
    ) -> Result<Resource, AdapterError> {
        if name != OPERATION_START_SCRIBE {
            return Err(AdapterError::Unsupported {
                what: format!("${name} at Noa"),
            });
        }
        self.start_scribe(target_id, target, input).await
    }

    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        Some(&self.webhooks)
    }

    fn health(&self) -> Option<VendorHealth> {
        Some(self.client.health())
    }
}

/// The EHR patient (native id) an Appointment names among its participants.
/// The error of a Noa call that needed the EHR (through the [`Resolver`]) and could not read it:
/// a transient failure as it is (its `Retry-After` kept), any other (unreadable answers, refused
/// credentials) as Noa's source being unavailable for now, since the call may succeed once the EHR
/// recovers. The message names the EHR and `what` was read, never an id.
fn ehr_failure(error: AdapterError, ehr_source: &str, what: &str) -> AdapterError {
    if error.is_transient() {
        return error;
    }
    AdapterError::Unavailable {
        vendor: VENDOR,
        detail: format!("the EHR ({ehr_source}) could not be read for {what}"),
    }
}

fn appointment_patient(appointment: &Resource, ehr_source: &str) -> Option<String> {
    let Resource::Appointment(a) = appointment else {
        return None;
    };
    a.participant.iter().find_map(|p| {
        let literal = p.actor.as_ref()?.reference.as_ref()?.value.as_deref()?;
        let id = literal.strip_prefix("Patient/")?;
        let id = FhirId::parse(id).ok()?;
        (id.source() == ehr_source).then(|| id.native().to_owned())
    })
}

/// The `Parameters` answered by `$regenerate` / `$recover`.
fn summary_operation_outcome(
    session_id: &str,
    name: &str,
    answer: &wire::SessionOperation,
) -> Result<Resource, AdapterError> {
    let id = ids::fhir_id(session_id).map_err(|_| unmappable("a Noa session id cannot be a FHIR id"))?;
    let code = |text: &str, fallback: &str| {
        let text = text.trim();
        let ok = !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric());
        ParametersParameterValue::Code(if ok { text } else { fallback }.into())
    };
    let reference = |target: String| {
        ParametersParameterValue::Reference(Box::new(Reference {
            reference: Some(target.into()),
            ..Default::default()
        }))
    };
    let param = |name: &str, value| ParametersParameter {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    };
    let operation = if name == OPERATION_REGENERATE {
        "Regenerate"
    } else {
        "Recover"
    };
    Ok(Resource::Parameters(Box::new(Parameters {
        parameter: vec![
            param("status", code(&answer.status, SessionStatus::Analyzing.wire())),
            param("operation", code(&answer.operation, operation)),
            param("follow", reference(format!("Encounter/{id}"))),
            param("documentReference", reference(format!("DocumentReference/{id}"))),
        ],
        ..Default::default()
    })))
}

/// What the adapter serves.
fn capabilities() -> Capabilities {
    use Interaction::{Read, SearchType};
    let summary_operation = |name, description| OperationDef {
        name,
        description,
        affects_state: true,
        target: OperationTarget::Own,
        asynchronous: true,
        parameters: SUMMARY_OPERATION_PARAMS,
        performer: Performer::Provider,
    };
    let types = [
        (ResourceType::Encounter, vec![Read, SearchType], vec![], vec![]),
        (
            ResourceType::DocumentReference,
            vec![Read, SearchType],
            vec![systems::PROFILE_US_CORE_DOCUMENTREFERENCE],
            vec![
                summary_operation(
                    OPERATION_REGENERATE,
                    "Ask Noa to write the visit summary again from the recording; the new summary must be verified by the doctor again (completion: the Encounter in `follow` shows Summarized)",
                ),
                summary_operation(
                    OPERATION_RECOVER,
                    "Ask Noa to bring back the original summary content; it must be verified by the doctor again (completion: the Encounter in `follow` shows Summarized)",
                ),
            ],
        ),
        (
            ResourceType::Appointment,
            vec![],
            vec![],
            vec![OperationDef {
                name: OPERATION_START_SCRIBE,
                description: "Start (or resume) a Noa Notes AI scribe session for an EHR appointment: registers the facility and doctor at Noa and answers the recorder URL, the session token and the session's Encounter",
                affects_state: true,
                target: OperationTarget::AnySource,
                asynchronous: false,
                parameters: START_SCRIBE_PARAMS,
                performer: Performer::Provider,
            }],
        ),
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
                    patient_writes: vec![],
                },
            )
            .collect(),
    }
}

/// Deserializes one Noa object; the error names the kind of object, never its content.
fn decode<T: DeserializeOwned>(value: Value, kind: &'static str) -> Result<T, AdapterError> {
    serde_json::from_value(value).map_err(|_| {
        tracing::warn!(kind, "a Noa object does not have the documented shape");
        unmappable(format!("a Noa {kind} could not be read"))
    })
}

/// A mapping failure, naming the kind of object, never its content.
fn mapping(kind: &'static str) -> impl Fn(MapError) -> AdapterError {
    move |error| {
        tracing::warn!(kind, error = %error, "a Noa object could not be mapped to FHIR");
        unmappable(format!("a Noa {kind} could not be mapped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ehr_failure_is_a_transient_failure_of_the_noa_call() {
        let limited = AdapterError::RateLimited {
            vendor: "drchrono",
            retry_after: Some(std::time::Duration::from_secs(7)),
        };
        assert_eq!(ehr_failure(limited.clone(), "drchrono", "x"), limited);
        let timeout = AdapterError::Timeout { vendor: "drchrono" };
        assert_eq!(ehr_failure(timeout.clone(), "drchrono", "x"), timeout);
        for other in [
            AdapterError::Unmappable {
                vendor: "drchrono",
                detail: "bad".into(),
            },
            AdapterError::VendorAuth { vendor: "drchrono" },
            AdapterError::Forbidden { detail: "no".into() },
        ] {
            let failed = ehr_failure(other, "drchrono", "a session's episode");
            assert!(failed.is_transient(), "{failed:?}");
            assert_eq!(
                failed.to_string(),
                "noa is unavailable: the EHR (drchrono) could not be read for a session's episode"
            );
        }
    }

    #[test]
    fn capabilities_declare_the_operations() {
        let c = capabilities();
        assert!(c.supports(ResourceType::Encounter, Interaction::Read));
        assert!(c.supports(ResourceType::DocumentReference, Interaction::SearchType));
        assert!(!c.supports(ResourceType::Appointment, Interaction::Read));
        let start = &c.resource(ResourceType::Appointment).unwrap().operations[0];
        assert_eq!(start.name, "start-scribe");
        assert_eq!(start.target, OperationTarget::AnySource);
        assert!(start.affects_state && !start.asynchronous);
        let ops = &c.resource(ResourceType::DocumentReference).unwrap().operations;
        let names: Vec<_> = ops.iter().map(|o| o.name).collect();
        assert_eq!(names, ["regenerate", "recover"]);
        assert!(
            ops.iter()
                .all(|o| o.asynchronous && o.affects_state && o.target == OperationTarget::Own)
        );
        assert!(SUMMARY_OPERATION_PARAMS.iter().any(|p| p.name == "follow"));
    }

    #[test]
    fn summary_operations_answer_follow_and_the_document() {
        let answer = wire::SessionOperation {
            session_id: "s".into(),
            status: "Analyzing".into(),
            operation: "Regenerate".into(),
        };
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let out = summary_operation_outcome(id, "regenerate", &answer).unwrap();
        let json = fhirbolt::json::to_json_value(out, None).unwrap();
        assert_eq!(json["parameter"][0]["valueCode"], "Analyzing");
        assert_eq!(json["parameter"][1]["valueCode"], "Regenerate");
        assert_eq!(json["parameter"][2]["name"], "follow");
        assert_eq!(
            json["parameter"][2]["valueReference"]["reference"],
            format!("Encounter/noa-{id}")
        );
        assert_eq!(
            json["parameter"][3]["valueReference"]["reference"],
            format!("DocumentReference/noa-{id}")
        );
        let out = summary_operation_outcome(id, "recover", &wire::SessionOperation::default()).unwrap();
        let json = fhirbolt::json::to_json_value(out, None).unwrap();
        assert_eq!(json["parameter"][0]["valueCode"], "Analyzing");
        assert_eq!(json["parameter"][1]["valueCode"], "Recover");
    }
}
