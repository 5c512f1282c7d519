//! One round of each game, from creating the round's `FairRng` to the
//! outcome.
//!
//! Run with `cargo bench -p hearth-domain --bench games`; for a quick look
//! add `-- --warm-up-time 1 --measurement-time 2`. Every iteration uses a new
//! nonce, as production does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmarks fail loudly on what should not happen"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
use hearth_domain::games::blackjack::{Action, Hand};
use hearth_domain::games::dice::{self, DiceBet, DiceRequest, Direction, HouseEdge};
use hearth_domain::games::roulette::{self, BetKind, BetRequest, Bets};
use hearth_domain::games::slots;

fn rounds(c: &mut Criterion) {
    let server = ServerSeed::from_bytes([0x42; 32]);
    let Ok(client) = ClientSeed::parse("bench") else {
        panic!("valid client seed");
    };
    let mut nonce = 0u64;
    let mut next = move || {
        nonce = nonce.wrapping_add(1);
        black_box(nonce)
    };

    c.bench_function("slots spin", |b| {
        b.iter(|| slots::spin(&mut FairRng::new(&server, &client, next()), black_box(10)));
    });

    let requests = vec![
        BetRequest {
            kind: BetKind::Straight,
            numbers: vec![17],
            amount: 5,
        },
        BetRequest {
            kind: BetKind::Split,
            numbers: vec![17, 20],
            amount: 5,
        },
        BetRequest {
            kind: BetKind::Red,
            numbers: Vec::new(),
            amount: 10,
        },
    ];
    c.bench_function("roulette validate + spin, 3 bets", |b| {
        b.iter(|| {
            let bets = Bets::validate(black_box(&requests))?;
            Ok::<_, roulette::RouletteError>(roulette::spin(
                &mut FairRng::new(&server, &client, next()),
                &bets,
            ))
        });
    });

    let request = DiceRequest {
        amount: 10,
        direction: Direction::Under,
        target: 5000,
    };
    c.bench_function("dice validate + roll", |b| {
        b.iter(|| {
            let bet = DiceBet::new(black_box(&request), HouseEdge::ONE_PERCENT)?;
            Ok::<_, dice::DiceError>(dice::roll(
                &mut FairRng::new(&server, &client, next()),
                &bet,
            ))
        });
    });

    c.bench_function("blackjack deal + stand", |b| {
        b.iter(|| {
            let mut hand = Hand::deal(&mut FairRng::new(&server, &client, next()), black_box(10))
                .map_err(|e| e.to_string())?;
            if !hand.is_over() {
                hand.apply(Action::Stand).map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(hand.outcome())
        });
    });
}

criterion_group!(benches, rounds);
criterion_main!(benches);
