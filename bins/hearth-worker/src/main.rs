//! `hearth-worker`: runs Hearth's background jobs from the durable queue until SIGTERM/SIGINT
//! (`hearth-worker` or `hearth-worker run`), or drains what is due and exits
//! (`hearth-worker run-once`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// Run jobs until SIGTERM/SIGINT (the default).
    Run,
    /// Enqueue due schedule slots, run every due job, print a summary and exit: for tests,
    /// cron and operators. Exits 1 when an attempt failed.
    RunOnce,
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
    let mailer = hearth_app::mail::from_settings(&hearth.settings.email)
        .context("configuring e-mail delivery")?;
    let runner = hearth_app::jobs::runner(&hearth, mailer).context("reading the job schedules")?;

    if cli.command == Some(Command::RunOnce) {
        let report = runner.run_once().await.context("running due jobs")?;
        hearth.close().await;
        let failed =
            report.count(hearth_jobs::Outcome::Retrying) + report.count(hearth_jobs::Outcome::Dead);
        print_report(&report);
        if failed > 0 {
            anyhow::bail!("{failed} job attempt(s) failed; see the log, and GET /v1/admin/jobs");
        }
        return Ok(());
    }

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

    tracing::info!(
        ?runner,
        backend = hearth.db.backend(),
        "hearth-worker started"
    );
    let signal = async move {
        requested.await;
        tracing::info!("shutdown requested");
        let _ = stop.send(true);
    };
    runner.run(signal).await;
    hearth.close().await;
    Ok(())
}

/// `run-once`'s summary, on standard output for scripts and cron mail.
#[allow(clippy::print_stdout, reason = "the command's answer is this line")]
fn print_report(report: &hearth_jobs::RunReport) {
    println!(
        "slots enqueued: {}, attempts: {}, completed: {}, retrying: {}, dead: {}",
        report.slots,
        report.attempts(),
        report.count(hearth_jobs::Outcome::Completed),
        report.count(hearth_jobs::Outcome::Retrying),
        report.count(hearth_jobs::Outcome::Dead),
    );
}
