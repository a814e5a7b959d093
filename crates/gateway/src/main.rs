//! `fhir-gateway`: read the configuration, build, run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use gateway::config::Settings;
use gateway::run;

/// mimalloc rather than the system allocator: measured with `bench` (see the README), the gateway
/// allocates and frees small buffers on every request, from several threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fhir-gateway",
    version,
    about = "A FHIR R4 facade over DrChrono and other vendor APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Demo mode: the vendor simulators in-process and the gateway in front of them (the default).
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Serve real vendors as configured.
    Serve {
        /// The TOML configuration file (every setting can be overridden by FHIR_GATEWAY__SECTION__KEY).
        #[arg(long)]
        config: PathBuf,
        /// Address to listen on (overrides server.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve without any authentication. Never do this with real patient data.
        #[arg(long)]
        insecure_no_auth: bool,
    },
    /// Print the OpenAPI document of the demo configuration.
    Openapi,
    /// Hash a password or client secret for `[[auth.users]]`/`[[auth.clients]]` (argon2id; reads it
    /// from standard input so it stays out of the shell history).
    HashPassword,
    /// The token signing keys kept in the store.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new signing key the current one for every replica (within a second); the previous key
    /// keeps verifying the tokens it signed until they expire.
    Rotate {
        /// The gateway's TOML configuration file (its `[store]` and `[auth]` sections are read).
        #[arg(long)]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,hyper=warn".into()),
        )
        .init();
    match Cli::parse().command.unwrap_or(Command::Demo {
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
    }) {
        Command::Demo { listen } => demo(listen).await,
        Command::Serve {
            config,
            listen,
            insecure_no_auth,
        } => serve(config, listen, insecure_no_auth).await,
        Command::Keys {
            command: KeysCommand::Rotate { config },
        } => rotate_keys(config).await,
        Command::HashPassword => {
            let mut secret = String::new();
            std::io::stdin().read_line(&mut secret)?;
            let secret = secret.trim_end_matches(['\n', '\r']);
            if secret.is_empty() {
                bail!("no password on standard input");
            }
            println!("{}", smart_auth::hash_password(secret));
            Ok(())
        }
        Command::Openapi => {
            let sources = run::reference_sources().map_err(anyhow::Error::msg)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&gateway::openapi::document(&sources))?
            );
            Ok(())
        }
    }
}

/// A build without the `demo` feature has no simulators: it says how to get them.
#[cfg(not(feature = "demo"))]
async fn demo(_listen: SocketAddr) -> anyhow::Result<()> {
    bail!(
        "this fhir-gateway was built without the demo (cargo feature `demo`, on by default): \
         build it with the default features (`cargo run --release`) to run the simulated practice, \
         or serve real vendors with `fhir-gateway serve --config FILE`"
    )
}

#[cfg(feature = "demo")]
async fn demo(listen: SocketAddr) -> anyhow::Result<()> {
    use gateway::demo;
    let demo = demo::start_demo(listen, demo::demo_sim_config())
        .await
        .map_err(anyhow::Error::msg)?;
    let base = &demo.gateway.base_url;
    let noa = demo.noa.as_ref().map(|n| n.base_url()).unwrap_or_default();
    println!(
        "FHIR facade gateway — demo mode (simulated practice: DrChrono at {}, Zoom at {}, Noa at {noa})",
        demo.sim.base_url(),
        demo.zoom.base_url()
    );
    println!("  FHIR base URL: {base}/fhir");
    println!("  API docs:      {base}/docs/");
    println!(
        "  SMART:         {base}/.well-known/smart-configuration   (every /fhir route but /fhir/metadata needs a token)"
    );
    println!("    demo-backend  client_secret_basic, secret `demo-secret`, system/*.rs (client_credentials)");
    println!(
        "    demo-jwt      private_key_jwt, key examples/keys/demo-jwt.private.pem, system/*.cruds:  cargo run -p gateway --example backend-client -- {base}"
    );
    println!(
        "    demo-app      public + PKCE, redirect http://localhost|127.0.0.1:<any port>/callback, patient/ and user/ scopes"
    );
    println!(
        "    demo-auditor  client_secret_basic, secret `demo-secret`, system/AuditEvent.rs (the audit trail: /fhir/AuditEvent)"
    );
    println!("    users         dr.demo / demo-password (practitioner), patient.demo / demo-password (patient)");
    match demo_token(base).await {
        Ok(token) => {
            println!("  Ready token (demo-backend, system/*.rs, valid 1 hour):");
            println!("    export TOKEN={token}");
        }
        Err(e) => println!("  (no ready token: {e})"),
    }
    println!("  Try:           curl -H \"Authorization: Bearer $TOKEN\" '{base}/fhir/Patient?family=Nguyen'");
    println!(
        "                 curl -H \"Authorization: Bearer $TOKEN\" '{base}/fhir/Appointment?_count=5&_sort=-date'"
    );
    println!(
        "  AI scribe:     export WRITE_TOKEN=$(cargo run -q -p gateway --example backend-client -- {base} --token)   (demo-jwt, system/*.cruds)"
    );
    println!(
        "                 curl -X POST -H \"Authorization: Bearer $WRITE_TOKEN\" '{base}/fhir/Appointment/drchrono-<id>/$start-scribe'   (then watch Encounter/noa-<session>)"
    );
    println!(
        "                 curl -X POST '{noa}/_sim/sessions/<session>/approve' -d '{{\"empty\": false}}'   (the doctor approves in Noa's widget)"
    );
    println!(
        "  Webhooks:      Zoom delivers signed events to {base}/webhooks/zoom; Noa calls a secret URL under {base}/webhooks/noa/"
    );
    println!("Press Ctrl-C to stop.");
    tokio::select! {
        _ = demo.gateway.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// A client-credentials token for `demo-backend`, from the demo's own token endpoint.
#[cfg(feature = "demo")]
async fn demo_token(base: &str) -> anyhow::Result<String> {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/auth/token"))
        .basic_auth("demo-backend", Some("demo-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "system/*.rs")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("the token endpoint answered without an access_token")
}

async fn rotate_keys(config: PathBuf) -> anyhow::Result<()> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let settings = Settings::load(&config, &env).with_context(|| format!("configuration {}", config.display()))?;
    match &settings.auth {
        None => {
            bail!("setting `auth.mode`: the embedded authorization server is not configured; it has no keys to rotate")
        }
        Some(auth) if auth.signing_key_pem.is_some() => bail!(
            "setting `auth.signing_key`: the signing key is configured, not kept in the store; \
             replace it in the configuration (or leave it out to keep rotated keys in the store)"
        ),
        Some(_) => {}
    }
    if settings.store.sealing_key.is_none() {
        return Err(gateway::config::store_key_required().into());
    }
    let store = store::Store::open(&settings.store).await?;
    let kid = smart_auth::SmartAuth::rotate_stored_key(&store)
        .await
        .context("rotating the signing key")?;
    store.close().await;
    println!("{kid}");
    Ok(())
}

async fn serve(config: PathBuf, listen: Option<SocketAddr>, insecure_no_auth: bool) -> anyhow::Result<()> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let settings = Settings::load(&config, &env).with_context(|| format!("configuration {}", config.display()))?;
    if !settings.auth_configured && !insecure_no_auth {
        bail!(
            "setting `auth.mode`: no authentication is configured; refusing to serve patient data openly \
             (pass --insecure-no-auth to do it anyway, e.g. behind an authenticating proxy)"
        );
    }
    if settings.paging_secret.is_none() {
        tracing::warn!(
            "paging.secret is not set: paging links are signed with a random key and break across restarts and replicas"
        );
    }
    if settings.store.sealing_key.is_none() {
        return Err(gateway::config::store_key_required().into());
    }
    let store = store::Store::open(&settings.store).await?;
    let configured = run::adapters_from_settings(&settings, Some(&store)).map_err(anyhow::Error::msg)?;
    let mut options = run::GatewayOptions::from_settings(&settings);
    options.store = Some(store);
    options.resolver = Some(configured.resolver);
    options.public_url = settings.public_url.clone();
    let gateway = run::spawn(listen.unwrap_or(settings.listen), configured.adapters, options).await?;
    println!("FHIR base URL: {}/fhir", gateway.base_url);
    tokio::select! {
        _ = gateway.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
