//! The storage conformance suite: every repository behaviour, run on SQLite and PostgreSQL.

#![allow(unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on what should not happen"
)]

mod accounts;
mod admin;
mod backup;
mod campaign_indexes;
mod campaigns;
mod conformance;
mod conversations;
mod email;
mod jobs;
mod leaderboard_source;
mod lives;
mod open_rounds;
mod revocations;
mod sqlite_writer;
