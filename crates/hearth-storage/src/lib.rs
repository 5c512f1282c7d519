//! Storage for Hearth: repository traits with a SQLite and a PostgreSQL implementation.
//!
//! The backend is chosen by the database URL's scheme (`sqlite:` or `postgres:`) in
//! [`connect`], which returns one `Arc<dyn Database>`; everything above this crate codes
//! against the traits and never sees SQL.
//!
//! # Layout
//! - [`Database`] and the repository traits it combines: [`UserRepository`],
//!   [`AccountRepository`], [`RevocationRepository`], [`WalletRepository`],
//!   [`GameRepository`], [`CampaignRepository`] and [`Maintenance`]; [`ConversationRepository`]
//!   (module [`conversations`]): AI chat conversations and their messages, owned by a user;
//!   [`JobRepository`] and [`BackupRepository`]; [`LifeRepository`] (module [`life`]): the
//!   life simulation's saved lives and the lease that lets one gateway drive each.
//! - [`admin`]: [`AdminRepository`], operators' storage: bans, the append-only admin audit
//!   trail, coin adjustments (an `adjustment` ledger entry), account search, figures.
//! - [`campaign`]: the tabletop campaign manager's records (campaigns, members, sessions,
//!   NPCs, maps, timeline entries), one implementation for both backends.
//! - [`backup`]: [`BackupRepository`], a verified backup (PostgreSQL: `pg_dump`/`pg_restore`;
//!   SQLite: `VACUUM INTO`), reconciled after restoring.
//! - [`jobs`]: the durable job queue (claims under a lease, retries, dead letters, schedule
//!   slots), with the outbox: jobs written in the transaction of the change causing them.
//! - [`model`]: the rows the traits take and return, and [`model::Cursor`] for keyset pages.
//! - [`postgres`] and [`sqlite`]: the two implementations, with their migrations embedded
//!   from `migrations/postgres` and `migrations/sqlite`.
//! - [`StorageError`]: one error type, mapped from `sqlx` in one place.
//!
//! Money moves only through [`GameRepository::play_round`] (and the bonus written by
//! [`UserRepository::create_user`]): each call is one database transaction holding the
//! wallet's row lock (PostgreSQL) or the write lock (SQLite) from the balance check to the
//! commit, so concurrent requests on one wallet never lose or double an update.
//!
//! # Example
//! ```no_run
//! # async fn example() -> Result<(), hearth_storage::StorageError> {
//! use hearth_storage::DatabaseSettings;
//!
//! let settings = DatabaseSettings { url: "sqlite://data/example.db".into(), ..Default::default() };
//! let db = hearth_storage::connect(&settings).await?;
//! db.migrate().await?;
//! db.ping().await?;
//! # Ok(()) }
//! ```
//!
//! # What it does not do
//! It knows no HTTP and no passwords: it stores the hash it is given. Game rules come from
//! `hearth-domain` as a closure; this crate only runs them inside the transaction.

pub mod admin;
pub mod backup;
pub mod campaign;
pub mod conversations;
pub mod jobs;
pub mod leaderboard;
pub mod life;
pub mod model;
pub mod postgres;
pub mod sqlite;

mod error;
mod round;
mod rows;
mod settings;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

pub use admin::AdminRepository;
pub use backup::{BackupError, BackupReport, BackupRepository};
pub use campaign::CampaignRepository;
pub use conversations::{
    ChatMessage, ChatRole, Conversation, ConversationRepository, MAX_MESSAGE_PAGE, NewChatMessage,
};
pub use error::StorageError;
pub use jobs::{
    Claim, ClaimedJob, FailOutcome, Job, JobKindStats, JobRepository, JobState, NewJob,
};
pub use life::{LifeRecord, LifeRepository, LifeSave, LifeStatus};
pub use model::{
    ActRequest, Cursor, DailyBalance, FairnessState, Idempotency, LedgerEntry, LedgerQuery,
    LoginAlert, NewEmail, NewPasswordReset, NewUser, NewVerification, OutboxEmail, Page, Played,
    PlayerStats, PoolStats, Profile, Reconciliation, Revocation, RoundPlay, RoundRecord,
    RoundRequest, RoundStatements, SeedRotation, SettledRound, Step, StepFn, TotpState, User,
    UserCredentials, Wallet, WalletMismatch,
};
pub use settings::DatabaseSettings;

/// Accounts.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Creates a user with their wallet, the starting bonus as a ledger entry, and their
    /// provably-fair seeds, in one transaction.
    ///
    /// # Errors
    /// [`StorageError::Conflict`] naming the constraint when the username (case-insensitive)
    /// or e-mail is taken.
    async fn create_user(&self, new: NewUser) -> Result<User, StorageError>;

    /// Finds a user by username (case-insensitive) or normalised e-mail, with the password hash.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] or [`StorageError::Other`] when the query fails.
    async fn find_credentials(&self, login: &str) -> Result<Option<UserCredentials>, StorageError>;

    /// Finds a user by id.
    ///
    /// # Errors
    /// As [`UserRepository::find_credentials`].
    async fn find_user(&self, id: Uuid) -> Result<Option<User>, StorageError>;
}

/// Account security: passwords, roles, resets with their outbox e-mail, and the second factor.
#[async_trait]
pub trait AccountRepository: Send + Sync {
    /// Replaces a user's password hash and voids every outstanding reset token of theirs, in
    /// one transaction: a code mailed before the change must not undo it.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when there is no such user (nothing is written then).
    async fn set_password(&self, user: Uuid, password_hash: &str) -> Result<(), StorageError>;

    /// Sets the role of the user with this username (case-insensitive) and returns them.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when there is no such user.
    async fn set_role(&self, username: &str, role: &str) -> Result<User, StorageError>;

    /// Finds a user by normalised e-mail.
    ///
    /// # Errors
    /// When the query fails.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StorageError>;

    /// Stores a reset token's hash and queues its e-mail, in one transaction.
    ///
    /// # Errors
    /// When the write fails (nothing is written then).
    async fn create_password_reset(&self, reset: NewPasswordReset) -> Result<(), StorageError>;

    /// Uses a reset token: when it exists, is unused and has not expired at `now`, marks it and
    /// every other outstanding token of the same user used and sets the new password hash, in
    /// one transaction, and returns the user. `None` for any other token (a second use, or a
    /// token voided by an earlier reset or password change, included).
    ///
    /// # Errors
    /// When the write fails (nothing is written then).
    async fn complete_password_reset(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: time::OffsetDateTime,
    ) -> Result<Option<Uuid>, StorageError>;

    /// The user's second-factor state.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when there is no such user.
    async fn totp(&self, user: Uuid) -> Result<TotpState, StorageError>;

    /// Stores a new secret for enrolment; `false` (and nothing changes) while one is enabled.
    ///
    /// # Errors
    /// When the write fails.
    async fn begin_totp(&self, user: Uuid, secret: &str) -> Result<bool, StorageError>;

    /// Enables the second factor with the step the confirming code matched and the hashes of
    /// fresh backup codes (replacing any earlier ones); `false` if it was already enabled or
    /// enrolment never began.
    ///
    /// # Errors
    /// When the write fails (nothing is written then).
    async fn enable_totp(
        &self,
        user: Uuid,
        step: i64,
        backup_code_hashes: &[String],
    ) -> Result<bool, StorageError>;

    /// Turns the second factor off: forgets the secret, the last used step and every backup
    /// code, in one transaction. `false` (and nothing changes) when it was not enabled.
    ///
    /// # Errors
    /// When the write fails (nothing is written then).
    async fn disable_totp(&self, user: Uuid) -> Result<bool, StorageError>;

    /// Replaces every backup code of the user, used or not, with the hashes of fresh ones, in
    /// one transaction. `false` (and nothing changes) when the second factor is not enabled.
    ///
    /// # Errors
    /// When the write fails (nothing is written then).
    async fn replace_backup_codes(
        &self,
        user: Uuid,
        backup_code_hashes: &[String],
    ) -> Result<bool, StorageError>;

    /// Records a login code's step; `false` if that step (or a later one) was used already.
    ///
    /// # Errors
    /// When the write fails.
    async fn use_totp_step(&self, user: Uuid, step: i64) -> Result<bool, StorageError>;

    /// Uses up a backup code by its hash; `false` if it is unknown or used.
    ///
    /// # Errors
    /// When the write fails.
    async fn use_backup_code(&self, user: Uuid, code_hash: &str) -> Result<bool, StorageError>;

    /// The oldest unsent outbox messages.
    ///
    /// # Errors
    /// When the query fails.
    async fn pending_emails(&self, limit: u32) -> Result<Vec<OutboxEmail>, StorageError>;

    /// One outbox message, when it has not been sent yet (`None` once sent, or unknown).
    ///
    /// # Errors
    /// When the query fails.
    async fn unsent_email(&self, id: Uuid) -> Result<Option<OutboxEmail>, StorageError>;

    /// Uses an e-mail verification token: when it exists, is unused, has not expired at `now`
    /// and names the account's current address, marks it used and the address verified, in
    /// one transaction, and returns the user. `None` for any other token.
    ///
    /// # Errors
    /// When the write fails (nothing is written then).
    async fn verify_email(
        &self,
        token_hash: &str,
        now: time::OffsetDateTime,
    ) -> Result<Option<Uuid>, StorageError>;

    /// Whether the user's current address is verified.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when there is no such user.
    async fn email_verified(&self, user: Uuid) -> Result<bool, StorageError>;

    /// A user and whether their current address is verified, in one read (what `GET /v1/me`
    /// shows); `None` when there is no such user.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] or [`StorageError::Other`] when the query fails.
    async fn find_profile(&self, user: Uuid) -> Result<Option<Profile>, StorageError>;

    /// Records a login from `address`; when the account has logged in before but never from
    /// it, queues `alert` (outbox and delivery job) in the same transaction and returns `true`.
    ///
    /// # Errors
    /// When the write fails (nothing is written then).
    async fn record_login_address(
        &self,
        user: Uuid,
        address: &str,
        alert: LoginAlert,
    ) -> Result<bool, StorageError>;

    /// Deletes password-reset and e-mail verification tokens that expired before `before`;
    /// returns how many.
    ///
    /// # Errors
    /// When the statement fails.
    async fn purge_expired_tokens(&self, before: time::OffsetDateTime)
    -> Result<u64, StorageError>;

    /// Counts a delivery attempt and, when `sent`, marks the message sent at `now`; `false`
    /// when it was marked sent already.
    ///
    /// # Errors
    /// When the statement fails.
    async fn record_email_attempt(
        &self,
        id: Uuid,
        sent: bool,
        now: time::OffsetDateTime,
    ) -> Result<bool, StorageError>;
}

/// The record of revocations: revoked tokens, sessions and users, and refresh tokens already
/// exchanged. Caches of it (Redis, process memory) may be lost; this is what they are refilled
/// from. Rows whose `until` has passed refuse nothing and are purged.
#[async_trait]
pub trait RevocationRepository: Send + Sync {
    /// Records a revocation. Recording one that exists keeps the later expiry and, for a user,
    /// the later cutoff, so a revocation is never narrowed.
    ///
    /// # Errors
    /// When the write fails (nothing is recorded then).
    async fn record_revocation(&self, revocation: Revocation) -> Result<(), StorageError>;

    /// Every revocation still in force at `now` (epoch seconds), used refresh tokens excluded.
    ///
    /// # Errors
    /// When the query fails.
    async fn active_revocations(&self, now: u64) -> Result<Vec<Revocation>, StorageError>;

    /// Marks a refresh token as exchanged, atomically: `true` the first time, `false` when it
    /// was marked before (a replay). `until` is the token's expiry.
    ///
    /// # Errors
    /// When the write fails.
    async fn consume_refresh(&self, jti: Uuid, until: u64) -> Result<bool, StorageError>;

    /// Deletes every row that stopped mattering before `now` (epoch seconds); returns how many.
    ///
    /// # Errors
    /// When the statement fails.
    async fn purge_revocations(&self, now: u64) -> Result<u64, StorageError>;
}

/// Wallets and the ledger.
#[async_trait]
pub trait WalletRepository: Send + Sync {
    /// A user's wallet.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when the user has none.
    async fn wallet(&self, user: Uuid) -> Result<Wallet, StorageError>;

    /// One page of a user's ledger, newest first.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] or [`StorageError::Other`] when the query fails.
    async fn ledger_page(
        &self,
        user: Uuid,
        query: LedgerQuery,
    ) -> Result<Page<LedgerEntry>, StorageError>;

    /// Daily closing balances for the last `days` UTC days (today included), oldest first;
    /// days without entries carry the previous balance.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when the user has no wallet.
    async fn balance_history(
        &self,
        user: Uuid,
        days: u32,
    ) -> Result<Vec<DailyBalance>, StorageError>;

    /// Totals over the user's settled rounds, computed by the database.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when the user has no wallet.
    async fn stats(&self, user: Uuid) -> Result<PlayerStats, StorageError>;

    /// Deletes idempotency keys older than `retention`; returns how many.
    ///
    /// # Errors
    /// When the statement fails.
    async fn purge_idempotency_keys(
        &self,
        retention: std::time::Duration,
    ) -> Result<u64, StorageError>;

    /// Compares every wallet's balance with the sum of its ledger.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] or [`StorageError::Other`] when the query fails.
    async fn reconcile(&self) -> Result<Reconciliation, StorageError>;
}

/// Game rounds.
#[async_trait]
pub trait GameRepository: Send + Sync {
    /// Plays and settles one round in one transaction: locks the wallet, checks the balance,
    /// draws the outcome with the user's seeds and next nonce, writes the round, the bet and
    /// win ledger entries and the new balance, and advances the nonce.
    ///
    /// # Errors
    /// [`StorageError::InsufficientBalance`] when the balance cannot cover the bet;
    /// [`StorageError::Game`] when the rules refuse the round; [`StorageError::NotFound`] for
    /// an unknown user. Nothing is written on error.
    async fn play_round(
        &self,
        request: RoundRequest<'_>,
    ) -> Result<Played<SettledRound>, StorageError>;

    /// Acts on an open round in one transaction: locks the wallet and the round, runs the
    /// step on the stored state, debits any extra stake, and settles the round (crediting the
    /// win) when the step says it is over.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for a round that is not the user's or not of this game;
    /// [`StorageError::Conflict`] with constraint `round_settled` when it is already over;
    /// [`StorageError::InsufficientBalance`] when the extra stake cannot be covered;
    /// [`StorageError::Game`] when the rules refuse the action. Nothing is written on error.
    async fn act(&self, request: ActRequest<'_>) -> Result<Played<SettledRound>, StorageError>;

    /// One of the user's rounds, with the server seed once it has been revealed.
    ///
    /// # Errors
    /// When the query fails. Another user's round is `Ok(None)`, as if it did not exist.
    async fn round(&self, user: Uuid, round: Uuid) -> Result<Option<RoundRecord>, StorageError>;
}

/// Provably-fair seeds.
#[async_trait]
pub trait FairnessRepository: Send + Sync {
    /// The user's current seed hash, client seed and next nonce.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an unknown user.
    async fn fairness(&self, user: Uuid) -> Result<FairnessState, StorageError>;

    /// Sets the client seed for the following rounds.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an unknown user.
    async fn set_client_seed(
        &self,
        user: Uuid,
        seed: &hearth_domain::fairness::ClientSeed,
    ) -> Result<FairnessState, StorageError>;

    /// Retires the current server seed (revealing it) and starts `next` with nonce 0.
    ///
    /// # Errors
    /// [`StorageError::Conflict`] with constraint `open_round` while a round is open: revealing
    /// the seed would reveal that round's future.
    async fn rotate_seed(
        &self,
        user: Uuid,
        next: hearth_domain::fairness::ServerSeed,
    ) -> Result<SeedRotation, StorageError>;
}

/// Health and schema management.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// Applies pending migrations.
    ///
    /// # Errors
    /// [`StorageError::Migrate`] when a migration fails or the applied history differs from
    /// the embedded one.
    async fn migrate(&self) -> Result<(), StorageError>;

    /// Versions of embedded migrations not applied (successfully) to this database.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when the database cannot be reached.
    async fn pending_migrations(&self) -> Result<Vec<i64>, StorageError>;

    /// A round trip to the database.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when the database cannot be reached.
    async fn ping(&self) -> Result<(), StorageError>;

    /// Pool size and idle connections right now.
    fn pool_stats(&self) -> PoolStats;

    /// What the round queue has sent so far; zeros where there is none.
    fn round_statements(&self) -> RoundStatements {
        RoundStatements::default()
    }

    /// `"postgres"` or `"sqlite"`.
    fn backend(&self) -> &'static str;

    /// Closes the pool, waiting for connections in use to be returned.
    async fn close(&self);
}

/// Everything Hearth stores, behind one object.
pub trait Database:
    UserRepository
    + AccountRepository
    + RevocationRepository
    + WalletRepository
    + GameRepository
    + FairnessRepository
    + JobRepository
    + BackupRepository
    + leaderboard::LeaderboardSource
    + CampaignRepository
    + Maintenance
    + ConversationRepository
    + AdminRepository
    + LifeRepository
{
    /// This database as the source of leaderboard rebuilds.
    fn as_leaderboard_source(&self) -> &dyn leaderboard::LeaderboardSource;
}

impl<T> Database for T
where
    T: UserRepository
        + AccountRepository
        + RevocationRepository
        + WalletRepository
        + GameRepository
        + FairnessRepository
        + JobRepository
        + BackupRepository
        + leaderboard::LeaderboardSource
        + CampaignRepository
        + Maintenance
        + ConversationRepository
        + AdminRepository
        + LifeRepository,
{
    fn as_leaderboard_source(&self) -> &dyn leaderboard::LeaderboardSource {
        self
    }
}

/// Connects to the database the URL names (`sqlite:…` or `postgres:…`/`postgresql:…`).
///
/// SQLite files and their directory are created on first use.
///
/// # Errors
/// [`StorageError::UnsupportedUrl`] for any other scheme; [`StorageError::Unavailable`] when
/// the server cannot be reached.
pub async fn connect(settings: &DatabaseSettings) -> Result<Arc<dyn Database>, StorageError> {
    let url = secrecy::ExposeSecret::expose_secret(&settings.url);
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteDatabase::connect(settings).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(
            postgres::PostgresDatabase::connect(settings).await?,
        ))
    } else {
        Err(StorageError::UnsupportedUrl {
            scheme: settings.scheme().to_owned(),
        })
    }
}
