//! The signing keys kept in the store (`SmartAuth::attach_store` without a configured
//! `signing_key_pem`): a restarted server signs with the same key, replicas sharing one PostgreSQL
//! database publish one JWKS and follow a rotation (`SmartAuth::rotate_stored_key`, as
//! `fhir-gateway keys rotate` runs it) within a second, and `key_rotation` rotates on schedule.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use serde_json::Value;
use smart_auth::{AuthError, AuthSettings, SmartAuth};
use store::{SealingKey, Store, StoreSettings};

/// The shared test settings without the configured key: the keys are kept in the store.
fn stored_key_settings() -> AuthSettings {
    let mut s = settings();
    s.signing_key_pem = None;
    s
}

/// A server with `settings`, attached to `db`.
async fn attached_with(settings: AuthSettings, db: &Store) -> Server {
    let s = server_with(settings);
    s.auth.attach_store(db.clone()).await.unwrap();
    s
}

/// A client_credentials access token of `backend`.
async fn backend_token(s: &Server) -> String {
    let r = s
        .token(
            Some(&basic("backend", "s3cret")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()["access_token"].as_str().unwrap().to_owned()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// The kids of the published JWKS, current first.
fn kids(s: &Server) -> Vec<String> {
    let jwks: Value = s.auth.jwks();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn current_kid(s: &Server) -> String {
    kids(s).into_iter().next().expect("a current key")
}

/// Waits (polling) until `s` signs with `kid`; fails after `within`.
async fn wait_for_kid(name: &str, s: &Server, kid: &str, since: Instant, within: Duration) {
    while current_kid(s) != kid {
        assert!(
            since.elapsed() < within,
            "{name} still signs with {} after {:?}, not {kid}",
            current_kid(s),
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(kid_of(&backend_token(s).await), kid, "{name} signs with the new key");
}

#[tokio::test]
async fn a_restarted_server_signs_with_the_stored_key() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings::sqlite(dir.path().join("state").join("gateway.db"))
        .with_sealing_key(SealingKey::generate().unwrap());

    let db_a = Store::open(&settings).await.unwrap();
    let a = attached_with(stored_key_settings(), &db_a).await;
    let token = backend_token(&a).await;
    let kid = kid_of(&token);
    assert_eq!(kids(&a), vec![kid.clone()], "A signs with the key it stored");
    assert!(a.verify(&token).await.is_ok());

    // A stops: its memory is gone, the file stays.
    drop(a);
    db_a.close().await;
    drop(db_a);

    // B starts on the same file, with no configured key and no data_dir: it generated a key of its
    // own, which the stored one replaces.
    let db_b = Store::open(&settings).await.unwrap();
    let b = attached_with(stored_key_settings(), &db_b).await;
    assert_eq!(kids(&b), vec![kid.clone()], "the same key after a restart, and only it");
    assert!(
        b.verify(&token).await.is_ok(),
        "a token of A verifies after the restart"
    );
    assert_eq!(kid_of(&backend_token(&b).await), kid);

    // With the keys in the store, an in-process rotation is refused (it would not reach replicas).
    assert!(matches!(b.auth.rotate_key(), Err(AuthError::Key(_))));

    drop(b);
    db_b.close().await;
}

#[test]
fn replicas_share_the_stored_keys_and_follow_a_rotation() {
    on_postgres(0, |url| async move {
        // Every replica (and the CLI) opens the store with the same encryption key.
        let settings = StoreSettings::postgres(url).with_sealing_key(SealingKey::generate().unwrap());
        let db_a = Store::open(&settings).await.unwrap();
        let db_b = Store::open(&settings).await.unwrap();
        let a = attached_with(stored_key_settings(), &db_a).await;
        let b = attached_with(stored_key_settings(), &db_b).await;
        assert_eq!(a.auth.jwks(), b.auth.jwks(), "one JWKS for both replicas");
        assert_eq!(kids(&a).len(), 1);

        let old = backend_token(&a).await;
        let old_kid = kid_of(&old);
        assert_eq!(kid_of(&backend_token(&b).await), old_kid, "both sign with the same key");

        // `fhir-gateway keys rotate`: its own connection to the store, no server.
        let cli = Store::open(&settings).await.unwrap();
        let new_kid = SmartAuth::rotate_stored_key(&cli).await.unwrap();
        let rotated_at = Instant::now();
        assert_ne!(new_kid, old_kid);
        for (name, s) in [("A", &a), ("B", &b)] {
            wait_for_kid(name, s, &new_kid, rotated_at, Duration::from_secs(1)).await;
        }
        // The old key still verifies its tokens (B never saw this one before) and stays published.
        assert!(b.verify(&old).await.is_ok(), "B verifies the old key's token");
        assert!(a.verify(&old).await.is_ok(), "A verifies the old key's token");
        assert_eq!(kids(&a), [new_kid.clone(), old_kid.clone()]);
        assert_eq!(a.auth.jwks(), b.auth.jwks(), "still one JWKS");
        let fresh = backend_token(&b).await;
        assert!(a.verify(&fresh).await.is_ok(), "A verifies B's new-key token");

        // A rotation at a replica: that replica at once, the other within a second.
        let third = b.auth.rotate_key_stored().await.unwrap();
        assert_eq!(current_kid(&b), third);
        let rotated_at = Instant::now();
        wait_for_kid("A", &a, &third, rotated_at, Duration::from_secs(1)).await;
        assert!(a.verify(&old).await.is_ok());
        assert!(a.verify(&fresh).await.is_ok());
        assert_eq!(kids(&a), [third.clone(), new_kid.clone(), old_kid.clone()]);

        // A replica started now loads the same keys.
        let db_c = Store::open(&settings).await.unwrap();
        let c = attached_with(stored_key_settings(), &db_c).await;
        assert_eq!(c.auth.jwks(), a.auth.jwks());
        assert!(c.verify(&old).await.is_ok());

        drop(a);
        drop(b);
        drop(c);
        db_a.close().await;
        db_b.close().await;
        db_c.close().await;
        cli.close().await;
    });
}

#[tokio::test]
async fn keys_rotate_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let settings =
        StoreSettings::sqlite(dir.path().join("gateway.db")).with_sealing_key(SealingKey::generate().unwrap());
    let db = Store::open(&settings).await.unwrap();
    let mut auth_settings = stored_key_settings();
    auth_settings.key_rotation = Some(Duration::from_secs(1));
    let s = attached_with(auth_settings, &db).await;
    let first = current_kid(&s);
    let token = backend_token(&s).await;
    assert_eq!(kid_of(&token), first);

    let started = Instant::now();
    while current_kid(&s) == first {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no rotation after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        kids(&s).contains(&first),
        "the old key stays in the JWKS: {:?}",
        kids(&s)
    );
    assert!(s.verify(&token).await.is_ok(), "the old key's token still verifies");
    assert_ne!(kid_of(&backend_token(&s).await), first);

    drop(s);
    db.close().await;
}

#[test]
fn a_configured_key_is_not_rotated_on_schedule() {
    let mut settings = settings();
    settings.key_rotation = Some(Duration::from_secs(86_400));
    match SmartAuth::new(settings, patients()) {
        Err(AuthError::Config { setting, .. }) => assert_eq!(setting, "key_rotation"),
        other => panic!("expected a key_rotation error, got {other:?}"),
    }
}
