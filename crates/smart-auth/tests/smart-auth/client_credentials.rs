//! SMART Backend Services: client_credentials with client_secret_basic and private_key_jwt.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use http::{StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use smart_auth::scopes::Permission;
use smart_auth::{ClientAuth, GrantType};

fn jti() -> String {
    let (v, _) = pkce();
    v
}

#[tokio::test]
async fn secret_basic() {
    let s = server();
    let r = s
        .token(
            Some(&basic("backend", "s3cret")),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "system/Patient.rs system/Appointment.c"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    let t = r.json();
    assert_eq!(t["scope"], "system/Patient.rs system/Appointment.c");
    assert!(t.get("refresh_token").is_none() && t.get("id_token").is_none() && t.get("patient").is_none());
    let identity = s.verify(t["access_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(identity.client_id, "backend");
    assert_eq!(identity.subject.as_deref(), Some("backend"));
    assert!(identity.patient.is_none() && identity.fhir_user.is_none());
    assert!(identity.scopes.allows("Appointment", Permission::Create));

    // Without a scope the registered scopes are granted; a partly allowed request is narrowed.
    let t = s
        .token(
            Some(&basic("backend", "s3cret")),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json();
    assert_eq!(t["scope"], "system/*.rs system/Appointment.cruds");
    let t = s
        .token(
            Some(&basic("backend", "s3cret")),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "system/Patient.rs system/Patient.c"),
            ],
        )
        .await
        .json();
    assert_eq!(t["scope"], "system/Patient.rs");

    // A wrong secret, an unknown client: 401 with a Basic challenge.
    for auth in [
        basic("backend", "wrong"),
        basic("nobody", "s3cret"),
        "Basic !!!".to_owned(),
    ] {
        let r = s
            .token(
                Some(&auth),
                &[("grant_type", "client_credentials"), ("scope", "system/*.rs")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.json()["error"], "invalid_client");
        assert!(r.header(header::WWW_AUTHENTICATE).starts_with("Basic"));
    }
    // client_secret_post is not supported.
    let r = s
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "backend"),
                ("client_secret", "s3cret"),
            ],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_client");

    // Scopes it may not have, patient or user scopes: invalid_scope.
    for scope in [
        "system/*.cruds",
        "patient/*.rs",
        "user/Patient.r",
        "system/Observation.c",
    ] {
        let r = s
            .token(
                Some(&basic("backend", "s3cret")),
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{scope}");
        assert_eq!(r.json()["error"], "invalid_scope", "{scope}");
    }
    // Grants it is not registered for.
    let r = s
        .token(
            Some(&basic("backend", "s3cret")),
            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        )
        .await;
    assert_eq!(r.json()["error"], "unauthorized_client");
    let r = s
        .token(Some(&basic("backend", "s3cret")), &[("grant_type", "password")])
        .await;
    assert_eq!(r.json()["error"], "unsupported_grant_type");
    // A public client cannot use client_credentials.
    let r = s
        .token(None, &[("grant_type", "client_credentials"), ("client_id", "app")])
        .await;
    assert_eq!(r.json()["error"], "unauthorized_client");
    // Repeated parameters are refused.
    let r = s
        .post(
            "/auth/token",
            Some(&basic("backend", "s3cret")),
            "grant_type=client_credentials&scope=system/*.rs&scope=system/*.rs",
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_request");
}

async fn assertion_grant(s: &Server, key: &TestKey, client_id: &str, scope: &str) -> Resp {
    let a = assertion(key, client_id, TOKEN_URL, 240, &jti());
    s.token(
        None,
        &[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &a),
        ],
    )
    .await
}

#[tokio::test]
async fn private_key_jwt_es384_and_rs384() {
    let s = server();
    let k = keys();
    let r = assertion_grant(&s, &k.client_es, "jwt-es", "system/*.cruds").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let identity = s.verify(r.json()["access_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(identity.client_id, "jwt-es");
    assert!(identity.scopes.allows("Patient", Permission::Delete));

    let r = assertion_grant(&s, &k.client_rs, "jwt-rs", "system/Patient.rs").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["scope"], "system/Patient.rs");
}

#[tokio::test]
async fn the_demo_jwt_client_works_with_the_committed_key() {
    let settings = smart_auth::demo_settings(url::Url::parse(BASE).unwrap(), None, "drchrono-1", "drchrono-9");
    let s = server_with(settings);
    let key = TestKey::from_pem(
        Algorithm::ES384,
        smart_auth::DEMO_JWT_KID,
        smart_auth::DEMO_JWT_PRIVATE_KEY_PEM.to_owned(),
    );
    let r = assertion_grant(&s, &key, "demo-jwt", "system/*.cruds").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = s
        .token(
            Some(&basic("demo-backend", "demo-secret")),
            &[("grant_type", "client_credentials"), ("scope", "system/*.rs")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn bad_assertions_are_refused() {
    let s = server();
    let k = keys();
    let send = |a: String| {
        let s = &s;
        async move {
            s.token(
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "system/*.rs"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &a),
                ],
            )
            .await
        }
    };
    let refused = |r: Resp, why: &str| {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{why}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_client", "{why}");
    };

    // Replay: the same jti twice.
    let a = assertion(&k.client_es, "jwt-es", TOKEN_URL, 240, "fixed-jti");
    assert_eq!(send(a.clone()).await.status, StatusCode::OK);
    refused(send(a).await, "replayed jti");
    // The same jti with a fresh signature is still a replay.
    refused(
        send(assertion(&k.client_es, "jwt-es", TOKEN_URL, 200, "fixed-jti")).await,
        "replayed jti, new assertion",
    );

    refused(
        send(assertion(&k.client_es, "jwt-es", TOKEN_URL, 3600, &jti())).await,
        "1-hour exp",
    );
    refused(
        send(assertion(&k.client_es, "jwt-es", TOKEN_URL, -120, &jti())).await,
        "expired",
    );
    refused(
        send(assertion(
            &k.client_es,
            "jwt-es",
            "https://gw.example/auth/other",
            240,
            &jti(),
        ))
        .await,
        "wrong aud",
    );
    refused(
        send(assertion(&k.client_es, "jwt-rs", TOKEN_URL, 240, &jti())).await,
        "another client's iss",
    );
    refused(
        send(assertion(&k.client_es, "backend", TOKEN_URL, 240, &jti())).await,
        "a secret client",
    );
    refused(
        send(assertion(&k.client_es, "nobody", TOKEN_URL, 240, &jti())).await,
        "unknown client",
    );
    let no_jti = k.client_es.sign(
        None,
        &json!({"iss": "jwt-es", "sub": "jwt-es", "aud": TOKEN_URL, "exp": now() + 60}),
    );
    refused(send(no_jti).await, "no jti");
    let wrong_sub = k.client_es.sign(
        None,
        &json!({"iss": "jwt-es", "sub": "other", "aud": TOKEN_URL, "exp": now() + 60, "jti": jti()}),
    );
    refused(send(wrong_sub).await, "sub differs from iss");
    let no_exp = k.client_es.sign(
        None,
        &json!({"iss": "jwt-es", "sub": "jwt-es", "aud": TOKEN_URL, "jti": jti()}),
    );
    refused(send(no_exp).await, "no exp");

    // A key the client did not register (same kid).
    let stranger = TestKey::ec(Algorithm::ES384, "es-1");
    refused(
        send(assertion(&stranger, "jwt-es", TOKEN_URL, 240, &jti())).await,
        "unregistered key",
    );
    // An unknown kid.
    let other_kid = TestKey::ec(Algorithm::ES384, "es-2");
    refused(
        send(assertion(&other_kid, "jwt-es", TOKEN_URL, 240, &jti())).await,
        "unknown kid",
    );
    // ES256 / RS256 are not accepted for assertions.
    let es256 = TestKey::ec(Algorithm::ES256, "es-1");
    refused(send(assertion(&es256, "jwt-es", TOKEN_URL, 240, &jti())).await, "ES256");
    // HS384 with the public JWK as the secret.
    let mut header = Header::new(Algorithm::HS384);
    header.kid = Some("es-1".into());
    let secret = serde_json::to_vec(&k.client_es.jwk).unwrap();
    let hs = jsonwebtoken::encode(
        &header,
        &json!({"iss": "jwt-es", "sub": "jwt-es", "aud": TOKEN_URL, "exp": now() + 60, "jti": jti()}),
        &EncodingKey::from_secret(&secret),
    )
    .unwrap();
    refused(send(hs).await, "HS384");
    refused(send("not.a.jwt".into()).await, "garbage");

    // A wrong assertion type.
    let a = assertion(&k.client_es, "jwt-es", TOKEN_URL, 240, &jti());
    let r = s
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:other"),
                ("client_assertion", &a),
            ],
        )
        .await;
    refused(r, "assertion type");
}

/// A JWKS served over loopback, counting fetches.
async fn serve_jwks(jwks: serde_json::Value) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let counter = counter.clone();
            let jwks = jwks.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(jwks)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/jwks"), hits)
}

#[tokio::test]
async fn private_key_jwt_with_a_jwks_url() {
    let key = TestKey::ec(Algorithm::ES384, "remote-1");
    let (url, hits) = serve_jwks(key.jwks()).await;
    let mut settings = settings();
    settings.clients.push(client(
        "jwt-remote",
        ClientAuth::PrivateKeyJwt {
            jwks: None,
            jwks_url: Some(url),
        },
        "system/*.rs",
        &[GrantType::ClientCredentials],
        &[],
    ));
    let s = server_with(settings);
    let r = assertion_grant(&s, &key, "jwt-remote", "system/*.rs").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = assertion_grant(&s, &key, "jwt-remote", "system/*.rs").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "cached");
}
