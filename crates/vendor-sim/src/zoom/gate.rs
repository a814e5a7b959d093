//! What happens to a `/v2` request before a handler sees it: hit counting, latency, the bearer
//! token, the per-label per-second rate limit and fault injection. `/oauth/token` and the
//! simulator's `/_sim` control routes pass straight through.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::{ApiError, codes};
use super::oauth::TokenState;
use super::{RateLimits, Shared, lock};
use crate::faults::{self, FaultAction};

/// Zoom's rate-limit labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Label {
    Light,
    Medium,
    Heavy,
}

impl Label {
    fn name(self) -> &'static str {
        match self {
            Label::Light => "Light",
            Label::Medium => "Medium",
            Label::Heavy => "Heavy",
        }
    }

    fn index(self) -> usize {
        match self {
            Label::Light => 0,
            Label::Medium => 1,
            Label::Heavy => 2,
        }
    }
}

/// The label of an endpoint: the notes doc says LIGHT for its three; the Healthcare doc gives
/// none, so single-object reads and updates are LIGHT, lists and creates MEDIUM, and messages
/// sent to patients (invite, notify) HEAVY.
pub(crate) fn label_for(method: &Method, path: &str) -> Label {
    let path = path.strip_prefix("/v2").unwrap_or(path).trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["clinical_notes", ..] => Label::Light,
        ["healthcare", "visits"] | ["healthcare", "providers"] | ["healthcare", "waiting_room"] => Label::Medium,
        ["healthcare", "patients"] if method == Method::POST => Label::Medium,
        ["healthcare", "patients", _, "invite"] | ["healthcare", "waiting_room", _, "notify"] => Label::Heavy,
        _ => Label::Light,
    }
}

/// Requests counted per label in the current wall-clock second.
pub(crate) struct RateWindows {
    second: u64,
    counts: [u32; 3],
    limits: RateLimits,
}

impl RateWindows {
    pub(crate) fn new(limits: RateLimits) -> Self {
        Self {
            second: 0,
            counts: [0; 3],
            limits,
        }
    }

    pub(crate) fn set_limits(&mut self, limits: RateLimits) {
        self.limits = limits;
    }

    fn limit(&self, label: Label) -> u32 {
        match label {
            Label::Light => self.limits.light,
            Label::Medium => self.limits.medium,
            Label::Heavy => self.limits.heavy,
        }
    }

    /// Counts one request; `Ok(remaining)` or `Err(())` when over the limit. A limit of zero
    /// means unlimited (`Ok(None)`).
    fn admit(&mut self, label: Label, unix_secs: u64) -> Result<Option<(u32, u32)>, u32> {
        if unix_secs != self.second {
            self.second = unix_secs;
            self.counts = [0; 3];
        }
        let limit = self.limit(label);
        if limit == 0 {
            return Ok(None);
        }
        let count = &mut self.counts[label.index()];
        if *count >= limit {
            return Err(limit);
        }
        *count += 1;
        Ok(Some((limit, limit - *count)))
    }
}

pub(crate) async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if !(path == "/v2" || path.starts_with("/v2/")) {
        return next.run(request).await;
    }
    *lock(&shared.hits).entry(path.clone()).or_insert(0) += 1;
    let latency = shared.faults().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Err(message) = authorize(&shared, request.headers()) {
        return ApiError::new(StatusCode::UNAUTHORIZED, codes::INVALID_TOKEN, message).into_response();
    }
    let label = label_for(request.method(), &path);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let admitted = lock(&shared.rate).admit(label, now);
    let quota = match admitted {
        Ok(quota) => quota,
        Err(limit) => return throttled(label, Some(limit)),
    };
    let plan = {
        let mut guard = lock(&shared.faults);
        let (faults, dice) = &mut *guard;
        dice.roll(faults)
    };
    // A fault 429 is the real per-second answer, as if this label's quota were spent.
    let limited = plan.action == FaultAction::RateLimited;
    let limit = quota.map(|(limit, _)| limit);
    let mut response = faults::apply(plan, &path, || throttled(label, limit), next.run(request)).await;
    if !limited {
        rate_headers(response.headers_mut(), label, quota);
    }
    response
}

/// Checks the bearer token; `Err` carries the 401 message.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), &'static str> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(token) = token else {
        return Err("Invalid access token.");
    };
    match lock(&shared.tokens).check(token) {
        TokenState::Valid => Ok(()),
        TokenState::Expired => Err("Access token is expired."),
        TokenState::Unknown => Err("Invalid access token."),
    }
}

fn rate_headers(headers: &mut HeaderMap, label: Label, quota: Option<(u32, u32)>) {
    headers.insert("x-ratelimit-category", HeaderValue::from_static(label.name()));
    headers.insert("x-ratelimit-type", HeaderValue::from_static("QPS"));
    if let Some((limit, remaining)) = quota {
        headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    }
}

fn throttled(label: Label, limit: Option<u32>) -> Response {
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        codes::RATE_LIMITED,
        "You have reached the maximum per-second rate limit for this API. Try again later.",
    )
    .into_response();
    rate_headers(response.headers_mut(), label, limit.map(|limit| (limit, 0)));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Unknown paths.
pub(crate) async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, 404, "The requested resource was not found.").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_docs() {
        assert_eq!(label_for(&Method::GET, "/v2/clinical_notes/notes"), Label::Light);
        assert_eq!(label_for(&Method::PATCH, "/v2/clinical_notes/notes/x"), Label::Light);
        assert_eq!(label_for(&Method::GET, "/v2/healthcare/visits"), Label::Medium);
        assert_eq!(label_for(&Method::POST, "/v2/healthcare/visits"), Label::Medium);
        assert_eq!(label_for(&Method::GET, "/v2/healthcare/visits/v"), Label::Light);
        assert_eq!(label_for(&Method::POST, "/v2/healthcare/patients"), Label::Medium);
        assert_eq!(
            label_for(&Method::POST, "/v2/healthcare/patients/p/invite"),
            Label::Heavy
        );
        assert_eq!(
            label_for(&Method::POST, "/v2/healthcare/waiting_room/p/notify"),
            Label::Heavy
        );
        assert_eq!(
            label_for(&Method::POST, "/v2/healthcare/waiting_room/p/admit"),
            Label::Light
        );
    }

    #[test]
    fn windows_reset_each_second_and_count_per_label() {
        let mut windows = RateWindows::new(RateLimits {
            light: 2,
            medium: 1,
            heavy: 0,
        });
        assert_eq!(windows.admit(Label::Light, 10), Ok(Some((2, 1))));
        assert_eq!(windows.admit(Label::Light, 10), Ok(Some((2, 0))));
        assert_eq!(windows.admit(Label::Light, 10), Err(2));
        assert_eq!(windows.admit(Label::Medium, 10), Ok(Some((1, 0))));
        assert_eq!(windows.admit(Label::Heavy, 10), Ok(None));
        assert_eq!(windows.admit(Label::Light, 11), Ok(Some((2, 1))));
    }
}
