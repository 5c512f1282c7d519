//! Names of the metrics this crate records through the [`metrics`] facade (the application
//! installs the recorder). Spending and budget refusals are the application's: it knows the
//! prices and the budgets; their names are here so every AI metric is listed in one place.

/// Counter `{provider, outcome}`: attempts on a provider. `outcome`: `ok`, `timeout`,
/// `connect`, `server_error` (5xx), `rate_limited` (429), `refused` (another 4xx),
/// `invalid` (an answer that is not the wire format), `skipped` (breaker open).
pub const CALLS: &str = "hearth_ai_calls_total";
/// Histogram `{provider}`: seconds per successful attempt (for a stream: until its end).
pub const LATENCY: &str = "hearth_ai_call_duration_seconds";
/// Counter `{provider, direction}`: tokens, `direction` `in` (prompt) or `out` (completion).
pub const TOKENS: &str = "hearth_ai_tokens_total";
/// Gauge `{provider}`: the breaker's state, 0 closed, 1 open, 2 half-open.
pub const BREAKER_STATE: &str = "hearth_ai_breaker_state";
/// Counter `{provider, to}`: breaker transitions into `open`, `half_open` or `closed`.
pub const BREAKER_TRANSITIONS: &str = "hearth_ai_breaker_transitions_total";
/// Counter `{outcome}`: calls as a whole: `ok`, `unavailable` (no provider answered),
/// `deadline` (the per-call deadline passed).
pub const REQUESTS: &str = "hearth_ai_requests_total";
/// Counter `{provider}`: settled spending in budget micro-units (recorded by the application).
pub const SPEND: &str = "hearth_ai_spend_total";
/// Counter `{scope}`: AI calls refused before reaching a provider: `rate` (the `ai` rule),
/// `user` (daily budget), `global` (hourly budget), `unavailable` (budgets unreachable).
/// Recorded by the application.
pub const BUDGET_REFUSALS: &str = "hearth_ai_budget_refusals_total";
/// Counter `{reason}`: in-game fallback lines served instead of an answer (recorded by the
/// application).
pub const FALLBACKS: &str = "hearth_ai_fallbacks_total";

/// Registers help text for every metric above with the installed recorder. Harmless twice.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(CALLS, "AI provider attempts by provider and outcome");
    describe_histogram!(
        LATENCY,
        metrics::Unit::Seconds,
        "Duration of successful AI provider attempts"
    );
    describe_counter!(TOKENS, "AI tokens by provider and direction (in, out)");
    describe_gauge!(
        BREAKER_STATE,
        "AI provider circuit breaker state: 0 closed, 1 open, 2 half-open"
    );
    describe_counter!(
        BREAKER_TRANSITIONS,
        "AI provider circuit breaker transitions"
    );
    describe_counter!(REQUESTS, "AI calls by overall outcome");
    describe_counter!(
        SPEND,
        "AI spending settled, in budget micro-units, by provider"
    );
    describe_counter!(
        BUDGET_REFUSALS,
        "AI calls refused by the ai rate rule or a spent budget, by scope"
    );
    describe_counter!(
        FALLBACKS,
        "In-game fallback lines served instead of an AI answer"
    );
}
