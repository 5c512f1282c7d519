//! The SQLite backend: the embedded default.
//!
//! Write transactions go through the process's one writer (module `writer`): they queue in the
//! process on one connection, each runs in a savepoint, and the ones waiting are committed
//! together. The writer takes SQLite's write lock up front (`BEGIN IMMEDIATE`), so a money
//! transaction never fails half-way on a lock upgrade; WAL mode lets readers on the pool carry
//! on meanwhile, and the busy timeout makes another process's writers (the worker's) queue
//! instead of failing.

mod accounts;
mod backup;
mod conversations;
pub(crate) mod jobs;
mod raw;
mod readers;
mod revocations;
mod rounds;
mod writer;

use self::readers::Readers;
pub use self::writer::WriterStats;
use self::writer::{WriteTx, Writer};

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use hearth_domain::fairness::{ClientSeed, ServerSeed};
use hearth_domain::ledger::{EntryKind, EntryStatus};
use rusqlite::OptionalExtension as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::rows::{
    self, CurrentSeedRow, DayRow, FairnessRow, LedgerRow, MismatchRow, RoundRow, StatsRow, UserRow,
};
use crate::{
    ActRequest, DailyBalance, DatabaseSettings, FairnessRepository, FairnessState, GameRepository,
    LedgerEntry, LedgerQuery, Maintenance, NewUser, Page, Played, PlayerStats, PoolStats,
    Reconciliation, RoundRecord, RoundRequest, SeedRotation, SettledRound, StorageError, User,
    UserCredentials, UserRepository, Wallet, WalletMismatch, WalletRepository,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

const USER_COLUMNS_BY_LOGIN: &str = "SELECT id, username, email, role, created_at, password_hash \
     FROM users WHERE lower(username) = ?1 OR email = ?1";

const LEDGER_PAGE: &str = "SELECT id, user_id, kind, amount, balance_before, balance_after, game, \
     round_id, description, metadata, status, created_at FROM ledger_entries \
     WHERE user_id = ?1 AND id < ?2 AND ?4 IS NULL AND ?5 IS NULL ORDER BY id DESC LIMIT ?3";
const LEDGER_PAGE_BY_KIND: &str = "SELECT id, user_id, kind, amount, balance_before, balance_after, \
     game, round_id, description, metadata, status, created_at FROM ledger_entries \
     WHERE user_id = ?1 AND kind = ?4 AND id < ?2 AND ?5 IS NULL ORDER BY id DESC LIMIT ?3";
const LEDGER_PAGE_BY_GAME: &str = "SELECT id, user_id, kind, amount, balance_before, balance_after, \
     game, round_id, description, metadata, status, created_at FROM ledger_entries \
     WHERE user_id = ?1 AND game = ?5 AND id < ?2 AND ?4 IS NULL ORDER BY id DESC LIMIT ?3";
const LEDGER_PAGE_BY_KIND_AND_GAME: &str = "SELECT id, user_id, kind, amount, balance_before, \
     balance_after, game, round_id, description, metadata, status, created_at FROM ledger_entries \
     WHERE user_id = ?1 AND kind = ?4 AND game = ?5 AND id < ?2 ORDER BY id DESC LIMIT ?3";

/// A SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    /// Writes outside the writer (single statements, campaigns), transactions, and reads off
    /// the request path.
    pool: SqlitePool,
    /// The request path's reads: no test on checkin (see `readers`).
    readers: Readers,
    /// Write transactions: one at a time, committed in groups.
    writer: Writer,
}

impl SqliteDatabase {
    /// Opens (creating if needed) the file the URL names, and its directory.
    ///
    /// # Errors
    /// [`StorageError::Other`] for a malformed URL; [`StorageError::Unavailable`] when the file
    /// cannot be created or opened.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StorageError> {
        let options =
            SqliteConnectOptions::from_str(secrecy::ExposeSecret::expose_secret(&settings.url))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a committed coin movement survives power loss, not just a process crash.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_millis(settings.sqlite_busy_timeout_ms))
                .foreign_keys(true);
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|error| StorageError::Unavailable(sqlx::Error::Io(error)))?;
        }
        let pool = SqlitePoolOptions::new()
            // No ping before every checkout: it is a round trip per transaction. A dead
            // connection fails its first statement instead, and idle/lifetime limits recycle.
            .test_before_acquire(false)
            .max_connections(settings.max_connections.max(1))
            .min_connections(settings.min_connections)
            .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
            .idle_timeout(Duration::from_secs(settings.idle_timeout_secs))
            .max_lifetime(Duration::from_secs(settings.max_lifetime_secs))
            .connect_with(options.clone())
            .await?;
        let busy_timeout = Duration::from_millis(settings.sqlite_busy_timeout_ms);
        let writer = Writer::open(&options, busy_timeout).await?;
        let readers = Readers::new(
            options,
            settings.max_connections,
            Duration::from_secs(settings.max_lifetime_secs),
            Duration::from_millis(settings.sqlite_busy_timeout_ms),
        );
        Ok(Self {
            pool,
            readers,
            writer,
        })
    }

    /// The underlying pool, for tests and tools.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The writer's commits so far, and the write transactions they carried.
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    async fn begin_write(&self) -> Result<WriteTx, StorageError> {
        self.writer.begin().await
    }

    /// A write transaction for one statement, in code shared with PostgreSQL: through the
    /// writer, so it queues in the process and shares a commit rather than meeting the
    /// writer in SQLite's busy handler. Finish it with `commit`.
    pub(crate) async fn single_write(&self) -> Result<WriteTx, StorageError> {
        self.writer.begin().await
    }
}

/// A user from the columns `id, username, email, role, created_at`, read by rusqlite.
fn raw_user(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: raw::uuid_at(row, 0)?,
        username: row.get(1)?,
        email: row.get(2)?,
        role: row.get(3)?,
        created_at: raw::time_at(row, 4)?,
    })
}

struct LedgerInsert<'a> {
    user_id: Uuid,
    kind: EntryKind,
    amount: i64,
    balance_before: i64,
    game: Option<&'a str>,
    round_id: Option<Uuid>,
    description: String,
    created_at: OffsetDateTime,
}

async fn insert_ledger(tx: &mut WriteTx, entry: LedgerInsert<'_>) -> Result<(), StorageError> {
    sqlx::query(rounds::INSERT_LEDGER)
        .bind(entry.user_id)
        .bind(entry.kind.as_str())
        .bind(entry.amount)
        .bind(entry.balance_before)
        .bind(entry.balance_before + entry.amount)
        .bind(entry.game)
        .bind(entry.round_id)
        .bind(entry.description)
        .bind(EntryStatus::Settled.as_str())
        .bind(entry.created_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl UserRepository for SqliteDatabase {
    #[tracing::instrument(skip_all, fields(user_id = %new.id), err)]
    async fn create_user(&self, new: NewUser) -> Result<User, StorageError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.begin_write().await?;
        let user: UserRow = sqlx::query_as(
            "INSERT INTO users (id, username, email, password_hash, role, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
             RETURNING id, username, email, role, created_at, password_hash",
        )
        .bind(new.id)
        .bind(&new.username)
        .bind(&new.email)
        .bind(&new.password_hash)
        .bind(&new.role)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO wallets (user_id, balance, updated_at) VALUES (?1, ?2, ?3)")
            .bind(new.id)
            .bind(new.starting_balance)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if new.starting_balance > 0 {
            let entry = LedgerInsert {
                user_id: new.id,
                kind: EntryKind::Bonus,
                amount: new.starting_balance,
                balance_before: 0,
                game: None,
                round_id: None,
                description: "Welcome bonus".to_owned(),
                created_at: now,
            };
            insert_ledger(&mut tx, entry).await?;
        }
        sqlx::query(
            "INSERT INTO fairness_seeds (user_id, server_seed, server_seed_hash, client_seed, \
             nonce, created_at) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
        )
        .bind(new.id)
        .bind(new.server_seed.to_hex())
        .bind(new.server_seed.hash_hex())
        .bind(new.client_seed.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(welcome) = new.welcome {
            accounts::insert_welcome(&mut tx, new.id, &new.email, welcome).await?;
        }
        tx.commit().await?;
        Ok(user.into_user())
    }

    async fn find_credentials(&self, login: &str) -> Result<Option<UserCredentials>, StorageError> {
        let row: Option<UserRow> = sqlx::query_as(USER_COLUMNS_BY_LOGIN)
            .bind(login.trim().to_lowercase())
            .fetch_optional(&mut *self.readers.get().await?)
            .await?;
        Ok(row.map(UserRow::into_credentials))
    }

    async fn find_user(&self, id: Uuid) -> Result<Option<User>, StorageError> {
        self.readers.read_here(|conn| {
            let user = conn
                .prepare_cached(
                    "SELECT id, username, email, role, created_at FROM users WHERE id = ?1",
                )?
                .query_row(rusqlite::params![raw::uuid(&id)], raw_user)
                .optional()?;
            Ok(user)
        })
    }
}

#[async_trait]
impl WalletRepository for SqliteDatabase {
    async fn wallet(&self, user: Uuid) -> Result<Wallet, StorageError> {
        self.readers.read_here(|conn| {
            let wallet = conn
                .prepare_cached(
                    "SELECT user_id, balance, updated_at FROM wallets WHERE user_id = ?1",
                )?
                .query_row(rusqlite::params![raw::uuid(&user)], |row| {
                    Ok(Wallet {
                        user_id: raw::uuid_at(row, 0)?,
                        balance: row.get(1)?,
                        updated_at: raw::time_at(row, 2)?,
                    })
                })?;
            Ok(wallet)
        })
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
            (Some(_), None) => LEDGER_PAGE_BY_KIND,
            (None, Some(_)) => LEDGER_PAGE_BY_GAME,
            (Some(_), Some(_)) => LEDGER_PAGE_BY_KIND_AND_GAME,
        };
        let rows: Vec<LedgerRow> = sqlx::query_as(sql)
            .bind(user)
            .bind(query.after.map_or(i64::MAX, |cursor| cursor.id()))
            .bind(i64::from(limit) + 1)
            .bind(query.kind.map(|k| k.as_str()))
            .bind(query.game.as_deref())
            .fetch_all(&mut *self.readers.get().await?)
            .await?;
        rows::into_page(rows, limit)
    }

    async fn balance_history(
        &self,
        user: Uuid,
        days: u32,
    ) -> Result<Vec<DailyBalance>, StorageError> {
        let (first, since) = rows::history_window(days);
        let mut tx = self.pool.begin().await?;
        let balance: Option<i64> =
            sqlx::query_scalar("SELECT balance FROM wallets WHERE user_id = ?1")
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        balance.ok_or(StorageError::NotFound)?;
        let opening: Option<i64> = sqlx::query_scalar(
            "SELECT balance_after FROM ledger_entries WHERE user_id = ?1 AND created_at < ?2 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(user)
        .bind(since)
        .fetch_optional(&mut *tx)
        .await?;
        // SQLite returns the bare column `balance_after` from the row holding MAX(id): the
        // day's last entry.
        let days_rows: Vec<DayRow> = sqlx::query_as(
            "SELECT substr(created_at, 1, 10) AS day, SUM(amount) AS net, COUNT(*) AS entries, \
                    MAX(id) AS last_id, balance_after AS closing \
             FROM ledger_entries WHERE user_id = ?1 AND created_at >= ?2 \
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
            "SELECT COUNT(*) AS rounds, COALESCE(SUM(CASE WHEN win > bet THEN 1 ELSE 0 END), 0) AS wins, \
                    COALESCE(SUM(bet), 0) AS wagered, COALESCE(SUM(win), 0) AS won, \
                    COALESCE(MAX(win), 0) AS biggest_win, \
                    (SELECT balance FROM wallets WHERE user_id = ?1) AS balance \
             FROM game_rounds WHERE user_id = ?1 AND status = 'settled'",
        )
        .bind(user)
        .fetch_one(&mut *self.readers.get().await?)
        .await?;
        row.try_into()
    }

    async fn purge_idempotency_keys(&self, retention: Duration) -> Result<u64, StorageError> {
        let cutoff = OffsetDateTime::now_utc() - retention;
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all, err)]
    async fn reconcile(&self) -> Result<Reconciliation, StorageError> {
        // One read transaction, so the count and the sums describe the same moment.
        let mut tx = self.pool.begin().await?;
        let wallets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM wallets")
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<MismatchRow> = sqlx::query_as(
            "SELECT w.user_id, w.balance, COALESCE(s.total, 0) AS ledger_sum FROM wallets w \
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
impl GameRepository for SqliteDatabase {
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id, game = request.game), err)]
    async fn play_round(
        &self,
        request: RoundRequest<'_>,
    ) -> Result<Played<SettledRound>, StorageError> {
        self.writer.write(|conn| rounds::play(conn, &request)).await
    }

    #[tracing::instrument(skip_all, fields(user_id = %request.user_id, round_id = %request.round_id), err)]
    async fn act(&self, request: ActRequest<'_>) -> Result<Played<SettledRound>, StorageError> {
        self.writer.write(|conn| rounds::act(conn, &request)).await
    }

    async fn round(&self, user: Uuid, round: Uuid) -> Result<Option<RoundRecord>, StorageError> {
        let row: Option<RoundRow> = sqlx::query_as(
            "SELECT r.id, r.game, r.status, r.bet, r.win, r.detail, r.server_seed_hash, \
                    s.server_seed, r.client_seed, r.nonce, r.created_at \
             FROM game_rounds r LEFT JOIN revealed_seeds s \
               ON s.server_seed_hash = r.server_seed_hash AND s.user_id = r.user_id \
             WHERE r.id = ?1 AND r.user_id = ?2",
        )
        .bind(round)
        .bind(user)
        .fetch_optional(&mut *self.readers.get().await?)
        .await?;
        row.map(RoundRecord::try_from).transpose()
    }
}

#[async_trait]
impl FairnessRepository for SqliteDatabase {
    async fn fairness(&self, user: Uuid) -> Result<FairnessState, StorageError> {
        let row: FairnessRow = sqlx::query_as(
            "SELECT server_seed_hash, client_seed, nonce FROM fairness_seeds WHERE user_id = ?1",
        )
        .bind(user)
        .fetch_one(&mut *self.readers.get().await?)
        .await?;
        row.try_into()
    }

    async fn set_client_seed(
        &self,
        user: Uuid,
        seed: &ClientSeed,
    ) -> Result<FairnessState, StorageError> {
        let row: FairnessRow = sqlx::query_as(
            "UPDATE fairness_seeds SET client_seed = ?2 WHERE user_id = ?1 \
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
        let now = OffsetDateTime::now_utc();
        let mut tx = self.begin_write().await?;
        let current: CurrentSeedRow = sqlx::query_as(
            "SELECT server_seed, server_seed_hash, created_at FROM fairness_seeds WHERE user_id = ?1",
        )
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StorageError::NotFound)?;
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM game_rounds WHERE user_id = ?1 AND status = 'open' LIMIT 1",
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
            "INSERT INTO revealed_seeds (server_seed_hash, user_id, server_seed, created_at, revealed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&current.server_seed_hash)
        .bind(user)
        .bind(&current.server_seed)
        .bind(current.created_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE fairness_seeds SET server_seed = ?2, server_seed_hash = ?3, nonce = 0, \
             created_at = ?4 WHERE user_id = ?1",
        )
        .bind(user)
        .bind(next.to_hex())
        .bind(next.hash_hex())
        .bind(now)
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
impl Maintenance for SqliteDatabase {
    async fn migrate(&self) -> Result<(), StorageError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn pending_migrations(&self) -> Result<Vec<i64>, StorageError> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&self.pool)
                .await
            {
                Ok(applied) => applied,
                Err(sqlx::Error::Database(db)) if db.message().contains("no such table") => vec![],
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
        "sqlite"
    }

    async fn close(&self) {
        self.readers.close().await;
        self.pool.close().await;
    }
}
