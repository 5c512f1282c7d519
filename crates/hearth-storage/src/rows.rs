//! Row types shared by both backends: `sqlx` decodes the same Rust types from either, and each
//! row decodes into model values here. What is computed from those values (balances, statuses,
//! the rules' draw) is in module `round`.

use std::str::FromStr;

use hearth_domain::fairness::{ClientSeed, ServerSeed};
use hearth_domain::ledger::{EntryKind, EntryStatus};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StorageError;
use crate::model::{LedgerEntry, Revocation, User, UserCredentials, Wallet};
use crate::round::RoundStatus;

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    username: String,
    email: String,
    role: String,
    created_at: OffsetDateTime,
    password_hash: String,
}

impl UserRow {
    pub(crate) fn into_user(self) -> User {
        self.into_credentials().user
    }

    pub(crate) fn into_credentials(self) -> UserCredentials {
        UserCredentials {
            user: User {
                id: self.id,
                username: self.username,
                email: self.email,
                role: self.role,
                created_at: self.created_at,
            },
            password_hash: self.password_hash,
        }
    }
}

/// A user row with whether its address is verified.
#[derive(sqlx::FromRow)]
pub(crate) struct ProfileRow {
    #[sqlx(flatten)]
    user: UserRow,
    email_verified: bool,
}

impl ProfileRow {
    pub(crate) fn into_profile(self) -> crate::Profile {
        crate::Profile {
            user: self.user.into_user(),
            email_verified: self.email_verified,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct WalletRow {
    user_id: Uuid,
    balance: i64,
    updated_at: OffsetDateTime,
}

impl From<WalletRow> for Wallet {
    fn from(row: WalletRow) -> Self {
        Self {
            user_id: row.user_id,
            balance: row.balance,
            updated_at: row.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LedgerRow {
    id: i64,
    user_id: Uuid,
    kind: String,
    amount: i64,
    balance_before: i64,
    balance_after: i64,
    game: Option<String>,
    round_id: Option<Uuid>,
    description: String,
    metadata: Json<serde_json::Value>,
    status: String,
    created_at: OffsetDateTime,
}

impl TryFrom<LedgerRow> for LedgerEntry {
    type Error = StorageError;

    fn try_from(row: LedgerRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: row.id,
            user_id: row.user_id,
            kind: EntryKind::from_str(&row.kind)
                .map_err(|_| StorageError::Corrupt(format!("ledger kind {:?}", row.kind)))?,
            amount: row.amount,
            balance_before: row.balance_before,
            balance_after: row.balance_after,
            game: row.game,
            round_id: row.round_id,
            description: row.description,
            metadata: row.metadata.0,
            status: EntryStatus::from_str(&row.status)
                .map_err(|_| StorageError::Corrupt(format!("ledger status {:?}", row.status)))?,
            created_at: row.created_at,
        })
    }
}

/// The locked state a round starts from.
#[derive(sqlx::FromRow)]
pub(crate) struct RoundStartRow {
    pub(crate) balance: i64,
    pub(crate) server_seed: String,
    pub(crate) server_seed_hash: String,
    pub(crate) client_seed: String,
    pub(crate) nonce: i64,
    /// The user already has an open round of this game.
    pub(crate) has_open: bool,
}

impl RoundStartRow {
    /// The stored seeds, parsed.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when either does not parse.
    pub(crate) fn seeds(&self) -> Result<(ServerSeed, ClientSeed), StorageError> {
        let server = ServerSeed::from_hex(&self.server_seed)
            .map_err(|e| StorageError::Corrupt(format!("server seed: {e}")))?;
        let client = ClientSeed::parse(&self.client_seed)
            .map_err(|e| StorageError::Corrupt(format!("client seed: {e}")))?;
        Ok((server, client))
    }

    /// The next nonce.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] for a negative one.
    pub(crate) fn nonce(&self) -> Result<u64, StorageError> {
        nonce(self.nonce)
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MismatchRow {
    pub(crate) user_id: Uuid,
    pub(crate) balance: i64,
    pub(crate) ledger_sum: i64,
}

/// Turns rows fetched one past the limit into a page and its next cursor.
pub(crate) fn into_page(
    rows: Vec<LedgerRow>,
    limit: u32,
) -> Result<crate::Page<LedgerEntry>, StorageError> {
    let mut items = rows
        .into_iter()
        .map(LedgerEntry::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|last| crate::Cursor::after_id(last.id))
    } else {
        None
    };
    Ok(crate::Page { items, next_cursor })
}

/// A stored idempotency key.
#[derive(sqlx::FromRow)]
pub(crate) struct IdempotencyRow {
    fingerprint: String,
    response: sqlx::types::Json<crate::SettledRound>,
}

impl IdempotencyRow {
    /// A stored key as returned by `hearth_play_round`.
    pub(crate) fn new(
        fingerprint: Option<String>,
        response: Option<sqlx::types::Json<crate::SettledRound>>,
    ) -> Result<Self, StorageError> {
        match (fingerprint, response) {
            (Some(fingerprint), Some(response)) => Ok(Self {
                fingerprint,
                response,
            }),
            _ => Err(StorageError::Corrupt("a replay without its answer".into())),
        }
    }

    /// The replay of the first request, or a mismatch when the request differs.
    pub(crate) fn replay(
        self,
        idempotency: &crate::Idempotency,
    ) -> Result<crate::Played<crate::SettledRound>, StorageError> {
        if self.fingerprint == idempotency.fingerprint {
            Ok(crate::Played {
                value: self.response.0,
                replayed: true,
            })
        } else {
            Err(StorageError::IdempotencyMismatch)
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct FairnessRow {
    server_seed_hash: String,
    client_seed: String,
    nonce: i64,
}

impl TryFrom<FairnessRow> for crate::FairnessState {
    type Error = StorageError;

    fn try_from(row: FairnessRow) -> Result<Self, Self::Error> {
        Ok(Self {
            server_seed_hash: row.server_seed_hash,
            client_seed: row.client_seed,
            nonce: nonce(row.nonce)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CurrentSeedRow {
    pub(crate) server_seed: String,
    pub(crate) server_seed_hash: String,
    pub(crate) created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
pub(crate) struct RoundRow {
    id: Uuid,
    game: String,
    status: String,
    bet: i64,
    win: i64,
    detail: Json<serde_json::Value>,
    server_seed_hash: String,
    server_seed: Option<String>,
    client_seed: String,
    nonce: i64,
    created_at: OffsetDateTime,
}

impl TryFrom<RoundRow> for crate::RoundRecord {
    type Error = StorageError;

    fn try_from(row: RoundRow) -> Result<Self, Self::Error> {
        Ok(Self {
            round_id: row.id,
            game: row.game,
            status: row.status,
            bet: row.bet,
            win: row.win,
            detail: row.detail.0,
            server_seed_hash: row.server_seed_hash,
            server_seed: row.server_seed,
            client_seed: row.client_seed,
            nonce: nonce(row.nonce)?,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DayRow {
    day: String,
    net: i64,
    entries: i64,
    closing: i64,
}

/// Fills the days without entries: each carries the previous closing balance.
pub(crate) fn fill_days(
    rows: Vec<DayRow>,
    opening: i64,
    first: time::Date,
    days: u32,
) -> Vec<crate::DailyBalance> {
    let mut by_day: std::collections::HashMap<String, DayRow> =
        rows.into_iter().map(|row| (row.day.clone(), row)).collect();
    let mut balance = opening;
    let mut out = Vec::with_capacity(days as usize);
    let mut date = first;
    for _ in 0..days {
        let key = date.to_string();
        let (net, entries) = match by_day.remove(&key) {
            Some(row) => {
                balance = row.closing;
                (row.net, u64::try_from(row.entries).unwrap_or(0))
            }
            None => (0, 0),
        };
        out.push(crate::DailyBalance {
            date: key,
            closing_balance: balance,
            net_change: net,
            entries,
        });
        match date.next_day() {
            Some(next) => date = next,
            None => break,
        }
    }
    out
}

/// The first UTC day of a `days`-long window ending today, and its midnight.
pub(crate) fn history_window(days: u32) -> (time::Date, OffsetDateTime) {
    let today = OffsetDateTime::now_utc().date();
    let first = today - time::Duration::days(i64::from(days.max(1)) - 1);
    (first, first.midnight().assume_utc())
}

#[derive(sqlx::FromRow)]
pub(crate) struct StatsRow {
    rounds: i64,
    wins: i64,
    wagered: i64,
    won: i64,
    biggest_win: i64,
    balance: Option<i64>,
}

impl TryFrom<StatsRow> for crate::PlayerStats {
    type Error = StorageError;

    fn try_from(row: StatsRow) -> Result<Self, Self::Error> {
        let balance = row.balance.ok_or(StorageError::NotFound)?;
        let rounds = u64::try_from(row.rounds).unwrap_or(0);
        let wins = u64::try_from(row.wins).unwrap_or(0);
        Ok(Self {
            rounds,
            wins,
            win_rate: if rounds == 0 {
                0.0
            } else {
                wins as f64 / rounds as f64
            },
            wagered: row.wagered,
            won: row.won,
            net: row.won - row.wagered,
            biggest_win: row.biggest_win,
            balance,
        })
    }
}

/// The locked state an action starts from.
#[derive(sqlx::FromRow)]
pub(crate) struct ActStartRow {
    pub(crate) balance: i64,
    pub(crate) game: String,
    pub(crate) status: String,
    pub(crate) bet: i64,
    pub(crate) state: Option<Json<serde_json::Value>>,
    pub(crate) server_seed_hash: String,
    pub(crate) client_seed: String,
    pub(crate) nonce: i64,
    pub(crate) created_at: OffsetDateTime,
}

impl ActStartRow {
    /// The stored state of the round while it is open; `None` once it is settled.
    pub(crate) fn open_state(&self) -> Option<serde_json::Value> {
        match (self.status.as_str(), &self.state) {
            (status, Some(state)) if status == RoundStatus::Open.as_str() => Some(state.0.clone()),
            _ => None,
        }
    }

    /// The nonce the round was drawn with.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] for a negative one.
    pub(crate) fn nonce(&self) -> Result<u64, StorageError> {
        nonce(self.nonce)
    }
}

/// A stored nonce: never negative.
fn nonce(stored: i64) -> Result<u64, StorageError> {
    u64::try_from(stored).map_err(|_| StorageError::Corrupt("nonce".into()))
}

/// A `revocations` row: kind, id, cutoff (users only) and expiry, as both backends store them.
#[derive(sqlx::FromRow)]
pub(crate) struct RevocationRow {
    kind: String,
    id: Uuid,
    cutoff_ms: Option<i64>,
    expires_at: i64,
}

impl RevocationRow {
    pub(crate) fn into_revocation(self) -> Result<Revocation, StorageError> {
        let until = u64::try_from(self.expires_at).unwrap_or(0);
        match (self.kind.as_str(), self.cutoff_ms) {
            ("token", None) => Ok(Revocation::Token {
                jti: self.id,
                until,
            }),
            ("family", None) => Ok(Revocation::Family {
                family: self.id,
                until,
            }),
            ("user", Some(cutoff)) => Ok(Revocation::User {
                user: self.id,
                before_ms: u64::try_from(cutoff).unwrap_or(0),
                until,
            }),
            (kind, _) => Err(StorageError::Corrupt(format!(
                "revocation {} of kind {kind:?}",
                self.id
            ))),
        }
    }
}

/// A revocation's columns: kind, id, cutoff (users only) and expiry, in the types both
/// backends bind. Epoch values above `i64::MAX` are clamped (no token lives that long).
pub(crate) fn revocation_columns(revocation: Revocation) -> (&'static str, Uuid, Option<i64>, i64) {
    let clamp = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    match revocation {
        Revocation::Token { jti, until } => ("token", jti, None, clamp(until)),
        Revocation::Family { family, until } => ("family", family, None, clamp(until)),
        Revocation::User {
            user,
            before_ms,
            until,
        } => ("user", user, Some(clamp(before_ms)), clamp(until)),
    }
}

/// An epoch value as both backends store it.
pub(crate) fn epoch_column(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
