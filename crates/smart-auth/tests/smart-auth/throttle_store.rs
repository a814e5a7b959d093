//! The sign-in throttle's counters kept in the gateway's store (`SmartAuth::attach_store`): failures
//! at one replica lock the username and the address out at another, a restarted server still knows a
//! lock-out, parallel guesses at two replicas are checked no more often than the threshold allows,
//! and the stored counters never hold a username. On one SQLite file (two servers sharing one store,
//! or one after the other) and on a real PostgreSQL shared by two stores.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::connect_info::MockConnectInfo;
use common::*;
use http::{StatusCode, header};
use serde_json::{Value, json};
use smart_auth::{AuthSettings, SmartAuth};
use store::{Store, StoreSettings};
use tower::ServiceExt;

/// The stored counters' record kind.
const KIND: &str = "auth.throttle";

/// The shared test settings with these thresholds.
fn throttled(per_user: u32, per_ip: u32) -> AuthSettings {
    let mut s = settings();
    s.login_failures_per_user = per_user;
    s.login_failures_per_ip = per_ip;
    s
}

/// A replica: a server with `settings`, attached to `db`.
async fn replica(settings: AuthSettings, db: &Store) -> SmartAuth {
    let auth = SmartAuth::new(settings, patients()).unwrap();
    auth.attach_store(db.clone()).await.unwrap();
    auth
}

/// A router over `auth` whose every request comes from `addr`.
fn from(auth: &SmartAuth, addr: [u8; 4]) -> Server {
    Server {
        auth: auth.clone(),
        app: auth.router().layer(MockConnectInfo(SocketAddr::from((addr, 40_000)))),
    }
}

/// A sign-in on a new authorization request.
async fn sign_in(s: &Server, user: &str, password: &str) -> Resp {
    let tx = start_login(s).await;
    s.send(login_request(&tx, user, password)).await
}

/// The password was checked, and was wrong.
fn wrong(r: &Resp) -> bool {
    r.status == StatusCode::OK && r.body.contains("The username or password is incorrect.")
}

/// Refused before any check: locked out.
fn locked(r: &Resp) -> bool {
    r.status == StatusCode::TOO_MANY_REQUESTS && r.body.contains("Too many failed sign-in attempts")
}

/// Signed in: the consent page.
fn signed_in(r: &Resp) -> bool {
    r.status == StatusCode::OK && r.body.contains("id=\"allow\"")
}

/// The key of a username's stored counter: `user:` and the SHA-256 (hex) of the lower-cased name.
fn user_key(name: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, name.to_lowercase().as_bytes());
    format!("user:{}", data_encoding::HEXLOWER.encode(digest.as_ref()))
}

/// A stored counter, as JSON.
async fn stored(db: &Store, key: &str) -> Option<Value> {
    let record = db.record_get(KIND, key).await.unwrap()?;
    Some(serde_json::from_slice(&record.value).unwrap())
}

/// (1) Failures at A lock the username, and the address, out at B.
async fn lock_outs_reach_the_other_replica(db_a: &Store, db_b: &Store) {
    let a = replica(throttled(5, 3), db_a).await;
    let b = replica(throttled(5, 3), db_b).await;

    // Five wrong passwords for dr at A, each from another address (so no address is locked out).
    for i in 1..=5 {
        let r = sign_in(&from(&a, [198, 51, 100, i]), "dr", "wrong").await;
        assert!(wrong(&r), "guess {i} at A: {r:?}");
    }
    // B, which never saw them, refuses dr (in another case, with the right password, from a fresh
    // address) before any check.
    let r = sign_in(&from(&b, [198, 51, 100, 6]), "Dr", "pw").await;
    assert!(locked(&r), "dr at B: {r:?}");
    assert_eq!(r.header(header::RETRY_AFTER), "1");
    let counter = stored(db_b, &user_key("dr")).await.expect("dr's stored counter");
    assert_eq!(counter["failures"], 5, "{counter}");
    assert_eq!(counter["pending"], json!([]), "{counter}");
    // Another user signs in at B from that address.
    let r = sign_in(&from(&b, [198, 51, 100, 6]), "pat", "pw").await;
    assert!(signed_in(&r), "pat at B: {r:?}");

    // Three wrong sign-ins from one address at A, each for another name...
    for user in ["u1", "u2", "u3"] {
        let r = sign_in(&from(&a, [203, 0, 113, 7]), user, "guess").await;
        assert!(wrong(&r), "{user} at A: {r:?}");
    }
    // ... lock that address out at B, whoever signs in from it; another address is not.
    let r = sign_in(&from(&b, [203, 0, 113, 7]), "pat", "pw").await;
    assert!(locked(&r), "the address at B: {r:?}");
    let counter = stored(db_b, "ip:203.0.113.7")
        .await
        .expect("the address's stored counter");
    assert_eq!(counter["failures"], 3, "{counter}");
    let r = sign_in(&from(&b, [203, 0, 113, 8]), "pat", "pw").await;
    assert!(signed_in(&r), "another address at B: {r:?}");
}

/// (3) 20 wrong guesses for one username at once, half at A and half at B, each on its own
/// transaction: every one is counted before its check, so five are checked and the others are
/// refused as locked out; the stored counter holds the five failures.
async fn parallel_guesses_at_two_replicas_get_five_checks(db_a: &Store, db_b: &Store) {
    let parallel = || {
        let mut s = throttled(5, 100);
        s.max_concurrent_password_checks = 8;
        s.password_check_wait = Duration::from_secs(10);
        s
    };
    let a = from(&replica(parallel(), db_a).await, [192, 0, 2, 50]);
    let b = from(&replica(parallel(), db_b).await, [192, 0, 2, 50]);
    let mut requests = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { &a } else { &b };
        let tx = start_login(s).await;
        requests.push((s.app.clone(), login_request(&tx, "dr", "wrong")));
    }
    // All at once, each in its own task.
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(app, request)| tokio::spawn(async move { read_whole(app.oneshot(request).await.unwrap()).await }))
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap());
    }
    let checked = responses.iter().filter(|r| wrong(r)).count();
    let refused = responses.iter().filter(|r| locked(r)).count();
    assert!(checked <= 5, "{checked} guesses were checked: {responses:?}");
    assert_eq!(
        checked, 5,
        "every guess counted before its check, none lost: {responses:?}"
    );
    assert_eq!(
        checked + refused,
        20,
        "the others are refused as locked out: {responses:?}"
    );
    for r in responses.iter().filter(|r| locked(r)) {
        assert_eq!(r.header(header::RETRY_AFTER), "1");
    }
    let counter = stored(db_a, &user_key("dr")).await.expect("dr's stored counter");
    assert_eq!(counter["failures"], 5, "{counter}");
    assert_eq!(
        counter["pending"],
        json!([]),
        "no attempt is left being checked: {counter}"
    );
    let counter = stored(db_b, "ip:192.0.2.50")
        .await
        .expect("the address's stored counter");
    assert_eq!(counter["failures"], 5, "{counter}");
    // dr stays locked out at both.
    for (name, s) in [("A", &a), ("B", &b)] {
        let r = sign_in(s, "dr", "pw").await;
        assert!(locked(&r), "dr at {name}: {r:?}");
    }
}

#[tokio::test]
async fn failures_at_one_server_lock_out_at_another_on_one_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(&StoreSettings::sqlite(dir.path().join("gateway.db")))
        .await
        .unwrap();
    lock_outs_reach_the_other_replica(&db, &db.clone()).await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_at_two_servers_on_one_sqlite_store_get_five_checks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(&StoreSettings::sqlite(dir.path().join("gateway.db")))
        .await
        .unwrap();
    parallel_guesses_at_two_replicas_get_five_checks(&db, &db.clone()).await;
    db.close().await;
}

#[test]
fn failures_at_one_replica_lock_out_at_another_on_postgres() {
    on_postgres(4, |url| async move {
        let settings = StoreSettings::postgres(url);
        let db_a = Store::open(&settings).await.unwrap();
        let db_b = Store::open(&settings).await.unwrap();
        lock_outs_reach_the_other_replica(&db_a, &db_b).await;
        db_a.close().await;
        db_b.close().await;
    });
}

#[test]
fn parallel_guesses_at_two_replicas_on_postgres_get_five_checks() {
    on_postgres(4, |url| async move {
        let settings = StoreSettings::postgres(url);
        let db_a = Store::open(&settings).await.unwrap();
        let db_b = Store::open(&settings).await.unwrap();
        parallel_guesses_at_two_replicas_get_five_checks(&db_a, &db_b).await;
        db_a.close().await;
        db_b.close().await;
    });
}

/// (2) A new server on the same SQLite file still knows the lock-out, and how many failures led to
/// it.
#[tokio::test]
async fn a_restarted_server_still_knows_the_lock_out() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings::sqlite(dir.path().join("state").join("gateway.db"));
    let addr = [192, 0, 2, 1];

    let db_a = Store::open(&settings).await.unwrap();
    let a = from(&replica(throttled(2, 20), &db_a).await, addr);
    // Two failures lock dr out for a second; once it ends, a third locks dr out for two.
    for i in 0..2 {
        let r = sign_in(&a, "dr", "wrong").await;
        assert!(wrong(&r), "guess {i}: {r:?}");
    }
    let r = sign_in(&a, "dr", "pw").await;
    assert!(locked(&r), "{r:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = sign_in(&a, "dr", "wrong").await;
    assert!(wrong(&r), "after the first lock-out: {r:?}");

    // A stops: its memory is gone, the file stays.
    drop(a);
    db_a.close().await;
    drop(db_a);

    // B starts on the same file and refuses dr, even with the right password.
    let db_b = Store::open(&settings).await.unwrap();
    let b = from(&replica(throttled(2, 20), &db_b).await, addr);
    let r = sign_in(&b, "dr", "pw").await;
    assert!(locked(&r), "the restarted server refuses dr: {r:?}");
    let retry_after = r.header(header::RETRY_AFTER);
    assert!(
        ["1", "2"].contains(&retry_after),
        "the third failure's two-second lock-out: {retry_after}"
    );
    let counter = stored(&db_b, &user_key("dr")).await.expect("dr's stored counter");
    assert_eq!(counter["failures"], 3, "{counter}");

    // Once it ends dr signs in, which forgets the username's failures (not the address's).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = sign_in(&b, "dr", "pw").await;
    assert!(signed_in(&r), "{r:?}");
    assert_eq!(stored(&db_b, &user_key("dr")).await, None);
    let counter = stored(&db_b, "ip:192.0.2.1")
        .await
        .expect("the address's stored counter");
    assert_eq!(counter["failures"], 3, "{counter}");

    drop(b);
    db_b.close().await;
}

/// (4) The stored counters are keyed by the SHA-256 of the username, and neither the records nor
/// the database file hold the username itself.
#[tokio::test]
async fn the_stored_counters_never_hold_the_username() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.db");
    let db = Store::open(&StoreSettings::sqlite(&path)).await.unwrap();
    let a = from(&replica(settings(), &db).await, [192, 0, 2, 33]);
    let name = "Mallory.Guesser@Example.org";
    for i in 0..2 {
        let r = sign_in(&a, name, "guess").await;
        assert!(wrong(&r), "guess {i}: {r:?}");
    }

    let records = db.records(KIND, "").await.unwrap();
    let keys: Vec<&str> = records.iter().map(|(key, _)| key.as_str()).collect();
    let by_user = user_key(name);
    assert_eq!(keys, ["ip:192.0.2.33", by_user.as_str()]);
    assert_eq!(by_user, user_key("mallory.guesser@example.org"), "without case");
    let now = store::now();
    for (key, record) in &records {
        let value = String::from_utf8(record.value.clone()).unwrap();
        for text in [key, &value] {
            assert!(!text.to_lowercase().contains("mallory"), "{key}: {value}");
        }
        let counter: Value = serde_json::from_str(&value).unwrap();
        assert_eq!(counter["failures"], 2, "{key}: {value}");
        assert_eq!(counter["pending"], json!([]), "{key}: {value}");
        // Kept as long as memory would keep it: an hour (below the threshold: after the last failure).
        assert!(
            (now + 3500..=now + 3700).contains(&record.expires_at),
            "{key} expires at {} (now {now})",
            record.expires_at
        );
    }

    // Nor does the database file (or its write-ahead log).
    drop(a);
    db.close().await;
    for file in [path.clone(), dir.path().join("gateway.db-wal")] {
        let Ok(bytes) = std::fs::read(&file) else { continue };
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        assert!(!text.contains("mallory"), "{} holds the username", file.display());
    }
}
