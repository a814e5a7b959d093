//! Routes outside the API, without auth or faults: `/_sim` control for tests and demo users, and
//! a bare HTML stand-in for Noa's recorder at each session's `recorderUrl` and `summaryUrl`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::TimeDelta;
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiProblem, json_response};
use super::data::ts;
use super::lifecycle::SimError;
use super::{Shared, lock};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/sessions/{session_id}/approve", post(approve))
        .route("/_sim/sessions/{session_id}/start-recording", post(start_recording))
        .route("/_sim/clock/advance", post(advance_clock))
        .route("/_sim/clock", get(clock))
        .route("/recorder/sessions/{session_id}", get(recorder))
        .route("/recorder/sessions/{session_id}/summary", get(recorder))
}

fn sim_error(error: SimError) -> Response {
    match error {
        SimError::NotFound(_) => ApiProblem::not_found(error.to_string()).into_response(),
        SimError::InvalidTransition { .. } => ApiProblem::conflict(error.to_string()).into_response(),
    }
}

/// A JSON body, or `T::default()` when the body is empty.
fn body_or_default<T: for<'de> Deserialize<'de> + Default>(body: &Bytes) -> Result<T, ApiProblem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiProblem::invalid_body(&e))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApproveBody {
    empty: bool,
}

async fn approve(State(shared): State<Arc<Shared>>, Path(session_id): Path<String>, body: Bytes) -> Response {
    let request: ApproveBody = match body_or_default(&body) {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    match shared.approve(&session_id, request.empty) {
        Ok(details) => json_response(StatusCode::OK, &details),
        Err(error) => sim_error(error),
    }
}

async fn start_recording(State(shared): State<Arc<Shared>>, Path(session_id): Path<String>) -> Response {
    match shared.start_recording(&session_id) {
        Ok(details) => json_response(StatusCode::OK, &details),
        Err(error) => sim_error(error),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AdvanceBody {
    seconds: f64,
}

async fn advance_clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: AdvanceBody = match body_or_default(&body) {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    if !request.seconds.is_finite() || request.seconds.abs() > 3.0e9 {
        return ApiProblem::validation("seconds", "seconds must be a finite number of seconds.").into_response();
    }
    let delta = TimeDelta::milliseconds((request.seconds * 1000.0) as i64);
    shared.advance_clock(delta);
    json_response(StatusCode::OK, &json!({ "now": ts(shared.now()) }))
}

async fn clock(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &json!({ "now": ts(shared.now()) }))
}

fn escape(raw: &str) -> String {
    raw.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page showing the session's status and summary.
async fn recorder(State(shared): State<Arc<Shared>>, Path(session_id): Path<String>) -> Response {
    let id = session_id.to_ascii_lowercase();
    let state = lock(&shared.state);
    let Some(session) = state.session(&id) else {
        return (StatusCode::NOT_FOUND, Html("<h1>Session not found</h1>".to_owned())).into_response();
    };
    let details = &session.details;
    let mut html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Noa Notes (simulator)</title></head><body>\
         <h1>Noa Notes recorder (simulator)</h1><p>Session <code>{}</code> for episode <code>{}</code>, doctor \
         <code>{}</code>: <strong>{}</strong></p>",
        escape(&details.session_id),
        escape(&details.episode_id),
        escape(&details.doctor_id),
        details.status
    );
    match &session.summary {
        Some(summary) => {
            html.push_str(&format!(
                "<h2>Summary (revision {}{})</h2>",
                summary.revision,
                if summary.doctor_approved { ", verified" } else { "" }
            ));
            for section in &summary.sections {
                html.push_str(&format!(
                    "<h3>{}</h3><pre>{}</pre>",
                    escape(&section.title),
                    escape(&section.content)
                ));
            }
        }
        None => html.push_str("<p>No summary yet.</p>"),
    }
    html.push_str("</body></html>");
    Html(html).into_response()
}
