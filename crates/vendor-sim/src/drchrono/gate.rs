//! What happens to a request before a handler sees it: configured redirects, then (for `/api`)
//! hit counting, latency, bearer-token check, the hourly rate limit and fault injection (a fault
//! 429 is the real throttled answer with `Retry-After: 1`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Shared, lock};
use crate::faults;

/// Requests counted in the current wall-clock hour.
pub(crate) struct RateWindow {
    hour: u64,
    count: u32,
    limit: u32,
}

impl RateWindow {
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            hour: 0,
            count: 0,
            limit,
        }
    }

    pub(crate) fn set_limit(&mut self, limit: u32) {
        self.limit = limit;
    }

    /// Counts one request at `unix_secs`; `Err(seconds to the top of the hour)` when over the
    /// limit.
    fn admit(&mut self, unix_secs: u64) -> Result<(), u64> {
        let hour = unix_secs / 3600;
        if hour != self.hour {
            self.hour = hour;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        if self.count > self.limit {
            Err(3600 - unix_secs % 3600)
        } else {
            Ok(())
        }
    }
}

pub(crate) async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if let Some(location) = redirect_target(&shared, &request) {
        if is_api(&path) {
            count_hit(&shared, &request);
            let latency = shared.faults().latency;
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
        }
        return redirect(&location);
    }
    if !is_api(&path) {
        return next.run(request).await;
    }

    count_hit(&shared, &request);
    let latency = shared.faults().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Err(detail) = authorize(&shared, request.headers()) {
        return unauthorized(detail);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Err(retry_after) = lock(&shared.rate).admit(now) {
        return throttled(retry_after);
    }
    let plan = {
        let mut guard = lock(&shared.faults);
        let (faults, dice) = &mut *guard;
        dice.roll(faults)
    };
    faults::apply(plan, &path, || throttled(1), next.run(request)).await
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

fn count_hit(shared: &Shared, request: &Request) {
    let path = request.uri().path();
    *lock(&shared.hits).entry(path.to_owned()).or_insert(0) += 1;
    *lock(&shared.hit_shapes)
        .entry(shape_of(path, request.uri().query()))
        .or_insert(0) += 1;
}

/// A request's path with its query's parameter names, sorted, without their values
/// (`/api/appointments?date&verbose`): what kind of call it was, not whose data.
fn shape_of(path: &str, query: Option<&str>) -> String {
    let mut names: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", names.join("&"))
    }
}

fn redirect_target(shared: &Shared, request: &Request) -> Option<String> {
    let path = request.uri().path();
    let (prefix, target) = shared
        .config
        .redirects
        .iter()
        .find(|(prefix, _)| !prefix.is_empty() && path.starts_with(prefix.as_str()))?;
    let rest = &path[prefix.len()..];
    let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    Some(format!("{target}{rest}{query}"))
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::FOUND.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"detail": "Invalid redirect target."})),
        )
            .into_response(),
    }
}

/// Checks the bearer token; `Err` carries the 401 detail.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), &'static str> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(token) = token else {
        return Err("Authentication credentials were not provided.");
    };
    if lock(&shared.tokens).access_token_is_valid(token) {
        Ok(())
    } else {
        Err("Invalid or expired access token.")
    }
}

fn unauthorized(detail: &str) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(json!({ "detail": detail }))).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"api\""),
    );
    response
}

fn throttled(retry_after: u64) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(json!({
            "detail": format!("Request was throttled. Expected available in {retry_after} seconds.")
        })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::RateWindow;

    #[test]
    fn rate_window_resets_at_the_top_of_the_hour() {
        let mut window = RateWindow::new(2);
        let t = 7200 + 3000;
        assert!(window.admit(t).is_ok());
        assert!(window.admit(t + 1).is_ok());
        assert_eq!(window.admit(t + 2), Err(598));
        assert!(window.admit(10_800).is_ok());
    }
}
