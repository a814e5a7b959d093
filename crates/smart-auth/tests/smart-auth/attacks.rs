//! Bearer-token verification refuses every forgery and says why in the bearer challenge; key rotation.

use crate::common;

use common::*;
use http::{HeaderMap, StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use smart_auth::SmartAuth;

/// The kid the server gave its configured key.
fn gateway_kid(s: &Server) -> String {
    s.auth.jwks()["keys"][0]["kid"].as_str().unwrap().to_owned()
}

fn good_claims() -> Value {
    let t = now();
    json!({
        "iss": BASE, "sub": "backend", "aud": FHIR, "exp": t + 300, "iat": t, "nbf": t,
        "jti": format!("jti-{t}-{}", pkce().0), "client_id": "backend", "scope": "system/*.rs"
    })
}

/// Signs claims with the gateway's own key, as the server would.
fn forge(s: &Server, claims: &Value) -> String {
    let mut key = keys().gateway.clone();
    key.kid = gateway_kid(s);
    key.sign(Some("at+jwt"), claims)
}

fn b64(v: &Value) -> String {
    data_encoding::BASE64URL_NOPAD.encode(v.to_string().as_bytes())
}

async fn refused(s: &Server, token: &str, why: &str) -> String {
    let err = s.verify(token).await.expect_err(why);
    assert_eq!(err.error, Some("invalid_token"), "{why}");
    assert!(!err.description.contains(token), "{why}: the token is never echoed");
    err.description
}

#[tokio::test]
async fn a_forged_but_well_formed_token_verifies_so_the_attacks_below_are_meaningful() {
    let s = server();
    let identity = s.verify(&forge(&s, &good_claims())).await.unwrap();
    assert_eq!(identity.client_id, "backend");
}

#[tokio::test]
async fn the_attack_list() {
    let s = server();
    let kid = gateway_kid(&s);
    let t = now();

    // Missing token.
    let err = s.auth.authenticate(&http::HeaderMap::new()).await.unwrap_err();
    assert_eq!(err.error, None);

    // alg: none.
    let none_header = json!({"alg": "none", "typ": "at+jwt", "kid": kid});
    let none = format!("{}.{}.", b64(&none_header), b64(&good_claims()));
    refused(&s, &none, "alg none").await;
    let none_sig = format!("{}.{}.c2ln", b64(&none_header), b64(&good_claims()));
    refused(&s, &none_sig, "alg none with a signature").await;

    // HS256 signed with the public key as the secret (algorithm confusion), in every form of it.
    let jwk = s.auth.jwks()["keys"][0].clone();
    for secret in [
        serde_json::to_vec(&jwk).unwrap(),
        keys().gateway.pem.as_bytes().to_vec(),
        jwk["x"].as_str().unwrap().as_bytes().to_vec(),
    ] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        header.typ = Some("at+jwt".into());
        let hs = jsonwebtoken::encode(&header, &good_claims(), &EncodingKey::from_secret(&secret)).unwrap();
        let why = refused(&s, &hs, "HS256 alg confusion").await;
        assert!(why.contains("algorithm"), "{why}");
    }

    // Expired (beyond the 60 s leeway) and not yet valid.
    let mut c = good_claims();
    c["exp"] = json!(t - 120);
    c["iat"] = json!(t - 500);
    c["nbf"] = json!(t - 500);
    assert!(refused(&s, &forge(&s, &c), "expired").await.contains("expired"));
    let mut c = good_claims();
    c["nbf"] = json!(t + 600);
    c["exp"] = json!(t + 900);
    assert!(
        refused(&s, &forge(&s, &c), "not yet valid")
            .await
            .contains("not valid yet")
    );
    // Within the leeway both are accepted.
    let mut c = good_claims();
    c["exp"] = json!(t - 10);
    assert!(s.verify(&forge(&s, &c)).await.is_ok(), "leeway on exp");

    // Wrong aud, wrong iss, no aud.
    let mut c = good_claims();
    c["aud"] = json!("https://other.example/fhir");
    refused(&s, &forge(&s, &c), "wrong aud").await;
    let mut c = good_claims();
    c["aud"] = json!(BASE);
    refused(&s, &forge(&s, &c), "issuer as aud").await;
    let mut c = good_claims();
    c["iss"] = json!("https://evil.example");
    refused(&s, &forge(&s, &c), "wrong iss").await;
    let mut c = good_claims();
    c.as_object_mut().unwrap().remove("aud");
    refused(&s, &forge(&s, &c), "no aud").await;

    // Tampered payload (scope widened, signature kept).
    let token = forge(&s, &good_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = good_claims();
    c["scope"] = json!("system/*.cruds");
    let tampered = format!("{}.{}.{}", parts[0], b64(&c), parts[2]);
    assert!(refused(&s, &tampered, "tampered").await.contains("signature"));
    // Tampered signature.
    let mut sig = parts[2].to_owned();
    let flipped = if sig.ends_with('A') { 'B' } else { 'A' };
    sig.pop();
    sig.push(flipped);
    refused(&s, &format!("{}.{}.{sig}", parts[0], parts[1]), "bad signature").await;

    // Unknown kid (a stranger's key), and no kid.
    let stranger = TestKey::ec(Algorithm::ES256, "unknown-kid");
    refused(&s, &stranger.sign(Some("at+jwt"), &good_claims()), "unknown kid").await;
    let stranger_with_our_kid = TestKey::ec(Algorithm::ES256, &kid);
    refused(
        &s,
        &stranger_with_our_kid.sign(Some("at+jwt"), &good_claims()),
        "our kid, another key",
    )
    .await;
    let mut no_kid = keys().gateway.clone();
    no_kid.kid = String::new();
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    let token = jsonwebtoken::encode(&header, &good_claims(), &no_kid.encoding).unwrap();
    refused(&s, &token, "no kid").await;

    // Not an access token (an id_token-like typ).
    let mut key = keys().gateway.clone();
    key.kid = kid.clone();
    refused(&s, &key.sign(Some("JWT"), &good_claims()), "typ JWT").await;

    // Garbage.
    for garbage in ["abc", "a.b", "a.b.c", "....", "eyJhbGciOiJFUzI1NiJ9.e30.e30"] {
        refused(&s, garbage, garbage).await;
    }

    // Revoked.
    let token = s
        .token(
            Some(&basic("backend", "s3cret")),
            &[("grant_type", "client_credentials"), ("scope", "system/*.rs")],
        )
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(s.verify(&token).await.is_ok());
    let r = s
        .post(
            "/auth/revoke",
            Some(&basic("backend", "s3cret")),
            &form(&[("token", &token)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(refused(&s, &token, "revoked").await.contains("revoked"));
}

#[tokio::test]
async fn authenticate_refuses_with_the_bearer_challenge() {
    let s = server();
    let authenticate = |authorization: Option<String>| {
        let mut headers = HeaderMap::new();
        if let Some(a) = authorization {
            headers.insert(header::AUTHORIZATION, a.parse().unwrap());
        }
        let auth = s.auth.clone();
        async move { auth.authenticate(&headers).await }
    };

    let err = authenticate(None).await.expect_err("no token");
    assert_eq!(err.error, None);
    assert_eq!(err.www_authenticate(), "Bearer realm=\"fhir-gateway\"");

    let err = authenticate(Some("Bearer not-a-token".into()))
        .await
        .expect_err("not a token");
    assert_eq!(err.error, Some("invalid_token"));
    let challenge = err.www_authenticate();
    assert!(challenge.starts_with("Bearer realm=\"fhir-gateway\", error=\"invalid_token\", error_description=\""));
    assert!(!challenge.contains("not-a-token"));
    assert!(!err.description.contains("not-a-token"));

    let token = forge(&s, &good_claims());
    let identity = authenticate(Some(format!("Bearer {token}")))
        .await
        .expect("a good token");
    assert_eq!(identity.client_id, "backend");
}

#[tokio::test]
async fn rotated_keys_keep_verifying_until_their_tokens_expire() {
    let mut settings = settings();
    settings.signing_key_pem = None;
    settings.access_token_ttl = short(2);
    let s = server_with(settings);
    let get_token = || async {
        s.token(
            Some(&basic("backend", "s3cret")),
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let old = get_token().await;
    let old_kid = jsonwebtoken::decode_header(&old).unwrap().kid.unwrap();
    let new_kid = s.auth.rotate_key().unwrap();
    assert_ne!(old_kid, new_kid);
    let new = get_token().await;
    assert_eq!(jsonwebtoken::decode_header(&new).unwrap().kid.unwrap(), new_kid);
    assert!(s.verify(&old).await.is_ok(), "the old key still verifies");
    assert!(s.verify(&new).await.is_ok());
    let jwks = s.get("/auth/jwks").await.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);

    // After the access-token lifetime the retired key is gone.
    tokio::time::sleep(std::time::Duration::from_millis(4100)).await;
    let jwks = s.get("/auth/jwks").await.json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], new_kid.as_str());
}

#[tokio::test]
async fn generated_keys_persist_in_the_data_dir() {
    let dir = std::env::temp_dir().join(format!("smart-auth-test-{}", &pkce().0[9..25]));
    let mut settings = settings();
    settings.signing_key_pem = None;
    settings.data_dir = Some(dir.clone());
    let a = SmartAuth::new(settings.clone(), patients()).unwrap();
    let token = a.mint_launch(None, None).await.unwrap();
    assert!(!token.is_empty());
    let b = SmartAuth::new(settings, patients()).unwrap();
    assert_eq!(a.jwks(), b.jwks(), "the same key after a restart");
    let _ = std::fs::remove_dir_all(&dir);
}
