//! The `fhir-gateway serve` process in tests: a configuration in front of an in-process DrChrono
//! simulator, started, asked, killed.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vendor_sim::drchrono::SimHandle;

pub const SECRET: &str = "restart-test-secret";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A configuration: SMART with one backend client, the cache off unless `cache`, `store` as the
/// `[store]` section's body, `drchrono_extra` appended to `[drchrono]`.
pub fn config(dir: &Path, port: u16, sim: &SimHandle, cache: bool, store: &str, drchrono_extra: &str) -> String {
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

[cache]
enabled = {cache}

[store]
{store}

[drchrono]
base_url = "{base}"
client_id = "{client_id}"
client_secret = "{client_secret}"
refresh_token = "{refresh}"
redirect_uri = "{redirect}"
{drchrono_extra}
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

pub struct Gateway {
    pub child: Child,
    pub base: String,
}

impl Gateway {
    pub async fn start(config: &Path, port: u16) -> Self {
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
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub async fn token(&self) -> String {
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

    pub async fn revoke(&self, token: &str) {
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
    pub async fn patients(&self, token: &str) -> u16 {
        self.get(token, "Patient?_count=1").await
    }

    /// A read of a patient not read before (so it reaches DrChrono, not the cache).
    pub async fn new_patient(&self, token: &str, sim: &SimHandle, n: usize) -> u16 {
        let id = sim.dataset().patients[n].id;
        self.get(token, &format!("Patient/drchrono-{id}")).await
    }

    pub async fn get(&self, token: &str, path: &str) -> u16 {
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
