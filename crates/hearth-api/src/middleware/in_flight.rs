//! The count of requests in flight, kept by [`Edge`](super::edge::Edge) and read by
//! `/metrics`: a module of its own, so the metrics route does not depend on the middleware
//! that depends on telemetry.

use std::sync::atomic::{AtomicI64, Ordering};

/// Requests between `Edge` and their answer, in every app of the process (as the metric
/// registry is). A plain counter: the gauge's own increment and decrement are compare-and-swap
/// loops, plus a generation count, on lines every worker shares; `/metrics` sets the gauge
/// from this when it renders.
static IN_FLIGHT: AtomicI64 = AtomicI64::new(0);

/// The number of requests being served now, for the `hearth_http_requests_in_flight` gauge.
pub(crate) fn requests_in_flight() -> i64 {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// Counts a request in flight until dropped, even if the client disconnects and the answer is
/// dropped mid-request.
pub(super) struct InFlight;

impl InFlight {
    pub(super) fn start() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}
