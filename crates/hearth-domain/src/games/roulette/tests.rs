use std::sync::LazyLock;

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

fn req(kind: BetKind, numbers: &[u8], amount: i64) -> BetRequest {
    BetRequest {
        kind,
        numbers: numbers.to_vec(),
        amount,
    }
}

fn bet(kind: BetKind, numbers: &[u8]) -> Result<Bet, BetProblem> {
    Bet::new(&req(kind, numbers, 1))
}

/// Every valid bet of every kind, by kind.
static ALL_BETS: LazyLock<Vec<(BetKind, Vec<Vec<u8>>)>> = LazyLock::new(|| {
    BetKind::ALL
        .into_iter()
        .map(|k| (k, all_numbers(k)))
        .collect()
});

#[test]
fn colors() {
    assert_eq!(color(0), Color::Green);
    let reds = (1..=36).filter(|&p| color(p) == Color::Red).count();
    let blacks = (1..=36).filter(|&p| color(p) == Color::Black).count();
    assert_eq!((reds, blacks), (18, 18));
    assert_eq!(color(1), Color::Red);
    assert_eq!(color(2), Color::Black);
    assert_eq!(color(10), Color::Black);
    assert_eq!(color(11), Color::Black);
    assert_eq!(color(19), Color::Red);
    assert_eq!(color(36), Color::Red);
}

#[test]
fn every_kind_returns_36_per_37() {
    for kind in BetKind::ALL {
        let covered = kind.pockets_covered();
        assert_eq!(
            i64::from(covered) * (kind.pays() + 1),
            36,
            "{kind}: covers {covered}, pays {}",
            kind.pays()
        );
    }
    let expected = [35, 17, 11, 8, 5, 2, 2, 1, 1, 1, 1, 1, 1];
    assert_eq!(BetKind::ALL.map(BetKind::pays), expected);
}

#[test]
fn the_layout_has_the_standard_bets() {
    let counts: Vec<(BetKind, usize)> = ALL_BETS.iter().map(|(k, all)| (*k, all.len())).collect();
    use BetKind::*;
    assert_eq!(
        counts,
        vec![
            // 37 pockets; 24 side-by-side + 33 vertical + 3 with zero splits;
            // 12 rows + 2 zero trios; 22 blocks + first four; 11 lines.
            (Straight, 37),
            (Split, 60),
            (Street, 14),
            (Corner, 23),
            (Line, 11),
            (Dozen, 3),
            (Column, 3),
            (Red, 1),
            (Black, 1),
            (Odd, 1),
            (Even, 1),
            (Low, 1),
            (High, 1),
        ]
    );
    for (kind, all) in ALL_BETS.iter() {
        for numbers in all {
            let b = bet(*kind, numbers).unwrap();
            let pockets = b.pockets();
            assert_eq!(
                pockets.len(),
                kind.pockets_covered() as usize,
                "{kind} {numbers:?}"
            );
            if kind.numbers_len() > 1 {
                // Inside bets cover exactly the listed pockets.
                assert_eq!(&pockets, numbers);
            }
        }
    }
    // Outside bets: every pocket 1..=36 is in exactly one dozen, one column,
    // one of red/black, odd/even, low/high; zero is in none.
    for p in 0..=36u8 {
        let count = |kind: BetKind| {
            all_numbers(kind)
                .iter()
                .filter(|n| bet(kind, n).unwrap().wins_on(p))
                .count()
        };
        let want = usize::from(p != 0);
        assert_eq!(count(BetKind::Dozen), want, "dozen {p}");
        assert_eq!(count(BetKind::Column), want, "column {p}");
        for pair in [
            (BetKind::Red, BetKind::Black),
            (BetKind::Odd, BetKind::Even),
            (BetKind::Low, BetKind::High),
        ] {
            assert_eq!(count(pair.0) + count(pair.1), want, "{pair:?} {p}");
        }
    }
}

#[test]
fn bet_shapes() {
    use BetKind::*;
    assert_eq!(
        bet(Dozen, &[2]).unwrap().pockets(),
        (13..=24).collect::<Vec<_>>()
    );
    assert_eq!(
        bet(Column, &[1]).unwrap().pockets(),
        (0..12).map(|r| 3 * r + 1).collect::<Vec<u8>>()
    );
    assert_eq!(
        bet(Low, &[]).unwrap().pockets(),
        (1..=18).collect::<Vec<_>>()
    );
    assert_eq!(
        bet(High, &[]).unwrap().pockets(),
        (19..=36).collect::<Vec<_>>()
    );
    assert_eq!(bet(Red, &[]).unwrap().pockets(), RED_NUMBERS.to_vec());
    // Numbers may come in any order; they are stored sorted.
    assert_eq!(bet(Split, &[20, 17]).unwrap().numbers(), &[17, 20]);
    assert!(bet(Split, &[0, 3]).is_ok());
    assert!(bet(Split, &[3, 4]).is_err()); // across rows
    assert!(bet(Split, &[0, 4]).is_err());
    assert!(bet(Street, &[0, 1, 2]).is_ok());
    assert!(bet(Street, &[0, 1, 3]).is_err());
    assert!(bet(Street, &[2, 3, 4]).is_err());
    assert!(bet(Corner, &[5, 6, 8, 9]).is_ok());
    assert!(bet(Corner, &[3, 4, 6, 7]).is_err());
    assert!(bet(Corner, &[33, 34, 36, 35]).is_err());
    assert!(bet(Corner, &[32, 33, 35, 36]).is_ok());
    assert!(bet(Line, &[31, 32, 33, 34, 35, 36]).is_ok());
    assert!(bet(Line, &[2, 3, 4, 5, 6, 7]).is_err());
}

#[test]
fn invalid_bets_name_the_problem() {
    use BetKind::*;
    assert_eq!(
        Bet::new(&req(Red, &[], 0)),
        Err(BetProblem::NonPositiveAmount { amount: 0 })
    );
    assert_eq!(
        bet(Red, &[1]),
        Err(BetProblem::WrongCount {
            kind: Red,
            expected: 0,
            actual: 1
        })
    );
    assert_eq!(
        bet(Straight, &[]),
        Err(BetProblem::WrongCount {
            kind: Straight,
            expected: 1,
            actual: 0
        })
    );
    assert_eq!(
        bet(Straight, &[37]),
        Err(BetProblem::NumberOutOfRange { number: 37 })
    );
    assert_eq!(
        bet(Dozen, &[0]),
        Err(BetProblem::SelectorOutOfRange {
            kind: Dozen,
            value: 0
        })
    );
    assert_eq!(
        bet(Column, &[4]),
        Err(BetProblem::SelectorOutOfRange {
            kind: Column,
            value: 4
        })
    );
    assert_eq!(
        bet(Split, &[5, 5]),
        Err(BetProblem::DuplicateNumber { number: 5 })
    );
    assert_eq!(
        bet(Split, &[1, 5]),
        Err(BetProblem::NotOnLayout { kind: Split })
    );
    assert_eq!(
        Bet::new(&req(Straight, &[1], i64::MAX / 36 + 1)),
        Err(BetProblem::PayoutOverflow)
    );
    assert!(Bet::new(&req(Straight, &[1], i64::MAX / 36)).is_ok());

    let err = Bets::validate(&[req(Red, &[], 5), req(Split, &[1, 5], 5)]).unwrap_err();
    assert_eq!(
        err,
        RouletteError::InvalidBet {
            index: 1,
            problem: BetProblem::NotOnLayout { kind: Split }
        }
    );
    assert_eq!(
        err.to_string(),
        "bet 1: the numbers do not form a split on the layout"
    );
    assert_eq!(Bets::validate(&[]), Err(RouletteError::NoBets));
    let many = vec![req(Red, &[], 1); MAX_BETS + 1];
    assert_eq!(
        Bets::validate(&many),
        Err(RouletteError::TooManyBets {
            count: MAX_BETS + 1,
            max: MAX_BETS
        })
    );
    assert!(Bets::validate(&many[1..]).is_ok());
    let huge = vec![req(Red, &[], i64::MAX / 2); 2];
    assert_eq!(Bets::validate(&huge), Err(RouletteError::TotalOverflow));
}

#[test]
fn request_json_shape() {
    let json = r#"[
        {"kind": "straight", "numbers": [17], "amount": 10},
        {"kind": "dozen", "numbers": [2], "amount": 5},
        {"kind": "red", "amount": 5},
        {"kind": "even", "numbers": [], "amount": 1}
    ]"#;
    let requests: Vec<BetRequest> = serde_json::from_str(json).unwrap();
    assert_eq!(requests[2], req(BetKind::Red, &[], 5));
    let bets = Bets::validate(&requests).unwrap();
    assert_eq!(bets.total_stake(), 21);
    assert_eq!(bets.as_slice().len(), 4);
    assert!(
        serde_json::from_str::<BetRequest>(r#"{"kind": "red", "amount": 5, "number": 1}"#).is_err()
    );
    assert!(serde_json::from_str::<BetRequest>(r#"{"kind": "basket", "amount": 5}"#).is_err());

    let out = bets.settle(17);
    assert_eq!(
        serde_json::to_value(&out).unwrap(),
        serde_json::json!({
            "pocket": 17, "color": "black",
            "bets": [
                {"kind": "straight", "numbers": [17], "amount": 10, "won": true, "payout": 360},
                {"kind": "dozen", "numbers": [2], "amount": 5, "won": true, "payout": 15},
                {"kind": "red", "amount": 5, "won": false, "payout": 0},
                {"kind": "even", "amount": 1, "won": false, "payout": 0}
            ],
            "total_bet": 21, "total_payout": 375
        })
    );
}

#[test]
fn zero_loses_every_outside_bet() {
    let requests: Vec<BetRequest> = BetKind::ALL
        .into_iter()
        .filter(|k| {
            !matches!(
                k,
                BetKind::Straight
                    | BetKind::Split
                    | BetKind::Street
                    | BetKind::Corner
                    | BetKind::Line
            )
        })
        .flat_map(|k| all_numbers(k).into_iter().map(move |n| req(k, &n, 1)))
        .collect();
    let out = Bets::validate(&requests).unwrap().settle(0);
    assert_eq!(out.color, Color::Green);
    assert_eq!(out.total_payout, 0);
    assert!(out.bets.iter().all(|b| !b.won));
    // Zero still pays inside bets that cover it.
    let out = Bets::validate(&[req(BetKind::Corner, &[0, 1, 2, 3], 2)])
        .unwrap()
        .settle(0);
    assert_eq!(out.total_payout, 18);
}

#[test]
fn known_answer_pockets() {
    // From the Python verifier in docs/games.md.
    let server = ServerSeed::from_bytes([7; 32]);
    let client = ClientSeed::parse("lucky").unwrap();
    let bets = Bets::validate(&[req(BetKind::Straight, &[22], 1)]).unwrap();
    let pockets: Vec<u8> = (0..5)
        .map(|nonce| spin(&mut FairRng::new(&server, &client, nonce), &bets).pocket)
        .collect();
    assert_eq!(pockets, [22, 1, 12, 7, 1]);
    let out = spin(&mut FairRng::new(&server, &client, 0), &bets);
    assert_eq!((out.total_payout, out.color), (36, Color::Black));
}

#[test]
fn spin_draws_once() {
    let bets = Bets::validate(&[req(BetKind::Red, &[], 1)]).unwrap();
    // 2^32 mod 37 = 7: the top seven draws are rejected.
    let mut src = Scripted([u32::MAX, 37 * 5 + 3].into_iter());
    assert_eq!(spin(&mut src, &bets).pocket, 3);
    assert_eq!(src.0.len(), 0);
}

#[test]
fn pockets_are_uniform() {
    // One spin per round (nonce), as in production. 36 degrees of freedom;
    // the upper 0.1% point of chi-square(36) is 67.985.
    const SPINS: u32 = 370_000;
    let server = ServerSeed::from_bytes([0x37; 32]);
    let client = ClientSeed::parse("roulette-chi-square").unwrap();
    let bets = Bets::validate(&[req(BetKind::Red, &[], 1)]).unwrap();
    let mut counts = [0u32; 37];
    for nonce in 0..u64::from(SPINS) {
        counts[usize::from(spin(&mut FairRng::new(&server, &client, nonce), &bets).pocket)] += 1;
    }
    let expected = f64::from(SPINS) / 37.0;
    let stat: f64 = counts
        .iter()
        .map(|&c| (f64::from(c) - expected).powi(2) / expected)
        .sum();
    assert!(stat < 67.985, "chi-square {stat}");
}

#[test]
fn simulated_rtp_matches_36_over_37_for_every_kind() {
    // Each spin carries one unit bet of every kind; per kind the measured
    // return must be within 4 standard errors of 36/37.
    const SPINS: u32 = 200_000;
    let server = ServerSeed::from_bytes([0x42; 32]);
    let client = ClientSeed::parse("roulette-rtp").unwrap();
    let requests: Vec<BetRequest> = BetKind::ALL
        .into_iter()
        .map(|k| req(k, &all_numbers(k)[0], 1))
        .collect();
    let bets = Bets::validate(&requests).unwrap();
    let mut returned = [0i64; 13];
    for nonce in 0..u64::from(SPINS) {
        let out = spin(&mut FairRng::new(&server, &client, nonce), &bets);
        for (total, b) in returned.iter_mut().zip(&out.bets) {
            *total += b.payout;
        }
    }
    let n = f64::from(SPINS);
    for (kind, total) in BetKind::ALL.into_iter().zip(returned) {
        #[allow(clippy::cast_precision_loss)]
        let measured = total as f64 / n;
        let win = (kind.pays() + 1) as f64;
        let p = f64::from(kind.pockets_covered()) / 37.0;
        let std_error = ((win * win * p - RTP * RTP) / n).sqrt();
        assert!(
            (measured - RTP).abs() <= 4.0 * std_error,
            "{kind}: measured {measured}, theory {RTP}, 4 SE {}",
            4.0 * std_error
        );
    }
}

fn any_valid_request() -> impl Strategy<Value = BetRequest> {
    (0usize..13, any::<prop::sample::Index>(), 1i64..=1_000_000).prop_map(|(k, i, amount)| {
        let (kind, all) = &ALL_BETS[k];
        let mut numbers = i.get(all).clone();
        numbers.reverse();
        BetRequest {
            kind: *kind,
            numbers,
            amount,
        }
    })
}

proptest! {
    #[test]
    fn spins_pay_only_what_the_paytable_allows(
        bytes in any::<[u8; 32]>(),
        nonce in any::<u64>(),
        requests in prop::collection::vec(any_valid_request(), 1..8),
    ) {
        let server = ServerSeed::from_bytes(bytes);
        let client = ClientSeed::parse("prop").unwrap();
        let bets = Bets::validate(&requests).unwrap();
        let out = spin(&mut FairRng::new(&server, &client, nonce), &bets);
        prop_assert!(out.pocket <= 36);
        prop_assert_eq!(out.color, color(out.pocket));
        prop_assert_eq!(out.bets.len(), requests.len());
        for (result, request) in out.bets.iter().zip(&requests) {
            let win = request.amount * (request.kind.pays() + 1);
            prop_assert!(result.payout == 0 || result.payout == win);
            prop_assert_eq!(result.won, result.payout == win);
            let mut sorted = request.numbers.clone();
            sorted.sort_unstable();
            prop_assert_eq!(&result.numbers, &sorted);
            prop_assert_eq!(result.won, Bet::new(request).unwrap().pockets().contains(&out.pocket));
        }
        prop_assert_eq!(out.total_bet, requests.iter().map(|r| r.amount).sum::<i64>());
        prop_assert_eq!(out.total_payout, out.bets.iter().map(|b| b.payout).sum::<i64>());
    }

    #[test]
    fn arbitrary_requests_validate_exactly_the_layout(
        k in 0usize..13,
        numbers in prop::collection::vec(any::<u8>(), 0..8),
        amount in any::<i64>(),
    ) {
        let (kind, all) = &ALL_BETS[k];
        let request = BetRequest { kind: *kind, numbers: numbers.clone(), amount };
        let mut sorted = numbers;
        sorted.sort_unstable();
        let valid_shape = all.contains(&sorted);
        match Bet::new(&request) {
            Ok(b) => {
                prop_assert!(valid_shape && amount > 0);
                prop_assert_eq!(b.numbers(), sorted.as_slice());
            }
            Err(BetProblem::NonPositiveAmount { .. }) => prop_assert!(amount <= 0),
            Err(BetProblem::PayoutOverflow) => {
                prop_assert!(valid_shape);
                prop_assert!(amount.checked_mul(kind.pays() + 1).is_none());
            }
            Err(_) => prop_assert!(!valid_shape),
        }
    }

    #[test]
    fn small_layout_requests_are_accepted_iff_listed(
        k in 0usize..13,
        numbers in prop::collection::vec(0u8..=37, 0..7),
    ) {
        let (kind, all) = &ALL_BETS[k];
        let mut sorted = numbers.clone();
        sorted.sort_unstable();
        let ok = Bet::new(&BetRequest { kind: *kind, numbers, amount: 1 }).is_ok();
        prop_assert_eq!(ok, all.contains(&sorted));
    }
}
