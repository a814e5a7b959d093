//! Server-to-Server OAuth: `POST /oauth/token?grant_type=account_credentials&account_id=…` with
//! the app's client id and secret in HTTP Basic auth. Parameters may also come as a form body.
//! Errors are Zoom's OAuth shape, `{"reason", "error"}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use data_encoding::{BASE64, BASE64_NOPAD, BASE64URL_NOPAD};
use rand::RngCore;
use serde_json::json;

use super::{Shared, lock};

/// Scopes every token carries.
pub(crate) const SCOPE: &str = "clinical_note:read:admin clinical_note:update:admin healthcare:read healthcare:write";

/// How long an expired token is still recognised as "expired" rather than "invalid".
const REMEMBER_EXPIRED: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenState {
    Valid,
    Expired,
    Unknown,
}

/// Issued access tokens and when they expire.
#[derive(Default)]
pub(crate) struct TokenStore {
    tokens: HashMap<String, Instant>,
}

impl TokenStore {
    pub(crate) fn check(&self, token: &str) -> TokenState {
        match self.tokens.get(token) {
            Some(expires_at) if *expires_at > Instant::now() => TokenState::Valid,
            Some(_) => TokenState::Expired,
            None => TokenState::Unknown,
        }
    }

    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        for expires_at in self.tokens.values_mut() {
            *expires_at = (*expires_at).min(now);
        }
    }

    fn issue(&mut self, ttl: Duration) -> String {
        let now = Instant::now();
        self.tokens
            .retain(|_, expires_at| expires_at.checked_add(REMEMBER_EXPIRED).is_none_or(|t| t > now));
        let token = random_token();
        self.tokens.insert(token.clone(), now.checked_add(ttl).unwrap_or(now));
        token
    }
}

/// A JWT-shaped opaque token, as Zoom's are (`eyJ…`), from the OS-seeded thread RNG.
fn random_token() -> String {
    let mut rng = rand::rng();
    let mut payload = [0u8; 96];
    rng.fill_bytes(&mut payload);
    let mut signature = [0u8; 64];
    rng.fill_bytes(&mut signature);
    format!(
        "{}.{}.{}",
        BASE64URL_NOPAD.encode(br#"{"sv":"0.0.1","alg":"HS512","v":"2.0","kid":"sim"}"#),
        BASE64URL_NOPAD.encode(&payload),
        BASE64URL_NOPAD.encode(&signature)
    )
}

fn oauth_error(status: StatusCode, error: &str, reason: &str) -> Response {
    let mut response = (status, Json(json!({ "reason": reason, "error": error }))).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `(client_id, client_secret)` from `Authorization: Basic …`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = encoded.trim().as_bytes();
    let decoded = BASE64.decode(encoded).or_else(|_| BASE64_NOPAD.decode(encoded)).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Constant-time comparison of two secrets.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /oauth/token`.
pub(crate) async fn token(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut params: HashMap<String, String> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if is_form {
        params.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    let config = &shared.config;
    let client_ok = basic_credentials(&headers)
        .is_some_and(|(id, secret)| same(&id, &config.client_id) && same(&secret, &config.client_secret));
    if !client_ok {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client_id or client_secret",
        );
    }
    match params.get("grant_type").map(String::as_str) {
        Some("account_credentials") => {}
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing grant_type"),
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Unsupported grant type",
            );
        }
    }
    match params.get("account_id") {
        Some(id) if *id == config.account_id => {}
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Invalid account_id"),
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing account_id"),
    }
    let ttl = config.token_ttl;
    let access_token = lock(&shared.tokens).issue(ttl);
    shared.token_grants.fetch_add(1, Ordering::SeqCst);
    let api_url = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|host| format!("http://{host}"))
        .unwrap_or_default();
    let mut response = Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": ttl.as_secs(),
        "scope": SCOPE,
        "api_url": api_url,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = BASE64.encode(b"id:se:cret");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        assert_eq!(basic_credentials(&headers), Some(("id".into(), "se:cret".into())));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&headers), None);
    }

    #[test]
    fn expired_tokens_are_told_apart_from_unknown_ones() {
        let mut store = TokenStore::default();
        let token = store.issue(Duration::from_secs(60));
        assert_eq!(store.check(&token), TokenState::Valid);
        store.expire_all();
        assert_eq!(store.check(&token), TokenState::Expired);
        assert_eq!(store.check("nope"), TokenState::Unknown);
    }
}
