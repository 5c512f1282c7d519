//! hearth-realtime's suite: one set of hub behaviours run on the in-process hub and on Redis
//! (two hubs with one prefix, standing for two gateways), plus what only Redis has: a pub/sub
//! connection that comes back by itself.

#![allow(unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on what should not happen"
)]

mod redis_only;
mod suite;
mod support;
