//! Integration tests of `hearth-auth`: the revocation and lockout stores (one suite, run
//! in-process and against Redis) and the tower layer over real HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on what should not happen"
)]

mod layer;
mod stores;
