//! `hearth-gateway`: serves the Hearth HTTP API.
//!
//! `hearth-gateway` (or `hearth-gateway serve`) runs the server; `hearth-gateway migrate`
//! applies database migrations and exits; `hearth-gateway openapi` prints the OpenAPI document. Settings come from defaults, `--config FILE` and
//! `HEARTH__…` variables (see `.env.example`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hearth_app::{Hearth, Settings};

/// glibc's allocator contends when tokio's worker threads free each other's memory; mimalloc
/// does not (docs/benchmarks.md, "Middleware stack overhead").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod verify;

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
    /// Rebuild the leaderboards (Redis when configured) from the database and exit.
    RebuildLeaderboards,
    /// Give an account a role (`admin` or `player`) and exit. Takes effect at the account's
    /// next login; admin routes check the stored role on every request.
    SetRole {
        /// The username.
        username: String,
        /// `admin` or `player`.
        role: hearth_auth::Role,
    },
    /// Re-derive a round from `GET /v1/fairness/rounds/{id}` output (a file, or - for stdin),
    /// offline, once its server seed is revealed.
    VerifyRound {
        /// The JSON file, or `-` for standard input.
        file: PathBuf,
    },
    /// Print the OpenAPI 3.1 document (the one `GET /openapi.json` serves) and exit.
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Verification needs no settings, database or logging: it is a pure computation.
    if let Some(Command::VerifyRound { file }) = &cli.command {
        return verify_round(file);
    }
    // The document is built from the code alone: no settings, database or logging.
    if let Some(Command::Openapi) = &cli.command {
        return print_openapi();
    }
    let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
    // Held until exit: dropping it flushes the spans still queued for export.
    let _telemetry =
        hearth_app::telemetry(&settings, "hearth-gateway").context("initialising telemetry")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::RebuildLeaderboards => rebuild_leaderboards(settings).await,
        Command::SetRole { username, role } => set_role(settings, &username, role).await,
        Command::VerifyRound { .. } | Command::Openapi => {
            unreachable!("handled before loading settings")
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Before anything listens: a SIGTERM from here on drains the server (at once, if it comes
    // during start-up) instead of killing the process.
    let shutdown = hearth_app::shutdown_signal();
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
    if let Some(admin) = app.state.settings.telemetry.metrics_addr {
        let listener = tokio::net::TcpListener::bind(admin)
            .await
            .with_context(|| format!("binding the metrics port {admin}"))?;
        let admin = listener
            .local_addr()
            .context("reading the metrics address")?;
        tracing::info!(%admin, "metrics listening on the admin port");
        let state = app.state.clone();
        // The admin port closes with the process; scrapes are read-only.
        tokio::spawn(async move {
            let serve = hearth_api::telemetry::serve_admin(listener, state, std::future::pending());
            if let Err(error) = serve.await {
                tracing::error!(%error, "metrics port failed");
            }
        });
    }
    hearth_api::serve(listener, app, shutdown)
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

#[allow(clippy::print_stdout)]
fn print_openapi() -> anyhow::Result<()> {
    let json = hearth_api::openapi::document()
        .to_pretty_json()
        .context("serialising the OpenAPI document")?;
    println!("{json}");
    Ok(())
}

#[allow(clippy::print_stdout)]
fn verify_round(file: &std::path::Path) -> anyhow::Result<()> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let record: serde_json::Value = serde_json::from_str(&text).context("the input is not JSON")?;
    let verified = verify::verify(&record).context("the round does not verify")?;
    println!(
        "verified {} round {}: {}",
        verified.game, record["round_id"], verified.summary
    );
    Ok(())
}

async fn set_role(
    settings: Settings,
    username: &str,
    role: hearth_auth::Role,
) -> anyhow::Result<()> {
    let db = hearth_storage::connect(&settings.database)
        .await
        .context("connecting to the database")?;
    db.migrate().await.context("applying migrations")?;
    let user = db
        .set_role(username, role.as_str())
        .await
        .with_context(|| format!("setting the role of {username:?}"))?;
    tracing::info!(user_id = %user.id, username = %user.username, role = %role, "role set");
    db.close().await;
    Ok(())
}

async fn rebuild_leaderboards(settings: Settings) -> anyhow::Result<()> {
    let hearth = Hearth::open(settings, "hearth-gateway")
        .await
        .context("connecting")?;
    if hearth.leaderboards.backend() == "in_process" {
        tracing::warn!(
            "no Redis configured: in-process leaderboards live in each gateway, which rebuilds them at start"
        );
    } else {
        let entries = hearth.rebuild_leaderboards().await?;
        tracing::info!(
            entries,
            backend = hearth.leaderboards.backend(),
            "leaderboards rebuilt"
        );
    }
    hearth.close().await;
    Ok(())
}
