//! Game rules. Each game is a pure function from a bet and a
//! [`RandomSource`](crate::fairness::RandomSource) to an outcome; the caller
//! debits the bet and credits the win through [`wallet`](crate::wallet).
//!
//! - [`slots`]: a cherry-themed three-reel slot machine.

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
    /// The payout does not fit in an `i64`.
    #[error("payout overflows")]
    Overflow,
}
