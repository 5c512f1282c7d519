//! The storage conformance suite: every repository behaviour, run on SQLite and PostgreSQL.

#![allow(unreachable_pub)]

mod accounts;
mod conformance;
mod leaderboard_source;
mod open_rounds;
