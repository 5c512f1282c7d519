//! Plays blackjack with basic strategy and compares the measured return with
//! the published estimate.
//!
//! Usage: `cargo run --release -p hearth-domain --example simulate_blackjack [ROUNDS]`
//! (default 1,000,000 rounds). Each round is its own provably fair round with
//! a fixed server and client seed and nonces 0, 1, 2, …, so runs are
//! reproducible. An optional second argument sets the client seed.
//!
//! Two figures are printed:
//!
//! - **RTP** in the usual blackjack sense: `1 + expected net win per initial
//!   bet` (a double adds stake but the return is still measured against the
//!   initial bet); `1 − RTP` is the house edge.
//! - **Returned ÷ wagered**: total payouts over total stakes, doubles
//!   included, which is what the ledger shows.

#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::process::ExitCode;

use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
use hearth_domain::games::blackjack::{self, Hand, Status};

const DEFAULT_ROUNDS: u64 = 1_000_000;

/// The bet: even, so 3:2 is exact.
const BET: i64 = 2;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let rounds = match args.next() {
        None => DEFAULT_ROUNDS,
        Some(arg) => match arg.replace('_', "").parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!(
                    "usage: simulate_blackjack [ROUNDS [CLIENT_SEED]]  (ROUNDS must be a positive integer)"
                );
                return ExitCode::FAILURE;
            }
        },
    };
    let seed_text = args
        .next()
        .unwrap_or_else(|| "simulate-blackjack".to_owned());
    let server = ServerSeed::from_bytes([0x42; 32]);
    let Ok(client) = ClientSeed::parse(&seed_text) else {
        eprintln!("invalid client seed");
        return ExitCode::FAILURE;
    };

    // Sums in half-bets (net win per round is a multiple of BET / 2 = 1).
    let (mut net_sum, mut net_sq): (i128, i128) = (0, 0);
    let (mut paid, mut staked): (i128, i128) = (0, 0);
    let (mut paid_sq, mut staked_sq, mut paid_staked): (i128, i128, i128) = (0, 0, 0);
    let mut doubles: u64 = 0;
    let mut by_status = [0u64; 7];
    for nonce in 0..rounds {
        let mut rng = FairRng::new(&server, &client, nonce);
        let mut hand = match Hand::deal(&mut rng, BET) {
            Ok(hand) => hand,
            Err(err) => {
                eprintln!("deal failed: {err}");
                return ExitCode::FAILURE;
            }
        };
        while let Some(action) = blackjack::basic_strategy(&hand) {
            if let Err(err) = hand.apply(action) {
                eprintln!("illegal action: {err}");
                return ExitCode::FAILURE;
            }
        }
        let (payout, stake) = (i128::from(hand.payout()), i128::from(hand.stake()));
        let net = payout - stake;
        net_sum += net;
        net_sq += net * net;
        paid += payout;
        staked += stake;
        paid_sq += payout * payout;
        staked_sq += stake * stake;
        paid_staked += payout * stake;
        doubles += u64::from(hand.doubled());
        let slot = match hand.status() {
            Status::Playing => 0,
            Status::PlayerBust => 1,
            Status::DealerBust => 2,
            Status::PlayerWin => 3,
            Status::DealerWin => 4,
            Status::Push => 5,
            Status::Blackjack => 6,
        };
        by_status[slot] += 1;
    }

    #[allow(clippy::cast_precision_loss)]
    let f = |x: i128| x as f64;
    #[allow(clippy::cast_precision_loss)]
    let n = rounds as f64;
    let bet = f(i128::from(BET));
    // Per initial bet.
    let mean_net = f(net_sum) / n / bet;
    let var_net = f(net_sq) / n / (bet * bet) - mean_net * mean_net;
    let rtp = 1.0 + mean_net;
    let rtp_se = (var_net / n).sqrt();
    // Returned over wagered, with the delta-method standard error of a ratio.
    let ratio = f(paid) / f(staked);
    let mean_stake = f(staked) / n;
    let var_resid = (f(paid_sq) - 2.0 * ratio * f(paid_staked) + ratio * ratio * f(staked_sq)) / n;
    let ratio_se = (var_resid / n).sqrt() / mean_stake;

    println!("rounds:                 {rounds}");
    println!("client seed:            {seed_text}");
    println!(
        "measured RTP:           {rtp:.6} ± {rtp_se:.6} (house edge {:.4}%)",
        (1.0 - rtp) * 100.0
    );
    println!(
        "published estimate:     {:.6} ± {:.6}",
        blackjack::BASIC_STRATEGY_RTP,
        blackjack::BASIC_STRATEGY_RTP_STD_ERROR
    );
    let combined = (rtp_se.powi(2) + blackjack::BASIC_STRATEGY_RTP_STD_ERROR.powi(2)).sqrt();
    println!(
        "deviation:              {:+.2} standard errors",
        (rtp - blackjack::BASIC_STRATEGY_RTP) / combined
    );
    println!("returned / wagered:     {ratio:.6} ± {ratio_se:.6}");
    println!("variance per round:     {var_net:.4} (initial bets squared)");
    #[allow(clippy::cast_precision_loss)]
    let share = |count: u64| count as f64 / n;
    println!("doubles:                {:.4}", share(doubles));
    for (name, count) in [
        "playing",
        "player_bust",
        "dealer_bust",
        "player_win",
        "dealer_win",
        "push",
        "blackjack",
    ]
    .into_iter()
    .zip(by_status)
    .skip(1)
    {
        println!("{name:<24}{:.4}", share(count));
    }
    ExitCode::SUCCESS
}
