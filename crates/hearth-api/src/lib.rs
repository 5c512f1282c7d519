//! The Hearth HTTP application: settings, router, handlers, errors and the tower stack.
//!
//! The HTTP transport over [`hearth_app`]: the gateway loads [`Settings`], starts
//! [`hearth_app::telemetry()`], [`build`]s the app and [`serve`]s it until
//! [`hearth_app::shutdown_signal`]. Tests do the same on port 0. Use-cases, wiring and settings
//! live in `hearth-app`; this crate maps HTTP to them and back.
//!
//! # Layout
//! - [`settings`]: re-exported from `hearth-app`, where every section is composed.
//! - `app`: the router and the middleware stack, outermost first, in one function.
//! - [`error`]: [`ApiError`], the one problem+json format.
//! - [`extract`]: body and query extractors (`extract::body`) and the session extractors
//!   `AuthUser` and `AdminUser` (`extract::session`), whose rejections use that format.
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
//! hearth_api::serve(listener, app, hearth_app::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! # What it does not do
//! No SQL (that is `hearth-storage`), no game rules (`hearth-domain`), no wiring of stores
//! (`hearth-app`), no subscriber set-up beyond calling `hearth-observability`.

pub mod error;
pub mod extract;
pub mod idempotency;
pub mod limits;
pub mod request_id;
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
use hearth_app::Hearth;
use tokio::net::TcpListener;

pub use app::{router, with_stack};
pub use error::ApiError;
pub use hearth_app::settings;
pub use hearth_app::settings::Settings;
pub use state::AppState;

/// A built application: its router and the state behind it.
pub struct App {
    /// The router with the full stack.
    pub router: Router,
    /// The shared state (for draining and tests).
    pub state: AppState,
}

/// Connects to the database, applies migrations, wires the services ([`Hearth::open`]) and
/// builds the router. In-process leaderboards start from the database, not empty.
///
/// # Errors
/// When the database cannot be reached, migrations fail, or a leaderboard rebuild fails.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let hearth = Hearth::open(settings, "hearth-gateway").await?;
    if hearth.leaderboards.backend() == "in_process" {
        // Embedded boards live in this process: start them from the database, not empty.
        let entries = hearth
            .rebuild_leaderboards()
            .await
            .context("building leaderboards")?;
        tracing::info!(entries, "leaderboards rebuilt from the database");
    }
    Ok(with_hearth(hearth))
}

/// Builds the router around an existing database (already migrated): the services are wired
/// by [`Hearth::wire`], with Redis when `redis.url` is set.
///
/// # Errors
/// When the Redis URL is malformed.
pub async fn build_with(
    db: Arc<dyn hearth_storage::Database>,
    settings: Settings,
) -> anyhow::Result<App> {
    let hearth = Hearth::wire(db, settings, "hearth-gateway").await?;
    Ok(with_hearth(hearth))
}

/// Builds the router around services already wired.
pub fn with_hearth(hearth: Hearth) -> App {
    crate::routes::auth::describe_metrics();
    let state = AppState::new(hearth);
    App {
        router: router(state.clone()),
        state,
    }
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
    app.state.hearth.close().await;
    tracing::info!("shut down");
    result
}
