//! Two `fhir-gateway serve` processes on one PostgreSQL behave as one gateway: a token of A works at
//! B and a revocation at A is refused at B within a second; a key rotated with `fhir-gateway keys
//! rotate` signs at both; a DrChrono webhook received by A evicts B's cache; DrChrono's hourly
//! budget is one budget for both.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use store::testing::TempPostgres;
use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig, SimHandle};

use crate::process::{Gateway, config, free_port};

struct Pair {
    a: Gateway,
    b: Gateway,
    config_a: PathBuf,
    // Dropped last: the gateways stop before their database does.
    _dir: tempfile::TempDir,
    _pg: TempPostgres,
}

async fn sim() -> SimHandle {
    DrChronoSim::new(DrChronoSimConfig::small(11, chrono::Utc::now().date_naive()))
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A, then B (so B finds A's signing key in the store), on one fresh PostgreSQL.
async fn pair(sim: &SimHandle, cache: bool, drchrono_extra: &str) -> Pair {
    let pg = TempPostgres::start().expect("PostgreSQL for the replica tests (apt-get install postgresql)");
    let dir = tempfile::tempdir().unwrap();
    store::SealingKey::create_file(&dir.path().join("store.key")).unwrap();
    let store = format!(
        "url = \"{}\"\nencryption_key_file = \"{}/store.key\"",
        pg.url(),
        dir.path().display()
    );
    let (port_a, port_b) = (free_port(), free_port());
    // Replicas behind one load balancer share its public URL (the tokens' issuer and audience);
    // A's address stands in for it.
    let write = |name: &str, port: u16| -> PathBuf {
        let path = dir.path().join(name);
        let toml = config(dir.path(), port, sim, cache, &store, drchrono_extra).replacen(
            "[server]\n",
            &format!("[server]\npublic_url = \"http://127.0.0.1:{port_a}\"\n"),
            1,
        );
        std::fs::write(&path, toml).unwrap();
        path
    };
    let config_a = write("a.toml", port_a);
    let config_b = write("b.toml", port_b);
    let a = Gateway::start(&config_a, port_a).await;
    let b = Gateway::start(&config_b, port_b).await;
    Pair {
        a,
        b,
        config_a,
        _dir: dir,
        _pg: pg,
    }
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.expect("a kid")
}

fn rotate(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fhir-gateway"))
        .args(["keys", "rotate", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys rotate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn tokens_revocations_and_keys_are_shared() {
    let sim = sim().await;
    let p = pair(&sim, true, "").await;

    let kept = p.a.token().await;
    let revoked = p.a.token().await;
    assert_eq!(kid(&kept), kid(&p.b.token().await), "B signs with A's stored key");
    assert_eq!(p.b.patients(&revoked).await, 200, "a token of A works at B");

    // Revoked at A: refused at B within a second (B has verified, and cached, it before).
    p.a.revoke(&revoked).await;
    let revoked_at = Instant::now();
    while p.b.patients(&revoked).await != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "B still accepts a token revoked at A a second ago"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(p.a.patients(&revoked).await, 401);

    // `fhir-gateway keys rotate` against the shared store: both replicas sign with the new key
    // within a second, and the old key's tokens keep working at both.
    let old_kid = kid(&kept);
    let new_kid = rotate(&p.config_a);
    assert_ne!(new_kid, old_kid);
    let rotated_at = Instant::now();
    for gateway in [&p.a, &p.b] {
        while kid(&gateway.token().await) != new_kid {
            assert!(
                rotated_at.elapsed() < Duration::from_secs(2),
                "a replica still signs with the old key"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(gateway.patients(&kept).await, 200, "a token of the old key still works");
        let fresh = gateway.token().await;
        assert_eq!(p.a.patients(&fresh).await, 200);
        assert_eq!(p.b.patients(&fresh).await, 200);
    }
}

#[tokio::test]
async fn a_webhook_at_one_replica_evicts_the_others_cache() {
    let sim = sim().await;
    let secret = sim.config().webhook_secret.clone();
    let p = pair(&sim, true, &format!("webhook_secret = \"{secret}\"")).await;
    sim.set_webhook_url(Some(format!("{}/webhooks/drchrono", p.a.base)));
    assert!(sim.verify_webhook_url().await, "A answers DrChrono's verification");

    let natives: Vec<String> = sim.dataset().patients.iter().map(|p| p.id.to_string()).collect();
    // A patient whose vendor path is no prefix of another's, so its hits count alone.
    let native = natives
        .iter()
        .find(|id| natives.iter().filter(|other| other.starts_with(id.as_str())).count() == 1)
        .expect("a patient")
        .clone();
    let vendor_path = format!("/api/patients/{native}");
    let read = format!("Patient/drchrono-{native}");
    let token = p.b.token().await;
    sim.reset_hits();
    assert_eq!(p.b.get(&token, &read).await, 200);
    assert_eq!(p.b.get(&token, &read).await, 200);
    assert_eq!(sim.hits_for(&vendor_path), 1, "B's second read came from its cache");

    sim.fire_webhook(
        "PATIENT_MODIFY",
        serde_json::json!({"id": native.parse::<i64>().unwrap()}),
    );
    assert!(sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let delivered = sim.webhook_log();
    assert!(
        delivered.iter().any(|d| d.event == "PATIENT_MODIFY"),
        "the hook went to A"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while sim.hits_for(&vendor_path) == 1 {
        assert!(
            Instant::now() < deadline,
            "B's cache still holds what A was told changed"
        );
        assert_eq!(p.b.get(&token, &read).await, 200);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(sim.hits_for(&vendor_path), 2, "B read the patient from DrChrono again");
}

#[tokio::test]
async fn replicas_share_drchrono_s_hourly_budget() {
    const LIMIT: u64 = 12;
    let sim = sim().await;
    // Without the cache every read is a DrChrono call.
    let p = pair(&sim, false, &format!("hourly_limit = {LIMIT}")).await;
    let (token_a, token_b) = (p.a.token().await, p.b.token().await);
    sim.reset_hits();
    let mut answers = (Vec::new(), Vec::new());
    for _ in 0..15 {
        answers.0.push(p.a.patients(&token_a).await);
        answers.1.push(p.b.patients(&token_b).await);
    }
    assert!(
        sim.hits() <= LIMIT,
        "two replicas made {} calls under one budget of {LIMIT}",
        sim.hits()
    );
    let ok = |a: &[u16]| a.iter().filter(|s| **s == 200).count();
    assert!(
        ok(&answers.0) > 0 && ok(&answers.1) > 0,
        "both replicas were served: {answers:?}"
    );
    assert!(
        answers.0.iter().chain(&answers.1).all(|s| *s == 200 || *s >= 429),
        "a spent budget is an error answer: {answers:?}"
    );
    assert!(
        answers.0.last() != Some(&200) && answers.1.last() != Some(&200),
        "both replicas ran out together: {answers:?}"
    );
}

/// DrChrono's refresh is single-flight across replicas: when DrChrono expires the access token,
/// both replicas need a new one at once, one refreshes (rotating the refresh token, which the
/// simulator then refuses, as DrChrono does) and the other adopts what it stored.
#[tokio::test]
async fn drchrono_s_refresh_is_single_flight_across_replicas() {
    let sim = sim().await;
    let p = pair(&sim, false, "").await;
    let (token_a, token_b) = (p.a.token().await, p.b.token().await);
    assert_eq!(p.a.patients(&token_a).await, 200);
    assert_eq!(p.b.patients(&token_b).await, 200);
    let grants = sim.token_grants();
    for round in 0..3 {
        sim.expire_access_tokens();
        let (a, b) = tokio::join!(p.a.patients(&token_a), p.b.patients(&token_b));
        assert_eq!((a, b), (200, 200), "round {round}: both replicas reach DrChrono");
        assert_eq!(
            sim.token_grants(),
            grants + round + 1,
            "round {round}: one refresh for both replicas"
        );
    }
}
