//! The Hearth HTTP application: settings, router, handlers, errors and the tower stack.
//!
//! The binaries stay thin: they load [`Settings`], call [`telemetry`], [`build`] the app and
//! [`serve`] it until a shutdown signal. Tests do the same on port 0.
//!
//! # Layout
//! - [`settings`]: every section composed from the library crates, loaded from defaults, a file
//!   and `HEARTH__…` variables, checked for production.
//! - `app`: the router and the middleware stack, outermost first, in one function.
//! - [`error`]: [`ApiError`], the one problem+json format.
//! - [`extract`]: JSON, query and Bearer-token extractors whose rejections use that format.
//! - `routes`: handlers for auth, wallet, games, health and metrics.
//! - [`request_id`]: the `x-request-id` middleware.
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
pub mod request_id;
pub mod settings;

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
use tokio::net::TcpListener;

pub use app::{router, with_stack};
pub use error::ApiError;
pub use settings::Settings;
pub use state::AppState;

/// A built application: its router and the state behind it.
pub struct App {
    /// The router with the full stack.
    pub router: Router,
    /// The shared state (for draining and tests).
    pub state: AppState,
}

/// Installs logging for this process from settings.
///
/// # Errors
/// When the log level directive is invalid or a subscriber is already installed.
pub fn telemetry(settings: &Settings) -> Result<(), hearth_observability::logging::InitError> {
    hearth_observability::logging::init(&settings.log, settings.is_production())
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
    Ok(build_with(db, settings))
}

/// Builds the router around an existing database (already migrated).
pub fn build_with(db: Arc<dyn hearth_storage::Database>, settings: Settings) -> App {
    let metrics = hearth_observability::metrics::install();
    hearth_observability::metrics::record_build_info("hearth-gateway", env!("CARGO_PKG_VERSION"));
    let state = AppState::new(db, settings, metrics);
    App {
        router: router(state.clone()),
        state,
    }
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
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
