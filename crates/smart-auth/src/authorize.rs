//! The authorization endpoint: request validation, then the login, patient-picker and consent pages,
//! then the redirect with a code. The flow's state stays server-side under an unguessable,
//! short-lived transaction id carried in a hidden form field (never in a URL).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use url::Url;

use crate::audit::{self, AuthEvent, AuthEventKind};
use crate::html::{consent_page, error_page, html_response, login_page, picker_page};
use crate::scopes::{Context, ScopeSet};
use crate::store::{self, AuthTx, CodeRecord, Grant, Step};
use crate::throttle::ClientIp;
use crate::util::{Form, now, random_token, sha256, truncate};
use crate::{ClientRegistration, GrantType, PatientChoice, SmartAuth, is_fhir_id, password, paths};

/// How long a user has to get through the pages.
const TX_TTL: i64 = 600;
/// Wrong passwords allowed per authorization request.
const MAX_LOGIN_FAILURES: u32 = 5;
/// Patients listed by the picker.
const PICKER_LIMIT: usize = 20;

/// True for `localhost`, `127.0.0.0/8` and `[::1]`.
pub(crate) fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Exact match with a registered redirect URI, or (when allowed) the same loopback URI on any port.
pub(crate) fn redirect_allowed(client: &ClientRegistration, uri: &str) -> bool {
    if client.redirect_uris.iter().any(|r| r == uri) {
        return true;
    }
    if !client.allow_loopback_any_port {
        return false;
    }
    let Ok(u) = Url::parse(uri) else { return false };
    if u.scheme() != "http"
        || !is_loopback(&u)
        || u.fragment().is_some()
        || !u.username().is_empty()
        || u.password().is_some()
    {
        return false;
    }
    client.redirect_uris.iter().any(|r| {
        Url::parse(r).is_ok_and(|r| {
            r.scheme() == "http"
                && is_loopback(&r)
                && r.host_str() == u.host_str()
                && r.path() == u.path()
                && r.query() == u.query()
        })
    })
}

/// True when the grant needs a patient in context.
fn needs_patient(scopes: &ScopeSet) -> bool {
    scopes.has("launch/patient") || scopes.resource_scopes().any(|r| r.context == Context::Patient)
}

/// Redirects to the client with `params` added to its redirect URI.
fn redirect(uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = Url::parse(uri) else {
        return html_response(StatusCode::BAD_REQUEST, error_page("The redirect URI is invalid."));
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// An error sent back to the (validated) redirect URI.
fn redirect_error(uri: &str, state: Option<&str>, error: &str, description: &str) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect(uri, &params)
}

fn error(status: StatusCode, message: &str) -> Response {
    html_response(status, error_page(message))
}

/// Adds `Retry-After` (seconds).
fn with_retry_after(mut response: Response, secs: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// What counting a sign-in attempt on a transaction found.
enum Counted {
    /// Counted: the attempts so far, this one included.
    Attempt(u32),
    /// Earlier attempts (perhaps still being checked) used every try.
    Exhausted,
    /// The transaction is gone or past the login page.
    Gone,
}

/// `GET /auth/authorize`.
pub(crate) async fn start(
    State(auth): State<SmartAuth>,
    extensions: http::Extensions,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let form = match Form::parse(query.as_bytes()) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("Invalid authorization request: {e}.")),
    };
    let Some(client_id) = form.get("client_id") else {
        return error(StatusCode::BAD_REQUEST, "The authorization request has no client_id.");
    };
    let Some(client) = auth.client(client_id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "The application is not registered with this server.",
        );
    };
    let Some(redirect_uri) = form.get("redirect_uri") else {
        return error(
            StatusCode::BAD_REQUEST,
            "The authorization request has no redirect_uri.",
        );
    };
    if !redirect_allowed(&client.reg, redirect_uri) {
        return error(
            StatusCode::BAD_REQUEST,
            "The redirect_uri is not registered for this application.",
        );
    }
    let state = form.get("state");
    let fail = |e: &str, d: &str| redirect_error(redirect_uri, state, e, d);
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return fail(
            "unauthorized_client",
            "this client may not use the authorization_code grant",
        );
    }
    if form.get("response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let Some(state) = state else {
        return fail("invalid_request", "state is required");
    };
    if state.len() > 2048 {
        return fail("invalid_request", "state is too long");
    }
    let aud_ok = form
        .get("aud")
        .is_some_and(|a| crate::util::trim_slash(a) == auth.inner.fhir_base);
    if !aud_ok {
        return fail("invalid_request", "aud must be this server's FHIR base URL");
    }
    match form.get("code_challenge_method") {
        Some("S256") => {}
        Some("plain") => {
            return fail(
                "invalid_request",
                "code_challenge_method plain is not allowed; use S256",
            );
        }
        _ => {
            return fail(
                "invalid_request",
                "PKCE is required: code_challenge_method must be S256",
            );
        }
    }
    let challenge_ok = form
        .get("code_challenge")
        .is_some_and(|c| c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    if !challenge_ok {
        return fail(
            "invalid_request",
            "code_challenge must be the base64url SHA-256 of the code verifier",
        );
    }
    let requested = match form.get("scope").map(ScopeSet::parse) {
        None => return fail("invalid_scope", "scope is required"),
        Some(Err(e)) => return fail("invalid_scope", &e.to_string()),
        Some(Ok(s)) => s,
    };
    // Backend (system/) scopes are never granted through a user's authorization.
    let granted = requested.intersect(&client.allowed);
    let user_facing: Vec<&str> = granted
        .iter()
        .zip(granted.tokens())
        .filter(|(s, _)| !matches!(s, crate::scopes::Scope::Resource(r) if r.context == Context::System))
        .map(|(_, t)| t)
        .collect();
    let granted = ScopeSet::parse(&user_facing.join(" ")).unwrap_or_default();
    if granted.is_empty() {
        return fail(
            "invalid_scope",
            "none of the requested scopes is allowed for this client",
        );
    }
    let nonce = form.get("nonce");
    if nonce.is_some_and(|n| n.len() > 512) {
        return fail("invalid_request", "nonce is too long");
    }
    if let Some(id) = form.get("launch")
        && auth.hydrate_launch(id).await.is_err()
    {
        return fail(
            "temporarily_unavailable",
            "the authorization server cannot reach its store",
        );
    }
    let mut store = auth.store();
    store.sweep(false);
    let launch = match form.get("launch") {
        None => None,
        Some(id) => match store.take_launch(id) {
            Some(ctx) => Some(ctx),
            None => return fail("invalid_request", "launch is unknown, expired or already used"),
        },
    };
    let tx_id = random_token();
    let added = store.add_transaction(
        tx_id.clone(),
        AuthTx {
            client_id: client.reg.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            state: state.to_owned(),
            code_challenge: form.get("code_challenge").unwrap_or_default().to_owned(),
            scopes: granted,
            nonce: nonce.map(str::to_owned),
            launch,
            step: Step::Login,
            username: None,
            auth_time: None,
            patient: None,
            patient_display: None,
            last_results: Vec::new(),
            login_failures: 0,
            expires_at: now() + TX_TTL,
            ip: ClientIp::from_extensions(&extensions),
        },
        auth.inner.pending_logins_per_ip,
    );
    drop(store);
    if !added {
        return fail("temporarily_unavailable", "too many sign-ins in progress; retry later");
    }
    html_response(
        StatusCode::OK,
        login_page(&auth.url(paths::LOGIN), &tx_id, &client.reg.name, "", None),
    )
}

impl SmartAuth {
    /// The transaction `id` if it is live and at `step` (else why not, for the error page).
    fn transaction(&self, id: Option<&str>, step: Step) -> Result<(String, AuthTx), &'static str> {
        const EXPIRED: &str = "This sign-in has expired or is not valid.";
        let id = id.ok_or(EXPIRED)?;
        let store = self.store();
        let tx = store
            .transactions
            .get(id)
            .filter(|t| t.expires_at > now())
            .ok_or(EXPIRED)?;
        if tx.step != step {
            return Err("This page was submitted out of order.");
        }
        Ok((id.to_owned(), tx.clone()))
    }

    /// Counts a sign-in attempt on the transaction before its password is checked, so parallel
    /// guesses on one transaction cannot exceed [`MAX_LOGIN_FAILURES`].
    fn count_login_attempt(&self, id: &str) -> Counted {
        let mut store = self.store();
        match store.transactions.get_mut(id) {
            Some(tx) if tx.step == Step::Login && tx.expires_at > now() => {
                if tx.login_failures >= MAX_LOGIN_FAILURES {
                    return Counted::Exhausted;
                }
                tx.login_failures += 1;
                Counted::Attempt(tx.login_failures)
            }
            _ => Counted::Gone,
        }
    }

    /// Takes back an attempt that checked no password.
    fn uncount_login_attempt(&self, id: &str) {
        let mut store = self.store();
        if let Some(tx) = store.transactions.get_mut(id)
            && tx.step == Step::Login
        {
            tx.login_failures = tx.login_failures.saturating_sub(1);
        }
    }

    /// Saves the transaction if it is still at `from`.
    fn save(&self, id: &str, from: Step, tx: AuthTx) -> bool {
        let mut store = self.store();
        match store.transactions.get_mut(id) {
            Some(current) if current.step == from => {
                *current = tx;
                true
            }
            _ => false,
        }
    }

    fn client_name(&self, tx: &AuthTx) -> String {
        self.client(&tx.client_id)
            .map(|c| c.reg.name.clone())
            .unwrap_or_else(|| tx.client_id.clone())
    }

    async fn show_picker(&self, id: &str, mut tx: AuthTx, query: &str, error: Option<&str>) -> Response {
        let results = self.inner.patients.search(query, PICKER_LIMIT).await;
        tx.last_results = results.clone();
        let step = tx.step;
        let client_name = self.client_name(&tx);
        if !self.save(id, step, tx) {
            return crate::authorize::error(StatusCode::BAD_REQUEST, "This sign-in has expired or is not valid.");
        }
        html_response(
            StatusCode::OK,
            picker_page(&self.url(paths::PICK_PATIENT), id, &client_name, query, &results, error),
        )
    }

    fn show_consent(&self, id: &str, tx: &AuthTx) -> Response {
        let user = tx
            .username
            .as_deref()
            .and_then(|u| self.inner.users.get(u))
            .map(|u| u.display_name.clone())
            .unwrap_or_default();
        let patient = tx.patient_display.clone().or_else(|| tx.patient.clone());
        html_response(
            StatusCode::OK,
            consent_page(
                &self.url(paths::CONSENT),
                id,
                &self.client_name(tx),
                &user,
                patient.as_deref(),
                &tx.scopes,
            ),
        )
    }
}

/// `POST /auth/authorize/login`. The attempt is counted (per username and client address across
/// transactions, and on this transaction) before any password is checked; while either counter
/// locks it out, or while every password-check slot is taken, no Argon2 work is done. With a store
/// attached the username and address counters are the stored ones, shared by every replica, and the
/// outcome is written there before the answer.
pub(crate) async fn login(State(auth): State<SmartAuth>, extensions: http::Extensions, body: Bytes) -> Response {
    let Ok(form) = Form::parse(&body) else {
        return error(StatusCode::BAD_REQUEST, "The form is invalid.");
    };
    let (id, mut tx) = match auth.transaction(form.get("tx"), Step::Login) {
        Ok(t) => t,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let username = form.get("username").unwrap_or_default();
    let password = form.get("password").unwrap_or_default().to_owned();
    let again = |status: StatusCode, message: &str| {
        html_response(
            status,
            login_page(
                &auth.url(paths::LOGIN),
                &id,
                &auth.client_name(&tx),
                &truncate(username, 128),
                Some(message),
            ),
        )
    };
    let attempt = match auth
        .inner
        .throttle
        .begin(username, ClientIp::from_extensions(&extensions), auth.durable())
        .await
    {
        Ok(attempt) => attempt,
        Err(locked) => {
            tracing::info!(client_id = %tx.client_id, "sign-in refused: too many failed attempts");
            auth.audit(|| login_event(&auth, AuthEventKind::LoginLocked, &tx, username, &extensions));
            let secs = locked.retry_after;
            let message = format!(
                "Too many failed sign-in attempts; try again in {secs} second{}.",
                if secs == 1 { "" } else { "s" }
            );
            return with_retry_after(again(StatusCode::TOO_MANY_REQUESTS, &message), locked.retry_after);
        }
    };
    let failures = match auth.count_login_attempt(&id) {
        Counted::Attempt(n) => n,
        Counted::Exhausted => {
            attempt.not_checked().await;
            auth.audit(|| login_event(&auth, AuthEventKind::LoginLocked, &tx, username, &extensions));
            return give_up(&auth, &id, &tx);
        }
        Counted::Gone => {
            attempt.not_checked().await;
            return error(StatusCode::BAD_REQUEST, "This sign-in has expired or is not valid.");
        }
    };
    let user = auth.inner.users.get(username).cloned();
    let checks = &auth.inner.passwords;
    let checked = match &user {
        Some(u) if !password.is_empty() => checks.verify_password_async(password, u.password_hash.clone()).await,
        _ => checks.burn_verification(password).await.map(|()| false),
    };
    let ok = match checked {
        Ok(ok) => ok,
        Err(password::Busy) => {
            attempt.not_checked().await;
            auth.uncount_login_attempt(&id);
            tracing::warn!(client_id = %tx.client_id, "sign-in refused: every password-check slot is taken");
            let busy = again(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy; please try again in a moment.",
            );
            return with_retry_after(busy, 1);
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        attempt.failed().await;
        tracing::info!(client_id = %tx.client_id, "sign-in failed");
        auth.audit(|| login_event(&auth, AuthEventKind::LoginFailed, &tx, username, &extensions));
        if failures >= MAX_LOGIN_FAILURES {
            return give_up(&auth, &id, &tx);
        }
        return again(StatusCode::OK, "The username or password is incorrect.");
    };
    attempt.succeeded().await;
    tx.login_failures = failures;
    tracing::info!(client_id = %tx.client_id, "user signed in");
    tx.username = Some(user.username.clone());
    tx.auth_time = Some(now());
    let launch_patient = tx.launch.as_ref().and_then(|l| l.patient.clone());
    if let Some(own) = user.fhir_user.strip_prefix("Patient/") {
        // A patient user's context is always their own record.
        if launch_patient.as_deref().is_some_and(|p| p != own) {
            auth.store().transactions.remove(&id);
            return redirect_error(
                &tx.redirect_uri,
                Some(&tx.state),
                "access_denied",
                "the launch patient is not the signed-in patient",
            );
        }
        tx.patient = Some(own.to_owned());
        tx.patient_display = Some(user.display_name.clone());
        // `user/` scopes grant what the user may see: for a patient, their own compartment.
        tx.scopes = tx.scopes.for_patient_user();
        tx.step = Step::Consent;
    } else if let Some(patient) = launch_patient {
        tx.patient = Some(patient);
        tx.step = Step::Consent;
    } else if needs_patient(&tx.scopes) {
        // Move to the picker step, then render it (which saves the results at that step).
        tx.step = Step::PickPatient;
        if !auth.save(&id, Step::Login, tx.clone()) {
            return error(StatusCode::BAD_REQUEST, "This sign-in has expired or is not valid.");
        }
        return auth.show_picker(&id, tx, "", None).await;
    } else {
        tx.step = Step::Consent;
    }
    if !auth.save(&id, Step::Login, tx.clone()) {
        return error(StatusCode::BAD_REQUEST, "This sign-in has expired or is not valid.");
    }
    auth.show_consent(&id, &tx)
}

/// The audit event of a sign-in of `username` that failed or was refused: the transaction's client,
/// the username typed, its fhirUser when the username exists, the caller's address. Never the
/// password.
fn login_event(
    auth: &SmartAuth,
    kind: AuthEventKind,
    tx: &AuthTx,
    username: &str,
    extensions: &http::Extensions,
) -> AuthEvent {
    let mut event = AuthEvent::new(kind);
    event.client_id = Some(audit::name(&tx.client_id));
    event.username = Some(audit::name(username)).filter(|u| !u.is_empty());
    event.fhir_user = auth.inner.users.get(username).map(|u| u.fhir_user.clone());
    event.ip = audit::peer_ip(extensions);
    event
}

/// Ends a sign-in that used up its tries: the transaction is dropped and the app is told
/// `access_denied`.
fn give_up(auth: &SmartAuth, id: &str, tx: &AuthTx) -> Response {
    auth.store().transactions.remove(id);
    redirect_error(
        &tx.redirect_uri,
        Some(&tx.state),
        "access_denied",
        "too many failed sign-in attempts",
    )
}

/// `POST /auth/authorize/patient`: a search (`q`) or a choice (`patient`).
pub(crate) async fn pick_patient(State(auth): State<SmartAuth>, body: Bytes) -> Response {
    let Ok(form) = Form::parse(&body) else {
        return error(StatusCode::BAD_REQUEST, "The form is invalid.");
    };
    let (id, mut tx) = match auth.transaction(form.get("tx"), Step::PickPatient) {
        Ok(t) => t,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Some(choice) = form.get("patient") else {
        let query = truncate(form.get("q").unwrap_or_default().trim(), 100);
        return auth.show_picker(&id, tx, &query, None).await;
    };
    if !is_fhir_id(choice) || !auth.inner.patients.exists(choice).await {
        return auth.show_picker(&id, tx, "", Some("That patient was not found.")).await;
    }
    let display = tx
        .last_results
        .iter()
        .find(|p: &&PatientChoice| p.id == choice)
        .map(|p| p.display.clone());
    tx.patient = Some(choice.to_owned());
    tx.patient_display = display;
    tx.last_results.clear();
    tx.step = Step::Consent;
    if !auth.save(&id, Step::PickPatient, tx.clone()) {
        return error(StatusCode::BAD_REQUEST, "This sign-in has expired or is not valid.");
    }
    auth.show_consent(&id, &tx)
}

/// `POST /auth/authorize/consent`: Allow issues a code, Deny answers `access_denied`.
pub(crate) async fn consent(State(auth): State<SmartAuth>, body: Bytes) -> Response {
    let Ok(form) = Form::parse(&body) else {
        return error(StatusCode::BAD_REQUEST, "The form is invalid.");
    };
    let (id, tx) = match auth.transaction(form.get("tx"), Step::Consent) {
        Ok(t) => t,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let decision = form.get("decision");
    if !matches!(decision, Some("allow" | "deny")) {
        return error(StatusCode::BAD_REQUEST, "Choose Allow or Deny.");
    }
    let code = match issue_code(&auth, &id, &tx, decision) {
        Ok(code) => code,
        Err(response) => return *response,
    };
    // Another replica may redeem it: the code is stored before the client hears of it.
    if auth.flush().await.is_err() {
        return redirect_error(
            &tx.redirect_uri,
            Some(&tx.state),
            "temporarily_unavailable",
            "the authorization server cannot reach its store; retry later",
        );
    }
    tracing::info!(client_id = %tx.client_id, "authorization code issued");
    redirect(&tx.redirect_uri, &[("code", &code), ("state", &tx.state)])
}

/// Ends the transaction and, on Allow, issues the code (in memory; journaled for the store).
fn issue_code(auth: &SmartAuth, id: &str, tx: &AuthTx, decision: Option<&str>) -> Result<String, Box<Response>> {
    let mut store = auth.store();
    if store.transactions.remove(id).is_none() {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or is not valid.",
        )));
    }
    if decision == Some("deny") {
        drop(store);
        tracing::info!(client_id = %tx.client_id, "authorization denied by the user");
        return Err(Box::new(redirect_error(
            &tx.redirect_uri,
            Some(&tx.state),
            "access_denied",
            "the user denied access",
        )));
    }
    let user = tx.username.as_deref().and_then(|u| auth.inner.users.get(u));
    let grant = Grant {
        client_id: tx.client_id.clone(),
        scopes: tx.scopes.clone(),
        subject: tx.username.clone().unwrap_or_default(),
        patient: tx.patient.clone(),
        encounter: tx.launch.as_ref().and_then(|l| l.encounter.clone()),
        fhir_user: user.map(|u| u.fhir_user.clone()),
        nonce: tx.nonce.clone(),
        auth_time: tx.auth_time,
    };
    if !store.has_room(|s| s.codes.len(), store::MAX_CODES) {
        drop(store);
        return Err(Box::new(redirect_error(
            &tx.redirect_uri,
            Some(&tx.state),
            "temporarily_unavailable",
            "too many pending codes; retry later",
        )));
    }
    let code = random_token();
    let expires_at = now() + auth.inner.code_ttl;
    store.journal.code(sha256(code.as_bytes()));
    store.codes.insert(
        sha256(code.as_bytes()),
        CodeRecord {
            redirect_uri: tx.redirect_uri.clone(),
            code_challenge: tx.code_challenge.clone(),
            grant,
            expires_at,
            redeemed: None,
            keep_until: expires_at,
        },
    );
    drop(store);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientAuth;

    fn client(uris: &[&str], loopback: bool) -> ClientRegistration {
        ClientRegistration {
            client_id: "app".into(),
            name: "App".into(),
            auth: ClientAuth::Public,
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            allow_loopback_any_port: loopback,
            scopes: "openid".into(),
            grant_types: vec![GrantType::AuthorizationCode],
        }
    }

    #[test]
    fn redirect_uris_match_exactly_or_on_any_loopback_port() {
        let c = client(&["http://localhost/callback", "https://app.example/cb"], true);
        assert!(redirect_allowed(&c, "https://app.example/cb"));
        assert!(!redirect_allowed(&c, "https://app.example/cb/"));
        assert!(!redirect_allowed(&c, "https://app.example:8443/cb"));
        assert!(redirect_allowed(&c, "http://localhost/callback"));
        assert!(redirect_allowed(&c, "http://localhost:5173/callback"));
        assert!(!redirect_allowed(&c, "http://localhost:5173/other"));
        assert!(
            !redirect_allowed(&c, "http://127.0.0.1:5173/callback"),
            "only the registered host"
        );
        assert!(!redirect_allowed(&c, "http://localhost.evil.example:5173/callback"));
        assert!(!redirect_allowed(&c, "http://user@localhost:5173/callback"));
        assert!(!redirect_allowed(&c, "http://localhost:5173/callback#x"));
        let strict = client(&["http://localhost/callback"], false);
        assert!(!redirect_allowed(&strict, "http://localhost:5173/callback"));
    }
}
