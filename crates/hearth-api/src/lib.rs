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
//! - `active_users`: the users seen in the last 5 minutes (`AuthUser`, sockets), counted
//!   into `hearth_active_users` when `/metrics` is scraped.
//! - `routes`: handlers for auth, wallet, games, health and metrics.
//! - `pages`: `/play` (the player demo) and `/admin` (the operators' console), static files
//!   compiled in from `assets/`, with their content security policy and `ETag`s.
//! - `server`: [`serve`], the accept loop over hyper's HTTP/1 driver, with the header read
//!   and idle timeouts, the header cap and the graceful shutdown.
//! - [`openapi`]: the OpenAPI 3.1 document, generated from the handlers' annotations, served
//!   at `/openapi.json` and rendered at `/docs`; `app::api_routes` builds the router and the
//!   document from one list.
//! - [`request_id`]: the `x-request-id` rules, the [`request_id::RequestId`] extension handlers
//!   can read, and [`request_id::current`].
//! - [`ws`]: `GET /v1/ws`, the WebSocket: authentication, typed messages, close codes, the
//!   per-socket send queue, and [`ws::WsSettings`].
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
pub mod openapi;
pub mod request_id;
pub mod telemetry;

mod active_users;
mod app;
mod middleware;
mod pages;
mod routes;
mod server;
mod state;
pub mod ws;

#[cfg(test)]
mod fuzz;

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use hearth_app::Hearth;

pub use app::{router, with_stack};
pub use error::ApiError;
pub use hearth_app::settings;
pub use hearth_app::settings::Settings;
pub use server::serve;
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
    let ws = ws::WsSettings::from(&hearth.settings.realtime);
    with_hearth_ws(hearth, ws)
}

/// Builds the router around services already wired, with the WebSocket's settings.
pub fn with_hearth_ws(hearth: Hearth, ws: ws::WsSettings) -> App {
    crate::routes::auth::describe_metrics();
    let state = AppState::with_ws(hearth, ws);
    App {
        router: router(state.clone()),
        state,
    }
}
