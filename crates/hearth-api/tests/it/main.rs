//! Integration tests: the app on a random loopback port, over real HTTP.

#![allow(unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on what should not happen"
)]

mod admin_jobs;
mod ai_chat;
mod architecture;
mod blackjack;
mod browser;
mod campaigns;
mod durable_revocation;
mod economy;
mod email;
mod errors;
mod health;
mod http_stack;
mod life;
mod limits;
mod lockout;
mod openapi;
mod operators;
mod pages;
mod server;
mod sessions;
mod shutdown;
mod support;
mod telemetry;
mod token_attacks;
mod walkthrough;
mod ws;
