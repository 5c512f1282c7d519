use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

/// The `database` settings section (`HEARTH__DATABASE__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://data/hearth.db` (the embedded default) or `postgres://user@host/db`. It may
    /// carry a password, so it is a secret: `Debug` prints `[REDACTED]`, and errors and logs
    /// name only its [scheme](Self::scheme).
    pub url: SecretString,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a request waits for a pooled connection before failing as unavailable.
    pub acquire_timeout_secs: u64,
    /// Idle connections above `min_connections` are closed after this long.
    pub idle_timeout_secs: u64,
    /// Connections are recycled after this long, so server-side changes reach the pool.
    pub max_lifetime_secs: u64,
    /// SQLite only: how long a writer waits for the write lock before failing.
    pub sqlite_busy_timeout_ms: u64,
    /// PostgreSQL only: while more than one game round is in flight in the process, new rounds
    /// queue, and up to this many statements at once each send what is waiting (one
    /// transaction, one commit for the lot; a player's rounds in one statement at a time).
    /// `0` sends every round alone; more than `max_connections` counts as `max_connections`.
    pub round_batches: u32,
    /// Production refuses SQLite unless this is set: it is one file on one machine, which
    /// N gateways behind a load balancer cannot share.
    pub allow_sqlite_in_production: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("sqlite://data/hearth.db"),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout_secs: 5,
            idle_timeout_secs: 600,
            max_lifetime_secs: 1800,
            sqlite_busy_timeout_ms: 10_000,
            round_batches: 2,
            allow_sqlite_in_production: false,
        }
    }
}

impl DatabaseSettings {
    /// The URL's scheme (`sqlite`, `postgres`, …), the part that is safe to print.
    pub fn scheme(&self) -> &str {
        let url = self.url.expose_secret();
        url.split_once(':').map_or("", |(scheme, _)| scheme)
    }

    /// Whether the URL names a SQLite database.
    pub fn is_sqlite(&self) -> bool {
        self.scheme() == "sqlite"
    }
}
