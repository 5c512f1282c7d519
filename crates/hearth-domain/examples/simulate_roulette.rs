//! Simulates European roulette and compares the measured return of every bet
//! kind with the exact 36/37.
//!
//! Usage: `cargo run --release -p hearth-domain --example simulate_roulette [SPINS]`
//! (default 1,000,000 spins). Each spin is its own provably fair round with a
//! fixed server and client seed and nonces 0, 1, 2, …, so runs are
//! reproducible. Every spin carries one 1-coin bet of each of the 13 kinds.

#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::process::ExitCode;

use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
use hearth_domain::games::roulette::{self, BetKind, BetRequest, Bets};

const DEFAULT_SPINS: u64 = 1_000_000;

fn main() -> ExitCode {
    let spins = match std::env::args().nth(1) {
        None => DEFAULT_SPINS,
        Some(arg) => match arg.replace('_', "").parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: simulate_roulette [SPINS]  (SPINS must be a positive integer)");
                return ExitCode::FAILURE;
            }
        },
    };

    let server = ServerSeed::from_bytes([0x42; 32]);
    let Ok(client) = ClientSeed::parse("simulate-roulette") else {
        eprintln!("invalid client seed");
        return ExitCode::FAILURE;
    };
    // One bet of each kind: the first valid numbers of each (straight 0,
    // split 0-1, street 0-1-2, corner 0-1-2-3, line 1-6, first dozen, first
    // column, and the even-money bets).
    let requests: Vec<BetRequest> = BetKind::ALL
        .into_iter()
        .map(|kind| BetRequest {
            kind,
            numbers: roulette::all_numbers(kind).swap_remove(0),
            amount: 1,
        })
        .collect();
    let bets = match Bets::validate(&requests) {
        Ok(bets) => bets,
        Err(err) => {
            eprintln!("invalid bets: {err}");
            return ExitCode::FAILURE;
        }
    };

    let mut returned = [0u64; 13];
    let (mut total, mut total_sq) = (0u64, 0u64);
    let mut pockets = [0u64; 37];
    for nonce in 0..spins {
        let out = roulette::spin(&mut FairRng::new(&server, &client, nonce), &bets);
        pockets[usize::from(out.pocket)] += 1;
        for (sum, bet) in returned.iter_mut().zip(&out.bets) {
            *sum += bet.payout.unsigned_abs();
        }
        let paid = out.total_payout.unsigned_abs();
        total += paid;
        total_sq += paid * paid;
    }

    #[allow(clippy::cast_precision_loss)]
    let f = |x: u64| x as f64;
    let n = f(spins);
    let rtp = roulette::RTP;
    println!("spins:            {spins}");
    println!("theoretical RTP:  {rtp:.6} (36/37, every bet kind)");
    println!(
        "{:<10} {:>10} {:>10} {:>8}",
        "kind", "measured", "std err", "dev"
    );
    for (kind, sum) in BetKind::ALL.into_iter().zip(returned) {
        let measured = f(sum) / n;
        let win = f(kind.pays().unsigned_abs() + 1);
        let p = f64::from(kind.pockets_covered()) / 37.0;
        let se = ((win * win * p - rtp * rtp) / n).sqrt();
        println!(
            "{:<10} {measured:>10.6} {se:>10.6} {:>+8.2}",
            kind.as_str(),
            (measured - rtp) / se
        );
    }
    // All 13 one-coin bets together: 13 coins staked per spin.
    let mean = f(total) / n;
    let var = f(total_sq) / n - mean * mean;
    let measured = mean / 13.0;
    let se = (var / n).sqrt() / 13.0;
    println!(
        "{:<10} {measured:>10.6} {se:>10.6} {:>+8.2}",
        "all",
        (measured - rtp) / se
    );
    let expected = n / 37.0;
    let chi_square: f64 = pockets
        .iter()
        .map(|&c| (f(c) - expected).powi(2) / expected)
        .sum();
    println!("pocket chi-square: {chi_square:.2} (36 degrees of freedom; 67.99 is p = 0.001)");
    ExitCode::SUCCESS
}
