//! The storage conformance suite: every repository behaviour, run on SQLite and PostgreSQL.

#![allow(unreachable_pub)]

mod conformance;
mod leaderboard;
mod open_rounds;
