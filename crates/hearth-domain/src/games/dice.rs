//! Dice: bet that a roll from 0.00 to 99.99 lands over or under a target.
//!
//! All quantities are integers in hundredths of a percent (basis points,
//! 1/10,000):
//!
//! - **Roll**: `rng.below(10_000)` (exactly one call), 0–9999, shown as
//!   0.00–99.99. All 10,000 values are equally likely.
//! - **Target**: 0–9999, shown the same way (`5000` is 50.00).
//! - **Win**: [`Direction::Under`] wins when `roll < target`;
//!   [`Direction::Over`] wins when `roll > target` (a roll equal to the target
//!   loses either way).
//! - **Chance** (winning rolls out of 10,000): `target` for under,
//!   `9999 − target` for over. It must lie in [`MIN_CHANCE`]..=[`MAX_CHANCE`]
//!   (1.00% to 98.00%), so under takes targets 100–9800 and over takes
//!   199–9899.
//! - **House edge** `e`: basis points of return kept by the house (100 =
//!   1%), set by the operator ([`HouseEdge`]), at most [`MAX_HOUSE_EDGE`].
//! - **Multiplier** (basis points, so `19800` is ×1.9800):
//!   `multiplier = floor(10_000 × (10_000 − e) / chance)`, which is
//!   `(100% − edge) / chance` rounded down to four decimals.
//! - **Payout** of a win (stake included):
//!   `payout = floor(amount × multiplier / 10_000)`; a loss pays 0. Computed
//!   in 128-bit integers: no floating point touches money.
//!
//! A bet whose multiplier would not exceed ×1.0000 (a win that returns no
//! more than the stake) is refused.
//!
//! # Return to player
//!
//! Before rounding the RTP is exactly `1 − e / 10_000` for every target. The
//! two floors can only lower it: the RTP of a bet is
//! `chance × floor(amount × multiplier / 10_000) / (10_000 × amount)`
//! ([`DiceBet::rtp`]); for an amount that is a multiple of 10,000 it is
//! `chance × multiplier / 10^8`, within `chance / 10^8 ≤ 0.0098` percentage
//! points of `1 − e / 10_000`.
//!
//! # Example
//!
//! ```
//! use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
//! use hearth_domain::games::dice::{self, DiceBet, DiceRequest, HouseEdge};
//!
//! let request: DiceRequest =
//!     serde_json::from_str(r#"{"amount": 100, "direction": "over", "target": 5000}"#)?;
//! let bet = DiceBet::new(&request, HouseEdge::from_basis_points(100)?)?;
//! assert_eq!((bet.chance(), bet.multiplier(), bet.win_payout()), (4999, 19_803, 198));
//! let server = ServerSeed::from_bytes([7; 32]);
//! let client = ClientSeed::parse("lucky")?;
//! let outcome = dice::roll(&mut FairRng::new(&server, &client, 0), &bet);
//! assert_eq!((outcome.roll, outcome.won, outcome.payout), (7065, true, 198));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fairness::RandomSource;

/// Number of possible rolls (0–9999); also "100%" in basis points.
pub const ROLLS: u32 = 10_000;

/// The smallest win chance accepted: 100 (1.00%).
pub const MIN_CHANCE: u32 = 100;

/// The largest win chance accepted: 9800 (98.00%).
pub const MAX_CHANCE: u32 = 9_800;

/// The largest house edge accepted: 5000 basis points (50%).
pub const MAX_HOUSE_EDGE: u32 = 5_000;

/// Which side of the target wins.
///
/// Serialized as `"over"` or `"under"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Wins when `roll > target`.
    Over,
    /// Wins when `roll < target`.
    Under,
}

impl Direction {
    /// The snake_case name used in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Over => "over",
            Self::Under => "under",
        }
    }

    /// The targets accepted in this direction: those whose chance lies in
    /// `MIN_CHANCE..=MAX_CHANCE` (100–9800 under, 199–9899 over).
    #[must_use]
    pub const fn target_range(self) -> (u32, u32) {
        match self {
            Self::Under => (MIN_CHANCE, MAX_CHANCE),
            Self::Over => (ROLLS - 1 - MAX_CHANCE, ROLLS - 1 - MIN_CHANCE),
        }
    }

    /// Number of winning rolls (out of 10,000) for `target` (0–9999):
    /// `target` under, `9999 − target` over.
    #[must_use]
    pub const fn chance(self, target: u32) -> u32 {
        match self {
            Self::Under => target,
            Self::Over => (ROLLS - 1).saturating_sub(target),
        }
    }

    /// Whether `roll` wins against `target`.
    #[must_use]
    pub const fn wins(self, roll: u32, target: u32) -> bool {
        match self {
            Self::Under => roll < target,
            Self::Over => roll > target,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a dice bet or house edge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DiceError {
    /// The amount is zero or negative.
    #[error("bet must be positive, got {amount}")]
    InvalidBet {
        /// The rejected amount.
        amount: i64,
    },
    /// The target gives a chance outside 1%–98%.
    #[error("target for {direction} must be {min} to {max}, got {target}")]
    TargetOutOfRange {
        /// The bet's direction.
        direction: Direction,
        /// The rejected target.
        target: u32,
        /// The smallest accepted target for this direction.
        min: u32,
        /// The largest accepted target for this direction.
        max: u32,
    },
    /// The house edge is above [`MAX_HOUSE_EDGE`].
    #[error("house edge must be at most {MAX_HOUSE_EDGE} basis points, got {basis_points}")]
    HouseEdgeOutOfRange {
        /// The rejected edge.
        basis_points: u32,
    },
    /// With this chance and house edge a win would not pay more than the
    /// stake.
    #[error("multiplier {multiplier} (basis points) does not exceed 1: pick a lower chance")]
    MultiplierTooLow {
        /// The multiplier that would apply, in basis points.
        multiplier: u32,
    },
    /// A win would not fit in an `i64`.
    #[error("payout overflows")]
    Overflow,
}

/// The house edge, in basis points of the amount staked (100 = 1%).
///
/// Serialized as the plain number of basis points; deserializing validates
/// like [`HouseEdge::from_basis_points`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct HouseEdge(u32);

impl HouseEdge {
    /// A 1% edge.
    pub const ONE_PERCENT: Self = Self(100);

    /// Wraps an edge of `basis_points` (0 to [`MAX_HOUSE_EDGE`]).
    ///
    /// # Errors
    ///
    /// [`DiceError::HouseEdgeOutOfRange`] above [`MAX_HOUSE_EDGE`].
    pub const fn from_basis_points(basis_points: u32) -> Result<Self, DiceError> {
        if basis_points > MAX_HOUSE_EDGE {
            Err(DiceError::HouseEdgeOutOfRange { basis_points })
        } else {
            Ok(Self(basis_points))
        }
    }

    /// The edge in basis points.
    #[must_use]
    pub const fn basis_points(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for HouseEdge {
    type Error = DiceError;

    /// Same as [`HouseEdge::from_basis_points`].
    ///
    /// # Errors
    ///
    /// See [`HouseEdge::from_basis_points`].
    fn try_from(basis_points: u32) -> Result<Self, Self::Error> {
        Self::from_basis_points(basis_points)
    }
}

impl From<HouseEdge> for u32 {
    fn from(edge: HouseEdge) -> Self {
        edge.0
    }
}

/// The multiplier, in basis points, for `chance` winning rolls of 10,000
/// under `edge`: `floor(10_000 × (10_000 − edge) / chance)`.
///
/// # Panics
///
/// If `chance` is 0.
#[must_use]
pub const fn multiplier(chance: u32, edge: HouseEdge) -> u32 {
    // At most 10^8 / 1: fits in a u32.
    ROLLS * (ROLLS - edge.0) / chance
}

/// A dice bet as requested by the player.
///
/// JSON: `{"amount": 10, "direction": "under", "target": 5000}` (win when
/// the roll is below 50.00). Unknown fields are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiceRequest {
    /// Coins staked.
    pub amount: i64,
    /// Which side of the target wins.
    pub direction: Direction,
    /// The target in hundredths (0–9999 stands for 0.00–99.99).
    pub target: u32,
}

/// A validated dice bet, with its chance, multiplier and possible payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DiceBet {
    request: DiceRequest,
    edge: HouseEdge,
    chance: u32,
    multiplier: u32,
    win_payout: i64,
}

impl DiceBet {
    /// Validates `request` under `edge` and computes its multiplier and win
    /// payout (see the [module docs](self)).
    ///
    /// # Errors
    ///
    /// - [`DiceError::InvalidBet`] if the amount is not positive.
    /// - [`DiceError::TargetOutOfRange`] if the chance is outside
    ///   [`MIN_CHANCE`]..=[`MAX_CHANCE`].
    /// - [`DiceError::MultiplierTooLow`] if the multiplier is not above
    ///   10,000 (×1).
    /// - [`DiceError::Overflow`] if a win does not fit in an `i64`.
    pub fn new(request: &DiceRequest, edge: HouseEdge) -> Result<Self, DiceError> {
        let DiceRequest {
            amount,
            direction,
            target,
        } = *request;
        if amount <= 0 {
            return Err(DiceError::InvalidBet { amount });
        }
        let (min, max) = direction.target_range();
        if !(min..=max).contains(&target) {
            return Err(DiceError::TargetOutOfRange {
                direction,
                target,
                min,
                max,
            });
        }
        let chance = direction.chance(target);
        let multiplier = multiplier(chance, edge);
        if multiplier <= ROLLS {
            return Err(DiceError::MultiplierTooLow { multiplier });
        }
        let win = i128::from(amount) * i128::from(multiplier) / i128::from(ROLLS);
        let win_payout = i64::try_from(win).map_err(|_| DiceError::Overflow)?;
        Ok(Self {
            request: *request,
            edge,
            chance,
            multiplier,
            win_payout,
        })
    }

    /// The request this bet was built from.
    #[must_use]
    pub const fn request(&self) -> &DiceRequest {
        &self.request
    }

    /// The house edge it was priced with.
    #[must_use]
    pub const fn edge(&self) -> HouseEdge {
        self.edge
    }

    /// Winning rolls out of 10,000.
    #[must_use]
    pub const fn chance(&self) -> u32 {
        self.chance
    }

    /// The multiplier in basis points.
    #[must_use]
    pub const fn multiplier(&self) -> u32 {
        self.multiplier
    }

    /// What a win returns: `floor(amount × multiplier / 10_000)`.
    #[must_use]
    pub const fn win_payout(&self) -> i64 {
        self.win_payout
    }

    /// The exact RTP of this bet:
    /// `chance × win_payout / (10_000 × amount)`.
    #[must_use]
    pub fn rtp(&self) -> f64 {
        // Both products are far below 2^53 for realistic amounts; the ratio
        // is what matters.
        #[allow(clippy::cast_precision_loss)]
        let (won, staked) = (
            f64::from(self.chance) * self.win_payout as f64,
            f64::from(ROLLS) * self.request.amount as f64,
        );
        won / staked
    }

    /// Settles the bet for `roll` (0–9999), without drawing anything.
    #[must_use]
    pub const fn settle(&self, roll: u32) -> DiceOutcome {
        let won = self.request.direction.wins(roll, self.request.target);
        DiceOutcome {
            roll,
            amount: self.request.amount,
            direction: self.request.direction,
            target: self.request.target,
            chance: self.chance,
            multiplier: self.multiplier,
            won,
            payout: if won { self.win_payout } else { 0 },
        }
    }
}

/// The result of one roll.
///
/// JSON: `{"roll": 4211, "amount": 10, "direction": "under", "target": 5000,
/// "chance": 5000, "multiplier": 19800, "won": true, "payout": 19}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DiceOutcome {
    /// The roll, 0–9999 (shown as 0.00–99.99).
    pub roll: u32,
    /// Coins staked.
    pub amount: i64,
    /// Which side of the target wins.
    pub direction: Direction,
    /// The target in hundredths.
    pub target: u32,
    /// Winning rolls out of 10,000.
    pub chance: u32,
    /// The multiplier in basis points.
    pub multiplier: u32,
    /// Whether the roll won.
    pub won: bool,
    /// Coins to credit, stake included: the bet's win payout, or 0.
    pub payout: i64,
}

/// Rolls once for `bet`: the roll is `rng.below(10_000)` (exactly one
/// call), then the bet is settled ([`DiceBet::settle`]).
///
/// The caller debits the amount and credits [`DiceOutcome::payout`].
#[must_use]
pub fn roll(rng: &mut impl RandomSource, bet: &DiceBet) -> DiceOutcome {
    bet.settle(rng.below(ROLLS))
}

#[cfg(test)]
mod tests;
