//! External IdP mode against a JWKS server on loopback.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use smart_auth::ExternalIdp;
use smart_auth::scopes::Permission;

const IDP: &str = "https://idp.example/realms/clinic";
const AUDIENCE: &str = "fhir-gateway";

/// What the fake IdP serves.
struct Idp {
    jwks: Mutex<Value>,
    cache_control: Mutex<Option<String>>,
    hits: AtomicUsize,
}

async fn start_idp(jwks: Value, cache_control: Option<&str>) -> (Arc<Idp>, String) {
    let idp = Arc::new(Idp {
        jwks: Mutex::new(jwks),
        cache_control: Mutex::new(cache_control.map(str::to_owned)),
        hits: AtomicUsize::new(0),
    });
    let state = idp.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let idp = state.clone();
            async move {
                idp.hits.fetch_add(1, Ordering::SeqCst);
                let body = idp.jwks.lock().unwrap().to_string();
                let mut response = axum::response::Response::new(axum::body::Body::from(body));
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, "application/json".parse().unwrap());
                if let Some(cc) = idp.cache_control.lock().unwrap().clone() {
                    response
                        .headers_mut()
                        .insert(http::header::CACHE_CONTROL, cc.parse().unwrap());
                }
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (idp, format!("http://{addr}/jwks"))
}

fn external_server(jwks_url: &str) -> Server {
    let mut settings = settings();
    let mut ext = ExternalIdp::new(IDP, jwks_url, AUDIENCE);
    ext.patient_claim = "patient_id".into();
    settings.external = Some(ext);
    server_with(settings)
}

fn claims(extra: Value) -> Value {
    let t = now();
    let mut c = json!({"iss": IDP, "aud": AUDIENCE, "sub": "user-7", "exp": t + 300, "iat": t, "azp": "ehr-app"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[tokio::test]
async fn external_tokens_are_verified_through_the_jwks() {
    let key = TestKey::rsa(Algorithm::RS256, "idp-1");
    let (idp, url) = start_idp(key.jwks(), None).await;
    let s = external_server(&url);

    let token = key.sign(
        Some("JWT"),
        &claims(
            json!({"scope": "openid patient/Appointment.rs weird:scope\\x", "patient_id": "Patient/drchrono-9",
                        "fhirUser": format!("{FHIR}/Practitioner/drchrono-1"), "jti": "ext-1"}),
        ),
    );
    let identity = s.verify(&token).await.unwrap();
    assert_eq!(identity.issuer, IDP);
    assert_eq!(identity.client_id, "ehr-app");
    assert_eq!(identity.subject.as_deref(), Some("user-7"));
    assert_eq!(identity.patient.as_deref(), Some("drchrono-9"));
    assert_eq!(identity.fhir_user.as_deref(), Some("Practitioner/drchrono-1"));
    assert_eq!(identity.token_id, "ext-1");
    assert!(identity.scopes.allows("Appointment", Permission::Read));
    assert_eq!(
        identity.scopes.to_scope_string(),
        "openid patient/Appointment.rs",
        "unknown scopes are dropped"
    );

    // scp as an array.
    let token = key.sign(None, &claims(json!({"scp": ["system/*.rs", "openid"]})));
    let identity = s.verify(&token).await.unwrap();
    assert!(identity.scopes.allows("Patient", Permission::Search));
    assert!(!identity.token_id.is_empty());

    // Wrong audience, wrong issuer, expired, HS256 with the public key, a key it does not publish.
    let bad_aud = key.sign(None, &claims(json!({"aud": "someone-else"})));
    assert!(s.verify(&bad_aud).await.is_err());
    let bad_iss = key.sign(None, &claims(json!({"iss": "https://idp.example/other"})));
    assert!(s.verify(&bad_iss).await.is_err());
    let expired = key.sign(None, &claims(json!({"exp": now() - 600})));
    assert!(s.verify(&expired).await.unwrap_err().description.contains("expired"));
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("idp-1".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims(json!({})),
        &EncodingKey::from_secret(idp.jwks.lock().unwrap().to_string().as_bytes()),
    )
    .unwrap();
    assert!(s.verify(&hs).await.is_err());

    // All of that from one fetch (default max-age 5 min).
    assert_eq!(idp.hits.load(Ordering::SeqCst), 1);

    // The gateway's own tokens still work next to the IdP's.
    let own = s
        .token(
            Some(&basic("backend", "s3cret")),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json();
    assert!(s.verify(own["access_token"].as_str().unwrap()).await.is_ok());
}

#[tokio::test]
async fn a_rotated_kid_refetches_the_jwks_at_most_every_30_seconds() {
    let first = TestKey::ec(Algorithm::ES256, "k1");
    let second = TestKey::ec(Algorithm::ES256, "k2");
    let third = TestKey::ec(Algorithm::ES256, "k3");
    let (idp, url) = start_idp(first.jwks(), Some("public, max-age=3600")).await;
    let s = external_server(&url);

    assert!(s.verify(&first.sign(None, &claims(json!({})))).await.is_ok());
    assert_eq!(idp.hits.load(Ordering::SeqCst), 1);

    // The IdP rotates: a token with the new kid triggers one refetch.
    *idp.jwks.lock().unwrap() = json!({"keys": [first.jwk, second.jwk]});
    assert!(s.verify(&second.sign(None, &claims(json!({})))).await.is_ok());
    assert_eq!(idp.hits.load(Ordering::SeqCst), 2);
    assert!(s.verify(&second.sign(None, &claims(json!({})))).await.is_ok());
    assert_eq!(idp.hits.load(Ordering::SeqCst), 2, "cached again");

    // Another unknown kid right after: refused without hammering the IdP.
    *idp.jwks.lock().unwrap() = json!({"keys": [second.jwk, third.jwk]});
    let err = s.verify(&third.sign(None, &claims(json!({})))).await.unwrap_err();
    assert!(err.description.contains("unknown"), "{}", err.description);
    assert_eq!(idp.hits.load(Ordering::SeqCst), 2, "rate-limited");
}

#[tokio::test]
async fn cache_control_max_age_is_obeyed() {
    let key = TestKey::ec(Algorithm::ES384, "short");
    let (idp, url) = start_idp(key.jwks(), Some("max-age=1")).await;
    let s = external_server(&url);
    let token = key.sign(None, &claims(json!({})));
    assert!(s.verify(&token).await.is_ok());
    assert!(s.verify(&token).await.is_ok());
    assert_eq!(idp.hits.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(s.verify(&token).await.is_ok());
    assert_eq!(idp.hits.load(Ordering::SeqCst), 2, "stale after max-age");

    // A key the IdP withdrew stops verifying once the cache expires.
    *idp.jwks.lock().unwrap() = json!({"keys": []});
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(s.verify(&token).await.is_err());
}

#[tokio::test]
async fn an_unreachable_idp_fails_closed() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = external_server(&format!("http://127.0.0.1:{port}/jwks"));
    let key = TestKey::ec(Algorithm::ES256, "k");
    let err = s.verify(&key.sign(None, &claims(json!({})))).await.unwrap_err();
    assert_eq!(err.error, Some("invalid_token"));
}
