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

fn card(code: &str) -> Card {
    code.parse().unwrap()
}

fn cards(codes: &[&str]) -> Vec<Card> {
    codes.iter().map(|c| card(c)).collect()
}

/// A valid shoe whose first cards are `top` (in order), followed by the rest
/// of an ordered shoe.
fn stacked(top: &[&str]) -> Shoe {
    let mut rest = Shoe::ordered().cards().to_vec();
    let mut shoe = Vec::with_capacity(SHOE_LEN);
    for c in cards(top) {
        let at = rest.iter().position(|&x| x == c).expect("card available");
        shoe.push(rest.remove(at));
    }
    shoe.extend(rest);
    Shoe::from_cards(shoe).unwrap()
}

/// Deals from a stacked shoe. Deal order: player, dealer, player, dealer
/// (hole), then draws in order.
fn deal(top: &[&str], bet: i64) -> Hand {
    Hand::deal_from_shoe(&stacked(top), bet).unwrap()
}

fn lucky_shoe(nonce: u64) -> Shoe {
    let server = ServerSeed::from_bytes([7; 32]);
    let client = ClientSeed::parse("lucky").unwrap();
    Shoe::shuffled(&mut FairRng::new(&server, &client, nonce))
}

#[test]
fn card_codes() {
    assert_eq!(card("AS"), Card::new(Rank::Ace, Suit::Spades));
    assert_eq!(card("TD"), Card::new(Rank::Ten, Suit::Diamonds));
    assert_eq!(Card::new(Rank::Seven, Suit::Clubs).to_string(), "7C");
    for bad in ["", "A", "ASX", "1S", "as", "AX", "10S"] {
        assert_eq!(bad.parse::<Card>(), Err(CardParseError), "{bad:?}");
    }
    assert_eq!(serde_json::to_string(&card("QH")).unwrap(), "\"QH\"");
    assert_eq!(serde_json::from_str::<Card>("\"KC\"").unwrap(), card("KC"));
    assert!(serde_json::from_str::<Card>("\"ZZ\"").is_err());
    for suit in Suit::ALL {
        for rank in Rank::ALL {
            let c = Card::new(rank, suit);
            assert_eq!(c.to_string().parse::<Card>(), Ok(c));
        }
    }
}

#[test]
fn ordered_shoe_has_six_of_each() {
    let shoe = Shoe::ordered();
    assert_eq!(shoe.cards().len(), SHOE_LEN);
    assert_eq!(&shoe.cards()[..3], cards(&["AC", "2C", "3C"]).as_slice());
    assert_eq!(shoe.cards()[51], card("KS"));
    assert_eq!(shoe.cards()[52], card("AC"));
    let mut counts = [0; 52];
    for c in shoe.cards() {
        counts[c.index()] += 1;
    }
    assert!(counts.iter().all(|&n| n == DECKS));
    assert_eq!(Shoe::from_cards(shoe.cards().to_vec()), Ok(shoe.clone()));
    assert_eq!(
        Shoe::from_cards(shoe.cards()[1..].to_vec()),
        Err(ShoeError::Length {
            expected: 312,
            actual: 311
        })
    );
    let mut seven_aces = shoe.cards().to_vec();
    seven_aces[1] = card("AC");
    assert_eq!(
        Shoe::from_cards(seven_aces),
        Err(ShoeError::TooManyCopies { card: card("AC") })
    );
}

#[test]
fn known_answer_shoes() {
    // From the Python verifier in docs/games.md.
    let expected = [
        "2H 8D 7C 2S AD 2S JC 6S TH 5S JD AC",
        "7D 8S 6C 7H 4C 5S KC AS 2D 3H AH 8S",
    ];
    for (nonce, want) in (0u64..).zip(expected) {
        let shoe = lucky_shoe(nonce);
        let got: Vec<String> = shoe.cards()[..12].iter().map(Card::to_string).collect();
        assert_eq!(got.join(" "), want, "nonce {nonce}");
        // A shuffle is a permutation of the ordered shoe.
        assert_eq!(Shoe::from_cards(shoe.cards().to_vec()), Ok(shoe));
    }
    // Dealt in order: player 2H 7C, dealer 8D (up) 2S (hole).
    let server = ServerSeed::from_bytes([7; 32]);
    let client = ClientSeed::parse("lucky").unwrap();
    let hand = Hand::deal(&mut FairRng::new(&server, &client, 0), 10).unwrap();
    assert_eq!(hand.player_cards(), cards(&["2H", "7C"]).as_slice());
    assert_eq!(hand.dealer_cards(), cards(&["8D", "2S"]).as_slice());
    assert_eq!(hand.shoe(), &lucky_shoe(0).cards()[..ROUND_CARDS]);
    // Stand: the dealer draws AD (soft 21 with 8 2 A).
    let mut stood = hand.clone();
    let out = stood.apply(Action::Stand).unwrap();
    assert_eq!(stood.dealer_cards(), cards(&["8D", "2S", "AD"]).as_slice());
    assert_eq!(
        out,
        Outcome {
            status: Status::DealerWin,
            payout: 0
        }
    );
}

#[test]
fn deal_draws_a_full_shuffle() {
    // 311 draws below 2 are accepted as-is by every bound, so each is j.
    let mut src = Scripted(std::iter::repeat_n(0, SHOE_LEN - 1));
    let hand = Hand::deal(&mut src, 2).unwrap();
    assert_eq!(src.0.len(), 0);
    // j = 0 every time rotates the ordered shoe: index i ends up holding card
    // i + 1, and card 0 ends up last.
    let ordered = Shoe::ordered();
    assert_eq!(hand.shoe(), &ordered.cards()[1..=ROUND_CARDS]);
}

#[test]
fn totals() {
    let t = |codes: &[&str]| Total::of(&cards(codes));
    assert_eq!(
        t(&["AS", "6D"]),
        Total {
            value: 17,
            soft: true
        }
    );
    assert_eq!(
        t(&["AS", "6D", "TC"]),
        Total {
            value: 17,
            soft: false
        }
    );
    assert_eq!(
        t(&["AS", "AD"]),
        Total {
            value: 12,
            soft: true
        }
    );
    assert_eq!(
        t(&["AS", "KD"]),
        Total {
            value: 21,
            soft: true
        }
    );
    assert_eq!(
        t(&["TS", "KD", "2C"]),
        Total {
            value: 22,
            soft: false
        }
    );
    assert!(t(&["TS", "KD", "2C"]).is_bust());
    assert_eq!(
        t(&[]),
        Total {
            value: 0,
            soft: false
        }
    );
}

#[test]
fn bets_are_checked_before_drawing() {
    for (bet, err) in [
        (0, GameError::InvalidBet { bet: 0 }),
        (-2, GameError::InvalidBet { bet: -2 }),
        (
            3,
            GameError::BetNotMultiple {
                bet: 3,
                multiple: 2,
            },
        ),
        (MAX_BET + 2, GameError::Overflow),
        (i64::MAX - 1, GameError::Overflow),
    ] {
        let mut src = Scripted(std::iter::empty());
        assert_eq!(Hand::deal(&mut src, bet), Err(err), "bet {bet}");
    }
    assert_eq!(MAX_BET % 2, 0);
    // The largest bet can double and win without overflow.
    let mut hand = deal(&["6C", "5D", "5S", "TD", "TH"], MAX_BET);
    assert_eq!(hand.extra_stake(Action::Double), Ok(MAX_BET));
    let out = hand.apply(Action::Double).unwrap();
    assert_eq!(out.status, Status::PlayerWin);
    assert_eq!(out.payout, 4 * MAX_BET);
}

#[test]
fn naturals_are_settled_at_the_deal() {
    // Player AS KD, dealer 9C 7H.
    let hand = deal(&["AS", "9C", "KD", "7H"], 10);
    assert_eq!(
        hand.outcome(),
        Outcome {
            status: Status::Blackjack,
            payout: 25
        }
    );
    assert!(hand.is_over() && hand.allowed_actions().is_empty());
    // Both natural: push.
    let hand = deal(&["AS", "AD", "KD", "QH"], 10);
    assert_eq!(
        hand.outcome(),
        Outcome {
            status: Status::Push,
            payout: 10
        }
    );
    // Dealer natural only: the player loses without acting.
    let hand = deal(&["9S", "AD", "KD", "QH"], 10);
    assert_eq!(
        hand.outcome(),
        Outcome {
            status: Status::DealerWin,
            payout: 0
        }
    );
    assert!(!hand.player_view().hole_card_hidden);
    // A three-card 21 is not a blackjack.
    let mut hand = deal(&["5S", "9D", "6D", "8H", "TC"], 10);
    assert_eq!(hand.apply(Action::Hit).unwrap().status, Status::PlayerWin);
    assert_eq!(hand.payout(), 20);
}

#[test]
fn hit_to_bust_leaves_the_dealer_alone() {
    let mut hand = deal(&["TS", "9C", "6D", "7H", "8C"], 10);
    assert_eq!(hand.allowed_actions(), Action::ALL.to_vec());
    let out = hand.apply(Action::Hit).unwrap();
    assert_eq!(
        out,
        Outcome {
            status: Status::PlayerBust,
            payout: 0
        }
    );
    assert_eq!(hand.dealer_cards().len(), 2);
    assert_eq!(hand.cards_dealt(), 5);
}

#[test]
fn dealer_stands_on_soft_17_and_hits_16() {
    // Player 10 8 = 18; dealer A 6 = soft 17 stands.
    let mut hand = deal(&["TS", "AC", "8D", "6H"], 10);
    let out = hand.apply(Action::Stand).unwrap();
    assert_eq!(hand.dealer_cards().len(), 2);
    assert_eq!(
        out,
        Outcome {
            status: Status::PlayerWin,
            payout: 20
        }
    );
    // Dealer T 6 hits: 5 makes 21.
    let mut hand = deal(&["TS", "TC", "8D", "6H", "5C"], 10);
    let out = hand.apply(Action::Stand).unwrap();
    assert_eq!(hand.dealer_cards(), cards(&["TC", "6H", "5C"]).as_slice());
    assert_eq!(out.status, Status::DealerWin);
    // Dealer A 5 (soft 16) hits: T makes hard 16, hits again: 9 busts.
    let mut hand = deal(&["TS", "AC", "7D", "5H", "TC", "9C"], 10);
    let out = hand.apply(Action::Stand).unwrap();
    assert_eq!(hand.dealer_cards().len(), 4);
    assert_eq!(
        out,
        Outcome {
            status: Status::DealerBust,
            payout: 20
        }
    );
    // Equal totals push.
    let mut hand = deal(&["TS", "TC", "8D", "8H"], 10);
    assert_eq!(
        hand.apply(Action::Stand).unwrap(),
        Outcome {
            status: Status::Push,
            payout: 10
        }
    );
}

#[test]
fn double_takes_one_card_and_doubles_the_stake() {
    // Player 6 5 = 11, doubles, gets T = 21; dealer T 7 = 17.
    let mut hand = deal(&["6C", "TD", "5S", "7D", "TH"], 10);
    assert_eq!(hand.extra_stake(Action::Double), Ok(10));
    assert_eq!(hand.extra_stake(Action::Hit), Ok(0));
    assert_eq!(hand.extra_stake(Action::Stand), Ok(0));
    let out = hand.apply(Action::Double).unwrap();
    assert_eq!(
        out,
        Outcome {
            status: Status::PlayerWin,
            payout: 40
        }
    );
    assert!(hand.doubled());
    assert_eq!(hand.stake(), 20);
    assert_eq!(hand.player_cards().len(), 3);
    // Doubling into a bust loses the doubled stake; the dealer does not draw.
    let mut hand = deal(&["TC", "TD", "2S", "6D", "TH"], 10);
    let out = hand.apply(Action::Double).unwrap();
    assert_eq!(
        out,
        Outcome {
            status: Status::PlayerBust,
            payout: 0
        }
    );
    assert_eq!((hand.stake(), hand.dealer_cards().len()), (20, 2));
    // A doubled push returns the doubled stake.
    let mut hand = deal(&["5C", "TD", "5S", "8D", "8H"], 10);
    let out = hand.apply(Action::Double).unwrap();
    assert_eq!(
        out,
        Outcome {
            status: Status::Push,
            payout: 20
        }
    );
}

#[test]
fn illegal_actions_change_nothing() {
    let mut hand = deal(&["2C", "TD", "3S", "7D", "4H"], 10);
    hand.apply(Action::Hit).unwrap();
    let before = hand.clone();
    assert_eq!(
        hand.extra_stake(Action::Double),
        Err(IllegalAction::DoubleAfterHit)
    );
    assert_eq!(
        hand.apply(Action::Double),
        Err(IllegalAction::DoubleAfterHit)
    );
    assert_eq!(hand, before);
    assert_eq!(hand.allowed_actions(), vec![Action::Hit, Action::Stand]);
    hand.apply(Action::Stand).unwrap();
    let before = hand.clone();
    for action in Action::ALL {
        assert_eq!(hand.apply(action), Err(IllegalAction::HandOver { action }));
        assert_eq!(
            hand.extra_stake(action),
            Err(IllegalAction::HandOver { action })
        );
    }
    assert_eq!(hand, before);
    assert_eq!(
        IllegalAction::HandOver {
            action: Action::Hit
        }
        .to_string(),
        "the hand is over; cannot hit"
    );
}

#[test]
fn twenty_one_stands_automatically() {
    // Player 5 6, hits T = 21: the dealer (T 7) plays at once.
    let mut hand = deal(&["5C", "TD", "6S", "7D", "TH"], 10);
    let out = hand.apply(Action::Hit).unwrap();
    assert_eq!(
        out,
        Outcome {
            status: Status::PlayerWin,
            payout: 20
        }
    );
    assert_eq!(hand.actions(), &[Action::Hit]);
}

#[test]
fn player_view_hides_the_hole_card_until_the_end() {
    let mut hand = deal(&["TS", "9C", "7D", "KH"], 10);
    let view = hand.player_view();
    assert!(view.hole_card_hidden);
    assert_eq!(view.dealer.cards, vec![card("9C")]);
    assert_eq!((view.dealer.total, view.dealer.soft), (9, false));
    assert_eq!((view.player.total, view.player.soft), (17, false));
    assert_eq!(view.allowed_actions, Action::ALL.to_vec());
    let full = hand.full_view();
    assert!(!full.hole_card_hidden);
    assert_eq!(full.dealer.cards, cards(&["9C", "KH"]));
    assert_eq!(full.dealer.total, 19);
    // The view never mentions the shoe.
    let json = serde_json::to_value(&view).unwrap();
    assert!(json.get("shoe").is_none());
    assert!(!json.to_string().contains("KH"));
    assert_eq!(
        json,
        serde_json::json!({
            "bet": 10, "stake": 10, "doubled": false,
            "player": {"cards": ["TS", "7D"], "total": 17, "soft": false},
            "dealer": {"cards": ["9C"], "total": 9, "soft": false},
            "hole_card_hidden": true, "status": "playing", "payout": 0,
            "allowed_actions": ["hit", "stand", "double"], "actions": []
        })
    );
    hand.apply(Action::Stand).unwrap();
    assert_eq!(hand.player_view(), hand.full_view());
    assert_eq!(hand.status(), Status::DealerWin);
}

#[test]
fn serde_round_trip_and_record_shape() {
    let mut hand = deal(&["2C", "TD", "3S", "7D", "4H"], 10);
    hand.apply(Action::Hit).unwrap();
    let json = serde_json::to_value(&hand).unwrap();
    assert_eq!(json["bet"], 10);
    assert_eq!(json["actions"], serde_json::json!(["hit"]));
    assert_eq!(json["shoe"].as_array().unwrap().len(), ROUND_CARDS);
    assert_eq!(json["shoe"][0], "2C");
    assert_eq!(json.as_object().unwrap().len(), 3);
    let back: Hand = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, hand);
    assert_eq!(Hand::from_record(hand.to_record()), Ok(hand.clone()));

    // Tampered records are refused.
    let with = |key: &str, value: serde_json::Value| {
        let mut j = json.clone();
        j[key] = value;
        serde_json::from_value::<Hand>(j)
    };
    assert!(with("bet", 11.into()).is_err());
    assert!(with("actions", serde_json::json!(["hit", "double"])).is_err());
    assert!(with("shoe", serde_json::json!(["2C"])).is_err());
    assert!(with("extra", 1.into()).is_err());
    let mut record = hand.to_record();
    record.actions.push(Action::Double);
    assert_eq!(
        Hand::from_record(record.clone()),
        Err(HandRecordError::Action {
            index: 1,
            error: IllegalAction::DoubleAfterHit
        })
    );
    record.actions = vec![Action::Stand, Action::Hit];
    assert_eq!(
        Hand::from_record(record.clone()),
        Err(HandRecordError::Action {
            index: 1,
            error: IllegalAction::HandOver {
                action: Action::Hit
            }
        })
    );
    record.actions.clear();
    record.shoe[1..8].fill(card("AC"));
    assert_eq!(
        Hand::from_record(record.clone()),
        Err(HandRecordError::Shoe(ShoeError::TooManyCopies {
            card: card("AC")
        }))
    );
    record.shoe.pop();
    assert_eq!(
        Hand::from_record(record.clone()),
        Err(HandRecordError::Shoe(ShoeError::Length {
            expected: ROUND_CARDS,
            actual: ROUND_CARDS - 1
        }))
    );
    record.bet = 0;
    assert_eq!(
        Hand::from_record(record),
        Err(HandRecordError::Bet(GameError::InvalidBet { bet: 0 }))
    );
}

#[test]
fn round_cards_bound_holds_for_extreme_shoes() {
    // Aces and twos only: the player can take many small cards.
    let mut shoe = vec![card("AC"), card("2C")];
    shoe.extend(std::iter::repeat_n(card("AD"), 2));
    shoe.extend(std::iter::repeat_n(card("2D"), ROUND_CARDS));
    let mut hand = start_unchecked(2, shoe);
    while !hand.is_over() {
        hand.apply(Action::Hit).unwrap();
    }
    assert!(hand.cards_dealt() <= ROUND_CARDS);
    // Only twos: the player hits 2 2 up to 20 (10 cards) and stands; the
    // dealer draws to 18 (9 cards).
    let mut hand = start_unchecked(2, vec![card("2C"); ROUND_CARDS]);
    for _ in 0..8 {
        hand.apply(Action::Hit).unwrap();
    }
    assert_eq!(Total::of(hand.player_cards()).value, 20);
    hand.apply(Action::Stand).unwrap();
    assert_eq!(hand.dealer_cards().len(), 9);
    assert_eq!(hand.status(), Status::PlayerWin);
    assert_eq!(hand.cards_dealt(), 10 + 9);
}

#[test]
fn basic_strategy_spot_checks() {
    let decide = |top: &[&str]| basic_strategy(&deal(top, 2));
    // Player cards are top[0] and top[2]; the up card is top[1].
    assert_eq!(decide(&["6C", "5D", "5S", "TD"]), Some(Action::Double)); // 11 v 5
    assert_eq!(decide(&["6C", "AD", "5S", "7D"]), Some(Action::Hit)); // 11 v A
    assert_eq!(decide(&["TC", "6D", "6S", "TD"]), Some(Action::Stand)); // 16 v 6
    assert_eq!(decide(&["TC", "7D", "6S", "TD"]), Some(Action::Hit)); // 16 v 7
    assert_eq!(decide(&["TC", "3D", "2S", "TD"]), Some(Action::Hit)); // 12 v 3
    assert_eq!(decide(&["AC", "6D", "7S", "TD"]), Some(Action::Double)); // A7 v 6
    assert_eq!(decide(&["AC", "2D", "7S", "TD"]), Some(Action::Stand)); // A7 v 2
    assert_eq!(decide(&["AC", "9D", "7S", "TD"]), Some(Action::Hit)); // A7 v 9
    assert_eq!(decide(&["AC", "6D", "8S", "TD"]), Some(Action::Stand)); // A8 v 6
    assert_eq!(decide(&["AC", "6D", "AS", "TD"]), Some(Action::Hit)); // AA v 6
    assert_eq!(decide(&["8C", "TD", "8S", "7D"]), Some(Action::Hit)); // 88 v T
    assert_eq!(basic_strategy(&deal(&["AS", "9C", "KD", "7H"], 2)), None);
    // After a hit a wanted double becomes a hit (hard) or a stand (soft 18).
    let mut hand = deal(&["AC", "6D", "2S", "TD", "5H"], 2); // A2 v 6: double
    assert_eq!(basic_strategy(&hand), Some(Action::Double));
    hand.apply(Action::Hit).unwrap(); // A 2 5 = soft 18 v 6
    assert_eq!(basic_strategy(&hand), Some(Action::Stand));
}

/// Net win per initial bet of one round played with basic strategy (a
/// multiple of 0.5: -2, -1, 0, 1, 1.5 or 2).
fn play_basic(rng: &mut impl RandomSource) -> f64 {
    let mut hand = Hand::deal(rng, 2).unwrap();
    while let Some(action) = basic_strategy(&hand) {
        hand.apply(action).unwrap();
    }
    #[allow(clippy::cast_precision_loss)]
    let net = (hand.payout() - hand.stake()) as f64 / 2.0;
    net
}

#[test]
fn simulated_basic_strategy_rtp_matches_the_estimate() {
    const ROUNDS: u32 = 200_000;
    let server = ServerSeed::from_bytes([0x24; 32]);
    let client = ClientSeed::parse("blackjack-rtp-test").unwrap();
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    for nonce in 0..u64::from(ROUNDS) {
        let r = play_basic(&mut FairRng::new(&server, &client, nonce));
        sum += r;
        sum_sq += r * r;
    }
    // RTP in the blackjack sense: 1 + expected net win per initial bet.
    let n = f64::from(ROUNDS);
    let mean = sum / n;
    let variance = sum_sq / n - mean * mean;
    let measured = 1.0 + mean;
    // Combined standard error of this run and of the published estimate.
    let std_error = (variance / n + BASIC_STRATEGY_RTP_STD_ERROR.powi(2)).sqrt();
    let tolerance = 4.0 * std_error;
    assert!(
        (measured - BASIC_STRATEGY_RTP).abs() <= tolerance,
        "measured {measured}, estimate {BASIC_STRATEGY_RTP}, tolerance {tolerance}"
    );
    // Blackjack's per-round variance is about 1.3 bets squared.
    assert!((1.0..1.6).contains(&variance), "variance {variance}");
}

fn check_invariants(hand: &Hand) -> Result<(), TestCaseError> {
    // Card conservation: the dealt cards are exactly the shoe's first
    // `cards_dealt`, none more often than six decks hold.
    let dealt = hand.cards_dealt();
    prop_assert!(dealt <= ROUND_CARDS);
    prop_assert_eq!(hand.player_cards().len() + hand.dealer_cards().len(), dealt);
    let mut from_shoe = hand.shoe()[..dealt].to_vec();
    let mut held: Vec<Card> = hand
        .player_cards()
        .iter()
        .chain(hand.dealer_cards())
        .copied()
        .collect();
    from_shoe.sort_unstable();
    held.sort_unstable();
    prop_assert_eq!(&from_shoe, &held);
    for c in &held {
        prop_assert!(held.iter().filter(|&x| x == c).count() <= DECKS);
    }
    // Payout is one the paytable allows.
    let (bet, stake) = (hand.bet(), hand.stake());
    prop_assert!(stake == bet || (hand.doubled() && stake == 2 * bet));
    let allowed = match hand.status() {
        Status::Playing | Status::PlayerBust | Status::DealerWin => 0,
        Status::Push => stake,
        Status::PlayerWin | Status::DealerBust => 2 * stake,
        Status::Blackjack => bet * 5 / 2,
    };
    prop_assert_eq!(hand.payout(), allowed);
    prop_assert!([0, bet, 2 * bet, bet * 5 / 2, 4 * bet].contains(&hand.payout()));
    if hand.status() == Status::Blackjack {
        prop_assert!(hand.player_cards().len() == 2 && !hand.doubled());
    }
    // Totals agree with the status.
    let player = Total::of(hand.player_cards());
    let dealer = Total::of(hand.dealer_cards());
    match hand.status() {
        Status::Playing => prop_assert!(
            player.value < 21 && hand.dealer_cards().len() == 2 && !is_natural(hand.dealer_cards())
        ),
        Status::PlayerBust => prop_assert!(player.is_bust()),
        Status::DealerBust => prop_assert!(dealer.is_bust() && !player.is_bust()),
        Status::PlayerWin => prop_assert!(player.value > dealer.value && !player.is_bust()),
        Status::DealerWin => {
            prop_assert!(dealer.value >= player.value && !dealer.is_bust() && !player.is_bust())
        }
        Status::Push => prop_assert_eq!(player.value, dealer.value),
        Status::Blackjack => prop_assert_eq!(player.value, 21),
    }
    // The player's view hides exactly the hole card while playing.
    let view = hand.player_view();
    prop_assert_eq!(view.hole_card_hidden, !hand.is_over());
    prop_assert_eq!(
        view.dealer.cards.len(),
        if hand.is_over() {
            hand.dealer_cards().len()
        } else {
            1
        }
    );
    prop_assert_eq!(view.allowed_actions, hand.allowed_actions());
    // Persisting and restoring gives the same hand.
    let json = serde_json::to_string(hand).unwrap();
    prop_assert_eq!(&serde_json::from_str::<Hand>(&json).unwrap(), hand);
    Ok(())
}

fn any_action() -> impl Strategy<Value = Action> {
    prop::sample::select(Action::ALL.to_vec())
}

fn any_card() -> impl Strategy<Value = Card> {
    (0usize..13, 0usize..4).prop_map(|(r, s)| Card::new(Rank::ALL[r], Suit::ALL[s]))
}

proptest! {
    #[test]
    fn random_action_sequences_are_refereed(
        bytes in any::<[u8; 32]>(),
        nonce in any::<u64>(),
        half_bet in 1i64..=1_000_000,
        actions in prop::collection::vec(any_action(), 0..25),
    ) {
        let server = ServerSeed::from_bytes(bytes);
        let client = ClientSeed::parse("prop").unwrap();
        let bet = 2 * half_bet;
        let mut hand = Hand::deal(&mut FairRng::new(&server, &client, nonce), bet).unwrap();
        // The hand keeps the first cards of the round's shuffled shoe.
        let shoe = Shoe::shuffled(&mut FairRng::new(&server, &client, nonce));
        prop_assert_eq!(hand.shoe(), &shoe.cards()[..ROUND_CARDS]);
        check_invariants(&hand)?;
        for action in actions {
            let before = hand.clone();
            let expected = before.check(action);
            let extra = before.extra_stake(action);
            match hand.apply(action) {
                Ok(out) => {
                    prop_assert!(expected.is_ok());
                    prop_assert_eq!(extra, Ok(if action == Action::Double { bet } else { 0 }));
                    prop_assert_eq!(out, hand.outcome());
                    prop_assert_eq!(hand.actions().len(), before.actions().len() + 1);
                    prop_assert!(before.allowed_actions().contains(&action));
                }
                Err(err) => {
                    prop_assert_eq!(Err(err), expected);
                    prop_assert_eq!(extra, Err(err));
                    prop_assert_eq!(&hand, &before);
                    if before.is_over() {
                        prop_assert_eq!(err, IllegalAction::HandOver { action });
                    } else {
                        prop_assert_eq!(err, IllegalAction::DoubleAfterHit);
                        prop_assert!(before.player_cards().len() > 2);
                    }
                }
            }
            check_invariants(&hand)?;
        }
        // Finished hands accept nothing.
        if hand.is_over() {
            for action in Action::ALL {
                prop_assert_eq!(hand.clone().apply(action), Err(IllegalAction::HandOver { action }));
            }
        }
    }

    #[test]
    fn any_cards_never_panic(
        shoe in prop::collection::vec(any_card(), ROUND_CARDS),
        actions in prop::collection::vec(any_action(), 0..40),
    ) {
        // Impossible shoes too (say 38 aces): the round still fits in
        // ROUND_CARDS cards and the state machine holds.
        let mut hand = start_unchecked(2, shoe);
        for action in actions {
            let _ = hand.apply(action);
            prop_assert!(hand.cards_dealt() <= ROUND_CARDS);
        }
        while !hand.is_over() {
            hand.apply(Action::Hit).unwrap();
        }
        prop_assert!(hand.cards_dealt() <= ROUND_CARDS);
    }

    #[test]
    fn basic_strategy_always_picks_a_legal_action(
        bytes in any::<[u8; 32]>(),
        nonce in any::<u64>(),
    ) {
        let server = ServerSeed::from_bytes(bytes);
        let client = ClientSeed::parse("prop").unwrap();
        let mut hand = Hand::deal(&mut FairRng::new(&server, &client, nonce), 2).unwrap();
        while let Some(action) = basic_strategy(&hand) {
            prop_assert!(hand.apply(action).is_ok());
        }
        prop_assert!(hand.is_over());
        check_invariants(&hand)?;
    }
}
