//! The PostgreSQL backend: what production runs.
//!
//! A new round is one round trip: the application draws the outcome from the player's seeds and
//! the nonce it expects (the ones the last round left; with several of the player's rounds in
//! flight, the outcomes of the next few nonces), then calls the server-side function
//! `hearth_play_round` (migration `20261201000005`), which in one transaction locks the wallet
//! and the seed row, checks the Idempotency-Key, the open rounds and the balance, and writes the
//! round, the ledger lines, the balance, the next nonce and the key, using the outcome for the
//! nonce it finds under the lock. If it holds none (a seed change, another process), nothing is
//! written and the round is drawn again from the inputs it returns. When the rules refuse a draw
//! or the inputs keep changing, the round falls back to four round trips: `BEGIN`; a
//! `SELECT … FOR UPDATE` of the wallet and the seeds; one statement whose CTEs write everything;
//! `COMMIT`. Either way the row lock serialises rounds on one wallet and leaves every other
//! wallet free.
//!
//! While several rounds are in flight in the process, they are sent together instead (module
//! `coalesce`): one statement and one commit for the rounds waiting, up to
//! [`DatabaseSettings::round_batches`] such statements at once.

mod accounts;
mod coalesce;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
use hearth_domain::ledger::{EntryKind, EntryStatus};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::rows::{
    self, ActStartRow, CurrentSeedRow, DayRow, FairnessRow, IdempotencyRow, LedgerRow, MismatchRow,
    RoundLedger, RoundRow, RoundStartRow, StatsRow, UserRow, WalletRow,
};
use crate::{
    ActRequest, DailyBalance, DatabaseSettings, FairnessRepository, FairnessState, GameRepository,
    Idempotency, LedgerEntry, LedgerQuery, Maintenance, NewUser, Page, Played, PlayerStats,
    PoolStats, Reconciliation, RoundRecord, RoundRequest, RoundStatements, SeedRotation,
    SettledRound, StorageError, User, UserCredentials, UserRepository, Wallet, WalletMismatch,
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
}

/// The inputs of a player's next draw: their seeds and next nonce.
#[derive(Clone, sqlx::FromRow)]
struct DrawInputs {
    server_seed: String,
    server_seed_hash: String,
    client_seed: String,
    nonce: i64,
}

/// A round drawn ahead of the transaction that will (or will not) settle it.
struct Drawn {
    settled: SettledRound,
    status: &'static str,
    state: Option<serde_json::Value>,
}

impl DrawInputs {
    /// The seeds, parsed once for every outcome drawn from them; `None` when they do not parse,
    /// which the locked path then reports in its own order.
    fn seeds(&self) -> Option<(ServerSeed, ClientSeed)> {
        Some((
            ServerSeed::from_hex(&self.server_seed).ok()?,
            ClientSeed::parse(&self.client_seed).ok()?,
        ))
    }

    /// Runs the rules with `seeds` (these inputs' own, from [`Self::seeds`]) and the nonce
    /// `offset` after the next one; `None` when the rules refuse, which the locked path then
    /// reports in its own order.
    fn draw(
        &self,
        (server_seed, client_seed): &(ServerSeed, ClientSeed),
        request: &RoundRequest<'_>,
        offset: usize,
    ) -> Option<Drawn> {
        let nonce = u64::try_from(self.nonce)
            .ok()?
            .checked_add(u64::try_from(offset).ok()?)?;
        let play = (request.play)(&mut FairRng::new(server_seed, client_seed, nonce)).ok()?;
        let status = rows::round_status(&play).ok()?;
        Some(Drawn {
            settled: SettledRound {
                round_id: request.round_id,
                status: status.to_owned(),
                game: request.game.to_owned(),
                bet: request.bet,
                win: play.win,
                balance: 0,
                detail: play.detail,
                server_seed_hash: self.server_seed_hash.clone(),
                client_seed: self.client_seed.clone(),
                nonce,
                created_at: OffsetDateTime::UNIX_EPOCH,
            },
            status,
            state: play.state,
        })
    }

    /// Whether these are the same seeds as `other`'s.
    fn same_seeds(&self, other: &Self) -> bool {
        self.server_seed_hash == other.server_seed_hash && self.client_seed == other.client_seed
    }
}

impl std::fmt::Debug for DrawInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The server seed is secret until rotated.
        f.debug_struct("DrawInputs")
            .field("server_seed_hash", &self.server_seed_hash)
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

/// What this process last saw of a player's draw inputs, and how many of their rounds it has in
/// flight. Only a guess: `hearth_play_round` checks it under the row lock, so another process or
/// a seed change costs a retry, never a wrong draw.
#[derive(Debug, Default)]
struct PlayerDraws {
    last: Mutex<Option<DrawInputs>>,
    in_flight: AtomicUsize,
}

impl PlayerDraws {
    fn last(&self) -> Option<DrawInputs> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Remembers `seen` unless it is older than what is remembered.
    fn remember(&self, seen: DrawInputs) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*last {
            Some(known) if known.same_seeds(&seen) && known.nonce > seen.nonce => {}
            _ => *last = Some(seen),
        }
    }

    fn forget(&self) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// Counts a round in flight, for its player and for the process, for as long as it lives.
struct InFlight<'a> {
    player: &'a PlayerDraws,
    all: &'a AtomicUsize,
}

impl<'a> InFlight<'a> {
    /// Enters, and returns how many of the player's rounds and how many rounds in all are in
    /// flight, this one included.
    fn enter(cache: &'a DrawCache, player: &'a PlayerDraws) -> (Self, usize, usize) {
        let mine = player.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let all = cache.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        (
            Self {
                player,
                all: &cache.in_flight,
            },
            mine,
            all,
        )
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.player.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.all.fetch_sub(1, Ordering::Relaxed);
    }
}

/// [`PlayerDraws`] per player, and the queue rounds wait in while others are in flight.
#[derive(Debug)]
struct DrawCache {
    players: Mutex<HashMap<Uuid, Arc<PlayerDraws>>>,
    /// Rounds in flight in this process.
    in_flight: AtomicUsize,
    /// Where rounds wait while others are in flight; `None` sends every round alone.
    queue: Option<Arc<coalesce::Queue>>,
}

impl DrawCache {
    /// Players remembered before idle ones are forgotten.
    const CAPACITY: usize = 50_000;
    /// The most outcomes drawn ahead for one round.
    const MAX_AHEAD: usize = 32;

    /// With at most `batches` statements of queued rounds in flight; `0` sends every round
    /// alone.
    fn new(batches: u32) -> Self {
        Self {
            players: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            queue: usize::try_from(batches)
                .ok()
                .filter(|n| *n > 0)
                .map(|n| Arc::new(coalesce::Queue::new(n))),
        }
    }

    fn player(&self, user: Uuid) -> Arc<PlayerDraws> {
        let mut players = self
            .players
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if players.len() >= Self::CAPACITY && !players.contains_key(&user) {
            players.retain(|_, player| Arc::strong_count(player) > 1);
        }
        Arc::clone(players.entry(user).or_default())
    }
}

#[derive(sqlx::FromRow)]
struct LockedStart {
    #[sqlx(flatten)]
    start: RoundStartRow,
    now: OffsetDateTime,
}

/// What `hearth_play_round` answers.
#[derive(sqlx::FromRow)]
pub(super) struct OneCallRow {
    outcome: String,
    balance_after: Option<i64>,
    played_at: Option<OffsetDateTime>,
    nonce_played: Option<i64>,
    stored_fingerprint: Option<String>,
    stored_response: Option<Json<SettledRound>>,
    current_server_seed: Option<String>,
    current_server_seed_hash: Option<String>,
    current_client_seed: Option<String>,
    current_nonce: Option<i64>,
}

impl OneCallRow {
    /// The draw inputs under the lock, returned with every outcome that wrote nothing.
    fn current_inputs(&self) -> Result<DrawInputs, StorageError> {
        match (
            &self.current_server_seed,
            &self.current_server_seed_hash,
            &self.current_client_seed,
            self.current_nonce,
        ) {
            (Some(seed), Some(hash), Some(client), Some(nonce)) => Ok(DrawInputs {
                server_seed: seed.clone(),
                server_seed_hash: hash.clone(),
                client_seed: client.clone(),
                nonce,
            }),
            _ => Err(StorageError::Corrupt(format!(
                "hearth_play_round said {} without the draw inputs",
                self.outcome
            ))),
        }
    }
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
}

/// The stored answer for a repeated idempotency key, read under the round's locks.
async fn replay(
    tx: &mut Transaction<'static, Postgres>,
    user: Uuid,
    idempotency: Option<&Idempotency>,
) -> Result<Option<Played<SettledRound>>, StorageError> {
    let Some(idempotency) = idempotency else {
        return Ok(None);
    };
    let stored: Option<IdempotencyRow> = sqlx::query_as(
        "SELECT fingerprint, response FROM idempotency_keys WHERE user_id = $1 AND key = $2",
    )
    .bind(user)
    .bind(&idempotency.key)
    .fetch_optional(&mut **tx)
    .await?;
    stored.map(|row| row.replay(idempotency)).transpose()
}

/// Remembers the answer for an idempotency key, in the transaction that made the effect.
async fn remember(
    tx: &mut Transaction<'static, Postgres>,
    user: Uuid,
    idempotency: Option<&Idempotency>,
    answer: &SettledRound,
    now: OffsetDateTime,
) -> Result<(), StorageError> {
    let Some(idempotency) = idempotency else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, response, round_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(user)
    .bind(&idempotency.key)
    .bind(&idempotency.fingerprint)
    .bind(Json(answer))
    .bind(answer.round_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
impl GameRepository for PostgresDatabase {
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id, game = request.game), err)]
    async fn play_round(
        &self,
        request: RoundRequest<'_>,
    ) -> Result<Played<SettledRound>, StorageError> {
        if request.bet <= 0 {
            return self.play_round_locked(request).await;
        }
        let player = self.draws.player(request.user_id);
        let (_in_flight, in_flight, all_in_flight) = InFlight::enter(&self.draws, &player);
        match self
            .play_round_in_one_call(&request, &player, in_flight, all_in_flight)
            .await
        {
            Ok(Some(played)) => Ok(played),
            Ok(None) => {
                player.forget();
                self.play_round_locked(request).await
            }
            Err(error) => {
                player.forget();
                Err(error)
            }
        }
    }

    #[tracing::instrument(skip_all, fields(user_id = %request.user_id, round_id = %request.round_id), err)]
    async fn act(&self, request: ActRequest<'_>) -> Result<Played<SettledRound>, StorageError> {
        let mut tx = self.pool.begin().await?;
        let start: ActStartRow = sqlx::query_as(
            "SELECT w.balance, r.game, r.status, r.bet, r.state, r.server_seed_hash, \
                    r.client_seed, r.nonce, r.created_at \
             FROM wallets w JOIN game_rounds r ON r.user_id = w.user_id \
             WHERE w.user_id = $1 AND r.id = $2 FOR UPDATE OF w, r",
        )
        .bind(request.user_id)
        .bind(request.round_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StorageError::NotFound)?;
        if let Some(answer) = replay(&mut tx, request.user_id, request.idempotency.as_ref()).await?
        {
            tx.rollback().await?;
            return Ok(answer);
        }
        let step = rows::run_step(&start, &request)?;
        let ledger = rows::act_ledger(start.balance, &step)?;
        let total_bet = start
            .bet
            .checked_add(step.extra_stake)
            .ok_or_else(|| StorageError::Corrupt("stake overflows".into()))?;
        let status = if step.state.is_some() {
            "open"
        } else {
            "settled"
        };
        let now = OffsetDateTime::now_utc();
        sqlx::query(
            "UPDATE game_rounds SET bet = $3, win = $4, status = $5, state = $6, \
             detail = $7, updated_at = $8 WHERE id = $1 AND user_id = $2",
        )
        .bind(request.round_id)
        .bind(request.user_id)
        .bind(total_bet)
        .bind(step.win)
        .bind(status)
        .bind(step.state.as_ref().map(Json))
        .bind(Json(&step.detail))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO ledger_entries (user_id, kind, amount, balance_before, balance_after, \
                                         game, round_id, description, status, created_at) \
             SELECT $1, v.kind, v.amount, v.before, v.after, $2, $3, v.description, $4, $5 \
             FROM (VALUES ($6, -$7::BIGINT, $8::BIGINT, $9::BIGINT, $10::TEXT, 1), \
                          ($11, $12::BIGINT, $9::BIGINT, $13::BIGINT, $14::TEXT, 2)) \
                  AS v(kind, amount, before, after, description, ord) \
             WHERE v.amount <> 0 ORDER BY v.ord",
        )
        .bind(request.user_id)
        .bind(request.game)
        .bind(request.round_id)
        .bind(EntryStatus::Settled.as_str())
        .bind(now)
        .bind(EntryKind::Bet.as_str())
        .bind(step.extra_stake)
        .bind(ledger.balance_before)
        .bind(ledger.after_bet)
        .bind(format!("{} bet", request.game))
        .bind(EntryKind::Win.as_str())
        .bind(step.win)
        .bind(ledger.after_win)
        .bind(format!("{} win", request.game))
        .execute(&mut *tx)
        .await?;
        if step.extra_stake > 0 || step.win > 0 {
            sqlx::query("UPDATE wallets SET balance = $2, updated_at = $3 WHERE user_id = $1")
                .bind(request.user_id)
                .bind(ledger.after_win)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        let answer = SettledRound {
            round_id: request.round_id,
            status: status.to_owned(),
            game: start.game,
            bet: total_bet,
            win: step.win,
            balance: ledger.after_win,
            detail: step.detail,
            server_seed_hash: start.server_seed_hash,
            client_seed: start.client_seed,
            nonce: u64::try_from(start.nonce).map_err(|_| StorageError::Corrupt("nonce".into()))?,
            created_at: start.created_at,
        };
        remember(
            &mut tx,
            request.user_id,
            request.idempotency.as_ref(),
            &answer,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Played {
            value: answer,
            replayed: false,
        })
    }

    async fn round(&self, user: Uuid, round: Uuid) -> Result<Option<RoundRecord>, StorageError> {
        let row: Option<RoundRow> = sqlx::query_as(
            "SELECT r.id, r.game, r.status, r.bet, r.win, r.detail, r.server_seed_hash, \
                    s.server_seed, r.client_seed, r.nonce, r.created_at \
             FROM game_rounds r LEFT JOIN revealed_seeds s \
               ON s.server_seed_hash = r.server_seed_hash AND s.user_id = r.user_id \
             WHERE r.id = $1 AND r.user_id = $2",
        )
        .bind(round)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        row.map(RoundRecord::try_from).transpose()
    }
}

impl PostgresDatabase {
    /// A round through `hearth_play_round`: one round trip and one transaction when one of the
    /// outcomes drawn ahead is for the nonce found under the lock. `Ok(None)` hands the round to
    /// [`Self::play_round_locked`] (the rules refused a draw, or the inputs kept changing
    /// underneath), which then decides with the inputs it finds under the lock, as before.
    async fn play_round_in_one_call(
        &self,
        request: &RoundRequest<'_>,
        player: &PlayerDraws,
        in_flight: usize,
        all_in_flight: usize,
    ) -> Result<Option<Played<SettledRound>>, StorageError> {
        let mut inputs = match player.last() {
            Some(inputs) => inputs,
            None => match sqlx::query_as::<_, DrawInputs>(
                "SELECT server_seed, server_seed_hash, client_seed, nonce FROM fairness_seeds \
                 WHERE user_id = $1",
            )
            .bind(request.user_id)
            .fetch_optional(&self.pool)
            .await?
            {
                Some(inputs) => inputs,
                None => return Ok(None),
            },
        };
        // Alone, the next nonce is this round's. With other rounds of the player in flight,
        // those and later ones may take the lock first: draw for the nonces they may use up.
        let ahead = if in_flight <= 1 {
            1
        } else {
            (4 * in_flight).min(DrawCache::MAX_AHEAD)
        };
        let (key, fingerprint) = match &request.idempotency {
            Some(i) => (Some(i.key.as_str()), Some(i.fingerprint.as_str())),
            None => (None, None),
        };
        for _ in 0..4 {
            let Some(seeds) = inputs.seeds() else {
                return Ok(None);
            };
            let mut drawn = Vec::with_capacity(ahead);
            for offset in 0..ahead {
                match inputs.draw(&seeds, request, offset) {
                    Some(round) => drawn.push(round),
                    None => break,
                }
            }
            if drawn.is_empty() {
                return Ok(None);
            }
            let call = coalesce::RoundCall {
                user_id: request.user_id,
                round_id: request.round_id,
                game: request.game.to_owned(),
                bet: request.bet,
                server_seed_hash: inputs.server_seed_hash.clone(),
                client_seed: inputs.client_seed.clone(),
                first_nonce: inputs.nonce,
                wins: drawn.iter().map(|d| d.settled.win).collect(),
                statuses: drawn.iter().map(|d| d.status).collect(),
                details: drawn.iter().map(|d| d.settled.detail.to_string()).collect(),
                states: drawn
                    .iter()
                    .map(|d| d.state.as_ref().map(ToString::to_string))
                    .collect(),
                key: key.map(str::to_owned),
                fingerprint: fingerprint.map(str::to_owned),
            };
            // Alone, straight to the database; with other rounds in flight, through the queue, in
            // the next statement sent for this player.
            let row = match &self.draws.queue {
                Some(queue) if all_in_flight > 1 => queue.play(&self.pool, call).await?,
                _ => call.call(&self.pool).await?,
            };
            let balance = row.balance_after.unwrap_or(0);
            match row.outcome.as_str() {
                "ok" => {
                    let played = row
                        .nonce_played
                        .ok_or_else(|| StorageError::Corrupt("nonce played".into()))?;
                    let mut settled = usize::try_from(played - inputs.nonce)
                        .ok()
                        .filter(|at| *at < drawn.len())
                        .map(|at| drawn.swap_remove(at).settled)
                        .ok_or_else(|| StorageError::Corrupt("nonce played".into()))?;
                    settled.balance = balance;
                    settled.created_at = row
                        .played_at
                        .ok_or_else(|| StorageError::Corrupt("round time".into()))?;
                    inputs.nonce = played + 1;
                    player.remember(inputs);
                    return Ok(Some(Played {
                        value: settled,
                        replayed: false,
                    }));
                }
                "not_found" => return Err(StorageError::NotFound),
                _ => {}
            }
            // Nothing was written; the row tells what the inputs are now.
            let first_nonce = inputs.nonce;
            inputs = row.current_inputs()?;
            player.remember(inputs.clone());
            match row.outcome.as_str() {
                "stale" => continue,
                "replay" => {
                    let stored = IdempotencyRow::new(row.stored_fingerprint, row.stored_response)?;
                    let idempotency = request
                        .idempotency
                        .as_ref()
                        .ok_or_else(|| StorageError::Corrupt("replay without a key".into()))?;
                    return stored.replay(idempotency).map(Some);
                }
                "open" => {
                    return Err(StorageError::Conflict {
                        constraint: "game_rounds_one_open_per_game".into(),
                    });
                }
                "insufficient" => {
                    RoundLedger::compute(balance, request.bet, 0)?;
                }
                "overflow" => {
                    let win = usize::try_from(inputs.nonce - first_nonce)
                        .ok()
                        .and_then(|at| drawn.get(at))
                        .map_or(0, |d| d.settled.win);
                    RoundLedger::compute(balance, request.bet, win)?;
                }
                _ => {}
            }
            return Err(StorageError::Corrupt(format!(
                "hearth_play_round said {} for a balance of {balance}",
                row.outcome
            )));
        }
        Ok(None)
    }

    /// A round in one transaction of four round trips: lock, draw, write, commit.
    async fn play_round_locked(
        &self,
        request: RoundRequest<'_>,
    ) -> Result<Played<SettledRound>, StorageError> {
        let mut tx = self.pool.begin().await?;
        let LockedStart { start, now } = sqlx::query_as(
            "SELECT w.balance, f.server_seed, f.server_seed_hash, f.client_seed, f.nonce, \
                    EXISTS (SELECT 1 FROM game_rounds r WHERE r.user_id = w.user_id \
                            AND r.game = $2 AND r.status = 'open') AS has_open, \
                    now() AS now \
             FROM wallets w JOIN fairness_seeds f ON f.user_id = w.user_id \
             WHERE w.user_id = $1 FOR UPDATE OF w, f",
        )
        .bind(request.user_id)
        .bind(request.game)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StorageError::NotFound)?;
        // Read after the wallet lock is held: a concurrent request with the same key has
        // committed (and is seen here) or has not started its writes.
        if let Some(answer) = replay(&mut tx, request.user_id, request.idempotency.as_ref()).await?
        {
            tx.rollback().await?;
            return Ok(answer);
        }
        let rows::Drawn {
            play,
            status,
            ledger,
            nonce,
        } = rows::draw(&start, &request)?;
        let state = play.state.clone();
        let settled = SettledRound {
            round_id: request.round_id,
            status: status.to_owned(),
            game: request.game.to_owned(),
            bet: request.bet,
            win: play.win,
            balance: ledger.after_win,
            detail: play.detail,
            server_seed_hash: start.server_seed_hash,
            client_seed: start.client_seed,
            nonce,
            created_at: now,
        };
        let (key, fingerprint) = match &request.idempotency {
            Some(i) => (Some(i.key.as_str()), Some(i.fingerprint.as_str())),
            None => (None, None),
        };

        // Ledger ids follow VALUES order, so the win always comes after its bet.
        sqlx::query(
            "WITH round AS ( \
                                  INSERT INTO game_rounds (id, user_id, game, bet, win, status, detail, \
                                          server_seed_hash, client_seed, nonce, created_at, \
                                          updated_at, state) \
                 VALUES ($1, $2, $3, $4, $5, $22, $6, $7, $8, $9, $10, $10, $23) RETURNING id), \
             wallet AS (UPDATE wallets SET balance = $11, updated_at = $10 WHERE user_id = $2), \
             seed AS (UPDATE fairness_seeds SET nonce = nonce + 1 WHERE user_id = $2), \
             idem AS (INSERT INTO idempotency_keys (user_id, key, fingerprint, response, round_id, created_at) \
                      SELECT $2, $19, $20, $21, $1, $10 WHERE $19::TEXT IS NOT NULL) \
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
        .bind(settled.win) // $5
        .bind(Json(&settled.detail)) // $6
        .bind(&settled.server_seed_hash) // $7
        .bind(&settled.client_seed) // $8
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
        .bind(key) // $19
        .bind(fingerprint) // $20
                .bind(Json(&settled)) // $21
        .bind(status) // $22
        .bind(state.map(Json)) // $23
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Played {
            value: settled,
            replayed: false,
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
        self.draws
            .queue
            .as_ref()
            .map(|queue| queue.sent())
            .unwrap_or_default()
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
