//! The audit trail: an IHE BALP-style `AuditEvent` for every FHIR interaction, every token the
//! authorization server issues or refuses and every failed sign-in, appended to the store.
//!
//! The request path only copies what it saw (method, path, query, status, caller, address) into a
//! bounded queue; one writer task per process turns what has queued up (gathering for up to 50 ms)
//! into compact rows and appends them to the store in one transaction per batch; a row's AuditEvent
//! is built when it is read. A failed write is retried (the batch is
//! kept) with a growing pause, counted in `/metrics` (`fhir_gateway_audit_write_failures_total`)
//! and logged; after [`MAX_ATTEMPTS`] the batch is counted as lost
//! (`fhir_gateway_audit_events_lost_total{reason="write"}`) and logged as an error. A full queue
//! loses the new event the same way (`reason="queue"`): nothing is dropped without a count and a log
//! line. The trail is append-only (the store refuses updates); only the retention sweep deletes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::Method;
use base64::Engine as _;
use chrono::{SecondsFormat, TimeZone, Utc};
use serde_json::{Value, json};
use smart_auth::{AuthEvent, AuthEventKind};
use store::{AuditRow, Store};
use tokio::sync::mpsc;

use crate::access::Caller;
use crate::metrics::Metrics;

/// Tries of one batch before its events are counted as lost.
pub const MAX_ATTEMPTS: u32 = 8;
/// The most events written in one transaction.
const BATCH: usize = 1000;
/// How long the writer lets events gather before a write that is not full.
const LINGER: Duration = Duration::from_millis(50);
/// How often old events are swept (and the first sweep after start).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const IHE_EVENT_TYPE: &str = "urn:ihe:event-type-code";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
/// The system of client ids in `agent.who.identifier`.
pub const CLIENT_ID_SYSTEM: &str = "urn:fhir-gateway:client-id";

/// `[audit]`, validated.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Off: nothing is recorded and `/fhir/AuditEvent` is 404.
    pub enabled: bool,
    /// Events older than this are deleted (hourly).
    pub retention: Duration,
    /// Events waiting for the writer at most; past it a new event is counted lost.
    pub queue_capacity: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            // Six years, HIPAA's retention of security documentation.
            retention: Duration::from_secs(6 * 365 * 86_400),
            queue_capacity: 100_000,
        }
    }
}

/// One FHIR interaction as the request path saw it.
#[derive(Debug, Clone)]
pub struct RestEntry {
    pub at_ms: i64,
    pub method: Method,
    /// The path (`/fhir/Patient/drchrono-1`).
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    /// The verified caller; `None` when the token was refused (or none was needed).
    pub caller: Option<Caller>,
    pub ip: Option<IpAddr>,
}

enum Entry {
    Rest(RestEntry),
    /// With the time it was received, in milliseconds (the event's own is in seconds).
    Auth(AuthEvent, i64),
}

/// Records audit events: cheap on the request path, written in batches by a task of its own.
pub struct Auditor {
    queue: mpsc::Sender<Entry>,
    metrics: Arc<Metrics>,
    /// Events lost to a full queue, for a log line every so often rather than one per event.
    queue_lost: AtomicU64,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").finish_non_exhaustive()
    }
}

impl Auditor {
    /// Starts the writer (and the retention sweep) on `store`.
    pub fn start(store: Store, settings: &AuditSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        let (queue, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let auditor = Arc::new(Self {
            queue,
            metrics: metrics.clone(),
            queue_lost: AtomicU64::new(0),
        });
        tokio::spawn(write_batches(store.clone(), rx, metrics.clone()));
        tokio::spawn(sweep(store, settings.retention));
        auditor
    }

    /// Records a FHIR interaction.
    pub fn record_rest(&self, entry: RestEntry) {
        self.push(Entry::Rest(entry));
    }

    fn push(&self, entry: Entry) {
        match self.queue.try_send(entry) {
            Ok(()) => self.metrics.audit_queued(1),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.audit_lost("queue", 1);
                let lost = self.queue_lost.fetch_add(1, Ordering::Relaxed) + 1;
                if lost.is_power_of_two() {
                    tracing::error!(
                        lost,
                        "audit events lost: the audit queue is full (is the store slow or down?)"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.metrics.audit_lost("closed", 1);
                tracing::error!("an audit event was lost: the audit writer has stopped");
            }
        }
    }
}

impl smart_auth::AuthAudit for Auditor {
    fn record(&self, event: AuthEvent) {
        self.push(Entry::Auth(event, Utc::now().timestamp_millis()));
    }
}

/// The writer: whatever has queued up (at most [`BATCH`]) in one transaction.
async fn write_batches(store: Store, mut rx: mpsc::Receiver<Entry>, metrics: Arc<Metrics>) {
    let mut entries = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut entries, BATCH).await > 0 {
        // Let a busy gateway's events gather a moment: one transaction (and one fsync) per batch,
        // not per handful of requests.
        if entries.len() < BATCH {
            tokio::time::sleep(LINGER).await;
            while entries.len() < BATCH {
                match rx.try_recv() {
                    Ok(entry) => entries.push(entry),
                    Err(_) => break,
                }
            }
        }
        let rows: Vec<AuditRow> = entries.drain(..).map(row).collect();
        metrics.audit_dequeued(rows.len());
        let mut pause = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match store.audit_append(&rows).await {
                Ok(_) => {
                    metrics.audit_written(rows.len());
                    break;
                }
                Err(e) if attempt < MAX_ATTEMPTS => {
                    metrics.audit_write_failed();
                    tracing::warn!(error = %e, events = rows.len(), attempt, "writing audit events failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
                Err(e) => {
                    metrics.audit_write_failed();
                    metrics.audit_lost("write", rows.len());
                    tracing::error!(error = %e, events = rows.len(), "audit events lost: the store refused them {MAX_ATTEMPTS} times");
                    break;
                }
            }
        }
    }
}

/// Deletes events past the retention, at start and hourly.
async fn sweep(store: Store, retention: Duration) {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        let before = store::now().saturating_mul(1000).saturating_sub(retention_ms);
        match store.audit_sweep(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "audit events past their retention deleted"),
            Err(e) => tracing::warn!(error = %e, "sweeping old audit events failed; trying again later"),
        }
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}

/// The FHIR interaction of a method and a `/fhir` path: `(subtype code, action, type, id)`.
pub fn interaction(method: &Method, path: &str) -> (&'static str, &'static str, Option<String>, Option<String>) {
    let rest = path.strip_prefix("/fhir").unwrap_or(path).trim_matches('/');
    let parts: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    let ty = parts.first().filter(|t| !t.starts_with('$')).map(|t| (*t).to_owned());
    let id = parts
        .get(1)
        .filter(|i| !i.starts_with('$') && !i.starts_with('_'))
        .map(|i| (*i).to_owned());
    let operation = parts.last().is_some_and(|p| p.starts_with('$'));
    let (code, action) = if operation {
        ("operation", "E")
    } else {
        match (
            parts.len(),
            method.as_str(),
            parts.get(1).copied(),
            parts.get(2).copied(),
        ) {
            (0, _, _, _) => ("batch", "E"),
            (1, "GET" | "HEAD", _, _) | (2, "POST", Some("_search"), _) => ("search-type", "E"),
            (1, "POST", _, _) => ("create", "C"),
            (2, "GET" | "HEAD", _, _) => ("read", "R"),
            (2, "PUT", _, _) => ("update", "U"),
            (2, "PATCH", _, _) => ("patch", "U"),
            (2, "DELETE", _, _) => ("delete", "D"),
            (2, _, Some("_history"), _) => ("history-type", "R"),
            (3, _, _, Some("_history")) => ("history-instance", "R"),
            (4, _, _, Some("_history")) => ("vread", "R"),
            _ => ("operation", "E"),
        }
    };
    (code, action, ty, id)
}

/// The patient an interaction is about, as far as the request says: a patient-facing caller's own,
/// a `Patient/{id}` path, else a `patient`/`subject` search parameter naming one.
fn patient_of(entry: &RestEntry, ty: Option<&str>, id: Option<&str>) -> Option<String> {
    if let Some(own) = entry.caller.as_ref().and_then(Caller::own_patient) {
        return Some(format!("Patient/{own}"));
    }
    if ty == Some("Patient")
        && let Some(id) = id
    {
        return Some(format!("Patient/{id}"));
    }
    let query = entry.query.as_deref()?;
    url::form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| {
        let name = k.split(':').next().unwrap_or("");
        let v = v.split(',').next().unwrap_or("").trim();
        let id = match name {
            "patient" => v.strip_prefix("Patient/").unwrap_or(v),
            "subject" => v.strip_prefix("Patient/")?,
            "_id" if ty == Some("Patient") => v,
            _ => return None,
        };
        adapter::id::is_valid_fhir_id(id).then(|| format!("Patient/{id}"))
    })
}

fn outcome_of_status(status: u16) -> &'static str {
    match status {
        0..=399 => "0",
        400..=499 => "4",
        _ => "8",
    }
}

fn recorded(at_ms: i64) -> String {
    Utc.timestamp_millis_opt(at_ms)
        .single()
        .unwrap_or_else(Utc::now)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

/// The gateway as the event's source.
fn source() -> Value {
    json!({
        "observer": {"display": "fhir-gateway"},
        "type": [coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")],
    })
}

/// The agents: the client application and, when there is one, the user (the requestor).
fn agents(client_id: Option<&str>, user: Option<&str>, username: Option<&str>, ip: Option<IpAddr>) -> Vec<Value> {
    let network = ip.map(|ip| json!({"address": ip.to_string(), "type": "2"}));
    let mut out = Vec::new();
    if let Some(client) = client_id {
        let mut agent = json!({
            "type": {"coding": [coding(DCM, "110150", "Application")]},
            "who": {"identifier": {"system": CLIENT_ID_SYSTEM, "value": client}},
            "requestor": user.is_none() && username.is_none(),
        });
        if let Some(n) = &network {
            agent["network"] = n.clone();
        }
        out.push(agent);
    }
    if user.is_some() || username.is_some() {
        let mut agent = json!({"requestor": true});
        if let Some(user) = user {
            agent["who"] = json!({"reference": user});
        }
        if let Some(name) = username {
            agent["altId"] = json!(name);
        }
        if let Some(n) = &network {
            agent["network"] = n.clone();
        }
        out.push(agent);
    }
    if out.is_empty() {
        // Nobody authenticated: the caller is known by its address only.
        let mut agent = json!({"requestor": true});
        if let Some(n) = network {
            agent["network"] = n;
        }
        out.push(agent);
    }
    out
}

fn patient_entity(patient: &str) -> Value {
    json!({
        "what": {"reference": patient},
        "type": coding(ENTITY_TYPE, "1", "Person"),
        "role": coding(OBJECT_ROLE, "1", "Patient"),
    })
}

/// What a row keeps beyond its columns, to build its AuditEvent when it is read: the write path
/// stores these few fields, not the resource (building and storing ~1 KB of JSON per request is
/// what the audit trail would otherwise cost).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Detail {
    /// The request method (interactions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<String>,
    /// The path (interactions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    /// The query of a search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<String>,
    /// `outcomeDesc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<String>,
    /// The username typed at a failed sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    /// `grant: scopes` of an issued token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    g: Option<String>,
}

/// The stored row of a queued entry.
fn row(entry: Entry) -> AuditRow {
    match entry {
        Entry::Rest(e) => rest_row(&e),
        Entry::Auth(e, at_ms) => auth_row(&e, at_ms),
    }
}

fn rest_row(e: &RestEntry) -> AuditRow {
    let (code, action, ty, id) = interaction(&e.method, &e.path);
    let patient = patient_of(e, ty.as_deref(), id.as_deref());
    let grant = match &e.caller {
        Some(Caller::Token(g)) => Some(g),
        _ => None,
    };
    // A patient's own record is named once, in `patient` (the store's `entity` search looks there
    // too, and an empty column costs its index nothing).
    let entity = match (&ty, &id) {
        (Some(t), Some(i)) => Some(format!("{t}/{i}")),
        (Some(t), None) => Some(t.clone()),
        _ => None,
    }
    .filter(|entity| patient.as_deref() != Some(entity.as_str()));
    let outcome = outcome_of_status(e.status);
    let detail = Detail {
        m: Some(e.method.as_str().to_owned()),
        p: Some(e.path.clone()),
        q: e.query.clone().filter(|_| code == "search-type"),
        d: (outcome != "0").then(|| format!("HTTP {}", e.status)),
        ..Detail::default()
    };
    AuditRow {
        id: 0,
        recorded_ms: e.at_ms,
        type_code: "rest".to_owned(),
        subtype: code.to_owned(),
        action: action.to_owned(),
        outcome: outcome.to_owned(),
        client_id: grant.map(|g| g.client_id.clone()),
        user_ref: grant.and_then(|g| g.fhir_user.clone()),
        patient,
        entity,
        ip: e.ip.map(|ip| ip.to_string()),
        resource: serde_json::to_string(&detail).unwrap_or_default(),
    }
}

fn auth_row(e: &AuthEvent, at_ms: i64) -> AuditRow {
    let (subtype, outcome, desc) = match e.kind {
        AuthEventKind::TokenIssued => ("ITI-71", "0", None),
        AuthEventKind::TokenRefused => (
            "ITI-71",
            "4",
            Some(format!("token refused: {}", e.error.as_deref().unwrap_or("error"))),
        ),
        AuthEventKind::LoginFailed => (
            "110122",
            "4",
            Some("sign-in failed: wrong username or password".to_owned()),
        ),
        AuthEventKind::LoginLocked => (
            "110122",
            "4",
            Some("sign-in refused: locked out after too many failures".to_owned()),
        ),
    };
    let patient = e.patient.as_deref().map(|p| {
        if p.starts_with("Patient/") {
            p.to_owned()
        } else {
            format!("Patient/{p}")
        }
    });
    let detail = Detail {
        d: desc,
        u: e.username.clone(),
        g: e.grant_type.zip(e.scope.as_ref()).map(|(g, s)| format!("{g}: {s}")),
        ..Detail::default()
    };
    AuditRow {
        id: 0,
        recorded_ms: at_ms,
        type_code: "110114".to_owned(),
        subtype: subtype.to_owned(),
        action: "E".to_owned(),
        outcome: outcome.to_owned(),
        client_id: e.client_id.clone(),
        user_ref: e.fhir_user.clone(),
        patient,
        entity: None,
        ip: e.ip.map(|ip| ip.to_string()),
        resource: serde_json::to_string(&detail).unwrap_or_default(),
    }
}

/// The AuditEvent of a stored row, with its id.
pub fn resource_of(row: &AuditRow) -> Value {
    let detail: Detail = serde_json::from_str(&row.resource).unwrap_or_default();
    let ip: Option<IpAddr> = row.ip.as_deref().and_then(|ip| ip.parse().ok());
    let mut entities = Vec::new();
    if let Some(p) = &row.patient {
        entities.push(patient_entity(p));
    }
    let mut resource = if row.type_code == "rest" {
        let code = row.subtype.as_str();
        if let Some(entity) = &row.entity
            && entity.contains('/')
            && row.patient.as_deref() != Some(entity.as_str())
        {
            entities.push(json!({
                "what": {"reference": entity},
                "type": coding(ENTITY_TYPE, "2", "System Object"),
                "role": coding(OBJECT_ROLE, "4", "Domain Resource"),
            }));
        }
        if let Some(q) = &detail.q {
            let request = format!(
                "{} {}?{q}",
                detail.m.as_deref().unwrap_or("GET"),
                detail.p.as_deref().unwrap_or_default()
            );
            entities.push(json!({
                "type": coding(ENTITY_TYPE, "2", "System Object"),
                "role": coding(OBJECT_ROLE, "24", "Query"),
                "description": row.entity.clone().unwrap_or_default(),
                "query": base64::engine::general_purpose::STANDARD.encode(request.as_bytes()),
            }));
        }
        json!({
            "resourceType": "AuditEvent",
            "type": coding(AUDIT_EVENT_TYPE, "rest", "RESTful Operation"),
            "subtype": [coding(RESTFUL_INTERACTION, code, code)],
            "agent": agents(row.client_id.as_deref(), row.user_ref.as_deref(), None, ip),
        })
    } else {
        let subtype = if row.subtype == "ITI-71" {
            coding(IHE_EVENT_TYPE, "ITI-71", "Get Access Token")
        } else {
            coding(DCM, "110122", "Login")
        };
        if let Some(g) = &detail.g {
            entities.push(json!({"type": coding(ENTITY_TYPE, "4", "Other"), "description": g}));
        }
        json!({
            "resourceType": "AuditEvent",
            "type": coding(DCM, "110114", "User Authentication"),
            "subtype": [subtype],
            "agent": agents(row.client_id.as_deref(), row.user_ref.as_deref(), detail.u.as_deref(), ip),
        })
    };
    resource["id"] = json!(row.id.to_string());
    resource["action"] = json!(row.action);
    resource["recorded"] = json!(recorded(row.recorded_ms));
    resource["outcome"] = json!(row.outcome);
    if let Some(d) = detail.d {
        resource["outcomeDesc"] = json!(d);
    }
    resource["source"] = source();
    if !entities.is_empty() {
        resource["entity"] = Value::Array(entities);
    }
    resource
}

/// The peer address of a request served with connect info (or given by `MockConnectInfo` in tests).
pub fn peer_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    use axum::extract::ConnectInfo;
    use axum::extract::connect_info::MockConnectInfo;
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| extensions.get::<MockConnectInfo<SocketAddr>>().map(|m| m.0))
        .map(|a| match a.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(method: Method, path: &str, query: Option<&str>, caller: Option<Caller>, status: u16) -> AuditRow {
        rest_row(&RestEntry {
            at_ms: 1_700_000_000_123,
            method,
            path: path.to_owned(),
            query: query.map(str::to_owned),
            status,
            caller,
            ip: Some("10.1.2.3".parse().unwrap()),
        })
    }

    #[test]
    fn interactions_are_named_from_method_and_path() {
        let cases = [
            (Method::GET, "/fhir/Patient/drchrono-1", "read", "R"),
            (Method::GET, "/fhir/Patient", "search-type", "E"),
            (Method::POST, "/fhir/Patient/_search", "search-type", "E"),
            (Method::POST, "/fhir/Appointment", "create", "C"),
            (Method::PUT, "/fhir/Appointment/zoom-1", "update", "U"),
            (Method::PATCH, "/fhir/Appointment/zoom-1", "patch", "U"),
            (Method::DELETE, "/fhir/Appointment/zoom-1", "delete", "D"),
            (
                Method::POST,
                "/fhir/Appointment/drchrono-1/$start-scribe",
                "operation",
                "E",
            ),
            (Method::GET, "/fhir/$export", "operation", "E"),
            (Method::GET, "/fhir/Patient/1/_history/2", "vread", "R"),
        ];
        for (method, path, code, action) in cases {
            let (c, a, _, _) = interaction(&method, path);
            assert_eq!((c, a), (code, action), "{method} {path}");
        }
    }

    #[test]
    fn a_read_names_client_user_patient_and_address() {
        let caller = Caller::token("app", "user/*.rs", None, Some("Practitioner/drchrono-7"));
        let row = rest(Method::GET, "/fhir/Patient/drchrono-9", None, Some(caller), 200);
        assert_eq!(row.patient.as_deref(), Some("Patient/drchrono-9"));
        assert_eq!(row.entity, None, "the patient is named once");
        assert_eq!(row.client_id.as_deref(), Some("app"));
        assert_eq!(row.user_ref.as_deref(), Some("Practitioner/drchrono-7"));
        assert_eq!((row.outcome.as_str(), row.subtype.as_str()), ("0", "read"));
        let r = resource_of(&row);
        assert_eq!(r["recorded"], "2023-11-14T22:13:20.123Z");
        assert_eq!(r["agent"][0]["who"]["identifier"]["value"], "app");
        assert_eq!(r["agent"][0]["requestor"], false);
        assert_eq!(r["agent"][1]["who"]["reference"], "Practitioner/drchrono-7");
        assert_eq!(r["agent"][1]["network"]["address"], "10.1.2.3");
        assert_eq!(r["entity"][0]["what"]["reference"], "Patient/drchrono-9");
        assert_eq!(r["entity"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_search_keeps_its_query_and_the_patient_it_names() {
        let caller = Caller::token("backend", "system/*.rs", None, None);
        let row = rest(
            Method::GET,
            "/fhir/Appointment",
            Some("patient=drchrono-4&date=ge2026-01-01"),
            Some(caller),
            200,
        );
        assert_eq!(row.patient.as_deref(), Some("Patient/drchrono-4"));
        let r = resource_of(&row);
        let query = r["entity"][1]["query"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(query).unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "GET /fhir/Appointment?patient=drchrono-4&date=ge2026-01-01"
        );
        assert_eq!(r["agent"][0]["requestor"], true, "a backend service is the requestor");
    }

    #[test]
    fn a_patient_facing_caller_is_recorded_with_their_patient_and_refusals_as_failures() {
        let row = rest(
            Method::GET,
            "/fhir/Encounter/noa-1",
            None,
            Some(Caller::patient("drchrono-2")),
            403,
        );
        assert_eq!(row.patient.as_deref(), Some("Patient/drchrono-2"));
        assert_eq!(row.outcome, "4");
        let r = resource_of(&row);
        assert_eq!(r["outcomeDesc"], "HTTP 403");
        let unauthenticated = rest(Method::GET, "/fhir/Patient", None, None, 401);
        assert_eq!(unauthenticated.client_id, None);
        let r = resource_of(&unauthenticated);
        assert_eq!(r["agent"][0]["network"]["address"], "10.1.2.3");
        assert_eq!(rest(Method::GET, "/fhir/Patient", None, None, 503).outcome, "8");
    }

    #[test]
    fn auth_events_are_user_authentication() {
        let row = auth_row(
            &AuthEvent {
                kind: AuthEventKind::LoginFailed,
                at: 1_700_000_000,
                client_id: Some("demo-app".into()),
                fhir_user: None,
                username: Some("dr.demo".into()),
                patient: None,
                grant_type: None,
                scope: None,
                error: None,
                ip: Some("::1".parse().unwrap()),
            },
            1_700_000_000_500,
        );
        assert_eq!(
            (row.type_code.as_str(), row.subtype.as_str(), row.outcome.as_str()),
            ("110114", "110122", "4")
        );
        let r = resource_of(&row);
        assert_eq!(r["agent"][1]["altId"], "dr.demo");
        assert_eq!(r["agent"][1]["network"]["address"], "::1");
    }

    fn entry() -> RestEntry {
        RestEntry {
            at_ms: Utc::now().timestamp_millis(),
            method: Method::GET,
            path: "/fhir/Patient/drchrono-1".to_owned(),
            query: None,
            status: 200,
            caller: None,
            ip: None,
        }
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A store that fails: the failed write is counted (and retried with the batch kept), and
    /// events the full queue cannot take are counted lost, by reason. Nothing goes uncounted.
    #[tokio::test]
    async fn failing_writes_and_a_full_queue_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&store::StoreSettings::sqlite(dir.path().join("g.db")))
            .await
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let settings = AuditSettings {
            queue_capacity: 1,
            ..AuditSettings::default()
        };
        let auditor = Auditor::start(store.clone(), &settings, metrics.clone());
        auditor.record_rest(entry());
        let written = || metrics.render().contains("fhir_gateway_audit_events_total 1\n");
        until("the first event is written", written).await;

        store.close().await;
        auditor.record_rest(entry());
        let failed = || !metrics.render().contains("fhir_gateway_audit_write_failures_total 0\n");
        until("the failed write is counted", failed).await;
        // The writer holds the failed batch; the queue takes one more, the rest are lost.
        for _ in 0..3 {
            auditor.record_rest(entry());
        }
        let text = metrics.render();
        assert!(
            text.contains("fhir_gateway_audit_events_lost_total{reason=\"queue\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("fhir_gateway_audit_queue 1\n"), "{text}");
        assert!(
            text.contains("fhir_gateway_audit_events_lost_total{reason=\"write\"} 0\n"),
            "{text}"
        );
    }
}
