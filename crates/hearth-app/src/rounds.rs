//! Playing rounds: the use-case behind every game entry point, and what follows a settled
//! round.
//!
//! A transport validates the player's input against the game's rules, then calls
//! [`Rounds::play`] (a new round) or [`Rounds::act`] (an action on an open blackjack hand).
//! Storage runs the rules inside the round's transaction; once it has committed, a round that
//! changed something (not an idempotent replay) is counted in the `hearth_game_*` metrics and,
//! when settled, fed to the leaderboards. Both are off the money path: a leaderboard failure is
//! logged and repaired by the next rebuild, never the player's problem.

use std::sync::Arc;

use hearth_observability::metrics::names;
use hearth_storage::{ActRequest, Database, Played, RoundRequest, SettledRound, StorageError};
use uuid::Uuid;

use crate::leaderboards::Leaderboards;

/// Plays rounds and applies their side effects. Cheap to clone.
#[derive(Clone)]
pub struct Rounds {
    db: Arc<dyn Database>,
    leaderboards: Arc<dyn Leaderboards>,
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
        Self { db, leaderboards }
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
        let user_id = request.user_id;
        let played = self.db.play_round(request).await?;
        self.after(user_id, username, &played);
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
        let user_id = request.user_id;
        let played = self.db.act(request).await?;
        self.after(user_id, username, &played);
        Ok(played)
    }

    /// What follows a committed round: a replay changed nothing, so it is not counted or
    /// ranked again.
    fn after(&self, user_id: Uuid, username: &str, played: &Played<SettledRound>) {
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
