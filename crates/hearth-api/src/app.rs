//! The router and the middleware stack, declared in one place.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::middleware::{CompressWhenAskedLayer, Edge, Guard};
use crate::openapi;
use crate::pages;
use crate::routes::{
    admin, ai, auth, campaigns, email, fairness, games, health, jobs, leaderboards, life, wallet,
};
use crate::state::AppState;

/// Builds the application: every route behind the full middleware stack.
pub fn router(state: AppState) -> Router {
    let (routes, _document) = api_routes().split_for_parts();
    let routes = routes.fallback(not_found).with_state(state.clone());
    with_stack(routes, state)
}

/// Every route the gateway serves, each with its documentation: `routes!` registers a
/// handler at the method and path of its `#[utoipa::path]` annotation and adds that
/// annotation to the OpenAPI document ([`crate::openapi`]), so what is served and what is
/// documented come from one list. Handlers on the same path go in one `routes!`.
///
/// **Adding a route**: annotate the handler with `#[utoipa::path(method, path = "…", tag =
/// "…", …)]` (its request type derives `utoipa::ToSchema`), then add `.routes(routes!(…))`
/// here. Never axum's own `route` method: a route added that way is served but undocumented, and the
/// route-coverage test (`tests/it/openapi.rs`) fails.
pub(crate) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::request_password_reset))
        .routes(routes!(auth::confirm_password_reset))
        .routes(routes!(auth::enroll_totp))
        .routes(routes!(auth::confirm_totp))
        .routes(routes!(auth::disable_totp))
        .routes(routes!(auth::regenerate_backup_codes))
        // E-mail verification and the job queue's admin routes (issue #21).
        .routes(routes!(email::verify_email))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::retry))
        // Operators (issue #25).
        .routes(routes!(admin::search))
        .routes(routes!(admin::user))
        .routes(routes!(admin::ban))
        .routes(routes!(admin::unban))
        .routes(routes!(admin::adjust))
        .routes(routes!(admin::transactions))
        .routes(routes!(admin::rounds))
        .routes(routes!(admin::audit_log))
        .routes(routes!(admin::stats))
        .routes(routes!(auth::me))
        .routes(routes!(wallet::wallet))
        .routes(routes!(wallet::transactions))
        .routes(routes!(wallet::history))
        .routes(routes!(wallet::stats))
        .routes(routes!(games::spin_slots))
        .routes(routes!(games::roll_dice))
        .routes(routes!(games::spin_roulette))
        .routes(routes!(games::start_blackjack))
        .routes(routes!(games::act_blackjack))
        .routes(routes!(leaderboards::top))
        .routes(routes!(fairness::current))
        .routes(routes!(fairness::set_client_seed))
        .routes(routes!(fairness::rotate))
        .routes(routes!(fairness::round))
        // --- campaigns (issue #22) ---
        .routes(routes!(campaigns::list, campaigns::create))
        .routes(routes!(
            campaigns::get,
            campaigns::update,
            campaigns::delete
        ))
        .routes(routes!(campaigns::members, campaigns::add_member))
        .routes(routes!(campaigns::remove_member))
        .routes(routes!(
            campaigns::sessions::list,
            campaigns::sessions::create
        ))
        .routes(routes!(
            campaigns::sessions::get,
            campaigns::sessions::update,
            campaigns::sessions::delete
        ))
        .routes(routes!(campaigns::npcs::list, campaigns::npcs::create))
        .routes(routes!(
            campaigns::npcs::get,
            campaigns::npcs::update,
            campaigns::npcs::delete
        ))
        .routes(routes!(campaigns::maps::list, campaigns::maps::create))
        .routes(routes!(
            campaigns::maps::get,
            campaigns::maps::update,
            campaigns::maps::delete
        ))
        .routes(routes!(
            campaigns::timeline::list,
            campaigns::timeline::create
        ))
        .routes(routes!(
            campaigns::timeline::get,
            campaigns::timeline::update,
            campaigns::timeline::delete
        ))
        // --- end campaigns ---
        .routes(routes!(crate::ws::upgrade))
        // AI chat (issue #20).
        .routes(routes!(ai::start))
        .routes(routes!(ai::send, ai::messages))
        .routes(routes!(ai::usage))
        // The life simulation's read routes (issue #19).
        .routes(routes!(life::get))
        .routes(routes!(life::history))
        // The browser pages (issue #25): static files built into the binary.
        .routes(routes!(pages::play))
        .routes(routes!(pages::play_file))
        .routes(routes!(pages::admin))
        .routes(routes!(pages::admin_file))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::details))
        .routes(routes!(health::metrics))
        // The contract itself (issue #23).
        .routes(routes!(openapi::page::document))
        .routes(routes!(openapi::page::page))
        .routes(routes!(openapi::page::script))
        .routes(routes!(openapi::page::style))
}

/// Wraps routes in Hearth's middleware stack: request id, CORS, compression, problem+json
/// errors, tracing and metrics, security headers, timeout, body limits and panic recovery.
///
/// Services embedding Hearth use it to give their own routes the same behaviour.
pub fn with_stack(routes: Router, state: AppState) -> Router {
    let body_limit = state.settings.server.body_limit_bytes;

    // Outermost first. Each layer sees what the ones below it produce.
    let stack = ServiceBuilder::new()
        // The request id, the span, the access log, the HTTP metrics, security headers and the
        // problem+json guarantee: these see every answer, including the ones made below.
        .layer(Edge::layer(state.clone()))
        // CORS headers belong on every answer, errors and preflights included.
        .option_layer(cors(&state.settings.server.cors_origins))
        .layer(CompressWhenAskedLayer)
        // Rate limits (a 429 still gets CORS and security headers), bodies declared too large
        // (413) and ones that turn out so while read, the request timeout (503) and panic
        // recovery (500 with the request id), before any body is read.
        .layer(Guard::layer(state.clone()))
        // Extractors stop reading at the same limit.
        .layer(DefaultBodyLimit::max(body_limit));

    routes.layer(stack)
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    // `*` is refused in production by the settings check; here it can only be development.
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("x-csrf-token"),
                HeaderName::from_static("x-hearth-totp"),
                HeaderName::from_static("traceparent"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("idempotent-replayed"),
                HeaderName::from_static("traceparent"),
                header::RETRY_AFTER,
                HeaderName::from_static("x-token-refresh-suggested"),
            ])
            .max_age(Duration::from_secs(3600)),
    )
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no resource at this path")
}
