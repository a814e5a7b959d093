//! `fhir-gateway`: read the configuration, build, run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use gateway::config::Settings;
use gateway::run;

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

async fn demo(listen: SocketAddr) -> anyhow::Result<()> {
    let demo = run::start_demo(listen, run::demo_sim_config())
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
    println!("  Try:           curl '{base}/fhir/Patient?family=Nguyen'");
    println!(
        "                 curl '{base}/fhir/Appointment?_count=5&_sort=-date'   (DrChrono visits and Zoom virtual visits)"
    );
    println!(
        "  AI scribe:     curl -X POST '{base}/fhir/Appointment/drchrono-<id>/$start-scribe'   (then watch Encounter/noa-<session>)"
    );
    println!(
        "                 curl -X POST '{noa}/_sim/sessions/<session>/approve' -d '{{\"empty\": false}}'   (the doctor approves in Noa's widget)"
    );
    println!(
        "  Webhooks:      Zoom delivers signed events to {base}/webhooks/zoom; Noa calls a secret URL under {base}/webhooks/noa/"
    );
    println!("  Auth:          none (demo mode only; SMART on FHIR arrives with the auth layer)");
    println!("Press Ctrl-C to stop.");
    tokio::select! {
        _ = demo.gateway.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
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
    let configured = run::adapters_from_settings(&settings).map_err(anyhow::Error::msg)?;
    let mut options = run::GatewayOptions::from_settings(&settings);
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
