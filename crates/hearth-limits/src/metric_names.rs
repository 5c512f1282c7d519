//! Names of the metrics this crate records through the [`metrics`] facade. The application
//! installs the recorder (Prometheus exporter); without one, recording costs next to nothing.

/// Counter `{rule, outcome}`: rate-limit decisions; `rule` is the deciding rule, `outcome`
/// `allowed` or `refused`.
pub const DECISIONS: &str = "hearth_rate_limit_decisions_total";
/// Counter `{rule}`: refused requests by refusing rule.
pub const REFUSALS: &str = "hearth_rate_limit_refusals_total";
/// Counter `{component}`: failed Redis calls (`rate_limit` or `budget`).
pub const REDIS_ERRORS: &str = "hearth_limits_redis_errors_total";
/// Gauge `{component}`: 1 while Redis is unreachable and the policy applies, else 0.
pub const DEGRADED: &str = "hearth_limits_degraded";
/// Counter `{scope}`: settled spending in micro-units, `scope` `user` or `global`.
pub const BUDGET_SPENT: &str = "hearth_budget_spent_total";
/// Counter `{outcome}`: budget reservations refused (`user_exhausted`, `global_exhausted`).
pub const BUDGET_REFUSALS: &str = "hearth_budget_refusals_total";
/// Counter: anomalies detected (once per key and interval).
pub const ANOMALIES: &str = "hearth_anomalies_total";

/// Registers help text for every metric above with the installed recorder, so an exposition
/// (Prometheus) is self-describing. Call once after installing the recorder; harmless twice.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        DECISIONS,
        "Rate-limit decisions by deciding rule and outcome"
    );
    describe_counter!(REFUSALS, "Requests refused by a rate limit, by rule");
    describe_counter!(REDIS_ERRORS, "Failed Redis calls by component");
    describe_gauge!(
        DEGRADED,
        "1 while Redis is unreachable and the down policy applies"
    );
    describe_counter!(BUDGET_SPENT, "Settled spending in micro-units by scope");
    describe_counter!(BUDGET_REFUSALS, "Budget reservations refused by outcome");
    describe_counter!(ANOMALIES, "Traffic anomalies detected");
}
