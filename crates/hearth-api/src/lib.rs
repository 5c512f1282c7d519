//! The Hearth HTTP application: settings, router, handlers, errors and the tower stack.
//!
//! The binaries stay thin: they load [`Settings`], call [`telemetry()`], [`build`] the app and
//! [`serve`] it until a shutdown signal. Tests do the same on port 0.
//!
//! # Layout
//! - [`settings`]: every section composed from the library crates, loaded from defaults, a file
//!   and `HEARTH__…` variables, checked for production.
//! - `app`: the router and the middleware stack, outermost first, in one function.
//! - [`error`]: [`ApiError`], the one problem+json format.
//! - [`extract`]: JSON, query and Bearer-token extractors whose rejections use that format.
//! - `routes`: handlers for auth, wallet, games, health and metrics.
//! - [`request_id`]: the `x-request-id` rules, the [`request_id::RequestId`] extension handlers
//!   can read, and [`request_id::current`].
//! - [`mod@telemetry`]: W3C trace context on requests and responses; the admin listener for
//!   `/metrics`.
//!
//! # Example
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let settings = hearth_api::Settings::default();
//! let app = hearth_api::build(settings).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! hearth_api::serve(listener, app, hearth_api::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! # What it does not do
//! No SQL (that is `hearth-storage`), no game rules (`hearth-domain`), no subscriber set-up
//! beyond calling `hearth-observability`.

pub mod error;
pub mod extract;
pub mod idempotency;
pub mod limits;
pub mod request_id;
pub mod settings;
pub mod telemetry;

mod app;
mod middleware;
mod routes;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use hearth_storage::leaderboard::{InProcessLeaderboards, Leaderboards, RedisLeaderboards};
use tokio::net::TcpListener;

pub use app::{router, with_stack};
pub use error::ApiError;
pub use settings::Settings;
pub use state::{AppState, SessionStores};

/// A built application: its router and the state behind it.
pub struct App {
    /// The router with the full stack.
    pub router: Router,
    /// The shared state (for draining and tests).
    pub state: AppState,
}

/// Installs logging and tracing for this process from settings; `service` names it in
/// exported spans unless `telemetry.service_name` is set. Keep the guard until exit: dropping
/// it flushes the spans still queued.
///
/// # Errors
/// When the log level directive is invalid, the OTLP exporter cannot be built, or a subscriber
/// is already installed.
pub fn telemetry(
    settings: &Settings,
    service: &'static str,
) -> Result<hearth_observability::Guard, hearth_observability::InitError> {
    hearth_observability::init(
        &settings.log,
        &settings.telemetry,
        hearth_observability::Service {
            name: service,
            version: env!("CARGO_PKG_VERSION"),
            production: settings.is_production(),
        },
    )
}

/// Connects to the database, applies migrations, installs the metrics registry and builds the
/// router.
///
/// # Errors
/// When the database cannot be reached or migrations fail.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let db = hearth_storage::connect(&settings.database)
        .await
        .with_context(|| {
            format!(
                "connecting to the {} database",
                scheme(&settings.database.url)
            )
        })?;
    db.migrate().await.context("applying database migrations")?;
    let app = build_with(db, settings).await?;
    if app.state.leaderboards.backend() == "in_process" {
        // Embedded boards live in this process: start them from the database, not empty.
        let entries = rebuild_leaderboards(&app.state)
            .await
            .context("building leaderboards")?;
        tracing::info!(entries, "leaderboards rebuilt from the database");
    }
    Ok(app)
}

/// Builds the router around an existing database (already migrated): the limiter and the
/// leaderboards use Redis when `redis.url` is set, in-process state otherwise.
///
/// # Errors
/// When the Redis URL is malformed.
pub async fn build_with(
    db: Arc<dyn hearth_storage::Database>,
    settings: Settings,
) -> anyhow::Result<App> {
    use secrecy::ExposeSecret as _;
    let metrics = hearth_observability::metrics::install();
    hearth_observability::process::mark_start();
    hearth_limits::metric_names::describe();
    hearth_observability::metrics::record_build_info("hearth-gateway", env!("CARGO_PKG_VERSION"));
    crate::routes::auth::describe_metrics();
    let (limiter, leaderboards, sessions): (_, Arc<dyn Leaderboards>, _) = match &settings.redis.url
    {
        Some(url) => {
            let url = url.expose_secret().to_owned();
            let prefix = &settings.redis.key_prefix;
            let limiter = hearth_limits::Limiter::builder()
                .redis(url.as_str(), settings.limits.redis_down)
                .key_prefix(format!("{prefix}rl:"))
                .build()
                .await
                .context("configuring the Redis rate limiter")?;
            let boards = RedisLeaderboards::new(url.as_str(), prefix.clone())
                .context("configuring Redis leaderboards")?;
            let sessions = redis_sessions(&url, &format!("{prefix}auth:"))
                .context("configuring Redis session stores")?;
            (limiter, Arc::new(boards), sessions)
        }
        None => {
            if settings.is_production() {
                tracing::warn!(
                    "redis.url is unset: revocations and login lockouts live in this process, \
                     so replicas do not share them; run one replica or set HEARTH__REDIS__URL"
                );
            }
            (
                hearth_limits::Limiter::in_process(),
                Arc::new(InProcessLeaderboards::new()),
                SessionStores::in_process(),
            )
        }
    };
    let state = AppState::new(db, settings, metrics, limiter, leaderboards, sessions);
    Ok(App {
        router: router(state.clone()),
        state,
    })
}

/// Revocations and lockouts in Redis, on one lazily connecting, self-reconnecting connection.
fn redis_sessions(url: &str, prefix: &str) -> redis::RedisResult<SessionStores> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
        .set_response_timeout(Some(std::time::Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(std::time::Duration::from_millis(200));
    let conn =
        redis::aio::ConnectionManager::new_lazy_with_config(redis::Client::open(url)?, config)?;
    Ok(SessionStores {
        revocations: Arc::new(hearth_auth::RedisRevocations::new(conn.clone(), prefix)),
        lockouts: Arc::new(hearth_auth::RedisLockouts::new(conn, prefix)),
    })
}

/// How many entries per board a rebuild keeps: well above what is served (100), so players
/// just below the top keep their running totals.
pub const LEADERBOARD_REBUILD_LIMIT: u32 = 1_000;

/// Rebuilds the leaderboards from the database; returns the entries written.
///
/// # Errors
/// When the database or Redis fails.
pub async fn rebuild_leaderboards(state: &AppState) -> anyhow::Result<usize> {
    let source = state.db.as_leaderboard_source();
    let now = time::OffsetDateTime::now_utc();
    let boards = state.leaderboards.as_ref();
    Ok(
        hearth_storage::leaderboard::rebuild(source, boards, now, LEADERBOARD_REBUILD_LIMIT)
            .await?,
    )
}

fn scheme(url: &str) -> &str {
    url.split(':').next().unwrap_or("")
}

/// Serves until `shutdown` completes, then drains gracefully.
///
/// On shutdown: readiness turns 503 at once; after `server.drain_delay_secs` the listener
/// closes; in-flight requests then have `server.shutdown_timeout_secs` to finish.
///
/// # Errors
/// When accepting connections fails.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = app.state.clone();
    let drain_delay = Duration::from_secs(state.settings.server.drain_delay_secs);
    let grace = Duration::from_secs(state.settings.server.shutdown_timeout_secs);
    let closing = Arc::new(tokio::sync::Notify::new());
    let signal = {
        let closing = closing.clone();
        async move {
            shutdown.await;
            tracing::info!(
                drain_delay_secs = drain_delay.as_secs(),
                "shutdown requested; draining"
            );
            state.begin_drain();
            tokio::time::sleep(drain_delay).await;
            tracing::info!("listener closed; finishing in-flight requests");
            closing.notify_one();
        }
    };
    let service = app
        .router
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(signal);
    let result = tokio::select! {
        result = server.into_future() => result,
        () = async { closing.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests outlived the grace period");
            Ok(())
        }
    };
    app.state.db.close().await;
    tracing::info!("shut down");
    result
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// server polls its shutdown future only once it runs, and a SIGTERM that arrived in between
/// (an orchestrator stopping an instance that has just turned ready) would otherwise take the
/// default action and kill the process without draining. Call it from within the runtime,
/// before serving.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |installed: std::io::Result<tokio::signal::unix::Signal>,
                        name: &'static str| async move {
                match installed {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(error) => {
                        tracing::error!(%error, signal = name, "cannot listen for the signal");
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                () = wait(interrupt, "SIGINT") => {},
                () = wait(terminate, "SIGTERM") => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}
