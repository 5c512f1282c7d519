//! hearth-app's suites: the leaderboard stores (in process and Redis) and their rebuild from
//! both databases, the worker's jobs on both databases, rounds and revocations with their
//! realtime pushes, the hub as `Hearth::wire` installs it (two gateways on one Redis), and AI
//! calls under the `ai` rule and the budgets (in process and Redis), and the life session
//! manager (idle lives released, lives taken over dropped) on both databases.

#![allow(unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on what should not happen"
)]

mod ai;
mod hub;
mod jobs;
mod leaderboard_push;
mod leaderboards;
mod lives;
mod revocations;
mod rounds;
