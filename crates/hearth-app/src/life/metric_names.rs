//! Names of the life simulation's metrics, recorded through the [`metrics`] facade.

/// Gauge: lives this process drives (in memory, holding their lease).
pub const LIVE: &str = "hearth_life_live";
/// Counter: days lived by the lives this process drives; its rate is ticks per second.
pub const TICKS: &str = "hearth_life_ticks_total";
/// Counter `{category}`: events fired, by the catalogue's category.
pub const EVENTS: &str = "hearth_life_events_total";
/// Gauge: questions waiting for an answer in the lives this process drives.
pub const QUESTIONS_PENDING: &str = "hearth_life_questions_pending";
/// Histogram: seconds per save of a life (the database write, lease included).
pub const SAVE_SECONDS: &str = "hearth_life_save_seconds";
/// Counter: pushes dropped because the publishing queue was full.
pub const PUSHES_DROPPED: &str = "hearth_life_pushes_dropped_total";

/// Registers help text for every metric above with the installed recorder. Harmless twice.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(LIVE, "Lives driven by this process");
    describe_counter!(TICKS, "Days lived by the lives this process drives");
    describe_counter!(EVENTS, "Life events fired, by category");
    describe_gauge!(
        QUESTIONS_PENDING,
        "Questions waiting for an answer in the lives this process drives"
    );
    describe_histogram!(
        SAVE_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one life save"
    );
    describe_counter!(
        PUSHES_DROPPED,
        "Life pushes dropped because the publishing queue was full"
    );
}
