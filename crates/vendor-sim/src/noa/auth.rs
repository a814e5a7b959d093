//! Sign-in (`POST /api/v1/clients/authenticate` with the client id and secret) and the tokens:
//! consumer tokens authorise `/api/v1/consumers/*`, session tokens (handed out when a session is
//! created or resumed) authorise their own session's `/api/v1/sessions/{id}/*`. Both expire on
//! real time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use data_encoding::BASE64URL_NOPAD;
use rand::RngCore;

use super::api::{ApiProblem, json_response};
use super::wire::{AccessToken, Authenticate};
use super::{Shared, lock};

/// How long an expired token is still recognised as "expired" rather than "unknown".
const REMEMBER_EXPIRED: Duration = Duration::from_secs(24 * 3600);

/// What a token authorises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Consumer,
    /// The session's id, lower case.
    Session(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TokenState {
    Valid(Scope),
    Expired,
    Unknown,
}

#[derive(Default)]
pub(crate) struct TokenStore {
    tokens: HashMap<String, (Scope, Instant)>,
}

impl TokenStore {
    pub(crate) fn check(&self, token: &str) -> TokenState {
        match self.tokens.get(token) {
            Some((scope, expires_at)) if *expires_at > Instant::now() => TokenState::Valid(scope.clone()),
            Some(_) => TokenState::Expired,
            None => TokenState::Unknown,
        }
    }

    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        for (_, expires_at) in self.tokens.values_mut() {
            *expires_at = (*expires_at).min(now);
        }
    }

    pub(crate) fn issue(&mut self, scope: Scope, ttl: Duration) -> String {
        let now = Instant::now();
        self.tokens
            .retain(|_, (_, expires_at)| expires_at.checked_add(REMEMBER_EXPIRED).is_none_or(|t| t > now));
        let token = random_token(&scope);
        self.tokens
            .insert(token.clone(), (scope, now.checked_add(ttl).unwrap_or(now)));
        token
    }
}

/// A JWT-shaped opaque token from the OS-seeded thread RNG.
fn random_token(scope: &Scope) -> String {
    let mut rng = rand::rng();
    let mut payload = [0u8; 48];
    rng.fill_bytes(&mut payload);
    let mut signature = [0u8; 32];
    rng.fill_bytes(&mut signature);
    let header: &[u8] = match scope {
        Scope::Consumer => br#"{"alg":"HS256","typ":"JWT","kid":"noa-sim-consumer"}"#,
        Scope::Session(_) => br#"{"alg":"HS256","typ":"JWT","kid":"noa-sim-session"}"#,
    };
    format!(
        "{}.{}.{}",
        BASE64URL_NOPAD.encode(header),
        BASE64URL_NOPAD.encode(&payload),
        BASE64URL_NOPAD.encode(&signature)
    )
}

/// Constant-time comparison of two secrets.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /api/v1/clients/authenticate`.
pub(crate) async fn authenticate(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: Authenticate = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return ApiProblem::invalid_body(&error).into_response(),
    };
    let Some(client_id) = request.client_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return ApiProblem::validation("clientId", "The ClientId field is required.").into_response();
    };
    let config = &shared.config;
    let secret = request.secret.unwrap_or_default();
    if !(client_id.eq_ignore_ascii_case(&config.client_id) && same(&secret, &config.client_secret)) {
        return ApiProblem::unauthorized("Invalid client credentials.").into_response();
    }
    let token = lock(&shared.tokens).issue(Scope::Consumer, config.token_ttl);
    shared.token_grants.fetch_add(1, Ordering::SeqCst);
    json_response(
        StatusCode::OK,
        &AccessToken {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: config.token_ttl.as_secs(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_keep_their_scope() {
        let mut store = TokenStore::default();
        let consumer = store.issue(Scope::Consumer, Duration::from_secs(60));
        let session = store.issue(Scope::Session("abc".into()), Duration::from_secs(60));
        assert_eq!(store.check(&consumer), TokenState::Valid(Scope::Consumer));
        assert_eq!(store.check(&session), TokenState::Valid(Scope::Session("abc".into())));
        assert_eq!(store.check("nope"), TokenState::Unknown);
        store.expire_all();
        assert_eq!(store.check(&consumer), TokenState::Expired);
        assert_eq!(store.check(&session), TokenState::Expired);
    }
}
