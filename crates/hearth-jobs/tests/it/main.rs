//! The job runtime against both backends: retries then success, dead letters, a worker killed
//! mid-job, graceful shutdown, lease renewal, and schedule slots across two runners.

#![allow(unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on what should not happen"
)]

mod runtime;
