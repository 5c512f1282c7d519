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

fn request(amount: i64, direction: Direction, target: u32) -> DiceRequest {
    DiceRequest {
        amount,
        direction,
        target,
    }
}

fn edge(bp: u32) -> HouseEdge {
    HouseEdge::from_basis_points(bp).unwrap()
}

#[test]
fn formula_examples() {
    // Under 50.00 at 1%: chance 50.00%, ×1.9800; 10 coins win 19 (19.8
    // rounded down), 100 coins win 198.
    let bet = DiceBet::new(&request(10, Direction::Under, 5000), HouseEdge::ONE_PERCENT).unwrap();
    assert_eq!(
        (bet.chance(), bet.multiplier(), bet.win_payout()),
        (5000, 19_800, 19)
    );
    let bet = DiceBet::new(
        &request(100, Direction::Under, 5000),
        HouseEdge::ONE_PERCENT,
    )
    .unwrap();
    assert_eq!(bet.win_payout(), 198);
    // Over 50.00: rolls 50.01-99.99 win, 49.99%: ×1.9803.
    let bet = DiceBet::new(&request(10_000, Direction::Over, 5000), edge(100)).unwrap();
    assert_eq!(
        (bet.chance(), bet.multiplier(), bet.win_payout()),
        (4999, 19_803, 19_803)
    );
    // Under 33.33 at 1%: 99,000,000 / 3333 = 29702.97 -> ×2.9702.
    let bet = DiceBet::new(&request(1, Direction::Under, 3333), edge(100)).unwrap();
    assert_eq!((bet.multiplier(), bet.win_payout()), (29_702, 2));
    // No edge: a fair 50% bet doubles.
    let bet = DiceBet::new(&request(7, Direction::Under, 5000), edge(0)).unwrap();
    assert_eq!((bet.multiplier(), bet.win_payout()), (20_000, 14));
    assert!((bet.rtp() - 1.0).abs() < 1e-12);
    // Lowest chance, no edge: ×100.
    let bet = DiceBet::new(&request(3, Direction::Under, 100), edge(0)).unwrap();
    assert_eq!((bet.multiplier(), bet.win_payout()), (1_000_000, 300));
}

#[test]
fn win_conditions_are_strict() {
    let under = DiceBet::new(&request(100, Direction::Under, 5000), edge(100)).unwrap();
    assert!(under.settle(4999).won);
    assert!(!under.settle(5000).won);
    assert_eq!(under.settle(0).payout, 198);
    assert_eq!(under.settle(9999).payout, 0);
    let over = DiceBet::new(&request(100, Direction::Over, 5000), edge(100)).unwrap();
    assert!(!over.settle(5000).won);
    assert!(over.settle(5001).won);
    assert!(over.settle(9999).won);
    // Exactly `chance` rolls win.
    for bet in [under, over] {
        let wins = (0..ROLLS).filter(|&r| bet.settle(r).won).count();
        assert_eq!(wins, bet.chance() as usize);
    }
}

#[test]
fn targets_are_range_checked() {
    let check = |direction, target| DiceBet::new(&request(1, direction, target), edge(100));
    for (direction, ok_min, ok_max) in [(Direction::Under, 100, 9800), (Direction::Over, 199, 9899)]
    {
        assert!(check(direction, ok_min).is_ok());
        assert!(check(direction, ok_max).is_ok());
        for target in [ok_min - 1, ok_max + 1, 0, 9999, u32::MAX] {
            assert_eq!(
                check(direction, target),
                Err(DiceError::TargetOutOfRange {
                    direction,
                    target,
                    min: ok_min,
                    max: ok_max
                })
            );
        }
        assert_eq!(direction.target_range(), (ok_min, ok_max));
    }
    assert_eq!(check(Direction::Over, 199).unwrap().chance(), 9800);
    assert_eq!(check(Direction::Over, 9899).unwrap().chance(), 100);
}

#[test]
fn other_refusals() {
    let bet =
        |amount, target, bp| DiceBet::new(&request(amount, Direction::Under, target), edge(bp));
    assert_eq!(bet(0, 5000, 100), Err(DiceError::InvalidBet { amount: 0 }));
    assert_eq!(
        bet(-5, 5000, 100),
        Err(DiceError::InvalidBet { amount: -5 })
    );
    // 2% edge at 98%: ×1.0000 returns only the stake.
    assert_eq!(
        bet(1, 9800, 200),
        Err(DiceError::MultiplierTooLow { multiplier: 10_000 })
    );
    assert!(bet(1, 9800, 199).is_ok());
    assert_eq!(bet(i64::MAX, 5000, 100), Err(DiceError::Overflow));
    assert!(bet(i64::MAX / 2, 5000, 100).is_ok());
    assert_eq!(
        HouseEdge::from_basis_points(5001),
        Err(DiceError::HouseEdgeOutOfRange { basis_points: 5001 })
    );
    assert_eq!(
        HouseEdge::from_basis_points(5000).map(HouseEdge::basis_points),
        Ok(5000)
    );
    assert_eq!(serde_json::from_str::<HouseEdge>("150").unwrap(), edge(150));
    assert!(serde_json::from_str::<HouseEdge>("9000").is_err());
    assert_eq!(serde_json::to_string(&edge(150)).unwrap(), "150");
}

#[test]
fn json_shapes() {
    let req: DiceRequest =
        serde_json::from_str(r#"{"amount": 10, "direction": "under", "target": 5000}"#).unwrap();
    assert_eq!(req, request(10, Direction::Under, 5000));
    assert!(
        serde_json::from_str::<DiceRequest>(
            r#"{"amount": 10, "direction": "under", "target": 5000, "edge": 0}"#
        )
        .is_err()
    );
    assert!(
        serde_json::from_str::<DiceRequest>(
            r#"{"amount": 10, "direction": "sideways", "target": 5000}"#
        )
        .is_err()
    );
    let bet = DiceBet::new(&req, edge(100)).unwrap();
    let mut src = Scripted([4211].into_iter());
    assert_eq!(
        serde_json::to_value(roll(&mut src, &bet)).unwrap(),
        serde_json::json!({
            "roll": 4211, "amount": 10, "direction": "under", "target": 5000,
            "chance": 5000, "multiplier": 19800, "won": true, "payout": 19
        })
    );
}

#[test]
fn known_answer_rolls() {
    // From the Python verifier in docs/games.md.
    let server = ServerSeed::from_bytes([7; 32]);
    let client = ClientSeed::parse("lucky").unwrap();
    let bet = DiceBet::new(&request(100, Direction::Over, 5000), edge(100)).unwrap();
    let rolls: Vec<u32> = (0..5)
        .map(|nonce| roll(&mut FairRng::new(&server, &client, nonce), &bet).roll)
        .collect();
    assert_eq!(rolls, [7065, 6042, 1820, 2401, 6017]);
}

fn chi_square(counts: &[u32], total: u32) -> f64 {
    let expected = f64::from(total) / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (f64::from(c) - expected).powi(2) / expected)
        .sum()
}

#[test]
fn rolls_are_uniform_by_percent() {
    // One roll per round (nonce), bucketed by whole percent: 99 degrees of
    // freedom; the upper 0.1% point of chi-square(99) is 148.23.
    const ROUNDS: u32 = 200_000;
    let server = ServerSeed::from_bytes([0x99; 32]);
    let client = ClientSeed::parse("dice-chi-square").unwrap();
    let bet = DiceBet::new(&request(1, Direction::Under, 5000), edge(100)).unwrap();
    let mut counts = [0u32; 100];
    for nonce in 0..u64::from(ROUNDS) {
        let r = roll(&mut FairRng::new(&server, &client, nonce), &bet).roll;
        counts[(r / 100) as usize] += 1;
    }
    let stat = chi_square(&counts, ROUNDS);
    assert!(stat < 148.23, "chi-square {stat}");
}

#[test]
fn every_roll_value_is_uniform() {
    // All 10,000 values from one long stream: 9,999 degrees of freedom; the
    // upper 0.1% point of chi-square(9999) is about 10,441.7 (Wilson-Hilferty).
    const DRAWS: u32 = 1_000_000;
    let server = ServerSeed::from_bytes([0x98; 32]);
    let client = ClientSeed::parse("dice-values").unwrap();
    let mut rng = FairRng::new(&server, &client, 0);
    let mut counts = vec![0u32; ROLLS as usize];
    for _ in 0..DRAWS {
        counts[rng.below(ROLLS) as usize] += 1;
    }
    assert!(counts.iter().all(|&c| c > 0));
    let stat = chi_square(&counts, DRAWS);
    assert!(stat < 10_441.7, "chi-square {stat}");
}

#[test]
fn simulated_rtp_matches_the_formula() {
    // 200,000 rounds per configuration; amounts of 10,000 make the payout
    // exactly the multiplier, so the RTP is chance × multiplier / 10^8.
    const ROUNDS: u32 = 200_000;
    let server = ServerSeed::from_bytes([0x42; 32]);
    let client = ClientSeed::parse("dice-rtp").unwrap();
    for (i, (direction, target, bp)) in [
        (Direction::Under, 5000, 100),
        (Direction::Over, 8999, 100),
        (Direction::Under, 9800, 150),
        (Direction::Over, 4999, 300),
    ]
    .into_iter()
    .enumerate()
    {
        let bet = DiceBet::new(&request(10_000, direction, target), edge(bp)).unwrap();
        let rtp = bet.rtp();
        assert!(rtp <= 1.0 - f64::from(bp) / 10_000.0 + 1e-12);
        let mut returned = 0i64;
        let offset = 1_000_000 * i as u64;
        for nonce in offset..offset + u64::from(ROUNDS) {
            returned += roll(&mut FairRng::new(&server, &client, nonce), &bet).payout;
        }
        let n = f64::from(ROUNDS);
        #[allow(clippy::cast_precision_loss)]
        let measured = returned as f64 / 10_000.0 / n;
        let p = f64::from(bet.chance()) / 10_000.0;
        let m = f64::from(bet.multiplier()) / 10_000.0;
        let std_error = ((p * m * m - rtp * rtp) / n).sqrt();
        assert!(
            (measured - rtp).abs() <= 4.0 * std_error,
            "{direction} {target}: measured {measured}, theory {rtp}, 4 SE {}",
            4.0 * std_error
        );
    }
}

fn any_direction() -> impl Strategy<Value = Direction> {
    prop::sample::select(vec![Direction::Over, Direction::Under])
}

proptest! {
    #[test]
    fn payouts_follow_the_formula(
        bytes in any::<[u8; 32]>(),
        nonce in any::<u64>(),
        amount in 1i64..=1_000_000_000,
        direction in any_direction(),
        target in 0u32..10_000,
        bp in 0u32..=MAX_HOUSE_EDGE,
    ) {
        let server = ServerSeed::from_bytes(bytes);
        let client = ClientSeed::parse("prop").unwrap();
        let req = request(amount, direction, target);
        // Independent computation in u128.
        let chance = match direction {
            Direction::Under => u128::from(target),
            Direction::Over => 9999 - u128::from(target),
        };
        match DiceBet::new(&req, edge(bp)) {
            Ok(bet) => {
                prop_assert!((100..=9800).contains(&chance));
                let m = 10_000 * (10_000 - u128::from(bp)) / chance;
                prop_assert!(m > 10_000);
                let win = u128::try_from(amount).unwrap() * m / 10_000;
                prop_assert_eq!(u128::from(bet.multiplier()), m);
                let out = roll(&mut FairRng::new(&server, &client, nonce), &bet);
                prop_assert!(out.roll < ROLLS);
                let wins = match direction {
                    Direction::Under => out.roll < target,
                    Direction::Over => out.roll > target,
                };
                prop_assert_eq!(out.won, wins);
                let expected = if wins { i64::try_from(win).unwrap() } else { 0 };
                prop_assert_eq!(out.payout, expected);
                // Never more than the edge allows.
                prop_assert!(
                    chance * win <= (10_000 - u128::from(bp)) * u128::try_from(amount).unwrap()
                );
            }
            Err(DiceError::TargetOutOfRange { .. }) => {
                prop_assert!(!(100..=9800).contains(&chance));
            }
            Err(DiceError::MultiplierTooLow { multiplier }) => {
                prop_assert!((100..=9800).contains(&chance));
                prop_assert!(multiplier <= 10_000);
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn any_draws_give_a_roll_in_range(draws in prop::collection::vec(any::<u32>(), 32)) {
        let bet = DiceBet::new(&request(5, Direction::Under, 100), edge(100)).unwrap();
        let out = roll(&mut Scripted(draws.into_iter()), &bet);
        prop_assert!(out.roll < ROLLS);
        prop_assert!(out.payout == 0 || out.payout == 5 * 990_000 / 10_000);
    }
}
