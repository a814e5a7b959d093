//! The `fhir-gateway serve` process killed with SIGKILL and started again on the same store: what
//! it knew is still known. A revoked token stays revoked, and DrChrono (whose simulator, like
//! DrChrono, invalidates a refresh token once it has been rotated away) is still reachable with the
//! tokens the gateway stored, sealed, before it used them.

use std::process::Command;

use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig};

use crate::process::{Gateway, config, free_port};

#[tokio::test]
async fn a_killed_gateway_restarts_with_what_it_knew() {
    let sim = DrChronoSim::new(DrChronoSimConfig::small(7, chrono::Utc::now().date_naive()))
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    store::SealingKey::create_file(&dir.path().join("store.key")).unwrap();
    let port = free_port();
    let path = dir.path().join("gateway.toml");
    // Every read reaches DrChrono (what is checked is the gateway's connection to it).
    let store = format!(
        "path = \"{dir}/state/gateway.db\"\nencryption_key_file = \"{dir}/store.key\"",
        dir = dir.path().display()
    );
    std::fs::write(&path, config(dir.path(), port, &sim, false, &store, "")).unwrap();

    let first = Gateway::start(&path, port).await;
    let kept = first.token().await;
    let revoked = first.token().await;
    assert_eq!(first.patients(&kept).await, 200);
    assert_eq!(
        sim.token_grants(),
        1,
        "the configured refresh token was used (and rotated away)"
    );
    first.revoke(&revoked).await;
    assert_eq!(first.patients(&revoked).await, 401);
    first.kill();

    // The rotated refresh token lives only in the store (sealed): no plain text on disk.
    for entry in std::fs::read_dir(dir.path().join("state")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(12).any(|w| w == b"sim-refresh-"),
            "a refresh token on disk in plain text"
        );
    }

    let second = Gateway::start(&path, port).await;
    assert_eq!(second.patients(&revoked).await, 401, "a revoked token stays revoked");
    assert_eq!(second.patients(&kept).await, 200, "a live token stays live");
    assert_eq!(
        sim.token_grants(),
        1,
        "the stored access token was used, not a new refresh"
    );
    // DrChrono expires the access token: the stored refresh token (not the configured one, which
    // the simulator refuses since it was rotated away) gets a new one.
    sim.expire_access_tokens();
    assert_eq!(second.new_patient(&second.token().await, &sim, 2).await, 200);
    assert_eq!(sim.token_grants(), 2);
    second.kill();

    // And once more, after that second rotation.
    let third = Gateway::start(&path, port).await;
    sim.expire_access_tokens();
    assert_eq!(third.new_patient(&third.token().await, &sim, 3).await, 200);
    assert_eq!(sim.token_grants(), 3);
    assert_eq!(third.patients(&revoked).await, 401);
}

#[test]
fn serve_refuses_to_start_without_a_store_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[store]\npath = \"{}/g.db\"\n[drchrono]\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"c\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\nredirect_uri = \"http://localhost/cb\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fhir-gateway"))
        .args(["serve", "--insecure-no-auth", "--config"])
        .arg(&path)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("store.encryption_key_file"), "{stderr}");
    // A store that cannot be opened names its setting.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, b"x").unwrap();
    let key = dir.path().join("k");
    store::SealingKey::create_file(&key).unwrap();
    std::fs::write(
        &path,
        format!(
            "[store]\npath = \"{}/g.db\"\nencryption_key_file = \"{}\"\n[drchrono]\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"c\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\nredirect_uri = \"http://localhost/cb\"\n",
            blocked.display(),
            key.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fhir-gateway"))
        .args(["serve", "--insecure-no-auth", "--config"])
        .arg(&path)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("store.path"), "{stderr}");
}
