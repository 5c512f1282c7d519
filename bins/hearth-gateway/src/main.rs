//! `hearth-gateway`: serves the Hearth HTTP API.
//!
//! `hearth-gateway` (or `hearth-gateway serve`) runs the server; `hearth-gateway migrate`
//! applies database migrations and exits. Settings come from defaults, `--config FILE` and
//! `HEARTH__…` variables (see `.env.example`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hearth_api::Settings;

#[derive(Parser)]
#[command(version, about = "The Hearth gateway: HTTP API for games and play")]
struct Cli {
    /// A TOML settings file, read before HEARTH__… environment variables.
    #[arg(long, global = true, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
    hearth_api::telemetry(&settings).context("initialising logging")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let addr = settings.server.addr;
    let environment = settings.environment;
    let app = hearth_api::build(settings)
        .await
        .context("building the application")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    // The bound address, so port 0 reports the port actually chosen.
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        %addr,
        environment = ?environment,
        database = app.state.db.backend(),
        version = env!("CARGO_PKG_VERSION"),
        "hearth-gateway listening"
    );
    hearth_api::serve(listener, app, hearth_api::shutdown_signal())
        .await
        .context("serving")
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let db = hearth_storage::connect(&settings.database)
        .await
        .context("connecting to the database")?;
    let pending = db
        .pending_migrations()
        .await
        .context("reading migration state")?;
    db.migrate().await.context("applying migrations")?;
    tracing::info!(applied = ?pending, backend = db.backend(), "migrations up to date");
    db.close().await;
    Ok(())
}
