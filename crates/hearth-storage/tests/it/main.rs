//! The storage conformance suite: every repository behaviour, run on SQLite and PostgreSQL.

#![allow(unreachable_pub)]

mod accounts;
mod conformance;
mod leaderboard;
mod open_rounds;
