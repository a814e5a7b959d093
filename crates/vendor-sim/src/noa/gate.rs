//! What happens to an `/api/v1` request before a handler sees it: hit counting, latency, the
//! lifecycle catching up with the clock, the `api-version` check, the bearer token and fault
//! injection. The sign-in takes no token and no faults; `/_sim` and `/recorder` pass straight
//! through (after the lifecycle catches up).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::ApiProblem;
use super::auth::{Scope, TokenState};
use super::lifecycle::is_uuid;
use super::{Shared, lock};
use crate::faults;

const API_PREFIX: &str = "/api/v1";

/// Which token a path needs.
#[derive(Debug, PartialEq, Eq)]
enum Needs {
    Nothing,
    Consumer,
    /// The session's own token (id as in the path).
    Session(String),
}

fn needs(path: &str) -> Needs {
    let rest = path.strip_prefix(API_PREFIX).unwrap_or(path);
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["clients", "authenticate"] => Needs::Nothing,
        ["consumers", ..] => Needs::Consumer,
        ["sessions", id, _, ..] => Needs::Session((*id).to_owned()),
        _ => Needs::Nothing,
    }
}

pub(crate) async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if !(path == API_PREFIX || path.starts_with("/api/v1/")) {
        shared.run_due();
        return next.run(request).await;
    }
    *lock(&shared.hits).entry(path.clone()).or_insert(0) += 1;
    let latency = shared.faults().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    shared.run_due();
    if let Err(problem) = check_api_version(&shared.config.api_version, request.uri()) {
        return problem.into_response();
    }
    let needs = needs(&path);
    if needs == Needs::Nothing {
        return next.run(request).await;
    }
    if let Err(problem) = authorize(&shared, request.headers(), &needs) {
        return problem.into_response();
    }
    let plan = {
        let mut guard = lock(&shared.faults);
        let (faults, dice) = &mut *guard;
        dice.roll(faults)
    };
    faults::apply(plan, &path, throttled, next.run(request)).await
}

/// A rate-limit answer (for fault injection: Noa documents no rate limit of its own), as ASP.NET's
/// rate limiter answers: problem details and `Retry-After`.
fn throttled() -> Response {
    let mut response =
        ApiProblem::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests. Try again later.").into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// `?api-version=` must be present and equal to the configured version.
fn check_api_version(expected: &str, uri: &Uri) -> Result<(), ApiProblem> {
    let mut versions: Vec<String> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(key, _)| key.eq_ignore_ascii_case("api-version"))
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .collect();
    versions.sort();
    versions.dedup();
    match versions.as_slice() {
        [] => Err(ApiProblem::unspecified_version()),
        [version] if version == expected => Ok(()),
        [version] => Err(ApiProblem::unsupported_version(uri, version)),
        _ => Err(ApiProblem::ambiguous_version(&versions)),
    }
}

/// Checks the bearer token against what the path needs.
fn authorize(shared: &Shared, headers: &HeaderMap, needs: &Needs) -> Result<(), ApiProblem> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(ApiProblem::unauthorized("A bearer token is required."));
    };
    let scope = match lock(&shared.tokens).check(token) {
        TokenState::Valid(scope) => scope,
        TokenState::Expired => return Err(ApiProblem::unauthorized("The access token has expired.")),
        TokenState::Unknown => return Err(ApiProblem::unauthorized("The access token is invalid.")),
    };
    match (needs, scope) {
        (Needs::Nothing, _) | (Needs::Consumer, Scope::Consumer) => Ok(()),
        (Needs::Session(id), Scope::Session(own)) if own == id.to_ascii_lowercase() || !is_uuid(id) => Ok(()),
        (Needs::Consumer, Scope::Session(_)) => Err(ApiProblem::forbidden(
            "A session token does not authorise consumer operations.",
        )),
        (Needs::Session(_), Scope::Consumer) => {
            Err(ApiProblem::forbidden("Use the session's token for /sessions/ calls."))
        }
        (Needs::Session(_), Scope::Session(_)) => {
            Err(ApiProblem::forbidden("The session token belongs to another session."))
        }
    }
}

/// Unknown paths.
pub(crate) async fn not_found(uri: Uri) -> Response {
    ApiProblem::not_found(format!("No resource matches '{}'.", uri.path())).into_response()
}

/// Known paths asked with another method.
pub(crate) async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> Response {
    ApiProblem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("'{}' does not take {method}.", uri.path()),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_need_the_right_token() {
        assert_eq!(needs("/api/v1/clients/authenticate"), Needs::Nothing);
        assert_eq!(needs("/api/v1/consumers/sessions"), Needs::Consumer);
        assert_eq!(needs("/api/v1/consumers/facilities/1/doctors"), Needs::Consumer);
        assert_eq!(needs("/api/v1/sessions/abc/status"), Needs::Session("abc".into()));
        assert_eq!(needs("/api/v1/other"), Needs::Nothing);
    }

    #[test]
    fn api_version_is_checked() {
        let uri = |q: &str| -> Uri { format!("/api/v1/x{q}").parse().expect("uri") };
        assert!(check_api_version("1.0", &uri("?api-version=1.0")).is_ok());
        assert!(check_api_version("1.0", &uri("")).is_err());
        assert!(check_api_version("1.0", &uri("?api-version=2.0")).is_err());
        assert!(check_api_version("1.0", &uri("?api-version=1.0&api-version=2.0")).is_err());
    }
}
