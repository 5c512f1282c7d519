//! The round engine on PostgreSQL: [`GameRepository`] for [`PostgresDatabase`].
//!
//! A new round is one round trip: the application draws the outcome from the player's seeds and
//! the nonce it expects (the ones the last round left; with several of the player's rounds in
//! flight, the outcomes of the next few nonces; module `draws`), then calls the server-side
//! function `hearth_play_round` (migration `20261201000005`), which in one transaction locks the
//! wallet and the seed row, checks the Idempotency-Key, the open rounds and the balance, and
//! writes the round, the ledger lines, the balance, the next nonce and the key, using the
//! outcome for the nonce it finds under the lock. Its answer is decoded once into a
//! [`RoundOutcome`] (module `outcome`). If it holds no outcome for that nonce (a seed change,
//! another process), nothing is written and the round is drawn again from the inputs it
//! returns. When the rules refuse a draw or the inputs keep changing, the round falls back to
//! four round trips: `BEGIN`; a `SELECT … FOR UPDATE` of the wallet and the seeds; one
//! statement whose CTEs write everything; `COMMIT`. Either way the row lock serialises rounds
//! on one wallet and leaves every other wallet free.
//!
//! While several rounds are in flight in the process, they are sent together instead (module
//! `coalesce`): one statement and one commit for the rounds waiting, up to
//! [`DatabaseSettings::round_batches`](crate::DatabaseSettings::round_batches) such statements
//! at once.
//!
//! Actions on open rounds ([`GameRepository::act`]) take the wallet's and the round's row locks
//! in one transaction. The arithmetic (balances, statuses, the rules) is shared with SQLite in
//! `crate::round`; this module holds the SQL and the order of the round trips.

mod coalesce;
mod draws;
mod outcome;

use async_trait::async_trait;
use hearth_domain::ledger::{EntryKind, EntryStatus};
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

pub(super) use self::draws::DrawCache;
use self::draws::{DrawInputs, DrawnAhead, InFlight, PlayerDraws};
use self::outcome::{Refusal, RoundOutcome};
use super::PostgresDatabase;
use crate::round::{self, RoundLedger};
use crate::rows::{ActStartRow, IdempotencyRow, RoundRow, RoundStartRow};
use crate::{
    ActRequest, GameRepository, Idempotency, Played, RoundRecord, RoundRequest, SettledRound,
    StorageError,
};

/// The locked state a round starts from, and the transaction's time.
#[derive(sqlx::FromRow)]
struct LockedStart {
    #[sqlx(flatten)]
    start: RoundStartRow,
    now: OffsetDateTime,
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
        let acted = round::act(&start, &request)?;
        let round::Acted {
            step,
            ledger,
            total_bet,
            status,
        } = &acted;
        let now = OffsetDateTime::now_utc();
        sqlx::query(
            "UPDATE game_rounds SET bet = $3, win = $4, status = $5, state = $6, \
             detail = $7, updated_at = $8 WHERE id = $1 AND user_id = $2",
        )
        .bind(request.round_id)
        .bind(request.user_id)
        .bind(total_bet)
        .bind(step.win)
        .bind(status.as_str())
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
        let answer = acted.answer(start, request.round_id)?;
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
        for _ in 0..4 {
            let Some(drawn) = DrawnAhead::draw(&inputs, request, ahead) else {
                return Ok(None);
            };
            let call = drawn.call(request);
            // Alone, straight to the database; with other rounds in flight, through the queue, in
            // the next statement sent for this player.
            let row = match &self.draws.queue {
                Some(queue) if all_in_flight > 1 => queue.play(&self.pool, call).await?,
                _ => call.call(&self.pool).await?,
            };
            let (current, refusal) = match RoundOutcome::try_from(row)? {
                RoundOutcome::Played { nonce, balance, at } => {
                    let mut settled = drawn.take(nonce)?;
                    settled.balance = balance;
                    settled.created_at = at;
                    inputs.nonce = nonce + 1;
                    player.remember(inputs);
                    return Ok(Some(Played {
                        value: settled,
                        replayed: false,
                    }));
                }
                RoundOutcome::NotFound => return Err(StorageError::NotFound),
                RoundOutcome::Refused { current, refusal } => (current, refusal),
            };
            // Nothing was written; the row tells what the inputs are now.
            inputs = current;
            player.remember(inputs.clone());
            match refusal {
                Refusal::Stale => continue,
                Refusal::Replay(stored) => {
                    let idempotency = request
                        .idempotency
                        .as_ref()
                        .ok_or_else(|| StorageError::Corrupt("replay without a key".into()))?;
                    return stored.replay(idempotency).map(Some);
                }
                Refusal::Open => {
                    return Err(StorageError::Conflict {
                        constraint: "game_rounds_one_open_per_game".into(),
                    });
                }
                Refusal::Insufficient { balance } => {
                    return Err(refused("insufficient", balance, request.bet, 0));
                }
                Refusal::Overflow { balance } => {
                    let win = drawn.win_at(inputs.nonce);
                    return Err(refused("overflow", balance, request.bet, win));
                }
            }
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
        let round::Drawn {
            play,
            status,
            ledger,
            nonce,
        } = round::draw(&start, &request)?;
        let state = play.state.clone();
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
        .bind(status.as_str()) // $22
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

/// The error for a bet `hearth_play_round` refused (`outcome`) with `balance` in the wallet:
/// the one the arithmetic gives for it, or corrupt data when the arithmetic finds nothing wrong.
fn refused(outcome: &str, balance: i64, bet: i64, win: i64) -> StorageError {
    match RoundLedger::compute(balance, bet, win) {
        Err(error) => error,
        Ok(_) => StorageError::Corrupt(format!(
            "hearth_play_round said {outcome} for a balance of {balance}"
        )),
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
