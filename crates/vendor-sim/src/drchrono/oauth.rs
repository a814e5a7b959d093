//! The OAuth endpoints of the doc: `/o/authorize` (auto-approved, no UI), `/o/token/` and
//! `/o/revoke_token/`. POST endpoints take `application/x-www-form-urlencoded` only.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::json;

use super::{Shared, lock};

/// Authorization codes expire after one minute, as the doc says.
const CODE_TTL: Duration = Duration::from_secs(60);
/// Scope granted when the client asks for none.
const DEFAULT_SCOPE: &str = "patients:read user:read calendar:read clinical:read";

struct AccessGrant {
    expires_at: Instant,
}

struct CodeGrant {
    redirect_uri: String,
    scope: String,
    expires_at: Instant,
}

/// Issued codes and tokens.
pub(crate) struct TokenStore {
    access: HashMap<String, AccessGrant>,
    /// Refresh token → scope.
    refresh: HashMap<String, String>,
    codes: HashMap<String, CodeGrant>,
}

impl TokenStore {
    pub(crate) fn new(initial_refresh_token: &str) -> Self {
        let mut refresh = HashMap::new();
        if !initial_refresh_token.is_empty() {
            refresh.insert(initial_refresh_token.to_owned(), DEFAULT_SCOPE.to_owned());
        }
        Self {
            access: HashMap::new(),
            refresh,
            codes: HashMap::new(),
        }
    }

    pub(crate) fn access_token_is_valid(&self, token: &str) -> bool {
        self.access
            .get(token)
            .is_some_and(|grant| grant.expires_at > Instant::now())
    }

    pub(crate) fn expire_access_tokens(&mut self) {
        self.access.clear();
    }

    fn issue(&mut self, scope: String, ttl: Duration) -> (String, String) {
        let now = Instant::now();
        self.access.retain(|_, grant| grant.expires_at > now);
        self.codes.retain(|_, code| code.expires_at > now);
        let access = random_token();
        let refresh = random_token();
        self.access.insert(
            access.clone(),
            AccessGrant {
                expires_at: now.checked_add(ttl).unwrap_or(now),
            },
        );
        self.refresh.insert(refresh.clone(), scope);
        (access, refresh)
    }
}

/// 40 random alphanumerics from the OS-seeded thread RNG: unrelated to any secret or seed.
fn random_token() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /o/authorize`: approves at once and redirects to `redirect_uri?code=…[&state=…]`.
pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let config = &shared.config;
    match params.get("client_id") {
        Some(id) if *id == config.client_id => {}
        Some(_) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "Unknown client_id.");
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing client_id parameter.",
            );
        }
    }
    let redirect_uri = match params.get("redirect_uri") {
        Some(uri) if *uri == config.redirect_uri => uri.clone(),
        Some(_) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Mismatching redirect URI.");
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing redirect_uri parameter.",
            );
        }
    };
    let Ok(mut location) = url::Url::parse(&redirect_uri) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri is not an absolute URL.",
        );
    };
    if let Some(response_type) = params.get("response_type")
        && response_type != "code"
    {
        location
            .query_pairs_mut()
            .append_pair("error", "unsupported_response_type");
        if let Some(state) = params.get("state") {
            location.query_pairs_mut().append_pair("state", state);
        }
        return found(location.as_str());
    }
    let scope = params
        .get("scope")
        .filter(|s| !s.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| DEFAULT_SCOPE.to_owned());
    let code = random_token();
    lock(&shared.tokens).codes.insert(
        code.clone(),
        CodeGrant {
            redirect_uri,
            scope,
            expires_at: Instant::now() + CODE_TTL,
        },
    );
    location.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = params.get("state") {
        location.query_pairs_mut().append_pair("state", state);
    }
    found(location.as_str())
}

fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::FOUND.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri cannot be used in a Location header.",
        ),
    }
}

/// An OAuth error answer: `{"error", "error_description"}` with a status.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        oauth_error(self.status, self.error, self.description)
    }
}

/// Parses a form body, refusing any other content type (the doc: "they accept
/// x-www-urlencoded parameters, not application/json").
fn form(headers: &HeaderMap, body: &Bytes) -> Result<HashMap<String, String>, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/x-www-form-urlencoded" {
        return Err(OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: "The request body must be application/x-www-form-urlencoded.",
        });
    }
    Ok(url::form_urlencoded::parse(body).into_owned().collect())
}

fn check_client(shared: &Shared, params: &HashMap<String, String>) -> Result<(), OAuthError> {
    let config = &shared.config;
    let id_ok = params.get("client_id") == Some(&config.client_id);
    let secret_ok = params.get("client_secret") == Some(&config.client_secret);
    if id_ok && secret_ok {
        Ok(())
    } else {
        Err(OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "Client authentication failed.",
        })
    }
}

/// `POST /o/token/` with `grant_type` `authorization_code` or `refresh_token`.
pub(crate) async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match form(&headers, &body) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    let Some(grant_type) = params.get("grant_type") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing grant_type parameter.",
        );
    };
    if let Err(error) = check_client(&shared, &params) {
        return error.into_response();
    }
    let scope = {
        let mut tokens = lock(&shared.tokens);
        match grant_type.as_str() {
            "authorization_code" => {
                let Some(code) = params.get("code") else {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing code parameter.");
                };
                // Codes are single-use: a failed attempt burns it too.
                let Some(grant) = tokens.codes.remove(code) else {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid code.");
                };
                if grant.expires_at <= Instant::now() {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Code expired.");
                }
                if params.get("redirect_uri") != Some(&grant.redirect_uri) {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Mismatching redirect URI.");
                }
                grant.scope
            }
            "refresh_token" => {
                let Some(refresh) = params.get("refresh_token") else {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "Missing refresh_token parameter.",
                    );
                };
                // Refresh tokens rotate: the one used here is spent.
                let Some(scope) = tokens.refresh.remove(refresh) else {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid refresh token.");
                };
                scope
            }
            _ => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "grant_type must be authorization_code or refresh_token.",
                );
            }
        }
    };
    let ttl = shared.config.access_token_ttl;
    let (access, refresh) = lock(&shared.tokens).issue(scope.clone(), ttl);
    shared.token_grants.fetch_add(1, Ordering::SeqCst);
    let mut response = Json(json!({
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": ttl.as_secs(),
        "token_type": "Bearer",
        "scope": scope,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /o/revoke_token/`: revokes an access (or refresh) token.
pub(crate) async fn revoke(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match form(&headers, &body) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    if let Err(error) = check_client(&shared, &params) {
        return error.into_response();
    }
    let Some(token) = params.get("token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing token parameter.");
    };
    let mut tokens = lock(&shared.tokens);
    tokens.access.remove(token);
    tokens.refresh.remove(token);
    StatusCode::OK.into_response()
}
