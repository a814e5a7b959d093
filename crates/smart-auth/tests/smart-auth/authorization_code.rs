//! The authorization-code flow through the HTML pages, EHR launch, refresh, introspection, revocation.

use crate::common;

use common::*;
use http::{StatusCode, header};
use serde_json::{Value, json};
use smart_auth::scopes::Permission;

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&data_encoding::BASE64URL_NOPAD.decode(payload.as_bytes()).unwrap()).unwrap()
}

#[tokio::test]
async fn practitioner_standalone_launch_with_the_patient_picker() {
    let s = server();
    let (verifier, challenge) = pkce();
    let url = authorize_url(
        "app",
        APP_REDIRECT,
        "openid fhirUser launch/patient patient/*.rs offline_access system/*.rs",
        &challenge,
        &[("nonce", "n-1")],
    );
    let login = s.get(&url).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.header(header::CONTENT_TYPE).starts_with("text/html"));
    assert_eq!(login.header(header::CACHE_CONTROL), "no-store");
    assert_eq!(login.header(header::X_FRAME_OPTIONS), "DENY");
    for id in [
        "id=\"username\"",
        "id=\"password\"",
        "id=\"login\"",
        "<label for=\"username\">",
    ] {
        assert!(login.body.contains(id), "{id} missing");
    }
    let tx = tx_of(&login.body);

    // A wrong password shows the form again with an error.
    let again = s
        .post(
            "/auth/authorize/login",
            None,
            &form(&[("tx", &tx), ("username", "dr"), ("password", "nope")]),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.contains("role=\"alert\"") && again.body.contains("id=\"username\""));

    let picker = s
        .post(
            "/auth/authorize/login",
            None,
            &form(&[("tx", &tx), ("username", "dr"), ("password", "pw")]),
        )
        .await;
    assert!(picker.body.contains("id=\"patient-search\""), "{}", picker.body);
    assert!(picker.body.contains("id=\"patient-drchrono-9\"") && picker.body.contains("id=\"patient-drchrono-10\""));
    assert!(picker.body.contains("Carla &lt;Diaz&gt;"), "displays are escaped");

    // Search narrows the list.
    let searched = s
        .post("/auth/authorize/patient", None, &form(&[("tx", &tx), ("q", "stone")]))
        .await;
    assert!(
        searched.body.contains("id=\"patient-drchrono-10\"") && !searched.body.contains("id=\"patient-drchrono-9\"")
    );

    // An unknown patient is refused.
    let unknown = s
        .post(
            "/auth/authorize/patient",
            None,
            &form(&[("tx", &tx), ("patient", "drchrono-404")]),
        )
        .await;
    assert!(unknown.body.contains("That patient was not found"));

    // Consent cannot be skipped.
    let early = s
        .post(
            "/auth/authorize/consent",
            None,
            &form(&[("tx", &tx), ("decision", "allow")]),
        )
        .await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST);

    let consent = s
        .post(
            "/auth/authorize/patient",
            None,
            &form(&[("tx", &tx), ("patient", "drchrono-10")]),
        )
        .await;
    assert!(consent.body.contains("id=\"allow\"") && consent.body.contains("id=\"deny\""));
    assert!(
        consent
            .body
            .contains("Read and search all records of the selected patient")
    );
    assert!(consent.body.contains("Bob Stone"), "the chosen patient is named");
    assert!(
        !consent.body.contains("system/*.rs"),
        "system scopes are never granted to a user"
    );

    let done = s
        .post(
            "/auth/authorize/consent",
            None,
            &form(&[("tx", &tx), ("decision", "allow")]),
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let params = done.location_params();
    assert!(done.header(header::LOCATION).starts_with(APP_REDIRECT));
    assert_eq!(params["state"], "st-123");
    let code = &params["code"];

    let r = s
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", APP_REDIRECT),
                ("code_verifier", &verifier),
                ("client_id", "app"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    assert_eq!(r.header(header::PRAGMA), "no-cache");
    let t = r.json();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["scope"], "openid fhirUser launch/patient patient/*.rs offline_access");
    assert_eq!(t["patient"], "drchrono-10");
    assert_eq!(t["fhirUser"], format!("{FHIR}/Practitioner/drchrono-1"));
    assert!(t["refresh_token"].is_string());

    let access = t["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert!(header.kid.is_some());
    let c = claims_of(access);
    assert_eq!(c["iss"], BASE);
    assert_eq!(c["aud"], FHIR);
    assert_eq!(c["sub"], "dr");
    assert_eq!(c["client_id"], "app");
    assert_eq!(c["patient"], "drchrono-10");
    for claim in ["exp", "iat", "nbf", "jti"] {
        assert!(c.get(claim).is_some(), "{claim} missing");
    }

    let id_token = claims_of(t["id_token"].as_str().unwrap());
    assert_eq!(id_token["iss"], BASE);
    assert_eq!(id_token["sub"], "dr");
    assert_eq!(id_token["aud"], "app");
    assert_eq!(id_token["nonce"], "n-1");
    assert_eq!(id_token["fhirUser"], format!("{FHIR}/Practitioner/drchrono-1"));

    let identity = s.verify(access).await.unwrap();
    assert_eq!(identity.client_id, "app");
    assert_eq!(identity.patient.as_deref(), Some("drchrono-10"));
    assert_eq!(identity.fhir_user.as_deref(), Some("Practitioner/drchrono-1"));
    assert_eq!(identity.subject.as_deref(), Some("dr"));
    assert_eq!(identity.issuer, BASE);
    assert!(identity.scopes.allows("Appointment", Permission::Read));
    assert!(!identity.scopes.allows("Appointment", Permission::Create));

    // The id_token is not an access token.
    assert!(s.verify(t["id_token"].as_str().unwrap()).await.is_err());
}

#[tokio::test]
async fn a_patient_user_is_confined_to_their_own_record() {
    let s = server();
    let t = app_tokens(
        &s,
        "openid fhirUser launch/patient patient/*.read user/*.read",
        "pat",
        None,
    )
    .await;
    assert_eq!(t["patient"], "drchrono-9");
    assert_eq!(t["fhirUser"], format!("{FHIR}/Patient/drchrono-9"));
    assert!(t.get("refresh_token").is_none(), "no offline_access, no refresh token");
    let identity = s.verify(t["access_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(identity.patient.as_deref(), Some("drchrono-9"));

    // Even without patient scopes a patient user's token carries their patient.
    let t = app_tokens(&s, "user/*.read", "pat", None).await;
    assert_eq!(t["patient"], "drchrono-9");
}

#[tokio::test]
async fn a_practitioner_without_patient_scopes_skips_the_picker() {
    let s = server();
    let t = app_tokens(&s, "openid fhirUser user/*.cruds", "dr", None).await;
    assert!(t.get("patient").is_none());
    assert_eq!(t["scope"], "openid fhirUser user/*.cruds");
}

#[tokio::test]
async fn ehr_launch_sets_the_context_without_the_picker() {
    let s = server();
    // The EHR's backend (a confidential client with client_credentials) creates the launch.
    let created = s
        .post(
            "/auth/launch",
            Some(&basic("backend", "s3cret")),
            &form(&[("patient", "drchrono-11"), ("encounter", "drchrono-e5")]),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let launch = created.json()["launch"].as_str().unwrap().to_owned();

    let (verifier, challenge) = pkce();
    let url = authorize_url(
        "app",
        APP_REDIRECT,
        "launch openid fhirUser patient/*.rs launch/encounter",
        &challenge,
        &[("launch", &launch)],
    );
    let (code, _) = authorize(&s, &url, "dr", None).await;
    let t = s
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", APP_REDIRECT),
                ("code_verifier", &verifier),
                ("client_id", "app"),
            ],
        )
        .await
        .json();
    assert_eq!(t["patient"], "drchrono-11");
    assert_eq!(t["encounter"], "drchrono-e5");
    let identity = s.verify(t["access_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(identity.encounter.as_deref(), Some("drchrono-e5"));

    // A launch is single use.
    let reused = s.get(&url).await;
    assert_eq!(reused.status, StatusCode::SEE_OTHER);
    assert_eq!(reused.location_params()["error"], "invalid_request");

    // mint_launch works the same way, also as JSON through the endpoint.
    let id = s.auth.mint_launch(Some("drchrono-9".into()), None).await.unwrap();
    assert_eq!(id.len(), 43);
    let json_launch = s
        .send(
            http::Request::post("/auth/launch")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, basic("backend", "s3cret"))
                .body(axum::body::Body::from(
                    json!({"patient": "Patient/drchrono-9"}).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(json_launch.status, StatusCode::OK, "{}", json_launch.body);

    // Unknown patients, public clients and missing credentials are refused.
    let bad = s
        .post(
            "/auth/launch",
            Some(&basic("backend", "s3cret")),
            &form(&[("patient", "drchrono-404")]),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let public = s
        .post(
            "/auth/launch",
            None,
            &form(&[("patient", "drchrono-9"), ("client_id", "app")]),
        )
        .await;
    assert_eq!(public.status, StatusCode::BAD_REQUEST);
    assert_eq!(public.json()["error"], "unauthorized_client");
    let anonymous = s.post("/auth/launch", None, &form(&[("patient", "drchrono-9")])).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_patient_user_cannot_take_another_patients_launch() {
    let s = server();
    let launch = s.auth.mint_launch(Some("drchrono-10".into()), None).await.unwrap();
    let (_, challenge) = pkce();
    let url = authorize_url(
        "app",
        APP_REDIRECT,
        "launch patient/*.rs",
        &challenge,
        &[("launch", &launch)],
    );
    let tx = tx_of(&s.get(&url).await.body);
    let r = s
        .post(
            "/auth/authorize/login",
            None,
            &form(&[("tx", &tx), ("username", "pat"), ("password", "pw")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location_params()["error"], "access_denied");
}

#[tokio::test]
async fn deny_redirects_with_access_denied() {
    let s = server();
    let (_, challenge) = pkce();
    let url = authorize_url("app", APP_REDIRECT, "user/*.read", &challenge, &[]);
    let tx = tx_of(&s.get(&url).await.body);
    let consent = s
        .post(
            "/auth/authorize/login",
            None,
            &form(&[("tx", &tx), ("username", "dr"), ("password", "pw")]),
        )
        .await;
    assert!(consent.body.contains("id=\"deny\""));
    let r = s
        .post(
            "/auth/authorize/consent",
            None,
            &form(&[("tx", &tx), ("decision", "deny")]),
        )
        .await;
    let p = r.location_params();
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["state"], "st-123");
    assert!(!p.contains_key("code"));
    // The transaction is gone.
    let again = s
        .post(
            "/auth/authorize/consent",
            None,
            &form(&[("tx", &tx), ("decision", "allow")]),
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn too_many_wrong_passwords_end_the_flow() {
    let s = server();
    let (_, challenge) = pkce();
    let url = authorize_url("app", APP_REDIRECT, "user/*.read", &challenge, &[]);
    let tx = tx_of(&s.get(&url).await.body);
    let mut last = None;
    for _ in 0..5 {
        last = Some(
            s.post(
                "/auth/authorize/login",
                None,
                &form(&[("tx", &tx), ("username", "nobody"), ("password", "x")]),
            )
            .await,
        );
    }
    let last = last.unwrap();
    assert_eq!(last.status, StatusCode::SEE_OTHER);
    assert_eq!(last.location_params()["error"], "access_denied");
}

#[tokio::test]
async fn errors_before_the_redirect_uri_is_trusted_are_shown_not_redirected() {
    let s = server();
    let (_, challenge) = pkce();
    for (url, words) in [
        (
            authorize_url("nobody", APP_REDIRECT, "user/*.read", &challenge, &[]),
            "not registered",
        ),
        (
            authorize_url("app", "https://evil.example/callback", "user/*.read", &challenge, &[]),
            "redirect_uri",
        ),
        (
            authorize_url(
                "app",
                "https://app.example/callback/extra",
                "user/*.read",
                &challenge,
                &[],
            ),
            "redirect_uri",
        ),
        ("/auth/authorize?client_id=app".to_owned(), "redirect_uri"),
        ("/auth/authorize?client_id=%3Cscript%3E".to_owned(), "not registered"),
    ] {
        let r = s.get(&url).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}");
        assert!(r.headers.get(header::LOCATION).is_none(), "{url} must not redirect");
        assert!(r.body.contains(words), "{url}: {}", r.body);
        assert!(!r.body.contains("<script>"));
    }
}

#[tokio::test]
async fn errors_after_the_redirect_uri_is_trusted_are_redirected() {
    let s = server();
    let (_, challenge) = pkce();
    let base = |extra: &[(&str, &str)], scope: &str| authorize_url("app", APP_REDIRECT, scope, &challenge, extra);
    let cases = [
        // plain PKCE
        (
            format!(
                "/auth/authorize?{}",
                form(&[
                    ("response_type", "code"),
                    ("client_id", "app"),
                    ("redirect_uri", APP_REDIRECT),
                    ("scope", "user/*.read"),
                    ("state", "st-123"),
                    ("aud", FHIR),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "plain"),
                ])
            ),
            "invalid_request",
        ),
        // missing PKCE
        (
            format!(
                "/auth/authorize?{}",
                form(&[
                    ("response_type", "code"),
                    ("client_id", "app"),
                    ("redirect_uri", APP_REDIRECT),
                    ("scope", "user/*.read"),
                    ("state", "st-123"),
                    ("aud", FHIR),
                ])
            ),
            "invalid_request",
        ),
        // wrong aud
        (
            format!(
                "/auth/authorize?{}",
                form(&[
                    ("response_type", "code"),
                    ("client_id", "app"),
                    ("redirect_uri", APP_REDIRECT),
                    ("scope", "user/*.read"),
                    ("state", "st-123"),
                    ("aud", "https://other.example/fhir"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ])
            ),
            "invalid_request",
        ),
        (base(&[], "user/*.read bad\"scope"), "invalid_scope"),
        (base(&[], "system/*.rs"), "invalid_scope"),
        (base(&[], "patient/Observation.x"), "invalid_scope"),
        (
            base(&[("launch", "not-a-launch")], "launch user/*.read"),
            "invalid_request",
        ),
    ];
    for (url, error) in cases {
        let r = s.get(&url).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{url}: {}", r.body);
        assert!(r.header(header::LOCATION).starts_with(APP_REDIRECT));
        let p = r.location_params();
        assert_eq!(p["error"], error, "{url}");
        assert_eq!(p["state"], "st-123");
        assert!(p.contains_key("error_description"));
    }
    let wrong_type = s
        .get(
            &authorize_url("app", APP_REDIRECT, "user/*.read", &challenge, &[])
                .replace("response_type=code", "response_type=token"),
        )
        .await;
    assert_eq!(wrong_type.location_params()["error"], "unsupported_response_type");
}

#[tokio::test]
async fn codes_are_single_use_and_reuse_revokes_what_they_issued() {
    let s = server();
    let (verifier, challenge) = pkce();
    let url = authorize_url("app", APP_REDIRECT, "user/*.read offline_access", &challenge, &[]);
    let (code, _) = authorize(&s, &url, "dr", None).await;
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", APP_REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_id", "app"),
    ];
    let exchange = || s.token(None, &pairs);
    let t = exchange().await.json();
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    assert!(s.verify(&access).await.is_ok());
    let again = exchange().await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"], "invalid_grant");
    assert!(
        s.verify(&access).await.is_err(),
        "the first exchange's access token is revoked"
    );
    let r = s
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", "app"),
            ],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_grant", "its refresh token too");
}

#[tokio::test]
async fn pkce_and_redirect_uri_are_checked_at_the_token_endpoint() {
    let s = server();
    for (redirect, wrong_verifier) in [(APP_REDIRECT, true), ("https://app.example/other", false)] {
        let (verifier, challenge) = pkce();
        let url = authorize_url("app", APP_REDIRECT, "user/*.read", &challenge, &[]);
        let (code, _) = authorize(&s, &url, "dr", None).await;
        let (other_verifier, _) = pkce();
        let used_verifier = if wrong_verifier {
            other_verifier
        } else {
            verifier.clone()
        };
        let r = s
            .token(
                None,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("code_verifier", &used_verifier),
                    ("client_id", "app"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.json()["error"], "invalid_grant");
        // The failed attempt used the code up.
        let r = s
            .token(
                None,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", APP_REDIRECT),
                    ("code_verifier", &verifier),
                    ("client_id", "app"),
                ],
            )
            .await;
        assert_eq!(r.json()["error"], "invalid_grant");
    }
    // Missing verifier, another client, unknown codes.
    let (verifier, challenge) = pkce();
    let (code, _) = authorize(
        &s,
        &authorize_url("app", APP_REDIRECT, "user/*.read", &challenge, &[]),
        "dr",
        None,
    )
    .await;
    let r = s
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", APP_REDIRECT),
                ("client_id", "app"),
            ],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_request");
    let r = s
        .token(
            Some(&basic("confidential-app", "s3cret")),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", APP_REDIRECT),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_grant");
    let r = s
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", "made-up"),
                ("redirect_uri", APP_REDIRECT),
                ("code_verifier", &verifier),
                ("client_id", "app"),
            ],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn codes_expire() {
    let mut settings = settings();
    settings.code_ttl = short(1);
    let s = server_with(settings);
    let (verifier, challenge) = pkce();
    let (code, _) = authorize(
        &s,
        &authorize_url("app", APP_REDIRECT, "user/*.read", &challenge, &[]),
        "dr",
        None,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = s
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", APP_REDIRECT),
                ("code_verifier", &verifier),
                ("client_id", "app"),
            ],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let s = server();
    let t = app_tokens(
        &s,
        "openid fhirUser launch/patient patient/*.rs offline_access",
        "dr",
        Some("drchrono-9"),
    )
    .await;
    let r0 = t["refresh_token"].as_str().unwrap().to_owned();
    let a0 = t["access_token"].as_str().unwrap().to_owned();
    let refresh = |token: String, scope: Option<&'static str>| {
        let s = &s;
        async move {
            let mut pairs = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
                ("client_id", "app"),
            ];
            if let Some(scope) = scope {
                pairs.push(("scope", scope));
            }
            s.token(None, &pairs).await
        }
    };
    let t1 = refresh(r0.clone(), None).await;
    assert_eq!(t1.status, StatusCode::OK, "{}", t1.body);
    let t1 = t1.json();
    let r1 = t1["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r0, "rotated");
    assert_eq!(t1["patient"], "drchrono-9");
    assert_eq!(
        t1["scope"],
        "openid fhirUser launch/patient patient/*.rs offline_access"
    );
    let a1 = t1["access_token"].as_str().unwrap().to_owned();

    // Narrowing is allowed; the family keeps its original grant.
    let t2 = refresh(r1.clone(), Some("patient/Appointment.r")).await;
    assert_eq!(t2.status, StatusCode::OK, "{}", t2.body);
    let t2 = t2.json();
    assert_eq!(t2["scope"], "patient/Appointment.r");
    let a2 = t2["access_token"].as_str().unwrap().to_owned();
    let id2 = s.verify(&a2).await.unwrap();
    assert!(id2.scopes.allows("Appointment", Permission::Read) && !id2.scopes.allows("Patient", Permission::Read));
    let r2 = t2["refresh_token"].as_str().unwrap().to_owned();

    // Escalation is refused.
    for wider in ["patient/*.cruds", "user/*.rs", "system/*.rs", "online_access"] {
        let r = s
            .token(
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &r2),
                    ("client_id", "app"),
                    ("scope", wider),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{wider}");
        assert_eq!(r.json()["error"], "invalid_scope", "{wider}");
    }
    // Another client cannot use it.
    let r = s
        .token(
            Some(&basic("confidential-app", "s3cret")),
            &[("grant_type", "refresh_token"), ("refresh_token", &r2)],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_grant");

    // r2 is still good (failed attempts did not use it); reusing r0 revokes the whole family.
    assert!(s.verify(&a0).await.is_ok());
    let reuse = refresh(r0, None).await;
    assert_eq!(reuse.status, StatusCode::BAD_REQUEST);
    assert_eq!(reuse.json()["error"], "invalid_grant");
    for a in [&a0, &a1, &a2] {
        assert!(s.verify(a).await.is_err(), "family access tokens are revoked");
    }
    let r = refresh(r2, None).await;
    assert_eq!(r.json()["error"], "invalid_grant", "the current refresh token too");
}

#[tokio::test]
async fn confidential_apps_authenticate_at_the_token_endpoint() {
    let s = server();
    let (verifier, challenge) = pkce();
    let redirect = "https://conf.example/cb";
    let url = authorize_url(
        "confidential-app",
        redirect,
        "launch/patient patient/*.rs",
        &challenge,
        &[],
    );
    let (code, _) = authorize(&s, &url, "dr", Some("drchrono-9")).await;
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", verifier.as_str()),
        ("client_id", "confidential-app"),
    ];
    let r = s.token(None, &pairs).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "invalid_client");
    let r = s.token(Some(&basic("confidential-app", "s3cret")), &pairs).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn introspection_and_revocation() {
    let s = server();
    let t = app_tokens(
        &s,
        "openid launch/patient patient/*.rs offline_access",
        "dr",
        Some("drchrono-9"),
    )
    .await;
    let access = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();

    // Introspection needs a confidential client or a system bearer.
    let r = s
        .post(
            "/auth/introspect",
            None,
            &form(&[("token", access), ("client_id", "app")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let user_bearer = format!("Bearer {access}");
    let r = s
        .post("/auth/introspect", Some(&user_bearer), &form(&[("token", access)]))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let backend = basic("backend", "s3cret");
    let r = s
        .post("/auth/introspect", Some(&backend), &form(&[("token", access)]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header(header::CACHE_CONTROL), "no-store");
    let i = r.json();
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], "app");
    assert_eq!(i["patient"], "drchrono-9");
    assert_eq!(i["sub"], "dr");
    assert_eq!(i["token_type"], "Bearer");
    assert_eq!(i["scope"], "openid launch/patient patient/*.rs offline_access");
    assert!(i["exp"].is_i64() && i["iat"].is_i64());

    let r = s
        .post("/auth/introspect", Some(&backend), &form(&[("token", refresh)]))
        .await;
    assert_eq!(r.json()["active"], true);
    assert_eq!(r.json()["token_type"], "refresh_token");

    // A system token may introspect too.
    let system = s
        .token(
            Some(&backend),
            &[("grant_type", "client_credentials"), ("scope", "system/*.rs")],
        )
        .await
        .json();
    let system_bearer = format!("Bearer {}", system["access_token"].as_str().unwrap());
    let r = s
        .post("/auth/introspect", Some(&system_bearer), &form(&[("token", access)]))
        .await;
    assert_eq!(r.json()["active"], true);

    for garbage in ["garbage", "a.b.c", ""] {
        let r = s
            .post("/auth/introspect", Some(&backend), &form(&[("token", garbage)]))
            .await;
        if garbage.is_empty() {
            assert_eq!(r.status, StatusCode::BAD_REQUEST);
        } else {
            assert_eq!(r.json(), json!({"active": false}));
        }
    }

    // Another client's revocation is ignored (still 200).
    let r = s
        .post("/auth/revoke", Some(&backend), &form(&[("token", access)]))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(s.verify(access).await.is_ok());

    // Revoking the access token.
    let r = s
        .post("/auth/revoke", None, &form(&[("token", access), ("client_id", "app")]))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let err = s.verify(access).await.unwrap_err();
    assert!(err.description.contains("revoked"));
    let r = s
        .post("/auth/introspect", Some(&backend), &form(&[("token", access)]))
        .await;
    assert_eq!(r.json(), json!({"active": false}));

    // Revoking the refresh token ends its family.
    let t1 = s
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", "app"),
            ],
        )
        .await
        .json();
    let r1 = t1["refresh_token"].as_str().unwrap();
    let a1 = t1["access_token"].as_str().unwrap();
    let r = s
        .post("/auth/revoke", None, &form(&[("token", r1), ("client_id", "app")]))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(s.verify(a1).await.is_err());
    let r = s
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", r1),
                ("client_id", "app"),
            ],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_grant");

    // Unknown tokens: still 200.
    let r = s
        .post(
            "/auth/revoke",
            None,
            &form(&[("token", "nonsense"), ("client_id", "app")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn loopback_redirects_on_any_port_for_the_demo_app() {
    let settings = smart_auth::demo_settings(
        url::Url::parse(BASE).unwrap(),
        None,
        "Practitioner/drchrono-1",
        "drchrono-9",
    );
    let s = server_with(settings);
    let (verifier, challenge) = pkce();
    let redirect = "http://127.0.0.1:49152/callback";
    let url = format!(
        "/auth/authorize?{}",
        form(&[
            ("response_type", "code"),
            ("client_id", "demo-app"),
            ("redirect_uri", redirect),
            ("scope", "openid fhirUser launch/patient patient/*.read offline_access"),
            ("state", "s"),
            ("aud", FHIR),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
    );
    let page = s.get(&url).await;
    let tx = tx_of(&page.body);
    let consent = s
        .post(
            "/auth/authorize/login",
            None,
            &form(&[("tx", &tx), ("username", "patient.demo"), ("password", "demo-password")]),
        )
        .await;
    assert!(consent.body.contains("id=\"allow\""), "{}", consent.body);
    let done = s
        .post(
            "/auth/authorize/consent",
            None,
            &form(&[("tx", &tx), ("decision", "allow")]),
        )
        .await;
    assert!(done.header(header::LOCATION).starts_with(redirect));
    let code = done.location_params()["code"].clone();
    let t = s
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
                ("client_id", "demo-app"),
            ],
        )
        .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    assert_eq!(t.json()["patient"], "drchrono-9");
    assert!(t.json()["refresh_token"].is_string());
}
