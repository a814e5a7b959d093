//! A SMART Backend Services client: signs a client assertion with its private key
//! (`private_key_jwt`, ES384), exchanges it for an access token (`client_credentials`), and pages
//! through a search by following the Bundle's `next` links.
//!
//! Against the demo (`cargo run --release` in another terminal):
//!
//! ```sh
//! cargo run -p gateway --example backend-client -- http://127.0.0.1:8080
//! ```
//!
//! Arguments: `[BASE_URL] [SEARCH]` (default `http://127.0.0.1:8080` and `Appointment?_count=100`), or
//! `[BASE_URL] --token` to print an access token with `system/*.cruds` (for writes and operations).
//! The demo registers the client `demo-jwt` with the public half of `examples/keys/demo-jwt.private.pem`.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The demo client and its key (demo only: never use a committed key for real data).
pub const DEMO_CLIENT_ID: &str = "demo-jwt";
pub const DEMO_KEY_ID: &str = "demo-jwt-1";
pub const DEMO_PRIVATE_KEY: &str = include_str!("keys/demo-jwt.private.pem");

/// What a run found.
#[derive(Debug)]
pub struct Summary {
    pub scope: String,
    pub pages: usize,
    pub resources: usize,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A unique assertion id (the server refuses a `jti` it has seen).
fn jti() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", std::process::id())
}

/// Gets an access token with a signed client assertion.
pub async fn token(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    key_id: &str,
    private_key_pem: &str,
    scope: &str,
) -> Result<Value, String> {
    let config: Value = http
        .get(format!("{base}/.well-known/smart-configuration"))
        .send()
        .await
        .map_err(|e| format!("discovery: {e}"))?
        .json()
        .await
        .map_err(|e| format!("discovery: {e}"))?;
    let token_url = config["token_endpoint"]
        .as_str()
        .ok_or("the discovery document names no token_endpoint")?
        .to_owned();
    let mut header = Header::new(Algorithm::ES384);
    header.kid = Some(key_id.to_owned());
    let claims = json!({"iss": client_id, "sub": client_id, "aud": token_url, "exp": now() + 240, "jti": jti()});
    let key = EncodingKey::from_ec_pem(private_key_pem.as_bytes()).map_err(|e| format!("private key: {e}"))?;
    let assertion = jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("signing: {e}"))?;
    let response = http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .map_err(|e| format!("token request: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| format!("token answer: {e}"))?;
    if !status.is_success() {
        return Err(format!("token endpoint answered {status}: {}", body["error"]));
    }
    Ok(body)
}

/// Gets a token and pages through `search` (relative to `{base}/fhir/`).
pub async fn run(base: &str, search: &str) -> Result<Summary, String> {
    let http = reqwest::Client::new();
    let token = token(
        &http,
        base,
        DEMO_CLIENT_ID,
        DEMO_KEY_ID,
        DEMO_PRIVATE_KEY,
        "system/*.rs",
    )
    .await?;
    let access = token["access_token"].as_str().ok_or("no access_token")?.to_owned();
    let scope = token["scope"].as_str().unwrap_or_default().to_owned();
    let mut url = format!("{base}/fhir/{search}");
    let (mut pages, mut resources) = (0, 0);
    loop {
        let response = http
            .get(&url)
            .bearer_auth(&access)
            .header("accept", "application/fhir+json")
            .send()
            .await
            .map_err(|e| format!("search: {e}"))?;
        let status = response.status();
        let bundle: Value = response.json().await.map_err(|e| format!("search answer: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "search answered {status}: {}",
                bundle["issue"][0]["diagnostics"]
            ));
        }
        pages += 1;
        resources += bundle["entry"]
            .as_array()
            .map_or(0, |e| e.iter().filter(|x| x["search"]["mode"] == "match").count());
        let next = bundle["link"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["relation"] == "next"))
            .and_then(|x| x["url"].as_str())
            .map(str::to_owned);
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    Ok(Summary {
        scope,
        pages,
        resources,
    })
}

#[allow(dead_code)]
#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let search = args.next().unwrap_or_else(|| "Appointment?_count=100".into());
    let base = base.trim_end_matches('/');
    if search == "--token" {
        let http = reqwest::Client::new();
        match token(
            &http,
            base,
            DEMO_CLIENT_ID,
            DEMO_KEY_ID,
            DEMO_PRIVATE_KEY,
            "system/*.cruds",
        )
        .await
        {
            Ok(t) => println!("{}", t["access_token"].as_str().unwrap_or_default()),
            Err(e) => {
                eprintln!("backend client failed: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    match run(base, &search).await {
        Ok(s) => println!(
            "granted scope: {}\nread {} resources in {} pages of {search}",
            s.scope, s.resources, s.pages
        ),
        Err(e) => {
            eprintln!("backend client failed: {e}");
            std::process::exit(1);
        }
    }
}
