//! The demo mode's clients and users.

use std::path::PathBuf;

use url::Url;

use crate::{AuthSettings, ClientAuth, ClientRegistration, GrantType, UserAccount, hash_password};

/// The `demo-jwt` client's private key (ES384, PKCS#8 PEM). Publicly known: demo only.
pub const DEMO_JWT_PRIVATE_KEY_PEM: &str = include_str!("../../../examples/keys/demo-jwt.private.pem");
/// The `demo-jwt` client's public JWKS.
pub const DEMO_JWT_JWKS: &str = include_str!("../../../examples/keys/demo-jwt.jwks.json");
/// The kid of the `demo-jwt` key.
pub const DEMO_JWT_KID: &str = "demo-jwt-1";

/// The demo registrations:
///
/// | client | authentication | scopes | grants |
/// |---|---|---|---|
/// | `demo-backend` | `client_secret_basic`, secret `demo-secret` | `system/*.rs` | client_credentials |
/// | `demo-jwt` | `private_key_jwt` (ES384, [`DEMO_JWT_PRIVATE_KEY_PEM`], kid `demo-jwt-1`) | `system/*.cruds` | client_credentials |
/// | `demo-app` | public + PKCE; `http://localhost/callback`, `http://127.0.0.1/callback` on any port | `openid fhirUser launch launch/patient offline_access online_access patient/*.cruds user/*.cruds patient/*.read user/*.read` | authorization_code, refresh_token |
///
/// and the users `dr.demo` (fhirUser `practitioner`) and `patient.demo` (fhirUser `patient`), both
/// with password `demo-password`. `practitioner` and `patient` are references
/// (`Practitioner/drchrono-1`, `Patient/drchrono-9`) or bare ids (the type is then added).
pub fn demo_settings(base_url: Url, data_dir: Option<PathBuf>, practitioner: &str, patient: &str) -> AuthSettings {
    let reference = |ty: &str, s: &str| {
        if s.contains('/') {
            s.to_owned()
        } else {
            format!("{ty}/{s}")
        }
    };
    let mut settings = AuthSettings::new(base_url);
    settings.data_dir = data_dir;
    settings.clients = vec![
        ClientRegistration {
            client_id: "demo-backend".into(),
            name: "Demo backend service".into(),
            auth: ClientAuth::SecretBasic {
                secret_hash: hash_password("demo-secret"),
            },
            redirect_uris: Vec::new(),
            allow_loopback_any_port: false,
            scopes: "system/*.rs".into(),
            grant_types: vec![GrantType::ClientCredentials],
        },
        ClientRegistration {
            client_id: "demo-jwt".into(),
            name: "Demo backend service (private_key_jwt)".into(),
            auth: ClientAuth::PrivateKeyJwt {
                jwks: serde_json::from_str(DEMO_JWT_JWKS).ok(),
                jwks_url: None,
            },
            redirect_uris: Vec::new(),
            allow_loopback_any_port: false,
            scopes: "system/*.cruds".into(),
            grant_types: vec![GrantType::ClientCredentials],
        },
        ClientRegistration {
            client_id: "demo-app".into(),
            name: "Demo SMART app".into(),
            auth: ClientAuth::Public,
            redirect_uris: vec!["http://localhost/callback".into(), "http://127.0.0.1/callback".into()],
            allow_loopback_any_port: true,
            scopes: "openid fhirUser launch launch/patient offline_access online_access patient/*.cruds \
                     user/*.cruds patient/*.read user/*.read"
                .into(),
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        },
    ];
    settings.users = vec![
        UserAccount {
            username: "dr.demo".into(),
            password_hash: hash_password("demo-password"),
            display_name: "Dr. Demo Practitioner".into(),
            fhir_user: reference("Practitioner", practitioner),
        },
        UserAccount {
            username: "patient.demo".into(),
            password_hash: hash_password("demo-password"),
            display_name: "Demo Patient".into(),
            fhir_user: reference("Patient", patient),
        },
    ];
    settings
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

    #[test]
    fn the_demo_key_matches_its_jwks() {
        let jwks: serde_json::Value = serde_json::from_str(DEMO_JWT_JWKS).unwrap();
        let keys = crate::jwks::parse_jwks(&jwks).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].common.key_id.as_deref(), Some(DEMO_JWT_KID));
        let mut header = Header::new(Algorithm::ES384);
        header.kid = Some(DEMO_JWT_KID.into());
        let key = EncodingKey::from_ec_pem(DEMO_JWT_PRIVATE_KEY_PEM.as_bytes()).unwrap();
        let token = jsonwebtoken::encode(&header, &serde_json::json!({"exp": crate::util::now() + 60}), &key).unwrap();
        let decoding = DecodingKey::from_jwk(&keys[0]).unwrap();
        jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &Validation::new(Algorithm::ES384)).unwrap();
    }
}
