//! `[auth]`: SMART on FHIR — the embedded authorization server's clients and users, its token and
//! sign-in bounds, and an external issuer whose tokens are accepted too.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use smart_auth::{AuthSettings, ClientAuth, ClientRegistration, ExternalIdp, GrantType, UserAccount};
use url::Url;

use super::{ConfigError, invalid};

/// `[auth]`: SMART on FHIR.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// `smart` (the embedded authorization server, and/or an external IdP) or `none` (`serve`
    /// refuses it without `--insecure-no-auth`).
    pub mode: Option<String>,
    /// Where a generated signing key is kept across restarts.
    pub data_dir: Option<String>,
    /// The token signing key (PKCS#8 PEM, EC P-256 → ES256 or RSA → RS256); usually `signing_key_file`.
    pub signing_key: Option<String>,
    /// Replace the signing key every this many days (1–365; keys kept in the store, so not with
    /// `signing_key`). Without it, only `fhir-gateway keys rotate` rotates.
    pub key_rotation_days: Option<u64>,
    pub access_token_ttl_secs: Option<u64>,
    pub refresh_token_ttl_secs: Option<u64>,
    /// Argon2 checks (client secrets, passwords) run at once; default: the core count.
    pub max_concurrent_password_checks: Option<usize>,
    /// How long a check waits for a free slot before the answer is 503 (default 300 ms).
    pub password_check_wait_ms: Option<u64>,
    /// Failed sign-ins per username, then per client address, before the lock-out (5, 20).
    pub login_failures_per_user: Option<u32>,
    pub login_failures_per_ip: Option<u32>,
    /// The longest lock-out (it doubles from 1 s; default 900).
    pub login_lockout_max_secs: Option<u64>,
    /// Sign-ins not yet past the login page, per client address (default 20).
    pub max_pending_logins_per_ip: Option<usize>,
    pub clients: Vec<ClientSection>,
    pub users: Vec<UserSection>,
    pub external: Option<ExternalSection>,
}

/// `[[auth.clients]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    pub client_id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `public`, `client_secret_basic` or `private_key_jwt`.
    pub auth: String,
    /// argon2 PHC string of the secret (`client_secret_basic`; `fhir-gateway hash-password` makes one).
    #[serde(default)]
    pub secret_hash: Option<String>,
    /// The client's public keys as a JWKS JSON document (`private_key_jwt`), or
    #[serde(default)]
    pub jwks: Option<String>,
    /// where to fetch them.
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub allow_loopback_any_port: bool,
    /// The most it may be granted.
    pub scopes: String,
    /// `authorization_code`, `refresh_token`, `client_credentials`.
    pub grant_types: Vec<String>,
}

/// `[[auth.users]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    pub username: String,
    pub password_hash: String,
    pub display_name: String,
    /// `Practitioner/drchrono-1` or `Patient/drchrono-9`.
    pub fhir_user: String,
}

/// `[auth.external]`: accept tokens of another authorization server too.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSection {
    pub issuer: String,
    pub jwks_url: String,
    /// Default: the gateway's FHIR base URL.
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub patient_claim: Option<String>,
    #[serde(default)]
    pub fhir_user_claim: Option<String>,
}

impl AuthSection {
    /// The SMART settings when `auth.mode = "smart"`, `None` when there is no authentication. Their
    /// base URL is `server.public_url`, else `http://{listen}` (set again when the listener is known).
    pub(super) fn validate(
        self,
        listen: SocketAddr,
        public_url: Option<&Url>,
    ) -> Result<Option<AuthSettings>, ConfigError> {
        match self.mode.as_deref() {
            None | Some("none") => Ok(None),
            Some("smart") => {
                let base = public_url
                    .cloned()
                    .or_else(|| Url::parse(&format!("http://{listen}")).ok())
                    .ok_or_else(|| invalid("server.public_url", "must be set"))?;
                self.smart(base).map(Some)
            }
            Some(other) => Err(invalid(
                "auth.mode",
                format!("'{other}' is not a mode: use 'smart' or 'none'"),
            )),
        }
    }

    /// Validates `[auth]` (mode `smart`) into the SMART settings.
    fn smart(self, base: Url) -> Result<AuthSettings, ConfigError> {
        let mut s = AuthSettings::new(base);
        s.data_dir = self.data_dir.map(std::path::PathBuf::from);
        s.signing_key_pem = self.signing_key;
        if let Some(days) = self.key_rotation_days {
            if !(1..=365).contains(&days) {
                return Err(invalid("auth.key_rotation_days", "must be between 1 and 365"));
            }
            if s.signing_key_pem.is_some() {
                return Err(invalid(
                    "auth.key_rotation_days",
                    "a configured auth.signing_key(_file) is not rotated: leave it out to keep generated keys in the store",
                ));
            }
            s.key_rotation = Some(Duration::from_secs(days * 86_400));
        }
        if let Some(t) = self.access_token_ttl_secs {
            if !(60..=86_400).contains(&t) {
                return Err(invalid("auth.access_token_ttl_secs", "must be between 60 and 86400"));
            }
            s.access_token_ttl = Duration::from_secs(t);
        }
        if let Some(t) = self.refresh_token_ttl_secs {
            if t < 60 {
                return Err(invalid("auth.refresh_token_ttl_secs", "must be at least 60"));
            }
            s.refresh_token_ttl = Duration::from_secs(t);
        }
        if let Some(n) = self.max_concurrent_password_checks {
            s.max_concurrent_password_checks = n;
        }
        if let Some(ms) = self.password_check_wait_ms {
            if ms > 10_000 {
                return Err(invalid("auth.password_check_wait_ms", "must be at most 10000"));
            }
            s.password_check_wait = Duration::from_millis(ms);
        }
        if let Some(n) = self.login_failures_per_user {
            if n == 0 {
                return Err(invalid("auth.login_failures_per_user", "must be at least 1"));
            }
            s.login_failures_per_user = n;
        }
        if let Some(n) = self.login_failures_per_ip {
            if n == 0 {
                return Err(invalid("auth.login_failures_per_ip", "must be at least 1"));
            }
            s.login_failures_per_ip = n;
        }
        if let Some(t) = self.login_lockout_max_secs {
            if !(1..=86_400).contains(&t) {
                return Err(invalid("auth.login_lockout_max_secs", "must be between 1 and 86400"));
            }
            s.login_lockout_max = Duration::from_secs(t);
        }
        if let Some(n) = self.max_pending_logins_per_ip {
            s.max_pending_logins_per_ip = n;
        }
        for (i, c) in self.clients.into_iter().enumerate() {
            s.clients.push(c.validate(i)?);
        }
        for (i, u) in self.users.into_iter().enumerate() {
            s.users.push(u.validate(i)?);
        }
        if let Some(e) = self.external {
            s.external = Some(e.idp(&s.base_url));
        }
        if s.clients.is_empty() && s.external.is_none() {
            return Err(invalid(
                "auth.clients",
                "mode 'smart' needs at least one [[auth.clients]] or an [auth.external] issuer",
            ));
        }
        Ok(s)
    }
}

impl ClientSection {
    /// Validates `auth.clients[i]`.
    fn validate(self, i: usize) -> Result<ClientRegistration, ConfigError> {
        let at = |key: &str| format!("auth.clients[{i}].{key}");
        if self.client_id.trim().is_empty() {
            return Err(invalid(&at("client_id"), "must not be empty"));
        }
        let auth = match self.auth.as_str() {
            "public" => ClientAuth::Public,
            "client_secret_basic" => ClientAuth::SecretBasic {
                secret_hash: self
                    .secret_hash
                    .filter(|h| h.starts_with("$argon2"))
                    .ok_or_else(|| invalid(&at("secret_hash"), "must be an argon2 PHC string"))?,
            },
            "private_key_jwt" => {
                let jwks = match &self.jwks {
                    None => None,
                    Some(text) => Some(
                        serde_json::from_str::<serde_json::Value>(text)
                            .map_err(|_| invalid(&at("jwks"), "must be a JWKS JSON document"))?,
                    ),
                };
                if jwks.is_none() && self.jwks_url.is_none() {
                    return Err(invalid(&at("jwks"), "a private_key_jwt client needs jwks or jwks_url"));
                }
                ClientAuth::PrivateKeyJwt {
                    jwks,
                    jwks_url: self.jwks_url,
                }
            }
            other => {
                return Err(invalid(
                    &at("auth"),
                    format!("'{other}' is not one of public, client_secret_basic, private_key_jwt"),
                ));
            }
        };
        if smart_auth::scopes::ScopeSet::parse(&self.scopes).is_err() {
            return Err(invalid(&at("scopes"), "holds a scope that is not valid SMART syntax"));
        }
        let mut grant_types = Vec::new();
        for g in &self.grant_types {
            grant_types.push(GrantType::parse(g).ok_or_else(|| {
                invalid(
                    &at("grant_types"),
                    format!("'{g}' is not one of authorization_code, refresh_token, client_credentials"),
                )
            })?);
        }
        Ok(ClientRegistration {
            name: self.name.unwrap_or_else(|| self.client_id.clone()),
            client_id: self.client_id,
            auth,
            redirect_uris: self.redirect_uris,
            allow_loopback_any_port: self.allow_loopback_any_port,
            scopes: self.scopes,
            grant_types,
        })
    }
}

impl UserSection {
    /// Validates `auth.users[i]`.
    fn validate(self, i: usize) -> Result<UserAccount, ConfigError> {
        if !self.password_hash.starts_with("$argon2") {
            return Err(invalid(
                &format!("auth.users[{i}].password_hash"),
                "must be an argon2 PHC string",
            ));
        }
        if !(self.fhir_user.starts_with("Practitioner/") || self.fhir_user.starts_with("Patient/")) {
            return Err(invalid(
                &format!("auth.users[{i}].fhir_user"),
                "must be Practitioner/{id} or Patient/{id}",
            ));
        }
        Ok(UserAccount {
            username: self.username,
            password_hash: self.password_hash,
            display_name: self.display_name,
            fhir_user: self.fhir_user,
        })
    }
}

impl ExternalSection {
    /// The external issuer; its tokens' audience defaults to the gateway's FHIR base URL under `base`.
    fn idp(self, base: &Url) -> ExternalIdp {
        let audience = self
            .audience
            .unwrap_or_else(|| format!("{}/fhir", base.as_str().trim_end_matches('/')));
        let mut idp = ExternalIdp::new(self.issuer, self.jwks_url, audience);
        if let Some(c) = self.patient_claim {
            idp.patient_claim = c;
        }
        if self.fhir_user_claim.is_some() {
            idp.fhir_user_claim = self.fhir_user_claim;
        }
        idp
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::tests::smart;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$6Cg4CrTvFGyY5w0P3uT1Y0k0lZ5qf8Qw2QJt0s6X1fI";

    #[test]
    fn smart_clients_users_and_an_external_issuer() {
        let s = smart(&format!(
            r#"[[auth.clients]]
client_id = "ehr"
auth = "client_secret_basic"
secret_hash = "{HASH}"
scopes = "system/*.rs launch"
grant_types = ["client_credentials"]
[[auth.clients]]
client_id = "app"
auth = "public"
redirect_uris = ["https://app.example/cb"]
scopes = "openid fhirUser launch/patient patient/*.rs offline_access"
grant_types = ["authorization_code", "refresh_token"]
[[auth.users]]
username = "dr"
password_hash = "{HASH}"
display_name = "Dr"
fhir_user = "Practitioner/drchrono-1"
[auth.external]
issuer = "https://idp.example"
jwks_url = "https://idp.example/jwks"
"#
        ))
        .unwrap();
        assert!(s.auth_configured);
        let auth = s.auth.unwrap();
        assert_eq!(auth.clients.len(), 2);
        assert_eq!(auth.users[0].fhir_user, "Practitioner/drchrono-1");
        let external = auth.external.unwrap();
        assert_eq!(external.audience, "https://gw.example/fhir");
        assert_eq!(auth.base_url.as_str(), "https://gw.example/");
    }

    #[test]
    fn bad_auth_settings_are_named() {
        let client = |extra: &str| {
            format!(
                "[[auth.clients]]\nclient_id = \"x\"\nscopes = \"system/*.rs\"\ngrant_types = [\"client_credentials\"]\n{extra}"
            )
        };
        let e = smart(&client("auth = \"telepathy\"")).unwrap_err().to_string();
        assert!(e.contains("auth.clients[0].auth"), "{e}");
        let e = smart(&client("auth = \"client_secret_basic\"\nsecret_hash = \"plain\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.clients[0].secret_hash"), "{e}");
        let e = smart(&client("auth = \"private_key_jwt\"")).unwrap_err().to_string();
        assert!(e.contains("auth.clients[0].jwks"), "{e}");
        let e = smart(&client("auth = \"public\"").replace("system/*.rs", "patient/Appointment.sr"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.clients[0].scopes"), "{e}");
        let e = smart(&format!(
            "[[auth.users]]\nusername = \"u\"\npassword_hash = \"{HASH}\"\ndisplay_name = \"U\"\nfhir_user = \"Device/1\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("auth.users[0].fhir_user"), "{e}");
        let e = smart("access_token_ttl_secs = 5\n").unwrap_err().to_string();
        assert!(e.contains("auth.access_token_ttl_secs"), "{e}");
        for (body, setting) in [
            ("password_check_wait_ms = 60000\n", "auth.password_check_wait_ms"),
            ("login_failures_per_user = 0\n", "auth.login_failures_per_user"),
            ("login_failures_per_ip = 0\n", "auth.login_failures_per_ip"),
            ("login_lockout_max_secs = 0\n", "auth.login_lockout_max_secs"),
            ("key_rotation_days = 0\n", "auth.key_rotation_days"),
            (
                "key_rotation_days = 30\nsigning_key = \"pem\"\n",
                "auth.key_rotation_days",
            ),
        ] {
            let e = smart(body).unwrap_err().to_string();
            assert!(e.contains(setting), "{body}: {e}");
        }
    }

    #[test]
    fn sign_in_bounds_are_settings() {
        let s = smart(
            "max_concurrent_password_checks = 3\npassword_check_wait_ms = 50\nlogin_failures_per_user = 4\nlogin_failures_per_ip = 9\nlogin_lockout_max_secs = 60\nmax_pending_logins_per_ip = 7\n[[auth.clients]]\nclient_id = \"x\"\nauth = \"public\"\nredirect_uris = [\"https://app.example/cb\"]\nscopes = \"patient/*.rs\"\ngrant_types = [\"authorization_code\"]\n",
        )
        .unwrap();
        let a = s.auth.unwrap();
        assert_eq!(a.max_concurrent_password_checks, 3);
        assert_eq!(a.password_check_wait, Duration::from_millis(50));
        assert_eq!((a.login_failures_per_user, a.login_failures_per_ip), (4, 9));
        assert_eq!(a.login_lockout_max, Duration::from_secs(60));
        assert_eq!(a.max_pending_logins_per_ip, 7);
        assert_eq!(a.key_rotation, None);
        let s = smart(
            "key_rotation_days = 30\n[[auth.clients]]\nclient_id = \"x\"\nauth = \"public\"\nredirect_uris = [\"https://app.example/cb\"]\nscopes = \"patient/*.rs\"\ngrant_types = [\"authorization_code\"]\n",
        )
        .unwrap();
        assert_eq!(s.auth.unwrap().key_rotation, Some(Duration::from_secs(30 * 86_400)));
    }
}
