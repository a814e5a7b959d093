//! The clinical notes API of `zoom-clinical-notes-api.md`: list, get and update (complete) notes,
//! with the doc's error codes:
//!
//! | case | list | get | patch |
//! |---|---|---|---|
//! | Clinical Notes feature off (account knob, or the queried/owning user) | 403 30001 | 400 30001 | 400 30001 |
//! | the note's owner (or the queried user) is denied to the app | 403 30007 | 403 30007 | 403 30007 |
//! | `note_owner_user_id` is not a user of the account | 400 30008 | – | – |
//! | the note does not exist | – | 404 30009 | 404 30009 |
//! | the update failed (knob) | – | – | 500 30011 |

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::api::{ApiError, ApiResult, Params, codes, decode_meeting_id, json_response, object_body, range};
use super::data::{Dataset, parse_ts};
use super::paging::{Echo, ListKind, paginate};
use super::wire::{ClinicalNote, ClinicalNoteList};
use super::{Shared, lock};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v2/clinical_notes/notes", get(list))
        .route("/v2/clinical_notes/notes/{note_id}", get(detail).patch(update))
}

fn feature_off(status: StatusCode) -> ApiError {
    ApiError::new(
        status,
        codes::NOTES_DISABLED,
        "Clinical note feature not enabled for this user.",
    )
}

fn denied(list: bool) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        codes::ACCESS_DENIED,
        if list {
            "Resource access denied. Please contact your admin."
        } else {
            "Resource access denied. Contact your administrator."
        },
    )
}

fn note_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::NOTE_NOT_FOUND,
        "Clinical note does not exist.",
    )
}

/// Whether the owner's own Clinical Notes feature is on (unknown owners count as on).
fn owner_enabled(state: &Dataset, user_id: &str) -> bool {
    state
        .providers
        .iter()
        .find(|p| p.user_id == user_id)
        .is_none_or(|p| p.clinical_notes_enabled)
}

async fn list(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    list_notes(&shared, &uri).unwrap_or_else(IntoResponse::into_response)
}

fn list_notes(shared: &Shared, uri: &Uri) -> ApiResult {
    let (feature, denied_users) = {
        let controls = lock(&shared.controls);
        (controls.notes_feature, controls.denied_users.clone())
    };
    if !feature {
        return Err(feature_off(StatusCode::FORBIDDEN));
    }
    let params = Params::parse(uri);
    let page = paginate(shared, ListKind::Notes, &params, || {
        let state = shared.read_state();
        let owner = params.get("note_owner_user_id");
        if let Some(owner) = owner {
            if !state.is_user(owner) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    codes::QUERY_USER_NOT_FOUND,
                    "Query user does not exist.",
                ));
            }
            if denied_users.contains(owner) {
                return Err(denied(true));
            }
            if !owner_enabled(&state, owner) {
                return Err(feature_off(StatusCode::FORBIDDEN));
            }
        }
        let meeting = params.get("meeting_id").map(decode_meeting_id);
        let (from, to) = range(&params)?;
        let mut notes: Vec<&ClinicalNote> = state
            .clinical_notes
            .iter()
            .filter(|n| {
                owner.is_none_or(|o| n.note_owner_user_id == o)
                    && meeting.as_deref().is_none_or(|m| n.meeting_id == m)
                    && !denied_users.contains(&n.note_owner_user_id)
                    && (from.is_none() && to.is_none()
                        || parse_ts(&n.note_created_time)
                            .is_some_and(|t| from.is_none_or(|f| t >= f) && to.is_none_or(|e| t <= e)))
            })
            .collect();
        // Newest first.
        notes.sort_by(|a, b| {
            b.note_created_time
                .cmp(&a.note_created_time)
                .then_with(|| a.note_id.cmp(&b.note_id))
        });
        let echo = Echo {
            from: from.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            to: to.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        };
        Ok((notes.into_iter().map(|n| n.note_id.clone()).collect(), echo))
    })?;
    let state = shared.read_state();
    let clinical_notes = page
        .ids
        .iter()
        .filter_map(|id| state.note(id))
        .filter(|n| !denied_users.contains(&n.note_owner_user_id))
        .cloned()
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &ClinicalNoteList {
            page_size: page.page_size,
            next_page_token: page.next_page_token,
            from: page.echo.from,
            to: page.echo.to,
            clinical_notes,
        },
    ))
}

/// The note if this app may see it; the doc's errors otherwise.
fn accessible_note(shared: &Shared, note_id: &str) -> Result<ClinicalNote, ApiError> {
    let (feature, denied_users) = {
        let controls = lock(&shared.controls);
        (controls.notes_feature, controls.denied_users.clone())
    };
    if !feature {
        return Err(feature_off(StatusCode::BAD_REQUEST));
    }
    let state = shared.read_state();
    let note = state.note(note_id).ok_or_else(note_not_found)?;
    if denied_users.contains(&note.note_owner_user_id) {
        return Err(denied(false));
    }
    if !owner_enabled(&state, &note.note_owner_user_id) {
        return Err(feature_off(StatusCode::BAD_REQUEST));
    }
    Ok(note.clone())
}

async fn detail(State(shared): State<Arc<Shared>>, Path(note_id): Path<String>) -> Response {
    match accessible_note(&shared, &note_id) {
        Ok(note) => json_response(StatusCode::OK, &note),
        Err(error) => error.into_response(),
    }
}

async fn update(State(shared): State<Arc<Shared>>, Path(note_id): Path<String>, body: Bytes) -> Response {
    update_note(&shared, &note_id, &body).unwrap_or_else(IntoResponse::into_response)
}

fn update_note(shared: &Shared, note_id: &str, body: &Bytes) -> ApiResult {
    accessible_note(shared, note_id)?;
    let body = object_body(body, false)?;
    let completed = match body.get("is_note_completed") {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::field(
                "is_note_completed",
                "is_note_completed must be a boolean.",
            ));
        }
        None => return Err(ApiError::field("is_note_completed", "is_note_completed is required.")),
    };
    {
        let mut controls = lock(&shared.controls);
        if controls.failing_note_updates > 0 {
            controls.failing_note_updates -= 1;
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::NOTE_UPDATE_FAILED,
                "Failed to update note. Try again later.",
            ));
        }
    }
    let admin = shared.read_state().admin_user_id.clone();
    shared
        .set_note_completed(note_id, completed, Some(&admin))
        .map_err(super::ops::api_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
