//! The store's promises, on both backends: SQLite in a temporary directory and a real PostgreSQL
//! server started for the run (`store::testing::TempPostgres`).

mod audit;

use std::time::Duration;

use store::testing::TempPostgres;
use store::{Backend, Location, SealingKey, Store, StoreError, StoreSettings, VendorTokens};

/// A PostgreSQL server for one test, stopped when the test ends (a server shared through a
/// static would never be dropped, and would outlive the test run).
fn postgres() -> TempPostgres {
    TempPostgres::start().unwrap_or_else(|e| panic!("PostgreSQL for the store tests: {e}"))
}

/// Runs `check` on a fresh SQLite store and a fresh PostgreSQL store.
async fn on_both<F, Fut>(name: &str, key: Option<SealingKey>, check: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let server = postgres();
    let mut sqlite = StoreSettings::sqlite(dir.path().join("state").join("gateway.db"));
    let mut pg = StoreSettings::postgres(server.new_database(name).unwrap());
    if let Some(key) = key {
        sqlite = sqlite.with_sealing_key(key.clone());
        pg = pg.with_sealing_key(key);
    }
    for settings in [sqlite, pg] {
        let store = Store::open(&settings).await.unwrap();
        check(store.clone()).await;
        store.close().await;
    }
}

#[tokio::test]
async fn both_backends_apply_the_same_migrations_once() {
    on_both("migrations", None, |store| async move {
        assert_eq!(
            store.migrations().await.unwrap(),
            vec![1, 2, 3, 4],
            "{:?}",
            store.backend()
        );
    })
    .await;
    // Opening again migrates nothing more and keeps what was stored.
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings::sqlite(dir.path().join("g.db"));
    let first = Store::open(&settings).await.unwrap();
    assert!(first.record_insert("k", "a", b"1", store::now() + 60).await.unwrap());
    first.close().await;
    let again = Store::open(&settings).await.unwrap();
    assert_eq!(again.migrations().await.unwrap(), vec![1, 2, 3, 4]);
    assert_eq!(again.record_get("k", "a").await.unwrap().unwrap().value, b"1");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("g.db")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the database file is the owner's only");
    }
}

#[tokio::test]
async fn records_insert_once_replace_by_version_and_expire() {
    on_both("records", None, |store| async move {
        let later = store::now() + 600;
        assert!(store.record_insert("code", "h1", b"first", later).await.unwrap());
        assert!(
            !store.record_insert("code", "h1", b"second", later).await.unwrap(),
            "a live key is not overwritten"
        );
        let r = store.record_get("code", "h1").await.unwrap().unwrap();
        assert_eq!((r.value.as_slice(), r.version), (&b"first"[..], 1));
        // Compare-and-swap: only one of two writers holding version 1 wins.
        assert!(store.record_replace("code", "h1", 1, b"redeemed", later).await.unwrap());
        assert!(!store.record_replace("code", "h1", 1, b"again", later).await.unwrap());
        let r = store.record_get("code", "h1").await.unwrap().unwrap();
        assert_eq!((r.value.as_slice(), r.version), (&b"redeemed"[..], 2));
        // A put overwrites whatever is there.
        store.record_put("code", "h1", b"put", later).await.unwrap();
        let r = store.record_get("code", "h1").await.unwrap().unwrap();
        assert_eq!((r.value.as_slice(), r.version), (&b"put"[..], 3));
        store.record_put("code", "new", b"n", later).await.unwrap();
        assert_eq!(store.record_get("code", "new").await.unwrap().unwrap().version, 1);
        // Kinds are separate; lists by prefix.
        assert!(store.record_insert("family", "h1", b"f", later).await.unwrap());
        assert!(store.record_insert("family", "h2", b"g", later).await.unwrap());
        assert!(store.record_insert("family", "x9", b"h", later).await.unwrap());
        let listed: Vec<String> = store
            .records("family", "h")
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(listed, ["h1", "h2"]);
        // Expired records read as absent and their key can be used again.
        assert!(
            store
                .record_insert("launch", "old", b"x", store::now() - 1)
                .await
                .unwrap()
        );
        assert_eq!(store.record_get("launch", "old").await.unwrap(), None);
        assert!(store.record_insert("launch", "old", b"y", later).await.unwrap());
        assert_eq!(store.record_get("launch", "old").await.unwrap().unwrap().value, b"y");
        assert!(store.record_delete("launch", "old").await.unwrap());
        assert!(!store.record_delete("launch", "old").await.unwrap());
        assert!(
            store
                .record_insert("launch", "gone", b"x", store::now() - 1)
                .await
                .unwrap()
        );
        assert!(store.sweep().await.unwrap() >= 1);
        // Binary values survive unchanged.
        let bytes: Vec<u8> = (0..=255).collect();
        assert!(store.record_insert("bin", "all", &bytes, later).await.unwrap());
        assert_eq!(store.record_get("bin", "all").await.unwrap().unwrap().value, bytes);
    })
    .await;
}

#[tokio::test]
async fn concurrent_compare_and_swap_has_one_winner() {
    on_both("cas", None, |store| async move {
        let later = store::now() + 600;
        store.record_insert("refresh", "t", b"fresh", later).await.unwrap();
        let tries = (0..8).map(|i| {
            let store = store.clone();
            async move {
                store
                    .record_replace("refresh", "t", 1, format!("used by {i}").as_bytes(), later)
                    .await
                    .unwrap()
            }
        });
        let wins = futures::future::join_all(tries)
            .await
            .into_iter()
            .filter(|won| *won)
            .count();
        assert_eq!(wins, 1);
    })
    .await;
}

#[tokio::test]
async fn vendor_tokens_are_sealed_at_rest() {
    let key = SealingKey::generate().unwrap();
    on_both("tokens", Some(key.clone()), |store| async move {
        assert_eq!(store.vendor_tokens("drchrono").await.unwrap(), None);
        let tokens = VendorTokens {
            refresh: Some("refresh-SECRET-1".into()),
            access: Some("access-SECRET-1".into()),
            access_refresh_at: Some(store::now() + 3600),
        };
        assert_eq!(store.save_vendor_tokens("drchrono", &tokens).await.unwrap(), 1);
        let read = store.vendor_tokens("drchrono").await.unwrap().unwrap();
        assert_eq!((read.tokens, read.generation), (tokens.clone(), 1));
        let rotated = VendorTokens {
            refresh: Some("refresh-SECRET-2".into()),
            ..tokens
        };
        assert_eq!(store.save_vendor_tokens("drchrono", &rotated).await.unwrap(), 2);
        assert_eq!(store.vendor_tokens("drchrono").await.unwrap().unwrap().tokens, rotated);
        assert!(!format!("{rotated:?}").contains("SECRET"));
        // Secret records are sealed the same way, bound to their kind and key.
        store
            .secret_put("key", "k1", b"PRIVATE-KEY", store::now() + 60)
            .await
            .unwrap();
        assert_eq!(
            store.secret_get("key", "k1").await.unwrap().unwrap().value,
            b"PRIVATE-KEY"
        );
        let raw = store.record_get("key", "k1").await.unwrap().unwrap().value;
        assert!(!raw.windows(7).any(|w| w == b"PRIVATE"));
        assert_eq!(store.secret_get("key", "absent").await.unwrap(), None);
    })
    .await;
    // On disk: no plain text, and another key cannot open them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let store = Store::open(&StoreSettings::sqlite(&path).with_sealing_key(key.clone()))
        .await
        .unwrap();
    let tokens = VendorTokens {
        refresh: Some("refresh-PLAINTEXT-MARKER".into()),
        access: None,
        access_refresh_at: None,
    };
    store.save_vendor_tokens("drchrono", &tokens).await.unwrap();
    store.close().await;
    for file in std::fs::read_dir(dir.path()).unwrap() {
        // SQLite's closing connections may remove `-wal` and `-shm` files while this lists them.
        let Ok(bytes) = std::fs::read(file.unwrap().path()) else {
            continue;
        };
        assert!(
            !bytes.windows(9).any(|w| w == b"PLAINTEXT"),
            "a token on disk in plain text"
        );
    }
    let wrong = Store::open(&StoreSettings::sqlite(&path).with_sealing_key(SealingKey::generate().unwrap()))
        .await
        .unwrap();
    assert!(matches!(
        wrong.vendor_tokens("drchrono").await,
        Err(StoreError::Sealed(_))
    ));
    let keyless = Store::open(&StoreSettings::sqlite(&path)).await.unwrap();
    assert!(matches!(
        keyless.vendor_tokens("drchrono").await,
        Err(StoreError::NoKey)
    ));
    assert!(matches!(
        keyless.save_vendor_tokens("drchrono", &tokens).await,
        Err(StoreError::NoKey)
    ));
}

#[tokio::test]
async fn events_reach_every_follower_once() {
    on_both("events", None, |store| async move {
        let mut feed = store.follow();
        let later = store::now() + 60;
        let seq = store.publish("revoked", "jti-1", later).await.unwrap();
        let event = tokio::time::timeout(Duration::from_secs(2), feed.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (event.seq, event.topic.as_str(), event.payload.as_str()),
            (seq, "revoked", "jti-1")
        );
        // The poll that follows does not deliver it again.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(feed.try_recv().is_err());
        assert_eq!(store.events("revoked").await.unwrap().len(), 1);
        assert!(store.events("evict").await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn postgres_replicas_hear_each_others_events_within_a_second() {
    let server = postgres();
    let url = server.new_database("replicas").unwrap();
    let a = Store::open(&StoreSettings::postgres(url.clone())).await.unwrap();
    let b = Store::open(&StoreSettings::postgres(url)).await.unwrap();
    assert_eq!((a.backend(), b.backend()), (Backend::Postgres, Backend::Postgres));
    let mut at_b = b.follow();
    // Let B's listener start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    a.publish("revoked", "jti-from-a", store::now() + 60).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(1), at_b.recv())
        .await
        .expect("within a second")
        .unwrap();
    assert_eq!(event.payload, "jti-from-a");
    assert!(started.elapsed() < Duration::from_secs(1));
    // A record written by one is read by the other.
    a.record_insert("family", "f", b"grant", store::now() + 60)
        .await
        .unwrap();
    assert_eq!(b.record_get("family", "f").await.unwrap().unwrap().value, b"grant");
}

#[tokio::test]
async fn a_lease_has_one_holder_until_released_or_expired() {
    let server = postgres();
    let url = server.new_database("leases").unwrap();
    let a = Store::open(&StoreSettings::postgres(url.clone())).await.unwrap();
    let b = Store::open(&StoreSettings::postgres(url)).await.unwrap();
    let ttl = Duration::from_secs(30);
    assert!(a.lease_acquire("drchrono-refresh", ttl).await.unwrap());
    assert!(
        a.lease_acquire("drchrono-refresh", ttl).await.unwrap(),
        "the holder may renew"
    );
    assert!(!b.lease_acquire("drchrono-refresh", ttl).await.unwrap());
    assert!(
        !b.lease_wait("drchrono-refresh", ttl, Duration::from_millis(200))
            .await
            .unwrap()
    );
    a.lease_release("drchrono-refresh").await.unwrap();
    assert!(b.lease_acquire("drchrono-refresh", ttl).await.unwrap());
    // An expired lease is taken over.
    assert!(a.lease_acquire("short", Duration::from_millis(100)).await.unwrap());
    assert!(b.lease_wait("short", ttl, Duration::from_secs(2)).await.unwrap());
}

#[tokio::test]
async fn a_store_that_cannot_open_names_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&StoreSettings::sqlite(file.join("g.db")))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("store.path: "), "{err}");
    let err = Store::open(&StoreSettings::postgres("mysql://x")).await.unwrap_err();
    assert!(err.to_string().starts_with("store.url: "), "{err}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Store::open(&StoreSettings {
        location: Location::Postgres(format!("postgres://user:TOPSECRET@127.0.0.1:{port}/db")),
        sealing_key: None,
        max_connections: 2,
    })
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("store.url: cannot connect"), "{text}");
    assert!(!text.contains("TOPSECRET"), "{text}");
    // Something that is not a database.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![7u8; 4096]).unwrap();
    let err = Store::open(&StoreSettings::sqlite(&garbage)).await.unwrap_err();
    assert!(err.to_string().starts_with("store.path: "), "{err}");
}

#[tokio::test]
async fn replicas_share_a_rate_budget() {
    on_both("budgets", None, |store| async move {
        let other = store.clone();
        let mut taken = 0;
        for i in 0..8 {
            let which = if i % 2 == 0 { &store } else { &other };
            if which.budget_take("drchrono:acct:hourly", 100, 5).await.unwrap() {
                taken += 1;
            }
        }
        assert_eq!(taken, 5);
        assert_eq!(store.budget_used("drchrono:acct:hourly", 100).await.unwrap(), 5);
        // The next window starts afresh; another budget is separate.
        assert!(store.budget_take("drchrono:acct:hourly", 101, 5).await.unwrap());
        assert!(store.budget_take("zoom:acct:light", 100, 5).await.unwrap());
        assert!(!store.budget_take("none", 1, 0).await.unwrap());
        // Concurrent takers never exceed the limit.
        let tries = (0..20).map(|_| {
            let store = store.clone();
            async move { store.budget_take("race", 7, 10).await.unwrap() }
        });
        let won = futures::future::join_all(tries)
            .await
            .into_iter()
            .filter(|t| *t)
            .count();
        assert_eq!(won, 10);
    })
    .await;
}
