//! The PostgreSQL backend: what production runs.
//!
//! A round is four round trips: `BEGIN`; one `SELECT … FOR UPDATE` that locks the wallet and
//! the seed row and reads both; one statement whose CTEs write the round, the ledger lines, the
//! new balance and the next nonce; `COMMIT`. The row lock serialises rounds on one wallet and
//! leaves every other wallet free.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use hearth_domain::fairness::FairRng;
use hearth_domain::ledger::{EntryKind, EntryStatus};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::rows::{self, LedgerRow, MismatchRow, RoundLedger, RoundStartRow, UserRow, WalletRow};
use crate::{
    DatabaseSettings, GameRepository, LedgerEntry, LedgerQuery, Maintenance, NewUser, Page,
    PoolStats, Reconciliation, RoundRequest, SettledRound, StorageError, User, UserCredentials,
    UserRepository, Wallet, WalletMismatch, WalletRepository,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// SQLSTATE for "relation does not exist".
const UNDEFINED_TABLE: &str = "42P01";

/// A PostgreSQL connection pool.
#[derive(Debug, Clone)]
pub struct PostgresDatabase {
    pool: PgPool,
}

#[derive(sqlx::FromRow)]
struct LockedStart {
    #[sqlx(flatten)]
    start: RoundStartRow,
    now: OffsetDateTime,
}

impl PostgresDatabase {
    /// Connects with the pool limits from settings.
    ///
    /// # Errors
    /// [`StorageError::Other`] for a malformed URL; [`StorageError::Unavailable`] when the
    /// server cannot be reached.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StorageError> {
        let options = PgConnectOptions::from_str(&settings.url)?.application_name("hearth");
        let pool = PgPoolOptions::new()
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
        Ok(Self { pool })
    }

    /// The underlying pool, for tests and tools.
    pub fn pool(&self) -> &PgPool {
        &self.pool
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
        let rows: Vec<LedgerRow> = sqlx::query_as(
            "SELECT id, user_id, kind, amount, balance_before, balance_after, game, round_id, \
             description, metadata, status, created_at \
             FROM ledger_entries WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(user)
        .bind(query.after.map_or(i64::MAX, |cursor| cursor.id()))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        rows::into_page(rows, limit)
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
impl GameRepository for PostgresDatabase {
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id, game = request.game), err)]
    async fn play_round(&self, request: RoundRequest<'_>) -> Result<SettledRound, StorageError> {
        let mut tx = self.pool.begin().await?;
        let LockedStart { start, now } = sqlx::query_as(
            "SELECT w.balance, f.server_seed, f.server_seed_hash, f.client_seed, f.nonce, \
                    now() AS now \
             FROM wallets w JOIN fairness_seeds f ON f.user_id = w.user_id \
             WHERE w.user_id = $1 FOR UPDATE OF w, f",
        )
        .bind(request.user_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StorageError::NotFound)?;
        // Refuse an unaffordable bet before drawing, so a refusal spends no nonce.
        RoundLedger::compute(start.balance, request.bet, 0)?;
        let (server_seed, client_seed) = rows::seeds(&start)?;
        let nonce =
            u64::try_from(start.nonce).map_err(|_| StorageError::Corrupt("nonce".into()))?;
        let play = (request.play)(&mut FairRng::new(&server_seed, &client_seed, nonce))?;
        let ledger = RoundLedger::compute(start.balance, request.bet, play.win)?;

        // Ledger ids follow VALUES order, so the win always comes after its bet.
        sqlx::query(
            "WITH round AS ( \
                 INSERT INTO game_rounds (id, user_id, game, bet, win, status, detail, \
                                          server_seed_hash, client_seed, nonce, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 'settled', $6, $7, $8, $9, $10) RETURNING id), \
             wallet AS (UPDATE wallets SET balance = $11, updated_at = $10 WHERE user_id = $2), \
             seed AS (UPDATE fairness_seeds SET nonce = nonce + 1 WHERE user_id = $2) \
             INSERT INTO ledger_entries (user_id, kind, amount, balance_before, balance_after, \
                                         game, round_id, description, status, created_at) \
             SELECT $2, v.kind, v.amount, v.before, v.after, $3, round.id, v.description, $16, $10 \
             FROM round, (VALUES ($17, -$4::BIGINT, $12::BIGINT, $13::BIGINT, $14::TEXT, 1), \
                                 ($18, $5::BIGINT, $13::BIGINT, $11::BIGINT, $15::TEXT, 2)) \
                  AS v(kind, amount, before, after, description, ord) \
             WHERE v.amount <> 0 ORDER BY v.ord",
        )
        .bind(request.round_id) // $1
        .bind(request.user_id) // $2
        .bind(request.game) // $3
        .bind(request.bet) // $4
        .bind(play.win) // $5
        .bind(Json(&play.detail)) // $6
        .bind(&start.server_seed_hash) // $7
        .bind(&start.client_seed) // $8
        .bind(start.nonce) // $9
        .bind(now) // $10
        .bind(ledger.after_win) // $11
        .bind(ledger.balance_before) // $12
        .bind(ledger.after_bet) // $13
        .bind(format!("{} bet", request.game)) // $14
        .bind(format!("{} win", request.game)) // $15
        .bind(EntryStatus::Settled.as_str()) // $16
        .bind(EntryKind::Bet.as_str()) // $17
        .bind(EntryKind::Win.as_str()) // $18
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

        Ok(SettledRound {
            round_id: request.round_id,
            game: request.game.to_owned(),
            bet: request.bet,
            win: play.win,
            balance: ledger.after_win,
            detail: play.detail,
            server_seed_hash: start.server_seed_hash,
            client_seed: start.client_seed,
            nonce,
            created_at: now,
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

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
