//! Simulates dice and compares the measured return of several bets with the
//! exact formula.
//!
//! Usage: `cargo run --release -p hearth-domain --example simulate_dice [ROUNDS [EDGE_BP]]`
//! (default 1,000,000 rounds, house edge 100 basis points = 1%). Each round is
//! its own provably fair round with a fixed server and client seed and nonces
//! 0, 1, 2, …, so runs are reproducible. Every round's roll settles each of
//! the bets below; amounts of 10,000 coins make the payout exactly the
//! multiplier, so the theoretical RTP is `chance × multiplier / 10^8`.

#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::process::ExitCode;

use hearth_domain::fairness::{ClientSeed, FairRng, RandomSource, ServerSeed};
use hearth_domain::games::dice::{self, DiceBet, DiceRequest, Direction, HouseEdge};

const DEFAULT_ROUNDS: u64 = 1_000_000;

const BETS: [(Direction, u32); 6] = [
    (Direction::Under, 100),
    (Direction::Under, 1000),
    (Direction::Under, 5000),
    (Direction::Over, 4999),
    (Direction::Over, 8999),
    (Direction::Under, 9800),
];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let usage =
        "usage: simulate_dice [ROUNDS [EDGE_BP]]  (positive integers; EDGE_BP at most 5000)";
    let rounds = match args.next().map(|a| a.replace('_', "").parse::<u64>()) {
        None => DEFAULT_ROUNDS,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("{usage}");
            return ExitCode::FAILURE;
        }
    };
    let edge = match args.next().map(|a| a.parse::<u32>()) {
        None => Ok(HouseEdge::ONE_PERCENT),
        Some(Ok(bp)) => HouseEdge::from_basis_points(bp),
        Some(Err(_)) => {
            eprintln!("{usage}");
            return ExitCode::FAILURE;
        }
    };
    let edge = match edge {
        Ok(edge) => edge,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };

    let server = ServerSeed::from_bytes([0x42; 32]);
    let Ok(client) = ClientSeed::parse("simulate-dice") else {
        eprintln!("invalid client seed");
        return ExitCode::FAILURE;
    };
    let mut bets = Vec::new();
    for (direction, target) in BETS {
        let request = DiceRequest {
            amount: 10_000,
            direction,
            target,
        };
        match DiceBet::new(&request, edge) {
            Ok(bet) => bets.push(bet),
            Err(err) => println!("skipping {direction} {target}: {err}"),
        }
    }

    let mut returned = vec![0u64; bets.len()];
    let mut percent = [0u64; 100];
    for nonce in 0..rounds {
        let roll = FairRng::new(&server, &client, nonce).below(dice::ROLLS);
        percent[(roll / 100) as usize] += 1;
        for (sum, bet) in returned.iter_mut().zip(&bets) {
            *sum += bet.settle(roll).payout.unsigned_abs();
        }
    }

    #[allow(clippy::cast_precision_loss)]
    let f = |x: u64| x as f64;
    let n = f(rounds);
    println!("rounds:       {rounds}");
    println!(
        "house edge:   {} basis points (RTP before rounding {:.6})",
        edge.basis_points(),
        1.0 - f64::from(edge.basis_points()) / 10_000.0
    );
    println!(
        "{:<14} {:>7} {:>10} {:>10} {:>10} {:>8}",
        "bet", "chance", "multiplier", "theory", "measured", "dev"
    );
    for (bet, sum) in bets.iter().zip(returned) {
        let theory = bet.rtp();
        let measured = f(sum) / 10_000.0 / n;
        let p = f64::from(bet.chance()) / 10_000.0;
        let m = f64::from(bet.multiplier()) / 10_000.0;
        let se = ((p * m * m - theory * theory) / n).sqrt();
        let r = bet.request();
        println!(
            "{:<14} {:>6.2}% {:>9.4}x {theory:>10.6} {measured:>10.6} {:>+8.2}",
            format!("{} {:.2}", r.direction, f64::from(r.target) / 100.0),
            p * 100.0,
            m,
            (measured - theory) / se
        );
    }
    let expected = n / 100.0;
    let chi_square: f64 = percent
        .iter()
        .map(|&c| (f(c) - expected).powi(2) / expected)
        .sum();
    println!(
        "roll chi-square by percent: {chi_square:.2} (99 degrees of freedom; 148.23 is p = 0.001)"
    );
    ExitCode::SUCCESS
}
