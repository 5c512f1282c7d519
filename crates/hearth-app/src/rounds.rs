//! Playing rounds: the use-case behind every game entry point, and what follows a settled
//! round.
//!
//! A transport validates the player's input against the game's rules, then calls
//! [`Rounds::play`] (a new round) or [`Rounds::act`] (an action on an open blackjack hand).
//! Storage runs the rules inside the round's transaction; once it has committed, a round that
//! changed something (not an idempotent replay) is counted in the `hearth_game_*` metrics and,
//! when settled, fed to the leaderboards. When it moved coins, the player's sockets are told
//! (`{"type":"wallet",…}` on [`topics::user`]), and a big win is announced
//! (`{"type":"big_win",…}` on [`topics::BIG_WINS`]). All of this is off the money path, in a
//! spawned task: a leaderboard failure is logged and repaired by the next rebuild, a push
//! that Redis refused is logged and lost, never the player's problem.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use hearth_domain::games::GameError;
use hearth_observability::metrics::names;
use hearth_realtime::{Hub, topics};
use hearth_storage::{
    ActRequest, Database, Played, RoundRequest, SettledRound, Step, StorageError,
};
use uuid::Uuid;

use crate::leaderboards::Leaderboards;

/// Plays rounds and applies their side effects. Cheap to clone.
#[derive(Clone)]
pub struct Rounds {
    db: Arc<dyn Database>,
    leaderboards: Arc<dyn Leaderboards>,
    /// Where pushes go; `None` pushes nothing.
    pushes: Option<Pushes>,
}

#[derive(Clone)]
struct Pushes {
    hub: Arc<dyn Hub>,
    /// A settled round with `win >= big_win_multiplier * bet` is a big win.
    big_win_multiplier: i64,
}

/// What one committed round changed in the player's wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Movement {
    /// Coins in minus coins out, by this call.
    change: i64,
    /// Whether this call moved any coins at all (a blackjack hit that does not end the hand
    /// moves none, so it pushes nothing).
    moved: bool,
}

impl std::fmt::Debug for Rounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rounds")
            .field("leaderboards", &self.leaderboards.backend())
            .finish_non_exhaustive()
    }
}

impl Rounds {
    /// Rounds stored in `db`, ranked in `leaderboards`.
    pub fn new(db: Arc<dyn Database>, leaderboards: Arc<dyn Leaderboards>) -> Self {
        Self {
            db,
            leaderboards,
            pushes: None,
        }
    }

    /// Also publishes each committed round's pushes on `hub`: `wallet` to the player and, for
    /// a win of at least `big_win_multiplier` times the bet, `big_win` to everyone.
    #[must_use]
    pub fn announcing(mut self, hub: Arc<dyn Hub>, big_win_multiplier: i64) -> Self {
        self.pushes = Some(Pushes {
            hub,
            big_win_multiplier,
        });
        self
    }

    /// Plays a new round for `request.user_id` (displayed as `username` on the boards).
    ///
    /// # Errors
    /// As [`hearth_storage::GameRepository::play_round`]: the game's refusal, insufficient
    /// funds, a reused idempotency key with another request, an open hand, or the database.
    pub async fn play(
        &self,
        username: &str,
        request: RoundRequest<'_>,
    ) -> Result<Played<SettledRound>, StorageError> {
        let (user_id, bet) = (request.user_id, request.bet);
        let played = self.db.play_round(request).await?;
        let movement = Movement {
            change: played.value.win - bet,
            moved: true,
        };
        self.after(user_id, username, &played, movement);
        Ok(played)
    }

    /// Acts on an open round (a blackjack hit, stand or double).
    ///
    /// # Errors
    /// As [`hearth_storage::GameRepository::act`]: not found (another player's round, or
    /// none), the hand already over, an illegal action, insufficient funds, or the database.
    pub async fn act(
        &self,
        username: &str,
        request: ActRequest<'_>,
    ) -> Result<Played<SettledRound>, StorageError> {
        // The stored round tells the total stake, not what this action added (a double), so
        // the step that committed says it: the last one run (storage may run a step again when
        // it retries a transaction, and only the committed run counts).
        let extra_stake = AtomicI64::new(0);
        let rules = request.step;
        let step = |state: serde_json::Value| -> Result<Step, GameError> {
            let step = rules(state)?;
            extra_stake.store(step.extra_stake, Ordering::Relaxed);
            Ok(step)
        };
        let user_id = request.user_id;
        let played = self.db.act(ActRequest {
            step: &step,
            ..request
        });
        let played = played.await?;
        let extra = extra_stake.load(Ordering::Relaxed);
        let movement = Movement {
            change: played.value.win - extra,
            moved: extra != 0 || played.value.win != 0,
        };
        self.after(user_id, username, &played, movement);
        Ok(played)
    }

    /// What follows a committed round: a replay changed nothing, so it is not counted or
    /// ranked again.
    fn after(
        &self,
        user_id: Uuid,
        username: &str,
        played: &Played<SettledRound>,
        movement: Movement,
    ) {
        if played.replayed {
            return;
        }
        record_round(&played.value);
        if let Some(score) = played.value.score(user_id, username) {
            let boards = self.leaderboards.clone();
            tokio::spawn(async move {
                if let Err(error) = boards.record(&score).await {
                    tracing::warn!(%error, "leaderboard update failed; the next rebuild repairs it");
                }
            });
        }
        if let Some(pushes) = &self.pushes {
            let messages = pushes.messages(user_id, username, &played.value, movement);
            if !messages.is_empty() {
                let hub = pushes.hub.clone();
                tokio::spawn(async move {
                    for (topic, payload) in messages {
                        if let Err(error) = hub.publish(&topic, &payload).await {
                            tracing::warn!(%error, topic, "realtime push lost");
                        }
                    }
                });
            }
        }
    }
}

impl Pushes {
    /// The `(topic, JSON)` pairs a committed round publishes.
    fn messages(
        &self,
        user_id: Uuid,
        username: &str,
        round: &SettledRound,
        movement: Movement,
    ) -> Vec<(String, String)> {
        let mut messages = Vec::with_capacity(2);
        if movement.moved {
            let wallet = serde_json::json!({
                "type": "wallet",
                "balance": round.balance,
                "change": movement.change,
                "kind": "round",
                "round_id": round.round_id,
            });
            messages.push((topics::user(&user_id), wallet.to_string()));
        }
        let settled = round.status == "settled";
        if settled
            && round.bet > 0
            && round.win >= round.bet.saturating_mul(self.big_win_multiplier)
        {
            let big_win = serde_json::json!({
                "type": "big_win",
                "username": username,
                "game": round.game,
                "bet": round.bet,
                "win": round.win,
            });
            messages.push((topics::BIG_WINS.to_owned(), big_win.to_string()));
        }
        messages
    }
}

/// Counts a round in `hearth_game_rounds_total`, `…_wagered_total` and `…_paid_total`.
fn record_round(round: &SettledRound) {
    let game = round.game.clone();
    metrics::counter!(names::GAME_ROUNDS, "game" => game.clone()).increment(1);
    metrics::counter!(names::GAME_WAGERED, "game" => game.clone())
        .increment(u64::try_from(round.bet).unwrap_or(0));
    metrics::counter!(names::GAME_PAID, "game" => game)
        .increment(u64::try_from(round.win).unwrap_or(0));
}
