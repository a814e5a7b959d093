//! What the authorization server is configured with.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// The authorization server's settings.
#[derive(Clone)]
pub struct AuthSettings {
    /// The gateway's public base URL (no `/fhir`). The issuer is this URL (without a trailing `/`), the
    /// FHIR base URL (every token's `aud`) is `{base}/fhir`.
    pub base_url: Url,
    /// Where a generated signing key is persisted (`smart-signing-key.pem`), so tokens survive a
    /// restart. `None` keeps it in memory.
    pub data_dir: Option<PathBuf>,
    /// A configured private key: ES256 (P-256, PKCS#8 PEM), ES384 (P-384, PKCS#8 PEM) or RS256 (RSA,
    /// PKCS#8 or PKCS#1 PEM). `None` generates an ES256 key (persisted in `data_dir` when set).
    pub signing_key_pem: Option<String>,
    /// How often the signing key is replaced by a new one (at least a second, at most a year), when
    /// the keys are kept in the gateway's store (a store is attached with `SmartAuth::attach_store`
    /// and no `signing_key_pem` is configured; with one, this setting is refused). One replica
    /// rotates, every replica signs with the new key within a second, and the previous key keeps
    /// verifying (and stays in the JWKS) until the tokens it signed have expired. `None` (the
    /// default): only on demand (`SmartAuth::rotate_key_stored`, `SmartAuth::rotate_stored_key`).
    pub key_rotation: Option<Duration>,
    /// Lifetime of access tokens and id_tokens (default 1 h).
    pub access_token_ttl: Duration,
    /// Lifetime of authorization codes (default 60 s).
    pub code_ttl: Duration,
    /// Lifetime of a refresh token (default 30 days); each use rotates it and starts a new lifetime.
    pub refresh_token_ttl: Duration,
    pub clients: Vec<ClientRegistration>,
    pub users: Vec<UserAccount>,
    /// When set, bearer tokens from that issuer are also accepted.
    pub external: Option<ExternalIdp>,
    /// Argon2 checks (user passwords, client secrets) run at once (default: the number of CPUs).
    /// Further ones wait up to `password_check_wait` in a short queue, then are answered 503 with
    /// `Retry-After`.
    pub max_concurrent_password_checks: usize,
    /// How long a password check may wait for a free slot (default 300 ms; at most 10 s; zero
    /// refuses at once).
    pub password_check_wait: Duration,
    /// Failed sign-ins per username before it is locked out (default 5); each further failure
    /// doubles the lock-out, from one second up to `login_lockout_max`.
    pub login_failures_per_user: u32,
    /// Failed sign-ins per client address (IPv6: per /64) before it is locked out the same way
    /// (default 20: users behind one NAT share an address).
    pub login_failures_per_ip: u32,
    /// The longest sign-in lock-out (default 15 minutes).
    pub login_lockout_max: Duration,
    /// Usernames, and separately client addresses, the sign-in throttle remembers at most (default
    /// 10,000 each); past it the longest-idle counters are forgotten first.
    pub login_throttle_entries: usize,
    /// Sign-ins in progress that have not passed the login page, per client address (default 20);
    /// past it that address's oldest one is dropped.
    pub max_pending_logins_per_ip: usize,
}

impl AuthSettings {
    /// Settings with the default lifetimes and no clients, users or external IdP.
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            data_dir: None,
            signing_key_pem: None,
            key_rotation: None,
            access_token_ttl: Duration::from_secs(3600),
            code_ttl: Duration::from_secs(60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            clients: Vec::new(),
            users: Vec::new(),
            external: None,
            max_concurrent_password_checks: std::thread::available_parallelism().map_or(1, usize::from),
            password_check_wait: Duration::from_millis(300),
            login_failures_per_user: 5,
            login_failures_per_ip: 20,
            login_lockout_max: Duration::from_secs(15 * 60),
            login_throttle_entries: 10_000,
            max_pending_logins_per_ip: 20,
        }
    }
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("base_url", &self.base_url.as_str())
            .field("data_dir", &self.data_dir)
            .field("signing_key_pem", &self.signing_key_pem.as_ref().map(|_| "[redacted]"))
            .field("key_rotation", &self.key_rotation)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("code_ttl", &self.code_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("clients", &self.clients)
            .field("users", &self.users)
            .field("external", &self.external)
            .field("max_concurrent_password_checks", &self.max_concurrent_password_checks)
            .field("password_check_wait", &self.password_check_wait)
            .field("login_failures_per_user", &self.login_failures_per_user)
            .field("login_failures_per_ip", &self.login_failures_per_ip)
            .field("login_lockout_max", &self.login_lockout_max)
            .field("login_throttle_entries", &self.login_throttle_entries)
            .field("max_pending_logins_per_ip", &self.max_pending_logins_per_ip)
            .finish()
    }
}

/// A registered client (app or backend service).
#[derive(Clone, Debug)]
pub struct ClientRegistration {
    pub client_id: String,
    /// Shown on the login and consent pages.
    pub name: String,
    pub auth: ClientAuth,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Native/demo apps: a registered `http://localhost/…` or `http://127.0.0.1/…` redirect URI also
    /// matches the same URI on any port (RFC 8252 §7.3).
    pub allow_loopback_any_port: bool,
    /// The most it may be granted (space-separated SMART scopes).
    pub scopes: String,
    pub grant_types: Vec<GrantType>,
}

/// How a client authenticates at the token endpoint.
#[derive(Clone)]
pub enum ClientAuth {
    /// No credentials: `client_id` only, PKCE protects the code.
    Public,
    /// `client_secret_basic`: HTTP Basic with the client id and secret.
    SecretBasic {
        /// argon2 PHC string of the secret ([`crate::hash_password`]).
        secret_hash: String,
    },
    /// `private_key_jwt` (SMART Backend Services): a JWT assertion signed RS384 or ES384 with a key
    /// of the client's JWKS, given inline or fetched from a URL.
    PrivateKeyJwt {
        jwks: Option<serde_json::Value>,
        jwks_url: Option<String>,
    },
}

impl ClientAuth {
    /// True for clients that authenticate (secret or key).
    pub fn is_confidential(&self) -> bool {
        !matches!(self, Self::Public)
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Public => f.write_str("Public"),
            Self::SecretBasic { .. } => f.write_str("SecretBasic { secret_hash: [redacted] }"),
            Self::PrivateKeyJwt { jwks, jwks_url } => f
                .debug_struct("PrivateKeyJwt")
                .field("jwks", &jwks.as_ref().map(|_| "{…}"))
                .field("jwks_url", jwks_url)
                .finish(),
        }
    }
}

/// An OAuth grant type a client may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    RefreshToken,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
        }
    }

    /// Parses `authorization_code`, `client_credentials`, `refresh_token`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "authorization_code" => Some(Self::AuthorizationCode),
            "client_credentials" => Some(Self::ClientCredentials),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }
}

/// A user of the embedded login page.
#[derive(Clone)]
pub struct UserAccount {
    pub username: String,
    /// argon2 PHC string ([`crate::hash_password`]).
    pub password_hash: String,
    pub display_name: String,
    /// `Practitioner/drchrono-1` or `Patient/drchrono-9`: a patient user's tokens are always confined
    /// to that patient.
    pub fhir_user: String,
}

impl fmt::Debug for UserAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAccount")
            .field("username", &self.username)
            .field("password_hash", &"[redacted]")
            .field("display_name", &self.display_name)
            .field("fhir_user", &self.fhir_user)
            .finish()
    }
}

/// An external identity provider whose access tokens are accepted too.
#[derive(Clone, Debug)]
pub struct ExternalIdp {
    /// The exact `iss` of its tokens.
    pub issuer: String,
    pub jwks_url: String,
    /// The `aud` its tokens must carry for this gateway.
    pub audience: String,
    /// The claim holding the patient id (`patient`); `Patient/x` is accepted as `x`.
    pub patient_claim: String,
    /// The claim holding the user's FHIR resource (`fhirUser`), if any.
    pub fhir_user_claim: Option<String>,
}

impl ExternalIdp {
    /// An IdP with the default claims (`patient`, `fhirUser`).
    pub fn new(issuer: impl Into<String>, jwks_url: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            jwks_url: jwks_url.into(),
            audience: audience.into(),
            patient_claim: "patient".to_owned(),
            fhir_user_claim: Some("fhirUser".to_owned()),
        }
    }
}
