//! Game rules. Each game is a pure function (or, for blackjack, a small state
//! machine) from a bet and a
//! [`RandomSource`](crate::fairness::RandomSource) to an outcome; the caller
//! debits the bet and credits the win through [`wallet`](crate::wallet).
//!
//! - [`slots`]: a cherry-themed three-reel slot machine.
//! - [`blackjack`]: six-deck blackjack, dealer stands on soft 17, 3:2.
//! - [`roulette`]: European single-zero roulette with every standard bet.
//! - [`dice`]: roll over or under a target, with a configurable house edge.

pub mod blackjack;
pub mod dice;
pub mod roulette;
pub mod slots;

/// Why a round could not be played. Shared by every game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum GameError {
    /// The bet is zero or negative.
    #[error("bet must be positive, got {bet}")]
    InvalidBet {
        /// The rejected bet.
        bet: i64,
    },
    /// The game only accepts bets that are a multiple of some amount (for
    /// blackjack, even bets, so that 3:2 is a whole number of coins).
    #[error("bet must be a multiple of {multiple}, got {bet}")]
    BetNotMultiple {
        /// The rejected bet.
        bet: i64,
        /// The required multiple.
        multiple: i64,
    },
    /// The payout does not fit in an `i64`.
    #[error("payout overflows")]
    Overflow,
    /// The action is not allowed in the round's current state.
    #[error(transparent)]
    IllegalAction(#[from] blackjack::IllegalAction),
    /// A stored open round could not be restored (a bug or a manual edit).
    #[error("the stored round state is invalid")]
    CorruptState,
}
