//! Discovery, the JWKS, and settings validation.

use crate::common;

use axum::body::Body;
use common::*;
use http::{Request, StatusCode, header};
use smart_auth::{AuthError, ClientAuth, GrantType, SmartAuth};

#[tokio::test]
async fn discovery_document() {
    let s = server();
    let r = s
        .send(
            Request::get("/.well-known/smart-configuration")
                .header(header::ACCEPT, "text/html")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        "application/json",
        "JSON regardless of Accept"
    );
    let d = r.json();
    assert_eq!(d, s.auth.smart_configuration());
    assert_eq!(d["issuer"], BASE);
    assert_eq!(d["jwks_uri"], "https://gw.example/auth/jwks");
    assert_eq!(d["authorization_endpoint"], "https://gw.example/auth/authorize");
    assert_eq!(d["token_endpoint"], TOKEN_URL);
    assert_eq!(d["introspection_endpoint"], "https://gw.example/auth/introspect");
    assert_eq!(d["revocation_endpoint"], "https://gw.example/auth/revoke");
    assert_eq!(
        d["grant_types_supported"],
        serde_json::json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "private_key_jwt"])
    );
    assert_eq!(
        d["token_endpoint_auth_signing_alg_values_supported"],
        serde_json::json!(["RS384", "ES384"])
    );
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    let caps: Vec<&str> = d["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for cap in [
        "launch-ehr",
        "launch-standalone",
        "client-public",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "context-ehr-patient",
        "context-standalone-patient",
        "permission-patient",
        "permission-user",
        "permission-offline",
        "permission-v1",
        "permission-v2",
        "sso-openid-connect",
    ] {
        assert!(caps.contains(&cap), "{cap} missing");
    }
    let scopes: Vec<&str> = d["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for scope in [
        "openid",
        "fhirUser",
        "launch/patient",
        "offline_access",
        "patient/*.rs",
        "system/*.cruds",
        "user/*.read",
    ] {
        assert!(scopes.contains(&scope), "{scope} missing");
    }
    assert_eq!(s.auth.issuer(), BASE);
    assert_eq!(s.auth.fhir_base_url(), FHIR);
}

#[tokio::test]
async fn jwks_publishes_public_keys_only() {
    let s = server();
    let r = s.get("/auth/jwks").await;
    assert_eq!(r.status, StatusCode::OK);
    let jwks = r.json();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert!(key["kid"].as_str().is_some_and(|k| k.len() > 20));
    assert!(key.get("d").is_none());
}

#[tokio::test]
async fn base_urls_with_a_trailing_slash_or_a_path() {
    let mut settings = settings();
    settings.base_url = url::Url::parse("https://gw.example/prefix/").unwrap();
    let s = server_with(settings);
    assert_eq!(s.auth.issuer(), "https://gw.example/prefix");
    assert_eq!(
        s.auth.smart_configuration()["token_endpoint"],
        "https://gw.example/prefix/auth/token"
    );
    let (_, challenge) = pkce();
    let url = format!(
        "/auth/authorize?{}",
        form(&[
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", APP_REDIRECT),
            ("scope", "user/*.read"),
            ("state", "s"),
            ("aud", "https://gw.example/prefix/fhir/"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
    );
    let page = s.get(&url).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("action=\"https://gw.example/prefix/auth/authorize/login\"")
    );
}

fn config_error(settings: smart_auth::AuthSettings) -> (String, String) {
    match SmartAuth::new(settings, patients()) {
        Err(AuthError::Config { setting, reason }) => (setting, reason),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn bad_settings_name_the_setting() {
    let mut s = settings();
    s.signing_key_pem = Some("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into());
    assert_eq!(config_error(s).0, "signing_key_pem");

    let mut s = settings();
    s.access_token_ttl = std::time::Duration::ZERO;
    assert_eq!(config_error(s).0, "access_token_ttl");

    let mut s = settings();
    s.base_url = url::Url::parse("ftp://gw.example").unwrap();
    assert_eq!(config_error(s).0, "base_url");

    let mut s = settings();
    s.clients[0].scopes = "patient/Foo.xyz".into();
    assert_eq!(config_error(s).0, "clients[\"app\"].scopes");

    let mut s = settings();
    s.clients[0].redirect_uris.clear();
    assert_eq!(config_error(s).0, "clients[\"app\"].redirect_uris");

    let mut s = settings();
    s.clients[0].allow_loopback_any_port = true;
    assert_eq!(config_error(s).0, "clients[\"app\"].allow_loopback_any_port");

    let mut s = settings();
    s.clients[0].grant_types.push(GrantType::ClientCredentials);
    assert_eq!(config_error(s).0, "clients[\"app\"].grant_types");

    let mut s = settings();
    let dup = s.clients[1].clone();
    s.clients.push(dup);
    assert_eq!(config_error(s).0, "clients[\"confidential-app\"].client_id");

    let mut s = settings();
    s.clients[2].auth = ClientAuth::SecretBasic {
        secret_hash: "plain-text-secret".into(),
    };
    assert_eq!(config_error(s).0, "clients[\"backend\"].secret_hash");

    let mut s = settings();
    s.clients[3].auth = ClientAuth::PrivateKeyJwt {
        jwks: None,
        jwks_url: None,
    };
    assert_eq!(config_error(s).0, "clients[\"jwt-es\"].jwks");

    let mut s = settings();
    s.clients[3].auth = ClientAuth::PrivateKeyJwt {
        jwks: Some(TestKey::ec(jsonwebtoken::Algorithm::ES256, "p256").jwks()),
        jwks_url: None,
    };
    let (setting, reason) = config_error(s);
    assert_eq!(setting, "clients[\"jwt-es\"].jwks");
    assert!(reason.contains("ES384"), "{reason}");

    let mut s = settings();
    s.clients[3].auth = ClientAuth::PrivateKeyJwt {
        jwks: None,
        jwks_url: Some("not a url".into()),
    };
    assert_eq!(config_error(s).0, "clients[\"jwt-es\"].jwks_url");

    let mut s = settings();
    s.users[0].fhir_user = "drchrono-1".into();
    assert_eq!(config_error(s).0, "users[\"dr\"].fhir_user");

    let mut s = settings();
    s.users[1].password_hash = String::new();
    assert_eq!(config_error(s).0, "users[\"pat\"].password_hash");

    let mut s = settings();
    s.external = Some(smart_auth::ExternalIdp::new("https://idp.example", "nope", "fhir"));
    assert_eq!(config_error(s).0, "external.jwks_url");

    let mut s = settings();
    s.external = Some(smart_auth::ExternalIdp::new(BASE, "https://idp.example/jwks", "fhir"));
    assert_eq!(config_error(s).0, "external.issuer");
}
