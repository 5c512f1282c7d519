//! `hearth-worker`: runs Hearth's background jobs until SIGTERM/SIGINT.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use hearth_app::jobs::{self, Schedule};
use hearth_app::{Hearth, Settings};

/// glibc's allocator contends when tokio's worker threads free each other's memory; mimalloc
/// does not (docs/benchmarks.md, "Middleware stack overhead").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "The Hearth worker: background jobs such as ledger reconciliation"
)]
struct Cli {
    /// A TOML settings file, read before HEARTH__… environment variables.
    #[arg(long, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
    // Held until exit: dropping it flushes the spans still queued for export.
    let _telemetry =
        hearth_app::telemetry(&settings, "hearth-worker").context("initialising telemetry")?;
    // Installed now, so a signal during start-up is not lost.
    let requested = hearth_app::shutdown_signal();
    let hearth = Hearth::open(settings, "hearth-worker").await?;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    if let Some(addr) = hearth.settings.worker.admin_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the admin port {addr}"))?;
        tracing::info!(%addr, "worker admin endpoints listening");
        let mut stopped = stopped.clone();
        let metrics = hearth.metrics.clone();
        tokio::spawn(async move {
            let until = async move {
                let _ = stopped.changed().await;
            };
            if let Err(error) = hearth_worker::serve_admin(listener, metrics, until).await {
                tracing::error!(%error, "admin endpoints failed");
            }
        });
    }

    let schedule = Schedule::from_settings(&hearth);
    tracing::info!(
        ?schedule,
        backend = hearth.db.backend(),
        "hearth-worker started"
    );
    let signal = async move {
        requested.await;
        tracing::info!("shutdown requested");
        let _ = stop.send(true);
    };
    jobs::run(hearth.db.clone(), schedule, signal).await;
    hearth.close().await;
    Ok(())
}
