//! Settings: built-in defaults, then an optional file, then `HEARTH__SECTION__KEY` variables.
//!
//! Each library crate owns its section type; this module composes them and checks the whole
//! for production. Settings are read once, in `main`; nothing below reads the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File};
use hearth_auth::{AuthSettings, DEV_JWT_SECRET};
use hearth_limits::LimitsSettings;
use hearth_observability::LogSettings;
use hearth_observability::TelemetrySettings;
use hearth_storage::DatabaseSettings;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

mod jobs;
pub use jobs::{BackupSettings, EmailSettings, JobsSettings};

/// Where the process runs, which decides how strict start-up checks are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunEnvironment {
    /// Friendly defaults: SQLite, readable logs, a built-in development secret.
    #[default]
    Development,
    /// Refuses weak secrets, `*` CORS and SQLite (unless opted in); JSON logs.
    Production,
}

/// All of Hearth's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `HEARTH__ENVIRONMENT`: `development` or `production`.
    pub environment: RunEnvironment,
    /// The HTTP server.
    pub server: ServerSettings,
    /// The database.
    pub database: DatabaseSettings,
    /// Redis; unset means the embedded, in-process alternatives.
    pub redis: RedisSettings,
    /// Accounts and tokens.
    pub auth: AuthSettings,
    /// Wallets.
    pub wallet: WalletSettings,
    /// Games.
    pub games: GamesSettings,
    /// Logs.
    pub log: LogSettings,
    /// Client identification and limits.
    pub limits: LimitsSettings,
    /// The background worker.
    pub worker: WorkerSettings,
    /// Traces (OTLP export, sampling, `traceparent`) and where `/metrics` is served.
    pub telemetry: TelemetrySettings,
    /// Admin routes.
    pub admin: AdminSettings,
    /// The WebSocket and its pushes.
    pub realtime: RealtimeSettings,
    /// The life simulation.
    pub life: LifeSettings,
    /// AI providers, retries, breakers, and the chat's shape (`HEARTH__AI__*`).
    pub ai: hearth_ai::AiSettings,
    /// The tabletop campaign manager.
    pub campaigns: CampaignSettings,
    /// The worker's job runtime and schedules.
    pub jobs: JobsSettings,
    /// How e-mail leaves (SMTP, or files in development).
    pub email: EmailSettings,
    /// Where verified backups go, and when.
    pub backup: BackupSettings,
}

/// The `admin` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// `HEARTH__ADMIN__ALLOWED_IPS`: CIDRs (comma-separated) from which admin routes answer;
    /// empty allows any address. Admin routes also need an `admin` access token. Elsewhere they
    /// answer 404, as if they did not exist.
    #[serde(deserialize_with = "cidr_list")]
    pub allowed_ips: Vec<hearth_limits::client_ip::Cidr>,
}

/// The `server` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Origins allowed by CORS, comma-separated in the environment; empty disables CORS.
    #[serde(deserialize_with = "string_list")]
    pub cors_origins: Vec<String>,
    /// A request taking longer is answered 503 and its work cancelled.
    pub request_timeout_secs: u64,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// After SIGTERM, how long readiness reports 503 before the listener closes, so a load
    /// balancer stops sending traffic first. 0 in development.
    pub drain_delay_secs: u64,
    /// After the listener closes, how long in-flight requests may take before the process
    /// exits anyway.
    pub shutdown_timeout_secs: u64,
    /// How long a client may take to send a request's header block, counted from the
    /// connection's accept or, on a kept-alive connection, from the request's first byte. A
    /// connection that has not sent a whole header block by then is closed, so half-open
    /// connections cannot pile up.
    pub header_read_timeout_secs: u64,
    /// How long a kept-alive connection may sit between requests before it is closed.
    pub idle_timeout_secs: u64,
    /// Largest request header block (request line and headers), in bytes; a larger one is
    /// answered 431 and its connection closed, so header memory per connection is bounded.
    pub max_header_bytes: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cors_origins: Vec::new(),
            request_timeout_secs: 30,
            body_limit_bytes: 64 * 1024,
            drain_delay_secs: 0,
            shutdown_timeout_secs: 30,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_header_bytes: 32 * 1024,
        }
    }
}

impl ServerSettings {
    /// The smallest `max_header_bytes` accepted: room for a request line, a bearer token and
    /// the usual headers.
    pub const MIN_HEADER_BYTES: usize = 4 * 1024;

    /// Why these settings cannot serve: timeouts of zero, a header cap below
    /// [`Self::MIN_HEADER_BYTES`].
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.header_read_timeout_secs == 0 {
            problems.push("server.header_read_timeout_secs must be at least 1".to_owned());
        }
        if self.idle_timeout_secs == 0 {
            problems.push("server.idle_timeout_secs must be at least 1".to_owned());
        }
        if self.max_header_bytes < Self::MIN_HEADER_BYTES {
            problems.push(format!(
                "server.max_header_bytes must be at least {}",
                Self::MIN_HEADER_BYTES
            ));
        }
        problems
    }
}

/// The `redis` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:6379`; may carry a password, hence secret. Unset: embedded mode.
    pub url: Option<SecretString>,
    /// Prefix of every key Hearth writes, so several deployments can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "hearth:".to_owned(),
        }
    }
}

/// The `wallet` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalletSettings {
    /// Coins credited to a new account as a `bonus` ledger entry.
    pub starting_balance: i64,
    /// How long an `Idempotency-Key` is remembered; a retry after this is a new request.
    pub idempotency_retention_secs: u64,
}

impl Default for WalletSettings {
    fn default() -> Self {
        Self {
            starting_balance: 1_000,
            idempotency_retention_secs: 24 * 60 * 60,
        }
    }
}

/// The `games` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GamesSettings {
    /// Slots.
    pub slots: SlotsSettings,
    /// Dice.
    pub dice: DiceSettings,
    /// Roulette.
    pub roulette: RouletteSettings,
    /// Blackjack.
    pub blackjack: BlackjackSettings,
}

/// The `games.dice` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiceSettings {
    /// The house edge in basis points (100 = 1 %), 0 to 5000.
    pub house_edge_bp: u32,
    /// Smallest stake. Payouts are whole coins rounded down, so tiny stakes would lose most of
    /// a win to rounding; 100 keeps that loss under one percent of a win.
    pub min_bet: i64,
    /// Largest stake.
    pub max_bet: i64,
}

impl Default for DiceSettings {
    fn default() -> Self {
        Self {
            house_edge_bp: 100,
            min_bet: 100,
            max_bet: 100_000,
        }
    }
}

/// The `games.roulette` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouletteSettings {
    /// Smallest amount on one bet.
    pub min_bet: i64,
    /// Largest total staked on one spin.
    pub max_total_bet: i64,
}

impl Default for RouletteSettings {
    fn default() -> Self {
        Self {
            min_bet: 1,
            max_total_bet: 10_000,
        }
    }
}

/// The `games.blackjack` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlackjackSettings {
    /// Smallest bet (bets must be even so 3:2 pays whole coins).
    pub min_bet: i64,
    /// Largest bet.
    pub max_bet: i64,
}

impl Default for BlackjackSettings {
    fn default() -> Self {
        Self {
            min_bet: 2,
            max_bet: 1_000,
        }
    }
}

/// The `games.slots` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlotsSettings {
    /// The bets a spin may stake (`HEARTH__GAMES__SLOTS__BETS=1,2,5`).
    #[serde(deserialize_with = "int_list")]
    pub bets: Vec<i64>,
}

impl Default for SlotsSettings {
    fn default() -> Self {
        Self {
            bets: vec![1, 2, 5, 10, 20, 50, 100],
        }
    }
}

/// The `worker` section, read by `hearth-worker` (its jobs' schedules are in `jobs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Where the worker serves `/metrics` and `/health/live`; empty disables it.
    #[serde(deserialize_with = "optional_addr")]
    pub admin_addr: Option<SocketAddr>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            admin_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9091))),
        }
    }
}

/// The `realtime` section: the WebSocket transport's limits and what the application pushes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeSettings {
    /// `HEARTH__REALTIME__AUTH_TIMEOUT_SECS`: how long a socket may take to send its `auth`
    /// message before it is closed (1008).
    pub auth_timeout_secs: u64,
    /// `HEARTH__REALTIME__ALLOWED_ORIGINS` (comma-separated): the `Origin`s whose upgrades may
    /// authenticate with the session cookie; empty refuses cookie authentication on sockets.
    #[serde(deserialize_with = "string_list")]
    pub allowed_origins: Vec<String>,
    /// `HEARTH__REALTIME__BIG_WIN_MULTIPLIER`: a settled round whose win is at least this many
    /// times its bet is pushed to `big_wins` subscribers.
    pub big_win_multiplier: i64,
    /// `HEARTH__REALTIME__MAX_FRAME_BYTES`: a larger frame closes the socket (1009).
    pub max_frame_bytes: usize,
    /// `HEARTH__REALTIME__MAX_MESSAGE_BYTES`: a larger message closes the socket (1009).
    pub max_message_bytes: usize,
    /// `HEARTH__REALTIME__IDLE_TIMEOUT_SECS`: no pong for this long closes the socket (1001).
    pub idle_timeout_secs: u64,
    /// `HEARTH__REALTIME__PING_SECS`: seconds between the server's pings.
    pub ping_secs: u64,
    /// `HEARTH__REALTIME__SEND_QUEUE`: messages queued per socket; a client that falls further
    /// behind is disconnected (1008, "too slow") rather than slowing the server.
    pub send_queue: usize,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        Self {
            auth_timeout_secs: 5,
            allowed_origins: Vec::new(),
            big_win_multiplier: 50,
            max_frame_bytes: 16 * 1024,
            max_message_bytes: 64 * 1024,
            idle_timeout_secs: 45,
            ping_secs: 15,
            send_queue: 256,
        }
    }
}

impl RealtimeSettings {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("auth_timeout_secs", self.auth_timeout_secs),
            ("ping_secs", self.ping_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
        ] {
            if value == 0 {
                problems.push(format!("realtime.{key} must be at least 1"));
            }
        }
        if self.idle_timeout_secs <= self.ping_secs {
            problems.push(
                "realtime.idle_timeout_secs must be longer than realtime.ping_secs".to_owned(),
            );
        }
        if self.big_win_multiplier < 1 {
            problems.push("realtime.big_win_multiplier must be at least 1".to_owned());
        }
        if self.max_frame_bytes == 0 || self.max_message_bytes < self.max_frame_bytes {
            problems.push(
                "realtime.max_frame_bytes must be positive and at most realtime.max_message_bytes"
                    .to_owned(),
            );
        }
        if self.send_queue == 0 {
            problems.push("realtime.send_queue must be at least 1".to_owned());
        }
        if self.allowed_origins.iter().any(|o| o == "*") {
            problems.push(
                "realtime.allowed_origins contains '*'; list the origins (cross-site WebSocket \
                 hijacking)"
                    .to_owned(),
            );
        }
        problems
    }
}

/// The `life` section: which catalogue of events lives are simulated from, and how sessions
/// are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifeSettings {
    /// `HEARTH__LIFE__CATALOGUE`: the path of a catalogue file (JSON; the format is in
    /// `docs/life.md`). Unset or empty: the starter catalogue built into `hearth-life`.
    #[serde(deserialize_with = "optional_path")]
    pub catalogue: Option<PathBuf>,
    /// `HEARTH__LIFE__IDLE_TIMEOUT_SECS`: a life with no socket of its player (on any
    /// gateway) and no command for this long is saved and unloaded; it carries on when the
    /// player comes back.
    pub idle_timeout_secs: u64,
    /// `HEARTH__LIFE__LEASE_SECS`: how long a gateway's claim on a life lasts unless renewed
    /// (every third of it); when a gateway dies, another takes its lives over within this.
    pub lease_secs: u64,
    /// `HEARTH__LIFE__SAVE_INTERVAL_SECS`: a changed life is saved at least this often (and
    /// at once on pause, stop, its end and a socket closing).
    pub save_interval_secs: u64,
    /// `HEARTH__LIFE__STATE_PUSH_MILLIS`: at most one `life.state` push per life this often
    /// while it changes (answers to commands are pushed at once).
    pub state_push_millis: u64,
}

impl Default for LifeSettings {
    fn default() -> Self {
        Self {
            catalogue: None,
            idle_timeout_secs: 300,
            lease_secs: 30,
            save_interval_secs: 10,
            state_push_millis: 1_000,
        }
    }
}

/// Why the life catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueLoadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The configured path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file (or the built-in starter catalogue) is not a valid catalogue.
    #[error("{origin}: {source}")]
    Invalid {
        /// The path, or `the starter catalogue`.
        origin: String,
        /// Every problem found.
        #[source]
        source: hearth_life::CatalogueError,
    },
}

impl LifeSettings {
    /// Reads and validates the configured catalogue, or loads the starter one.
    ///
    /// # Errors
    /// [`CatalogueLoadError::Read`] when the file cannot be read, and
    /// [`CatalogueLoadError::Invalid`] with every problem the registry found.
    pub fn load_catalogue(&self) -> Result<hearth_life::Catalogue, CatalogueLoadError> {
        match &self.catalogue {
            None => {
                hearth_life::Catalogue::starter().map_err(|source| CatalogueLoadError::Invalid {
                    origin: "the starter catalogue".to_owned(),
                    source,
                })
            }
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| CatalogueLoadError::Read {
                        path: path.clone(),
                        source,
                    })?;
                hearth_life::Catalogue::from_json(&text).map_err(|source| {
                    CatalogueLoadError::Invalid {
                        origin: path.display().to_string(),
                        source,
                    }
                })
            }
        }
    }

    /// A catalogue that does not load stops start-up, with the registry's problems; so do
    /// session timings of zero.
    fn problems(&self) -> Vec<String> {
        let mut problems = match self.load_catalogue() {
            Ok(_) => Vec::new(),
            Err(err) => vec![format!("life.catalogue: {err}")],
        };
        for (name, value) in [
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("lease_secs", self.lease_secs),
            ("save_interval_secs", self.save_interval_secs),
        ] {
            if value == 0 {
                problems.push(format!("life.{name} must be at least 1"));
            }
        }
        problems
    }
}

// --- campaigns (issue #22) ---

/// The `campaigns` section: the tabletop campaign manager's limits and read cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignSettings {
    /// `HEARTH__CAMPAIGNS__MAX_CAMPAIGNS_PER_USER`: campaigns one user may own.
    pub max_campaigns_per_user: u32,
    /// `HEARTH__CAMPAIGNS__MAX_CHILDREN_PER_CAMPAIGN`: sessions, NPCs, maps and timeline
    /// entries one campaign may hold, each kind counted on its own.
    pub max_children_per_campaign: u32,
    /// `HEARTH__CAMPAIGNS__CACHE`: whether rendered campaign pages are cached (in Redis when
    /// `redis.url` is set, in process otherwise).
    pub cache: bool,
    /// `HEARTH__CAMPAIGNS__CACHE_TTL_SECS`: how long Redis keeps a cached page; writes
    /// invalidate pages long before.
    pub cache_ttl_secs: u64,
    /// `HEARTH__CAMPAIGNS__CACHE_MAX_CAMPAIGNS`: campaigns whose pages the in-process cache
    /// holds at most.
    pub cache_max_campaigns: usize,
}

impl Default for CampaignSettings {
    fn default() -> Self {
        Self {
            max_campaigns_per_user: 50,
            max_children_per_campaign: 5_000,
            cache: true,
            cache_ttl_secs: 300,
            cache_max_campaigns: 10_000,
        }
    }
}

impl CampaignSettings {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_campaigns_per_user == 0 || self.max_children_per_campaign == 0 {
            problems.push(
                "campaigns.max_campaigns_per_user and campaigns.max_children_per_campaign must \
                 be at least 1"
                    .to_owned(),
            );
        }
        if self.cache && (self.cache_ttl_secs == 0 || self.cache_max_campaigns == 0) {
            problems.push(
                "campaigns.cache_ttl_secs and campaigns.cache_max_campaigns must be at least 1"
                    .to_owned(),
            );
        }
        problems
    }
}

// --- end campaigns ---

/// Why settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A source could not be read or a value has the wrong type.
    #[error("invalid settings: {0}")]
    Invalid(#[from] config::ConfigError),
    /// Checks failed (in production, also the security ones); every problem is listed.
    #[error("refusing to start{}:\n  - {}", if *.production { " in production" } else { "" }, .problems.join("\n  - "))]
    Insecure {
        /// One line per problem.
        problems: Vec<String>,
        /// Whether the production checks applied.
        production: bool,
    },
}

/// The shortest JWT secret accepted in production, in bytes.
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// The lowest bcrypt cost accepted in production.
pub const MIN_PRODUCTION_BCRYPT_COST: u32 = 10;

impl Settings {
    /// Loads defaults, then `file` if given, then `HEARTH__…` variables (after reading `.env`
    /// when present), and checks the result.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] for unreadable or mistyped values (unknown keys included);
    /// [`SettingsError::Insecure`] listing every production problem at once.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        // A missing .env is normal; a malformed one should not be silently half-read, but the
        // variables it did set are still checked below like any others.
        let _ = dotenvy::dotenv();
        Self::load_from(file, Environment::with_prefix("HEARTH"))
    }

    /// Loads defaults plus the given `HEARTH__…` variables only, ignoring the process
    /// environment: for tools and tests that check a set of variables.
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_from_map(
        vars: std::collections::HashMap<String, String>,
    ) -> Result<Self, SettingsError> {
        Self::load_from(None, Environment::with_prefix("HEARTH").source(Some(vars)))
    }

    fn load_from(file: Option<&Path>, env: Environment) -> Result<Self, SettingsError> {
        let mut builder = Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(File::from(file).required(true));
        }
        let env = env.prefix_separator("__").separator("__");
        let settings: Self = builder.add_source(env).build()?.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    /// Whether this is a production deployment.
    pub fn is_production(&self) -> bool {
        self.environment == RunEnvironment::Production
    }

    /// Checks invariants; in production, also refuses insecure choices. Lists every problem.
    ///
    /// # Errors
    /// [`SettingsError::Insecure`] with one line per problem.
    pub fn check(&self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        if self.games.slots.bets.is_empty() || self.games.slots.bets.iter().any(|b| *b <= 0) {
            problems.push("games.slots.bets must list positive bets".to_owned());
        }
        let games = &self.games;
        if games.dice.house_edge_bp > 5_000 {
            problems.push("games.dice.house_edge_bp must be at most 5000 (50 %)".to_owned());
        }
        for (name, min, max) in [
            ("games.dice", games.dice.min_bet, games.dice.max_bet),
            (
                "games.roulette",
                games.roulette.min_bet,
                games.roulette.max_total_bet,
            ),
            (
                "games.blackjack",
                games.blackjack.min_bet,
                games.blackjack.max_bet,
            ),
        ] {
            if min <= 0 || max < min {
                problems.push(format!(
                    "{name}: the minimum bet must be positive and not above the maximum"
                ));
            }
        }
        problems.extend(self.limits.problems());
        problems.extend(self.server.problems());
        problems.extend(self.realtime.problems());
        problems.extend(self.life.problems());
        problems.extend(self.ai.problems(self.is_production()));
        problems.extend(self.campaigns.problems());
        problems.extend(self.jobs.problems());
        problems.extend(self.email.problems(self.is_production()));
        problems.extend(self.backup.problems());
        if self.auth.previous_jwt_secret.is_some() != self.auth.previous_jwt_key_id.is_some() {
            problems.push(
                "auth.previous_jwt_secret and auth.previous_jwt_key_id must be set together"
                    .to_owned(),
            );
        }
        if self.auth.previous_jwt_key_id.as_deref() == Some(self.auth.jwt_key_id.as_str()) {
            problems.push("auth.previous_jwt_key_id must differ from auth.jwt_key_id".to_owned());
        }
        if self.auth.lockout.max_failures == 0 {
            problems.push("auth.lockout.max_failures must be at least 1".to_owned());
        }
        problems.extend(self.telemetry.problems());
        if self.wallet.starting_balance < 0 {
            problems.push("wallet.starting_balance must not be negative".to_owned());
        }
        if self.is_production() {
            let secret = self.auth.jwt_secret.expose_secret();
            if secret == DEV_JWT_SECRET {
                problems.push(
                    "auth.jwt_secret (HEARTH__AUTH__JWT_SECRET) is the development default"
                        .to_owned(),
                );
            } else if secret.len() < MIN_JWT_SECRET_BYTES {
                problems.push(format!(
                    "auth.jwt_secret (HEARTH__AUTH__JWT_SECRET) is {} bytes; at least {MIN_JWT_SECRET_BYTES} are required",
                    secret.len()
                ));
            }
            if self.server.cors_origins.iter().any(|o| o.trim() == "*") {
                problems.push(
                    "server.cors_origins (HEARTH__SERVER__CORS_ORIGINS) contains '*'; list the allowed origins"
                        .to_owned(),
                );
            }
            if self.database.is_sqlite() && !self.database.allow_sqlite_in_production {
                problems.push(
                    "database.url is SQLite; use PostgreSQL, or set HEARTH__DATABASE__ALLOW_SQLITE_IN_PRODUCTION=true for a single instance"
                        .to_owned(),
                );
            }
            if !self.auth.cookie_secure {
                problems.push(
                    "auth.cookie_secure (HEARTH__AUTH__COOKIE_SECURE) is false; session cookies must be Secure"
                        .to_owned(),
                );
            }
            if let Some(previous) = &self.auth.previous_jwt_secret
                && previous.expose_secret().len() < MIN_JWT_SECRET_BYTES
            {
                problems.push(format!(
                    "auth.previous_jwt_secret (HEARTH__AUTH__PREVIOUS_JWT_SECRET) is shorter than {MIN_JWT_SECRET_BYTES} bytes"
                ));
            }
            if self.auth.bcrypt_cost < MIN_PRODUCTION_BCRYPT_COST {
                problems.push(format!(
                    "auth.bcrypt_cost (HEARTH__AUTH__BCRYPT_COST) is {}; at least {MIN_PRODUCTION_BCRYPT_COST} is required",
                    self.auth.bcrypt_cost
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::Insecure {
                problems,
                production: self.is_production(),
            })
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(String),
    Many(Vec<T>),
}

fn string_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(match OneOrMany::<String>::deserialize(deserializer)? {
        OneOrMany::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(items) => items,
    })
}

/// An address, or nothing for an empty value (`HEARTH__WORKER__ADMIN_ADDR=`).
fn optional_addr<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!("{text:?} is not an address such as 127.0.0.1:9091"))
    })
}

/// A path, or nothing for an empty value (`HEARTH__LIFE__CATALOGUE=`).
fn optional_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    let text = text.trim();
    Ok((!text.is_empty()).then(|| PathBuf::from(text)))
}

/// A secret, or nothing for an empty value (`HEARTH__EMAIL__SMTP_URL=`, as compose files write
/// an optional variable left unset). The value itself never reaches an error message.
pub(crate) fn optional_secret<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    let text = text.trim();
    Ok((!text.is_empty()).then(|| SecretString::from(text.to_owned())))
}

fn cidr_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<hearth_limits::client_ip::Cidr>, D::Error> {
    string_list(deserializer)?
        .iter()
        .map(|text| {
            text.parse().map_err(|_| {
                serde::de::Error::custom(format!("{text:?} is not a CIDR such as 10.0.0.0/8"))
            })
        })
        .collect()
}

fn int_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<i64>, D::Error> {
    match OneOrMany::<i64>::deserialize(deserializer)? {
        OneOrMany::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an integer")))
            })
            .collect(),
        OneOrMany::Many(items) => Ok(items),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Environment::with_prefix("HEARTH").source(Some(map))
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::load_from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn the_realtime_section_has_the_issue_defaults_and_reads_every_key() {
        let defaults = load(&[]).unwrap().realtime;
        assert_eq!(defaults.auth_timeout_secs, 5);
        assert!(defaults.allowed_origins.is_empty());
        assert_eq!(defaults.big_win_multiplier, 50);
        assert_eq!(defaults.max_frame_bytes, 16384);
        assert_eq!(defaults.max_message_bytes, 65536);
        assert_eq!(defaults.idle_timeout_secs, 45);
        assert_eq!(defaults.ping_secs, 15);
        assert_eq!(defaults.send_queue, 256);

        let set = load(&[
            ("HEARTH__REALTIME__AUTH_TIMEOUT_SECS", "3"),
            (
                "HEARTH__REALTIME__ALLOWED_ORIGINS",
                "https://play.example.com, https://admin.example.com",
            ),
            ("HEARTH__REALTIME__BIG_WIN_MULTIPLIER", "20"),
            ("HEARTH__REALTIME__MAX_FRAME_BYTES", "4096"),
            ("HEARTH__REALTIME__MAX_MESSAGE_BYTES", "8192"),
            ("HEARTH__REALTIME__IDLE_TIMEOUT_SECS", "30"),
            ("HEARTH__REALTIME__PING_SECS", "10"),
            ("HEARTH__REALTIME__SEND_QUEUE", "64"),
        ])
        .unwrap()
        .realtime;
        assert_eq!(set.auth_timeout_secs, 3);
        assert_eq!(
            set.allowed_origins,
            ["https://play.example.com", "https://admin.example.com"]
        );
        assert_eq!(set.big_win_multiplier, 20);
        assert_eq!((set.max_frame_bytes, set.max_message_bytes), (4096, 8192));
        assert_eq!((set.idle_timeout_secs, set.ping_secs), (30, 10));
        assert_eq!(set.send_queue, 64);
    }

    #[test]
    fn realtime_settings_that_cannot_work_are_refused() {
        for pairs in [
            &[("HEARTH__REALTIME__PING_SECS", "45")][..],
            &[("HEARTH__REALTIME__SEND_QUEUE", "0")],
            &[("HEARTH__REALTIME__BIG_WIN_MULTIPLIER", "0")],
            &[("HEARTH__REALTIME__MAX_FRAME_BYTES", "70000")],
            &[("HEARTH__REALTIME__ALLOWED_ORIGINS", "*")],
        ] {
            assert!(
                matches!(load(pairs), Err(SettingsError::Insecure { .. })),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn ai_providers_load_numbered_in_order_with_their_keys_secret() {
        let settings = load(&[
            ("HEARTH__AI__PROVIDERS__1__NAME", "backup"),
            ("HEARTH__AI__PROVIDERS__1__BASE_URL", "local"),
            ("HEARTH__AI__PROVIDERS__0__NAME", "openai"),
            (
                "HEARTH__AI__PROVIDERS__0__BASE_URL",
                "https://api.openai.com/v1",
            ),
            ("HEARTH__AI__PROVIDERS__0__API_KEY", "sk-canary-canary"),
            ("HEARTH__AI__PROVIDERS__0__MODEL", "gpt-4o-mini"),
            ("HEARTH__AI__PROVIDERS__0__TIMEOUT_SECS", "7"),
            ("HEARTH__AI__BREAKER__FAILURES", "3"),
            ("HEARTH__AI__MAX_ATTEMPTS", "2"),
        ])
        .unwrap();
        let ai = &settings.ai;
        let names: Vec<&str> = ai.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["openai", "backup"]);
        assert_eq!(ai.providers[0].timeout_secs, 7);
        assert_eq!(ai.providers[0].model, "gpt-4o-mini");
        assert_eq!(
            ai.providers[0]
                .api_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned()),
            Some("sk-canary-canary".to_owned())
        );
        assert!(ai.providers[1].is_local());
        assert_eq!((ai.breaker.failures, ai.max_attempts), (3, 2));
        assert!(!format!("{settings:?}").contains("canary"));

        for bad in [
            &[
                ("HEARTH__AI__PROVIDERS__0__NAME", "x"),
                ("HEARTH__AI__PROVIDERS__0__BASE_URL", "ftp://x"),
            ][..],
            &[
                ("HEARTH__AI__PROVIDERS__0__NAME", "x"),
                ("HEARTH__AI__PROVIDERS__0__BASE_URL", "https://x"),
                ("HEARTH__AI__PROVIDERS__0__MODLE", "m"),
            ],
            &[("HEARTH__AI__PROVIDERS__FIRST__NAME", "x")],
            &[("HEARTH__AI__MAX_ATTEMPTS", "0")],
        ] {
            assert!(load(bad).is_err(), "{bad:?}");
        }
        let production = load(&[
            ("HEARTH__ENVIRONMENT", "production"),
            ("HEARTH__AI__PROVIDERS__0__NAME", "plain"),
            (
                "HEARTH__AI__PROVIDERS__0__BASE_URL",
                "http://api.example.com/v1",
            ),
            ("HEARTH__AI__PROVIDERS__0__MODEL", "m"),
        ])
        .unwrap_err();
        assert!(
            production.to_string().contains("plain http"),
            "{production}"
        );
    }

    #[test]
    fn defaults_are_the_embedded_development_setup() {
        let settings = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(settings.environment, RunEnvironment::Development);
        assert_eq!(settings.server.addr.to_string(), "127.0.0.1:8080");
        assert!(settings.database.is_sqlite());
        assert!(settings.redis.url.is_none());
        assert_eq!(settings.auth.bcrypt_cost, 12);
        assert_eq!(settings.games.slots.bets, [1, 2, 5, 10, 20, 50, 100]);
    }

    #[test]
    fn the_database_url_is_a_secret_and_never_printed() {
        let settings = Settings::load_from(
            None,
            env(&[(
                "HEARTH__DATABASE__URL",
                // Made up: the test proves it is never printed.
                "postgres://hearth:hunter2-s3cret@db.internal:5432/hearth", // secrets-scan: allow
            )]),
        )
        .unwrap();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2-s3cret"), "{printed}");
        assert_eq!(settings.database.scheme(), "postgres");
        assert!(!settings.database.is_sqlite());
    }

    #[test]
    fn environment_variables_override_defaults() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("HEARTH__SERVER__ADDR", "0.0.0.0:9000"),
                ("HEARTH__AUTH__BCRYPT_COST", "10"),
                ("HEARTH__WALLET__STARTING_BALANCE", "250"),
                (
                    "HEARTH__SERVER__CORS_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("HEARTH__GAMES__SLOTS__BETS", "5,10"),
                ("HEARTH__LIMITS__TRUSTED_PROXIES", "10.0.0.0/8"),
                ("HEARTH__REDIS__URL", "redis://127.0.0.1:6379"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.server.addr.port(), 9000);
        assert_eq!(settings.auth.bcrypt_cost, 10);
        assert_eq!(settings.wallet.starting_balance, 250);
        assert_eq!(
            settings.server.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(settings.games.slots.bets, [5, 10]);
        assert_eq!(settings.limits.trusted_proxies.len(), 1);
        assert!(settings.redis.url.is_some());
    }

    #[test]
    fn the_worker_admin_port_can_be_turned_off() {
        let off = Settings::load_from(None, env(&[("HEARTH__WORKER__ADMIN_ADDR", "")])).unwrap();
        assert_eq!(off.worker.admin_addr, None);
        let on = Settings::load_from(None, env(&[("HEARTH__WORKER__ADMIN_ADDR", "0.0.0.0:9100")]));
        assert_eq!(on.unwrap().worker.admin_addr.unwrap().port(), 9100);
        assert!(Settings::load_from(None, env(&[("HEARTH__WORKER__ADMIN_ADDR", "nope")])).is_err());
    }

    #[test]
    fn a_misspelt_key_is_an_error_not_a_silent_default() {
        let error =
            Settings::load_from(None, env(&[("HEARTH__AUTH__JWT_SECRT", "x")])).unwrap_err();
        assert!(error.to_string().contains("jwt_secrt"), "{error}");
    }

    #[test]
    fn the_server_timeouts_and_header_cap_load_and_are_checked() {
        let defaults = ServerSettings::default();
        assert_eq!(defaults.header_read_timeout_secs, 10);
        assert_eq!(defaults.idle_timeout_secs, 60);
        assert_eq!(defaults.max_header_bytes, 32 * 1024);
        let settings = Settings::load_from(
            None,
            env(&[
                ("HEARTH__SERVER__HEADER_READ_TIMEOUT_SECS", "3"),
                ("HEARTH__SERVER__IDLE_TIMEOUT_SECS", "4"),
                ("HEARTH__SERVER__MAX_HEADER_BYTES", "8192"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.server.header_read_timeout_secs, 3);
        assert_eq!(settings.server.idle_timeout_secs, 4);
        assert_eq!(settings.server.max_header_bytes, 8192);
        let error = Settings::load_from(
            None,
            env(&[
                ("HEARTH__SERVER__HEADER_READ_TIMEOUT_SECS", "0"),
                ("HEARTH__SERVER__IDLE_TIMEOUT_SECS", "0"),
                ("HEARTH__SERVER__MAX_HEADER_BYTES", "100"),
            ]),
        )
        .unwrap_err()
        .to_string();
        for key in [
            "header_read_timeout_secs",
            "idle_timeout_secs",
            "max_header_bytes",
        ] {
            assert!(error.contains(key), "{key} in {error}");
        }
    }

    #[test]
    fn a_file_is_read_and_the_environment_wins_over_it() {
        let dir = std::env::temp_dir().join(format!("hearth-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hearth.toml");
        std::fs::write(
            &path,
            "[wallet]\nstarting_balance = 42\n[server]\nrequest_timeout_secs = 7\n",
        )
        .unwrap();
        let settings = Settings::load_from(
            Some(&path),
            env(&[("HEARTH__WALLET__STARTING_BALANCE", "43")]),
        )
        .unwrap();
        assert_eq!(settings.wallet.starting_balance, 43);
        assert_eq!(settings.server.request_timeout_secs, 7);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn production_lists_every_problem_at_once() {
        let error = Settings::load_from(
            None,
            env(&[
                ("HEARTH__ENVIRONMENT", "production"),
                ("HEARTH__SERVER__CORS_ORIGINS", "*"),
                ("HEARTH__AUTH__BCRYPT_COST", "4"),
            ]),
        )
        .unwrap_err();
        let SettingsError::Insecure { problems, .. } = &error else {
            panic!("{error}")
        };
        assert_eq!(problems.len(), 4, "{problems:#?}");
        let text = error.to_string();
        for needle in ["development default", "'*'", "SQLite", "bcrypt_cost"] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn production_refuses_a_short_secret_and_accepts_a_sound_setup() {
        let short = Settings::load_from(
            None,
            env(&[
                ("HEARTH__ENVIRONMENT", "production"),
                ("HEARTH__AUTH__JWT_SECRET", "too-short"),
                ("HEARTH__DATABASE__URL", "postgres://db/hearth"),
            ]),
        )
        .unwrap_err();
        assert!(short.to_string().contains("9 bytes"), "{short}");

        let sound = Settings::load_from(
            None,
            env(&[
                ("HEARTH__ENVIRONMENT", "production"),
                (
                    "HEARTH__AUTH__JWT_SECRET",
                    "0123456789abcdef0123456789abcdef-prod",
                ),
                ("HEARTH__DATABASE__URL", "postgres://db/hearth"),
                ("HEARTH__SERVER__CORS_ORIGINS", "https://play.example"),
            ]),
        );
        assert!(sound.is_ok(), "{:?}", sound.err());
    }

    #[test]
    fn the_secret_never_appears_in_debug_output() {
        let settings = Settings::load_from(
            None,
            env(&[(
                "HEARTH__AUTH__JWT_SECRET",
                "canary-canary-canary-canary-canary",
            )]),
        )
        .unwrap();
        assert!(!format!("{settings:?}").contains("canary"));
    }

    // The `life` section (issue #19): the catalogue is validated at start-up.
    #[test]
    fn the_life_catalogue_defaults_to_the_starter_and_a_bad_file_stops_start_up() {
        let defaults = load(&[]).unwrap().life;
        assert!(defaults.catalogue.is_none());
        assert_eq!(defaults.load_catalogue().unwrap().name(), "starter");
        assert!(
            load(&[("HEARTH__LIFE__CATALOGUE", "")])
                .unwrap()
                .life
                .catalogue
                .is_none()
        );

        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        std::fs::write(&good, hearth_life::catalogue::STARTER_JSON).unwrap();
        let loaded = load(&[("HEARTH__LIFE__CATALOGUE", good.to_str().unwrap())]).unwrap();
        assert_eq!(loaded.life.catalogue.as_deref(), Some(good.as_path()));
        assert!(loaded.life.load_catalogue().is_ok());

        let missing = dir.path().join("missing.json");
        let err = load(&[("HEARTH__LIFE__CATALOGUE", missing.to_str().unwrap())]).unwrap_err();
        assert!(
            err.to_string().contains("life.catalogue: cannot read")
                && err.to_string().contains("missing.json"),
            "{err}"
        );

        let bad = dir.path().join("bad.json");
        std::fs::write(
            &bad,
            r#"{"format": 1, "name": "bad", "categories": ["a"], "events": [
                {"name": "x", "description": "d", "priority": "low", "category": "a",
                 "once": true, "requires": ["ghost"]}]}"#,
        )
        .unwrap();
        let err = load(&[("HEARTH__LIFE__CATALOGUE", bad.to_str().unwrap())]).unwrap_err();
        assert!(
            err.to_string()
                .contains("event `x` requires unknown event `ghost`"),
            "{err}"
        );
    }
}
