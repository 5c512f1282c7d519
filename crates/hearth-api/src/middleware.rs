//! Hearth's own middleware, as hand-written services rather than a tower of small layers, one
//! file each (`Edge`, `Guard` and `CompressWhenAsked` do not use one another).
//!
//! [`Edge`] (outermost) settles the request id, opens the request span, answers with the
//! security headers, turns any bare error into problem+json, writes the access log and records
//! the HTTP metrics. [`Guard`] (inside CORS and compression) applies rate limits and the body
//! limit, cuts off slow handlers and turns a panic into a 500.
//! [`CompressWhenAsked`](compress::CompressWhenAsked) compresses for the clients that ask.
//! `Edge` and `Guard` are one future per request each: a stack of `from_fn` and
//! `SetResponseHeader` layers cloned the whole inner stack and boxed a future at every level,
//! which cost more than the work the layers did (see docs/benchmarks.md). The count of
//! requests in flight that `Edge` keeps lives apart, in `in_flight`, for `/metrics` to read.

mod compress;
mod edge;
mod guard;
mod in_flight;

pub(crate) use compress::CompressWhenAskedLayer;
pub(crate) use edge::Edge;
pub(crate) use guard::Guard;
pub(crate) use in_flight::requests_in_flight;
