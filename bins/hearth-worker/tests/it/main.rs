//! The worker's jobs against both backends.

#![allow(unreachable_pub)]

mod reconciliation;
