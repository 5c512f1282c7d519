//! Blackjack: one player hand against the dealer, from a six-deck shoe
//! shuffled afresh for every round.
//!
//! # Rules
//!
//! - Six standard 52-card decks ([`DECKS`], [`SHOE_LEN`] = 312 cards),
//!   shuffled for every round from the round's random stream
//!   ([`Shoe::shuffled`]).
//! - Deal order: player, dealer (up card), player, dealer (hole card). The
//!   hole card stays hidden from the player ([`Hand::player_view`]) until the
//!   hand is over.
//! - Naturals are checked at the deal: if both the player and the dealer have
//!   blackjack (an ace and a ten-value card as the first two cards) the hand
//!   is a push; if only the player does, it pays 3:2; if only the dealer does,
//!   the player loses the bet and has no chance to act.
//! - The player may **hit**, **stand** or **double**. Double is only allowed
//!   on the first two cards: the stake doubles, the player takes exactly one
//!   more card, and then stands. There is **no split, no insurance and no
//!   surrender**: a pair is just a total (8-8 is a hard 16).
//! - A player total of 21 after a hit stands automatically (hitting 21 can
//!   only lose), so the player is never asked to act on 21.
//! - The dealer draws while below 17 and **stands on every 17, soft 17
//!   included** (S17). The dealer does not draw when the player has busted.
//!
//! # Bets and payouts
//!
//! Bets must be **even** (and positive, at most [`MAX_BET`]) so that 3:2 is
//! always a whole number of coins: nothing is ever rounded. Payouts are the
//! total returned, stake included ([`Hand::payout`]):
//!
//! | status | payout |
//! | --- | --- |
//! | [`Status::Blackjack`] | `bet × 5 / 2` (3:2) |
//! | [`Status::PlayerWin`], [`Status::DealerBust`] | `2 × stake` |
//! | [`Status::Push`] | `stake` |
//! | [`Status::PlayerBust`], [`Status::DealerWin`] | 0 |
//! | [`Status::Playing`] | 0 (nothing is settled yet) |
//!
//! `stake` is the bet, or twice the bet after a double. The caller debits the
//! bet before [`Hand::deal`], debits [`Hand::extra_stake`] before each
//! [`Hand::apply`] (the bet again for a double, 0 otherwise), and credits
//! [`Hand::payout`] once [`Hand::is_over`].
//!
//! Played with [`basic_strategy`], the game's RTP is
//! [`BASIC_STRATEGY_RTP`] ≈ 98.99% ± 0.03% (1 + expected net win per initial
//! bet; house edge ≈ 1.01%), estimated by simulation; see `docs/games.md`.
//!
//! # Provable fairness and persistence
//!
//! A round's shoe depends only on the server seed, the client seed and the
//! nonce: [`Shoe::shuffled`] applies [`shuffle`] to [`Shoe::ordered`]
//! with the round's [`FairRng`](crate::fairness::FairRng), making exactly 311
//! `below` calls with bounds 312, 311, …, 2. Cards are then dealt from the
//! front of the shuffled shoe, in deal order.
//!
//! No round can use more than [`ROUND_CARDS`] (38) cards, so a [`Hand`] keeps
//! only the first 38 cards of its shuffled shoe plus the actions taken, and
//! never needs the random stream again after the deal. It serializes as a
//! [`HandRecord`]; deserializing replays the record and rejects anything that
//! is not a legal round. To verify a finished round, a player re-derives the
//! shoe from the revealed seeds and the nonce, checks that its first 38 cards
//! are the recorded ones, and replays the recorded actions (see
//! `docs/games.md` for a script).
//!
//! # Example
//!
//! ```
//! use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
//! use hearth_domain::games::blackjack::{Action, Hand, Status};
//!
//! let server = ServerSeed::from_bytes([7; 32]);
//! let client = ClientSeed::parse("lucky")?;
//! // The caller has debited the bet (10).
//! let hand = Hand::deal(&mut FairRng::new(&server, &client, 0), 10)?;
//! let stored = serde_json::to_string(&hand)?; // persist between requests
//! let shown = hand.player_view(); // what the player sees
//! assert!(shown.hole_card_hidden && shown.dealer.cards.len() == 1);
//!
//! // Next request: restore, debit any extra stake, apply.
//! let mut hand: Hand = serde_json::from_str(&stored)?;
//! assert_eq!(hand.extra_stake(Action::Stand)?, 0);
//! let outcome = hand.apply(Action::Stand)?;
//! assert_eq!(outcome.status, Status::DealerWin);
//! assert!(hand.apply(Action::Hit).is_err()); // the hand is over
//! // The caller credits `outcome.payout` (0 here).
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::fairness::{RandomSource, shuffle};

pub use super::GameError;

/// Number of 52-card decks in the shoe.
pub const DECKS: usize = 6;

/// Number of cards in the shoe.
pub const SHOE_LEN: usize = 52 * DECKS;

/// The most cards one round can use, and so the number of cards a [`Hand`]
/// keeps from its shoe.
///
/// The player acts only on totals below 21, so on a hard total of at most 20
/// and at most 20 cards (every card counts at least 1); one more card ends
/// the player's turn: at most 21 cards. The dealer draws only on totals below
/// 17, so on at most 16 cards, and ends with at most 17. 21 + 17 = 38, whatever
/// the cards are.
pub const ROUND_CARDS: usize = 38;

/// The largest bet accepted: a doubled win (`4 × bet`) must fit in an `i64`.
pub const MAX_BET: i64 = i64::MAX / 4 - 1;

/// What the dealer stands on: every total of 17 or more, soft or hard.
pub const DEALER_STANDS_ON: u32 = 17;

/// Return to player of [`basic_strategy`] under these rules, in the usual
/// blackjack sense: `1 + expected net win per initial bet` (so the house
/// edge is about 1.01%). Estimated by simulating 20,000,000 rounds (example
/// `simulate_blackjack 20000000 rtp-estimate`; see `docs/games.md`).
pub const BASIC_STRATEGY_RTP: f64 = 0.989_88;

/// Standard error of [`BASIC_STRATEGY_RTP`].
pub const BASIC_STRATEGY_RTP_STD_ERROR: f64 = 0.000_25;

/// Total paid over total staked (doubles included: what the ledger shows)
/// with [`basic_strategy`], from the same simulation as
/// [`BASIC_STRATEGY_RTP`]; standard error 0.00023.
pub const BASIC_STRATEGY_RETURNED_PER_WAGERED: f64 = 0.990_76;

/// A card's rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rank {
    /// Ace: counts 1 or 11.
    Ace,
    /// Two.
    Two,
    /// Three.
    Three,
    /// Four.
    Four,
    /// Five.
    Five,
    /// Six.
    Six,
    /// Seven.
    Seven,
    /// Eight.
    Eight,
    /// Nine.
    Nine,
    /// Ten.
    Ten,
    /// Jack: counts 10.
    Jack,
    /// Queen: counts 10.
    Queen,
    /// King: counts 10.
    King,
}

impl Rank {
    /// Every rank, in the order of an ordered deck (ace first, king last).
    pub const ALL: [Self; 13] = [
        Self::Ace,
        Self::Two,
        Self::Three,
        Self::Four,
        Self::Five,
        Self::Six,
        Self::Seven,
        Self::Eight,
        Self::Nine,
        Self::Ten,
        Self::Jack,
        Self::Queen,
        Self::King,
    ];

    /// The rank's count with an ace as 1: 1 to 10.
    #[must_use]
    pub const fn value(self) -> u32 {
        match self {
            Self::Ace => 1,
            Self::Two => 2,
            Self::Three => 3,
            Self::Four => 4,
            Self::Five => 5,
            Self::Six => 6,
            Self::Seven => 7,
            Self::Eight => 8,
            Self::Nine => 9,
            Self::Ten | Self::Jack | Self::Queen | Self::King => 10,
        }
    }

    /// The rank's letter in a card code: `A 2 3 4 5 6 7 8 9 T J Q K`.
    #[must_use]
    pub const fn code(self) -> char {
        match self {
            Self::Ace => 'A',
            Self::Two => '2',
            Self::Three => '3',
            Self::Four => '4',
            Self::Five => '5',
            Self::Six => '6',
            Self::Seven => '7',
            Self::Eight => '8',
            Self::Nine => '9',
            Self::Ten => 'T',
            Self::Jack => 'J',
            Self::Queen => 'Q',
            Self::King => 'K',
        }
    }

    /// The rank with code letter `c` (uppercase only).
    #[must_use]
    pub const fn from_code(c: char) -> Option<Self> {
        Some(match c {
            'A' => Self::Ace,
            '2' => Self::Two,
            '3' => Self::Three,
            '4' => Self::Four,
            '5' => Self::Five,
            '6' => Self::Six,
            '7' => Self::Seven,
            '8' => Self::Eight,
            '9' => Self::Nine,
            'T' => Self::Ten,
            'J' => Self::Jack,
            'Q' => Self::Queen,
            'K' => Self::King,
            _ => return None,
        })
    }
}

/// A card's suit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suit {
    /// Clubs (`C`).
    Clubs,
    /// Diamonds (`D`).
    Diamonds,
    /// Hearts (`H`).
    Hearts,
    /// Spades (`S`).
    Spades,
}

impl Suit {
    /// Every suit, in the order of an ordered deck.
    pub const ALL: [Self; 4] = [Self::Clubs, Self::Diamonds, Self::Hearts, Self::Spades];

    /// The suit's letter in a card code: `C D H S`.
    #[must_use]
    pub const fn code(self) -> char {
        match self {
            Self::Clubs => 'C',
            Self::Diamonds => 'D',
            Self::Hearts => 'H',
            Self::Spades => 'S',
        }
    }

    /// The suit with code letter `c` (uppercase only).
    #[must_use]
    pub const fn from_code(c: char) -> Option<Self> {
        Some(match c {
            'C' => Self::Clubs,
            'D' => Self::Diamonds,
            'H' => Self::Hearts,
            'S' => Self::Spades,
            _ => return None,
        })
    }
}

/// A playing card.
///
/// Serialized as its two-letter code: rank then suit, e.g. `"AS"` (ace of
/// spades), `"TD"` (ten of diamonds), `"7C"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Card {
    /// The rank.
    pub rank: Rank,
    /// The suit.
    pub suit: Suit,
}

impl Card {
    /// The card of `rank` and `suit`.
    #[must_use]
    pub const fn new(rank: Rank, suit: Suit) -> Self {
        Self { rank, suit }
    }

    /// The rank's count with an ace as 1 (see [`Rank::value`]).
    #[must_use]
    pub const fn value(self) -> u32 {
        self.rank.value()
    }

    /// Position of the card in an ordered deck: `suit × 13 + rank`, 0..52.
    #[must_use]
    pub const fn index(self) -> usize {
        self.suit as usize * 13 + self.rank as usize
    }
}

impl fmt::Display for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.rank.code(), self.suit.code())
    }
}

/// A card code that is not a rank letter followed by a suit letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("a card code is a rank (A, 2-9, T, J, Q, K) followed by a suit (C, D, H, S)")]
pub struct CardParseError;

impl FromStr for Card {
    type Err = CardParseError;

    /// Parses a two-letter code such as `"AS"` or `"TD"` (uppercase only).
    ///
    /// # Errors
    ///
    /// [`CardParseError`] for anything else.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        match (chars.next(), chars.next(), chars.next()) {
            (Some(r), Some(s), None) => match (Rank::from_code(r), Suit::from_code(s)) {
                (Some(rank), Some(suit)) => Ok(Self { rank, suit }),
                _ => Err(CardParseError),
            },
            _ => Err(CardParseError),
        }
    }
}

impl TryFrom<String> for Card {
    type Error = CardParseError;

    /// Same as [`str::parse`].
    ///
    /// # Errors
    ///
    /// [`CardParseError`] if `code` is not a card code.
    fn try_from(code: String) -> Result<Self, Self::Error> {
        code.parse()
    }
}

impl From<Card> for String {
    fn from(card: Card) -> Self {
        card.to_string()
    }
}

/// The count of a set of cards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Total {
    /// The best count: aces count 11 when that does not exceed 21, else 1.
    pub value: u32,
    /// Whether an ace counts 11 in `value`.
    pub soft: bool,
}

impl Total {
    /// The count of `cards`: the hard count (aces as 1), plus 10 if there is
    /// an ace and the result stays at or below 21 (then `soft`).
    #[must_use]
    pub fn of(cards: &[Card]) -> Self {
        let hard = cards
            .iter()
            .fold(0u32, |sum, card| sum.saturating_add(card.value()));
        let has_ace = cards.iter().any(|card| card.rank == Rank::Ace);
        if has_ace && hard <= 11 {
            Self {
                value: hard + 10,
                soft: true,
            }
        } else {
            Self {
                value: hard,
                soft: false,
            }
        }
    }

    /// Whether the count is over 21.
    #[must_use]
    pub const fn is_bust(self) -> bool {
        self.value > 21
    }
}

/// Whether two cards are a natural blackjack (an ace and a ten-value card).
fn is_natural(cards: &[Card]) -> bool {
    cards.len() == 2 && Total::of(cards).value == 21
}

/// Why a shoe (or a hand's record of one) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ShoeError {
    /// The number of cards is wrong.
    #[error("expected {expected} cards, got {actual}")]
    Length {
        /// The required number of cards.
        expected: usize,
        /// The number given.
        actual: usize,
    },
    /// A card appears more often than [`DECKS`] decks hold.
    #[error("card {card} appears more than {DECKS} times")]
    TooManyCopies {
        /// The over-represented card.
        card: Card,
    },
}

/// Checks that no card appears more than [`DECKS`] times.
fn check_copies(cards: &[Card]) -> Result<(), ShoeError> {
    let mut counts = [0usize; 52];
    for &card in cards {
        let count = &mut counts[card.index()];
        *count += 1;
        if *count > DECKS {
            return Err(ShoeError::TooManyCopies { card });
        }
    }
    Ok(())
}

/// A full six-deck shoe of [`SHOE_LEN`] cards: exactly [`DECKS`] copies of
/// each card, in dealing order (index 0 is dealt first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shoe {
    cards: Vec<Card>,
}

impl Shoe {
    /// The unshuffled shoe: six ordered decks one after the other; each deck
    /// is clubs, diamonds, hearts, spades, each suit ace, 2, …, 10, jack,
    /// queen, king. Card `i` is `Rank::ALL[i % 13]` of
    /// `Suit::ALL[(i % 52) / 13]`.
    #[must_use]
    pub fn ordered() -> Self {
        let cards = (0..DECKS)
            .flat_map(|_| Suit::ALL)
            .flat_map(|suit| Rank::ALL.map(|rank| Card::new(rank, suit)))
            .collect();
        Self { cards }
    }

    /// [`Shoe::ordered`] shuffled with [`shuffle`]: exactly `SHOE_LEN - 1`
    /// (311) calls to `rng.below`, with bounds 312, 311, …, 2.
    #[must_use]
    pub fn shuffled(rng: &mut impl RandomSource) -> Self {
        let mut shoe = Self::ordered();
        shuffle(rng, &mut shoe.cards);
        shoe
    }

    /// A shoe in the given order (for example a stacked shoe in tests).
    ///
    /// # Errors
    ///
    /// - [`ShoeError::Length`] unless there are exactly [`SHOE_LEN`] cards.
    /// - [`ShoeError::TooManyCopies`] if a card appears more than [`DECKS`]
    ///   times (so, with the right length, unless each appears exactly six
    ///   times).
    pub fn from_cards(cards: Vec<Card>) -> Result<Self, ShoeError> {
        if cards.len() != SHOE_LEN {
            return Err(ShoeError::Length {
                expected: SHOE_LEN,
                actual: cards.len(),
            });
        }
        check_copies(&cards)?;
        Ok(Self { cards })
    }

    /// The cards in dealing order.
    #[must_use]
    pub fn cards(&self) -> &[Card] {
        &self.cards
    }
}

/// A player decision.
///
/// Serialized as `"hit"`, `"stand"` or `"double"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Take one card.
    Hit,
    /// Take no more cards; the dealer plays.
    Stand,
    /// Double the stake, take exactly one card, then stand. Only on the first
    /// two cards.
    Double,
}

impl Action {
    /// Every action.
    pub const ALL: [Self; 3] = [Self::Hit, Self::Stand, Self::Double];

    /// The snake_case name used in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Stand => "stand",
            Self::Double => "double",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an action was refused. The hand is left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum IllegalAction {
    /// The hand is over: nothing more can be done.
    #[error("the hand is over; cannot {action}")]
    HandOver {
        /// The refused action.
        action: Action,
    },
    /// Double after the player has hit.
    #[error("double is only allowed on the first two cards")]
    DoubleAfterHit,
}

/// Where a hand stands.
///
/// Serialized in snake_case (`"playing"`, `"player_bust"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The player is to act.
    Playing,
    /// The player went over 21 and loses.
    PlayerBust,
    /// The dealer went over 21; the player wins 1:1.
    DealerBust,
    /// The player's total beats the dealer's; 1:1.
    PlayerWin,
    /// The dealer's total beats the player's, or the dealer has a natural and
    /// the player does not; the player loses.
    DealerWin,
    /// Equal totals, or both have a natural; the stake is returned.
    Push,
    /// The player has a natural and the dealer does not; 3:2.
    Blackjack,
}

impl Status {
    /// Whether the hand is over (anything but [`Status::Playing`]).
    #[must_use]
    pub const fn is_over(self) -> bool {
        !matches!(self, Self::Playing)
    }
}

/// A hand's status and what it pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Outcome {
    /// Where the hand stands.
    pub status: Status,
    /// Coins to credit, stake included (see [`Hand::payout`]); 0 while
    /// playing.
    pub payout: i64,
}

/// The persisted form of a [`Hand`]: everything needed to rebuild it without
/// the random stream.
///
/// JSON: `{"bet": 10, "shoe": ["2H", "8D", …38 codes…], "actions": ["hit",
/// "stand"]}`. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandRecord {
    /// The initial bet (before any double).
    pub bet: i64,
    /// The first [`ROUND_CARDS`] cards of the round's shuffled shoe, in
    /// dealing order.
    pub shoe: Vec<Card>,
    /// The player's actions so far, in order.
    pub actions: Vec<Action>,
}

/// Why a [`HandRecord`] is not a legal round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum HandRecordError {
    /// The bet is not allowed (see [`Hand::deal`]).
    #[error("invalid bet: {0}")]
    Bet(#[source] GameError),
    /// The shoe has the wrong length or impossible cards.
    #[error("invalid shoe: {0}")]
    Shoe(#[source] ShoeError),
    /// An action could not have been taken.
    #[error("action {index}: {error}")]
    Action {
        /// Zero-based position of the action in [`HandRecord::actions`].
        index: usize,
        /// Why it is illegal at that point.
        error: IllegalAction,
    },
}

/// One blackjack round: the server-authoritative state machine.
///
/// Built by [`Hand::deal`] (or [`Hand::deal_from_shoe`]), advanced by
/// [`Hand::apply`]. Serializes as a [`HandRecord`] and is rebuilt (and
/// validated) from one on deserialization, so storage can keep it as JSON
/// between requests. The serialized form contains undealt cards: never send
/// it to the player; send [`Hand::player_view`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "HandRecord", try_from = "HandRecord")]
pub struct Hand {
    bet: i64,
    /// The first [`ROUND_CARDS`] cards of the shoe.
    shoe: Vec<Card>,
    /// Actions applied so far.
    actions: Vec<Action>,
    player: Vec<Card>,
    dealer: Vec<Card>,
    /// Index in `shoe` of the next card to deal.
    next: usize,
    doubled: bool,
    status: Status,
}

/// Checks a blackjack bet: positive, even, at most [`MAX_BET`].
fn check_bet(bet: i64) -> Result<(), GameError> {
    if bet <= 0 {
        Err(GameError::InvalidBet { bet })
    } else if bet % 2 != 0 {
        Err(GameError::BetNotMultiple { bet, multiple: 2 })
    } else if bet > MAX_BET {
        Err(GameError::Overflow)
    } else {
        Ok(())
    }
}

impl Hand {
    /// Shuffles a fresh shoe from `rng` ([`Shoe::shuffled`]) and deals a
    /// hand for `bet` coins (see [`Hand::deal_from_shoe`]).
    ///
    /// The bet is checked first; nothing is drawn if it is refused.
    ///
    /// # Errors
    ///
    /// - [`GameError::InvalidBet`] if `bet <= 0`.
    /// - [`GameError::BetNotMultiple`] if `bet` is odd.
    /// - [`GameError::Overflow`] if `bet > MAX_BET`.
    pub fn deal(rng: &mut impl RandomSource, bet: i64) -> Result<Self, GameError> {
        check_bet(bet)?;
        Self::deal_from_shoe(&Shoe::shuffled(rng), bet)
    }

    /// Deals a hand for `bet` coins from the front of `shoe`: player,
    /// dealer, player, dealer (hole card). Naturals are settled at once (see
    /// the [module docs](self)); otherwise the hand is
    /// [`Status::Playing`].
    ///
    /// # Errors
    ///
    /// As [`Hand::deal`].
    pub fn deal_from_shoe(shoe: &Shoe, bet: i64) -> Result<Self, GameError> {
        check_bet(bet)?;
        Ok(Self::start(bet, shoe.cards[..ROUND_CARDS].to_vec()))
    }

    /// Deals from `shoe` (at least [`ROUND_CARDS`] cards, not validated
    /// further) for an already checked bet.
    fn start(bet: i64, shoe: Vec<Card>) -> Self {
        debug_assert!(shoe.len() >= ROUND_CARDS);
        let mut hand = Self {
            bet,
            player: vec![shoe[0], shoe[2]],
            dealer: vec![shoe[1], shoe[3]],
            shoe,
            actions: Vec::new(),
            next: 4,
            doubled: false,
            status: Status::Playing,
        };
        hand.status = match (is_natural(&hand.player), is_natural(&hand.dealer)) {
            (true, true) => Status::Push,
            (true, false) => Status::Blackjack,
            (false, true) => Status::DealerWin,
            (false, false) => Status::Playing,
        };
        hand
    }

    /// Rebuilds a hand from its record, replaying every action.
    ///
    /// # Errors
    ///
    /// - [`HandRecordError::Bet`] if the bet is not allowed.
    /// - [`HandRecordError::Shoe`] unless the shoe has exactly
    ///   [`ROUND_CARDS`] cards with no card more than [`DECKS`] times.
    /// - [`HandRecordError::Action`] for the first action that is illegal.
    pub fn from_record(record: HandRecord) -> Result<Self, HandRecordError> {
        check_bet(record.bet).map_err(HandRecordError::Bet)?;
        if record.shoe.len() != ROUND_CARDS {
            return Err(HandRecordError::Shoe(ShoeError::Length {
                expected: ROUND_CARDS,
                actual: record.shoe.len(),
            }));
        }
        check_copies(&record.shoe).map_err(HandRecordError::Shoe)?;
        let mut hand = Self::start(record.bet, record.shoe);
        for (index, &action) in record.actions.iter().enumerate() {
            hand.apply(action)
                .map_err(|error| HandRecordError::Action { index, error })?;
        }
        Ok(hand)
    }

    /// The hand's persisted form.
    #[must_use]
    pub fn to_record(&self) -> HandRecord {
        HandRecord {
            bet: self.bet,
            shoe: self.shoe.clone(),
            actions: self.actions.clone(),
        }
    }

    /// Whether `action` is allowed now.
    ///
    /// # Errors
    ///
    /// - [`IllegalAction::HandOver`] if the hand is over.
    /// - [`IllegalAction::DoubleAfterHit`] for a double after a hit.
    pub fn check(&self, action: Action) -> Result<(), IllegalAction> {
        if self.status.is_over() {
            Err(IllegalAction::HandOver { action })
        } else if action == Action::Double && self.player.len() != 2 {
            Err(IllegalAction::DoubleAfterHit)
        } else {
            Ok(())
        }
    }

    /// The extra stake `action` needs, to be debited by the caller before
    /// [`Hand::apply`]: the bet again for [`Action::Double`], 0 for the
    /// others.
    ///
    /// # Errors
    ///
    /// As [`Hand::check`], when the action is not allowed.
    pub fn extra_stake(&self, action: Action) -> Result<i64, IllegalAction> {
        self.check(action)?;
        Ok(match action {
            Action::Double => self.bet,
            Action::Hit | Action::Stand => 0,
        })
    }

    /// The actions allowed now, in [`Action::ALL`] order (empty once the hand
    /// is over).
    #[must_use]
    pub fn allowed_actions(&self) -> Vec<Action> {
        Action::ALL
            .into_iter()
            .filter(|&a| self.check(a).is_ok())
            .collect()
    }

    /// Plays `action` and returns the new outcome. On error nothing changes.
    ///
    /// - Hit: one card to the player; over 21 ends the hand
    ///   ([`Status::PlayerBust`]), exactly 21 stands automatically.
    /// - Stand: the dealer plays and the hand is settled.
    /// - Double: the stake doubles, one card to the player, then as stand
    ///   (unless the player busts).
    ///
    /// # Errors
    ///
    /// As [`Hand::check`].
    pub fn apply(&mut self, action: Action) -> Result<Outcome, IllegalAction> {
        self.check(action)?;
        self.actions.push(action);
        match action {
            Action::Hit => {
                let card = self.draw();
                self.player.push(card);
                let total = Total::of(&self.player);
                if total.is_bust() {
                    self.status = Status::PlayerBust;
                } else if total.value == 21 {
                    self.dealer_plays();
                }
            }
            Action::Stand => self.dealer_plays(),
            Action::Double => {
                self.doubled = true;
                let card = self.draw();
                self.player.push(card);
                if Total::of(&self.player).is_bust() {
                    self.status = Status::PlayerBust;
                } else {
                    self.dealer_plays();
                }
            }
        }
        Ok(self.outcome())
    }

    /// The next card of the shoe.
    fn draw(&mut self) -> Card {
        // `next < ROUND_CARDS <= shoe.len()` by the bound on a round's cards
        // (see ROUND_CARDS).
        let card = self.shoe[self.next];
        self.next += 1;
        card
    }

    /// The dealer draws to 17 or more (standing on soft 17), then the hand
    /// is settled.
    fn dealer_plays(&mut self) {
        while Total::of(&self.dealer).value < DEALER_STANDS_ON {
            let card = self.draw();
            self.dealer.push(card);
        }
        let dealer = Total::of(&self.dealer);
        let player = Total::of(&self.player).value;
        self.status = if dealer.is_bust() {
            Status::DealerBust
        } else if player > dealer.value {
            Status::PlayerWin
        } else if player < dealer.value {
            Status::DealerWin
        } else {
            Status::Push
        };
    }

    /// The initial bet.
    #[must_use]
    pub const fn bet(&self) -> i64 {
        self.bet
    }

    /// The total staked: the bet, or twice the bet after a double.
    #[must_use]
    pub const fn stake(&self) -> i64 {
        if self.doubled { 2 * self.bet } else { self.bet }
    }

    /// Whether the player doubled.
    #[must_use]
    pub const fn doubled(&self) -> bool {
        self.doubled
    }

    /// Where the hand stands.
    #[must_use]
    pub const fn status(&self) -> Status {
        self.status
    }

    /// Whether the hand is over (settled).
    #[must_use]
    pub const fn is_over(&self) -> bool {
        self.status.is_over()
    }

    /// Coins to credit, stake included: `bet × 5 / 2` for a blackjack,
    /// `2 × stake` for a win, `stake` for a push, 0 for a loss or while
    /// playing.
    #[must_use]
    pub const fn payout(&self) -> i64 {
        // `bet <= MAX_BET`, so `4 × bet` fits; `bet` is even, so `bet / 2`
        // is exact.
        match self.status {
            Status::Playing | Status::PlayerBust | Status::DealerWin => 0,
            Status::Push => self.stake(),
            Status::PlayerWin | Status::DealerBust => 2 * self.stake(),
            Status::Blackjack => self.bet + self.bet / 2 * 3,
        }
    }

    /// The status and payout.
    #[must_use]
    pub const fn outcome(&self) -> Outcome {
        Outcome {
            status: self.status,
            payout: self.payout(),
        }
    }

    /// The player's cards, in order.
    #[must_use]
    pub fn player_cards(&self) -> &[Card] {
        &self.player
    }

    /// All the dealer's cards, hole card included (second). Do not show the
    /// hole card to the player while [`Status::Playing`].
    #[must_use]
    pub fn dealer_cards(&self) -> &[Card] {
        &self.dealer
    }

    /// The dealer's up card (dealt second, shown from the start).
    #[must_use]
    pub fn dealer_up_card(&self) -> Card {
        self.dealer[0]
    }

    /// The actions taken so far.
    #[must_use]
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// How many cards have been dealt from the shoe.
    #[must_use]
    pub const fn cards_dealt(&self) -> usize {
        self.next
    }

    /// The first [`ROUND_CARDS`] cards of the round's shoe (secret while the
    /// hand is in play: they include the cards still to come).
    #[must_use]
    pub fn shoe(&self) -> &[Card] {
        &self.shoe
    }

    /// What the player may see: the dealer's hole card (and total) is hidden
    /// while the hand is in play; once it is over this equals
    /// [`Hand::full_view`].
    #[must_use]
    pub fn player_view(&self) -> HandView {
        self.view(!self.is_over())
    }

    /// Everything dealt, hole card included (for settlement, audit and
    /// history).
    #[must_use]
    pub fn full_view(&self) -> HandView {
        self.view(false)
    }

    fn view(&self, hide_hole: bool) -> HandView {
        let dealer = if hide_hole {
            &self.dealer[..1]
        } else {
            &self.dealer[..]
        };
        HandView {
            bet: self.bet,
            stake: self.stake(),
            doubled: self.doubled,
            player: SideView::of(&self.player),
            dealer: SideView::of(dealer),
            hole_card_hidden: hide_hole,
            status: self.status,
            payout: self.payout(),
            allowed_actions: self.allowed_actions(),
            actions: self.actions.clone(),
        }
    }
}

impl From<Hand> for HandRecord {
    fn from(hand: Hand) -> Self {
        Self {
            bet: hand.bet,
            shoe: hand.shoe,
            actions: hand.actions,
        }
    }
}

impl TryFrom<HandRecord> for Hand {
    type Error = HandRecordError;

    /// Same as [`Hand::from_record`].
    ///
    /// # Errors
    ///
    /// See [`Hand::from_record`].
    fn try_from(record: HandRecord) -> Result<Self, Self::Error> {
        Self::from_record(record)
    }
}

/// One side's visible cards and their count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideView {
    /// The visible cards, in the order dealt.
    pub cards: Vec<Card>,
    /// The count of `cards` (see [`Total::of`]).
    pub total: u32,
    /// Whether an ace counts 11 in `total`.
    pub soft: bool,
}

impl SideView {
    fn of(cards: &[Card]) -> Self {
        let total = Total::of(cards);
        Self {
            cards: cards.to_vec(),
            total: total.value,
            soft: total.soft,
        }
    }
}

/// A hand as shown to the player ([`Hand::player_view`]) or in full
/// ([`Hand::full_view`]).
///
/// JSON: `{"bet": 10, "stake": 10, "doubled": false, "player": {"cards":
/// ["AS", "7D"], "total": 18, "soft": true}, "dealer": {"cards": ["9C"],
/// "total": 9, "soft": false}, "hole_card_hidden": true, "status":
/// "playing", "payout": 0, "allowed_actions": ["hit", "stand", "double"],
/// "actions": []}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandView {
    /// The initial bet.
    pub bet: i64,
    /// The total staked (twice the bet after a double).
    pub stake: i64,
    /// Whether the player doubled.
    pub doubled: bool,
    /// The player's cards.
    pub player: SideView,
    /// The dealer's visible cards: only the up card while the hole card is
    /// hidden.
    pub dealer: SideView,
    /// Whether the dealer's second card is withheld.
    pub hole_card_hidden: bool,
    /// Where the hand stands.
    pub status: Status,
    /// Coins credited, stake included (0 while playing).
    pub payout: i64,
    /// What the player may do next (empty once over).
    pub allowed_actions: Vec<Action>,
    /// The actions taken so far.
    pub actions: Vec<Action>,
}

/// The basic-strategy decision for `hand`, or `None` once it is over.
///
/// The standard total-dependent strategy for a multi-deck shoe where the
/// dealer stands on soft 17, with doubling on any first two cards and no
/// splitting (pairs are played as their totals). `up` is the dealer's up
/// card, ace = 11:
///
/// | player | double | stand | otherwise |
/// | --- | --- | --- | --- |
/// | hard 5–8 | – | – | hit |
/// | hard 9 | up 3–6 | – | hit |
/// | hard 10 | up 2–9 | – | hit |
/// | hard 11 | up 2–10 | – | hit |
/// | hard 12 | – | up 4–6 | hit |
/// | hard 13–16 | – | up 2–6 | hit |
/// | hard 17+ | – | always | – |
/// | soft 12–14 (A,A / A2 / A3) | up 5–6 (not soft 12) | – | hit |
/// | soft 15–16 (A4 / A5) | up 4–6 | – | hit |
/// | soft 17 (A6) | up 3–6 | – | hit |
/// | soft 18 (A7) | up 3–6 | up 2–8 | hit (up 9, 10, A) |
/// | soft 19+ | – | always | – |
///
/// Where a double is called for but not allowed (after a hit), the player
/// hits, except soft 18, which stands.
#[must_use]
pub fn basic_strategy(hand: &Hand) -> Option<Action> {
    if hand.is_over() {
        return None;
    }
    let total = Total::of(hand.player_cards());
    let up = match hand.dealer_up_card().rank {
        Rank::Ace => 11,
        rank => rank.value(),
    };
    let can_double = hand.player_cards().len() == 2;
    Some(basic_decision(total, up, can_double))
}

/// The table of [`basic_strategy`]: `up` is 2..=11 (ace = 11).
fn basic_decision(total: Total, up: u32, can_double: bool) -> Action {
    let double_or = |wanted: bool, otherwise: Action| {
        if wanted && can_double {
            Action::Double
        } else {
            otherwise
        }
    };
    let v = total.value;
    if total.soft {
        match v {
            13 | 14 => double_or((5..=6).contains(&up), Action::Hit),
            15 | 16 => double_or((4..=6).contains(&up), Action::Hit),
            17 => double_or((3..=6).contains(&up), Action::Hit),
            18 if (3..=6).contains(&up) => double_or(true, Action::Stand),
            18 if up <= 8 => Action::Stand,
            18 => Action::Hit,
            19.. => Action::Stand,
            _ => Action::Hit,
        }
    } else {
        match v {
            9 => double_or((3..=6).contains(&up), Action::Hit),
            10 => double_or(up <= 9, Action::Hit),
            11 => double_or(up <= 10, Action::Hit),
            12 if (4..=6).contains(&up) => Action::Stand,
            13..=16 if up <= 6 => Action::Stand,
            17.. => Action::Stand,
            _ => Action::Hit,
        }
    }
}

/// Deals a hand from `shoe` (at least [`ROUND_CARDS`] arbitrary cards) for an
/// already checked bet. Test helper for stacked and impossible shoes.
#[cfg(test)]
fn start_unchecked(bet: i64, shoe: Vec<Card>) -> Hand {
    Hand::start(bet, shoe)
}

#[cfg(test)]
mod tests;
