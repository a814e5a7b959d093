//! The authorization server's memory kept in the gateway's store (`SmartAuth::attach_store`): a
//! restarted server still knows its revocations and refresh tokens (SQLite), and replicas sharing one
//! PostgreSQL database behave as one server (codes, refresh tokens, revocations, client assertions
//! and launch contexts).

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use serde_json::Value;
use store::{Store, StoreSettings};

const OFFLINE_SCOPE: &str = "openid fhirUser launch/patient patient/*.rs offline_access";

/// A server with the shared test settings (so every one signs with the same configured key),
/// attached to `db`.
async fn attached(db: &Store) -> Server {
    let s = server();
    s.auth.attach_store(db.clone()).await.unwrap();
    s
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}")).to_owned()
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

/// Revokes one of `app`'s tokens (RFC 7009).
async fn revoke(s: &Server, token: &str) {
    let r = s
        .post("/auth/revoke", None, &form(&[("token", token), ("client_id", "app")]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

fn assert_invalid_grant(r: &Resp, why: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{why}: {}", r.body);
    assert_eq!(r.json()["error"], "invalid_grant", "{why}");
}

async fn assert_revoked(s: &Server, token: &str, why: &str) {
    let err = s.verify(token).await.expect_err(why);
    assert!(err.description.contains("revoked"), "{why}: {err}");
}

/// A client_credentials request of `jwt-es` with the client assertion `signed`.
async fn assertion_grant(s: &Server, signed: &str) -> Resp {
    s.token(
        None,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.rs"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", signed),
        ],
    )
    .await
}

#[tokio::test]
async fn a_restarted_server_remembers_revocations_and_refresh_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings::sqlite(dir.path().join("state").join("gateway.db"));

    let db_a = Store::open(&settings).await.unwrap();
    let a = attached(&db_a).await;
    let t = app_tokens(&a, OFFLINE_SCOPE, "dr", Some("drchrono-9")).await;
    let access = str_of(&t, "access_token");
    let r0 = str_of(&t, "refresh_token");
    assert!(a.verify(&access).await.is_ok());
    revoke(&a, &access).await;
    assert_revoked(&a, &access, "revoked at A").await;

    // A stops: its memory is gone, the file stays.
    drop(a);
    db_a.close().await;
    drop(db_a);

    // B starts on the same file, with the same signing key.
    let db_b = Store::open(&settings).await.unwrap();
    let b = attached(&db_b).await;
    assert_revoked(&b, &access, "the revocation survives the restart").await;

    let t1 = refresh(&b, &r0).await;
    assert_eq!(
        t1.status,
        StatusCode::OK,
        "the refresh token survives the restart: {}",
        t1.body
    );
    let t1 = t1.json();
    let r1 = str_of(&t1, "refresh_token");
    let a1 = str_of(&t1, "access_token");
    assert_ne!(r1, r0, "rotated");
    assert_eq!(t1["patient"], "drchrono-9");
    assert_eq!(t1["scope"], OFFLINE_SCOPE);
    assert!(b.verify(&a1).await.is_ok());

    // The rotated-away token used again is a reuse: refused, and its family is revoked.
    assert_invalid_grant(&refresh(&b, &r0).await, "the rotated-away refresh token");
    assert_invalid_grant(&refresh(&b, &r1).await, "the family's current refresh token");
    assert_revoked(&b, &a1, "the family's access token").await;

    drop(b);
    db_b.close().await;
}

#[test]
fn replicas_on_postgres_behave_as_one_server() {
    on_postgres(0, |url| async move {
        let settings = StoreSettings::postgres(url);
        let db_a = Store::open(&settings).await.unwrap();
        let db_b = Store::open(&settings).await.unwrap();
        let a = attached(&db_a).await;
        let b = attached(&db_b).await;

        // (a) A code issued at A is redeemed at B.
        let (verifier, challenge) = pkce();
        let url = authorize_url("app", APP_REDIRECT, OFFLINE_SCOPE, &challenge, &[]);
        let (code, _) = authorize(&a, &url, "dr", Some("drchrono-9")).await;
        let code_pairs = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", APP_REDIRECT),
            ("code_verifier", verifier.as_str()),
            ("client_id", "app"),
        ];
        let r = b.token(None, &code_pairs).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "a code issued at A is redeemed at B: {}",
            r.body
        );
        let t0 = r.json();
        assert_eq!(t0["patient"], "drchrono-9");
        assert_eq!(t0["scope"], OFFLINE_SCOPE);
        let a0 = str_of(&t0, "access_token");
        let r0 = str_of(&t0, "refresh_token");
        assert!(a.verify(&a0).await.is_ok(), "A verifies B's token");

        // (b) Its refresh token refreshes at B; the new one refreshes at A.
        let r = refresh(&b, &r0).await;
        assert_eq!(r.status, StatusCode::OK, "refresh at B: {}", r.body);
        let t1 = r.json();
        let r1 = str_of(&t1, "refresh_token");
        assert_ne!(r1, r0, "rotated");
        assert_eq!(t1["patient"], "drchrono-9");
        let r = refresh(&a, &r1).await;
        assert_eq!(r.status, StatusCode::OK, "B's refresh token refreshes at A: {}", r.body);
        let t2 = r.json();
        let a2 = str_of(&t2, "access_token");
        let r2 = str_of(&t2, "refresh_token");
        assert_ne!(r2, r1, "rotated");

        // (c) An access token revoked at A is refused by B within a second, even though B had
        // verified (and cached) it.
        assert!(b.verify(&a2).await.is_ok());
        assert!(b.verify(&a2).await.is_ok());
        revoke(&a, &a2).await;
        let revoked_at = Instant::now();
        loop {
            match b.verify(&a2).await {
                Err(err) => {
                    assert!(err.description.contains("revoked"), "{err}");
                    break;
                }
                Ok(_) => {
                    assert!(
                        revoked_at.elapsed() < Duration::from_secs(1),
                        "B still accepts the token revoked at A after a second"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        let elapsed = revoked_at.elapsed();
        assert!(
            elapsed < Duration::from_secs(1),
            "B heard of the revocation after {elapsed:?}"
        );
        assert_revoked(&a, &a2, "revoked at A").await;

        // (d) The same refresh token used at A and at B at once: exactly one use succeeds.
        let refresh_pairs = [
            ("grant_type", "refresh_token"),
            ("refresh_token", r2.as_str()),
            ("client_id", "app"),
        ];
        let (at_a, at_b) = tokio::join!(a.token(None, &refresh_pairs), b.token(None, &refresh_pairs));
        let successes = [&at_a, &at_b]
            .into_iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        assert_eq!(
            successes, 1,
            "exactly one concurrent use succeeds:\nA: {at_a:?}\nB: {at_b:?}"
        );
        let loser = if at_a.status == StatusCode::OK { &at_b } else { &at_a };
        assert_invalid_grant(loser, "the concurrent second use");
        // The reuse revoked the family: the winner's new refresh token does not work either, at
        // either replica, even if the winner wrote the family after the loser revoked it.
        let winner = if at_a.status == StatusCode::OK { &at_a } else { &at_b };
        let winner_refresh = winner.json()["refresh_token"].as_str().unwrap().to_owned();
        let winner_pairs = [
            ("grant_type", "refresh_token"),
            ("refresh_token", winner_refresh.as_str()),
            ("client_id", "app"),
        ];
        assert_invalid_grant(&b.token(None, &winner_pairs).await, "the winner's token after a reuse");

        // (e) A client assertion accepted at A is a replay at B.
        let k = keys();
        let signed = assertion(&k.client_es, "jwt-es", TOKEN_URL, 240, &format!("replica-{}", pkce().0));
        let r = assertion_grant(&a, &signed).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = assertion_grant(&b, &signed).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a replay at B: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_client");
        // B itself accepts the client's fresh assertions.
        let fresh = assertion(&k.client_es, "jwt-es", TOKEN_URL, 240, &format!("replica-{}", pkce().0));
        let r = assertion_grant(&b, &fresh).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);

        // The code redeemed at B is used up at A too.
        assert_invalid_grant(&a.token(None, &code_pairs).await, "the code replayed at A");

        drop(a);
        drop(b);
        db_a.close().await;
        db_b.close().await;
    });
}

#[test]
fn a_launch_context_is_used_once_across_replicas() {
    on_postgres(0, |url| async move {
        let settings = StoreSettings::postgres(url);
        let db_a = Store::open(&settings).await.unwrap();
        let db_b = Store::open(&settings).await.unwrap();
        let a = attached(&db_a).await;
        let b = attached(&db_b).await;

        // Minted at A, used at B.
        let launch = a
            .auth
            .mint_launch(Some("drchrono-11".into()), Some("drchrono-e5".into()))
            .await
            .unwrap();
        let (verifier, challenge) = pkce();
        let url = authorize_url(
            "app",
            APP_REDIRECT,
            "launch openid fhirUser patient/*.rs launch/encounter",
            &challenge,
            &[("launch", launch.as_str())],
        );
        let (code, _) = authorize(&b, &url, "dr", None).await;
        let r = b
            .token(
                None,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", APP_REDIRECT),
                    ("code_verifier", verifier.as_str()),
                    ("client_id", "app"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let t = r.json();
        assert_eq!(t["patient"], "drchrono-11");
        assert_eq!(t["encounter"], "drchrono-e5");

        // Used once: A, which minted it (and held it in memory), refuses it now, as does B.
        for (name, s) in [("A", &a), ("B", &b)] {
            let reused = s.get(&url).await;
            assert_eq!(reused.status, StatusCode::SEE_OTHER, "{name}: {}", reused.body);
            assert_eq!(reused.location_params()["error"], "invalid_request", "{name}");
        }

        drop(a);
        drop(b);
        db_a.close().await;
        db_b.close().await;
    });
}
