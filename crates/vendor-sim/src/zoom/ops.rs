//! Changes to the account that fire webhooks — note creation, edits and completion, visit
//! transitions — shared by the API handlers, [`super::ZoomSimHandle`] and the `/_sim` control
//! routes.
//!
//! Visit lifecycle: scheduled → waiting (patient joins) → in_progress (admitted) → completed;
//! scheduled or waiting → cancelled or no_show; a visit without a waiting room may start straight
//! from scheduled. Completed, cancelled and no-show are final. Asking for the status a visit
//! already has changes nothing and fires nothing.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ApiError, codes, json_response};
use super::data::{self, ts, ts_ms};
use super::wire::{ClinicalNote, EhrContext, Visit, VisitStatus, events};
use super::{Shared, lock};

/// Why a lifecycle trigger or note change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("{kind} {id} does not exist")]
    NotFound { kind: &'static str, id: String },
    #[error("visit {id} is {} and cannot become {}", from.as_str(), to.as_str())]
    InvalidTransition {
        id: String,
        from: VisitStatus,
        to: VisitStatus,
    },
    #[error("{0}")]
    Invalid(String),
}

/// A note to create through [`super::ZoomSimHandle::create_note`] (or `POST /_sim/notes`).
/// Everything is optional: a note for `visit_id` takes the visit's meeting, provider (as owner),
/// EHR context and times; otherwise the note is for a new meeting ending now.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewNote {
    pub visit_id: Option<String>,
    /// Zoom user id of a provider with Clinical Notes enabled.
    pub owner_user_id: Option<String>,
    pub meeting_id: Option<String>,
    pub title: Option<String>,
    /// Markdown; synthetic SOAP content when absent.
    pub content: Option<String>,
    pub ehr_context: Option<EhrContext>,
    pub completed: bool,
}

fn not_found(kind: &'static str, id: &str) -> SimError {
    SimError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

/// What a webhook says about a note: everything but its content (fetch it with the API).
fn note_object(note: &ClinicalNote) -> Value {
    let mut object = serde_json::to_value(note).unwrap_or_else(|_| json!({}));
    if let Some(map) = object.as_object_mut() {
        map.remove("note_content");
    }
    object
}

/// What a webhook says about a visit: everything but the join URLs.
pub(crate) fn visit_object(visit: &Visit) -> Value {
    let mut object = serde_json::to_value(visit).unwrap_or_else(|_| json!({}));
    if let Some(map) = object.as_object_mut() {
        map.remove("join_url_patient");
        map.remove("join_url_provider");
    }
    object
}

/// Whether `from` may become `to` (`waiting_room`: the visit's waiting-room setting).
pub(crate) fn transition_allowed(from: VisitStatus, to: VisitStatus, waiting_room: bool) -> bool {
    use VisitStatus::*;
    matches!(
        (from, to),
        (Scheduled, Waiting)
            | (Waiting, InProgress)
            | (InProgress, Completed)
            | (Scheduled | Waiting, Cancelled | NoShow)
    ) || (from == Scheduled && to == InProgress && !waiting_room)
}

impl Shared {
    pub(crate) fn next_id(&self, prefix: &str) -> String {
        data::prefixed_id(&mut *lock(&self.ids), prefix)
    }

    pub(crate) fn fire(&self, event: &str, object: Value) {
        self.webhooks.fire(event, &self.config.account_id, object);
    }

    /// Sets `is_note_completed`; `user` is who did it (the owner when `None`).
    pub(crate) fn set_note_completed(
        &self,
        note_id: &str,
        completed: bool,
        user: Option<&str>,
    ) -> Result<ClinicalNote, SimError> {
        let now = self.now();
        let note = {
            let mut state = self.write_state();
            let note = state
                .clinical_notes
                .iter_mut()
                .find(|n| n.note_id == note_id)
                .ok_or_else(|| not_found("clinical note", note_id))?;
            if note.is_note_completed == completed {
                return Ok(note.clone());
            }
            note.is_note_completed = completed;
            note.note_completed_time = completed.then(|| ts_ms(now));
            note.note_last_modified_time = ts_ms(now);
            note.note_last_modified_user_id = user.map_or_else(|| note.note_owner_user_id.clone(), str::to_owned);
            note.clone()
        };
        let event = if completed {
            events::NOTE_COMPLETED
        } else {
            events::NOTE_UPDATED
        };
        self.fire(event, note_object(&note));
        Ok(note)
    }

    pub(crate) fn update_note_content(&self, note_id: &str, content: &str) -> Result<ClinicalNote, SimError> {
        let now = self.now();
        let note = {
            let mut state = self.write_state();
            let note = state
                .clinical_notes
                .iter_mut()
                .find(|n| n.note_id == note_id)
                .ok_or_else(|| not_found("clinical note", note_id))?;
            note.note_content = content.to_owned();
            note.note_last_modified_time = ts_ms(now);
            note.note_last_modified_user_id = note.note_owner_user_id.clone();
            note.clone()
        };
        self.fire(events::NOTE_UPDATED, note_object(&note));
        Ok(note)
    }

    pub(crate) fn create_note(&self, new: NewNote) -> Result<ClinicalNote, SimError> {
        let now = self.now();
        let note = {
            let mut state = self.write_state();
            let visit = match &new.visit_id {
                Some(id) => Some(state.visit(id).cloned().ok_or_else(|| not_found("visit", id))?),
                None => None,
            };
            let visit_owner = visit
                .as_ref()
                .and_then(|v| state.provider(&v.provider_id))
                .map(|p| p.user_id.clone());
            let owner = match new.owner_user_id.clone().or(visit_owner) {
                Some(user_id) => state
                    .providers
                    .iter()
                    .find(|p| p.user_id == user_id)
                    .ok_or_else(|| not_found("user", &user_id))?,
                None => state
                    .providers
                    .iter()
                    .find(|p| p.clinical_notes_enabled)
                    .ok_or_else(|| SimError::Invalid("no provider has Clinical Notes enabled".into()))?,
            };
            if !owner.clinical_notes_enabled {
                return Err(SimError::Invalid(format!(
                    "Clinical Notes are not enabled for user {}",
                    owner.user_id
                )));
            }
            let owner = owner.clone();
            let duration = visit.as_ref().map_or(20, |v| v.duration_minutes);
            let start = visit
                .as_ref()
                .and_then(|v| v.started_at.as_deref())
                .and_then(data::parse_ts)
                .unwrap_or(now - Duration::minutes(duration));
            let end = visit
                .as_ref()
                .and_then(|v| v.ended_at.as_deref())
                .and_then(data::parse_ts)
                .unwrap_or(now)
                .max(start);
            let (content, note_id, meeting_id, meeting_number) = {
                let mut rng = lock(&self.ids);
                let content = new.content.clone().unwrap_or_else(|| {
                    data::synthetic_note_content(&mut rng, visit.as_ref().map(|v| v.visit_type), duration)
                });
                let meeting_id = new
                    .meeting_id
                    .clone()
                    .or_else(|| visit.as_ref().map(|v| v.meeting_id.clone()))
                    .unwrap_or_else(|| data::meeting_uuid(&mut *rng, 2));
                let meeting_number = visit
                    .as_ref()
                    .map(|v| v.meeting_number)
                    .or_else(|| {
                        state
                            .clinical_notes
                            .iter()
                            .find(|n| n.meeting_id == meeting_id)
                            .map(|n| n.meeting_number)
                    })
                    .unwrap_or_else(|| data::meeting_number(&mut *rng));
                (content, data::note_id(&mut *rng), meeting_id, meeting_number)
            };
            let created = now.max(end);
            let note = ClinicalNote {
                meeting_id,
                meeting_number,
                note_id,
                note_owner_user_id: owner.user_id.clone(),
                note_start_time: ts_ms(start),
                note_end_time: ts_ms(end),
                note_created_time: ts_ms(created),
                note_last_modified_time: ts_ms(created),
                note_last_modified_user_id: owner.user_id.clone(),
                note_title: new.title.clone().unwrap_or_else(|| match &visit {
                    Some(v) => format!("Video visit: {}", v.reason),
                    None => format!("{} {}'s Zoom Meeting", owner.first_name, owner.last_name),
                }),
                note_content: content,
                is_note_completed: new.completed,
                note_completed_time: new.completed.then(|| ts_ms(created)),
                ehr_context: new.ehr_context.clone().or_else(|| visit.and_then(|v| v.ehr_context)),
            };
            state.clinical_notes.push(note.clone());
            note
        };
        self.fire(events::NOTE_CREATED, note_object(&note));
        Ok(note)
    }

    /// Moves a visit to `to`, stamping the lifecycle time and firing its events.
    pub(crate) fn transition_visit(&self, visit_id: &str, to: VisitStatus) -> Result<Visit, SimError> {
        let now = self.now();
        let (visit, from) = {
            let mut state = self.write_state();
            let visit = state
                .visits
                .iter_mut()
                .find(|v| v.id == visit_id)
                .ok_or_else(|| not_found("visit", visit_id))?;
            let from = visit.status;
            if from == to {
                return Ok(visit.clone());
            }
            if !transition_allowed(from, to, visit.settings.waiting_room) {
                return Err(SimError::InvalidTransition {
                    id: visit_id.to_owned(),
                    from,
                    to,
                });
            }
            let stamp = ts(now);
            visit.status = to;
            visit.updated_at = stamp.clone();
            match to {
                VisitStatus::Waiting => visit.patient_joined_at = Some(stamp),
                VisitStatus::InProgress => {
                    if visit.patient_joined_at.is_none() {
                        visit.patient_joined_at = Some(stamp.clone());
                    }
                    visit.started_at = Some(stamp);
                }
                VisitStatus::Completed => visit.ended_at = Some(stamp),
                VisitStatus::Cancelled => visit.cancelled_at = Some(stamp),
                VisitStatus::NoShow | VisitStatus::Scheduled => {}
            }
            (visit.clone(), from)
        };
        let presence = |at: &str| {
            json!({
                "visit_id": visit.id,
                "patient_id": visit.patient_id,
                "provider_id": visit.provider_id,
                "scheduled_time": visit.scheduled_time,
                at: ts(now),
            })
        };
        match to {
            VisitStatus::Waiting => self.fire(events::PATIENT_WAITING, presence("joined_at")),
            VisitStatus::InProgress => {
                if from == VisitStatus::Waiting {
                    self.fire(events::PATIENT_ADMITTED, presence("admitted_at"));
                }
                self.fire(events::VISIT_STARTED, visit_object(&visit));
            }
            VisitStatus::Completed | VisitStatus::NoShow => self.fire(events::VISIT_ENDED, visit_object(&visit)),
            VisitStatus::Cancelled => self.fire(events::VISIT_CANCELLED, visit_object(&visit)),
            VisitStatus::Scheduled => {}
        }
        Ok(visit)
    }
}

/// Maps a [`SimError`] to Zoom's error JSON.
pub(crate) fn api_error(error: SimError) -> ApiError {
    match error {
        SimError::NotFound { kind: "visit", id } => ApiError::visit_not_found(&id),
        SimError::NotFound {
            kind: "clinical note", ..
        } => ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NOTE_NOT_FOUND,
            "Clinical note does not exist.",
        ),
        SimError::NotFound { kind: "user", id } => ApiError::provider_not_found(&id),
        SimError::NotFound { kind, id } => ApiError::new(
            StatusCode::NOT_FOUND,
            codes::USER_NOT_FOUND,
            format!("{kind} does not exist: {id}."),
        ),
        SimError::InvalidTransition { id, from, to } => ApiError::visit_state(format!(
            "Visit {id} is {} and cannot become {}.",
            from.as_str(),
            to.as_str()
        )),
        SimError::Invalid(message) => ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID, message),
    }
}

/// `/_sim` routes: the lifecycle triggers over HTTP, for demos (no auth, no faults).
/// - `POST /_sim/visits/{visitId}/{action}` with action `join`, `admit`, `end`, `no_show` or
///   `cancel` → 200 and the visit;
/// - `POST /_sim/notes` with a [`NewNote`] body → 201 and the note;
/// - `POST /_sim/notes/{noteId}/complete` → 200 and the note.
pub(crate) fn control_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/visits/{visit_id}/{action}", post(control_visit))
        .route("/_sim/notes", post(control_create_note))
        .route("/_sim/notes/{note_id}/complete", post(control_complete_note))
}

async fn control_visit(
    State(shared): State<Arc<Shared>>,
    Path((visit_id, action)): Path<(String, String)>,
) -> Response {
    let to = match action.as_str() {
        "join" => VisitStatus::Waiting,
        "admit" => VisitStatus::InProgress,
        "end" => VisitStatus::Completed,
        "no_show" => VisitStatus::NoShow,
        "cancel" => VisitStatus::Cancelled,
        _ => {
            return ApiError::field("action", "action must be join, admit, end, no_show or cancel.").into_response();
        }
    };
    match shared.transition_visit(&visit_id, to) {
        Ok(visit) => json_response(StatusCode::OK, &visit),
        Err(error) => api_error(error).into_response(),
    }
}

async fn control_create_note(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let new: NewNote = if body.iter().all(u8::is_ascii_whitespace) {
        NewNote::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(new) => new,
            Err(_) => return ApiError::invalid_body().into_response(),
        }
    };
    match shared.create_note(new) {
        Ok(note) => json_response(StatusCode::CREATED, &note),
        Err(error) => api_error(error).into_response(),
    }
}

async fn control_complete_note(State(shared): State<Arc<Shared>>, Path(note_id): Path<String>) -> Response {
    match shared.set_note_completed(&note_id, true, None) {
        Ok(note) => json_response(StatusCode::OK, &note),
        Err(error) => api_error(error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_lifecycle() {
        use VisitStatus::*;
        let allowed: Vec<(VisitStatus, VisitStatus)> = VisitStatus::ALL
            .into_iter()
            .flat_map(|from| VisitStatus::ALL.into_iter().map(move |to| (from, to)))
            .filter(|(from, to)| transition_allowed(*from, *to, true))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Scheduled, Waiting),
                (Scheduled, Cancelled),
                (Scheduled, NoShow),
                (Waiting, InProgress),
                (Waiting, Cancelled),
                (Waiting, NoShow),
                (InProgress, Completed),
            ]
        );
        assert!(transition_allowed(Scheduled, InProgress, false));
        assert!(!transition_allowed(Completed, Cancelled, false));
    }
}
