//! The AI client against a local HTTP server speaking the chat-completions wire format, with
//! scripted failures.

#![allow(unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on what should not happen"
)]

mod client;
mod streaming;
mod support;
