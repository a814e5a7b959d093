//! The `fhir-gateway serve` process killed with SIGKILL and started again on the same store: what
//! it knew is still known. A revoked token stays revoked, and DrChrono (whose simulator, like
//! DrChrono, invalidates a refresh token once it has been rotated away) is still reachable with the
//! tokens the gateway stored, sealed, before it used them.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vendor_sim::drchrono::{DrChronoSim, DrChronoSimConfig, SimHandle};

const SECRET: &str = "restart-test-secret";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn config(dir: &Path, port: u16, sim: &SimHandle) -> String {
    let c = sim.config();
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[auth]
mode = "smart"
data_dir = "{dir}/auth"

[[auth.clients]]
client_id = "backend"
auth = "client_secret_basic"
secret_hash = "{hash}"
scopes = "system/*.rs"
grant_types = ["client_credentials"]

# Every read reaches DrChrono (what is checked is the gateway's connection to it).
[cache]
enabled = false

[store]
path = "{dir}/state/gateway.db"
encryption_key_file = "{dir}/store.key"

[drchrono]
base_url = "{base}"
client_id = "{client_id}"
client_secret = "{client_secret}"
refresh_token = "{refresh}"
redirect_uri = "{redirect}"
"#,
        dir = dir.display(),
        hash = smart_auth::hash_password(SECRET),
        base = sim.base_url(),
        client_id = c.client_id,
        client_secret = c.client_secret,
        refresh = c.initial_refresh_token,
        redirect = c.redirect_uri,
    )
}

struct Gateway {
    child: Child,
    base: String,
}

impl Gateway {
    async fn start(config: &Path, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_fhir-gateway"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut gateway = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/fhir/metadata", gateway.base)).await
                && r.status() == 200
            {
                return gateway;
            }
            if let Ok(Some(status)) = gateway.child.try_wait() {
                panic!("the gateway exited at start-up: {status}");
            }
            assert!(Instant::now() < deadline, "the gateway did not start within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    async fn token(&self) -> String {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/auth/token", self.base))
            .basic_auth("backend", Some(SECRET))
            .form(&[("grant_type", "client_credentials"), ("scope", "system/*.rs")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    }

    async fn revoke(&self, token: &str) {
        let status = reqwest::Client::new()
            .post(format!("{}/auth/revoke", self.base))
            .basic_auth("backend", Some(SECRET))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }

    /// A Patient search.
    async fn patients(&self, token: &str) -> u16 {
        self.get(token, "Patient?_count=1").await
    }

    /// A read of a patient not read before (so it reaches DrChrono, not the cache).
    async fn new_patient(&self, token: &str, sim: &SimHandle, n: usize) -> u16 {
        let id = sim.dataset().patients[n].id;
        self.get(token, &format!("Patient/drchrono-{id}")).await
    }

    async fn get(&self, token: &str, path: &str) -> u16 {
        reqwest::Client::new()
            .get(format!("{}/fhir/{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    std::fs::write(&path, config(dir.path(), port, &sim)).unwrap();

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
