//! The hub's metric names. `hearth_ws_*` belong to the transport.

/// Counter, label `backend` (`in_process`, `redis`): messages published.
pub const PUBLISHED: &str = "hearth_realtime_published_total";

/// Counter: subscribers dropped because their queue overflowed (each then got
/// [`crate::Delivery::Lagged`] once).
pub const DROPPED: &str = "hearth_realtime_dropped_total";

/// Describes the hub's metrics to the installed recorder; call once at start-up.
pub fn describe() {
    metrics::describe_counter!(
        PUBLISHED,
        "Messages published on the realtime hub, by backend."
    );
    metrics::describe_counter!(
        DROPPED,
        "Realtime subscribers dropped because their queue overflowed (too slow)."
    );
}
