//! Operators' storage (issue #25): banned accounts, the append-only admin audit trail, coin
//! adjustments, account search, a user's rounds, and the figures of the admin console.
//!
//! Like [`campaign`](crate::campaign), the statements are written once in the dialect both
//! backends accept (`$N` parameters) and a macro implements [`AdminRepository`] for both
//! databases, which differ in how a write transaction begins, in PostgreSQL's `FOR UPDATE` on
//! the rows an action changes, and in how a timestamp becomes a UTC day.
//!
//! Every action that writes (ban, unban, adjustment) appends its audit row in its own
//! transaction, so an action never exists without its audit row nor the reverse. The table
//! refuses `UPDATE` and `DELETE` by trigger on both backends (and `TRUNCATE` on PostgreSQL);
//! nothing in this crate tries either.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::campaign::{KeyCursor, KeyPage};
use crate::{Cursor, Idempotency, Page, Played, StorageError};

/// The `constraint` of the conflict a ban of a banned account gets.
pub const ALREADY_BANNED: &str = "already_banned";
/// The `constraint` of the conflict an unban of an account that is not banned gets.
pub const NOT_BANNED: &str = "not_banned";
/// The largest page of any admin list.
pub const MAX_ADMIN_PAGE: u32 = 100;

/// An account as operators see it: who, and whether it is banned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AccountSummary {
    /// The user's id.
    pub id: Uuid,
    /// The username, with its case.
    pub username: String,
    /// The normalised e-mail.
    pub email: String,
    /// `player` or `admin`.
    pub role: String,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When an operator banned it; `None` while it may log in.
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    /// Why, as the operator wrote it.
    pub disabled_reason: Option<String>,
}

/// Whether an account is banned, read at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// When.
    pub at: OffsetDateTime,
    /// Why.
    pub reason: String,
}

/// How an admin request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditOutcome {
    /// The action was carried out.
    Done,
    /// It was refused; the text says why (`not_admin`, `totp_invalid`, `already_banned`, …).
    Refused(String),
}

/// An audit row to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAudit {
    /// The caller's user id, when a valid token named one.
    pub actor_id: Option<Uuid>,
    /// What was asked (`users.ban`, `users.adjust`, …), at most 64 characters.
    pub action: String,
    /// The account the action is about.
    pub target_user_id: Option<Uuid>,
    /// The operator's reason, when the action takes one (at most 500 characters).
    pub reason: Option<String>,
    /// The client address.
    pub client_ip: Option<String>,
    /// The request id, as in logs and problem bodies.
    pub request_id: Option<String>,
    /// Done or refused, and why.
    pub outcome: AuditOutcome,
    /// What the action touched (amounts, ids, the search); never secrets.
    pub detail: serde_json::Value,
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Monotonic; pages are keyed on it.
    pub id: i64,
    /// When the row was written.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The caller, when known.
    pub actor_id: Option<Uuid>,
    /// What was asked.
    pub action: String,
    /// The account it was about.
    pub target_user_id: Option<Uuid>,
    /// The operator's reason.
    pub reason: Option<String>,
    /// The client address.
    pub client_ip: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// `done` or `refused`.
    pub outcome: String,
    /// Why it was refused; `None` when done.
    pub refusal: Option<String>,
    /// What the action touched.
    pub detail: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: OffsetDateTime,
    actor_id: Option<Uuid>,
    action: String,
    target_user_id: Option<Uuid>,
    reason: Option<String>,
    client_ip: Option<String>,
    request_id: Option<String>,
    outcome: String,
    refusal: Option<String>,
    detail: sqlx::types::Json<serde_json::Value>,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        Self {
            id: row.id,
            at: row.at,
            actor_id: row.actor_id,
            action: row.action,
            target_user_id: row.target_user_id,
            reason: row.reason,
            client_ip: row.client_ip,
            request_id: row.request_id,
            outcome: row.outcome,
            refusal: row.refusal,
            detail: row.detail.0,
        }
    }
}

/// One of a user's rounds, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RoundSummary {
    /// The round's id.
    pub id: Uuid,
    /// `slots`, `dice`, `roulette` or `blackjack`.
    pub game: String,
    /// The stake, doubles included.
    pub bet: i64,
    /// What was paid back.
    pub win: i64,
    /// `open` or `settled`.
    pub status: String,
    /// When it was played.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The commitment of the server seed it was drawn with.
    pub server_seed_hash: String,
    /// The client seed.
    pub client_seed: String,
    /// The nonce.
    pub nonce: i64,
}

/// A coin adjustment by an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAdjustment {
    /// The account whose wallet changes.
    pub user_id: Uuid,
    /// Signed and non-zero: a debit is negative.
    pub amount: i64,
    /// The operator's reason, written as the ledger line's description.
    pub reason: String,
    /// The acting admin's key: keys belong to the admin, like a player's belong to the player.
    pub idempotency: Idempotency,
    /// The audit row written with it; its detail gains `entry_id`, `balance_before` and
    /// `balance_after`.
    pub audit: NewAudit,
}

/// Rounds, stakes and payouts of one game over one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct GameFigures {
    /// The game.
    pub game: String,
    /// Settled rounds.
    pub rounds: i64,
    /// Their stakes.
    pub wagered: i64,
    /// What they paid back.
    pub paid: i64,
}

/// [`GameFigures`] for one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DailyFigures {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// The game.
    pub game: String,
    /// Settled rounds.
    pub rounds: i64,
    /// Their stakes.
    pub wagered: i64,
    /// What they paid back.
    pub paid: i64,
}

/// A reconciliation run, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ReconciliationRun {
    /// When it finished.
    #[serde(rename = "at", with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Wallets checked.
    pub wallets: i64,
    /// Wallets whose balance was not their ledger sum.
    pub mismatches: i64,
}

/// The figures of the admin console, from the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminFigures {
    /// Per game since the start of today (UTC).
    pub today: Vec<GameFigures>,
    /// Per game over the last 7 UTC days, today included.
    pub last_7_days: Vec<GameFigures>,
    /// Per game, ever.
    pub all_time: Vec<GameFigures>,
    /// Per day and game over the last 14 UTC days, days without rounds absent.
    pub daily: Vec<DailyFigures>,
    /// Distinct players with a settled round today.
    pub active_today: i64,
    /// Distinct players with a settled round in the last 7 days.
    pub active_7_days: i64,
    /// Blackjack hands dealt and not settled.
    pub open_blackjack_hands: i64,
    /// The last reconciliation run recorded.
    pub reconciliation: Option<ReconciliationRun>,
}

/// Operators' reads and actions.
#[async_trait]
pub trait AdminRepository: Send + Sync {
    /// Appends one audit row on its own (reads and refusals); returns its id.
    ///
    /// # Errors
    /// When the write fails.
    async fn append_audit(&self, audit: NewAudit) -> Result<i64, StorageError>;

    /// A page of the audit trail, newest first, optionally about one account only.
    ///
    /// # Errors
    /// When the query fails.
    async fn audit_page(
        &self,
        target: Option<Uuid>,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<AuditEntry>, StorageError>;

    /// Accounts whose id is `query`, or whose username (any case) or e-mail starts with it;
    /// every account without one. Newest first.
    ///
    /// # Errors
    /// When the query fails.
    async fn search_accounts(
        &self,
        query: Option<&str>,
        after: Option<KeyCursor>,
        limit: u32,
    ) -> Result<KeyPage<AccountSummary>, StorageError>;

    /// One account, banned or not.
    ///
    /// # Errors
    /// When the query fails.
    async fn account(&self, user: Uuid) -> Result<Option<AccountSummary>, StorageError>;

    /// Whether the account is banned (`None` also for an unknown account).
    ///
    /// # Errors
    /// When the query fails.
    async fn ban_of(&self, user: Uuid) -> Result<Option<Ban>, StorageError>;

    /// Bans the account with the audit's reason and appends the audit row, in one transaction.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an unknown account; [`StorageError::Conflict`] on
    /// [`ALREADY_BANNED`]. Nothing is written on error.
    async fn ban_account(
        &self,
        user: Uuid,
        reason: &str,
        audit: NewAudit,
    ) -> Result<AccountSummary, StorageError>;

    /// Lifts a ban and appends the audit row, in one transaction.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an unknown account; [`StorageError::Conflict`] on
    /// [`NOT_BANNED`]. Nothing is written on error.
    async fn unban_account(
        &self,
        user: Uuid,
        audit: NewAudit,
    ) -> Result<AccountSummary, StorageError>;

    /// Adjusts a wallet in one transaction under its lock: an `adjustment` ledger entry, the
    /// new balance, the audit row and the idempotency key with the answer
    /// (`{"entry": …, "wallet": …}`). A key used before with the same request replays that
    /// answer and writes nothing.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an account without a wallet;
    /// [`StorageError::InsufficientBalance`] when a debit would take the balance below zero;
    /// [`StorageError::IdempotencyMismatch`] for a key used with another request. Nothing is
    /// written on error.
    async fn adjust_balance(
        &self,
        adjustment: NewAdjustment,
    ) -> Result<Played<serde_json::Value>, StorageError>;

    /// A page of the user's rounds, newest first, open ones included.
    ///
    /// # Errors
    /// When the query fails.
    async fn rounds_page(
        &self,
        user: Uuid,
        after: Option<KeyCursor>,
        limit: u32,
    ) -> Result<KeyPage<RoundSummary>, StorageError>;

    /// Records a reconciliation run's outcome.
    ///
    /// # Errors
    /// When the write fails.
    async fn record_reconciliation(
        &self,
        wallets: u64,
        mismatches: u64,
        at: OffsetDateTime,
    ) -> Result<(), StorageError>;

    /// The console's figures as of `now`.
    ///
    /// # Errors
    /// When a query fails.
    async fn admin_figures(&self, now: OffsetDateTime) -> Result<AdminFigures, StorageError>;
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` prefix pattern.
fn like_prefix(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn outcome_columns(outcome: &AuditOutcome) -> (&'static str, Option<&str>) {
    match outcome {
        AuditOutcome::Done => ("done", None),
        AuditOutcome::Refused(why) => ("refused", Some(why.as_str())),
    }
}

fn key_page<T>(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> KeyCursor) -> KeyPage<T> {
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(cursor)
    } else {
        None
    };
    KeyPage { items, next_cursor }
}

fn nanos(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn from_nanos(nanos: i64) -> Result<OffsetDateTime, StorageError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .map_err(|_| StorageError::Corrupt("cursor time out of range".into()))
}

/// The start of the UTC day `days_back` days before `now`'s.
fn day_start(now: OffsetDateTime, days_back: i64) -> OffsetDateTime {
    let midnight = now
        .to_offset(time::UtcOffset::UTC)
        .replace_time(time::Time::MIDNIGHT);
    midnight - time::Duration::days(days_back)
}

mod sql {
    pub(super) const INSERT_AUDIT: &str = "INSERT INTO admin_audit (at, actor_id, action, \
        target_user_id, reason, client_ip, request_id, outcome, refusal, detail) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";
    pub(super) const AUDIT_PAGE: &str = "SELECT id, at, actor_id, action, target_user_id, \
        reason, client_ip, request_id, outcome, refusal, detail FROM admin_audit \
        WHERE id < $1 ORDER BY id DESC LIMIT $2";
    pub(super) const AUDIT_PAGE_OF_TARGET: &str = "SELECT id, at, actor_id, action, \
        target_user_id, reason, client_ip, request_id, outcome, refusal, detail FROM admin_audit \
        WHERE target_user_id = $3 AND id < $1 ORDER BY id DESC LIMIT $2";
    pub(super) const ACCOUNT: &str = "SELECT id, username, email, role, created_at, \
        disabled_at, disabled_reason FROM users WHERE id = $1";
    pub(super) const SEARCH_ALL: &str = "SELECT id, username, email, role, created_at, \
        disabled_at, disabled_reason FROM users WHERE id < $1 ORDER BY id DESC LIMIT $2";
    pub(super) const SEARCH_PREFIX: &str = "SELECT id, username, email, role, created_at, \
        disabled_at, disabled_reason FROM users \
        WHERE (lower(username) LIKE $3 ESCAPE '\\' OR email LIKE $3 ESCAPE '\\') \
        AND id < $1 ORDER BY id DESC LIMIT $2";
    pub(super) const BAN_STATE: &str =
        "SELECT disabled_at, disabled_reason FROM users WHERE id = $1";
    pub(super) const BAN: &str = "UPDATE users SET disabled_at = $2, disabled_reason = $3, \
        updated_at = $2 WHERE id = $1 RETURNING id, username, email, role, created_at, \
        disabled_at, disabled_reason";
    pub(super) const UNBAN: &str = "UPDATE users SET disabled_at = NULL, disabled_reason = NULL, \
        updated_at = $2 WHERE id = $1 RETURNING id, username, email, role, created_at, \
        disabled_at, disabled_reason";
    pub(super) const IDEMPOTENCY: &str =
        "SELECT fingerprint, response FROM idempotency_keys WHERE user_id = $1 AND key = $2";
    pub(super) const REMEMBER: &str = "INSERT INTO idempotency_keys (user_id, key, fingerprint, \
        response, round_id, created_at) VALUES ($1, $2, $3, $4, NULL, $5)";
    pub(super) const INSERT_ADJUSTMENT: &str = "INSERT INTO ledger_entries (user_id, kind, \
        amount, balance_before, balance_after, game, round_id, description, metadata, status, \
        created_at) VALUES ($1, 'adjustment', $2, $3, $4, NULL, NULL, $5, $6, 'settled', $7) \
        RETURNING id, user_id, kind, amount, balance_before, balance_after, game, round_id, \
        description, metadata, status, created_at";
    pub(super) const SET_BALANCE: &str =
        "UPDATE wallets SET balance = $2, updated_at = $3 WHERE user_id = $1";
    /// Served by `game_rounds_user_created_idx (user_id, created_at DESC)`.
    pub(super) const ROUNDS_FIRST: &str = "SELECT id, game, bet, win, status, created_at, \
        server_seed_hash, client_seed, nonce FROM game_rounds \
        WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2";
    pub(super) const ROUNDS_AFTER: &str = "SELECT id, game, bet, win, status, created_at, \
        server_seed_hash, client_seed, nonce FROM game_rounds \
        WHERE user_id = $1 AND (created_at < $3 OR (created_at = $3 AND id < $4)) \
        ORDER BY created_at DESC, id DESC LIMIT $2";
    pub(super) const RECORD_RECONCILIATION: &str =
        "INSERT INTO reconciliation_runs (finished_at, wallets, mismatches) VALUES ($1, $2, $3)";
    pub(super) const LAST_RECONCILIATION: &str = "SELECT finished_at, wallets, mismatches \
        FROM reconciliation_runs ORDER BY id DESC LIMIT 1";
    /// Settled rounds since `$1`, by game: the window is served by the index on the rounds'
    /// time (the partial B-tree on settled rounds on SQLite, the BRIN on PostgreSQL).
    pub(super) const FIGURES_SINCE: &str = "SELECT game, COUNT(*) AS rounds, \
        CAST(COALESCE(SUM(bet), 0) AS BIGINT) AS wagered, \
        CAST(COALESCE(SUM(win), 0) AS BIGINT) AS paid \
        FROM game_rounds WHERE status = 'settled' AND created_at >= $1 GROUP BY game ORDER BY game";
    /// Every settled round, by game: a whole scan, by nature.
    pub(super) const FIGURES_ALL: &str = "SELECT game, COUNT(*) AS rounds, \
        CAST(COALESCE(SUM(bet), 0) AS BIGINT) AS wagered, \
        CAST(COALESCE(SUM(win), 0) AS BIGINT) AS paid \
        FROM game_rounds WHERE status = 'settled' GROUP BY game ORDER BY game";
    pub(super) const ACTIVE_SINCE: &str = "SELECT COUNT(DISTINCT user_id) FROM game_rounds \
        WHERE status = 'settled' AND created_at >= $1";
    /// Served by the partial unique index on open rounds.
    pub(super) const OPEN_HANDS: &str =
        "SELECT COUNT(*) FROM game_rounds WHERE status = 'open' AND game = 'blackjack'";
}

#[derive(sqlx::FromRow)]
struct BanRow {
    disabled_at: Option<OffsetDateTime>,
    disabled_reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct StoredAnswer {
    fingerprint: String,
    response: sqlx::types::Json<serde_json::Value>,
}

/// Implements [`AdminRepository`] for a backend. `$begin` opens a write transaction; `$lock`
/// is appended to the reads of the rows an action changes; `$day` turns `created_at` into a
/// `YYYY-MM-DD` UTC day.
macro_rules! admin_repository {
    ($backend:ty, $db:ty, $begin:literal, $lock:literal, $day:literal) => {
        async fn insert_audit(
            tx: &mut sqlx::Transaction<'static, $db>,
            audit: &NewAudit,
            at: OffsetDateTime,
        ) -> Result<i64, StorageError> {
            let (outcome, refusal) = outcome_columns(&audit.outcome);
            Ok(sqlx::query_scalar(sql::INSERT_AUDIT)
                .bind(at)
                .bind(audit.actor_id)
                .bind(&audit.action)
                .bind(audit.target_user_id)
                .bind(audit.reason.as_deref())
                .bind(audit.client_ip.as_deref())
                .bind(audit.request_id.as_deref())
                .bind(outcome)
                .bind(refusal)
                .bind(sqlx::types::Json(&audit.detail))
                .fetch_one(&mut **tx)
                .await?)
        }

        #[async_trait]
        impl AdminRepository for $backend {
            async fn append_audit(&self, audit: NewAudit) -> Result<i64, StorageError> {
                let mut tx = self.pool().begin_with($begin).await?;
                let id = insert_audit(&mut tx, &audit, OffsetDateTime::now_utc()).await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn audit_page(
                &self,
                target: Option<Uuid>,
                after: Option<Cursor>,
                limit: u32,
            ) -> Result<Page<AuditEntry>, StorageError> {
                let limit = limit.clamp(1, MAX_ADMIN_PAGE);
                let before = after.map_or(i64::MAX, Cursor::id);
                let rows: Vec<AuditRow> = match target {
                    None => sqlx::query_as(sql::AUDIT_PAGE)
                        .bind(before)
                        .bind(i64::from(limit) + 1)
                        .fetch_all(self.pool())
                        .await?,
                    Some(target) => sqlx::query_as(sql::AUDIT_PAGE_OF_TARGET)
                        .bind(before)
                        .bind(i64::from(limit) + 1)
                        .bind(target)
                        .fetch_all(self.pool())
                        .await?,
                };
                let mut items: Vec<AuditEntry> = rows.into_iter().map(AuditEntry::from).collect();
                let next_cursor = if items.len() > limit as usize {
                    items.truncate(limit as usize);
                    items.last().map(|last| Cursor::after_id(last.id))
                } else {
                    None
                };
                Ok(Page { items, next_cursor })
            }

            async fn search_accounts(
                &self,
                query: Option<&str>,
                after: Option<KeyCursor>,
                limit: u32,
            ) -> Result<KeyPage<AccountSummary>, StorageError> {
                let limit = limit.clamp(1, MAX_ADMIN_PAGE);
                let query = query.map(str::trim).filter(|q| !q.is_empty());
                if let Some(id) = query.and_then(|q| Uuid::try_parse(q).ok()) {
                    let found: Option<AccountSummary> = sqlx::query_as(sql::ACCOUNT)
                        .bind(id)
                        .fetch_optional(self.pool())
                        .await?;
                    let items = found
                        .filter(|a| after.is_none_or(|c| a.id < c.id))
                        .into_iter()
                        .collect();
                    return Ok(KeyPage {
                        items,
                        next_cursor: None,
                    });
                }
                let before = after.map_or(Uuid::max(), |c| c.id);
                let rows: Vec<AccountSummary> = match query {
                    None => sqlx::query_as(sql::SEARCH_ALL)
                        .bind(before)
                        .bind(i64::from(limit) + 1)
                        .fetch_all(self.pool())
                        .await?,
                    Some(q) => sqlx::query_as(sql::SEARCH_PREFIX)
                        .bind(before)
                        .bind(i64::from(limit) + 1)
                        .bind(like_prefix(&q.to_lowercase()))
                        .fetch_all(self.pool())
                        .await?,
                };
                Ok(key_page(rows, limit, |a| KeyCursor { key: 0, id: a.id }))
            }

            async fn account(&self, user: Uuid) -> Result<Option<AccountSummary>, StorageError> {
                Ok(sqlx::query_as(sql::ACCOUNT)
                    .bind(user)
                    .fetch_optional(self.pool())
                    .await?)
            }

            async fn ban_of(&self, user: Uuid) -> Result<Option<Ban>, StorageError> {
                let row: Option<BanRow> = sqlx::query_as(sql::BAN_STATE)
                    .bind(user)
                    .fetch_optional(self.pool())
                    .await?;
                Ok(row.and_then(|r| match (r.disabled_at, r.disabled_reason) {
                    (Some(at), reason) => Some(Ban {
                        at,
                        reason: reason.unwrap_or_default(),
                    }),
                    (None, _) => None,
                }))
            }

            #[tracing::instrument(skip_all, fields(user_id = %user), err(level = "debug"))]
            async fn ban_account(
                &self,
                user: Uuid,
                reason: &str,
                audit: NewAudit,
            ) -> Result<AccountSummary, StorageError> {
                let now = OffsetDateTime::now_utc();
                let mut tx = self.pool().begin_with($begin).await?;
                let state: Option<BanRow> =
                    sqlx::query_as(concat!(
                        "SELECT disabled_at, disabled_reason FROM users WHERE id = $1",
                        $lock
                    ))
                        .bind(user)
                        .fetch_optional(&mut *tx)
                        .await?;
                let state = state.ok_or(StorageError::NotFound)?;
                if state.disabled_at.is_some() {
                    return Err(StorageError::Conflict {
                        constraint: ALREADY_BANNED.to_owned(),
                    });
                }
                let account: AccountSummary = sqlx::query_as(sql::BAN)
                    .bind(user)
                    .bind(now)
                    .bind(reason)
                    .fetch_one(&mut *tx)
                    .await?;
                insert_audit(&mut tx, &audit, now).await?;
                tx.commit().await?;
                Ok(account)
            }

            #[tracing::instrument(skip_all, fields(user_id = %user), err(level = "debug"))]
            async fn unban_account(
                &self,
                user: Uuid,
                audit: NewAudit,
            ) -> Result<AccountSummary, StorageError> {
                let now = OffsetDateTime::now_utc();
                let mut tx = self.pool().begin_with($begin).await?;
                let state: Option<BanRow> =
                    sqlx::query_as(concat!(
                        "SELECT disabled_at, disabled_reason FROM users WHERE id = $1",
                        $lock
                    ))
                        .bind(user)
                        .fetch_optional(&mut *tx)
                        .await?;
                let state = state.ok_or(StorageError::NotFound)?;
                if state.disabled_at.is_none() {
                    return Err(StorageError::Conflict {
                        constraint: NOT_BANNED.to_owned(),
                    });
                }
                let account: AccountSummary = sqlx::query_as(sql::UNBAN)
                    .bind(user)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                insert_audit(&mut tx, &audit, now).await?;
                tx.commit().await?;
                Ok(account)
            }

            #[tracing::instrument(skip_all, fields(user_id = %adjustment.user_id), err(level = "debug"))]
            async fn adjust_balance(
                &self,
                adjustment: NewAdjustment,
            ) -> Result<Played<serde_json::Value>, StorageError> {
                let now = OffsetDateTime::now_utc();
                let NewAdjustment {
                    user_id,
                    amount,
                    reason,
                    idempotency,
                    mut audit,
                } = adjustment;
                let key_owner = audit.actor_id.ok_or(StorageError::NotFound)?;
                let mut tx = self.pool().begin_with($begin).await?;
                let balance: Option<i64> = sqlx::query_scalar(concat!(
                    "SELECT balance FROM wallets WHERE user_id = $1",
                    $lock
                ))
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
                let balance = balance.ok_or(StorageError::NotFound)?;
                let stored: Option<StoredAnswer> = sqlx::query_as(sql::IDEMPOTENCY)
                    .bind(key_owner)
                    .bind(&idempotency.key)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(stored) = stored {
                    if stored.fingerprint != idempotency.fingerprint {
                        return Err(StorageError::IdempotencyMismatch);
                    }
                    return Ok(Played {
                        value: stored.response.0,
                        replayed: true,
                    });
                }
                let after = balance
                    .checked_add(amount)
                    .filter(|after| *after >= 0)
                    .ok_or(StorageError::InsufficientBalance {
                        needed: amount.saturating_neg(),
                        available: balance,
                    })?;
                let metadata = serde_json::json!({ "admin_id": key_owner });
                let entry: crate::rows::LedgerRow = sqlx::query_as(sql::INSERT_ADJUSTMENT)
                    .bind(user_id)
                    .bind(amount)
                    .bind(balance)
                    .bind(after)
                    .bind(&reason)
                    .bind(sqlx::types::Json(&metadata))
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                let entry = crate::LedgerEntry::try_from(entry)?;
                sqlx::query(sql::SET_BALANCE)
                    .bind(user_id)
                    .bind(after)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if let serde_json::Value::Object(detail) = &mut audit.detail {
                    detail.insert("entry_id".into(), entry.id.into());
                    detail.insert("balance_before".into(), balance.into());
                    detail.insert("balance_after".into(), after.into());
                }
                let audit_id = insert_audit(&mut tx, &audit, now).await?;
                let wallet = crate::Wallet {
                    user_id,
                    balance: after,
                    updated_at: now,
                };
                let answer = serde_json::json!({
                    "entry": entry,
                    "wallet": wallet,
                    "audit_id": audit_id,
                });
                sqlx::query(sql::REMEMBER)
                    .bind(key_owner)
                    .bind(&idempotency.key)
                    .bind(&idempotency.fingerprint)
                    .bind(sqlx::types::Json(&answer))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Played {
                    value: answer,
                    replayed: false,
                })
            }

            async fn rounds_page(
                &self,
                user: Uuid,
                after: Option<KeyCursor>,
                limit: u32,
            ) -> Result<KeyPage<RoundSummary>, StorageError> {
                let limit = limit.clamp(1, MAX_ADMIN_PAGE);
                let rows: Vec<RoundSummary> = match after {
                    None => sqlx::query_as(sql::ROUNDS_FIRST)
                        .bind(user)
                        .bind(i64::from(limit) + 1)
                        .fetch_all(self.pool())
                        .await?,
                    Some(cursor) => sqlx::query_as(sql::ROUNDS_AFTER)
                        .bind(user)
                        .bind(i64::from(limit) + 1)
                        .bind(from_nanos(cursor.key)?)
                        .bind(cursor.id)
                        .fetch_all(self.pool())
                        .await?,
                };
                Ok(key_page(rows, limit, |r| KeyCursor {
                    key: nanos(r.created_at),
                    id: r.id,
                }))
            }

            async fn record_reconciliation(
                &self,
                wallets: u64,
                mismatches: u64,
                at: OffsetDateTime,
            ) -> Result<(), StorageError> {
                sqlx::query(sql::RECORD_RECONCILIATION)
                    .bind(at)
                    .bind(i64::try_from(wallets).unwrap_or(i64::MAX))
                    .bind(i64::try_from(mismatches).unwrap_or(i64::MAX))
                    .execute(self.pool())
                    .await?;
                Ok(())
            }

            async fn admin_figures(
                &self,
                now: OffsetDateTime,
            ) -> Result<AdminFigures, StorageError> {
                let today = day_start(now, 0);
                let week = day_start(now, 6);
                let fortnight = day_start(now, 13);
                let pool = self.pool();
                let by_game = |since: OffsetDateTime| {
                    sqlx::query_as::<_, GameFigures>(sql::FIGURES_SINCE)
                        .bind(since)
                        .fetch_all(pool)
                };
                let today_figures = by_game(today).await?;
                let week_figures = by_game(week).await?;
                let all_time: Vec<GameFigures> =
                    sqlx::query_as(sql::FIGURES_ALL).fetch_all(pool).await?;
                let daily: Vec<DailyFigures> = sqlx::query_as(concat!(
                    "SELECT ",
                    $day,
                    " AS day, game, COUNT(*) AS rounds, \
                     CAST(COALESCE(SUM(bet), 0) AS BIGINT) AS wagered, \
                     CAST(COALESCE(SUM(win), 0) AS BIGINT) AS paid \
                     FROM game_rounds WHERE status = 'settled' AND created_at >= $1 \
                     GROUP BY 1, game ORDER BY 1, game"
                ))
                .bind(fortnight)
                .fetch_all(pool)
                .await?;
                let active = |since: OffsetDateTime| {
                    sqlx::query_scalar::<_, i64>(sql::ACTIVE_SINCE)
                        .bind(since)
                        .fetch_one(pool)
                };
                let active_today = active(today).await?;
                let active_7_days = active(week).await?;
                let open_blackjack_hands: i64 =
                    sqlx::query_scalar(sql::OPEN_HANDS).fetch_one(pool).await?;
                let reconciliation: Option<ReconciliationRun> =
                    sqlx::query_as(sql::LAST_RECONCILIATION)
                        .fetch_optional(pool)
                        .await?;
                Ok(AdminFigures {
                    today: today_figures,
                    last_7_days: week_figures,
                    all_time,
                    daily,
                    active_today,
                    active_7_days,
                    open_blackjack_hands,
                    reconciliation,
                })
            }
        }
    };
}

mod sqlite_impl {
    use super::*;

    admin_repository!(
        crate::sqlite::SqliteDatabase,
        sqlx::Sqlite,
        "BEGIN IMMEDIATE",
        "",
        "substr(created_at, 1, 10)"
    );
}

mod postgres_impl {
    use super::*;

    admin_repository!(
        crate::postgres::PostgresDatabase,
        sqlx::Postgres,
        "BEGIN",
        " FOR UPDATE",
        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_prefixes_escape_wildcards() {
        assert_eq!(like_prefix("al"), "al%");
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
    }

    #[test]
    fn days_start_at_utc_midnight() {
        let now = time::macros::datetime!(2026-12-05 18:30:00 UTC);
        assert_eq!(
            day_start(now, 0),
            time::macros::datetime!(2026-12-05 00:00:00 UTC)
        );
        assert_eq!(
            day_start(now, 6),
            time::macros::datetime!(2026-11-29 00:00:00 UTC)
        );
    }
}
