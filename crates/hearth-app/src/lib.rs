//! Hearth's application layer, without a transport: what the gateway and the worker share.
//!
//! Both binaries read the same way: [`Settings::load`] → [`telemetry()`] → [`Hearth::open`]
//! → run (the gateway serves HTTP over it, the worker runs [`jobs`]). Nothing here knows HTTP:
//! use-cases take plain inputs and return domain results, and each transport maps them.
//!
//! # Layout
//! - [`settings`]: every section composed from the library crates, loaded from defaults, a
//!   file and `HEARTH__…` variables, checked for production.
//! - [`Hearth`]: the wired services: the database (connected and migrated), the token
//!   service and revocation check, login lockouts, the password hasher, the rate limiter and
//!   the leaderboards and the realtime hub, with **one** Redis connection shared by all of
//!   them when `redis.url` is set (the hub adds one pub/sub connection of its own), and
//!   in-process stores otherwise.
//! - [`rounds`]: playing a round and acting on an open one, with what follows a settled round
//!   (its metrics, its leaderboard entry, and its `wallet` and `big_win` pushes).
//! - [`campaigns`]: the tabletop campaign manager's use-cases (role checks, the read cache
//!   of campaign pages, `campaign.changed` pushes).
//! - [`leaderboards`]: the leaderboard stores (in process, Redis) and their rebuild.
//! - [`revocations`]: [`revocations::DurableRevocations`], revocations recorded in the
//!   database and cached in Redis or memory, so they outlive restarts of either, and
//!   announced on the hub's `control` topic so every gateway closes the revoked sockets.
//! - [`ai`]: [`ai::Ai`], AI calls under the `ai` rate rule and the cost budgets (in Redis
//!   when `redis.url` is set), the chat's conversations, and `reply_or_fallback` for in-game
//!   characters.
//! - [`life`]: [`life::Lives`], the life simulation's sessions: the lives this process drives
//!   (ticks, saves, leases, pushes, conversation lines under the player's AI budget).
//! - [`jobs`]: the jobs the worker runs on the durable queue (e-mail delivery,
//!   reconciliation, clean-up, leaderboard rebuilds), their handlers and their schedules.
//! - [`mail`]: e-mail templates and delivery (SMTP, or files in development).
//! - [`shutdown_signal`]: SIGINT/SIGTERM, installed before serving.
//!
//! # Example
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let settings = hearth_app::Settings::default();
//! let _telemetry = hearth_app::telemetry(&settings, "my-service")?;
//! let hearth = hearth_app::Hearth::open(settings, "my-service").await?;
//! let report = hearth_app::jobs::reconcile_once(hearth.db.as_ref()).await?;
//! assert!(report.mismatches.is_empty());
//! # Ok(()) }
//! ```
//!
//! # What it does not do
//! No SQL (that is `hearth-storage`), no game rules (`hearth-domain`), no HTTP or sockets
//! (`hearth-api` and the binaries).

pub mod ai;
pub mod campaigns;
pub mod jobs;
pub mod leaderboards;
pub mod life;
pub mod mail;
pub mod revocations;
pub mod rounds;
pub mod settings;

mod shutdown;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hearth_auth::{Authenticator, LockoutStore, PasswordHasher, RevocationStore, TokenService};
use hearth_limits::Limiter;
use hearth_observability::metrics::PrometheusHandle;
use hearth_realtime::{Hub, InProcessHub, RedisHub};
use hearth_storage::Database;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret as _;

use crate::leaderboards::{InProcessLeaderboards, Leaderboards, RedisLeaderboards};
use crate::rounds::Rounds;

pub use settings::Settings;
pub use shutdown::shutdown_signal;

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

/// Where sessions live: revocations and login lockouts. [`Hearth::wire`] makes the
/// revocations durable (recorded in the database, cached in these).
#[derive(Clone)]
pub struct SessionStores {
    /// Revoked tokens, sessions and users.
    pub revocations: Arc<dyn RevocationStore>,
    /// Failed-login counts and locks.
    pub lockouts: Arc<dyn LockoutStore>,
}

impl SessionStores {
    /// Both in this process: right for one embedded instance.
    pub fn in_process() -> Self {
        Self {
            revocations: Arc::new(hearth_auth::InProcessRevocations::new()),
            lockouts: Arc::new(hearth_auth::InProcessLockouts::new()),
        }
    }

    /// Both in Redis under `prefix`, on the given (shared) connection.
    pub fn redis(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            revocations: Arc::new(hearth_auth::RedisRevocations::new(conn.clone(), prefix)),
            lockouts: Arc::new(hearth_auth::RedisLockouts::new(conn, prefix)),
        }
    }
}

/// The wired application: every service a transport needs. Cheap to clone.
#[derive(Clone)]
pub struct Hearth(Arc<Services>);

/// The parts of [`Hearth`], reachable through it (`hearth.db`, `hearth.limiter`, …).
pub struct Services {
    /// The settings it was built with.
    pub settings: Settings,
    /// Storage.
    pub db: Arc<dyn Database>,
    /// Token issue and verification.
    pub tokens: TokenService,
    /// Verification plus the revocation check (Redis or in-process).
    pub auth: Authenticator,
    /// Failed-login counts and locks (Redis or in-process).
    pub lockouts: Arc<dyn LockoutStore>,
    /// bcrypt off the async threads.
    pub hasher: PasswordHasher,
    /// Rate-limit decisions (Redis or in-process).
    pub limiter: Limiter,
    /// Leaderboards (Redis sorted sets or in-process).
    pub leaderboards: Arc<dyn Leaderboards>,
    /// Realtime pushes (Redis pub/sub across gateways, or in-process): the WebSocket
    /// transport subscribes sockets to it; rounds and revocations publish on it.
    pub hub: Arc<dyn Hub>,
    /// Playing rounds, and what follows a settled one.
    pub rounds: Rounds,
    /// The tabletop campaign manager: role checks, the read cache, `campaign.changed` pushes.
    pub campaigns: campaigns::Campaigns,
    /// The Prometheus registry's handle, for a `/metrics` endpoint.
    pub metrics: PrometheusHandle,
    /// The one Redis connection every Redis-backed part shares; `None` in embedded mode.
    pub redis: Option<ConnectionManager>,
    /// AI calls under the `ai` rule and the budgets, and the chat.
    pub ai: ai::Ai,
    /// The life simulation's sessions on this process.
    pub lives: life::Lives,
}

impl std::ops::Deref for Hearth {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

impl std::fmt::Debug for Hearth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hearth")
            .field("database", &self.db.backend())
            .field("limiter", &self.limiter.backend())
            .field("leaderboards", &self.leaderboards.backend())
            .field("hub", &self.hub.backend())
            .finish_non_exhaustive()
    }
}

/// The Redis connection's timing: short connection attempts and few, quick reconnects, so no
/// caller queues behind a long backoff. Each part keeps its own, shorter deadline where it
/// needs one (the limiter's is 500 ms per decision).
fn redis_connection(client: redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_lazy_with_config(client, config)
}

impl Hearth {
    /// Connects to the database and applies migrations, then [wires](Self::wire) the rest.
    /// `service` names the process in the `hearth_build_info` metric.
    ///
    /// # Errors
    /// When the database cannot be reached, migrations fail, or the Redis URL is malformed.
    pub async fn open(settings: Settings, service: &'static str) -> anyhow::Result<Self> {
        let db = hearth_storage::connect(&settings.database)
            .await
            .with_context(|| {
                format!("connecting to the {} database", settings.database.scheme())
            })?;
        db.migrate().await.context("applying database migrations")?;
        Self::wire(db, settings, service).await
    }

    /// Wires the services around an existing (migrated) database: the limiter, the session
    /// stores and the leaderboards use one shared Redis connection when `redis.url` is set,
    /// in-process state otherwise. Revocations are recorded in the database and cached in
    /// Redis or memory ([`revocations::DurableRevocations`]); an in-process cache is filled
    /// from the database here, a Redis one by the first check that finds it empty. Installs
    /// the process-wide metrics registry.
    ///
    /// # Errors
    /// When the Redis URL is malformed, or the revocations cannot be read from the database.
    pub async fn wire(
        db: Arc<dyn Database>,
        settings: Settings,
        service: &'static str,
    ) -> anyhow::Result<Self> {
        let metrics = hearth_observability::metrics::install();
        hearth_observability::process::mark_start();
        hearth_limits::metric_names::describe();
        hearth_observability::metrics::record_build_info(service, env!("CARGO_PKG_VERSION"));
        hearth_realtime::metric_names::describe();
        let (redis, limiter, leaderboards, sessions, hub): (
            _,
            _,
            Arc<dyn Leaderboards>,
            _,
            Arc<dyn Hub>,
        ) = match &settings.redis.url {
            Some(url) => {
                let client = redis::Client::open(url.expose_secret())
                    .context("configuring the Redis connection")?;
                let conn =
                    redis_connection(client.clone()).context("configuring the Redis connection")?;
                let prefix = &settings.redis.key_prefix;
                let limiter = Limiter::builder()
                    .redis(conn.clone(), settings.limits.redis_down)
                    .key_prefix(format!("{prefix}rl:"))
                    .build()
                    .await
                    .context("configuring the Redis rate limiter")?;
                let boards = RedisLeaderboards::new(conn.clone(), prefix.clone())
                    .context("configuring Redis leaderboards")?;
                let sessions = SessionStores::redis(conn.clone(), &format!("{prefix}auth:"));
                // Publishes share the connection manager; the pub/sub listener needs a
                // connection of its own (a subscribed connection runs no other command).
                let hub = RedisHub::new(conn.clone(), client, prefix.clone());
                (
                    Some(conn),
                    limiter,
                    Arc::new(boards),
                    sessions,
                    Arc::new(hub),
                )
            }
            None => {
                if settings.is_production() {
                    tracing::warn!(
                        "redis.url is unset: revocations, login lockouts and realtime \
                         pushes live in this process, so replicas do not share them; run one \
                         replica or set HEARTH__REDIS__URL"
                    );
                }
                (
                    None,
                    Limiter::in_process(),
                    Arc::new(InProcessLeaderboards::new()),
                    SessionStores::in_process(),
                    Arc::new(InProcessHub::new()),
                )
            }
        };
        let revocations = Arc::new(
            revocations::DurableRevocations::new(sessions.revocations, db.clone())
                .announcing(hub.clone()),
        );
        if redis.is_none() {
            // Fill memory before the first request rather than during it. On failure (a
            // database not migrated yet) the first check tries again, and refuses until it can.
            if let Err(error) = revocations.refill().await {
                tracing::warn!(%error, "revocations not loaded yet; the first check will retry");
            }
        }
        let sessions = SessionStores {
            revocations,
            lockouts: sessions.lockouts,
        };
        let ai = ai_for(&settings, db.clone(), limiter.clone(), redis.clone()).await?;
        Ok(Self::assemble(
            db,
            settings,
            metrics,
            limiter,
            leaderboards,
            sessions,
            hub,
            redis,
            ai,
        ))
    }

    /// Assembles the services from parts chosen by the caller (tests, embedding services).
    /// The session stores are used as given: wrap the revocations in
    /// [`revocations::DurableRevocations`] (as [`Self::wire`] does) for them to outlive a
    /// restart, and [announcing](revocations::DurableRevocations::announcing) on `hub` for
    /// sockets to close when they are revoked. Rounds publish their pushes on `hub`.
    #[allow(
        clippy::too_many_arguments,
        reason = "one parameter per part; a builder would only rename them"
    )]
    pub fn from_parts(
        db: Arc<dyn Database>,
        settings: Settings,
        metrics: PrometheusHandle,
        limiter: Limiter,
        leaderboards: Arc<dyn Leaderboards>,
        sessions: SessionStores,
        hub: Arc<dyn Hub>,
        redis: Option<ConnectionManager>,
    ) -> Self {
        let ai = ai_in_process(&settings, db.clone(), limiter.clone());
        Self::assemble(
            db,
            settings,
            metrics,
            limiter,
            leaderboards,
            sessions,
            hub,
            redis,
            ai,
        )
    }

    #[allow(clippy::too_many_arguments, reason = "from_parts plus the AI use-case")]
    fn assemble(
        db: Arc<dyn Database>,
        settings: Settings,
        metrics: PrometheusHandle,
        limiter: Limiter,
        leaderboards: Arc<dyn Leaderboards>,
        sessions: SessionStores,
        hub: Arc<dyn Hub>,
        redis: Option<ConnectionManager>,
        ai: ai::Ai,
    ) -> Self {
        let tokens = TokenService::new(&settings.auth);
        let lives = life::Lives::new(
            db.clone(),
            hub.clone(),
            ai.clone(),
            Arc::new(life_catalogue(&settings)),
            settings.life.clone(),
        );
        Self(Arc::new(Services {
            lives,
            auth: Authenticator::new(tokens.clone(), sessions.revocations),
            lockouts: sessions.lockouts,
            hasher: PasswordHasher::new(
                settings.auth.bcrypt_cost,
                settings.auth.max_concurrent_hashes,
            ),
            rounds: Rounds::new(db.clone(), leaderboards.clone())
                .announcing(hub.clone(), settings.realtime.big_win_multiplier),
            campaigns: campaigns::wired(
                db.clone(),
                &settings.campaigns,
                redis
                    .clone()
                    .map(|conn| (conn, settings.redis.key_prefix.as_str())),
                hub.clone(),
            ),
            hub,
            tokens,
            limiter,
            leaderboards,
            db,
            settings,
            metrics,
            redis,
            ai,
        }))
    }

    /// Rebuilds the leaderboards from the database; returns the entries written.
    ///
    /// # Errors
    /// When the database or Redis fails.
    pub async fn rebuild_leaderboards(&self) -> Result<usize, leaderboards::LeaderboardError> {
        jobs::rebuild_leaderboards(self.db.as_ref(), self.leaderboards.as_ref()).await
    }

    /// Saves and releases the lives this process drives, then closes the database pool: the
    /// last step of a graceful shutdown.
    pub async fn close(&self) {
        self.lives.shutdown().await;
        self.db.close().await;
    }
}

/// The catalogue named by `life.catalogue`. [`Settings::check`] refuses one that does not
/// load before this runs; should it fail here all the same (the file changed since), the
/// starter catalogue is used and the error logged.
fn life_catalogue(settings: &Settings) -> hearth_life::Catalogue {
    match settings.life.load_catalogue() {
        Ok(catalogue) => catalogue,
        Err(error) => {
            tracing::error!(%error, "the life catalogue does not load; using the starter catalogue");
            hearth_life::Catalogue::starter().unwrap_or_else(|_| {
                // The starter catalogue is built in and tested; an empty registry is not
                // possible to build here, so this cannot be reached without a broken build.
                unreachable!("the built-in starter catalogue loads")
            })
        }
    }
}

// ---- AI (issue #20) ------------------------------------------------------------------------

/// The AI use-case [`Hearth::wire`] builds: budgets in Redis (under `<prefix>budget:`, with
/// the `limits.redis_down` policy) when there is a connection, in this process otherwise.
///
/// # Errors
/// When a provider's settings are unusable or the Redis budget scripts cannot be set up.
async fn ai_for(
    settings: &Settings,
    db: Arc<dyn Database>,
    limiter: Limiter,
    redis: Option<ConnectionManager>,
) -> anyhow::Result<ai::Ai> {
    let client = hearth_ai::AiClient::from_settings(&ai_settings(settings))
        .context("configuring the AI providers")?;
    let budgets = match redis {
        Some(conn) => hearth_limits::Budgets::redis_with(
            conn,
            &settings.limits.budgets,
            settings.limits.redis_down,
            &format!("{}budget:", settings.redis.key_prefix),
            Arc::new(hearth_limits::SystemClock::new()),
        )
        .await
        .context("configuring the Redis budgets")?,
        None => hearth_limits::Budgets::in_process(&settings.limits.budgets),
    };
    if settings.is_production() && settings.ai.providers.is_empty() {
        tracing::warn!(
            "ai.providers is empty: AI answers come from the built-in local provider (canned \
             replies); set HEARTH__AI__PROVIDERS__0__* for a real model"
        );
    }
    Ok(ai::Ai::new(
        client,
        limiter,
        &settings.limits.rules,
        budgets,
        settings.limits.budgets.clone(),
        settings.ai.clone(),
        db,
    ))
}

/// The AI use-case [`Hearth::from_parts`] builds: budgets in this process. Providers whose
/// settings are unusable (which [`Settings::check`] refuses before this) leave a client with
/// no provider, whose every call fails, rather than a silent switch to canned replies.
fn ai_in_process(settings: &Settings, db: Arc<dyn Database>, limiter: Limiter) -> ai::Ai {
    let client =
        hearth_ai::AiClient::from_settings(&ai_settings(settings)).unwrap_or_else(|error| {
            tracing::error!(%error, "AI providers unusable: every AI call will fail");
            hearth_ai::AiClient::builder()
                .local_when_empty(false)
                .build()
        });
    ai::Ai::new(
        client,
        limiter,
        &settings.limits.rules,
        hearth_limits::Budgets::in_process(&settings.limits.budgets),
        settings.limits.budgets.clone(),
        settings.ai.clone(),
        db,
    )
}

/// The `ai` section with its deadline capped a second below `server.request_timeout_secs`, so
/// an HTTP request never times out (and drops its call half-way) before the call's own
/// deadline answers.
fn ai_settings(settings: &Settings) -> hearth_ai::AiSettings {
    let mut ai = settings.ai.clone();
    let cap = settings
        .server
        .request_timeout_secs
        .saturating_sub(1)
        .max(1);
    if ai.deadline_secs > cap {
        tracing::warn!(
            deadline_secs = ai.deadline_secs,
            cap,
            "ai.deadline_secs is not below server.request_timeout_secs; capped"
        );
        ai.deadline_secs = cap;
    }
    ai
}
