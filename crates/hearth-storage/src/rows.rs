//! Row types shared by both backends: `sqlx` decodes the same Rust types from either.

use std::str::FromStr;

use hearth_domain::ledger::{EntryKind, EntryStatus};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StorageError;
use crate::model::{LedgerEntry, User, UserCredentials, Wallet};

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

/// The ledger lines a settled round writes: the bet, then the win when there is one.
pub(crate) struct RoundLedger {
    pub(crate) balance_before: i64,
    pub(crate) after_bet: i64,
    pub(crate) after_win: i64,
}

impl RoundLedger {
    pub(crate) fn compute(balance: i64, bet: i64, win: i64) -> Result<Self, StorageError> {
        use hearth_domain::wallet::{WalletError, credit, debit};
        let after_bet = debit(balance, bet).map_err(|error| match error {
            WalletError::InsufficientBalance { needed, available } => {
                StorageError::InsufficientBalance { needed, available }
            }
            other => StorageError::Corrupt(other.to_string()),
        })?;
        let after_win = credit(after_bet, win).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        Ok(Self {
            balance_before: balance,
            after_bet,
            after_win,
        })
    }
}

/// Parses the stored seeds of a round start.
pub(crate) fn seeds(
    row: &RoundStartRow,
) -> Result<
    (
        hearth_domain::fairness::ServerSeed,
        hearth_domain::fairness::ClientSeed,
    ),
    StorageError,
> {
    let server = hearth_domain::fairness::ServerSeed::from_hex(&row.server_seed)
        .map_err(|e| StorageError::Corrupt(format!("server seed: {e}")))?;
    let client = hearth_domain::fairness::ClientSeed::parse(&row.client_seed)
        .map_err(|e| StorageError::Corrupt(format!("client seed: {e}")))?;
    Ok((server, client))
}
