//! `hearth-worker`: runs Hearth's background jobs until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use hearth_api::Settings;
use hearth_storage::leaderboard::{Leaderboards, RedisLeaderboards};
use std::sync::Arc;

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
        hearth_api::telemetry(&settings, "hearth-worker").context("initialising telemetry")?;
    let metrics = hearth_observability::metrics::install();
    hearth_observability::metrics::record_build_info("hearth-worker", env!("CARGO_PKG_VERSION"));

    let db = hearth_storage::connect(&settings.database)
        .await
        .context("connecting to the database")?;
    db.migrate().await.context("applying database migrations")?;

    let shutdown = tokio::sync::watch::channel(false);
    if let Some(addr) = settings.worker.admin_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the admin port {addr}"))?;
        tracing::info!(%addr, "worker admin endpoints listening");
        let mut stop = shutdown.1.clone();
        tokio::spawn(async move {
            let serve = axum::serve(listener, hearth_worker::admin_router(metrics))
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                });
            if let Err(error) = serve.await {
                tracing::error!(%error, "admin endpoints failed");
            }
        });
    }

    let schedule = hearth_worker::Schedule {
        reconcile_every: Duration::from_secs(settings.worker.reconcile_interval_secs.max(1)),
        purge_every: Duration::from_secs(settings.worker.purge_interval_secs.max(1)),
        idempotency_retention: Duration::from_secs(settings.wallet.idempotency_retention_secs),
        leaderboards: match &settings.redis.url {
            Some(url) => {
                use secrecy::ExposeSecret as _;
                let boards =
                    RedisLeaderboards::new(url.expose_secret(), settings.redis.key_prefix.clone())
                        .context("configuring Redis leaderboards")?;
                let every = Duration::from_secs(settings.worker.leaderboard_rebuild_secs.max(1));
                Some((Arc::new(boards) as Arc<dyn Leaderboards>, every))
            }
            None => None,
        },
    };
    tracing::info!(?schedule, backend = db.backend(), "hearth-worker started");
    // Installed now, so a signal during start-up is not lost.
    let requested = hearth_api::shutdown_signal();
    let signal = async move {
        requested.await;
        tracing::info!("shutdown requested");
        let _ = shutdown.0.send(true);
    };
    hearth_worker::run(db.clone(), schedule, signal).await;
    db.close().await;
    Ok(())
}
