//! The Healthcare API of `zoom-healthcare-api.md`: virtual visits, patients and invitations,
//! the waiting room, providers and their availability.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use serde_json::{Map, Value};

use super::api::{
    ApiError, ApiResult, Params, json_response, merge, object_body, opt_bool, opt_int, opt_string, range,
};
use super::data::{self, local_to_utc, normalize_phone, parse_ts, ts};
use super::ops::{api_error, transition_allowed, visit_object};
use super::paging::{Echo, ListKind, paginate};
use super::wire::*;
use super::{Shared, lock};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v2/healthcare/visits", get(list_visits).post(create_visit))
        .route(
            "/v2/healthcare/visits/{visit_id}",
            get(get_visit).patch(patch_visit).delete(delete_visit),
        )
        .route("/v2/healthcare/patients", post(create_patient))
        .route(
            "/v2/healthcare/patients/{patient_id}",
            get(get_patient).patch(patch_patient),
        )
        .route("/v2/healthcare/patients/{patient_id}/invite", post(invite))
        .route("/v2/healthcare/waiting_room", get(waiting_room))
        .route("/v2/healthcare/waiting_room/{patient_id}/admit", post(admit))
        .route("/v2/healthcare/waiting_room/{patient_id}/notify", post(notify))
        .route("/v2/healthcare/providers", get(list_providers))
        .route("/v2/healthcare/providers/{provider_id}", get(get_provider))
        .route(
            "/v2/healthcare/providers/{provider_id}/availability",
            get(get_availability).patch(patch_availability),
        )
}

fn respond(result: ApiResult) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

fn required_string(body: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    opt_string(body, key)?
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::field(key, format!("{key} is required.")))
}

fn visit_type_field(body: &Map<String, Value>) -> Result<Option<VisitType>, ApiError> {
    opt_string(body, "visit_type")?
        .map(|raw| {
            VisitType::parse(&raw).ok_or_else(|| {
                ApiError::field(
                    "visit_type",
                    "visit_type must be one of initial_consultation, follow_up, urgent_care, mental_health, group_therapy, specialist_consult.",
                )
            })
        })
        .transpose()
}

fn scheduled_time_field(body: &Map<String, Value>) -> Result<Option<DateTime<Utc>>, ApiError> {
    opt_string(body, "scheduled_time")?
        .map(|raw| {
            parse_ts(&raw).ok_or_else(|| {
                ApiError::field(
                    "scheduled_time",
                    "scheduled_time must be yyyy-MM-dd'T'HH:mm:ss'Z' (or carry an offset).",
                )
            })
        })
        .transpose()
}

fn ehr_context_field(body: &Map<String, Value>) -> Result<Option<EhrContext>, ApiError> {
    match body.get("ehr_context") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|_| ApiError::field("ehr_context", "ehr_context must be an object of strings.")),
    }
}

/// `field` of `body` laid over `current`, when present.
fn merged<T>(body: &Map<String, Value>, field: &str, current: &T) -> Result<Option<T>, ApiError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => merge(current, value, field).map(Some),
    }
}

// ---------------------------------------------------------------------------------------------
// Visits

async fn create_visit(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    respond(create_visit_impl(&shared, &body))
}

fn create_visit_impl(shared: &Shared, body: &Bytes) -> ApiResult {
    let body = object_body(body, false)?;
    let patient_id = required_string(&body, "patient_id")?;
    let provider_id = required_string(&body, "provider_id")?;
    let scheduled =
        scheduled_time_field(&body)?.ok_or_else(|| ApiError::field("scheduled_time", "scheduled_time is required."))?;
    let duration = opt_int(&body, "duration_minutes", 5, 480)?.unwrap_or(30);
    let visit_type = visit_type_field(&body)?.unwrap_or(VisitType::FollowUp);
    let reason = opt_string(&body, "reason")?.unwrap_or_default();
    let settings = merged(&body, "settings", &VisitSettings::default())?.unwrap_or_default();
    let meeting_settings = merged(&body, "meeting_settings", &MeetingSettings::default())?.unwrap_or_default();
    let data_retention = merged(&body, "data_retention", &DataRetention::default())?.unwrap_or_default();
    let notifications = merged(&body, "notifications", &VisitNotifications::default())?.unwrap_or_default();
    let ehr_context = ehr_context_field(&body)?;
    let now = shared.now();
    let visit = {
        let mut state = shared.write_state();
        let patient = state
            .patient(&patient_id)
            .ok_or_else(|| ApiError::patient_not_found(&patient_id))?
            .id
            .clone();
        let provider = state
            .provider(&provider_id)
            .ok_or_else(|| ApiError::provider_not_found(&provider_id))?;
        if provider.status != "active" {
            return Err(ApiError::field("provider_id", "The provider is not active."));
        }
        let provider = provider.id.clone();
        let mut rng = lock(&shared.ids);
        let number = data::meeting_number(&mut *rng);
        let (join_url_patient, join_url_provider) = data::join_urls(&mut *rng, number);
        let visit = Visit {
            id: data::prefixed_id(&mut *rng, "visit"),
            patient_id: patient,
            provider_id: provider,
            scheduled_time: ts(scheduled),
            duration_minutes: duration,
            status: VisitStatus::Scheduled,
            visit_type,
            reason,
            join_url_patient,
            join_url_provider,
            meeting_number: number,
            meeting_id: data::meeting_uuid(&mut *rng, 2),
            settings,
            meeting_settings,
            data_retention,
            notifications,
            ehr_context,
            created_at: ts(now),
            updated_at: ts(now),
            patient_joined_at: None,
            started_at: None,
            ended_at: None,
            cancelled_at: None,
        };
        drop(rng);
        let at = state
            .visits
            .partition_point(|v| v.scheduled_time <= visit.scheduled_time);
        state.visits.insert(at, visit.clone());
        visit
    };
    shared.fire(events::VISIT_SCHEDULED, visit_object(&visit));
    Ok(json_response(StatusCode::CREATED, &visit))
}

async fn list_visits(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    respond(list_visits_impl(&shared, &uri))
}

fn list_visits_impl(shared: &Shared, uri: &Uri) -> ApiResult {
    let params = Params::parse(uri);
    let page = paginate(shared, ListKind::Visits, &params, || {
        let statuses: Option<Vec<VisitStatus>> = params
            .get("status")
            .map(|raw| {
                raw.split(',')
                    .map(|s| {
                        VisitStatus::parse(s.trim()).ok_or_else(|| {
                            ApiError::field(
                                "status",
                                "status must be scheduled, waiting, in_progress, completed, cancelled or no_show (comma-separated).",
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let visit_type = params
            .get("visit_type")
            .map(|raw| VisitType::parse(raw).ok_or_else(|| ApiError::field("visit_type", "Unknown visit_type.")))
            .transpose()?;
        let (from, to) = range(&params)?;
        let state = shared.read_state();
        let provider = params
            .get("provider_id")
            .map(|id| state.provider(id).map_or_else(|| id.to_owned(), |p| p.id.clone()));
        let patient = params.get("patient_id");
        let appointment = params.get("ehr_appointment_id");
        let ids = state
            .visits
            .iter()
            .filter(|v| {
                statuses.as_ref().is_none_or(|s| s.contains(&v.status))
                    && visit_type.is_none_or(|t| v.visit_type == t)
                    && provider.as_deref().is_none_or(|p| v.provider_id == p)
                    && patient.is_none_or(|p| v.patient_id == p)
                    && appointment
                        .is_none_or(|a| v.ehr_context.as_ref().and_then(|c| c.appointment_id.as_deref()) == Some(a))
                    && parse_ts(&v.scheduled_time)
                        .is_some_and(|t| from.is_none_or(|f| t >= f) && to.is_none_or(|e| t <= e))
            })
            .map(|v| v.id.clone())
            .collect();
        Ok((ids, Echo::default()))
    })?;
    let state = shared.read_state();
    let visits = page.ids.iter().filter_map(|id| state.visit(id)).cloned().collect();
    Ok(json_response(
        StatusCode::OK,
        &VisitList {
            page_size: page.page_size,
            next_page_token: page.next_page_token,
            total_records: page.total,
            visits,
        },
    ))
}

async fn get_visit(State(shared): State<Arc<Shared>>, Path(visit_id): Path<String>) -> Response {
    let state = shared.read_state();
    match state.visit(&visit_id) {
        Some(visit) => json_response(StatusCode::OK, visit),
        None => ApiError::visit_not_found(&visit_id).into_response(),
    }
}

async fn patch_visit(State(shared): State<Arc<Shared>>, Path(visit_id): Path<String>, body: Bytes) -> Response {
    respond(patch_visit_impl(&shared, &visit_id, &body))
}

fn patch_visit_impl(shared: &Shared, visit_id: &str, body: &Bytes) -> ApiResult {
    let body = object_body(body, false)?;
    let scheduled = scheduled_time_field(&body)?;
    let duration = opt_int(&body, "duration_minutes", 5, 480)?;
    let visit_type = visit_type_field(&body)?;
    let reason = opt_string(&body, "reason")?;
    let provider_id = opt_string(&body, "provider_id")?;
    let ehr_context = ehr_context_field(&body)?;
    let status = opt_string(&body, "status")?
        .map(|raw| VisitStatus::parse(&raw).ok_or_else(|| ApiError::field("status", format!("Unknown status: {raw}."))))
        .transpose()?;
    let now = shared.now();
    {
        let mut state = shared.write_state();
        let provider = match &provider_id {
            Some(id) => Some(
                state
                    .provider(id)
                    .ok_or_else(|| ApiError::provider_not_found(id))?
                    .id
                    .clone(),
            ),
            None => None,
        };
        let visit = state
            .visits
            .iter_mut()
            .find(|v| v.id == visit_id)
            .ok_or_else(|| ApiError::visit_not_found(visit_id))?;
        let settings = merged(&body, "settings", &visit.settings)?;
        let meeting_settings = merged(&body, "meeting_settings", &visit.meeting_settings)?;
        let data_retention = merged(&body, "data_retention", &visit.data_retention)?;
        let notifications = merged(&body, "notifications", &visit.notifications)?;
        let reschedule = scheduled.is_some() || duration.is_some() || provider.is_some();
        if reschedule && visit.status != VisitStatus::Scheduled {
            return Err(ApiError::visit_state(format!(
                "Visit {visit_id} is {}: only a scheduled visit can be rescheduled.",
                visit.status.as_str()
            )));
        }
        if let Some(to) = status {
            let waiting_room = settings.as_ref().unwrap_or(&visit.settings).waiting_room;
            if to != visit.status && !transition_allowed(visit.status, to, waiting_room) {
                return Err(ApiError::visit_state(format!(
                    "Visit {visit_id} is {} and cannot become {}.",
                    visit.status.as_str(),
                    to.as_str()
                )));
            }
        }
        if let Some(t) = scheduled {
            visit.scheduled_time = ts(t);
        }
        if let Some(d) = duration {
            visit.duration_minutes = d;
        }
        if let Some(t) = visit_type {
            visit.visit_type = t;
        }
        if let Some(r) = reason {
            visit.reason = r;
        }
        if let Some(p) = provider {
            visit.provider_id = p;
        }
        if let Some(c) = ehr_context {
            visit.ehr_context = Some(c);
        }
        if let Some(s) = settings {
            visit.settings = s;
        }
        if let Some(s) = meeting_settings {
            visit.meeting_settings = s;
        }
        if let Some(s) = data_retention {
            visit.data_retention = s;
        }
        if let Some(n) = notifications {
            visit.notifications = n;
        }
        visit.updated_at = ts(now);
        if scheduled.is_some() {
            state
                .visits
                .sort_by(|a, b| a.scheduled_time.cmp(&b.scheduled_time).then_with(|| a.id.cmp(&b.id)));
        }
    }
    if let Some(to) = status {
        shared.transition_visit(visit_id, to).map_err(api_error)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_visit(State(shared): State<Arc<Shared>>, Path(visit_id): Path<String>) -> Response {
    respond(
        shared
            .transition_visit(&visit_id, VisitStatus::Cancelled)
            .map(|_| StatusCode::NO_CONTENT.into_response())
            .map_err(api_error),
    )
}

// ---------------------------------------------------------------------------------------------
// Patients

/// Patient fields of a create or update body (`None`: not sent).
struct PatientFields {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    date_of_birth: Option<String>,
    language: Option<String>,
    ehr_context: Option<EhrContext>,
}

fn patient_fields(body: &Map<String, Value>) -> Result<PatientFields, ApiError> {
    let name = |key: &str| -> Result<Option<String>, ApiError> {
        match opt_string(body, key)? {
            Some(s) if s.trim().is_empty() => Err(ApiError::field(key, format!("{key} must not be empty."))),
            other => Ok(other.map(|s| s.trim().to_owned())),
        }
    };
    let email = opt_string(body, "email")?.map(|e| e.trim().to_owned());
    if let Some(email) = &email
        && !email.is_empty()
        && !email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
    {
        return Err(ApiError::field("email", "Invalid email address."));
    }
    let date_of_birth = opt_string(body, "date_of_birth")?;
    if let Some(dob) = &date_of_birth
        && NaiveDate::parse_from_str(dob, "%Y-%m-%d").is_err()
    {
        return Err(ApiError::field("date_of_birth", "date_of_birth must be yyyy-MM-dd."));
    }
    Ok(PatientFields {
        first_name: name("first_name")?,
        last_name: name("last_name")?,
        email,
        phone: opt_string(body, "phone")?.map(|p| normalize_phone(&p)),
        date_of_birth,
        language: opt_string(body, "language")?,
        ehr_context: ehr_context_field(body)?,
    })
}

async fn create_patient(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    respond(create_patient_impl(&shared, &body))
}

fn create_patient_impl(shared: &Shared, body: &Bytes) -> ApiResult {
    let body = object_body(body, false)?;
    let fields = patient_fields(&body)?;
    let first_name = fields
        .first_name
        .ok_or_else(|| ApiError::field("first_name", "first_name is required."))?;
    let last_name = fields
        .last_name
        .ok_or_else(|| ApiError::field("last_name", "last_name is required."))?;
    let now = ts(shared.now());
    let patient = Patient {
        id: shared.next_id("pat"),
        first_name,
        last_name,
        email: fields.email.unwrap_or_default(),
        phone: fields.phone.unwrap_or_default(),
        date_of_birth: fields.date_of_birth,
        language: fields.language.unwrap_or_else(|| "en-US".into()),
        ehr_context: fields.ehr_context,
        created_at: now.clone(),
        updated_at: now,
    };
    shared.write_state().patients.push(patient.clone());
    Ok(json_response(StatusCode::CREATED, &patient))
}

async fn get_patient(State(shared): State<Arc<Shared>>, Path(patient_id): Path<String>) -> Response {
    let state = shared.read_state();
    match state.patient(&patient_id) {
        Some(patient) => json_response(StatusCode::OK, patient),
        None => ApiError::patient_not_found(&patient_id).into_response(),
    }
}

async fn patch_patient(State(shared): State<Arc<Shared>>, Path(patient_id): Path<String>, body: Bytes) -> Response {
    respond(patch_patient_impl(&shared, &patient_id, &body))
}

fn patch_patient_impl(shared: &Shared, patient_id: &str, body: &Bytes) -> ApiResult {
    let body = object_body(body, false)?;
    let fields = patient_fields(&body)?;
    let now = ts(shared.now());
    let mut state = shared.write_state();
    let patient = state
        .patients
        .iter_mut()
        .find(|p| p.id == patient_id)
        .ok_or_else(|| ApiError::patient_not_found(patient_id))?;
    if let Some(v) = fields.first_name {
        patient.first_name = v;
    }
    if let Some(v) = fields.last_name {
        patient.last_name = v;
    }
    if let Some(v) = fields.email {
        patient.email = v;
    }
    if let Some(v) = fields.phone {
        patient.phone = v;
    }
    if let Some(v) = fields.date_of_birth {
        patient.date_of_birth = Some(v);
    }
    if let Some(v) = fields.language {
        patient.language = v;
    }
    if let Some(v) = fields.ehr_context {
        patient.ehr_context = Some(v);
    }
    patient.updated_at = now;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn invite(State(shared): State<Arc<Shared>>, Path(patient_id): Path<String>, body: Bytes) -> Response {
    respond(invite_impl(&shared, &patient_id, &body))
}

fn invite_impl(shared: &Shared, patient_id: &str, body: &Bytes) -> ApiResult {
    let body = object_body(body, false)?;
    let bad_channels = || {
        ApiError::field(
            "channels",
            "channels must be a non-empty array of \"email\" and \"sms\".",
        )
    };
    let mut channels: Vec<String> = Vec::new();
    match body.get("channels") {
        Some(Value::Array(items)) if !items.is_empty() => {
            for item in items {
                match item.as_str() {
                    Some(c @ ("email" | "sms")) => {
                        if !channels.iter().any(|x| x == c) {
                            channels.push(c.to_owned());
                        }
                    }
                    _ => return Err(bad_channels()),
                }
            }
        }
        _ => return Err(bad_channels()),
    }
    let visit_id = opt_string(&body, "visit_id")?;
    let message = opt_string(&body, "message")?;
    let now = ts(shared.now());
    let id = shared.next_id("inv");
    let mut state = shared.write_state();
    let patient = state
        .patient(patient_id)
        .ok_or_else(|| ApiError::patient_not_found(patient_id))?;
    if channels.iter().any(|c| c == "email") && patient.email.is_empty() {
        return Err(ApiError::field("channels", "The patient has no email address."));
    }
    if channels.iter().any(|c| c == "sms") && patient.phone.is_empty() {
        return Err(ApiError::field("channels", "The patient has no phone number."));
    }
    let visit = match &visit_id {
        Some(id) => {
            let visit = state.visit(id).ok_or_else(|| ApiError::visit_not_found(id))?;
            if visit.patient_id != patient_id {
                return Err(ApiError::field("visit_id", "The visit is not this patient's."));
            }
            if visit.status.is_final() {
                return Err(ApiError::visit_state(format!(
                    "Visit {id} is {}: nothing to invite to.",
                    visit.status.as_str()
                )));
            }
            Some(visit.clone())
        }
        None => None,
    };
    let invitation = Invitation {
        id,
        patient_id: patient_id.to_owned(),
        visit_id,
        channels,
        message: message.unwrap_or_else(|| match &visit {
            Some(v) => format!("Your telehealth appointment is scheduled for {}.", v.scheduled_time),
            None => "You are invited to a telehealth visit.".into(),
        }),
        status: "sent".into(),
        join_url: visit.map(|v| v.join_url_patient),
        sent_at: now,
    };
    state.invitations.push(invitation.clone());
    Ok(json_response(StatusCode::CREATED, &invitation))
}

// ---------------------------------------------------------------------------------------------
// Waiting room

async fn waiting_room(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    respond(waiting_room_impl(&shared, &uri))
}

fn waiting_room_impl(shared: &Shared, uri: &Uri) -> ApiResult {
    let params = Params::parse(uri);
    let page = paginate(shared, ListKind::WaitingRoom, &params, || {
        let state = shared.read_state();
        let provider = match params.get("provider_id") {
            Some(id) => Some(
                state
                    .provider(id)
                    .ok_or_else(|| ApiError::provider_not_found(id))?
                    .id
                    .clone(),
            ),
            None => None,
        };
        let mut waiting: Vec<&Visit> = state
            .visits
            .iter()
            .filter(|v| v.status == VisitStatus::Waiting && provider.as_deref().is_none_or(|p| v.provider_id == p))
            .collect();
        waiting.sort_by(|a, b| {
            a.patient_joined_at
                .cmp(&b.patient_joined_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok((waiting.into_iter().map(|v| v.id.clone()).collect(), Echo::default()))
    })?;
    let now = shared.now();
    let state = shared.read_state();
    let patients = page
        .ids
        .iter()
        .filter_map(|id| state.visit(id))
        .filter(|v| v.status == VisitStatus::Waiting)
        .map(|v| {
            let patient = state.patient(&v.patient_id);
            let joined = v.patient_joined_at.clone().unwrap_or_else(|| v.updated_at.clone());
            WaitingPatient {
                patient_id: v.patient_id.clone(),
                visit_id: v.id.clone(),
                provider_id: v.provider_id.clone(),
                first_name: patient.map(|p| p.first_name.clone()).unwrap_or_default(),
                last_name: patient.map(|p| p.last_name.clone()).unwrap_or_default(),
                scheduled_time: v.scheduled_time.clone(),
                waiting_minutes: parse_ts(&joined).map_or(0, |t| (now - t).num_minutes().max(0)),
                joined_at: joined,
            }
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &WaitingRoom {
            page_size: page.page_size,
            next_page_token: page.next_page_token,
            total_records: page.total,
            patients,
        },
    ))
}

/// The patient's waiting visit (the given one, else the one waiting longest).
fn waiting_visit(shared: &Shared, patient_id: &str, visit_id: Option<&str>) -> Result<String, ApiError> {
    let state = shared.read_state();
    state
        .patient(patient_id)
        .ok_or_else(|| ApiError::patient_not_found(patient_id))?;
    state
        .visits
        .iter()
        .filter(|v| {
            v.patient_id == patient_id && v.status == VisitStatus::Waiting && visit_id.is_none_or(|id| v.id == id)
        })
        .min_by(|a, b| a.patient_joined_at.cmp(&b.patient_joined_at))
        .map(|v| v.id.clone())
        .ok_or_else(|| ApiError::visit_state(format!("Patient {patient_id} is not in the waiting room.")))
}

async fn admit(State(shared): State<Arc<Shared>>, Path(patient_id): Path<String>, body: Bytes) -> Response {
    respond(admit_impl(&shared, &patient_id, &body))
}

fn admit_impl(shared: &Shared, patient_id: &str, body: &Bytes) -> ApiResult {
    let body = object_body(body, true)?;
    let visit_id = opt_string(&body, "visit_id")?;
    let visit_id = waiting_visit(shared, patient_id, visit_id.as_deref())?;
    let visit = shared
        .transition_visit(&visit_id, VisitStatus::InProgress)
        .map_err(api_error)?;
    Ok(json_response(StatusCode::OK, &visit))
}

async fn notify(State(shared): State<Arc<Shared>>, Path(patient_id): Path<String>, body: Bytes) -> Response {
    respond(notify_impl(&shared, &patient_id, &body))
}

fn notify_impl(shared: &Shared, patient_id: &str, body: &Bytes) -> ApiResult {
    let body = object_body(body, true)?;
    let visit_id = opt_string(&body, "visit_id")?;
    let message = opt_string(&body, "message")?
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| "Your provider will be with you shortly.".into());
    let visit_id = waiting_visit(shared, patient_id, visit_id.as_deref())?;
    let notification = WaitingRoomNotification {
        id: shared.next_id("ntf"),
        patient_id: patient_id.to_owned(),
        visit_id,
        message,
        sent_at: ts(shared.now()),
    };
    shared.write_state().waiting_room_notifications.push(notification);
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// Providers

async fn list_providers(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    respond(list_providers_impl(&shared, &uri))
}

fn list_providers_impl(shared: &Shared, uri: &Uri) -> ApiResult {
    let params = Params::parse(uri);
    let page = paginate(shared, ListKind::Providers, &params, || {
        let state = shared.read_state();
        Ok((state.providers.iter().map(|p| p.id.clone()).collect(), Echo::default()))
    })?;
    let state = shared.read_state();
    let providers = page
        .ids
        .iter()
        .filter_map(|id| state.providers.iter().find(|p| p.id == *id))
        .cloned()
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &ProviderList {
            page_size: page.page_size,
            next_page_token: page.next_page_token,
            total_records: page.total,
            providers,
        },
    ))
}

async fn get_provider(State(shared): State<Arc<Shared>>, Path(provider_id): Path<String>) -> Response {
    let state = shared.read_state();
    match state.provider(&provider_id) {
        Some(provider) => json_response(StatusCode::OK, provider),
        None => ApiError::provider_not_found(&provider_id).into_response(),
    }
}

async fn get_availability(State(shared): State<Arc<Shared>>, Path(provider_id): Path<String>, uri: Uri) -> Response {
    respond(get_availability_impl(&shared, &provider_id, &uri))
}

/// Longest `from`..`to` span for computed slots.
const MAX_SLOT_DAYS: i64 = 31;

fn get_availability_impl(shared: &Shared, provider_id: &str, uri: &Uri) -> ApiResult {
    let params = Params::parse(uri);
    let date = |key: &str| -> Result<Option<NaiveDate>, ApiError> {
        params
            .get(key)
            .map(|raw| {
                NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                    .map_err(|_| ApiError::field(key, format!("{key} must be yyyy-MM-dd.")))
            })
            .transpose()
    };
    let from = date("from")?;
    let to = date("to")?;
    let now = shared.now();
    let state = shared.read_state();
    let provider = state
        .provider(provider_id)
        .ok_or_else(|| ApiError::provider_not_found(provider_id))?;
    let mut availability = state
        .availability_of(&provider.id)
        .cloned()
        .ok_or_else(|| ApiError::provider_not_found(provider_id))?;
    if let Some(from) = from {
        let to = to.unwrap_or(from + Duration::days(6));
        if to < from {
            return Err(ApiError::field("to", "to must not be before from."));
        }
        if (to - from).num_days() >= MAX_SLOT_DAYS {
            return Err(ApiError::field("to", "The range may span at most 31 days."));
        }
        availability.available_slots = Some(slots(&availability, &state.visits, from, to, now));
    }
    Ok(json_response(StatusCode::OK, &availability))
}

fn hhmm(raw: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(raw, "%H:%M").ok()
}

/// Free slots between `from` and `to` (dates in the availability's zone), after `now`, not
/// overlapping the provider's scheduled, waiting or in-progress visits.
fn slots(
    availability: &Availability,
    visits: &[Visit],
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> Vec<Slot> {
    let tz: chrono_tz::Tz = availability.timezone.parse().unwrap_or(chrono_tz::UTC);
    let step = Duration::minutes(availability.slot_duration_minutes.max(5));
    let booked: Vec<(DateTime<Utc>, DateTime<Utc>)> = visits
        .iter()
        .filter(|v| {
            v.provider_id == availability.provider_id
                && matches!(
                    v.status,
                    VisitStatus::Scheduled | VisitStatus::Waiting | VisitStatus::InProgress
                )
        })
        .filter_map(|v| {
            let start = parse_ts(&v.scheduled_time)?;
            Some((start, start + Duration::minutes(v.duration_minutes)))
        })
        .collect();
    let mut out = Vec::new();
    let mut day = from;
    while day <= to {
        let date = day.format("%Y-%m-%d").to_string();
        let weekday = data_weekday(day);
        let windows: Vec<(NaiveTime, NaiveTime)> = match availability.date_overrides.iter().find(|o| o.date == date) {
            Some(o) if !o.available => Vec::new(),
            Some(o) => o
                .start_time
                .as_deref()
                .and_then(hhmm)
                .zip(o.end_time.as_deref().and_then(hhmm))
                .into_iter()
                .collect(),
            None => availability
                .weekly_hours
                .iter()
                .filter(|h| h.day == weekday)
                .filter_map(|h| Some((hhmm(&h.start_time)?, hhmm(&h.end_time)?)))
                .collect(),
        };
        for (open, close) in windows {
            let mut start = local_to_utc(day.and_time(open), tz);
            let end = local_to_utc(day.and_time(close), tz);
            while start + step <= end && out.len() < 2000 {
                let slot_end = start + step;
                let free = !booked.iter().any(|(b0, b1)| start < *b1 && *b0 < slot_end);
                if start >= now && free {
                    out.push(Slot {
                        start_time: ts(start),
                        end_time: ts(slot_end),
                    });
                }
                start = slot_end;
            }
        }
        day += Duration::days(1);
    }
    out.sort_by(|a, b| a.start_time.cmp(&b.start_time));
    out
}

fn data_weekday(day: NaiveDate) -> &'static str {
    match day.weekday() {
        chrono::Weekday::Mon => "monday",
        chrono::Weekday::Tue => "tuesday",
        chrono::Weekday::Wed => "wednesday",
        chrono::Weekday::Thu => "thursday",
        chrono::Weekday::Fri => "friday",
        chrono::Weekday::Sat => "saturday",
        chrono::Weekday::Sun => "sunday",
    }
}

async fn patch_availability(
    State(shared): State<Arc<Shared>>,
    Path(provider_id): Path<String>,
    body: Bytes,
) -> Response {
    respond(patch_availability_impl(&shared, &provider_id, &body))
}

fn valid_window(start: &str, end: &str) -> bool {
    matches!((hhmm(start), hhmm(end)), (Some(s), Some(e)) if s < e)
}

fn patch_availability_impl(shared: &Shared, provider_id: &str, body: &Bytes) -> ApiResult {
    let body = object_body(body, false)?;
    let timezone = opt_string(&body, "timezone")?;
    if let Some(tz) = &timezone
        && tz.parse::<chrono_tz::Tz>().is_err()
    {
        return Err(ApiError::field("timezone", "timezone must be an IANA time zone."));
    }
    let slot_duration = opt_int(&body, "slot_duration_minutes", 5, 240)?;
    let accepting = opt_bool(&body, "accepting_new_patients")?;
    let visit_types: Option<Vec<VisitType>> = match body.get("visit_types") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            serde_json::from_value(value.clone())
                .map_err(|_| ApiError::field("visit_types", "visit_types must be an array of visit types."))?,
        ),
    };
    let weekly_hours: Option<Vec<WeeklyHours>> = match body.get("weekly_hours") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let hours: Vec<WeeklyHours> = serde_json::from_value(value.clone()).map_err(|_| {
                ApiError::field(
                    "weekly_hours",
                    "weekly_hours must be an array of {day, start_time, end_time}.",
                )
            })?;
            for h in &hours {
                let day_ok = [
                    "monday",
                    "tuesday",
                    "wednesday",
                    "thursday",
                    "friday",
                    "saturday",
                    "sunday",
                ]
                .contains(&h.day.as_str());
                if !day_ok || !valid_window(&h.start_time, &h.end_time) {
                    return Err(ApiError::field(
                        "weekly_hours",
                        "Each entry needs a day (monday…sunday) and HH:MM start_time before end_time.",
                    ));
                }
            }
            Some(hours)
        }
    };
    let date_overrides: Option<Vec<DateOverride>> = match body.get("date_overrides") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let mut overrides: Vec<DateOverride> = serde_json::from_value(value.clone()).map_err(|_| {
                ApiError::field(
                    "date_overrides",
                    "date_overrides must be an array of {date, available[, start_time, end_time, reason]}.",
                )
            })?;
            for o in &mut overrides {
                let date_ok = NaiveDate::parse_from_str(&o.date, "%Y-%m-%d").is_ok();
                let hours_ok =
                    !o.available || matches!((&o.start_time, &o.end_time), (Some(s), Some(e)) if valid_window(s, e));
                if !date_ok || !hours_ok {
                    return Err(ApiError::field(
                        "date_overrides",
                        "Each entry needs a yyyy-MM-dd date, and HH:MM start_time before end_time when available.",
                    ));
                }
                if !o.available {
                    o.start_time = None;
                    o.end_time = None;
                }
            }
            overrides.sort_by(|a, b| a.date.cmp(&b.date));
            Some(overrides)
        }
    };
    let now = ts(shared.now());
    let mut state = shared.write_state();
    let id = state
        .provider(provider_id)
        .ok_or_else(|| ApiError::provider_not_found(provider_id))?
        .id
        .clone();
    let availability = state
        .availability
        .iter_mut()
        .find(|a| a.provider_id == id)
        .ok_or_else(|| ApiError::provider_not_found(provider_id))?;
    if let Some(v) = timezone {
        availability.timezone = v;
    }
    if let Some(v) = slot_duration {
        availability.slot_duration_minutes = v;
    }
    if let Some(v) = accepting {
        availability.accepting_new_patients = v;
    }
    if let Some(v) = visit_types {
        availability.visit_types = v;
    }
    if let Some(v) = weekly_hours {
        availability.weekly_hours = v;
    }
    if let Some(v) = date_overrides {
        availability.date_overrides = v;
    }
    availability.updated_at = now;
    Ok(StatusCode::NO_CONTENT.into_response())
}
