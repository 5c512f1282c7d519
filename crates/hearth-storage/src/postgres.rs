//! The PostgreSQL backend: what production runs.
//!
//! This module is the repository wiring: the pool, accounts and wallets, seeds and
//! maintenance. Rounds (playing, acting on open rounds, the queue that sends concurrent rounds
//! together) are the round engine in module `rounds`; account security is in `accounts`.

mod accounts;
mod backup;
mod conversations;
pub(crate) mod jobs;
mod revocations;
mod rounds;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hearth_domain::fairness::{ClientSeed, ServerSeed};
use hearth_domain::ledger::{EntryKind, EntryStatus};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use time::OffsetDateTime;
use uuid::Uuid;

use self::rounds::DrawCache;
use crate::rows::{
    self, CurrentSeedRow, DayRow, FairnessRow, LedgerRow, MismatchRow, StatsRow, UserRow, WalletRow,
};
use crate::{
    DailyBalance, DatabaseSettings, FairnessRepository, FairnessState, LedgerEntry, LedgerQuery,
    Maintenance, NewUser, Page, PlayerStats, PoolStats, Reconciliation, RoundStatements,
    SeedRotation, StorageError, User, UserCredentials, UserRepository, Wallet, WalletMismatch,
    WalletRepository,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// SQLSTATE for "relation does not exist".
const UNDEFINED_TABLE: &str = "42P01";

const LEDGER_PAGE: &str = "SELECT id, user_id, kind, amount, balance_before, balance_after, game, \
     round_id, description, metadata, status, created_at FROM ledger_entries \
     WHERE user_id = $1 AND id < $2 AND $4::TEXT IS NULL AND $5::TEXT IS NULL \
     ORDER BY id DESC LIMIT $3";
const LEDGER_PAGE_BY_KIND: &str = "SELECT id, user_id, kind, amount, balance_before, balance_after, \
     game, round_id, description, metadata, status, created_at FROM ledger_entries \
     WHERE user_id = $1 AND kind = $4 AND id < $2 AND $5::TEXT IS NULL ORDER BY id DESC LIMIT $3";
/// Kinds other than bets and wins, through their own partial index (the predicate is spelled
/// out so that the generic plan can use it).
const LEDGER_PAGE_BY_RARE_KIND: &str = "SELECT id, user_id, kind, amount, balance_before, \
     balance_after, game, round_id, description, metadata, status, created_at FROM ledger_entries \
     WHERE user_id = $1 AND kind = $4 AND kind NOT IN ('bet', 'win') AND id < $2 \
     AND $5::TEXT IS NULL ORDER BY id DESC LIMIT $3";
const LEDGER_PAGE_BY_GAME: &str = "SELECT id, user_id, kind, amount, balance_before, balance_after, \
     game, round_id, description, metadata, status, created_at FROM ledger_entries \
     WHERE user_id = $1 AND game = $5 AND id < $2 AND $4::TEXT IS NULL ORDER BY id DESC LIMIT $3";
const LEDGER_PAGE_BY_KIND_AND_GAME: &str = "SELECT id, user_id, kind, amount, balance_before, \
     balance_after, game, round_id, description, metadata, status, created_at FROM ledger_entries \
     WHERE user_id = $1 AND kind = $4 AND game = $5 AND id < $2 ORDER BY id DESC LIMIT $3";

/// A PostgreSQL connection pool.
#[derive(Debug, Clone)]
pub struct PostgresDatabase {
    pool: PgPool,
    draws: Arc<DrawCache>,
    /// The password from the URL, handed to `pg_dump` and `pg_restore` in their environment.
    password: Option<secrecy::SecretString>,
}

impl PostgresDatabase {
    /// Connects with the pool limits from settings.
    ///
    /// # Errors
    /// [`StorageError::Other`] for a malformed URL; [`StorageError::Unavailable`] when the
    /// server cannot be reached.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StorageError> {
        let options =
            PgConnectOptions::from_str(secrecy::ExposeSecret::expose_secret(&settings.url))?
                .application_name("hearth");
        let pool = PgPoolOptions::new()
            // No ping before every checkout: it is a round trip per transaction. A dead
            // connection fails its first statement instead, and idle/lifetime limits recycle.
            .test_before_acquire(false)
            .max_connections(settings.max_connections.max(1))
            .min_connections(settings.min_connections)
            .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
            .idle_timeout(Duration::from_secs(settings.idle_timeout_secs))
            .max_lifetime(Duration::from_secs(settings.max_lifetime_secs))
            .connect_with(options)
            .await
            .map_err(|error| match error {
                sqlx::Error::Database(_) => StorageError::Other(error),
                other => StorageError::Unavailable(other),
            })?;
        Ok(Self {
            pool,
            password: backup::password_from_url(secrecy::ExposeSecret::expose_secret(
                &settings.url,
            ))
            .map(secrecy::SecretString::from),
            // Each statement in flight holds a connection: never more of them than the pool has.
            draws: Arc::new(DrawCache::new(
                settings.round_batches.min(settings.max_connections.max(1)),
            )),
        })
    }

    /// The underlying pool, for tests and tools.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A connection for one write statement (code shared with SQLite, whose single writes
    /// go through its writer): the statement commits on its own; `commit` does nothing.
    pub(crate) async fn single_write(&self) -> Result<SingleWrite, StorageError> {
        Ok(SingleWrite(self.pool.acquire().await?))
    }
}

/// See [`PostgresDatabase::single_write`].
pub(crate) struct SingleWrite(sqlx::pool::PoolConnection<sqlx::Postgres>);

impl SingleWrite {
    /// Nothing to do: the statement committed when it ran.
    #[allow(
        clippy::unused_async,
        reason = "the same call as SQLite's writer commit"
    )]
    pub(crate) async fn commit(self) -> Result<(), StorageError> {
        Ok(())
    }
}

impl std::ops::Deref for SingleWrite {
    type Target = sqlx::PgConnection;

    fn deref(&self) -> &sqlx::PgConnection {
        &self.0
    }
}

impl std::ops::DerefMut for SingleWrite {
    fn deref_mut(&mut self) -> &mut sqlx::PgConnection {
        &mut self.0
    }
}

#[async_trait]
impl UserRepository for PostgresDatabase {
    #[tracing::instrument(skip_all, fields(user_id = %new.id), err)]
    async fn create_user(&self, new: NewUser) -> Result<User, StorageError> {
        let mut tx = self.pool.begin().await?;
        let user: UserRow = sqlx::query_as(
            "INSERT INTO users (id, username, email, password_hash, role) \
             VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, username, email, role, created_at, password_hash",
        )
        .bind(new.id)
        .bind(&new.username)
        .bind(&new.email)
        .bind(&new.password_hash)
        .bind(&new.role)
        .fetch_one(&mut *tx)
        .await?;
        // The wallet, its welcome bonus (when there is one) and the seeds in one statement.
        sqlx::query(
            "WITH wallet AS (INSERT INTO wallets (user_id, balance) VALUES ($1, $2) RETURNING user_id), \
             seeds AS (INSERT INTO fairness_seeds (user_id, server_seed, server_seed_hash, client_seed) \
                       VALUES ($1, $3, $4, $5)) \
             INSERT INTO ledger_entries (user_id, kind, amount, balance_before, balance_after, \
                                         description, status) \
             SELECT user_id, $6, $2, 0, $2, 'Welcome bonus', $7 FROM wallet WHERE $2 > 0",
        )
        .bind(new.id)
        .bind(new.starting_balance)
        .bind(new.server_seed.to_hex())
        .bind(new.server_seed.hash_hex())
        .bind(new.client_seed.as_str())
        .bind(EntryKind::Bonus.as_str())
        .bind(EntryStatus::Settled.as_str())
        .execute(&mut *tx)
        .await?;
        if let Some(welcome) = new.welcome {
            accounts::insert_welcome(&mut tx, new.id, &new.email, welcome).await?;
        }
        tx.commit().await?;
        Ok(user.into_user())
    }

    async fn find_credentials(&self, login: &str) -> Result<Option<UserCredentials>, StorageError> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, username, email, role, created_at, password_hash \
             FROM users WHERE lower(username) = $1 OR email = $1",
        )
        .bind(login.trim().to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(UserRow::into_credentials))
    }

    async fn find_user(&self, id: Uuid) -> Result<Option<User>, StorageError> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, username, email, role, created_at, password_hash FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(UserRow::into_user))
    }
}

#[async_trait]
impl WalletRepository for PostgresDatabase {
    async fn wallet(&self, user: Uuid) -> Result<Wallet, StorageError> {
        let row: WalletRow =
            sqlx::query_as("SELECT user_id, balance, updated_at FROM wallets WHERE user_id = $1")
                .bind(user)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.into())
    }

    async fn ledger_page(
        &self,
        user: Uuid,
        query: LedgerQuery,
    ) -> Result<Page<LedgerEntry>, StorageError> {
        let limit = query.limit.clamp(1, LedgerQuery::MAX_LIMIT);
        // One static statement per filter combination, so each can use its own index.
        let sql = match (&query.kind, &query.game) {
            (None, None) => LEDGER_PAGE,
            (Some(EntryKind::Bet | EntryKind::Win), None) => LEDGER_PAGE_BY_KIND,
            (Some(_), None) => LEDGER_PAGE_BY_RARE_KIND,
            (None, Some(_)) => LEDGER_PAGE_BY_GAME,
            (Some(_), Some(_)) => LEDGER_PAGE_BY_KIND_AND_GAME,
        };
        let rows: Vec<LedgerRow> = sqlx::query_as(sql)
            .bind(user)
            .bind(query.after.map_or(i64::MAX, |cursor| cursor.id()))
            .bind(i64::from(limit) + 1)
            .bind(query.kind.map(|k| k.as_str()))
            .bind(query.game.as_deref())
            .fetch_all(&self.pool)
            .await?;
        rows::into_page(rows, limit)
    }

    async fn balance_history(
        &self,
        user: Uuid,
        days: u32,
    ) -> Result<Vec<DailyBalance>, StorageError> {
        let (first, since) = rows::history_window(days);
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let balance: Option<i64> =
            sqlx::query_scalar("SELECT balance FROM wallets WHERE user_id = $1")
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        balance.ok_or(StorageError::NotFound)?;
        let opening: Option<i64> = sqlx::query_scalar(
            "SELECT balance_after FROM ledger_entries WHERE user_id = $1 AND created_at < $2 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(user)
        .bind(since)
        .fetch_optional(&mut *tx)
        .await?;
        let days_rows: Vec<DayRow> = sqlx::query_as(
            "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, \
                    SUM(amount)::BIGINT AS net, COUNT(*) AS entries, \
                    (array_agg(balance_after ORDER BY id DESC))[1] AS closing \
             FROM ledger_entries WHERE user_id = $1 AND created_at >= $2 \
             GROUP BY day ORDER BY day",
        )
        .bind(user)
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows::fill_days(
            days_rows,
            opening.unwrap_or(0),
            first,
            days,
        ))
    }

    async fn stats(&self, user: Uuid) -> Result<PlayerStats, StorageError> {
        let row: StatsRow = sqlx::query_as(
            "SELECT COUNT(*) AS rounds, COUNT(*) FILTER (WHERE win > bet) AS wins, \
                    COALESCE(SUM(bet), 0)::BIGINT AS wagered, COALESCE(SUM(win), 0)::BIGINT AS won, \
                    COALESCE(MAX(win), 0)::BIGINT AS biggest_win, \
                    (SELECT balance FROM wallets WHERE user_id = $1) AS balance \
             FROM game_rounds WHERE user_id = $1 AND status = 'settled'",
        )
        .bind(user)
        .fetch_one(&self.pool)
        .await?;
        row.try_into()
    }

    async fn purge_idempotency_keys(&self, retention: Duration) -> Result<u64, StorageError> {
        let cutoff = OffsetDateTime::now_utc() - retention;
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all, err)]
    async fn reconcile(&self) -> Result<Reconciliation, StorageError> {
        // REPEATABLE READ: the count and the sums come from one snapshot.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let wallets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM wallets")
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<MismatchRow> = sqlx::query_as(
            "SELECT w.user_id, w.balance, COALESCE(s.total, 0)::BIGINT AS ledger_sum FROM wallets w \
             LEFT JOIN (SELECT user_id, SUM(amount) AS total FROM ledger_entries GROUP BY user_id) s \
             ON s.user_id = w.user_id WHERE w.balance <> COALESCE(s.total, 0)",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Reconciliation {
            wallets: u64::try_from(wallets).unwrap_or(0),
            mismatches: rows
                .into_iter()
                .map(|r| WalletMismatch {
                    user_id: r.user_id,
                    balance: r.balance,
                    ledger_sum: r.ledger_sum,
                })
                .collect(),
        })
    }
}

#[async_trait]
impl FairnessRepository for PostgresDatabase {
    async fn fairness(&self, user: Uuid) -> Result<FairnessState, StorageError> {
        let row: FairnessRow = sqlx::query_as(
            "SELECT server_seed_hash, client_seed, nonce FROM fairness_seeds WHERE user_id = $1",
        )
        .bind(user)
        .fetch_one(&self.pool)
        .await?;
        row.try_into()
    }

    async fn set_client_seed(
        &self,
        user: Uuid,
        seed: &ClientSeed,
    ) -> Result<FairnessState, StorageError> {
        let row: FairnessRow = sqlx::query_as(
            "UPDATE fairness_seeds SET client_seed = $2 WHERE user_id = $1 \
             RETURNING server_seed_hash, client_seed, nonce",
        )
        .bind(user)
        .bind(seed.as_str())
        .fetch_one(&self.pool)
        .await?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(user_id = %user), err)]
    async fn rotate_seed(
        &self,
        user: Uuid,
        next: ServerSeed,
    ) -> Result<SeedRotation, StorageError> {
        let mut tx = self.pool.begin().await?;
        // The same row lock play_round takes: no round can open or settle meanwhile.
        let current: CurrentSeedRow = sqlx::query_as(
            "SELECT server_seed, server_seed_hash, created_at FROM fairness_seeds \
             WHERE user_id = $1 FOR UPDATE",
        )
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StorageError::NotFound)?;
        let open: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM game_rounds WHERE user_id = $1 AND status = 'open' LIMIT 1",
        )
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        if open.is_some() {
            return Err(StorageError::Conflict {
                constraint: "open_round".into(),
            });
        }
        sqlx::query(
            "WITH revealed AS (INSERT INTO revealed_seeds (server_seed_hash, user_id, server_seed, created_at) \
                               VALUES ($2, $1, $3, $4)) \
             UPDATE fairness_seeds SET server_seed = $5, server_seed_hash = $6, nonce = 0, \
                    created_at = now() WHERE user_id = $1",
        )
        .bind(user)
        .bind(&current.server_seed_hash)
        .bind(&current.server_seed)
        .bind(current.created_at)
        .bind(next.to_hex())
        .bind(next.hash_hex())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(SeedRotation {
            revealed_server_seed: current.server_seed,
            revealed_server_seed_hash: current.server_seed_hash,
            server_seed_hash: next.hash_hex(),
        })
    }
}

#[async_trait]
impl Maintenance for PostgresDatabase {
    async fn migrate(&self) -> Result<(), StorageError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn pending_migrations(&self) -> Result<Vec<i64>, StorageError> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
            {
                Ok(applied) => applied,
                Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some(UNDEFINED_TABLE) => {
                    vec![]
                }
                Err(error) => return Err(error.into()),
            };
        Ok(MIGRATOR
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StorageError::Unavailable)?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(0),
        }
    }

    fn round_statements(&self) -> RoundStatements {
        self.draws.statements()
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
