//! Hardening against unbounded work and stale state: the bounded password-check pool (503 with
//! `Retry-After`), the sign-in throttle, the per-address bound on sign-ins in progress, and
//! revocation reaching the verified-token cache.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use common::*;
use http::{Request, StatusCode, header};
use smart_auth::{AuthSettings, SmartAuth};
use tower::ServiceExt;

/// A router over `auth` whose every request comes from `addr`.
fn from(auth: &SmartAuth, addr: [u8; 4]) -> Server {
    Server {
        auth: auth.clone(),
        app: auth.router().layer(MockConnectInfo(SocketAddr::from((addr, 40_000)))),
    }
}

fn auth_with(settings: AuthSettings) -> SmartAuth {
    SmartAuth::new(settings, patients()).unwrap()
}

async fn login(s: &Server, tx: &str, user: &str, password: &str) -> Resp {
    s.send(login_request(tx, user, password)).await
}

/// Sends the requests at once (each in its own task); the responses in order.
async fn concurrently(s: &Server, requests: Vec<Request<Body>>) -> Vec<Resp> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let app = s.app.clone();
            tokio::spawn(async move { read_whole(app.oneshot(request).await.unwrap()).await })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

fn count(responses: &[Resp], status: StatusCode) -> usize {
    responses.iter().filter(|r| r.status == status).count()
}

#[tokio::test]
async fn a_full_password_pool_answers_503_with_retry_after_at_the_token_endpoint() {
    let mut settings = settings();
    settings.max_concurrent_password_checks = 1;
    settings.password_check_wait = Duration::ZERO;
    let s = server_with(settings);
    let request = |authorization: String| {
        Request::post("/auth/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::AUTHORIZATION, authorization)
            .body(Body::from(form(&[("grant_type", "client_credentials")])))
            .unwrap()
    };
    let requests = vec![
        request(basic("backend", "wrong-1")),
        request(basic("backend", "wrong-2")),
        request(basic("nobody", "x")),
        request(basic("backend", "wrong-3")),
    ];
    let responses = concurrently(&s, requests).await;
    assert!(count(&responses, StatusCode::UNAUTHORIZED) >= 1, "{responses:?}");
    assert!(count(&responses, StatusCode::SERVICE_UNAVAILABLE) >= 1, "{responses:?}");
    for busy in responses.iter().filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE) {
        assert_eq!(busy.header(header::RETRY_AFTER), "1");
        assert_eq!(busy.header(header::CACHE_CONTROL), "no-store");
        assert_eq!(busy.json()["error"], "temporarily_unavailable");
    }
    // Once the pool is free the right secret works.
    let r = s
        .token(
            Some(&basic("backend", "s3cret")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_full_password_pool_answers_503_on_the_login_page_and_spends_no_try() {
    let mut settings = settings();
    settings.max_concurrent_password_checks = 1;
    settings.password_check_wait = Duration::ZERO;
    let s = server_with(settings);
    let (tx1, tx2) = (start_login(&s).await, start_login(&s).await);
    let responses = concurrently(
        &s,
        vec![login_request(&tx1, "dr", "pw"), login_request(&tx2, "pat", "pw")],
    )
    .await;
    let busy = responses
        .iter()
        .find(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .unwrap_or_else(|| panic!("one sign-in finds the pool full: {responses:?}"));
    assert_eq!(busy.header(header::RETRY_AFTER), "1");
    assert!(busy.header(header::CONTENT_TYPE).starts_with("text/html"));
    assert!(busy.body.contains("The server is busy"), "{}", busy.body);
    assert!(busy.body.contains("id=\"password\""), "the form is shown again");
    assert_eq!(count(&responses, StatusCode::OK), 1, "{responses:?}");
    // The refused sign-in can simply be sent again.
    let tx = if responses[0].status == StatusCode::SERVICE_UNAVAILABLE {
        (&tx1, "dr")
    } else {
        (&tx2, "pat")
    };
    let again = login(&s, tx.0, tx.1, "pw").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(again.body.contains("id=\"allow\""), "{}", again.body);
}

#[tokio::test]
async fn failed_sign_ins_lock_a_username_out_across_transactions() {
    let s = server();
    for _ in 0..5 {
        let tx = start_login(&s).await;
        let r = login(&s, &tx, "dr", "wrong").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.contains("The username or password is incorrect."), "{}", r.body);
    }
    // The sixth try, on a new transaction and in another case, is refused before any check.
    let tx = start_login(&s).await;
    let r = login(&s, &tx, "Dr", "pw").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.header(header::RETRY_AFTER), "1");
    assert!(
        r.body
            .contains("Too many failed sign-in attempts; try again in 1 second."),
        "{}",
        r.body
    );
    assert!(r.body.contains("id=\"password\""), "the form is shown again");
    // Another user is not locked out.
    let other = start_login(&s).await;
    assert_eq!(login(&s, &other, "pat", "pw").await.status, StatusCode::OK);
    // After the lock-out the right password works on the same transaction.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = login(&s, &tx, "dr", "pw").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"allow\""), "{}", r.body);
}

#[tokio::test]
async fn failed_sign_ins_lock_an_address_out_across_usernames() {
    let mut settings = settings();
    settings.login_failures_per_ip = 3;
    let auth = auth_with(settings);
    let (a, b) = (from(&auth, [203, 0, 113, 7]), from(&auth, [203, 0, 113, 8]));
    for user in ["u1", "u2", "u3"] {
        let tx = start_login(&a).await;
        assert_eq!(login(&a, &tx, user, "guess").await.status, StatusCode::OK);
    }
    let tx = start_login(&a).await;
    let r = login(&a, &tx, "dr", "pw").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body.contains("Too many failed sign-in attempts"), "{}", r.body);
    let tx = start_login(&b).await;
    let r = login(&b, &tx, "dr", "pw").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "another address is not locked out: {}",
        r.body
    );
}

#[tokio::test]
async fn parallel_guesses_on_one_transaction_get_five_tries_in_all() {
    let mut settings = settings();
    settings.max_concurrent_password_checks = 8;
    settings.password_check_wait = Duration::from_secs(10);
    let s = server_with(settings);
    let tx = start_login(&s).await;
    // Different usernames, so only the transaction's own count stops them.
    let requests = (0..7).map(|i| login_request(&tx, &format!("guess-{i}"), "x")).collect();
    let responses = concurrently(&s, requests).await;
    // Five guesses are checked: four show the form again, the fifth ends the flow; the others
    // find the tries used up (access_denied) or the flow already ended (400).
    assert_eq!(
        count(&responses, StatusCode::OK),
        4,
        "four wrong guesses show the form again: {responses:?}"
    );
    assert!(count(&responses, StatusCode::SEE_OTHER) >= 1, "{responses:?}");
    assert_eq!(
        count(&responses, StatusCode::SEE_OTHER) + count(&responses, StatusCode::BAD_REQUEST),
        3,
        "{responses:?}"
    );
    for r in responses.iter().filter(|r| r.status == StatusCode::SEE_OTHER) {
        assert_eq!(r.location_params()["error"], "access_denied");
    }
    assert_eq!(
        login(&s, &tx, "dr", "pw").await.status,
        StatusCode::BAD_REQUEST,
        "the transaction is over"
    );
}

#[tokio::test]
async fn sign_ins_in_progress_are_bounded_per_address_oldest_first() {
    let mut settings = settings();
    settings.max_pending_logins_per_ip = 2;
    let auth = auth_with(settings);
    let (a, b) = (from(&auth, [198, 51, 100, 1]), from(&auth, [198, 51, 100, 2]));
    let first = start_login(&a).await;
    let other = start_login(&b).await;
    let second = start_login(&a).await;
    let third = start_login(&a).await;
    let r = login(&a, &first, "dr", "pw").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "the oldest was dropped: {}", r.body);
    assert!(r.body.contains("expired or is not valid"), "{}", r.body);
    for (server, tx) in [(&a, &second), (&a, &third), (&b, &other)] {
        let r = login(server, tx, "dr", "pw").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
}

async fn refresh(s: &Server, token: &str) -> Resp {
    s.token(
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", "app"),
        ],
    )
    .await
}

/// Verifies twice: the second time the verified-token cache answers.
async fn verified_and_cached(s: &Server, token: &str) {
    assert!(s.verify(token).await.is_ok());
    assert!(s.verify(token).await.is_ok());
}

async fn assert_revoked(s: &Server, token: &str) {
    let err = s.verify(token).await.unwrap_err();
    assert!(err.description.contains("revoked"), "{err}");
    let again = s.verify(token).await.unwrap_err();
    assert!(again.description.contains("revoked"), "and stays revoked: {again}");
}

#[tokio::test]
async fn a_revoked_access_token_fails_even_when_its_verification_was_cached() {
    let s = server();
    let backend = basic("backend", "s3cret");
    let t = s
        .token(
            Some(&backend),
            &[("grant_type", "client_credentials"), ("scope", "system/*.rs")],
        )
        .await
        .json();
    let access = t["access_token"].as_str().unwrap();
    verified_and_cached(&s, access).await;
    let r = s
        .post("/auth/revoke", Some(&backend), &form(&[("token", access)]))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_revoked(&s, access).await;
    let r = s
        .post("/auth/introspect", Some(&backend), &form(&[("token", access)]))
        .await;
    assert_eq!(r.json()["active"], false);
}

#[tokio::test]
async fn a_family_revocation_reaches_cached_verifications() {
    let s = server();
    let scope = "launch/patient patient/*.rs offline_access";
    let t = app_tokens(&s, scope, "dr", Some("drchrono-9")).await;
    let (a0, r0) = (
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
    );
    verified_and_cached(&s, a0).await;
    let t1 = refresh(&s, r0).await.json();
    let a1 = t1["access_token"].as_str().unwrap();
    verified_and_cached(&s, a1).await;
    // Reusing a rotated refresh token revokes the family.
    let reuse = refresh(&s, r0).await;
    assert_eq!(reuse.json()["error"], "invalid_grant");
    assert_revoked(&s, a0).await;
    assert_revoked(&s, a1).await;

    // Revoking a refresh token (RFC 7009) does the same.
    let t = app_tokens(&s, scope, "dr", Some("drchrono-9")).await;
    let (a, r) = (
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
    );
    verified_and_cached(&s, a).await;
    let revoked = s
        .post("/auth/revoke", None, &form(&[("token", r), ("client_id", "app")]))
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_revoked(&s, a).await;
    assert_eq!(refresh(&s, r).await.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn a_replayed_code_revokes_cached_tokens() {
    let s = server();
    let (verifier, challenge) = pkce();
    let url = authorize_url(
        "app",
        APP_REDIRECT,
        "launch/patient patient/*.rs offline_access",
        &challenge,
        &[],
    );
    let (code, _) = authorize(&s, &url, "dr", Some("drchrono-9")).await;
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", APP_REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_id", "app"),
    ];
    let t = s.token(None, &pairs).await.json();
    let access = t["access_token"].as_str().unwrap();
    verified_and_cached(&s, access).await;
    let t1 = refresh(&s, t["refresh_token"].as_str().unwrap()).await.json();
    let refreshed = t1["access_token"].as_str().unwrap();
    verified_and_cached(&s, refreshed).await;
    let replay = s.token(None, &pairs).await;
    assert_eq!(replay.json()["error"], "invalid_grant");
    assert_revoked(&s, access).await;
    assert_revoked(&s, refreshed).await;
}
