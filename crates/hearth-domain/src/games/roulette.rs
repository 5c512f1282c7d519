//! European (single-zero) roulette.
//!
//! The wheel has 37 pockets, 0 to 36; a spin draws the pocket with
//! `rng.below(37)` (one call, nothing else is drawn). A spin carries one or
//! more bets ([`BetRequest`]), each validated on its own ([`Bets::validate`]);
//! every winning bet returns `amount × (k + 1)` for a `k` to 1 bet, every
//! losing bet returns nothing.
//!
//! # Layout
//!
//! Numbers 1–36 sit in 12 rows of three: row `r` (0–11) holds `3r + 1`,
//! `3r + 2`, `3r + 3`; column 1 holds 1, 4, …, 34, column 2 holds 2, 5, …, 35
//! and column 3 holds 3, 6, …, 36. Zero sits above the first row, next to 1,
//! 2 and 3. Red: 1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32,
//! 34, 36; the other numbers from 1 to 36 are black; zero is green.
//!
//! # Bets
//!
//! | kind | `numbers` | covers | pays |
//! | --- | --- | ---: | ---: |
//! | `straight` | one pocket, 0–36 | 1 | 35:1 |
//! | `split` | two adjacent pockets: side by side in a row, one above the other, or 0 with 1, 2 or 3 | 2 | 17:1 |
//! | `street` | a whole row (e.g. `[4, 5, 6]`), or the trios `[0, 1, 2]`, `[0, 2, 3]` | 3 | 11:1 |
//! | `corner` | a 2×2 block (e.g. `[1, 2, 4, 5]`), or the first four `[0, 1, 2, 3]` | 4 | 8:1 |
//! | `line` | two adjacent rows (e.g. `[1, 2, 3, 4, 5, 6]`) | 6 | 5:1 |
//! | `dozen` | `[1]` (1–12), `[2]` (13–24) or `[3]` (25–36) | 12 | 2:1 |
//! | `column` | `[1]`, `[2]` or `[3]` (see the layout) | 12 | 2:1 |
//! | `red`, `black` | none | 18 | 1:1 |
//! | `odd`, `even` | none | 18 | 1:1 |
//! | `low` (1–18), `high` (19–36) | none | 18 | 1:1 |
//!
//! Inside bets list every pocket they cover, in any order, without
//! repeats; outside bets take no numbers (`numbers` omitted or empty). Zero
//! is neither odd nor even, low nor high, red nor black, and is in no dozen
//! or column: **zero loses every outside bet**, with no *la partage* or *en
//! prison*.
//!
//! Every bet covers `c` pockets and pays `36 / c − 1` to 1, so every bet
//! kind has the same exact RTP, `c/37 × 36/c =` [`RTP`] = 36/37 ≈ 97.297%.
//!
//! # Example
//!
//! ```
//! use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
//! use hearth_domain::games::roulette::{self, BetRequest, Bets};
//!
//! let requests: Vec<BetRequest> = serde_json::from_str(
//!     r#"[{"kind": "straight", "numbers": [22], "amount": 10},
//!         {"kind": "red", "amount": 5}]"#,
//! )?;
//! let bets = Bets::validate(&requests)?; // before debiting anything
//! assert_eq!(bets.total_stake(), 15);
//! let server = ServerSeed::from_bytes([7; 32]);
//! let client = ClientSeed::parse("lucky")?;
//! let outcome = roulette::spin(&mut FairRng::new(&server, &client, 0), &bets);
//! assert_eq!((outcome.pocket, outcome.total_payout), (22, 360));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fairness::RandomSource;

/// Number of pockets on the wheel (0 to 36).
pub const POCKETS: u32 = 37;

/// The highest pocket number.
pub const MAX_POCKET: u8 = 36;

/// The most bets one spin may carry.
pub const MAX_BETS: usize = 64;

/// The exact return to player of every bet: 36/37.
pub const RTP: f64 = 36.0 / 37.0;

/// The red numbers.
pub const RED_NUMBERS: [u8; 18] = [
    1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36,
];

/// A pocket's color.
///
/// Serialized as `"green"`, `"red"` or `"black"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Color {
    /// Zero.
    Green,
    /// See [`RED_NUMBERS`].
    Red,
    /// Every other number from 1 to 36.
    Black,
}

/// The color of `pocket` (anything above 36 counts as black; callers pass
/// 0–36).
#[must_use]
pub const fn color(pocket: u8) -> Color {
    if pocket == 0 {
        return Color::Green;
    }
    let mut i = 0;
    while i < RED_NUMBERS.len() {
        if RED_NUMBERS[i] == pocket {
            return Color::Red;
        }
        i += 1;
    }
    Color::Black
}

/// A kind of bet.
///
/// Serialized in snake_case (`"straight"`, `"split"`, …, `"high"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetKind {
    /// One pocket; 35:1.
    Straight,
    /// Two adjacent pockets; 17:1.
    Split,
    /// A row of three, or a zero trio; 11:1.
    Street,
    /// A 2×2 block, or 0-1-2-3; 8:1.
    Corner,
    /// Two adjacent rows (six line); 5:1.
    Line,
    /// 1–12, 13–24 or 25–36; 2:1.
    Dozen,
    /// One of the three columns; 2:1.
    Column,
    /// The 18 red numbers; 1:1.
    Red,
    /// The 18 black numbers; 1:1.
    Black,
    /// Odd numbers 1–35; 1:1.
    Odd,
    /// Even numbers 2–36; 1:1.
    Even,
    /// 1–18; 1:1.
    Low,
    /// 19–36; 1:1.
    High,
}

impl BetKind {
    /// Every bet kind.
    pub const ALL: [Self; 13] = [
        Self::Straight,
        Self::Split,
        Self::Street,
        Self::Corner,
        Self::Line,
        Self::Dozen,
        Self::Column,
        Self::Red,
        Self::Black,
        Self::Odd,
        Self::Even,
        Self::Low,
        Self::High,
    ];

    /// `k` in "pays `k` to 1": a win returns `amount × (k + 1)`.
    #[must_use]
    pub const fn pays(self) -> i64 {
        match self {
            Self::Straight => 35,
            Self::Split => 17,
            Self::Street => 11,
            Self::Corner => 8,
            Self::Line => 5,
            Self::Dozen | Self::Column => 2,
            Self::Red | Self::Black | Self::Odd | Self::Even | Self::Low | Self::High => 1,
        }
    }

    /// How many pockets a bet of this kind covers.
    #[must_use]
    pub const fn pockets_covered(self) -> u32 {
        match self {
            Self::Straight => 1,
            Self::Split => 2,
            Self::Street => 3,
            Self::Corner => 4,
            Self::Line => 6,
            Self::Dozen | Self::Column => 12,
            Self::Red | Self::Black | Self::Odd | Self::Even | Self::Low | Self::High => 18,
        }
    }

    /// How many entries `numbers` must have for this kind (0 for outside
    /// bets, 1 for dozen and column).
    #[must_use]
    pub const fn numbers_len(self) -> usize {
        match self {
            Self::Straight | Self::Dozen | Self::Column => 1,
            Self::Split => 2,
            Self::Street => 3,
            Self::Corner => 4,
            Self::Line => 6,
            Self::Red | Self::Black | Self::Odd | Self::Even | Self::Low | Self::High => 0,
        }
    }

    /// The snake_case name used in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Straight => "straight",
            Self::Split => "split",
            Self::Street => "street",
            Self::Corner => "corner",
            Self::Line => "line",
            Self::Dozen => "dozen",
            Self::Column => "column",
            Self::Red => "red",
            Self::Black => "black",
            Self::Odd => "odd",
            Self::Even => "even",
            Self::Low => "low",
            Self::High => "high",
        }
    }
}

impl fmt::Display for BetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bet as requested by the player.
///
/// JSON: `{"kind": "split", "numbers": [17, 20], "amount": 5}`,
/// `{"kind": "dozen", "numbers": [2], "amount": 5}`,
/// `{"kind": "red", "amount": 5}`. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BetRequest {
    /// The kind of bet.
    pub kind: BetKind,
    /// The pockets for inside bets, `1`–`3` for dozen and column, empty (or
    /// omitted) for outside bets. See the [module docs](self).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numbers: Vec<u8>,
    /// Coins staked on this bet.
    pub amount: i64,
}

/// What is wrong with one bet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BetProblem {
    /// The amount is zero or negative.
    #[error("amount must be positive, got {amount}")]
    NonPositiveAmount {
        /// The rejected amount.
        amount: i64,
    },
    /// `numbers` has the wrong number of entries for the kind.
    #[error("a {kind} bet takes {expected} numbers, got {actual}")]
    WrongCount {
        /// The bet kind.
        kind: BetKind,
        /// The number of entries it takes ([`BetKind::numbers_len`]).
        expected: usize,
        /// The number given.
        actual: usize,
    },
    /// A pocket number above 36.
    #[error("{number} is not a pocket (0-36)")]
    NumberOutOfRange {
        /// The rejected number.
        number: u8,
    },
    /// A dozen or column chosen with something other than 1, 2 or 3.
    #[error("a {kind} bet is chosen with 1, 2 or 3, got {value}")]
    SelectorOutOfRange {
        /// [`BetKind::Dozen`] or [`BetKind::Column`].
        kind: BetKind,
        /// The rejected value.
        value: u8,
    },
    /// The same pocket listed twice.
    #[error("pocket {number} is listed twice")]
    DuplicateNumber {
        /// The repeated pocket.
        number: u8,
    },
    /// The pockets do not form a bet of this kind on the layout (for
    /// example a split of two pockets that are not adjacent).
    #[error("the numbers do not form a {kind} on the layout")]
    NotOnLayout {
        /// The bet kind.
        kind: BetKind,
    },
    /// A win would not fit in an `i64`.
    #[error("the amount is too large: a win would overflow")]
    PayoutOverflow,
}

/// Why a spin's bets were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RouletteError {
    /// The spin has no bets.
    #[error("a spin needs at least one bet")]
    NoBets,
    /// The spin has more than [`MAX_BETS`] bets.
    #[error("at most {max} bets per spin, got {count}")]
    TooManyBets {
        /// The number of bets given.
        count: usize,
        /// [`MAX_BETS`].
        max: usize,
    },
    /// One bet is invalid.
    #[error("bet {index}: {problem}")]
    InvalidBet {
        /// Zero-based position of the bet in the request.
        index: usize,
        /// What is wrong with it.
        problem: BetProblem,
    },
    /// The total stake, or the total of every bet winning at once, does not
    /// fit in an `i64`.
    #[error("the total stake or payout overflows")]
    TotalOverflow,
}

/// Bit `p` set for every pocket `p` in `pockets`.
fn mask(pockets: impl IntoIterator<Item = u8>) -> u64 {
    pockets.into_iter().fold(0, |m, p| m | (1u64 << p))
}

/// The pockets of an inside bet's sorted, distinct, in-range `numbers`, if
/// they form a bet of `kind` on the layout.
fn inside_mask(kind: BetKind, n: &[u8]) -> Option<u64> {
    let valid = match (kind, n) {
        (BetKind::Straight, [_]) => true,
        (BetKind::Split, &[0, b]) => (1..=3).contains(&b),
        (BetKind::Split, &[a, b]) => (b == a + 1 && a % 3 != 0) || b == a + 3,
        (BetKind::Street, &[0, 1, 2] | &[0, 2, 3]) => true,
        (BetKind::Street, &[a, b, c]) => a % 3 == 1 && b == a + 1 && c == a + 2,
        (BetKind::Corner, &[0, 1, 2, 3]) => true,
        (BetKind::Corner, &[a, b, c, d]) => {
            a != 0 && a % 3 != 0 && b == a + 1 && c == a + 3 && d == a + 4
        }
        (BetKind::Line, &[a, ..]) => {
            a % 3 == 1 && n.iter().zip(a..).all(|(&x, expected)| x == expected)
        }
        _ => false,
    };
    valid.then(|| mask(n.iter().copied()))
}

/// The pockets of a dozen or column chosen with `selector` (1–3).
fn selector_mask(kind: BetKind, selector: u8) -> u64 {
    match kind {
        BetKind::Dozen => mask((1..=12).map(|i| 12 * (selector - 1) + i)),
        _ => mask((1..=MAX_POCKET).filter(|p| (p - 1) % 3 == selector - 1)),
    }
}

/// The pockets of an outside even-money bet.
fn outside_mask(kind: BetKind) -> u64 {
    let numbers = 1..=MAX_POCKET;
    match kind {
        BetKind::Red => mask(RED_NUMBERS),
        BetKind::Black => mask(numbers.filter(|&p| color(p) == Color::Black)),
        BetKind::Odd => mask(numbers.filter(|p| p % 2 == 1)),
        BetKind::Even => mask(numbers.filter(|p| p % 2 == 0)),
        BetKind::Low => mask(1..=18),
        _ => mask(19..=MAX_POCKET),
    }
}

/// A validated bet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bet {
    kind: BetKind,
    numbers: Vec<u8>,
    amount: i64,
    /// Bit `p` is set when the bet wins on pocket `p`.
    covers: u64,
}

impl Bet {
    /// Validates one bet. Inside-bet numbers are stored sorted.
    ///
    /// Checks, in order: the amount, the number of entries, their range,
    /// repeats, the layout, and that a win fits in an `i64`.
    ///
    /// # Errors
    ///
    /// The first [`BetProblem`] found.
    pub fn new(request: &BetRequest) -> Result<Self, BetProblem> {
        let BetRequest {
            kind,
            ref numbers,
            amount,
        } = *request;
        if amount <= 0 {
            return Err(BetProblem::NonPositiveAmount { amount });
        }
        if numbers.len() != kind.numbers_len() {
            return Err(BetProblem::WrongCount {
                kind,
                expected: kind.numbers_len(),
                actual: numbers.len(),
            });
        }
        let mut sorted = numbers.clone();
        sorted.sort_unstable();
        let covers = match kind {
            BetKind::Dozen | BetKind::Column => {
                let value = sorted[0];
                if !(1..=3).contains(&value) {
                    return Err(BetProblem::SelectorOutOfRange { kind, value });
                }
                selector_mask(kind, value)
            }
            BetKind::Straight
            | BetKind::Split
            | BetKind::Street
            | BetKind::Corner
            | BetKind::Line => {
                if let Some(&number) = numbers.iter().find(|&&n| n > MAX_POCKET) {
                    return Err(BetProblem::NumberOutOfRange { number });
                }
                if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
                    return Err(BetProblem::DuplicateNumber { number: pair[0] });
                }
                inside_mask(kind, &sorted).ok_or(BetProblem::NotOnLayout { kind })?
            }
            _ => outside_mask(kind),
        };
        amount
            .checked_mul(kind.pays() + 1)
            .ok_or(BetProblem::PayoutOverflow)?;
        Ok(Self {
            kind,
            numbers: sorted,
            amount,
            covers,
        })
    }

    /// The kind of bet.
    #[must_use]
    pub const fn kind(&self) -> BetKind {
        self.kind
    }

    /// The request's numbers, sorted ascending.
    #[must_use]
    pub fn numbers(&self) -> &[u8] {
        &self.numbers
    }

    /// Coins staked.
    #[must_use]
    pub const fn amount(&self) -> i64 {
        self.amount
    }

    /// Whether the bet wins when the ball lands in `pocket`.
    #[must_use]
    pub const fn wins_on(&self, pocket: u8) -> bool {
        pocket <= MAX_POCKET && self.covers & (1 << pocket) != 0
    }

    /// Every pocket the bet wins on, ascending.
    #[must_use]
    pub fn pockets(&self) -> Vec<u8> {
        (0..=MAX_POCKET).filter(|&p| self.wins_on(p)).collect()
    }

    /// What a win returns: `amount × (pays + 1)` (fits: checked in
    /// [`Bet::new`]).
    #[must_use]
    pub const fn win_payout(&self) -> i64 {
        self.amount * (self.kind.pays() + 1)
    }

    /// What the bet returns when the ball lands in `pocket`.
    #[must_use]
    pub const fn payout_on(&self, pocket: u8) -> i64 {
        if self.wins_on(pocket) {
            self.win_payout()
        } else {
            0
        }
    }
}

/// The validated bets of one spin: 1 to [`MAX_BETS`] bets whose total stake
/// and total possible payout fit in an `i64`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bets {
    bets: Vec<Bet>,
    total_stake: i64,
}

impl Bets {
    /// Validates every bet of a spin, in order.
    ///
    /// # Errors
    ///
    /// - [`RouletteError::NoBets`] if `requests` is empty.
    /// - [`RouletteError::TooManyBets`] if it has more than [`MAX_BETS`].
    /// - [`RouletteError::InvalidBet`] for the first invalid bet, with its
    ///   index.
    /// - [`RouletteError::TotalOverflow`] if the total stake, or the sum of
    ///   every bet's win, does not fit in an `i64`.
    pub fn validate(requests: &[BetRequest]) -> Result<Self, RouletteError> {
        if requests.is_empty() {
            return Err(RouletteError::NoBets);
        }
        if requests.len() > MAX_BETS {
            return Err(RouletteError::TooManyBets {
                count: requests.len(),
                max: MAX_BETS,
            });
        }
        let bets = requests
            .iter()
            .enumerate()
            .map(|(index, request)| {
                Bet::new(request).map_err(|problem| RouletteError::InvalidBet { index, problem })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut total_stake = 0i64;
        let mut max_payout = 0i64;
        for bet in &bets {
            total_stake = total_stake
                .checked_add(bet.amount)
                .ok_or(RouletteError::TotalOverflow)?;
            max_payout = max_payout
                .checked_add(bet.win_payout())
                .ok_or(RouletteError::TotalOverflow)?;
        }
        Ok(Self { bets, total_stake })
    }

    /// The bets, in request order.
    #[must_use]
    pub fn as_slice(&self) -> &[Bet] {
        &self.bets
    }

    /// The sum of every bet's amount: what the caller debits.
    #[must_use]
    pub const fn total_stake(&self) -> i64 {
        self.total_stake
    }

    /// Settles every bet for the ball landing in `pocket` (0–36), without
    /// drawing anything.
    #[must_use]
    pub fn settle(&self, pocket: u8) -> RouletteOutcome {
        let bets: Vec<BetResult> = self
            .bets
            .iter()
            .map(|bet| BetResult {
                kind: bet.kind,
                numbers: bet.numbers.clone(),
                amount: bet.amount,
                won: bet.wins_on(pocket),
                payout: bet.payout_on(pocket),
            })
            .collect();
        // Fits: at most the sum of every win, checked in `validate`.
        let total_payout = bets.iter().map(|b| b.payout).sum();
        RouletteOutcome {
            pocket,
            color: color(pocket),
            bets,
            total_bet: self.total_stake,
            total_payout,
        }
    }
}

/// One bet's result.
///
/// JSON: `{"kind": "split", "numbers": [17, 20], "amount": 5, "won": true,
/// "payout": 90}` (`numbers` omitted for outside bets).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BetResult {
    /// The kind of bet.
    pub kind: BetKind,
    /// The request's numbers, sorted ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numbers: Vec<u8>,
    /// Coins staked.
    pub amount: i64,
    /// Whether the bet won.
    pub won: bool,
    /// Coins returned: `amount × (pays + 1)` if won, else 0.
    pub payout: i64,
}

/// The result of one spin.
///
/// JSON: `{"pocket": 17, "color": "black", "bets": [BetResult, …],
/// "total_bet": 15, "total_payout": 90}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouletteOutcome {
    /// The winning pocket, 0–36.
    pub pocket: u8,
    /// Its color.
    pub color: Color,
    /// Each bet's result, in request order.
    pub bets: Vec<BetResult>,
    /// The sum of the amounts staked.
    pub total_bet: i64,
    /// The sum of the payouts: what the caller credits (stakes of winning
    /// bets included).
    pub total_payout: i64,
}

/// Spins the wheel once for `bets`: the pocket is `rng.below(37)` (exactly
/// one call), then every bet is settled ([`Bets::settle`]).
///
/// The caller debits [`Bets::total_stake`] and credits
/// [`RouletteOutcome::total_payout`].
#[must_use]
pub fn spin(rng: &mut impl RandomSource, bets: &Bets) -> RouletteOutcome {
    // below(37) < 37, so the pocket fits in a u8.
    #[allow(clippy::cast_possible_truncation)]
    let pocket = rng.below(POCKETS) as u8;
    bets.settle(pocket)
}

/// Every valid request of `kind` with `numbers` (the layout enumerated), for
/// tests and simulations: one entry per distinct bet, numbers ascending.
#[must_use]
pub fn all_numbers(kind: BetKind) -> Vec<Vec<u8>> {
    fn subsets(len: usize, start: u8, acc: &mut Vec<u8>, out: &mut Vec<Vec<u8>>) {
        if acc.len() == len {
            out.push(acc.clone());
            return;
        }
        for n in start..=MAX_POCKET {
            acc.push(n);
            subsets(len, n + 1, acc, out);
            acc.pop();
        }
    }
    match kind {
        BetKind::Dozen | BetKind::Column => vec![vec![1], vec![2], vec![3]],
        BetKind::Straight | BetKind::Split | BetKind::Street | BetKind::Corner => {
            let mut all = Vec::new();
            subsets(kind.numbers_len(), 0, &mut Vec::new(), &mut all);
            all.retain(|n| inside_mask(kind, n).is_some());
            all
        }
        BetKind::Line => (0..11u8)
            .map(|r| (3 * r + 1..=3 * r + 6).collect())
            .collect(),
        _ => vec![Vec::new()],
    }
}

#[cfg(test)]
mod tests;
