//! A cherry-themed three-reel, single-line slot machine.
//!
//! Each reel is a strip of 32 symbols ([`REELS`]); a spin picks one stop per
//! reel, left to right, with `rng.below(strip length)`, and the payline shows
//! the symbol at each stop. [`PAYTABLE`] turns the three symbols into a
//! multiplier, the total return per coin staked (stake included; 0 is a
//! loss):
//!
//! | line | multiplier |
//! | --- | ---: |
//! | Seven Seven Seven | 250 |
//! | Bar Bar Bar | 75 |
//! | Cherry Cherry Cherry | 30 |
//! | Bell Bell Bell | 25 |
//! | Plum Plum Plum | 15 |
//! | Orange Orange Orange | 10 |
//! | Lemon Lemon Lemon | 5 |
//! | Cherry Cherry, then anything but Cherry | 6 |
//! | Cherry, then anything but Cherry on reel 2 | 2 |
//!
//! Cherries count only from the left: a cherry on reel 2 or 3 pays nothing
//! unless reel 1 shows a cherry too. Exactly one line pays per spin.
//!
//! Over all 32³ = 32,768 equally likely stop combinations the machine
//! returns 31,448 coins per 32,768 staked: a theoretical RTP of
//! 0.959717 (95.9717%), with a hit frequency of 28.60% (see
//! [`theoretical_stats`]).

use serde::{Deserialize, Serialize};

use crate::fairness::RandomSource;

pub use super::GameError;

/// A reel symbol.
///
/// Serialized as its snake_case name (`"cherry"`, …, `"seven"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Symbol {
    /// Cherry: pays from the left, alone, as a pair, or three in a row.
    Cherry,
    /// Lemon: the most common symbol, lowest three-of-a-kind.
    Lemon,
    /// Orange.
    Orange,
    /// Plum.
    Plum,
    /// Bell.
    Bell,
    /// Bar.
    Bar,
    /// Seven: one per reel, top prize.
    Seven,
}

impl Symbol {
    /// Number of distinct symbols.
    pub const COUNT: usize = 7;

    /// Every symbol, in declaration order ([`Symbol::index`] order).
    pub const ALL: [Self; Self::COUNT] = [
        Self::Cherry,
        Self::Lemon,
        Self::Orange,
        Self::Plum,
        Self::Bell,
        Self::Bar,
        Self::Seven,
    ];

    /// Position of the symbol in [`Symbol::ALL`]; indexes
    /// [`Paytable::three_of_a_kind`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name used in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cherry => "cherry",
            Self::Lemon => "lemon",
            Self::Orange => "orange",
            Self::Plum => "plum",
            Self::Bell => "bell",
            Self::Bar => "bar",
            Self::Seven => "seven",
        }
    }
}

/// The strips, written with one-letter aliases so each fits on a line.
mod strips {
    use super::Symbol;
    use super::Symbol::{
        Bar as R, Bell as B, Cherry as C, Lemon as L, Orange as O, Plum as P, Seven as S,
    };

    /// Reel 1: 8 Cherry, 8 Lemon, 6 Orange, 4 Plum, 3 Bell, 2 Bar, 1 Seven.
    pub(super) const REEL_1: [Symbol; 32] = [
        L, O, C, P, B, L, C, R, O, L, C, P, O, L, S, C, B, L, O, C, P, L, C, R, O, B, L, C, P, O,
        L, C,
    ];

    /// Reel 2: 3 Cherry, 9 Lemon, 7 Orange, 5 Plum, 4 Bell, 3 Bar, 1 Seven.
    pub(super) const REEL_2: [Symbol; 32] = [
        O, L, P, B, R, L, C, O, P, L, B, O, L, S, R, P, O, L, C, B, L, O, P, L, O, R, L, B, C, P,
        O, L,
    ];

    /// Reel 3: 2 Cherry, 10 Lemon, 7 Orange, 5 Plum, 4 Bell, 3 Bar, 1 Seven.
    pub(super) const REEL_3: [Symbol; 32] = [
        O, L, P, B, R, L, O, L, C, P, B, O, L, S, L, R, P, O, L, B, O, L, P, L, C, O, R, B, L, P,
        O, L,
    ];
}

/// The three reel strips, left to right. Stop `i` of reel `r` shows
/// `REELS[r][i]`; every stop of a reel is equally likely.
pub const REELS: [&[Symbol]; 3] = [&strips::REEL_1, &strips::REEL_2, &strips::REEL_3];

/// Strip lengths as `u32`, checked at compile time to fit.
const REEL_LENS: [u32; 3] = [
    strip_len(REELS[0]),
    strip_len(REELS[1]),
    strip_len(REELS[2]),
];

const fn strip_len(strip: &[Symbol]) -> u32 {
    assert!(!strip.is_empty() && strip.len() <= u32::MAX as usize);
    #[allow(clippy::cast_possible_truncation)]
    let len = strip.len() as u32;
    len
}

/// Payout rules: multipliers are the total return per coin staked, stake
/// included (a multiplier of 2 on a bet of 10 credits 20). 0 means a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Paytable {
    /// Three of the same symbol, indexed by [`Symbol::index`].
    pub three_of_a_kind: [u32; Symbol::COUNT],
    /// Cherry on reels 1 and 2, anything but Cherry on reel 3.
    pub two_cherries: u32,
    /// Cherry on reel 1, anything but Cherry on reel 2.
    pub one_cherry: u32,
}

impl Paytable {
    /// The multiplier for a payline, left to right. Exactly one rule applies:
    /// three of a kind, else two cherries from the left, else one cherry on
    /// reel 1, else 0.
    #[must_use]
    pub const fn multiplier(&self, reels: [Symbol; 3]) -> u32 {
        let [a, b, c] = reels;
        if a.index() == b.index() && b.index() == c.index() {
            self.three_of_a_kind[a.index()]
        } else if matches!((a, b), (Symbol::Cherry, Symbol::Cherry)) {
            self.two_cherries
        } else if matches!(a, Symbol::Cherry) {
            self.one_cherry
        } else {
            0
        }
    }

    /// Every non-zero multiplier this table can pay, without duplicates, in
    /// ascending order.
    #[must_use]
    pub fn winning_multipliers(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .three_of_a_kind
            .iter()
            .copied()
            .chain([self.two_cherries, self.one_cherry])
            .filter(|&m| m > 0)
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// The machine's paytable (see the [module docs](self) for the table).
pub const PAYTABLE: Paytable = Paytable {
    // Cherry, Lemon, Orange, Plum, Bell, Bar, Seven.
    three_of_a_kind: [30, 5, 10, 15, 25, 75, 250],
    two_cherries: 6,
    one_cherry: 2,
};

/// The multiplier [`PAYTABLE`] pays for a payline (see
/// [`Paytable::multiplier`]).
#[must_use]
pub const fn multiplier(reels: [Symbol; 3]) -> u32 {
    PAYTABLE.multiplier(reels)
}

/// The result of one spin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SlotsOutcome {
    /// The payline, left to right: `REELS[r][stops[r]]`.
    pub reels: [Symbol; 3],
    /// The chosen stop index on each reel.
    pub stops: [u32; 3],
    /// The paid multiplier (0 for a loss).
    pub multiplier: u32,
    /// Coins to credit: `bet * multiplier` (stake included; 0 for a loss).
    pub win: i64,
}

/// Plays one spin for `bet` coins.
///
/// Draws exactly one `rng.below(len)` per reel, reels 1, 2, 3 in that order
/// (so a [`FairRng`](crate::fairness::FairRng) round can be replayed from its
/// seeds and nonce). Does not touch any balance: the caller debits `bet` and
/// credits [`SlotsOutcome::win`].
///
/// # Errors
///
/// - [`GameError::InvalidBet`] if `bet <= 0` (nothing is drawn).
/// - [`GameError::Overflow`] if `bet * multiplier` does not fit in an `i64`.
pub fn spin(rng: &mut impl RandomSource, bet: i64) -> Result<SlotsOutcome, GameError> {
    if bet <= 0 {
        return Err(GameError::InvalidBet { bet });
    }
    let mut stops = [0u32; 3];
    let mut reels = [Symbol::Cherry; 3];
    for (r, strip) in REELS.iter().enumerate() {
        let stop = rng.below(REEL_LENS[r]);
        stops[r] = stop;
        reels[r] = strip[stop as usize];
    }
    let multiplier = multiplier(reels);
    let win = bet
        .checked_mul(i64::from(multiplier))
        .ok_or(GameError::Overflow)?;
    Ok(SlotsOutcome {
        reels,
        stops,
        multiplier,
        win,
    })
}

/// Exact statistics of the machine, from enumerating every stop combination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotsStats {
    /// Number of equally likely stop combinations (product of strip lengths).
    pub combinations: u64,
    /// Sum of the multipliers over all combinations: the coins returned when
    /// every combination is played once for one coin.
    pub total_return: u64,
    /// Number of combinations that pay a non-zero multiplier.
    pub winning_combinations: u64,
    /// Expected return per coin staked: `total_return / combinations`.
    pub rtp: f64,
    /// Probability that a spin pays anything.
    pub hit_frequency: f64,
    /// Variance of the multiplier of a single spin.
    pub variance: f64,
}

/// Enumerates all stop combinations of [`REELS`] under [`PAYTABLE`].
#[must_use]
pub fn theoretical_stats() -> SlotsStats {
    let mut combinations = 0u64;
    let mut total_return = 0u64;
    let mut total_square = 0u64;
    let mut winning_combinations = 0u64;
    for &a in REELS[0] {
        for &b in REELS[1] {
            for &c in REELS[2] {
                let m = u64::from(multiplier([a, b, c]));
                combinations += 1;
                total_return += m;
                total_square += m * m;
                winning_combinations += u64::from(m > 0);
            }
        }
    }
    // All three counts are far below 2^53, so the conversions are exact.
    #[allow(clippy::cast_precision_loss)]
    let (n, sum, sum_sq, wins) = (
        combinations as f64,
        total_return as f64,
        total_square as f64,
        winning_combinations as f64,
    );
    let rtp = sum / n;
    SlotsStats {
        combinations,
        total_return,
        winning_combinations,
        rtp,
        hit_frequency: wins / n,
        variance: sum_sq / n - rtp * rtp,
    }
}

/// The exact theoretical return to player (expected multiplier of one spin),
/// computed by enumerating every stop combination.
#[must_use]
pub fn theoretical_rtp() -> f64 {
    theoretical_stats().rtp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fairness::{ClientSeed, FairRng, ServerSeed};
    use proptest::prelude::*;

    /// Replays scripted draws, then panics.
    struct Scripted<I>(I);

    impl<I: Iterator<Item = u32>> RandomSource for Scripted<I> {
        fn next_u32(&mut self) -> u32 {
            self.0.next().expect("script exhausted")
        }
    }

    /// Every draw below 2^32 is accepted by `below(32)`, so scripted draws
    /// `< 32` are exactly the stops.
    fn spin_at(stops: [u32; 3], bet: i64) -> Result<SlotsOutcome, GameError> {
        spin(&mut Scripted(stops.into_iter()), bet)
    }

    fn count(strip: &[Symbol], s: Symbol) -> usize {
        strip.iter().filter(|&&x| x == s).count()
    }

    #[test]
    fn strips_match_the_documented_composition() {
        let expected: [[usize; Symbol::COUNT]; 3] = [
            [8, 8, 6, 4, 3, 2, 1],
            [3, 9, 7, 5, 4, 3, 1],
            [2, 10, 7, 5, 4, 3, 1],
        ];
        for (strip, counts) in REELS.iter().zip(expected) {
            assert_eq!(strip.len(), 32);
            for s in Symbol::ALL {
                assert_eq!(count(strip, s), counts[s.index()], "{s:?}");
            }
            // No symbol sits next to itself, wrapping around.
            for i in 0..strip.len() {
                assert_ne!(strip[i], strip[(i + 1) % strip.len()]);
            }
        }
    }

    #[test]
    fn paytable_lines() {
        use Symbol::*;
        assert_eq!(multiplier([Seven, Seven, Seven]), 250);
        assert_eq!(multiplier([Bar, Bar, Bar]), 75);
        assert_eq!(multiplier([Cherry, Cherry, Cherry]), 30);
        assert_eq!(multiplier([Bell, Bell, Bell]), 25);
        assert_eq!(multiplier([Plum, Plum, Plum]), 15);
        assert_eq!(multiplier([Orange, Orange, Orange]), 10);
        assert_eq!(multiplier([Lemon, Lemon, Lemon]), 5);
        assert_eq!(multiplier([Cherry, Cherry, Lemon]), 6);
        assert_eq!(multiplier([Cherry, Lemon, Cherry]), 2);
        assert_eq!(multiplier([Cherry, Seven, Seven]), 2);
        assert_eq!(multiplier([Lemon, Cherry, Cherry]), 0);
        assert_eq!(multiplier([Seven, Seven, Bar]), 0);
        assert_eq!(
            PAYTABLE.winning_multipliers(),
            vec![2, 5, 6, 10, 15, 25, 30, 75, 250]
        );
    }

    #[test]
    fn theoretical_rtp_is_in_band() {
        let stats = theoretical_stats();
        assert_eq!(stats.combinations, 32 * 32 * 32);
        assert_eq!(stats.total_return, 31_448);
        assert_eq!(stats.winning_combinations, 9_373);
        let rtp = theoretical_rtp();
        assert!((0.95..=0.97).contains(&rtp), "rtp {rtp}");
        assert!((rtp - 31_448.0 / 32_768.0).abs() < 1e-15);
        assert!(
            (0.20..=0.35).contains(&stats.hit_frequency),
            "hit frequency {}",
            stats.hit_frequency
        );
        assert!(stats.variance > 0.0);
    }

    #[test]
    fn spin_reads_the_strips() {
        // Reel 1 stop 2 is Cherry, reel 2 stop 0 is Orange: one cherry.
        let out = spin_at([2, 0, 0], 10).unwrap();
        assert_eq!(out.reels, [Symbol::Cherry, Symbol::Orange, Symbol::Orange]);
        assert_eq!(out.stops, [2, 0, 0]);
        assert_eq!((out.multiplier, out.win), (2, 20));
        // The three Sevens.
        let out = spin_at([14, 13, 13], 3).unwrap();
        assert_eq!(out.reels, [Symbol::Seven; 3]);
        assert_eq!((out.multiplier, out.win), (250, 750));
        // A loss.
        let out = spin_at([0, 0, 0], 5).unwrap();
        assert_eq!(out.reels, [Symbol::Lemon, Symbol::Orange, Symbol::Orange]);
        assert_eq!((out.multiplier, out.win), (0, 0));
    }

    #[test]
    fn invalid_bets_draw_nothing() {
        for bet in [0, -1, i64::MIN] {
            let mut src = Scripted(std::iter::empty());
            assert_eq!(spin(&mut src, bet), Err(GameError::InvalidBet { bet }));
        }
    }

    #[test]
    fn overflowing_win_is_an_error() {
        assert_eq!(spin_at([2, 0, 0], i64::MAX), Err(GameError::Overflow));
        // A loss never overflows, whatever the bet.
        assert_eq!(spin_at([0, 0, 0], i64::MAX).unwrap().win, 0);
        assert_eq!(spin_at([2, 0, 0], i64::MAX / 2).unwrap().win, i64::MAX - 1);
    }

    #[test]
    fn known_answer_rounds() {
        // Stops computed by the independent Python verifier in docs/games.md.
        let server = ServerSeed::from_bytes([7; 32]);
        let client = ClientSeed::parse("lucky").unwrap();
        let expected: [([u32; 3], u32); 3] =
            [([25, 20, 27], 0), ([10, 4, 9], 2), ([12, 11, 19], 0)];
        for (nonce, (stops, mult)) in (0u64..).zip(expected) {
            let out = spin(&mut FairRng::new(&server, &client, nonce), 1).unwrap();
            assert_eq!((out.stops, out.multiplier), (stops, mult), "nonce {nonce}");
        }
        let out = spin(&mut FairRng::new(&server, &client, 1), 1).unwrap();
        assert_eq!(out.reels, [Symbol::Cherry, Symbol::Bar, Symbol::Plum]);
    }

    #[test]
    fn same_round_same_outcome() {
        let server = ServerSeed::from_bytes([7; 32]);
        let client = ClientSeed::parse("lucky").unwrap();
        let play = |nonce| spin(&mut FairRng::new(&server, &client, nonce), 1).unwrap();
        for nonce in 0..50 {
            assert_eq!(play(nonce), play(nonce));
        }
        let distinct: std::collections::HashSet<_> = (0..50).map(|n| play(n).stops).collect();
        assert!(distinct.len() > 40, "nonces should give different rounds");
    }

    #[test]
    fn simulated_rtp_matches_theory() {
        const SPINS: u32 = 200_000;
        let stats = theoretical_stats();
        let server = ServerSeed::from_bytes([0x42; 32]);
        let client = ClientSeed::parse("rtp-simulation").unwrap();
        let mut returned = 0i64;
        for nonce in 0..u64::from(SPINS) {
            let mut rng = FairRng::new(&server, &client, nonce);
            returned += spin(&mut rng, 1).unwrap().win;
        }
        #[allow(clippy::cast_precision_loss)]
        let measured = returned as f64 / f64::from(SPINS);
        // Standard error of the mean multiplier over SPINS independent spins.
        let std_error = (stats.variance / f64::from(SPINS)).sqrt();
        let tolerance = 4.0 * std_error;
        assert!(
            (measured - stats.rtp).abs() <= tolerance,
            "measured {measured}, theory {}, tolerance {tolerance}",
            stats.rtp
        );
    }

    proptest! {
        #[test]
        fn fair_spins_pay_only_paytable_multipliers(
            bytes in any::<[u8; 32]>(),
            nonce in any::<u64>(),
            bet in 1i64..=1_000_000,
        ) {
            let server = ServerSeed::from_bytes(bytes);
            let client = ClientSeed::parse("prop").unwrap();
            let out = spin(&mut FairRng::new(&server, &client, nonce), bet).unwrap();
            let pays = PAYTABLE.winning_multipliers();
            prop_assert!(out.multiplier == 0 || pays.contains(&out.multiplier));
            prop_assert_eq!(out.win, bet * i64::from(out.multiplier));
        }

        #[test]
        fn any_stream_gives_a_consistent_outcome(
            draws in proptest::collection::vec(any::<u32>(), 3),
            bet in 1i64..=i64::MAX,
        ) {
            let pays = PAYTABLE.winning_multipliers();
            match spin(&mut Scripted(draws.clone().into_iter()), bet) {
                Ok(out) => {
                    for r in 0..3 {
                        // Strip lengths divide 2^32, so no draw is rejected.
                        prop_assert_eq!(out.stops[r], draws[r] % 32);
                        prop_assert_eq!(out.reels[r], REELS[r][out.stops[r] as usize]);
                    }
                    prop_assert_eq!(out.multiplier, multiplier(out.reels));
                    prop_assert!(out.multiplier == 0 || pays.contains(&out.multiplier));
                    prop_assert_eq!(
                        i128::from(out.win),
                        i128::from(bet) * i128::from(out.multiplier)
                    );
                }
                Err(e) => {
                    prop_assert_eq!(e, GameError::Overflow);
                    let stops = [draws[0] % 32, draws[1] % 32, draws[2] % 32];
                    let m = multiplier([
                        REELS[0][stops[0] as usize],
                        REELS[1][stops[1] as usize],
                        REELS[2][stops[2] as usize],
                    ]);
                    prop_assert!(i128::from(bet) * i128::from(m) > i128::from(i64::MAX));
                }
            }
        }
    }
}
