//! SMART on FHIR for the gateway.
//!
//! - [`SmartAuth`] is the embedded authorization server (SMART App Launch 2.x and Backend Services):
//!   discovery, the authorization-code flow with PKCE and its login / patient-picker / consent pages,
//!   EHR launch, client credentials (`client_secret_basic`, `private_key_jwt`), refresh with rotation,
//!   introspection, revocation and the JWKS; see [`SmartAuth::router`] for the endpoints and the
//!   authentication each one requires.
//! - [`SmartAuth::authenticate`] verifies bearer tokens (its own, or an external IdP's through its JWKS)
//!   into an [`Identity`], or says why not ([`Unauthorized`], with its `WWW-Authenticate` challenge); the
//!   gateway's token gate calls it and answers the 401.
//! - [`SmartAuth::set_audit`] hands every token issued or refused and every failed sign-in to an
//!   [`AuthAudit`] (the gateway's audit trail), as [`AuthEvent`]s that never carry a secret.
//! - [`scopes`] is the SMART v1/v2 scope grammar.
//!
//! All state (codes, refresh families, revocations, seen assertion ids, launch contexts) is in memory,
//! bounded and swept; a restart ends every code, refresh token and revocation (access tokens stay valid
//! until they expire when the signing key is persisted).

pub mod scopes;

mod audit;
mod authorize;
#[cfg(feature = "demo")]
mod demo;
mod durable;
mod html;
mod jwks;
mod keys;
mod password;
mod settings;
mod store;
mod throttle;
mod token;
mod util;
mod verify;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

pub use async_trait::async_trait;
pub use audit::{AuthAudit, AuthEvent, AuthEventKind};
#[cfg(feature = "demo")]
pub use demo::{DEMO_JWT_JWKS, DEMO_JWT_KID, DEMO_JWT_PRIVATE_KEY_PEM, demo_settings};
pub use password::hash_password;
pub use settings::{AuthSettings, ClientAuth, ClientRegistration, ExternalIdp, GrantType, UserAccount};

use jsonwebtoken::jwk::Jwk;
use scopes::{Context, ScopeSet};

/// What the gateway needs to list and check patients for the patient picker (it implements this
/// over its engine).
#[async_trait]
pub trait PatientDirectory: Send + Sync {
    /// Patients matching `text` (a name; empty lists the first ones), at most `limit`.
    async fn search(&self, text: &str, limit: usize) -> Vec<PatientChoice>;
    /// True when the patient id (`drchrono-9`) exists.
    async fn exists(&self, patient_id: &str) -> bool;
}

/// One row of the patient picker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatientChoice {
    /// The FHIR id (`drchrono-9`).
    pub id: String,
    /// What the picker shows (name, birth date).
    pub display: String,
}

/// An authenticated caller, as [`SmartAuth::authenticate`] verified it.
#[derive(Clone, Debug)]
pub struct Identity {
    pub client_id: String,
    pub scopes: Arc<ScopeSet>,
    /// The patient in context (`drchrono-9`): the token is confined to that patient's compartment.
    /// Always set for a patient user's tokens.
    pub patient: Option<String>,
    pub encounter: Option<String>,
    /// The user's FHIR resource, relative (`Practitioner/drchrono-1`) when it is on this server, else
    /// as the token says.
    pub fhir_user: Option<String>,
    /// `sub`: the username for user tokens, the client id for client-credentials tokens.
    pub subject: Option<String>,
    /// `jti` (for external tokens without one, a hash of the token).
    pub token_id: String,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    pub issuer: String,
}

/// Why a request carries no acceptable bearer token. Never holds the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unauthorized {
    /// `invalid_token`, or `None` when no token was sent.
    pub error: Option<&'static str>,
    pub description: String,
}

impl Unauthorized {
    pub(crate) fn missing() -> Self {
        Self {
            error: None,
            description: "a Bearer access token is required".to_owned(),
        }
    }

    pub(crate) fn invalid(description: impl Into<String>) -> Self {
        Self {
            error: Some("invalid_token"),
            description: description.into(),
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3).
    pub fn www_authenticate(&self) -> String {
        let clean: String = self
            .description
            .chars()
            .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
            .collect();
        match self.error {
            Some(error) => format!("Bearer realm=\"fhir-gateway\", error=\"{error}\", error_description=\"{clean}\""),
            None => "Bearer realm=\"fhir-gateway\"".to_owned(),
        }
    }
}

impl fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error {
            Some(e) => write!(f, "{e}: {}", self.description),
            None => f.write_str(&self.description),
        }
    }
}

impl std::error::Error for Unauthorized {}

/// Why the authorization server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A setting is wrong; `setting` names it (`clients["demo-app"].redirect_uris`).
    #[error("invalid setting {setting}: {reason}")]
    Config { setting: String, reason: String },
    /// Key generation, persistence or rotation failed.
    #[error("signing key: {0}")]
    Key(String),
    /// The durable store could not be read or written.
    #[error("store: {0}")]
    Store(String),
}

fn config(setting: impl Into<String>, reason: impl Into<String>) -> AuthError {
    AuthError::Config {
        setting: setting.into(),
        reason: reason.into(),
    }
}

/// A registered client, validated.
pub(crate) struct Client {
    pub(crate) reg: ClientRegistration,
    pub(crate) allowed: ScopeSet,
    pub(crate) inline_jwks: Vec<Jwk>,
    pub(crate) remote_jwks: Option<jwks::RemoteJwks>,
    /// SHA-256 of the last secret that passed argon2 (so a backend's every token request does not
    /// pay the argon2 cost again).
    pub(crate) verified_secret: Mutex<Option<[u8; 32]>>,
}

impl Client {
    pub(crate) fn allows_grant(&self, g: GrantType) -> bool {
        self.reg.grant_types.contains(&g)
    }
}

pub(crate) struct External {
    pub(crate) cfg: ExternalIdp,
    pub(crate) jwks: jwks::RemoteJwks,
}

pub(crate) struct Inner {
    pub(crate) issuer: String,
    pub(crate) fhir_base: String,
    pub(crate) clients: HashMap<String, Client>,
    pub(crate) users: HashMap<String, UserAccount>,
    pub(crate) keys: keys::KeyRing,
    pub(crate) store: Mutex<store::Store>,
    /// The gateway's durable store, once attached ([`SmartAuth::attach_store`]).
    pub(crate) durable: std::sync::OnceLock<::store::Store>,
    pub(crate) patients: Arc<dyn PatientDirectory>,
    pub(crate) external: Option<External>,
    pub(crate) access_ttl: i64,
    pub(crate) code_ttl: i64,
    pub(crate) refresh_ttl: i64,
    /// Tokens whose signature and claims were verified, by the SHA-256 of the token: a token
    /// presented again skips the signature check (expiry and revocation are still checked).
    pub(crate) verified: Mutex<HashMap<[u8; 32], Identity>>,
    /// The bounded pool every Argon2 check (passwords, client secrets) goes through.
    pub(crate) passwords: password::PasswordChecks,
    /// Failed sign-ins per username and per client address.
    pub(crate) throttle: throttle::Throttle,
    /// Transactions at the login page per client address.
    pub(crate) pending_logins_per_ip: usize,
    /// Where tokens issued and refused and failed sign-ins are reported ([`SmartAuth::set_audit`]).
    pub(crate) audit: std::sync::OnceLock<Arc<dyn AuthAudit>>,
}

/// The SMART authorization server and token verifier. Cheap to clone.
#[derive(Clone)]
pub struct SmartAuth {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for SmartAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmartAuth")
            .field("issuer", &self.inner.issuer)
            .field("clients", &self.inner.clients.len())
            .field("users", &self.inner.users.len())
            .finish_non_exhaustive()
    }
}

/// Endpoint paths (under the base URL).
pub(crate) mod paths {
    pub const DISCOVERY: &str = "/.well-known/smart-configuration";
    pub const AUTHORIZE: &str = "/auth/authorize";
    pub const LOGIN: &str = "/auth/authorize/login";
    pub const PICK_PATIENT: &str = "/auth/authorize/patient";
    pub const CONSENT: &str = "/auth/authorize/consent";
    pub const TOKEN: &str = "/auth/token";
    pub const INTROSPECT: &str = "/auth/introspect";
    pub const REVOKE: &str = "/auth/revoke";
    pub const LAUNCH: &str = "/auth/launch";
    pub const JWKS: &str = "/auth/jwks";
}

fn secs(d: std::time::Duration, setting: &str) -> Result<i64, AuthError> {
    let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    if s < 1 {
        return Err(config(setting, "must be at least one second"));
    }
    if s > 366 * 24 * 3600 {
        return Err(config(setting, "must be at most a year"));
    }
    Ok(s)
}

/// The password-check pool of the settings.
fn password_checks(settings: &AuthSettings) -> Result<password::PasswordChecks, AuthError> {
    let slots = settings.max_concurrent_password_checks;
    if !(1..=password::MAX_SLOTS).contains(&slots) {
        return Err(config(
            "max_concurrent_password_checks",
            format!("must be between 1 and {}", password::MAX_SLOTS),
        ));
    }
    if settings.password_check_wait > std::time::Duration::from_secs(10) {
        return Err(config("password_check_wait", "must be at most 10 seconds"));
    }
    Ok(password::PasswordChecks::new(slots, settings.password_check_wait))
}

/// The sign-in throttle of the settings.
fn login_throttle(settings: &AuthSettings) -> Result<throttle::Throttle, AuthError> {
    if settings.login_failures_per_user < 1 {
        return Err(config("login_failures_per_user", "must be at least 1"));
    }
    if settings.login_failures_per_ip < 1 {
        return Err(config("login_failures_per_ip", "must be at least 1"));
    }
    let max = settings.login_lockout_max;
    if max < std::time::Duration::from_secs(1) || max > std::time::Duration::from_secs(24 * 3600) {
        return Err(config("login_lockout_max", "must be between one second and one day"));
    }
    if !(100..=1_000_000).contains(&settings.login_throttle_entries) {
        return Err(config("login_throttle_entries", "must be between 100 and 1000000"));
    }
    Ok(throttle::Throttle::new(throttle::Limits {
        user_failures: settings.login_failures_per_user,
        ip_failures: settings.login_failures_per_ip,
        max_lockout: max,
        max_entries: settings.login_throttle_entries,
    }))
}

/// A FHIR id (`[A-Za-z0-9\-\.]{1,64}`).
pub(crate) fn is_fhir_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `Type/id` with a FHIR resource type and id.
fn is_relative_reference(s: &str) -> bool {
    s.split_once('/').is_some_and(|(t, id)| {
        t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && t.chars().all(|c| c.is_ascii_alphanumeric())
            && is_fhir_id(id)
    })
}

fn http_url(s: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(s).map_err(|e| format!("'{s}' is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("'{s}' is not an http(s) URL"));
    }
    Ok(u)
}

impl SmartAuth {
    /// Validates the settings and starts the server. A bad setting is reported by name.
    pub fn new(settings: AuthSettings, patients: Arc<dyn PatientDirectory>) -> Result<Self, AuthError> {
        let base = &settings.base_url;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(config("base_url", "must be an absolute http(s) URL"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(config("base_url", "must not have a query or fragment"));
        }
        let issuer = util::trim_slash(base.as_str()).to_owned();
        let fhir_base = format!("{issuer}/fhir");
        let access_ttl = secs(settings.access_token_ttl, "access_token_ttl")?;
        let code_ttl = secs(settings.code_ttl, "code_ttl")?;
        let refresh_ttl = secs(settings.refresh_token_ttl, "refresh_token_ttl")?;
        let passwords = password_checks(&settings)?;
        let throttle = login_throttle(&settings)?;
        let pending_logins_per_ip = settings.max_pending_logins_per_ip;
        if !(1..=store::MAX_TRANSACTIONS).contains(&pending_logins_per_ip) {
            return Err(config(
                "max_pending_logins_per_ip",
                format!("must be between 1 and {}", store::MAX_TRANSACTIONS),
            ));
        }

        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .connect_timeout(std::time::Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AuthError::Key(format!("HTTP client for JWKS fetching: {e}")))?;

        let mut clients = HashMap::new();
        for reg in settings.clients {
            let client = validate_client(reg, &http)?;
            let id = client.reg.client_id.clone();
            if clients.insert(id.clone(), client).is_some() {
                return Err(config(format!("clients[\"{id}\"].client_id"), "is registered twice"));
            }
        }

        let mut users = HashMap::new();
        for user in settings.users {
            let name = user.username.clone();
            let at = format!("users[\"{name}\"]");
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                return Err(config(
                    format!("{at}.username"),
                    "must be 1 to 128 printable characters",
                ));
            }
            password::check_phc(&user.password_hash).map_err(|e| config(format!("{at}.password_hash"), e))?;
            if !is_relative_reference(&user.fhir_user) {
                return Err(config(
                    format!("{at}.fhir_user"),
                    "must be a relative reference like Practitioner/drchrono-1 or Patient/drchrono-9",
                ));
            }
            if users.insert(name.clone(), user).is_some() {
                return Err(config(format!("{at}.username"), "is registered twice"));
            }
        }

        let external = match settings.external {
            None => None,
            Some(cfg) => {
                if cfg.issuer.is_empty() {
                    return Err(config("external.issuer", "is required"));
                }
                if util::trim_slash(&cfg.issuer) == issuer {
                    return Err(config("external.issuer", "must differ from the gateway's own issuer"));
                }
                http_url(&cfg.jwks_url).map_err(|e| config("external.jwks_url", e))?;
                if cfg.audience.is_empty() {
                    return Err(config("external.audience", "is required"));
                }
                if cfg.patient_claim.is_empty() {
                    return Err(config("external.patient_claim", "must not be empty"));
                }
                let jwks = jwks::RemoteJwks::new(cfg.jwks_url.clone(), http.clone());
                Some(External { cfg, jwks })
            }
        };

        let persist_to = settings.data_dir.as_ref().map(|d| d.join(keys::KEY_FILE));
        let first = match (&settings.signing_key_pem, &settings.data_dir) {
            (Some(pem), _) => keys::SigningKey::from_pem(pem).map_err(|e| config("signing_key_pem", e))?,
            (None, Some(dir)) => keys::load_or_generate(dir).map_err(|e| config("data_dir", e))?,
            (None, None) => keys::SigningKey::generate().map_err(AuthError::Key)?.0,
        };
        let key_rotation = settings.key_rotation.map(|d| secs(d, "key_rotation")).transpose()?;
        if key_rotation.is_some() && settings.signing_key_pem.is_some() {
            return Err(config(
                "key_rotation",
                "a configured signing_key_pem is not rotated: leave it out to keep generated keys in the store",
            ));
        }
        // A retired key verifies for as long as the tokens it signed live.
        let keys = keys::KeyRing::new(first, access_ttl + 1, persist_to)
            .with_policy(settings.signing_key_pem.is_some(), key_rotation);

        Ok(Self {
            inner: Arc::new(Inner {
                issuer,
                fhir_base,
                clients,
                users,
                keys,
                store: Mutex::new(store::Store::default()),
                durable: std::sync::OnceLock::new(),
                patients,
                external,
                access_ttl,
                code_ttl,
                refresh_ttl,
                verified: Mutex::new(HashMap::new()),
                passwords,
                throttle,
                pending_logins_per_ip,
                audit: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The issuer (`iss` of every token it signs): the base URL without a trailing `/`.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The FHIR base URL (`aud` of every access token): `{issuer}/fhir`.
    pub fn fhir_base_url(&self) -> &str {
        &self.inner.fhir_base
    }

    /// Absolute URL of an endpoint path.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.issuer)
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, store::Store> {
        self.inner.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a new signing key current and returns its kid. Tokens signed with older keys keep
    /// verifying, and those keys stay in the JWKS, until `access_token_ttl` after the rotation. When
    /// `data_dir` is set the new key is persisted there.
    ///
    /// In this process only: once the keys are kept in an attached store this is refused, use
    /// [`SmartAuth::rotate_key_stored`] (every replica follows it).
    pub fn rotate_key(&self) -> Result<String, AuthError> {
        if self.inner.keys.is_stored() {
            return Err(AuthError::Key(
                "the signing keys are kept in the store: rotate them with rotate_key_stored \
                 (or `fhir-gateway keys rotate`)"
                    .to_owned(),
            ));
        }
        let kid = self.inner.keys.rotate().map_err(AuthError::Key)?;
        tracing::info!(kid = %kid, "signing key rotated");
        Ok(kid)
    }

    /// The public signing keys (`GET /auth/jwks`).
    pub fn jwks(&self) -> serde_json::Value {
        self.inner.keys.jwks()
    }

    /// Creates an EHR launch context (what `POST /auth/launch` does): an opaque id the EHR passes
    /// to the app as `launch`, resolved once at `/auth/authorize` within 10 minutes.
    pub async fn mint_launch(&self, patient: Option<String>, encounter: Option<String>) -> Result<String, AuthError> {
        let id = util::random_token();
        let ctx = store::LaunchContext { patient, encounter };
        let expires_at = util::now() + 600;
        self.store_launch(&id, &ctx, expires_at)
            .await
            .map_err(|_| AuthError::Store("cannot store the launch context".to_owned()))?;
        self.store().add_launch(id.clone(), ctx, expires_at);
        Ok(id)
    }

    /// The SMART discovery document (`/.well-known/smart-configuration`), also for the
    /// CapabilityStatement's security extension.
    pub fn smart_configuration(&self) -> serde_json::Value {
        let mut scopes: Vec<String> = [
            "openid",
            "fhirUser",
            "launch",
            "launch/patient",
            "launch/encounter",
            "offline_access",
            "online_access",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        for context in [Context::Patient, Context::User, Context::System] {
            for perms in ["cruds", "rs", "read", "write", "*"] {
                scopes.push(format!("{}/*.{perms}", context.as_str()));
            }
        }
        serde_json::json!({
            "issuer": self.inner.issuer,
            "jwks_uri": self.url(paths::JWKS),
            "authorization_endpoint": self.url(paths::AUTHORIZE),
            "token_endpoint": self.url(paths::TOKEN),
            "introspection_endpoint": self.url(paths::INTROSPECT),
            "revocation_endpoint": self.url(paths::REVOKE),
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "id_token_signing_alg_values_supported": [format!("{:?}", self.inner.keys.current().alg)],
            "scopes_supported": scopes,
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": [
                "launch-ehr",
                "launch-standalone",
                "client-public",
                "client-confidential-symmetric",
                "client-confidential-asymmetric",
                "context-ehr-patient",
                "context-ehr-encounter",
                "context-standalone-patient",
                "permission-patient",
                "permission-user",
                "permission-offline",
                "permission-online",
                "permission-v1",
                "permission-v2",
                "sso-openid-connect"
            ],
        })
    }

    /// The routes: `/.well-known/smart-configuration` and `/auth/*`, state inside (merge it into the
    /// gateway's router, outside the token gate).
    ///
    /// | route | authentication |
    /// |---|---|
    /// | `GET /.well-known/smart-configuration`, `GET /auth/jwks` | none |
    /// | `GET /auth/authorize`, `POST /auth/authorize/{login,patient,consent}` | the user, on the login page |
    /// | `POST /auth/token` | per client registration: public (`client_id`), `client_secret_basic`, `private_key_jwt` |
    /// | `POST /auth/introspect` | a confidential client (Basic or `private_key_jwt`), or a Bearer token of this server with a `system/` scope |
    /// | `POST /auth/revoke` | as at the token endpoint (public clients send `client_id`); only the client's own tokens are revoked |
    /// | `POST /auth/launch` | a confidential client allowed the `client_credentials` grant (the EHR's backend credentials) |
    pub fn router(&self) -> axum::Router {
        use axum::routing::{get, post};
        axum::Router::new()
            .route(paths::DISCOVERY, get(token::discovery))
            .route(paths::JWKS, get(token::jwks))
            .route(paths::AUTHORIZE, get(authorize::start))
            .route(paths::LOGIN, post(authorize::login))
            .route(paths::PICK_PATIENT, post(authorize::pick_patient))
            .route(paths::CONSENT, post(authorize::consent))
            .route(paths::TOKEN, post(token::token))
            .route(paths::INTROSPECT, post(token::introspect))
            .route(paths::REVOKE, post(token::revoke))
            .route(paths::LAUNCH, post(token::launch))
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
            .with_state(self.clone())
    }
}

fn validate_client(reg: ClientRegistration, http: &reqwest::Client) -> Result<Client, AuthError> {
    let id = &reg.client_id;
    let at = format!("clients[\"{id}\"]");
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic()) || id.contains(':') {
        return Err(config(
            format!("{at}.client_id"),
            "must be 1 to 128 visible ASCII characters without ':'",
        ));
    }
    let allowed = ScopeSet::parse(&reg.scopes).map_err(|e| config(format!("{at}.scopes"), e.to_string()))?;
    if allowed.is_empty() {
        return Err(config(format!("{at}.scopes"), "must allow at least one scope"));
    }
    if reg.grant_types.is_empty() {
        return Err(config(
            format!("{at}.grant_types"),
            "must allow at least one grant type",
        ));
    }
    if !reg.auth.is_confidential() && reg.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(config(
            format!("{at}.grant_types"),
            "a public client cannot use client_credentials",
        ));
    }
    if reg.grant_types.contains(&GrantType::AuthorizationCode) && reg.redirect_uris.is_empty() {
        return Err(config(
            format!("{at}.redirect_uris"),
            "the authorization_code grant needs at least one redirect URI",
        ));
    }
    for uri in &reg.redirect_uris {
        let u = url::Url::parse(uri).map_err(|e| config(format!("{at}.redirect_uris"), format!("'{uri}': {e}")))?;
        if u.fragment().is_some() || u.cannot_be_a_base() {
            return Err(config(
                format!("{at}.redirect_uris"),
                format!("'{uri}' must be an absolute URI without a fragment"),
            ));
        }
    }
    if reg.allow_loopback_any_port
        && !reg
            .redirect_uris
            .iter()
            .any(|u| url::Url::parse(u).is_ok_and(|u| u.scheme() == "http" && authorize::is_loopback(&u)))
    {
        return Err(config(
            format!("{at}.allow_loopback_any_port"),
            "needs an http://localhost/… or http://127.0.0.1/… redirect URI",
        ));
    }
    let mut inline_jwks = Vec::new();
    let mut remote_jwks = None;
    match &reg.auth {
        ClientAuth::Public => {}
        ClientAuth::SecretBasic { secret_hash } => {
            password::check_phc(secret_hash).map_err(|e| config(format!("{at}.secret_hash"), e))?;
        }
        ClientAuth::PrivateKeyJwt { jwks, jwks_url } => {
            if jwks.is_none() && jwks_url.is_none() {
                return Err(config(format!("{at}.jwks"), "private_key_jwt needs jwks or jwks_url"));
            }
            if let Some(set) = jwks {
                inline_jwks = jwks::parse_jwks(set).map_err(|e| config(format!("{at}.jwks"), e))?;
                let usable = inline_jwks.iter().any(|k| {
                    jwks::usable_for(k, jsonwebtoken::Algorithm::RS384)
                        || jwks::usable_for(k, jsonwebtoken::Algorithm::ES384)
                });
                if !usable {
                    return Err(config(
                        format!("{at}.jwks"),
                        "holds no RS384 or ES384 (P-384) signing key",
                    ));
                }
            }
            if let Some(url) = jwks_url {
                http_url(url).map_err(|e| config(format!("{at}.jwks_url"), e))?;
                remote_jwks = Some(jwks::RemoteJwks::new(url.clone(), http.clone()));
            }
        }
    }
    Ok(Client {
        reg,
        allowed,
        inline_jwks,
        remote_jwks,
        verified_secret: Mutex::new(None),
    })
}
