//! The values repositories take and return.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
use hearth_domain::games::GameError;
use hearth_domain::ledger::{EntryKind, EntryStatus};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A user as the rest of the system sees them (no password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Stable id (UUIDv7, so ids sort by creation).
    pub id: Uuid,
    /// The username as registered.
    pub username: String,
    /// The normalised e-mail address.
    pub email: String,
    /// `player` or `admin`.
    pub role: String,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A user and the verification state of their address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The user.
    pub user: User,
    /// Whether the current address is verified.
    pub email_verified: bool,
}

/// A user with their password hash, for login only.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    /// The user.
    pub user: User,
    /// The bcrypt hash.
    pub password_hash: String,
}

/// Everything needed to create an account.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Id chosen by the caller (UUIDv7).
    pub id: Uuid,
    /// A valid username.
    pub username: String,
    /// A normalised e-mail address.
    pub email: String,
    /// The bcrypt hash of the password.
    pub password_hash: String,
    /// `player` or `admin`.
    pub role: String,
    /// Coins credited as a `bonus` ledger entry; 0 writes no entry.
    pub starting_balance: i64,
    /// The first server seed (secret until rotated).
    pub server_seed: ServerSeed,
    /// The first client seed.
    pub client_seed: ClientSeed,
    /// The welcome mail with its e-mail verification token, written in the same transaction
    /// (with its delivery job); `None` sends none.
    pub welcome: Option<NewVerification>,
}

/// An e-mail verification token and the message carrying it.
#[derive(Debug, Clone)]
pub struct NewVerification {
    /// SHA-256 hex of the token.
    pub token_hash: String,
    /// When the token stops working.
    pub expires_at: OffsetDateTime,
    /// The message for the outbox.
    pub email: NewEmail,
    /// The trace context of the request, carried into the delivery job's span.
    pub trace_context: std::collections::HashMap<String, String>,
}

/// A login alert to queue if the login comes from an address the account has not used.
#[derive(Debug, Clone)]
pub struct LoginAlert {
    /// The message for the outbox.
    pub email: NewEmail,
    /// The trace context of the request, carried into the delivery job's span.
    pub trace_context: std::collections::HashMap<String, String>,
}

/// A wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wallet {
    /// The owner.
    pub user_id: Uuid,
    /// Coins, never negative.
    pub balance: i64,
    /// When the balance last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One ledger entry: a single movement of coins with the balance around it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerEntry {
    /// Monotonic per database; pages are keyed on it.
    pub id: i64,
    /// The wallet's owner.
    pub user_id: Uuid,
    /// What moved the coins.
    pub kind: EntryKind,
    /// Signed: debits are negative.
    pub amount: i64,
    /// Balance before this entry.
    pub balance_before: i64,
    /// Balance after this entry (`balance_before + amount`).
    pub balance_after: i64,
    /// The game, for bets and wins.
    pub game: Option<String>,
    /// The round, for bets and wins.
    pub round_id: Option<Uuid>,
    /// A human-readable line.
    pub description: String,
    /// Free-form details.
    pub metadata: serde_json::Value,
    /// Settlement status.
    pub status: EntryStatus,
    /// When the entry was written.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Which page of a ledger to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerQuery {
    /// Page size, 1 to [`LedgerQuery::MAX_LIMIT`].
    pub limit: u32,
    /// Start after this cursor (exclusive); `None` for the newest page.
    pub after: Option<Cursor>,
    /// Only entries of this kind.
    pub kind: Option<EntryKind>,
    /// Only entries of this game.
    pub game: Option<String>,
}

impl LedgerQuery {
    /// The largest page served.
    pub const MAX_LIMIT: u32 = 100;
}

/// A page of items and the cursor for the next one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass to get the next page; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

/// An opaque keyset cursor: URL-safe base64 of the last id served.
///
/// Clients must treat it as opaque; its encoding may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(i64);

/// A cursor string that Hearth did not issue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

impl Cursor {
    /// The cursor after the entry with this id.
    pub fn after_id(id: i64) -> Self {
        Self(id)
    }

    /// The last id served.
    pub fn id(self) -> i64 {
        self.0
    }

    /// Parses a cursor issued by [`Cursor::encode`].
    ///
    /// # Errors
    /// [`InvalidCursor`] for anything else.
    pub fn decode(text: &str) -> Result<Self, InvalidCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| InvalidCursor)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| InvalidCursor)?;
        let id = text.strip_prefix("id:").ok_or(InvalidCursor)?;
        id.parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(Self)
            .ok_or(InvalidCursor)
    }

    /// The opaque text form.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("id:{}", self.0))
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

/// What a game's rules decided for one round.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundPlay {
    /// Coins paid back, 0 for a loss; includes the returned stake.
    pub win: i64,
    /// The game-specific outcome (reels, cards, …), stored with the round and returned.
    pub detail: serde_json::Value,
    /// `Some` keeps the round open with this server-only state (never returned to the
    /// player) until [`GameRepository::act`](crate::GameRepository::act) settles it; `win`
    /// must then be 0.
    pub state: Option<serde_json::Value>,
}

/// What one action on an open round decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Coins the action adds to the stake (a double), debited now.
    pub extra_stake: i64,
    /// The new server-only state, or `None` when the round is over.
    pub state: Option<serde_json::Value>,
    /// Coins paid back when the round is over; 0 while it is open.
    pub win: i64,
    /// The player-visible outcome so far.
    pub detail: serde_json::Value,
}

/// The rules of one action on an open round, given its stored state.
pub type StepFn<'a> = dyn Fn(serde_json::Value) -> Result<Step, GameError> + Send + Sync + 'a;

/// A request to act on an open round.
pub struct ActRequest<'a> {
    /// The player; another user's round is not found.
    pub user_id: Uuid,
    /// The open round.
    pub round_id: Uuid,
    /// The game the round must belong to.
    pub game: &'static str,
    /// The rules.
    pub step: &'a StepFn<'a>,
    /// When set, a retry with the same key replays the first result.
    pub idempotency: Option<Idempotency>,
}

impl std::fmt::Debug for ActRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActRequest")
            .field("user_id", &self.user_id)
            .field("round_id", &self.round_id)
            .field("game", &self.game)
            .finish_non_exhaustive()
    }
}

/// The rules of one round, run inside the transaction with the user's fair RNG.
pub type PlayFn<'a> = dyn Fn(&mut FairRng<'_>) -> Result<RoundPlay, GameError> + Send + Sync + 'a;

/// A request to play one round.
pub struct RoundRequest<'a> {
    /// The player.
    pub user_id: Uuid,
    /// The round's id, chosen by the caller (UUIDv7).
    pub round_id: Uuid,
    /// The game's name (`slots`, …).
    pub game: &'static str,
    /// The stake, already validated against the game's allowed bets.
    pub bet: i64,
    /// The rules.
    pub play: &'a PlayFn<'a>,
    /// When set, a retry with the same key replays the first result instead of playing again.
    pub idempotency: Option<Idempotency>,
}

impl std::fmt::Debug for RoundRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoundRequest")
            .field("user_id", &self.user_id)
            .field("round_id", &self.round_id)
            .field("game", &self.game)
            .field("bet", &self.bet)
            .finish_non_exhaustive()
    }
}

/// An `Idempotency-Key` and the fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The client's key, unique per user.
    pub key: String,
    /// A digest of the request (method, route, body): the same key with another request is
    /// refused rather than replayed.
    pub fingerprint: String,
}

/// The result of a money-moving call that may have been a retry.
#[derive(Debug, Clone, PartialEq)]
pub struct Played<T> {
    /// The effect (or, for a replay, the effect of the first request).
    pub value: T,
    /// `true` when this call found the key already used and changed nothing.
    pub replayed: bool,
}

/// A settled round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettledRound {
    /// The round's id.
    pub round_id: Uuid,
    /// `settled`, or `open` for a round waiting for the player's next action.
    pub status: String,
    /// The game.
    pub game: String,
    /// The stake.
    pub bet: i64,
    /// Coins paid back.
    pub win: i64,
    /// The balance after the round.
    pub balance: i64,
    /// The game-specific outcome.
    pub detail: serde_json::Value,
    /// SHA-256 of the server seed used, published before play.
    pub server_seed_hash: String,
    /// The client seed used.
    pub client_seed: String,
    /// The nonce used.
    pub nonce: u64,
    /// When the round settled.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl SettledRound {
    /// The round as the leaderboards count it; `None` while the round is still open (count it
    /// once, when it settles, or its stake would count twice). `at` is the round's
    /// `created_at`, the time a rebuild filters on, so live and rebuilt boards agree.
    pub fn score(
        &self,
        user_id: Uuid,
        username: impl Into<String>,
    ) -> Option<hearth_domain::leaderboard::SettledScore> {
        (self.status == "settled").then(|| hearth_domain::leaderboard::SettledScore {
            user_id,
            username: username.into(),
            bet: self.bet,
            win: self.win,
            balance: self.balance,
            at: self.created_at,
        })
    }
}

#[cfg(test)]
mod score_tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::SettledRound;

    #[test]
    fn only_settled_rounds_score() {
        let mut round = SettledRound {
            round_id: Uuid::now_v7(),
            status: "open".into(),
            game: "blackjack".into(),
            bet: 20,
            win: 0,
            balance: 980,
            detail: serde_json::json!({}),
            server_seed_hash: String::new(),
            client_seed: String::new(),
            nonce: 0,
            created_at: datetime!(2026-11-22 23:59 UTC),
        };
        let user = Uuid::now_v7();
        assert_eq!(round.score(user, "ann"), None);
        round.status = "settled".into();
        round.win = 40;
        let score = round.score(user, "ann").unwrap();
        assert_eq!(
            (score.bet, score.win, score.balance, score.at),
            (20, 40, 980, round.created_at)
        );
    }
}

/// A wallet whose balance differs from the sum of its ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalletMismatch {
    /// The owner.
    pub user_id: Uuid,
    /// The stored balance.
    pub balance: i64,
    /// The sum of the wallet's ledger entries.
    pub ledger_sum: i64,
}

/// The result of a reconciliation run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    /// Wallets checked.
    pub wallets: u64,
    /// Wallets whose balance is not their ledger sum.
    pub mismatches: Vec<WalletMismatch>,
}

/// Connection pool figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
}

/// Counts, since the process started, of the statements that carried queued game rounds
/// together (PostgreSQL, [`DatabaseSettings::round_batches`](crate::DatabaseSettings)); all
/// zero on SQLite or with the queue off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RoundStatements {
    /// Statements sent for queued rounds.
    pub statements: u64,
    /// Rounds those statements carried; divided by `statements`, the rounds sharing a commit.
    pub rounds: u64,
    /// Statements of several rounds that failed, whose rounds were then each played alone.
    pub failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_text_is_refused() {
        let cursor = Cursor::after_id(42);
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        for bad in [
            "",
            "42",
            "!!!",
            &URL_SAFE_NO_PAD.encode("id:-1"),
            &URL_SAFE_NO_PAD.encode("id:x"),
        ] {
            assert_eq!(Cursor::decode(bad), Err(InvalidCursor), "{bad}");
        }
    }
}

/// A user's current provably-fair state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FairnessState {
    /// SHA-256 of the current (secret) server seed.
    pub server_seed_hash: String,
    /// The client seed the next round will use.
    pub client_seed: String,
    /// The nonce the next round will use.
    pub nonce: u64,
}

/// The result of rotating a server seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeedRotation {
    /// The retired seed, now public.
    pub revealed_server_seed: String,
    /// Its hash, as published before play.
    pub revealed_server_seed_hash: String,
    /// The hash of the new seed.
    pub server_seed_hash: String,
}

/// Everything recorded about one round, for re-deriving it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundRecord {
    /// The round's id.
    pub round_id: Uuid,
    /// The game.
    pub game: String,
    /// `open` or `settled`.
    pub status: String,
    /// The total stake.
    pub bet: i64,
    /// Coins paid back.
    pub win: i64,
    /// The game-specific outcome and inputs.
    pub detail: serde_json::Value,
    /// SHA-256 of the server seed used.
    pub server_seed_hash: String,
    /// The server seed, once rotation has revealed it; `None` while it is still in use.
    pub server_seed: Option<String>,
    /// The client seed used.
    pub client_seed: String,
    /// The nonce used.
    pub nonce: u64,
    /// When the round started.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One day of a wallet's history (UTC days).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyBalance {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The balance at the end of the day.
    pub closing_balance: i64,
    /// The sum of the day's entries.
    pub net_change: i64,
    /// How many entries the day had.
    pub entries: u64,
}

/// A player's totals over settled rounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayerStats {
    /// Settled rounds.
    pub rounds: u64,
    /// Rounds that paid more than their stake.
    pub wins: u64,
    /// `wins / rounds`, 0 without rounds.
    pub win_rate: f64,
    /// Coins staked.
    pub wagered: i64,
    /// Coins paid back.
    pub won: i64,
    /// `won - wagered`.
    pub net: i64,
    /// The largest single payout.
    pub biggest_win: i64,
    /// The wallet balance now.
    pub balance: i64,
}

/// A password-reset request: the token's hash and the e-mail carrying the token, written
/// together.
#[derive(Debug, Clone)]
pub struct NewPasswordReset {
    /// The account.
    pub user_id: Uuid,
    /// SHA-256 hex of the token.
    pub token_hash: String,
    /// When the token stops working.
    pub expires_at: OffsetDateTime,
    /// The message for the outbox.
    pub email: NewEmail,
    /// The trace context of the request, carried into the delivery job's span.
    pub trace_context: std::collections::HashMap<String, String>,
}

/// A message for the outbox.
#[derive(Debug, Clone)]
pub struct NewEmail {
    /// Recipient.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// The HTML alternative, if any.
    pub html: Option<String>,
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxEmail {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Recipient.
    pub to_address: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// The HTML alternative, if any.
    pub html_body: Option<String>,
    /// When it was written.
    pub created_at: OffsetDateTime,
    /// Delivery attempts so far.
    pub attempts: i32,
}

/// A user's second-factor state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TotpState {
    /// The base32 secret, once enrolment began.
    pub secret: Option<String>,
    /// Whether login requires a code.
    pub enabled: bool,
    /// The last step accepted (a code works once).
    pub last_step: Option<i64>,
}

/// One revocation as the database records it. Times are epoch seconds (`until`, when nothing
/// it refuses can still be alive) and epoch milliseconds (a user's cutoff), as tokens carry
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Revocation {
    /// One token, by its `jti`.
    Token {
        /// The token's id.
        jti: Uuid,
        /// The token's expiry.
        until: u64,
    },
    /// A session: every token of this family.
    Family {
        /// The session id (`fam`).
        family: Uuid,
        /// The latest expiry any of its tokens can have.
        until: u64,
    },
    /// Every token of `user` minted at or before `before_ms`.
    User {
        /// The user.
        user: Uuid,
        /// The cutoff, epoch milliseconds.
        before_ms: u64,
        /// The latest expiry any token minted before the cutoff can have.
        until: u64,
    },
}

impl Revocation {
    /// When the revocation stops mattering (epoch seconds).
    pub fn until(&self) -> u64 {
        match self {
            Self::Token { until, .. } | Self::Family { until, .. } | Self::User { until, .. } => {
                *until
            }
        }
    }
}
