//! Simulates the slot machine and compares the measured return with theory.
//!
//! Usage: `cargo run --release -p hearth-domain --example simulate_slots [SPINS]`
//! (default 1,000,000 spins). Each spin is its own provably fair round with a
//! fixed server and client seed and nonces 0, 1, 2, …, so runs are
//! reproducible.

#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::process::ExitCode;

use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
use hearth_domain::games::slots;

const DEFAULT_SPINS: u64 = 1_000_000;

fn main() -> ExitCode {
    let spins = match std::env::args().nth(1) {
        None => DEFAULT_SPINS,
        Some(arg) => match arg.replace('_', "").parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: simulate_slots [SPINS]  (SPINS must be a positive integer)");
                return ExitCode::FAILURE;
            }
        },
    };

    let server = ServerSeed::from_bytes([0x42; 32]);
    let Ok(client) = ClientSeed::parse("simulate-slots") else {
        eprintln!("invalid client seed");
        return ExitCode::FAILURE;
    };

    let mut returned: u64 = 0;
    let mut hits: u64 = 0;
    for nonce in 0..spins {
        let mut rng = FairRng::new(&server, &client, nonce);
        match slots::spin(&mut rng, 1) {
            Ok(outcome) => {
                returned += u64::from(outcome.multiplier);
                hits += u64::from(outcome.multiplier > 0);
            }
            Err(err) => {
                eprintln!("spin failed: {err}");
                return ExitCode::FAILURE;
            }
        }
    }

    let stats = slots::theoretical_stats();
    #[allow(clippy::cast_precision_loss)]
    let (n, returned, hits) = (spins as f64, returned as f64, hits as f64);
    let measured = returned / n;
    let std_error = (stats.variance / n).sqrt();
    println!("spins:             {spins}");
    println!("measured RTP:      {measured:.6}");
    println!("theoretical RTP:   {:.6}", stats.rtp);
    println!("standard error:    {std_error:.6}");
    println!(
        "deviation:         {:+.2} standard errors",
        (measured - stats.rtp) / std_error
    );
    println!("measured hit rate: {:.6}", hits / n);
    println!("theoretical hits:  {:.6}", stats.hit_frequency);
    ExitCode::SUCCESS
}
