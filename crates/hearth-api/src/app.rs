//! The router and the middleware stack, declared in one place.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{get, post, put};
use hearth_app::campaigns::input::{MapInput, NpcInput, SessionInput, TimelineInput};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;
use crate::middleware::{CompressWhenAskedLayer, Edge, Guard};
use crate::pages;
use crate::routes::{
    admin, ai, auth, campaigns, email, fairness, games, health, jobs, leaderboards, life, wallet,
};
use crate::state::AppState;

/// Builds the application: every route behind the full middleware stack.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/v1/auth/register", post(auth::register))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/password", post(auth::change_password))
        .route(
            "/v1/auth/password-reset",
            post(auth::request_password_reset),
        )
        .route(
            "/v1/auth/password-reset/confirm",
            post(auth::confirm_password_reset),
        )
        .route("/v1/auth/totp/enroll", post(auth::enroll_totp))
        .route("/v1/auth/totp/confirm", post(auth::confirm_totp))
        .route("/v1/auth/totp/disable", post(auth::disable_totp))
        .route(
            "/v1/auth/totp/backup-codes",
            post(auth::regenerate_backup_codes),
        )
        // E-mail verification and the job queue's admin routes (issue #21).
        .route("/v1/auth/verify-email", post(email::verify_email))
        .route("/v1/admin/jobs", get(jobs::list))
        .route("/v1/admin/jobs/{id}/retry", post(jobs::retry))
        // Operators (issue #25).
        .route("/v1/admin/users", get(admin::search))
        .route("/v1/admin/users/{user_id}", get(admin::user))
        .route("/v1/admin/users/{user_id}/ban", post(admin::ban))
        .route("/v1/admin/users/{user_id}/unban", post(admin::unban))
        .route("/v1/admin/users/{user_id}/adjustments", post(admin::adjust))
        .route(
            "/v1/admin/users/{user_id}/transactions",
            get(admin::transactions),
        )
        .route("/v1/admin/users/{user_id}/rounds", get(admin::rounds))
        .route("/v1/admin/audit", get(admin::audit_log))
        .route("/v1/admin/stats", get(admin::stats))
        .route("/v1/me", get(auth::me))
        .route("/v1/wallet", get(wallet::wallet))
        .route("/v1/wallet/transactions", get(wallet::transactions))
        .route("/v1/wallet/history", get(wallet::history))
        .route("/v1/stats", get(wallet::stats))
        .route("/v1/games/slots/spin", post(games::spin_slots))
        .route("/v1/games/dice/roll", post(games::roll_dice))
        .route("/v1/games/roulette/spin", post(games::spin_roulette))
        .route("/v1/games/blackjack", post(games::start_blackjack))
        .route(
            "/v1/games/blackjack/{round_id}/action",
            post(games::act_blackjack),
        )
        .route("/v1/leaderboards/{board}", get(leaderboards::top))
        .route("/v1/fairness", get(fairness::current))
        .route("/v1/fairness/client-seed", put(fairness::set_client_seed))
        .route("/v1/fairness/rotate", post(fairness::rotate))
        .route("/v1/fairness/rounds/{round_id}", get(fairness::round))
        // --- campaigns (issue #22) ---
        .route(
            "/v1/campaigns",
            get(campaigns::list).post(campaigns::create),
        )
        .route(
            "/v1/campaigns/{id}",
            get(campaigns::get)
                .patch(campaigns::update)
                .delete(campaigns::delete),
        )
        .route(
            "/v1/campaigns/{id}/members",
            get(campaigns::members).post(campaigns::add_member),
        )
        .route(
            "/v1/campaigns/{id}/members/{user_id}",
            axum::routing::delete(campaigns::remove_member),
        )
        .merge(campaign_children::<SessionInput>("sessions"))
        .merge(campaign_children::<NpcInput>("npcs"))
        .merge(campaign_children::<MapInput>("maps"))
        .merge(campaign_children::<TimelineInput>("timeline"))
        // --- end campaigns ---
        .route("/v1/ws", get(crate::ws::upgrade))
        // AI chat (issue #20).
        .route("/v1/ai/conversations", post(ai::start))
        .route(
            "/v1/ai/conversations/{id}/messages",
            post(ai::send).get(ai::messages),
        )
        .route("/v1/ai/usage", get(ai::usage))
        // The browser pages (issue #25): static files built into the binary.
        .route("/play", get(pages::play))
        .route("/play/{file}", get(pages::play_file))
        .route("/admin", get(pages::admin))
        .route("/admin/{file}", get(pages::admin_file))
        .route("/v1/life", get(life::get))
        .route("/v1/life/history", get(life::history))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health/details", get(health::details))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .with_state(state.clone());
    with_stack(routes, state)
}

/// The list, create, read, update and delete routes of one kind of campaign child.
fn campaign_children<I: hearth_app::campaigns::input::ChildInput>(
    segment: &str,
) -> Router<AppState> {
    Router::new()
        .route(
            &format!("/v1/campaigns/{{id}}/{segment}"),
            get(campaigns::list_children::<I>).post(campaigns::create_child::<I>),
        )
        .route(
            &format!("/v1/campaigns/{{id}}/{segment}/{{child_id}}"),
            get(campaigns::get_child::<I>)
                .patch(campaigns::update_child::<I>)
                .delete(campaigns::delete_child::<I>),
        )
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
