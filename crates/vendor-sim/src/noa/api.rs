//! The `/api/v1` handlers (sign-in is in [`super::auth`]), problem details, and the session
//! list's paging.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use data_encoding::BASE64URL_NOPAD;
use rand::{Rng, RngCore};
use serde::Serialize;

use super::auth::{self, Scope};
use super::data::parse_ts;
use super::lifecycle::{NewSession, Plan, Session, is_uuid};
use super::wire::{
    CreateDoctor, CreateSession, Doctor, Facility, LANGUAGES, NameBody, Operation, OperationAccepted, Problem,
    SessionCreated, SessionList, SessionStatus, VISIT_TYPES,
};
use super::{Shared, lock};

/// An error answered as RFC 7807 problem details (`application/problem+json`).
#[derive(Debug)]
pub(crate) struct ApiProblem {
    status: StatusCode,
    kind: String,
    title: String,
    detail: Option<String>,
    errors: Option<BTreeMap<String, Vec<String>>>,
}

/// The RFC 9110 section of a status, as ASP.NET's problem `type`s point at.
fn type_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        401 => "https://tools.ietf.org/html/rfc9110#section-15.5.2",
        403 => "https://tools.ietf.org/html/rfc9110#section-15.5.4",
        404 => "https://tools.ietf.org/html/rfc9110#section-15.5.5",
        405 => "https://tools.ietf.org/html/rfc9110#section-15.5.6",
        409 => "https://tools.ietf.org/html/rfc9110#section-15.5.10",
        429 => "https://tools.ietf.org/html/rfc6585#section-4",
        _ => "https://tools.ietf.org/html/rfc9110#section-15.6.1",
    }
}

impl ApiProblem {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind: type_for(status).into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            detail: Some(detail.into()),
            errors: None,
        }
    }

    /// 400, ASP.NET's validation problem with one field's message.
    pub(crate) fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::validation_many(BTreeMap::from([(field.to_owned(), vec![message.into()])]))
    }

    pub(crate) fn validation_many(errors: BTreeMap<String, Vec<String>>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: type_for(StatusCode::BAD_REQUEST).into(),
            title: "One or more validation errors occurred.".into(),
            detail: None,
            errors: Some(errors),
        }
    }

    /// A body that is not the expected JSON (`$` is the body, as ASP.NET names it).
    pub(crate) fn invalid_body(error: &serde_json::Error) -> Self {
        Self::validation(
            "$",
            format!("The request body is not valid JSON for this operation: {error}"),
        )
    }

    pub(crate) fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub(crate) fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub(crate) fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    pub(crate) fn unspecified_version() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "https://docs.api-versioning.org/problems#unspecified".into(),
            title: "Unspecified API version".into(),
            detail: Some("An API version is required, but was not specified.".into()),
            errors: None,
        }
    }

    pub(crate) fn unsupported_version(uri: &Uri, version: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "https://docs.api-versioning.org/problems#unsupported".into(),
            title: "Unsupported API version".into(),
            detail: Some(format!(
                "The HTTP resource that matches the request URI '{}' does not support the API version '{version}'.",
                uri.path()
            )),
            errors: None,
        }
    }

    pub(crate) fn ambiguous_version(versions: &[String]) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "https://docs.api-versioning.org/problems#ambiguous".into(),
            title: "Ambiguous API version".into(),
            detail: Some(format!(
                "The following API versions were requested: {}. At most, only a single API version may be specified.",
                versions.join(", ")
            )),
            errors: None,
        }
    }
}

/// A W3C trace-context id, as ASP.NET puts in `traceId`.
fn trace_id() -> String {
    let mut rng = rand::rng();
    format!("00-{:032x}-{:016x}-00", rng.random::<u128>(), rng.random::<u64>())
}

impl IntoResponse for ApiProblem {
    fn into_response(self) -> Response {
        let problem = Problem {
            r#type: self.kind,
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors,
            trace_id: trace_id(),
        };
        let mut response = (self.status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json; charset=utf-8"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
    }
}

/// A JSON response with status. Serialized straight to bytes: a `serde_json::Value` would sort
/// the keys of templates.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = (status, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            response
        }
        Err(_) => {
            ApiProblem::new(StatusCode::INTERNAL_SERVER_ERROR, "The answer could not be written.").into_response()
        }
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/clients/authenticate", post(auth::authenticate))
        .route("/api/v1/consumers/sessions", post(create_session).get(list_sessions))
        .route("/api/v1/consumers/sessions/{session_id}/status", get(session_status))
        .route("/api/v1/consumers/sessions/{session_id}/summary", get(session_summary))
        .route("/api/v1/consumers/sessions/{session_id}/recover", post(recover))
        .route("/api/v1/consumers/sessions/{session_id}/regenerate", post(regenerate))
        .route("/api/v1/sessions/{session_id}/status", get(session_status))
        .route("/api/v1/sessions/{session_id}/summary", get(session_summary))
        .route(
            "/api/v1/consumers/facilities/{facility_id}",
            put(put_facility).get(get_facility),
        )
        .route(
            "/api/v1/consumers/facilities/{facility_id}/doctors",
            post(create_doctor),
        )
        .route(
            "/api/v1/consumers/facilities/{facility_id}/doctors/{doctor_id}",
            put(put_doctor).get(get_doctor),
        )
}

/// A text field that counts as absent when blank.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn push_error(errors: &mut BTreeMap<String, Vec<String>>, field: &str, message: impl Into<String>) {
    errors.entry(field.to_owned()).or_default().push(message.into());
}

/// A session id from a path: lower-cased, 400 when it is not a UUID.
fn session_id(raw: &str) -> Result<String, ApiProblem> {
    if is_uuid(raw) {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(ApiProblem::validation(
            "sessionId",
            format!("The value '{raw}' is not valid."),
        ))
    }
}

fn session_not_found(id: &str) -> ApiProblem {
    ApiProblem::not_found(format!("Session '{id}' was not found."))
}

/// `POST /api/v1/consumers/sessions`.
async fn create_session(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    // Straight from the bytes: going through `serde_json::Value` would sort the template.
    let request: CreateSession = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return ApiProblem::invalid_body(&error).into_response(),
    };
    let mut errors = BTreeMap::new();
    let episode_id = present(&request.episode_id);
    if episode_id.is_none() {
        push_error(&mut errors, "EpisodeId", "The EpisodeId field is required.");
    }
    let doctor_id = present(&request.doctor_id);
    if doctor_id.is_none() {
        push_error(&mut errors, "DoctorId", "The DoctorId field is required.");
    }
    if let Some(language) = &request.language
        && !LANGUAGES.contains(&language.as_str())
    {
        push_error(
            &mut errors,
            "Language",
            format!("'{language}' is not a supported language ({}).", LANGUAGES.join(", ")),
        );
    }
    if let Some(visit_type) = &request.visit_type
        && !VISIT_TYPES.contains(&visit_type.as_str())
    {
        push_error(
            &mut errors,
            "VisitType",
            format!("'{visit_type}' is not a visit type (FirstVisit, FollowUpVisit or null)."),
        );
    }
    let webhook_url = present(&request.webhook_url);
    if let Some(raw) = webhook_url
        && !url::Url::parse(raw).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
    {
        push_error(
            &mut errors,
            "WebhookUrl",
            "The WebhookUrl field must be an absolute http(s) URL.",
        );
    }
    let (Some(episode_id), Some(doctor_id)) = (episode_id, doctor_id) else {
        return ApiProblem::validation_many(errors).into_response();
    };
    if !errors.is_empty() {
        return ApiProblem::validation_many(errors).into_response();
    }
    let facility_id = present(&request.facility_id);

    let now = shared.now();
    let mut state = lock(&shared.state);
    match facility_id {
        Some(facility) => {
            if state.facility(facility).is_none() {
                return ApiProblem::not_found(format!("Facility '{facility}' is not registered.")).into_response();
            }
            if state.doctor(facility, doctor_id).is_none() {
                return ApiProblem::not_found(format!(
                    "Doctor '{doctor_id}' is not registered at facility '{facility}'."
                ))
                .into_response();
            }
        }
        None => {
            if !state.doctors.iter().any(|d| d.external_doctor_id == doctor_id) {
                return ApiProblem::not_found(format!("Doctor '{doctor_id}' is not registered at any facility."))
                    .into_response();
            }
        }
    }
    let existing = state.sessions.iter().find(|s| {
        s.details.episode_id == episode_id
            && s.details.doctor_id == doctor_id
            && s.details.facility_id.as_deref() == facility_id
            && !s.details.status.is_terminal()
    });
    let (status_code, session_id, status) = match existing {
        Some(session) => (
            StatusCode::OK,
            session.details.session_id.clone(),
            session.details.status,
        ),
        None => {
            let config = &shared.config;
            let new = {
                let mut rng = lock(&shared.ids);
                let session_id = super::lifecycle::uuid(&mut *rng);
                let plan = Plan::draw_with_rates(
                    &mut *rng,
                    config.expired_rate,
                    config.interrupted_rate,
                    config.failed_rate,
                );
                NewSession {
                    session_id,
                    consumer_id: state.consumer_id.clone(),
                    episode_id: episode_id.to_owned(),
                    doctor_id: doctor_id.to_owned(),
                    facility_id: facility_id.map(str::to_owned),
                    visit_type: request.visit_type.clone(),
                    language: request.language.clone().unwrap_or_else(|| "en-US".into()),
                    speciality: present(&request.speciality).map(str::to_owned),
                    metadata: request.metadata.clone(),
                    template: request.template.clone(),
                    webhook_url: webhook_url.map(str::to_owned),
                    plan,
                    content_seed: rng.next_u64(),
                }
            };
            let ttl = TimeDelta::from_std(config.session_ttl).unwrap_or(TimeDelta::hours(2));
            let session = Session::create(&new, now, ttl);
            let id = session.details.session_id.clone();
            state.sessions.push(session);
            state.sort_sessions();
            (StatusCode::CREATED, id, SessionStatus::New)
        }
    };
    let consumer_id = state.consumer_id.clone();
    drop(state);
    let session_token = lock(&shared.tokens).issue(Scope::Session(session_id.clone()), shared.config.session_ttl);
    let origin = shared.origin();
    json_response(
        status_code,
        &SessionCreated {
            recorder_url: format!("{origin}/recorder/sessions/{session_id}"),
            summary_url: format!("{origin}/recorder/sessions/{session_id}/summary"),
            session_id,
            session_token,
            consumer_id,
            expires_in: shared.config.session_ttl.as_secs(),
            status,
        },
    )
}

/// `GET …/sessions/{id}/status`.
async fn session_status(State(shared): State<Arc<Shared>>, Path(raw): Path<String>) -> Response {
    let id = match session_id(&raw) {
        Ok(id) => id,
        Err(problem) => return problem.into_response(),
    };
    let state = lock(&shared.state);
    match state.session(&id) {
        Some(session) => json_response(StatusCode::OK, &session.details),
        None => session_not_found(&id).into_response(),
    }
}

/// `GET …/sessions/{id}/summary`.
async fn session_summary(State(shared): State<Arc<Shared>>, Path(raw): Path<String>) -> Response {
    let id = match session_id(&raw) {
        Ok(id) => id,
        Err(problem) => return problem.into_response(),
    };
    let state = lock(&shared.state);
    match state.session(&id) {
        Some(session) => match &session.summary {
            Some(summary) => json_response(StatusCode::OK, summary),
            None => ApiProblem::not_found(format!(
                "Session '{id}' has no summary (status {}).",
                session.details.status
            ))
            .into_response(),
        },
        None => session_not_found(&id).into_response(),
    }
}

async fn recover(State(shared): State<Arc<Shared>>, Path(raw): Path<String>) -> Response {
    redo(&shared, &raw, Operation::Recover)
}

async fn regenerate(State(shared): State<Arc<Shared>>, Path(raw): Path<String>) -> Response {
    redo(&shared, &raw, Operation::Regenerate)
}

fn redo(shared: &Shared, raw: &str, operation: Operation) -> Response {
    let id = match session_id(raw) {
        Ok(id) => id,
        Err(problem) => return problem.into_response(),
    };
    let now = shared.now();
    let mut state = lock(&shared.state);
    let Ok(session) = state.session_mut(&id) else {
        return session_not_found(&id).into_response();
    };
    if session.summary.is_none() {
        return ApiProblem::conflict(format!(
            "Session '{id}' has no summary yet (status {}).",
            session.details.status
        ))
        .into_response();
    }
    if let Some(running) = session.operation {
        return ApiProblem::conflict(format!("A {running:?} of session '{id}' is already running.")).into_response();
    }
    match session.redo(operation, now) {
        Ok(change) => {
            shared.publish(vec![change]);
            json_response(
                StatusCode::ACCEPTED,
                &OperationAccepted {
                    session_id: id,
                    status: SessionStatus::Analyzing,
                    operation,
                },
            )
        }
        Err(error) => ApiProblem::conflict(error.to_string()).into_response(),
    }
}

/// A `{"name"}` body's name, 400 when missing or blank.
fn name_from(body: &Bytes) -> Result<String, ApiProblem> {
    let request: NameBody = serde_json::from_slice(body).map_err(|e| ApiProblem::invalid_body(&e))?;
    present(&request.name)
        .map(str::to_owned)
        .ok_or_else(|| ApiProblem::validation("Name", "The Name field is required."))
}

/// `PUT /api/v1/consumers/facilities/{id}`: 201 created, 200 renamed.
async fn put_facility(State(shared): State<Arc<Shared>>, Path(facility_id): Path<String>, body: Bytes) -> Response {
    let name = match name_from(&body) {
        Ok(name) => name,
        Err(problem) => return problem.into_response(),
    };
    let mut state = lock(&shared.state);
    if let Some(facility) = state
        .facilities
        .iter_mut()
        .find(|f| f.external_facility_id == facility_id)
    {
        facility.name = name;
        return json_response(StatusCode::OK, facility);
    }
    let facility = Facility {
        external_facility_id: facility_id,
        name,
    };
    state.facilities.push(facility.clone());
    json_response(StatusCode::CREATED, &facility)
}

async fn get_facility(State(shared): State<Arc<Shared>>, Path(facility_id): Path<String>) -> Response {
    let state = lock(&shared.state);
    match state.facility(&facility_id) {
        Some(facility) => json_response(StatusCode::OK, facility),
        None => ApiProblem::not_found(format!("Facility '{facility_id}' is not registered.")).into_response(),
    }
}

/// `POST /api/v1/consumers/facilities/{id}/doctors`.
async fn create_doctor(State(shared): State<Arc<Shared>>, Path(facility_id): Path<String>, body: Bytes) -> Response {
    let request: CreateDoctor = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return ApiProblem::invalid_body(&error).into_response(),
    };
    let mut errors = BTreeMap::new();
    let name = present(&request.name);
    if name.is_none() {
        push_error(&mut errors, "Name", "The Name field is required.");
    }
    let doctor_id = present(&request.external_doctor_id);
    if doctor_id.is_none() {
        push_error(
            &mut errors,
            "ExternalDoctorId",
            "The ExternalDoctorId field is required.",
        );
    }
    let (Some(name), Some(doctor_id)) = (name, doctor_id) else {
        return ApiProblem::validation_many(errors).into_response();
    };
    let mut state = lock(&shared.state);
    if state.facility(&facility_id).is_none() {
        return ApiProblem::not_found(format!("Facility '{facility_id}' is not registered.")).into_response();
    }
    if state.doctor(&facility_id, doctor_id).is_some() {
        return ApiProblem::conflict(format!(
            "Doctor '{doctor_id}' is already registered at facility '{facility_id}'."
        ))
        .into_response();
    }
    let doctor = Doctor {
        external_doctor_id: doctor_id.to_owned(),
        external_facility_id: facility_id,
        name: name.to_owned(),
    };
    state.doctors.push(doctor.clone());
    json_response(StatusCode::CREATED, &doctor)
}

fn doctor_not_found(facility_id: &str, doctor_id: &str) -> ApiProblem {
    ApiProblem::not_found(format!(
        "Doctor '{doctor_id}' is not registered at facility '{facility_id}'."
    ))
}

/// `PUT /api/v1/consumers/facilities/{id}/doctors/{id}`: renames.
async fn put_doctor(
    State(shared): State<Arc<Shared>>,
    Path((facility_id, doctor_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let name = match name_from(&body) {
        Ok(name) => name,
        Err(problem) => return problem.into_response(),
    };
    let mut state = lock(&shared.state);
    if state.facility(&facility_id).is_none() {
        return ApiProblem::not_found(format!("Facility '{facility_id}' is not registered.")).into_response();
    }
    match state
        .doctors
        .iter_mut()
        .find(|d| d.external_facility_id == facility_id && d.external_doctor_id == doctor_id)
    {
        Some(doctor) => {
            doctor.name = name;
            json_response(StatusCode::OK, doctor)
        }
        None => doctor_not_found(&facility_id, &doctor_id).into_response(),
    }
}

async fn get_doctor(
    State(shared): State<Arc<Shared>>,
    Path((facility_id, doctor_id)): Path<(String, String)>,
) -> Response {
    let state = lock(&shared.state);
    if state.facility(&facility_id).is_none() {
        return ApiProblem::not_found(format!("Facility '{facility_id}' is not registered.")).into_response();
    }
    match state.doctor(&facility_id, &doctor_id) {
        Some(doctor) => json_response(StatusCode::OK, doctor),
        None => doctor_not_found(&facility_id, &doctor_id).into_response(),
    }
}

pub(crate) const DEFAULT_PAGE_SIZE: usize = 50;
pub(crate) const MAX_PAGE_SIZE: usize = 100;
/// Real time a page token stays usable.
const PAGE_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The list's filters.
#[derive(Clone, Debug, Default)]
struct Filter {
    episode_id: Option<String>,
    doctor_id: Option<String>,
    facility_id: Option<String>,
    statuses: Vec<SessionStatus>,
    created_from: Option<DateTime<Utc>>,
    created_to: Option<DateTime<Utc>>,
}

impl Filter {
    fn matches(&self, session: &Session) -> bool {
        let details = &session.details;
        self.episode_id.as_ref().is_none_or(|e| *e == details.episode_id)
            && self.doctor_id.as_ref().is_none_or(|d| *d == details.doctor_id)
            && self
                .facility_id
                .as_ref()
                .is_none_or(|f| details.facility_id.as_ref() == Some(f))
            && (self.statuses.is_empty() || self.statuses.contains(&details.status))
            && self.created_from.is_none_or(|from| session.created >= from)
            && self.created_to.is_none_or(|to| session.created < to)
    }
}

/// Where the next page starts: after `(createdAt, sessionId)`.
#[derive(Clone, Debug)]
struct Cursor {
    filter: Filter,
    after: (DateTime<Utc>, String),
    page_size: usize,
    expires_at: Instant,
}

/// Page tokens handed out by the list.
#[derive(Default)]
pub(crate) struct PageStore {
    cursors: HashMap<String, Cursor>,
}

impl PageStore {
    fn issue(&mut self, cursor: Cursor) -> String {
        let now = Instant::now();
        self.cursors.retain(|_, c| c.expires_at > now);
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let token = BASE64URL_NOPAD.encode(&bytes);
        self.cursors.insert(token.clone(), cursor);
        token
    }

    fn resolve(&self, token: &str) -> Option<Cursor> {
        self.cursors
            .get(token)
            .filter(|c| c.expires_at > Instant::now())
            .cloned()
    }
}

/// `GET /api/v1/consumers/sessions`.
async fn list_sessions(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let values = |key: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let last = |key: &str| values(key).pop();
    let mut errors = BTreeMap::new();
    let page_size = match last("pageSize") {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if n >= 1 => Some(usize::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)),
            _ => {
                push_error(&mut errors, "pageSize", "pageSize must be a number from 1 to 100.");
                None
            }
        },
    };
    let (filter, after, size) = match last("pageToken") {
        Some(token) => match lock(&shared.pages).resolve(&token) {
            Some(cursor) => (cursor.filter, Some(cursor.after), page_size.unwrap_or(cursor.page_size)),
            None => {
                push_error(&mut errors, "pageToken", "The page token is unknown or has expired.");
                (Filter::default(), None, DEFAULT_PAGE_SIZE)
            }
        },
        None => {
            let mut statuses = Vec::new();
            for raw in values("status") {
                for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match SessionStatus::parse(part) {
                        Some(status) => statuses.push(status),
                        None => push_error(&mut errors, "status", format!("'{part}' is not a session status.")),
                    }
                }
            }
            let mut bound = |key: &str| -> Option<DateTime<Utc>> {
                let raw = last(key)?;
                let parsed = parse_ts(&raw);
                if parsed.is_none() {
                    push_error(&mut errors, key, format!("'{raw}' is not an RFC 3339 date-time."));
                }
                parsed
            };
            let created_from = bound("createdFrom");
            let created_to = bound("createdTo");
            let filter = Filter {
                episode_id: last("episodeId"),
                doctor_id: last("doctorId"),
                facility_id: last("facilityId"),
                statuses,
                created_from,
                created_to,
            };
            (filter, None, page_size.unwrap_or(DEFAULT_PAGE_SIZE))
        }
    };
    if !errors.is_empty() {
        return ApiProblem::validation_many(errors).into_response();
    }
    let (items, more) = {
        let state = lock(&shared.state);
        let mut matching = state
            .sessions
            .iter()
            .filter(|s| {
                after
                    .as_ref()
                    .is_none_or(|(at, id)| (s.created, &s.details.session_id) > (*at, id))
            })
            .filter(|s| filter.matches(s));
        let items: Vec<&Session> = matching.by_ref().take(size).collect();
        let more = matching.next().is_some();
        let items: Vec<(DateTime<Utc>, super::wire::SessionDetails)> =
            items.into_iter().map(|s| (s.created, s.details.clone())).collect();
        (items, more)
    };
    let next_page_token = match items.last() {
        Some((created, details)) if more => Some(lock(&shared.pages).issue(Cursor {
            filter,
            after: (*created, details.session_id.clone()),
            page_size: size,
            expires_at: Instant::now() + PAGE_TOKEN_TTL,
        })),
        _ => None,
    };
    json_response(
        StatusCode::OK,
        &SessionList {
            items: items.into_iter().map(|(_, details)| details).collect(),
            next_page_token,
        },
    )
}
