//! Concurrent rounds, sent to PostgreSQL together: one statement and one commit for many.
//!
//! Each round is a transaction of its own through `hearth_play_round`, and its cost is mostly
//! per transaction and per round trip: the commit (a WAL flush, waited for while the wallet's
//! row lock is held, which bounds one player spinning from several connections at once), the
//! wake-ups on both sides, and the function's start. When more than one round is in flight in
//! the process, rounds wait in this queue instead, and up to
//! [`DatabaseSettings::round_batches`](crate::DatabaseSettings::round_batches) tasks each send
//! everything waiting as one statement: `hearth_play_round` once per round, in player order,
//! in one transaction. Each round's answer is the row the function returned for it, which is
//! what it would have returned alone with the rounds before it committed; the caller handles it
//! exactly as a lone call's.
//!
//! Two statements in flight never hold rounds of the same player: a busy player's next rounds
//! wait for the next statement, instead of queueing on the row lock behind a commit. Every
//! statement locks its players in one order (by id), so statements from several processes
//! cannot deadlock either.
//!
//! A statement that fails rolls back every round in it; each is then sent back to its caller to
//! be played alone, so one round's error never becomes another's. The tasks are spawned, so a
//! caller that goes away (a client disconnecting, a timeout) never cancels the other rounds of
//! its statement.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::outcome::OneCallRow;
use crate::{RoundStatements, StorageError};

/// The most rounds sent in one statement; more wait for the next.
const MAX_BATCH: usize = 64;

/// The columns every call reads back from `hearth_play_round` (a macro: sqlx takes only
/// static SQL).
macro_rules! out_columns {
    () => {
        "outcome, balance_after, played_at, nonce_played, stored_fingerprint, stored_response, \
         current_server_seed, current_server_seed_hash, current_client_seed, current_nonce"
    };
}

/// One call of `hearth_play_round`, owned so that it can wait in a [`Queue`].
pub(super) struct RoundCall {
    pub(super) user_id: Uuid,
    pub(super) round_id: Uuid,
    pub(super) game: String,
    pub(super) bet: i64,
    /// The draw inputs the outcomes were drawn from, and the nonce of the first outcome.
    pub(super) server_seed_hash: String,
    pub(super) client_seed: String,
    pub(super) first_nonce: i64,
    /// The outcomes, one element per nonce from `first_nonce` on.
    pub(super) wins: Vec<i64>,
    pub(super) statuses: Vec<&'static str>,
    pub(super) details: Vec<String>,
    pub(super) states: Vec<Option<String>>,
    /// The Idempotency-Key and its request fingerprint.
    pub(super) key: Option<String>,
    pub(super) fingerprint: Option<String>,
}

impl RoundCall {
    /// Calls `hearth_play_round` for this round alone: one statement, one transaction.
    pub(super) async fn call(&self, pool: &PgPool) -> Result<OneCallRow, StorageError> {
        let row = sqlx::query_as(concat!(
            "SELECT ",
            out_columns!(),
            " FROM hearth_play_round($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(self.user_id)
        .bind(self.round_id)
        .bind(&self.game)
        .bind(self.bet)
        .bind(&self.server_seed_hash)
        .bind(&self.client_seed)
        .bind(self.first_nonce)
        .bind(&self.wins)
        .bind(&self.statuses)
        .bind(&self.details)
        .bind(&self.states)
        .bind(&self.key)
        .bind(&self.fingerprint)
        .fetch_one(pool)
        .await?;
        Ok(row)
    }
}

/// Calls `hearth_play_round` once per element of `calls`, in order, in one statement (and so in
/// one transaction); one row per call, in the same order.
async fn call_all(pool: &PgPool, calls: &[RoundCall]) -> Result<Vec<OneCallRow>, StorageError> {
    let outcomes: usize = calls.iter().map(|call| call.wins.len()).sum();
    let mut ranges = (
        Vec::with_capacity(calls.len()),
        Vec::with_capacity(calls.len()),
    );
    let mut wins = Vec::with_capacity(outcomes);
    let mut statuses = Vec::with_capacity(outcomes);
    let mut details = Vec::with_capacity(outcomes);
    let mut states = Vec::with_capacity(outcomes);
    for call in calls {
        // PostgreSQL arrays count from 1 and slices include both ends.
        let first = i32::try_from(wins.len() + 1)
            .map_err(|_| StorageError::Corrupt("too many outcomes in one statement".into()))?;
        let last = i32::try_from(wins.len() + call.wins.len())
            .map_err(|_| StorageError::Corrupt("too many outcomes in one statement".into()))?;
        ranges.0.push(first);
        ranges.1.push(last);
        wins.extend_from_slice(&call.wins);
        statuses.extend_from_slice(&call.statuses);
        details.extend(call.details.iter().map(String::as_str));
        states.extend(call.states.iter().map(Option::as_deref));
    }
    let rows = sqlx::query_as(concat!(
        "SELECT ",
        out_columns!(),
        " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], \
                     $7::bigint[], $8::int[], $9::int[], $10::text[], $11::text[]) \
              WITH ORDINALITY AS r(user_id, round_id, game, bet, server_seed_hash, client_seed, \
                                   first_nonce, first, last, key, fingerprint, at) \
         CROSS JOIN LATERAL hearth_play_round( \
              r.user_id, r.round_id, r.game, r.bet, r.server_seed_hash, r.client_seed, \
              r.first_nonce, ($12::bigint[])[r.first:r.last], ($13::text[])[r.first:r.last], \
              ($14::text[])[r.first:r.last], ($15::text[])[r.first:r.last], r.key, \
              r.fingerprint) \
         ORDER BY r.at"
    ))
    .bind(calls.iter().map(|c| c.user_id).collect::<Vec<_>>())
    .bind(calls.iter().map(|c| c.round_id).collect::<Vec<_>>())
    .bind(calls.iter().map(|c| c.game.as_str()).collect::<Vec<_>>())
    .bind(calls.iter().map(|c| c.bet).collect::<Vec<_>>())
    .bind(
        calls
            .iter()
            .map(|c| c.server_seed_hash.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        calls
            .iter()
            .map(|c| c.client_seed.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(calls.iter().map(|c| c.first_nonce).collect::<Vec<_>>())
    .bind(ranges.0)
    .bind(ranges.1)
    .bind(calls.iter().map(|c| c.key.as_deref()).collect::<Vec<_>>())
    .bind(
        calls
            .iter()
            .map(|c| c.fingerprint.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(wins)
    .bind(statuses)
    .bind(details)
    .bind(states)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// What a queued call gets back.
enum Reply {
    /// The row its statement returned for it, or the error of a statement that held it alone.
    Row(Result<OneCallRow, StorageError>),
    /// Its statement failed with others in it: play it alone.
    Alone(RoundCall),
}

/// Rounds waiting for a statement, and the tasks sending them.
pub(super) struct Queue {
    /// The most statements in flight at once.
    tasks: usize,
    state: Mutex<QueueState>,
    statements: AtomicU64,
    rounds: AtomicU64,
    failed: AtomicU64,
}

#[derive(Default)]
struct QueueState {
    /// Tasks running [`Queue::drain`].
    draining: usize,
    /// Rounds waiting, oldest first.
    waiting: Vec<(RoundCall, oneshot::Sender<Reply>)>,
    /// Players with rounds in a statement in flight. Their next rounds wait for the next
    /// statement of the same task instead of queueing on the row lock behind a commit.
    busy: HashSet<Uuid>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Queue")
            .field("tasks", &self.tasks)
            .field("draining", &state.draining)
            .field("waiting", &state.waiting.len())
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// A queue sent by at most `tasks` statements at once (at least one).
    pub(super) fn new(tasks: usize) -> Self {
        Self {
            tasks: tasks.max(1),
            state: Mutex::default(),
            statements: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// What this queue has sent so far.
    pub(super) fn sent(&self) -> RoundStatements {
        RoundStatements {
            statements: self.statements.load(Ordering::Relaxed),
            rounds: self.rounds.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Plays `call` in the next statement sent for its player, starting a task if fewer than
    /// the most are running; alone if that statement fails.
    pub(super) async fn play(
        self: &Arc<Self>,
        pool: &PgPool,
        call: RoundCall,
    ) -> Result<OneCallRow, StorageError> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.lock();
            state.waiting.push((call, reply));
            let start = state.draining < self.tasks;
            if start {
                state.draining += 1;
            }
            start
        };
        if start {
            tokio::spawn(Arc::clone(self).drain(pool.clone()));
        }
        match answer.await {
            Ok(Reply::Row(row)) => row,
            Ok(Reply::Alone(call)) => call.call(pool).await,
            // The task died (a panic, or the runtime shutting down) with the round: what became
            // of it is unknown, as when a connection drops mid-statement.
            Err(_) => Err(StorageError::Unavailable(sqlx::Error::WorkerCrashed)),
        }
    }

    /// Takes the next statement's rounds: those waiting whose players have none in flight, all
    /// of each such player's (in the order they came), up to [`MAX_BATCH`]; marks their players
    /// busy. Empty when every round waiting is of a busy player, or none is waiting.
    fn take(state: &mut QueueState) -> Vec<(RoundCall, oneshot::Sender<Reply>)> {
        let mut batch = Vec::new();
        let mut taken = HashSet::new();
        let mut kept = Vec::with_capacity(state.waiting.len());
        for (call, reply) in state.waiting.drain(..) {
            let user = call.user_id;
            let free = taken.contains(&user) || !state.busy.contains(&user);
            if free && batch.len() < MAX_BATCH {
                taken.insert(user);
                batch.push((call, reply));
            } else {
                kept.push((call, reply));
            }
        }
        state.waiting = kept;
        state.busy.extend(taken);
        batch
    }

    /// Sends waiting rounds, a statement at a time, until none this task may take is left.
    async fn drain(self: Arc<Self>, pool: PgPool) {
        let mut draining = Draining {
            queue: &self,
            players: Vec::new(),
            finished: false,
        };
        loop {
            let mut batch = {
                let mut state = self.lock();
                for user in draining.players.drain(..) {
                    state.busy.remove(&user);
                }
                let batch = Self::take(&mut state);
                if batch.is_empty() {
                    // In the same critical section as the check: a round queued after it
                    // starts a task, and a round of a busy player is taken by the task that
                    // holds the player when its statement ends.
                    state.draining -= 1;
                    draining.finished = true;
                    return;
                }
                batch
            };
            draining
                .players
                .extend(batch.iter().map(|(call, _)| call.user_id));
            // One lock order for every statement (by player): two never deadlock.
            batch.sort_by_key(|(call, _)| call.user_id);
            self.statements.fetch_add(1, Ordering::Relaxed);
            self.rounds
                .fetch_add(u64::try_from(batch.len()).unwrap_or(0), Ordering::Relaxed);
            if batch.len() == 1 {
                if let Some((call, reply)) = batch.pop() {
                    let _ = reply.send(Reply::Row(call.call(&pool).await));
                }
                continue;
            }
            let (calls, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            match call_all(&pool, &calls).await {
                Ok(rows) if rows.len() == calls.len() => {
                    for (row, reply) in rows.into_iter().zip(replies) {
                        // A caller that went away no longer wants its answer.
                        let _ = reply.send(Reply::Row(Ok(row)));
                    }
                }
                // The statement committed, so playing its rounds again would be wrong; the
                // function returns one row per call, so this is a bug, reported as one.
                Ok(rows) => {
                    let found = rows.len();
                    for reply in replies {
                        let _ = reply.send(Reply::Row(Err(StorageError::Corrupt(format!(
                            "{found} rows for {} coalesced rounds",
                            calls.len()
                        )))));
                    }
                }
                Err(error) => {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        %error,
                        rounds = calls.len(),
                        "coalesced rounds failed together; each is played alone"
                    );
                    for (call, reply) in calls.into_iter().zip(replies) {
                        let _ = reply.send(Reply::Alone(call));
                    }
                }
            }
        }
    }
}

/// Ends a [`Queue::drain`] task: frees the players of its last statement, and, when the task
/// did not finish (a panic, or the runtime shutting down), fails the rounds waiting now instead
/// of leaving them to a task that may not come.
struct Draining<'a> {
    queue: &'a Queue,
    players: Vec<Uuid>,
    finished: bool,
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut state = self.queue.lock();
            for user in self.players.drain(..) {
                state.busy.remove(&user);
            }
            state.waiting.clear();
            state.draining -= 1;
        }
    }
}
