//! The token, introspection, revocation, launch, discovery and JWKS endpoints, client
//! authentication, and minting.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Value, json};

use crate::audit::{self, AuthEvent, AuthEventKind};
use crate::scopes::{Context, ScopeSet};
use crate::store::{self, Family, Grant};
use crate::util::{Form, constant_time_eq, now, random_token, sha256, truncate};
use crate::verify::{ACCESS_TOKEN_TYP, AccessClaims, LEEWAY};
use crate::{Client, GrantType, SmartAuth, is_fhir_id, password, paths};

/// `client_assertion_type` of `private_key_jwt`.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest accepted client-assertion lifetime (SMART Backend Services: five minutes).
const MAX_ASSERTION_LIFETIME: i64 = 300;

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// `WWW-Authenticate: Basic` (the client tried HTTP Basic).
    basic_challenge: bool,
    /// `Retry-After` (seconds).
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
        }
    }

    pub(crate) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    pub(crate) fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }

    fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }

    fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }

    fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }

    pub(crate) fn server_error(d: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", d)
    }

    pub(crate) fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the authorization server is at capacity; retry later",
        )
    }

    /// Every password-check slot is taken: 503 with `Retry-After: 1`.
    pub(crate) fn busy() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "too many client authentications are in progress; retry shortly",
        );
        e.retry_after = Some(1);
        e
    }
}

impl From<password::Busy> for OAuthError {
    fn from(_: password::Busy) -> Self {
        Self::busy()
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = no_store_json(self.status, &body);
        if self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"fhir-gateway\""),
            );
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// JSON with `Cache-Control: no-store` and `Pragma: no-cache`.
fn no_store_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn respond(result: Result<Value, OAuthError>) -> Response {
    match result {
        Ok(body) => no_store_json(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

/// Parses a form body; JSON objects (for `/auth/launch`) are accepted when the content type says so.
fn parse_body(headers: &HeaderMap, body: &[u8], allow_json: bool) -> Result<Form, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let media = content_type.split(';').next().unwrap_or("").trim();
    if allow_json && (media == "application/json" || media.ends_with("+json")) {
        let value: Value =
            serde_json::from_slice(body).map_err(|_| OAuthError::invalid_request("the body is not a JSON object"))?;
        let object = value
            .as_object()
            .ok_or_else(|| OAuthError::invalid_request("the body is not a JSON object"))?;
        let map: HashMap<String, String> = object
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect();
        return Ok(Form::from_map(map));
    }
    if !media.is_empty() && media != "application/x-www-form-urlencoded" {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Form::parse(body).map_err(OAuthError::invalid_request)
}

/// The client id and secret of an `Authorization: Basic` header (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), OAuthError>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bad = || {
        let mut e = OAuthError::invalid_client("malformed HTTP Basic credentials");
        e.basic_challenge = true;
        e
    };
    let decoded = data_encoding::BASE64
        .decode(rest.trim().as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let Some(decoded) = decoded else {
        return Some(Err(bad()));
    };
    let Some((id, secret)) = decoded.split_once(':') else {
        return Some(Err(bad()));
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .ok()
    };
    match (decode(id), decode(secret)) {
        (Some(id), Some(secret)) => Some(Ok((id, secret))),
        _ => Some(Err(bad())),
    }
}

/// The unverified claims of a JWT.
fn peek_claims(token: &str) -> Option<serde_json::Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = data_encoding::BASE64URL_NOPAD.decode(payload.as_bytes()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What the audit trail learns of a token request as it is handled.
#[derive(Default)]
struct TokenCall {
    /// The client the request names (`client_id`, the HTTP Basic user, or the `iss` of a client
    /// assertion), then the one that authenticated.
    client_id: Option<String>,
    /// The grant type, once it is known to be one this server supports.
    grant_type: Option<&'static str>,
}

/// The client a token request names, before it is authenticated: `client_id`, else the HTTP Basic
/// user, else the unverified `iss` of a client assertion (for the audit trail only). Never the
/// secret or the assertion.
fn claimed_client_id(headers: &HeaderMap, form: &Form) -> Option<String> {
    let basic_user = || match basic_credentials(headers) {
        Some(Ok((id, _secret))) => Some(id),
        _ => None,
    };
    let assertion_issuer = || -> Option<String> {
        let claims = peek_claims(form.get("client_assertion")?)?;
        claims.get("iss").and_then(Value::as_str).map(str::to_owned)
    };
    form.get("client_id")
        .map(str::to_owned)
        .or_else(basic_user)
        .or_else(assertion_issuer)
        .filter(|id| !id.is_empty())
        .map(|id| audit::name(&id))
}

/// The audit event of a token request: issued (client, grant, scope, patient, fhirUser, read back
/// from the response this server built) or refused (the OAuth error code only).
fn token_event(fhir_base: &str, call: TokenCall, result: &Result<Value, OAuthError>, ip: Option<IpAddr>) -> AuthEvent {
    let mut event = match result {
        Ok(body) => {
            let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
            let mut event = AuthEvent::new(AuthEventKind::TokenIssued);
            event.scope = text("scope");
            event.patient = text("patient");
            // The response's fhirUser is absolute; the event carries `Practitioner/…` for a user
            // of this server.
            let own = format!("{fhir_base}/");
            event.fhir_user = text("fhirUser").map(|u| u.strip_prefix(&own).map(str::to_owned).unwrap_or(u));
            event
        }
        Err(e) => {
            let mut event = AuthEvent::new(AuthEventKind::TokenRefused);
            event.error = Some(e.error.to_owned());
            event
        }
    };
    event.client_id = call.client_id;
    event.grant_type = call.grant_type;
    event.ip = ip;
    event
}

/// What a code redemption gives: the grant, and the refresh family and its first token when one was
/// started.
type Redeemed = (Grant, Option<(String, String)>);

/// The grant tokens are minted from, with the ids decided before signing.
struct Pending {
    jti: String,
    iat: i64,
    exp: i64,
}

impl SmartAuth {
    pub(crate) fn client(&self, id: &str) -> Option<&Client> {
        self.inner.clients.get(id)
    }

    /// Authenticates the client of a token-endpoint style request: HTTP Basic
    /// (`client_secret_basic`), a `private_key_jwt` assertion (its `aud` must be one of
    /// `audiences`), or, for public clients, `client_id` alone.
    pub(crate) async fn authenticate_client(
        &self,
        headers: &HeaderMap,
        form: &Form,
        audiences: &[String],
    ) -> Result<&Client, OAuthError> {
        let basic = basic_credentials(headers);
        let assertion_type = form.get("client_assertion_type");
        let assertion = form.get("client_assertion");
        let form_id = form.get("client_id");
        if basic.is_some() && (assertion.is_some() || assertion_type.is_some()) {
            return Err(OAuthError::invalid_request("use one client authentication method"));
        }
        if form.get("client_secret").is_some() {
            return Err(OAuthError::invalid_client(
                "client_secret_post is not supported; use HTTP Basic (client_secret_basic)",
            ));
        }
        if let Some(basic) = basic {
            let (id, secret) = basic?;
            let fail = |d: &str| {
                let mut e = OAuthError::invalid_client(d.to_owned());
                e.basic_challenge = true;
                e
            };
            if form_id.is_some_and(|f| f != id) {
                return Err(fail("client_id does not match the authenticated client"));
            }
            let Some(client) = self.client(&id) else {
                self.inner.passwords.burn_verification(secret).await?;
                return Err(fail("client authentication failed"));
            };
            let crate::ClientAuth::SecretBasic { secret_hash } = &client.reg.auth else {
                return Err(fail("this client does not authenticate with a secret"));
            };
            let digest = sha256(secret.as_bytes());
            let cached = client
                .verified_secret
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|d| constant_time_eq(&d, &digest));
            if !cached {
                if !self
                    .inner
                    .passwords
                    .verify_password_async(secret, secret_hash.clone())
                    .await?
                {
                    tracing::info!(client_id = %id, "client authentication failed");
                    return Err(fail("client authentication failed"));
                }
                *client.verified_secret.lock().unwrap_or_else(|e| e.into_inner()) = Some(digest);
            }
            return Ok(client);
        }
        if assertion.is_some() || assertion_type.is_some() {
            if assertion_type != Some(JWT_BEARER) {
                return Err(OAuthError::invalid_client(format!(
                    "client_assertion_type must be {JWT_BEARER}"
                )));
            }
            let assertion = assertion.ok_or_else(|| OAuthError::invalid_client("client_assertion is missing"))?;
            let client = self.verify_assertion(assertion, audiences).await?;
            if form_id.is_some_and(|f| f != client.reg.client_id) {
                return Err(OAuthError::invalid_client(
                    "client_id does not match the client assertion",
                ));
            }
            return Ok(client);
        }
        let id = form_id.ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
        let client = self
            .client(id)
            .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        if client.reg.auth.is_confidential() {
            return Err(OAuthError::invalid_client(
                "this client must authenticate (client_secret_basic or private_key_jwt)",
            ));
        }
        Ok(client)
    }

    /// Verifies a `private_key_jwt` client assertion (SMART Backend Services): RS384 or ES384 with a
    /// key of the client's JWKS, `iss` = `sub` = client id, `aud` one of `audiences`, `exp` at most
    /// five minutes ahead, a `jti` never seen before.
    async fn verify_assertion(&self, assertion: &str, audiences: &[String]) -> Result<&Client, OAuthError> {
        if assertion.len() > 16 * 1024 {
            return Err(OAuthError::invalid_client("client_assertion is too large"));
        }
        let header = jsonwebtoken::decode_header(assertion)
            .map_err(|_| OAuthError::invalid_client("client_assertion is not a signed JWT"))?;
        if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
            return Err(OAuthError::invalid_client(
                "client_assertion must be signed with RS384 or ES384",
            ));
        }
        let peeked =
            peek_claims(assertion).ok_or_else(|| OAuthError::invalid_client("client_assertion is malformed"))?;
        let id = peeked
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| OAuthError::invalid_client("client_assertion has no iss"))?;
        let client = self
            .client(id)
            .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        let crate::ClientAuth::PrivateKeyJwt { .. } = &client.reg.auth else {
            return Err(OAuthError::invalid_client(
                "this client is not registered for private_key_jwt",
            ));
        };
        let kid = header.kid.as_deref();
        let mut keys = crate::jwks::candidates(&client.inline_jwks, kid, header.alg);
        if keys.is_empty()
            && let Some(remote) = &client.remote_jwks
        {
            keys = remote
                .candidates(kid, header.alg)
                .await
                .map_err(|_| OAuthError::invalid_client("the client's JWKS cannot be fetched"))?;
        }
        if keys.is_empty() {
            return Err(OAuthError::invalid_client(
                "no key of the client's JWKS matches the assertion's kid and alg",
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.set_issuer(&[id]);
        validation.sub = Some(id.to_owned());
        validation.set_audience(audiences);
        let mut verified = None;
        let mut failure = "client_assertion signature does not verify";
        for key in &keys {
            match jsonwebtoken::decode::<serde_json::Map<String, Value>>(assertion, key, &validation) {
                Ok(data) => {
                    verified = Some(data.claims);
                    break;
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    failure = match e.kind() {
                        ErrorKind::InvalidSignature => continue,
                        ErrorKind::ExpiredSignature => "client_assertion has expired",
                        ErrorKind::ImmatureSignature => "client_assertion is not valid yet",
                        ErrorKind::InvalidAudience => "client_assertion aud must be the token endpoint URL",
                        ErrorKind::InvalidSubject => "client_assertion sub must be the client id",
                        ErrorKind::MissingRequiredClaim(_) => "client_assertion lacks exp, iss, sub or aud",
                        _ => "client_assertion is invalid",
                    };
                    break;
                }
            }
        }
        let claims = verified.ok_or_else(|| OAuthError::invalid_client(failure))?;
        let t = now();
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if exp > t + MAX_ASSERTION_LIFETIME + LEEWAY as i64 {
            return Err(OAuthError::invalid_client(
                "client_assertion exp must be at most five minutes ahead",
            ));
        }
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| OAuthError::invalid_client("client_assertion needs a jti"))?;
        {
            let mut store = self.store();
            let key = (id.to_owned(), jti.to_owned());
            if store.assertion_jtis.get(&key).is_some_and(|e| *e + LEEWAY as i64 > t) {
                tracing::warn!(client_id = %id, "replayed client assertion refused");
                return Err(OAuthError::invalid_client("client_assertion jti was already used"));
            }
            if !store.has_room(|s| s.assertion_jtis.len(), store::MAX_ASSERTION_JTIS) {
                return Err(OAuthError::unavailable());
            }
            store.assertion_jtis.insert(key, exp);
        }
        // Another replica may have seen it: the store keeps one use across replicas.
        if !self.claim_assertion(id, jti, exp).await? {
            tracing::warn!(client_id = %id, "replayed client assertion refused");
            return Err(OAuthError::invalid_client("client_assertion jti was already used"));
        }
        Ok(client)
    }

    fn pending(&self) -> Pending {
        let iat = now();
        Pending {
            jti: random_token(),
            iat,
            exp: iat + self.inner.access_ttl,
        }
    }

    /// The absolute URL of a user's FHIR resource.
    fn absolute_fhir_user(&self, fhir_user: &str) -> String {
        if fhir_user.starts_with("http://") || fhir_user.starts_with("https://") {
            fhir_user.to_owned()
        } else {
            format!("{}/{fhir_user}", self.inner.fhir_base)
        }
    }

    /// Signs the access token (and the id_token when `openid` was granted) and builds the response.
    fn token_response(&self, grant: &Grant, p: &Pending, refresh_token: Option<&str>) -> Result<Value, OAuthError> {
        let key = self.inner.keys.current();
        let scope = grant.scopes.to_scope_string();
        let fhir_user = grant.fhir_user.as_deref().map(|u| self.absolute_fhir_user(u));
        let claims = AccessClaims {
            iss: self.inner.issuer.clone(),
            sub: grant.subject.clone(),
            aud: self.inner.fhir_base.clone(),
            exp: p.exp,
            iat: p.iat,
            nbf: p.iat,
            jti: p.jti.clone(),
            client_id: grant.client_id.clone(),
            scope: scope.clone(),
            patient: grant.patient.clone(),
            encounter: grant.encounter.clone(),
            fhir_user: fhir_user.clone(),
        };
        let access_token = key
            .sign(ACCESS_TOKEN_TYP, &claims)
            .map_err(|_| OAuthError::server_error("the token could not be signed"))?;
        let mut body = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": p.exp - p.iat,
            "scope": scope,
        });
        if let Some(patient) = &grant.patient {
            body["patient"] = json!(patient);
        }
        if let Some(encounter) = &grant.encounter {
            body["encounter"] = json!(encounter);
        }
        if let Some(u) = &fhir_user {
            body["fhirUser"] = json!(u);
        }
        if grant.scopes.has("openid") && grant.auth_time.is_some() {
            let mut id_claims = json!({
                "iss": self.inner.issuer,
                "sub": grant.subject,
                "aud": grant.client_id,
                "exp": p.exp,
                "iat": p.iat,
                "auth_time": grant.auth_time,
            });
            if let Some(nonce) = &grant.nonce {
                id_claims["nonce"] = json!(nonce);
            }
            if grant.scopes.has("fhirUser")
                && let Some(u) = &fhir_user
            {
                id_claims["fhirUser"] = json!(u);
            }
            let id_token = key
                .sign("JWT", &id_claims)
                .map_err(|_| OAuthError::server_error("the id_token could not be signed"))?;
            body["id_token"] = json!(id_token);
        }
        if let Some(r) = refresh_token {
            body["refresh_token"] = json!(r);
        }
        Ok(body)
    }

    /// The token endpoint; every outcome, issued or refused, is reported to the audit sink here
    /// (with the caller's address from the request's `extensions`).
    async fn token_request(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        extensions: &http::Extensions,
    ) -> Result<Value, OAuthError> {
        let mut call = TokenCall::default();
        let result = self.token_request_inner(headers, body, &mut call).await;
        self.audit(|| token_event(&self.inner.fhir_base, call, &result, audit::peer_ip(extensions)));
        result
    }

    /// The token endpoint's work; `call` learns the client and grant type as they become known.
    async fn token_request_inner(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        call: &mut TokenCall,
    ) -> Result<Value, OAuthError> {
        let form = parse_body(headers, body, false)?;
        call.client_id = claimed_client_id(headers, &form);
        let grant_type = form
            .get("grant_type")
            .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
        let Some(grant_type) = GrantType::parse(grant_type) else {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type '{}' is not supported", truncate(grant_type, 60)),
            ));
        };
        call.grant_type = Some(grant_type.as_str());
        let client = self
            .authenticate_client(headers, &form, &[self.url(paths::TOKEN)])
            .await?;
        call.client_id = Some(audit::name(&client.reg.client_id));
        if !client.allows_grant(grant_type) {
            return Err(OAuthError::unauthorized_client(format!(
                "this client may not use the {} grant",
                grant_type.as_str()
            )));
        }
        let result = match grant_type {
            GrantType::AuthorizationCode => self.redeem_code(client, &form).await,
            GrantType::RefreshToken => self.refresh(client, &form).await,
            GrantType::ClientCredentials => self.client_credentials(client, &form),
        };
        match &result {
            Ok(_) => tracing::info!(client_id = %client.reg.client_id, grant = grant_type.as_str(), "token issued"),
            Err(e) => tracing::info!(
                client_id = %client.reg.client_id,
                grant = grant_type.as_str(),
                error = e.error,
                reason = %e.description,
                "token refused"
            ),
        }
        result
    }

    async fn redeem_code(&self, client: &Client, form: &Form) -> Result<Value, OAuthError> {
        let code = form
            .get("code")
            .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
        let redirect_uri = form
            .get("redirect_uri")
            .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
        let verifier = form
            .get("code_verifier")
            .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
        let p = self.pending();
        let with_refresh = client.allows_grant(GrantType::RefreshToken);
        let hash = sha256(code.as_bytes());
        let version = self.hydrate_code(&hash).await?;
        let outcome = self.redeem_in_memory(client, &hash, redirect_uri, verifier, &p, with_refresh);
        // The store decides between replicas redeeming the same code: only one swap succeeds.
        if !self.claim_code(&hash, version).await? {
            let issued = match &outcome {
                Ok((_, refresh)) => refresh.as_ref().map(|(family, _)| family.clone()),
                Err(_) => None,
            };
            let revoked = {
                let mut store = self.store();
                store.revoke_access(&p.jti, p.exp);
                let mut revoked = vec![p.jti.clone()];
                if let Some(family) = issued {
                    revoked.extend(store.revoke_family(&family));
                }
                revoked
            };
            self.forget_verified(&revoked);
            let _ = self.flush().await;
            tracing::warn!(client_id = %client.reg.client_id, "authorization code redeemed twice at once; refused");
            return Err(OAuthError::invalid_grant("the code was already used"));
        }
        let flushed = self.flush().await;
        let (grant, refresh) = outcome?;
        flushed?;
        self.token_response(&grant, &p, refresh.map(|(_, r)| r).as_deref())
    }

    /// The checks of a code redemption, on the in-memory records (loaded from the store first).
    /// Returns the grant and, when one was started, the refresh family and its first token.
    fn redeem_in_memory(
        &self,
        client: &Client,
        hash: &[u8; 32],
        redirect_uri: &str,
        verifier: &str,
        p: &Pending,
        with_refresh: bool,
    ) -> Result<Redeemed, OAuthError> {
        {
            let hash = *hash;
            let mut store = self.store();
            store.sweep(false);
            store.journal.code(hash);
            let Some(record) = store.codes.get_mut(&hash) else {
                return Err(OAuthError::invalid_grant("the code is unknown or has expired"));
            };
            if record.grant.client_id != client.reg.client_id {
                return Err(OAuthError::invalid_grant("the code was issued to another client"));
            }
            if let Some(issued) = record.redeemed.take() {
                record.redeemed = Some(Default::default());
                let mut revoked = Vec::new();
                for (jti, exp) in &issued.access {
                    store.revoke_access(jti, *exp);
                    revoked.push(jti.clone());
                }
                if let Some(family) = &issued.family {
                    revoked.extend(store.revoke_family(family));
                }
                drop(store);
                self.forget_verified(&revoked);
                tracing::warn!(client_id = %client.reg.client_id, "authorization code reused; its tokens are revoked");
                return Err(OAuthError::invalid_grant(
                    "the code was already used; tokens issued from it are revoked",
                ));
            }
            if record.expires_at <= p.iat {
                store.codes.remove(&hash);
                return Err(OAuthError::invalid_grant("the code has expired"));
            }
            // One attempt per code: a wrong redirect URI or verifier uses it up.
            record.redeemed = Some(Default::default());
            record.keep_until = p.exp + LEEWAY as i64;
            if record.redirect_uri != redirect_uri {
                return Err(OAuthError::invalid_grant(
                    "redirect_uri differs from the one of the authorization request",
                ));
            }
            let valid_verifier = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            let challenge = crate::util::b64url(&sha256(verifier.as_bytes()));
            if !valid_verifier || !constant_time_eq(challenge.as_bytes(), record.code_challenge.as_bytes()) {
                return Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ));
            }
            let grant = record.grant.clone();
            let wants_refresh =
                with_refresh && (grant.scopes.has("offline_access") || grant.scopes.has("online_access"));
            let family = if wants_refresh {
                if !store.has_room(|s| s.families.len(), store::MAX_FAMILIES) {
                    return Err(OAuthError::unavailable());
                }
                let family_id = random_token();
                let refresh_token = random_token();
                let expires_at = p.iat + self.inner.refresh_ttl;
                store.families.insert(
                    family_id.clone(),
                    Family {
                        grant: grant.clone(),
                        access: vec![(p.jti.clone(), p.exp)],
                        expires_at,
                        refresh: VecDeque::new(),
                    },
                );
                store.journal.family(&family_id);
                if !store.add_refresh(&family_id, sha256(refresh_token.as_bytes()), expires_at) {
                    store.families.remove(&family_id);
                    return Err(OAuthError::unavailable());
                }
                Some((family_id, refresh_token))
            } else {
                None
            };
            if let Some(record) = store.codes.get_mut(&hash) {
                record.redeemed = Some(store::Issued {
                    access: vec![(p.jti.clone(), p.exp)],
                    family: family.as_ref().map(|(f, _)| f.clone()),
                });
            }
            Ok((grant, family))
        }
    }

    async fn refresh(&self, client: &Client, form: &Form) -> Result<Value, OAuthError> {
        let token = form
            .get("refresh_token")
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
        let requested = form
            .get("scope")
            .map(ScopeSet::parse)
            .transpose()
            .map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
        let p = self.pending();
        let hash = sha256(token.as_bytes());
        let version = self.hydrate_refresh(&hash).await?;
        let outcome = self.refresh_in_memory(client, &hash, requested, &p);
        // The store decides between replicas using the same refresh token: only one swap
        // succeeds, and the other is a reuse (its family is revoked).
        if outcome.is_ok() && !self.claim_refresh(&hash, version).await? {
            let family = self.store().refresh.get(&hash).map(|r| r.family.clone());
            if let Some(family) = family {
                let revoked = self.store().revoke_family(&family);
                self.forget_verified(&revoked);
            }
            let _ = self.flush().await;
            tracing::warn!(client_id = %client.reg.client_id, "refresh token used twice at once; its family is revoked");
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used; the grant is revoked",
            ));
        }
        let flushed = self.flush().await;
        let (grant, new_refresh) = outcome?;
        flushed?;
        self.token_response(&grant, &p, Some(&new_refresh))
    }

    /// The checks and rotation of a refresh, on the in-memory records (loaded from the store
    /// first). Returns the grant and the new refresh token.
    fn refresh_in_memory(
        &self,
        client: &Client,
        hash: &[u8; 32],
        requested: Option<ScopeSet>,
        p: &Pending,
    ) -> Result<(Grant, String), OAuthError> {
        {
            let hash = *hash;
            let mut store = self.store();
            store.sweep(false);
            let Some(record) = store.refresh.get(&hash).cloned() else {
                return Err(OAuthError::invalid_grant("the refresh token is unknown or has expired"));
            };
            let Some(family_grant) = store.families.get(&record.family).map(|f| f.grant.clone()) else {
                return Err(OAuthError::invalid_grant("the refresh token has been revoked"));
            };
            if family_grant.client_id != client.reg.client_id {
                return Err(OAuthError::invalid_grant(
                    "the refresh token was issued to another client",
                ));
            }
            if record.used {
                let revoked = store.revoke_family(&record.family);
                drop(store);
                self.forget_verified(&revoked);
                tracing::warn!(client_id = %client.reg.client_id, "refresh token reused; its family is revoked");
                return Err(OAuthError::invalid_grant(
                    "the refresh token was already used; the grant is revoked",
                ));
            }
            if record.expires_at <= p.iat {
                return Err(OAuthError::invalid_grant("the refresh token has expired"));
            }
            let mut grant = family_grant;
            if let Some(requested) = requested {
                if !requested.is_subset_of(&grant.scopes) {
                    return Err(OAuthError::invalid_scope(
                        "a refresh may narrow the granted scopes, never widen them",
                    ));
                }
                if requested.is_empty() {
                    return Err(OAuthError::invalid_scope("scope is empty"));
                }
                grant.scopes = requested;
            }
            let new_token = random_token();
            let expires_at = p.iat + self.inner.refresh_ttl;
            if !store.add_refresh(&record.family, sha256(new_token.as_bytes()), expires_at) {
                return Err(OAuthError::unavailable());
            }
            store.mark_refresh_used(&hash);
            if let Some(f) = store.families.get_mut(&record.family) {
                f.expires_at = expires_at;
            }
            store.add_family_access(&record.family, &p.jti, p.exp);
            Ok((grant, new_token))
        }
    }

    fn client_credentials(&self, client: &Client, form: &Form) -> Result<Value, OAuthError> {
        if !client.reg.auth.is_confidential() {
            return Err(OAuthError::unauthorized_client(
                "client_credentials needs a confidential client",
            ));
        }
        let requested = match form.get("scope") {
            Some(s) => ScopeSet::parse(s).map_err(|e| OAuthError::invalid_scope(e.to_string()))?,
            // No scope asked: every system/ scope the client is registered for.
            None => {
                let system: Vec<&str> = client
                    .allowed
                    .iter()
                    .zip(client.allowed.tokens())
                    .filter(|(s, _)| matches!(s, crate::scopes::Scope::Resource(r) if r.context == Context::System))
                    .map(|(_, t)| t)
                    .collect();
                ScopeSet::parse(&system.join(" ")).unwrap_or_default()
            }
        };
        if let Some(bad) = requested.resource_scopes().find(|r| r.context != Context::System) {
            return Err(OAuthError::invalid_scope(format!(
                "'{bad}' needs a user or patient context; client_credentials grants only system/ scopes"
            )));
        }
        let granted = requested.intersect(&client.allowed);
        let system: Vec<&str> = granted
            .iter()
            .zip(granted.tokens())
            .filter(|(s, _)| matches!(s, crate::scopes::Scope::Resource(_)))
            .map(|(_, t)| t)
            .collect();
        let granted = ScopeSet::parse(&system.join(" ")).unwrap_or_default();
        if granted.is_empty() {
            return Err(OAuthError::invalid_scope(
                "none of the requested scopes is allowed for this client",
            ));
        }
        let grant = Grant {
            client_id: client.reg.client_id.clone(),
            scopes: granted,
            subject: client.reg.client_id.clone(),
            patient: None,
            encounter: None,
            fhir_user: None,
            nonce: None,
            auth_time: None,
        };
        self.token_response(&grant, &self.pending(), None)
    }

    /// Introspection: any token of this server (access or refresh) or of the external IdP.
    async fn introspect_request(&self, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
        let form = parse_body(headers, body, false)?;
        let is_bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.get(..7))
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "));
        if is_bearer {
            let caller = self
                .authenticate(headers)
                .await
                .map_err(|e| OAuthError::invalid_client(e.description))?;
            if !caller.scopes.resource_scopes().any(|r| r.context == Context::System) {
                return Err(OAuthError::invalid_client(
                    "introspection needs a confidential client or a bearer token with a system/ scope",
                ));
            }
        } else {
            let client = self
                .authenticate_client(headers, &form, &[self.url(paths::TOKEN), self.url(paths::INTROSPECT)])
                .await?;
            if !client.reg.auth.is_confidential() {
                return Err(OAuthError::invalid_client("introspection needs a confidential client"));
            }
        }
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        if let Ok(claims) = self.verify_own(token) {
            let mut out = json!({
                "active": true,
                "token_type": "Bearer",
                "scope": claims.scope,
                "client_id": claims.client_id,
                "sub": claims.sub,
                "exp": claims.exp,
                "iat": claims.iat,
                "nbf": claims.nbf,
                "iss": claims.iss,
                "aud": claims.aud,
                "jti": claims.jti,
            });
            for (name, value) in [
                ("patient", &claims.patient),
                ("encounter", &claims.encounter),
                ("fhirUser", &claims.fhir_user),
            ] {
                if let Some(v) = value {
                    out[name] = json!(v);
                }
            }
            return Ok(out);
        }
        if token.contains('.') {
            if let Ok(identity) = self.verify_token(token).await {
                let mut out = json!({
                    "active": true,
                    "token_type": "Bearer",
                    "scope": identity.scopes.to_scope_string(),
                    "client_id": identity.client_id,
                    "exp": identity.expires_at,
                    "iss": identity.issuer,
                });
                for (name, value) in [
                    ("sub", &identity.subject),
                    ("patient", &identity.patient),
                    ("encounter", &identity.encounter),
                    ("fhirUser", &identity.fhir_user),
                ] {
                    if let Some(v) = value {
                        out[name] = json!(v);
                    }
                }
                return Ok(out);
            }
            return Ok(json!({"active": false}));
        }
        self.hydrate_refresh(&sha256(token.as_bytes())).await?;
        let store = self.store();
        let t = now();
        let live = store
            .refresh
            .get(&sha256(token.as_bytes()))
            .filter(|r| !r.used && r.expires_at > t)
            .and_then(|r| store.families.get(&r.family).map(|f| (r, f)));
        Ok(match live {
            Some((record, family)) => {
                let g = &family.grant;
                let mut out = json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "scope": g.scopes.to_scope_string(),
                    "client_id": g.client_id,
                    "sub": g.subject,
                    "exp": record.expires_at,
                    "iss": self.inner.issuer,
                });
                if let Some(p) = &g.patient {
                    out["patient"] = json!(p);
                }
                if let Some(e) = &g.encounter {
                    out["encounter"] = json!(e);
                }
                if let Some(u) = &g.fhir_user {
                    out["fhirUser"] = json!(self.absolute_fhir_user(u));
                }
                out
            }
            None => json!({"active": false}),
        })
    }

    /// Revocation (RFC 7009): the client's own access or refresh token; anything else is ignored.
    async fn revoke_request(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), OAuthError> {
        let form = parse_body(headers, body, false)?;
        let client = self
            .authenticate_client(headers, &form, &[self.url(paths::TOKEN), self.url(paths::REVOKE)])
            .await?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let client_id = &client.reg.client_id;
        if token.contains('.') {
            if let Ok(claims) = self.verify_own(token)
                && &claims.client_id == client_id
            {
                self.store().revoke_access(&claims.jti, claims.exp);
                self.forget_verified(std::slice::from_ref(&claims.jti));
                self.flush().await?;
                tracing::info!(client_id = %client_id, "access token revoked");
            }
            return Ok(());
        }
        self.hydrate_refresh(&sha256(token.as_bytes())).await?;
        let revoked = {
            let mut store = self.store();
            let family = store
                .refresh
                .get(&sha256(token.as_bytes()))
                .map(|r| r.family.clone())
                .filter(|f| store.families.get(f).is_some_and(|f| &f.grant.client_id == client_id));
            family.map(|family| store.revoke_family(&family))
        };
        if let Some(revoked) = revoked {
            self.forget_verified(&revoked);
            self.flush().await?;
            tracing::info!(client_id = %client_id, "refresh token family revoked");
        }
        Ok(())
    }

    /// `POST /auth/launch`: an EHR's backend creates a launch context.
    async fn launch_request(&self, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
        let form = parse_body(headers, body, true)?;
        let client = self
            .authenticate_client(headers, &form, &[self.url(paths::TOKEN), self.url(paths::LAUNCH)])
            .await?;
        if !client.reg.auth.is_confidential() || !client.allows_grant(GrantType::ClientCredentials) {
            return Err(OAuthError::unauthorized_client(
                "launch contexts are created by a confidential client with the client_credentials grant",
            ));
        }
        let patient = form
            .get("patient")
            .ok_or_else(|| OAuthError::invalid_request("patient is required"))?;
        let patient = patient.strip_prefix("Patient/").unwrap_or(patient);
        if !is_fhir_id(patient) || !self.inner.patients.exists(patient).await {
            return Err(OAuthError::invalid_request("patient is not a known Patient id"));
        }
        let encounter = form.get("encounter").map(|e| e.strip_prefix("Encounter/").unwrap_or(e));
        if encounter.is_some_and(|e| !is_fhir_id(e)) {
            return Err(OAuthError::invalid_request("encounter is not a valid Encounter id"));
        }
        let launch = self
            .mint_launch(Some(patient.to_owned()), encounter.map(str::to_owned))
            .await
            .map_err(|_| OAuthError::unavailable())?;
        tracing::info!(client_id = %client.reg.client_id, "EHR launch context created");
        Ok(json!({"launch": launch}))
    }
}

pub(crate) async fn discovery(State(auth): State<SmartAuth>) -> Response {
    let mut response = (StatusCode::OK, auth.smart_configuration().to_string()).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

pub(crate) async fn jwks(State(auth): State<SmartAuth>) -> Response {
    let mut response = (StatusCode::OK, auth.jwks().to_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

pub(crate) async fn token(
    State(auth): State<SmartAuth>,
    extensions: http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(auth.token_request(&headers, &body, &extensions).await)
}

pub(crate) async fn introspect(State(auth): State<SmartAuth>, headers: HeaderMap, body: Bytes) -> Response {
    respond(auth.introspect_request(&headers, &body).await)
}

pub(crate) async fn revoke(State(auth): State<SmartAuth>, headers: HeaderMap, body: Bytes) -> Response {
    match auth.revoke_request(&headers, &body).await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn launch(State(auth): State<SmartAuth>, headers: HeaderMap, body: Bytes) -> Response {
    respond(auth.launch_request(&headers, &body).await)
}
