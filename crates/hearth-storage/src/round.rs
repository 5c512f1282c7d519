//! Round arithmetic shared by both backends: what a round's status is, what its ledger lines
//! are, and running the rules on state already decoded from rows (module `rows`). Nothing here
//! reads or writes a row.

use hearth_domain::fairness::FairRng;
use hearth_domain::wallet::{WalletError, credit, debit};

use crate::rows::{ActStartRow, RoundStartRow};
use crate::{ActRequest, RoundPlay, RoundRequest, SettledRound, Step, StorageError};

/// A round's status, stored in `game_rounds.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoundStatus {
    /// The rules keep the round going; it pays nothing yet.
    Open,
    /// The round is over.
    Settled,
}

impl RoundStatus {
    /// The stored spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Settled => "settled",
        }
    }

    /// `Open` when the rules keep the round going, `Settled` otherwise; an open round pays
    /// nothing.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] for an open round that pays.
    pub(crate) fn of_play(play: &RoundPlay) -> Result<Self, StorageError> {
        match (&play.state, play.win) {
            (None, _) => Ok(Self::Settled),
            (Some(_), 0) => Ok(Self::Open),
            (Some(_), _) => Err(StorageError::Corrupt("an open round cannot pay".into())),
        }
    }

    /// `Open` while a step leaves state behind, `Settled` once it does not.
    pub(crate) fn of_step(step: &Step) -> Self {
        if step.state.is_some() {
            Self::Open
        } else {
            Self::Settled
        }
    }
}

/// The balances around the ledger lines a round writes: the bet, then the win when there is
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoundLedger {
    pub(crate) balance_before: i64,
    pub(crate) after_bet: i64,
    pub(crate) after_win: i64,
}

impl RoundLedger {
    /// Debits `bet` from `balance`, then credits `win`.
    ///
    /// # Errors
    /// [`StorageError::InsufficientBalance`] when `balance` cannot cover `bet`;
    /// [`StorageError::Corrupt`] for any other wallet error (an overflow).
    pub(crate) fn compute(balance: i64, bet: i64, win: i64) -> Result<Self, StorageError> {
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

    /// Balances around one action on an open round: the extra stake's debit, then the win's
    /// credit.
    ///
    /// # Errors
    /// As [`Self::compute`].
    pub(crate) fn of_step(balance: i64, step: &Step) -> Result<Self, StorageError> {
        if step.extra_stake == 0 {
            let after_win =
                credit(balance, step.win).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            return Ok(Self {
                balance_before: balance,
                after_bet: balance,
                after_win,
            });
        }
        Self::compute(balance, step.extra_stake, step.win)
    }
}

/// A round drawn under the wallet lock, ready to be written.
pub(crate) struct Drawn {
    pub(crate) play: RoundPlay,
    pub(crate) status: RoundStatus,
    pub(crate) ledger: RoundLedger,
    /// The nonce the round was drawn with.
    pub(crate) nonce: u64,
}

/// Plays `request`'s round from the locked `start` row, on either backend. A second open
/// round and an unaffordable bet are refused before drawing, so a refusal spends no nonce; the
/// seeds and the nonce are decoded only then, so that the refusals come first whatever is
/// stored.
///
/// # Errors
/// [`StorageError::Conflict`] while a round of the game is open (the unique index alone would
/// let a round that settles at once, such as a natural blackjack, through);
/// [`StorageError::InsufficientBalance`]; [`StorageError::Game`] when the rules refuse;
/// [`StorageError::Corrupt`] for stored seeds or a nonce that do not decode.
pub(crate) fn draw(
    start: &RoundStartRow,
    request: &RoundRequest<'_>,
) -> Result<Drawn, StorageError> {
    if start.has_open {
        return Err(StorageError::Conflict {
            constraint: "game_rounds_one_open_per_game".into(),
        });
    }
    RoundLedger::compute(start.balance, request.bet, 0)?;
    let (server_seed, client_seed) = start.seeds()?;
    let nonce = start.nonce()?;
    let play = (request.play)(&mut FairRng::new(&server_seed, &client_seed, nonce))?;
    let status = RoundStatus::of_play(&play)?;
    let ledger = RoundLedger::compute(start.balance, request.bet, play.win)?;
    Ok(Drawn {
        play,
        status,
        ledger,
        nonce,
    })
}

/// An action worked out from the round it starts from, before anything is written: the step,
/// its ledger lines, and the round's stake and status after it.
pub(crate) struct Acted {
    pub(crate) step: Step,
    pub(crate) ledger: RoundLedger,
    pub(crate) total_bet: i64,
    pub(crate) status: RoundStatus,
}

/// Runs `request`'s action on the round in `start` (see [`run_step`]) and works out what it
/// changes.
///
/// # Errors
/// As [`run_step`]; [`StorageError::InsufficientBalance`] when the wallet cannot cover an extra
/// stake; [`StorageError::Corrupt`] when the stake overflows.
pub(crate) fn act(start: &ActStartRow, request: &ActRequest<'_>) -> Result<Acted, StorageError> {
    let step = run_step(start, request)?;
    let ledger = RoundLedger::of_step(start.balance, &step)?;
    let total_bet = start
        .bet
        .checked_add(step.extra_stake)
        .ok_or_else(|| StorageError::Corrupt("stake overflows".into()))?;
    let status = RoundStatus::of_step(&step);
    Ok(Acted {
        step,
        ledger,
        total_bet,
        status,
    })
}

impl Acted {
    /// The action's answer: the round `round_id` as it stands after it.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] for a negative stored nonce.
    pub(crate) fn answer(
        self,
        start: ActStartRow,
        round_id: uuid::Uuid,
    ) -> Result<SettledRound, StorageError> {
        Ok(SettledRound {
            round_id,
            status: self.status.as_str().to_owned(),
            nonce: start.nonce()?,
            game: start.game,
            bet: self.total_bet,
            win: self.step.win,
            balance: self.ledger.after_win,
            detail: self.step.detail,
            server_seed_hash: start.server_seed_hash,
            client_seed: start.client_seed,
            created_at: start.created_at,
        })
    }
}

/// Checks an action may run on the round in `start` and runs the step.
///
/// # Errors
/// [`StorageError::NotFound`] when the round is of another game; [`StorageError::Conflict`]
/// when it is settled; [`StorageError::Game`] when the rules refuse;
/// [`StorageError::Corrupt`] when the step's stake or win is inconsistent.
fn run_step(start: &ActStartRow, request: &ActRequest<'_>) -> Result<Step, StorageError> {
    if start.game != request.game {
        return Err(StorageError::NotFound);
    }
    let state = start.open_state().ok_or_else(|| StorageError::Conflict {
        constraint: "round_settled".into(),
    })?;
    let step = (request.step)(state)?;
    if step.extra_stake < 0 || (step.state.is_some() && step.win != 0) || step.win < 0 {
        return Err(StorageError::Corrupt(
            "the step's stake or win is inconsistent".into(),
        ));
    }
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(win: i64, state: Option<serde_json::Value>) -> RoundPlay {
        RoundPlay {
            win,
            detail: serde_json::Value::Null,
            state,
        }
    }

    #[test]
    fn a_round_with_state_is_open_and_one_without_is_settled() {
        let state = Some(serde_json::json!({ "hand": 1 }));
        assert_eq!(
            RoundStatus::of_play(&play(0, state.clone())).ok(),
            Some(RoundStatus::Open)
        );
        assert_eq!(
            RoundStatus::of_play(&play(30, None)).ok(),
            Some(RoundStatus::Settled)
        );
        assert!(matches!(
            RoundStatus::of_play(&play(30, state)),
            Err(StorageError::Corrupt(_))
        ));
        assert_eq!(RoundStatus::Open.as_str(), "open");
        assert_eq!(RoundStatus::Settled.as_str(), "settled");
    }

    #[test]
    fn the_ledger_debits_the_bet_then_credits_the_win() {
        let ledger = RoundLedger::compute(100, 30, 50).ok();
        assert_eq!(
            ledger,
            Some(RoundLedger {
                balance_before: 100,
                after_bet: 70,
                after_win: 120,
            })
        );
    }

    #[test]
    fn an_unaffordable_bet_is_insufficient_and_an_overflowing_win_corrupt() {
        assert!(matches!(
            RoundLedger::compute(10, 30, 0),
            Err(StorageError::InsufficientBalance {
                needed: 30,
                available: 10
            })
        ));
        assert!(matches!(
            RoundLedger::compute(i64::MAX, 1, 2),
            Err(StorageError::Corrupt(_))
        ));
    }

    #[test]
    fn a_step_without_extra_stake_only_credits() {
        let step = Step {
            extra_stake: 0,
            state: None,
            win: 40,
            detail: serde_json::Value::Null,
        };
        assert_eq!(
            RoundLedger::of_step(100, &step).ok(),
            Some(RoundLedger {
                balance_before: 100,
                after_bet: 100,
                after_win: 140,
            })
        );
        let doubled = Step {
            extra_stake: 20,
            ..step
        };
        assert_eq!(
            RoundLedger::of_step(100, &doubled).ok(),
            Some(RoundLedger {
                balance_before: 100,
                after_bet: 80,
                after_win: 120,
            })
        );
    }
}
