//! A round and an action on SQLite, each one synchronous write through [`Writer::write`]
//! (module `writer`): every statement runs on the calling thread while the writer's lock is
//! held, so a spin holds the lock for microseconds rather than a dozen hops to sqlx's thread.
//!
//! [`Writer::write`]: super::writer::Writer::write

use hearth_domain::ledger::{EntryKind, EntryStatus};
use rusqlite::{Connection, OptionalExtension, params};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::raw;
use crate::round::{self, RoundLedger};
use crate::rows::{ActStartRow, IdempotencyRow, RoundStartRow};
use crate::{ActRequest, Idempotency, Played, RoundRequest, SettledRound, StorageError};

/// A ledger line, as every SQLite write of one spells it.
pub(super) const INSERT_LEDGER: &str = "INSERT INTO ledger_entries (user_id, kind, amount, \
     balance_before, balance_after, game, round_id, description, metadata, status, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '{}', ?9, ?10)";

/// Plays `request`'s round: the balance, seeds and nonce read and written under the writer's
/// lock, with its ledger lines and, with a key, the answer to replay.
///
/// # Errors
/// As `GameRepository::play_round`.
pub(super) fn play(
    conn: &Connection,
    request: &RoundRequest<'_>,
) -> Result<Played<SettledRound>, StorageError> {
    let start = conn
        .prepare_cached(
            "SELECT w.balance, f.server_seed, f.server_seed_hash, f.client_seed, f.nonce, \
                    EXISTS (SELECT 1 FROM game_rounds r WHERE r.user_id = w.user_id \
                            AND r.game = ?2 AND r.status = 'open') AS has_open \
             FROM wallets w JOIN fairness_seeds f ON f.user_id = w.user_id WHERE w.user_id = ?1",
        )?
        .query_row(params![raw::uuid(&request.user_id), request.game], |row| {
            Ok(RoundStartRow {
                balance: row.get(0)?,
                server_seed: row.get(1)?,
                server_seed_hash: row.get(2)?,
                client_seed: row.get(3)?,
                nonce: row.get(4)?,
                has_open: row.get(5)?,
            })
        })
        .optional()?
        .ok_or(StorageError::NotFound)?;
    // Read under the write lock, so two concurrent requests with one key cannot both miss it.
    if let Some(answer) = replay(conn, request.user_id, request.idempotency.as_ref())? {
        return Ok(answer);
    }
    let round::Drawn {
        play,
        status,
        ledger,
        nonce,
    } = round::draw(&start, request)?;
    let now = OffsetDateTime::now_utc();
    let at = raw::time(now)?;
    conn.prepare_cached(
        "INSERT INTO game_rounds (id, user_id, game, bet, win, status, detail, \
         server_seed_hash, client_seed, nonce, created_at, updated_at, state) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
    )?
    .execute(params![
        raw::uuid(&request.round_id),
        raw::uuid(&request.user_id),
        request.game,
        request.bet,
        play.win,
        status.as_str(),
        raw::json(&play.detail)?,
        start.server_seed_hash,
        start.client_seed,
        start.nonce,
        at,
        play.state.as_ref().map(raw::json).transpose()?,
    ])?;
    let lines = RoundLines {
        user_id: request.user_id,
        game: request.game,
        round_id: request.round_id,
    };
    lines.insert(conn, request.bet, play.win, &ledger, &at)?;
    set_balance(conn, request.user_id, ledger.after_win, &at)?;
    conn.prepare_cached("UPDATE fairness_seeds SET nonce = nonce + 1 WHERE user_id = ?1")?
        .execute(params![raw::uuid(&request.user_id)])?;
    let settled = SettledRound {
        round_id: request.round_id,
        status: status.as_str().to_owned(),
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
    remember(
        conn,
        request.user_id,
        request.idempotency.as_ref(),
        &settled,
        &at,
    )?;
    Ok(Played {
        value: settled,
        replayed: false,
    })
}

/// Runs one action on an open round, with its ledger lines and, with a key, the answer to
/// replay.
///
/// # Errors
/// As `GameRepository::act`.
pub(super) fn act(
    conn: &Connection,
    request: &ActRequest<'_>,
) -> Result<Played<SettledRound>, StorageError> {
    let start = conn
        .prepare_cached(
            "SELECT w.balance, r.game, r.status, r.bet, r.state, r.server_seed_hash, \
                    r.client_seed, r.nonce, r.created_at \
             FROM wallets w JOIN game_rounds r ON r.user_id = w.user_id \
             WHERE w.user_id = ?1 AND r.id = ?2",
        )?
        .query_row(
            params![raw::uuid(&request.user_id), raw::uuid(&request.round_id)],
            |row| {
                Ok(ActStartRow {
                    balance: row.get(0)?,
                    game: row.get(1)?,
                    status: row.get(2)?,
                    bet: row.get(3)?,
                    state: raw::json_at::<serde_json::Value>(row, 4)?.map(Json),
                    server_seed_hash: row.get(5)?,
                    client_seed: row.get(6)?,
                    nonce: row.get(7)?,
                    created_at: raw::time_at(row, 8)?,
                })
            },
        )
        .optional()?
        .ok_or(StorageError::NotFound)?;
    if let Some(answer) = replay(conn, request.user_id, request.idempotency.as_ref())? {
        return Ok(answer);
    }
    let acted = round::act(&start, request)?;
    let round::Acted {
        step,
        ledger,
        total_bet,
        status,
    } = &acted;
    let at = raw::time(OffsetDateTime::now_utc())?;
    conn.prepare_cached(
        "UPDATE game_rounds SET bet = ?3, win = ?4, status = ?5, state = ?6, \
         detail = ?7, updated_at = ?8 WHERE id = ?1 AND user_id = ?2",
    )?
    .execute(params![
        raw::uuid(&request.round_id),
        raw::uuid(&request.user_id),
        total_bet,
        step.win,
        status.as_str(),
        step.state.as_ref().map(raw::json).transpose()?,
        raw::json(&step.detail)?,
        at,
    ])?;
    let lines = RoundLines {
        user_id: request.user_id,
        game: request.game,
        round_id: request.round_id,
    };
    lines.insert(conn, step.extra_stake, step.win, ledger, &at)?;
    if step.extra_stake > 0 || step.win > 0 {
        set_balance(conn, request.user_id, ledger.after_win, &at)?;
    }
    let answer = acted.answer(start, request.round_id)?;
    remember(
        conn,
        request.user_id,
        request.idempotency.as_ref(),
        &answer,
        &at,
    )?;
    Ok(Played {
        value: answer,
        replayed: false,
    })
}

/// Sets the wallet's balance after a round's ledger lines.
fn set_balance(conn: &Connection, user: Uuid, balance: i64, at: &str) -> Result<(), StorageError> {
    conn.prepare_cached("UPDATE wallets SET balance = ?2, updated_at = ?3 WHERE user_id = ?1")?
        .execute(params![raw::uuid(&user), balance, at])?;
    Ok(())
}

/// The stored answer for a repeated idempotency key, read under the writer's lock.
fn replay(
    conn: &Connection,
    user: Uuid,
    idempotency: Option<&Idempotency>,
) -> Result<Option<Played<SettledRound>>, StorageError> {
    let Some(idempotency) = idempotency else {
        return Ok(None);
    };
    let stored = conn
        .prepare_cached(
            "SELECT fingerprint, response FROM idempotency_keys WHERE user_id = ?1 AND key = ?2",
        )?
        .query_row(params![raw::uuid(&user), idempotency.key], |row| {
            Ok((row.get(0)?, raw::json_at::<SettledRound>(row, 1)?.map(Json)))
        })
        .optional()?;
    stored
        .map(|(fingerprint, response)| {
            IdempotencyRow::new(Some(fingerprint), response)?.replay(idempotency)
        })
        .transpose()
}

/// Remembers the answer for an idempotency key, in the write that made the effect.
fn remember(
    conn: &Connection,
    user: Uuid,
    idempotency: Option<&Idempotency>,
    answer: &SettledRound,
    at: &str,
) -> Result<(), StorageError> {
    let Some(idempotency) = idempotency else {
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, response, round_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        raw::uuid(&user),
        idempotency.key,
        idempotency.fingerprint,
        raw::json(answer)?,
        raw::uuid(&answer.round_id),
        at,
    ])?;
    Ok(())
}

/// The ledger lines of one step of a round.
struct RoundLines {
    user_id: Uuid,
    game: &'static str,
    round_id: Uuid,
}

impl RoundLines {
    /// Writes the stake (when there is one) and then the win (when there is one), with the
    /// balances `ledger` computed for them.
    fn insert(
        &self,
        conn: &Connection,
        stake: i64,
        win: i64,
        ledger: &RoundLedger,
        at: &str,
    ) -> Result<(), StorageError> {
        let line = |kind: EntryKind, amount: i64, balance_before: i64, word: &str| {
            conn.prepare_cached(INSERT_LEDGER)?.execute(params![
                raw::uuid(&self.user_id),
                kind.as_str(),
                amount,
                balance_before,
                balance_before + amount,
                self.game,
                raw::uuid(&self.round_id),
                format!("{} {word}", self.game),
                EntryStatus::Settled.as_str(),
                at,
            ])
        };
        if stake > 0 {
            line(EntryKind::Bet, -stake, ledger.balance_before, "bet")?;
        }
        if win > 0 {
            line(EntryKind::Win, win, ledger.after_bet, "win")?;
        }
        Ok(())
    }
}
