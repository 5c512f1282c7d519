//! Integration tests of `hearth-life`: registry validation, the starter catalogue, the engine's
//! behaviour through its public API, and property tests (priority order, dependencies,
//! conflicts, repeats and replay from the seeds).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on what should not happen"
)]

mod engine;
mod properties;
mod registry;
mod starter;
mod support;
